//! Spec §3 of `consul-compat.md` as table-driven tests: each applicable row of the 96-case table
//! runs against a live agent over real UDP and TCP, named after the Consul test it comes from.
//!
//! One `#[test]` per agent configuration (a Consul test that loops over configurations loops here
//! too). A test starts one agent, plus fake upstream recursors when its rows need them, and runs
//! scenarios against it: a scenario registers one Consul test's fixture over the HTTP API, asks
//! that test's rows, then deregisters the fixture, so scenarios sharing an agent never see each
//! other's nodes. Each row is asked over UDP and over TCP unless it is about one transport.
//! Every mismatch is collected (row number, Consul test, question, transport, diff) and the test
//! fails once at the end with all of them.
//!
//! Expectations are the spec's, never the agent's current behaviour. Where the spec marks a
//! Consul quirk (§2.18) the row asserts Consul's behaviour with the default configuration.
//! Records are compared rendered as `owner ttl TYPE rdata` (`support::dig`).
//!
//! Rows not covered, and why: 21, 77, 95 and the `.query.` questions of 22, 35, 42, 45, 68, 88
//! and 94 (prepared queries); 38, 39, 64, 65, 70 (service mesh, cluster peering); 40, 41 (WAN
//! address translation needs two federated datacenters); 60 (ACLs).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use serde_json::{Value, json};

use crate::support::{Agent, FakeRecursor, Proto, Reply, Upstream, a, cname, dig, exchange, rr, txt};

use RecordType::{A, AAAA, ANY, NS, SOA, SRV, TXT};

// ----- the table's vocabulary ----------------------------------------------------------------

/// How one section of a reply must look.
#[derive(Debug, Clone)]
enum Section {
    /// The row does not pin this section.
    Any,
    /// Exactly these records, in this order.
    Exact(Vec<String>),
    /// Exactly these records, in any order (shuffled instances).
    Unordered(Vec<String>),
    /// Exactly one of these record lists, in order (e.g. whichever instance's CNAME chain wins).
    OneOf(Vec<Vec<String>>),
    /// At least these records first (the row pins only `Additional[0]` and the like).
    Prefix(Vec<String>),
    /// This many records, whatever they are.
    Count(usize),
}

/// The OPT record a row sends.
#[derive(Debug, Clone, Copy)]
struct EdnsOpt {
    /// Advertised UDP payload size.
    size: u16,
    /// DO bit; Consul's tests send it (`SetEdns0(size, true)`).
    dnssec_ok: bool,
    /// EDNS Client Subnet: address and source prefix (RFC 7871).
    ecs: Option<(IpAddr, u8)>,
}

/// An extra check on the whole reply (size, timing, pairing of sections).
type Probe = Box<dyn Fn(&Reply) -> Result<(), String>>;

/// One row of the table (or one of a row's questions).
struct Case {
    /// The row number in spec §3 (`"68a"` for a lettered part).
    row: &'static str,
    qname: String,
    qtype: RecordType,
    /// Transports to ask over; both unless the row is about one.
    over: &'static [Proto],
    edns: Option<EdnsOpt>,
    /// How long the client waits for the reply.
    timeout: Duration,
    rcode: ResponseCode,
    /// AA flag: set on every answer from our own zones (spec §2.1).
    aa: bool,
    /// RA flag; `None` means "as configured": set iff the agent has recursors (spec §2.1).
    ra: Option<bool>,
    /// TC flag; `None` when the row does not pin it.
    tc: Option<bool>,
    answer: Section,
    authority: Section,
    additional: Section,
    /// The reply must carry an OPT echoing the client's size without DO (spec §2.12), and the
    /// client's ECS option with scope 0 (spec §2.13).
    echo_edns: bool,
    probes: Vec<Probe>,
}

const BOTH: &[Proto] = &[Proto::Udp, Proto::Tcp];

/// A question for `row`, asked over UDP and TCP without EDNS, expecting an authoritative NOERROR.
fn ask(row: &'static str, qname: impl Into<String>, qtype: RecordType) -> Case {
    Case {
        row,
        qname: qname.into(),
        qtype,
        over: BOTH,
        edns: None,
        timeout: Duration::from_secs(5),
        rcode: ResponseCode::NoError,
        aa: true,
        ra: None,
        tc: Some(false),
        answer: Section::Any,
        authority: Section::Any,
        additional: Section::Any,
        echo_edns: false,
        probes: Vec::new(),
    }
}

fn lines<S: AsRef<str>>(records: &[S]) -> Vec<String> {
    records.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// The SOA Consul puts in Authority for `domain`, with the default timers (spec §2.7).
fn soa(domain: &str) -> String {
    format!("{domain} 0 SOA ns.{domain} hostmaster.{domain} SERIAL 3600 600 86400 0")
}

impl Case {
    fn udp_only(mut self) -> Self {
        self.over = &[Proto::Udp];
        self
    }

    fn tcp_only(mut self) -> Self {
        self.over = &[Proto::Tcp];
        self
    }

    /// Sends an OPT with this payload size and DO set, as Consul's `SetEdns0(size, true)`.
    fn edns(mut self, size: u16) -> Self {
        self.edns = Some(EdnsOpt { size, dnssec_ok: true, ecs: None });
        self
    }

    /// Adds an EDNS Client Subnet option to the OPT.
    fn ecs(mut self, addr: &str, source_prefix: u8) -> Self {
        let ip = addr.parse().expect("ECS address");
        let e = self.edns.get_or_insert(EdnsOpt { size: 512, dnssec_ok: false, ecs: None });
        e.ecs = Some((ip, source_prefix));
        self
    }

    fn echo_edns(mut self) -> Self {
        self.echo_edns = true;
        self
    }

    fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    fn tc(mut self, tc: Option<bool>) -> Self {
        self.tc = tc;
        self
    }

    /// Pins the Answer section; a positive answer has an empty Authority unless the row says
    /// otherwise (spec §2.7: SOA only for NXDOMAIN/NODATA, NS only for SOA and NS questions).
    fn answer_section(mut self, s: Section) -> Self {
        self.answer = s;
        if matches!(self.authority, Section::Any) {
            self.authority = Section::Exact(Vec::new());
        }
        self
    }

    fn answer<S: AsRef<str>>(self, records: &[S]) -> Self {
        self.answer_section(Section::Exact(lines(records)))
    }

    fn answer_unordered<S: AsRef<str>>(self, records: &[S]) -> Self {
        self.answer_section(Section::Unordered(lines(records)))
    }

    fn answer_one_of(self, alternatives: &[&[&str]]) -> Self {
        self.answer_section(Section::OneOf(alternatives.iter().map(|a| lines(a)).collect()))
    }

    fn answer_prefix<S: AsRef<str>>(self, records: &[S]) -> Self {
        self.answer_section(Section::Prefix(lines(records)))
    }

    fn answer_count(self, n: usize) -> Self {
        self.answer_section(Section::Count(n))
    }

    fn authority<S: AsRef<str>>(mut self, records: &[S]) -> Self {
        self.authority = Section::Exact(lines(records));
        self
    }

    fn additional<S: AsRef<str>>(mut self, records: &[S]) -> Self {
        self.additional = Section::Exact(lines(records));
        self
    }

    fn no_additional(mut self) -> Self {
        self.additional = Section::Exact(Vec::new());
        self
    }

    fn additional_prefix<S: AsRef<str>>(mut self, records: &[S]) -> Self {
        self.additional = Section::Prefix(lines(records));
        self
    }

    fn additional_count(mut self, n: usize) -> Self {
        self.additional = Section::Count(n);
        self
    }

    /// NXDOMAIN: empty Answer and Additional, the domain's SOA in Authority (spec §2.8).
    fn nxdomain(self) -> Self {
        self.nxdomain_with(&soa("consul."))
    }

    fn nxdomain_with(mut self, soa_line: &str) -> Self {
        self.rcode = ResponseCode::NXDomain;
        self.answer = Section::Exact(Vec::new());
        self.authority = Section::Exact(vec![soa_line.to_owned()]);
        self.additional = Section::Exact(Vec::new());
        self
    }

    /// NODATA: NOERROR, empty Answer, the SOA in Authority (spec §2.2 notes, `errNoData`).
    fn nodata(mut self) -> Self {
        self.rcode = ResponseCode::NoError;
        self.answer = Section::Exact(Vec::new());
        self.authority = Section::Exact(vec![soa("consul.")]);
        self
    }

    /// NOERROR with nothing at all, not even a SOA (spec §2.2: node type mismatch).
    fn empty(mut self) -> Self {
        self.answer = Section::Exact(Vec::new());
        self.authority = Section::Exact(Vec::new());
        self
    }

    /// REFUSED from the mux: AA=0, RA=0, empty sections (spec §1.1).
    fn refused(mut self) -> Self {
        self.rcode = ResponseCode::Refused;
        self.aa = false;
        self.ra = Some(false);
        self.answer = Section::Exact(Vec::new());
        self.authority = Section::Exact(Vec::new());
        self.additional = Section::Exact(Vec::new());
        self
    }

    /// Every recursor failed: SERVFAIL, AA=0, RA=1, no records (spec §2.1, §2.8).
    fn servfail(mut self) -> Self {
        self.rcode = ResponseCode::ServFail;
        self.aa = false;
        self.ra = Some(true);
        self.answer = Section::Exact(Vec::new());
        self.authority = Section::Exact(Vec::new());
        self
    }

    /// A reply forwarded from an upstream keeps the upstream's flags (the fakes set RA=1, AA=0).
    fn forwarded(mut self) -> Self {
        self.aa = false;
        self.ra = Some(true);
        self
    }

    fn probe(mut self, p: impl Fn(&Reply) -> Result<(), String> + 'static) -> Self {
        self.probes.push(Box::new(p));
        self
    }
}

impl Section {
    fn check(&self, got: &[String]) -> Result<(), String> {
        let ok = match self {
            Self::Any => true,
            Self::Exact(want) => want == got,
            Self::Unordered(want) => {
                let (mut w, mut g) = (want.clone(), got.to_vec());
                w.sort();
                g.sort();
                w == g
            }
            Self::OneOf(alts) => alts.iter().any(|w| w == got),
            Self::Prefix(want) => got.starts_with(want),
            Self::Count(n) => got.len() == *n,
        };
        if ok {
            return Ok(());
        }
        let shown = |v: &[String]| {
            if v.is_empty() {
                "\n        (none)".to_owned()
            } else {
                v.iter().map(|l| format!("\n        {l}")).collect()
            }
        };
        let want = match self {
            Self::Any => unreachable!("Any always matches"),
            Self::Exact(w) => format!("exactly, in order:{}", shown(w)),
            Self::Unordered(w) => format!("exactly, any order:{}", shown(w)),
            Self::OneOf(alts) => {
                alts.iter().map(|w| format!("\n      one of:{}", shown(w))).collect::<String>()
            }
            Self::Prefix(w) => format!("starting with:{}", shown(w)),
            Self::Count(n) => format!("{n} records"),
        };
        let mut diff = String::new();
        if let Self::Exact(w) | Self::Unordered(w) | Self::Prefix(w) = self {
            diff.extend(w.iter().filter(|l| !got.contains(l)).map(|l| format!("\n        - {l}")));
            if !matches!(self, Self::Prefix(_)) {
                diff.extend(got.iter().filter(|l| !w.contains(l)).map(|l| format!("\n        + {l}")));
            }
            if diff.is_empty() {
                diff = "\n        (same records, different order or multiplicity)".to_owned();
            }
            diff = format!("\n      diff (- missing, + unexpected):{diff}");
        }
        Err(format!("\n      want {want}{diff}\n      got:{}", shown(got)))
    }
}

// ----- fixtures ------------------------------------------------------------------------------

/// One registration of a scenario's fixture.
enum Fixture {
    /// `PUT /v1/catalog/register`; the node is deregistered after the scenario.
    Catalog(Value),
    /// `PUT /v1/agent/service/register` on the agent's own node; deregistered by `ID` after.
    AgentService(Value),
}

fn reg(body: Value) -> Fixture {
    Fixture::Catalog(body)
}

/// `n` nodes `<prefix><i>` at `addr(i)`, each running `service`.
fn fleet(prefix: &str, n: usize, addr: impl Fn(usize) -> String, service: &Value) -> Vec<Fixture> {
    (0..n)
        .map(|i| reg(json!({"Node": format!("{prefix}{i}"), "Address": addr(i), "Service": service})))
        .collect()
}

/// Consul's `perfectlyRandomChoices(n, 0.5)` made deterministic: odd instances get IPv6.
fn half_v6(i: usize) -> String {
    if i % 2 == 1 { format!("fe80::{}", i + 1) } else { format!("127.0.0.{}", i + 1) }
}

// ----- one agent and its results -------------------------------------------------------------

/// One agent configuration: the running agent, its config file and every failure seen.
struct Group {
    /// For messages: which configuration this is.
    name: String,
    /// `None` when the agent did not start (every row is then reported as not run).
    agent: Option<Agent>,
    /// The agent's node name (Consul's `node_name`).
    node: String,
    /// Holds `agent.json`; rewritten by [`Group::reload`].
    dir: tempfile::TempDir,
    /// Whether recursors are configured, which sets RA on every reply (spec §2.1).
    ra: bool,
    failures: Vec<String>,
    /// Questions asked (one per row, question and transport).
    asked: usize,
}

/// What a finished group hands back: its failures and how many questions were asked.
type Outcome = (Vec<String>, usize);

static NEXT_ID: AtomicU16 = AtomicU16::new(0x5eed);

impl Group {
    /// Starts `cairn agent --dev` with `config` as its (Consul JSON) config file.
    fn start(name: &str, config: Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.json");
        std::fs::write(&path, config.to_string()).unwrap();
        let node = config["node_name"].as_str().unwrap_or("node1").to_owned();
        let ra = config["recursors"].as_array().is_some_and(|r| !r.is_empty());
        let mut g =
            Self { name: name.to_owned(), agent: None, node, dir, ra, failures: Vec::new(), asked: 0 };
        match Agent::try_start(&["--dev", "--node", &g.node.clone(), "--config-file", path.to_str().unwrap()])
        {
            Ok(agent) => g.agent = Some(agent),
            Err(e) => g.failures.push(format!("[{name}] agent did not start with {config}: {e}")),
        }
        g
    }

    /// Registers `fixture`, asks `cases`, deregisters the fixture.
    fn scenario(&mut self, consul_test: &'static str, fixture: Vec<Fixture>, cases: Vec<Case>) {
        let cleanup = self.register(consul_test, &fixture);
        self.run(consul_test, cases);
        self.deregister(consul_test, cleanup);
    }

    /// Registers a fixture; failures are recorded against the Consul test. Returns what to
    /// deregister afterwards: node names and agent service IDs.
    fn register(&mut self, consul_test: &str, fixture: &[Fixture]) -> (Vec<String>, Vec<String>) {
        let Some(agent) = &self.agent else { return (Vec::new(), Vec::new()) };
        let (mut nodes, mut services, mut catalog) = (Vec::new(), Vec::new(), Vec::new());
        for f in fixture {
            match f {
                Fixture::Catalog(body) => {
                    let node = body["Node"].as_str().unwrap().to_owned();
                    if !nodes.contains(&node) {
                        nodes.push(node);
                    }
                    catalog.push(body.to_string());
                }
                Fixture::AgentService(body) => {
                    let (status, text) = agent.put("/v1/agent/service/register", &body.to_string());
                    if status != 200 {
                        self.failures.push(format!(
                            "[{}] {consul_test}: setup: PUT /v1/agent/service/register {body} -> {status} {text}",
                            self.name
                        ));
                    }
                    services.push(body["ID"].as_str().unwrap().to_owned());
                }
            }
        }
        let bodies = catalog.clone();
        for (body, (status, text)) in bodies.iter().zip(agent.put_many("/v1/catalog/register", catalog)) {
            if status != 200 {
                self.failures.push(format!(
                    "[{}] {consul_test}: setup: PUT /v1/catalog/register {body} -> {status} {}",
                    self.name,
                    text.trim()
                ));
            }
        }
        (nodes, services)
    }

    /// Removes a scenario's fixture and checks only the agent's own node and `consul` remain.
    fn deregister(&mut self, consul_test: &str, (nodes, services): (Vec<String>, Vec<String>)) {
        let Some(agent) = &self.agent else { return };
        for id in services {
            let (status, text) = agent.put(&format!("/v1/agent/service/deregister/{id}"), "");
            if status != 200 {
                self.failures
                    .push(format!("[{}] {consul_test}: cleanup of service {id}: {status} {text}", self.name));
            }
        }
        let bodies = nodes.iter().map(|n| json!({"Node": n}).to_string()).collect();
        for (node, (status, text)) in nodes.iter().zip(agent.put_many("/v1/catalog/deregister", bodies)) {
            if status != 200 {
                self.failures
                    .push(format!("[{}] {consul_test}: cleanup of node {node}: {status} {text}", self.name));
            }
        }
        let (_, left) = agent.get("/v1/catalog/nodes").unwrap();
        let left: Vec<&str> = left
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["Node"].as_str()).collect())
            .unwrap_or_default();
        if left != [self.node.as_str()] {
            self.failures.push(format!("[{}] {consul_test}: cleanup left nodes {left:?}", self.name));
        }
    }

    /// Asks every case over its transports and records each mismatch.
    fn run(&mut self, consul_test: &str, cases: Vec<Case>) {
        for case in &cases {
            for &proto in case.over {
                self.asked += 1;
                let what = format!(
                    "row {} ({consul_test}) [{}] {} {} over {proto:?}{}",
                    case.row,
                    self.name,
                    case.qname,
                    case.qtype,
                    case.edns.map_or(String::new(), |e| format!(" with EDNS {}", e.size)),
                );
                let problems = match &self.agent {
                    None => vec!["not run: the agent did not start".to_owned()],
                    Some(agent) => match exchange(agent.dns, &request(case), proto, case.timeout) {
                        Err(e) => vec![e],
                        Ok(reply) => self.problems(case, &reply),
                    },
                };
                if !problems.is_empty() {
                    self.failures.push(format!("{what}:\n    {}", problems.join("\n    ")));
                }
            }
        }
    }

    /// Everything about `reply` that differs from `case`.
    fn problems(&self, case: &Case, reply: &Reply) -> Vec<String> {
        let m = &reply.msg;
        let mut p = Vec::new();
        let mut flag = |name: &str, got: bool, want: bool| {
            if got != want {
                p.push(format!("{name}={} (want {})", u8::from(got), u8::from(want)));
            }
        };
        flag("QR", m.metadata.message_type == MessageType::Response, true);
        flag("AA", m.metadata.authoritative, case.aa);
        flag("RA", m.metadata.recursion_available, case.ra.unwrap_or(self.ra));
        flag("RD", m.metadata.recursion_desired, true);
        if let Some(tc) = case.tc {
            flag("TC", m.metadata.truncation, tc);
        }
        if m.metadata.response_code != case.rcode {
            p.push(format!("rcode {} (want {})", m.metadata.response_code, case.rcode));
        }
        let question: Vec<String> = m
            .queries
            .iter()
            .map(|q| format!("{} {} {}", q.name(), q.query_class(), q.query_type()))
            .collect();
        if question != [format!("{} IN {}", case.qname, case.qtype)] {
            p.push(format!("question not echoed as sent: {question:?}"));
        }
        for (name, section, records) in [
            ("answer", &case.answer, &m.answers),
            ("authority", &case.authority, &m.authorities),
            ("additional", &case.additional, &m.additionals),
        ] {
            if let Err(e) = section.check(&dig(records)) {
                p.push(format!("{name} section:{e}"));
            }
        }
        if case.echo_edns
            && let Some(sent) = case.edns
        {
            p.extend(edns_problems(sent, m));
        }
        for probe in &case.probes {
            if let Err(e) = probe(reply) {
                p.push(e);
            }
        }
        p
    }

    /// Rewrites the config file with `config` and sends SIGHUP.
    fn reload(&self, config: &Value) {
        std::fs::write(self.dir.path().join("agent.json"), config.to_string()).unwrap();
        if let Some(agent) = &self.agent {
            agent.signal("HUP");
        }
    }

    /// Polls a question over UDP until `ready` holds for the reply or 10 s pass; the rows asked
    /// afterwards report any difference.
    fn wait_for(&self, qname: &str, qtype: RecordType, ready: impl Fn(&Message) -> bool) {
        let Some(agent) = &self.agent else { return };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let probe = ask("-", qname, qtype);
            if exchange(agent.dns, &request(&probe), Proto::Udp, probe.timeout).is_ok_and(|r| ready(&r.msg)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(self) -> Outcome {
        (self.failures, self.asked)
    }
}

/// Fails the test with every failure of every group, if there are any.
fn report(outcomes: impl IntoIterator<Item = Outcome>) {
    let (mut failures, mut asked) = (Vec::new(), 0);
    for (f, n) in outcomes {
        failures.extend(f);
        asked += n;
    }
    assert!(
        failures.is_empty(),
        "{} failure(s) in {asked} questions:\n\n{}\n",
        failures.len(),
        failures.join("\n\n")
    );
}

fn request(case: &Case) -> Message {
    let mut msg = Message::query();
    msg.metadata.id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(&case.qname).expect("question name"), case.qtype));
    if let Some(e) = case.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(e.size);
        edns.set_dnssec_ok(e.dnssec_ok);
        if let Some((ip, prefix)) = e.ecs {
            edns.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(ip, prefix, 0)));
        }
        msg.set_edns(edns);
    }
    msg
}

/// The reply's OPT must echo the client's UDP size, without DO (spec §2.12), and its ECS option
/// with the same family, address and source prefix and scope 0 (spec §2.13).
fn edns_problems(sent: EdnsOpt, m: &Message) -> Vec<String> {
    let Some(e) = &m.edns else { return vec!["no OPT record in the reply".to_owned()] };
    let mut p = Vec::new();
    if e.max_payload() != sent.size {
        p.push(format!("OPT UDP size {} (want the client's {})", e.max_payload(), sent.size));
    }
    if e.flags().dnssec_ok {
        p.push("OPT has DO set (Consul does not echo DO)".to_owned());
    }
    if let Some((ip, prefix)) = sent.ecs {
        match e.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => {
                if (s.addr(), s.source_prefix(), s.scope_prefix()) != (ip, prefix, 0) {
                    p.push(format!(
                        "ECS {}/{} scope {} (want {ip}/{prefix} scope 0)",
                        s.addr(),
                        s.source_prefix(),
                        s.scope_prefix()
                    ));
                }
            }
            other => p.push(format!("ECS option not echoed: {other:?}")),
        }
    }
    p
}

/// Probe: a reply larger than `max` bytes must have TC set (`TestDNS_TCP_and_UDP_Truncate`).
fn fits_or_truncated(max: usize) -> impl Fn(&Reply) -> Result<(), String> {
    move |r: &Reply| {
        if r.len > max && !r.msg.metadata.truncation {
            Err(format!("{} bytes, more than the advertised {max}, without TC", r.len))
        } else {
            Ok(())
        }
    }
}

// ----- default configuration -----------------------------------------------------------------

/// Rows whose Consul test runs a plain dev agent: node, reverse, service, addr, EDNS and
/// invalid-name lookups.
#[test]
fn default_config() {
    let mut g = Group::start("default", json!({}));
    node_lookups(&mut g);
    reverse_lookups(&mut g);
    service_lookups(&mut g);
    health_and_ordering(&mut g);
    edns_and_transport(&mut g);
    addr_and_invalid_names(&mut g);
    report([g.finish()]);
}

fn node_lookups(g: &mut Group) {
    g.scenario(
        "TestDNS_NodeLookup",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "TaggedAddresses": {"wan": "127.0.0.2"}, "NodeMeta": {"key": "value"}}))],
        vec![
            ask("1", "foo.node.consul.", ANY)
                .answer(&["foo.node.consul. 0 A 127.0.0.1", r#"foo.node.consul. 0 TXT "key=value""#])
                .no_additional(),
            ask("2", "foo.node.consul.", A)
                .answer(&["foo.node.consul. 0 A 127.0.0.1"])
                .additional(&[r#"foo.node.consul. 0 TXT "key=value""#]),
            ask("3", "foo.node.dc1.consul.", ANY)
                .answer(&["foo.node.dc1.consul. 0 A 127.0.0.1", r#"foo.node.dc1.consul. 0 TXT "key=value""#])
                .no_additional(),
            ask("4", "nofoo.node.dc1.consul.", ANY).nxdomain(),
        ],
    );
    g.scenario(
        "TestDNS_NodeLookup_CaseInsensitive",
        vec![reg(json!({"Node": "Foo", "Address": "127.0.0.1"}))],
        vec![ask("5", "fOO.node.dc1.consul.", ANY).answer(&["fOO.node.dc1.consul. 0 A 127.0.0.1"])],
    );
    g.scenario(
        "TestDNS_NodeLookup_PeriodName",
        vec![reg(json!({"Node": "foo.bar", "Address": "127.0.0.1"}))],
        vec![ask("6", "foo.bar.node.consul.", ANY).answer(&["foo.bar.node.consul. 0 A 127.0.0.1"])],
    );
    g.scenario(
        "TestDNS_NodeLookup_AAAA",
        vec![reg(json!({"Node": "bar", "Address": "::4242:4242"}))],
        vec![
            ask("7", "bar.node.consul.", AAAA)
                .answer(&["bar.node.consul. 0 AAAA ::4242:4242"])
                .no_additional(),
        ],
    );
    g.scenario(
        "TestDNS_NodeLookup_TXT",
        vec![reg(json!({"Node": "google", "Address": "127.0.0.1",
            "NodeMeta": {"rfc1035-00": "value0", "key0": "value1"}}))],
        vec![ask("9", "google.node.consul.", TXT).answer_unordered(&[
            r#"google.node.consul. 0 TXT "value0""#,
            r#"google.node.consul. 0 TXT "key0=value1""#,
        ])],
    );
    g.scenario(
        "TestDNS_Lookup_TaggedIPAddresses",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1", "TaggedAddresses": {"lan_ipv6": "::1"},
            "Service": {"Service": "db", "Address": "127.0.0.2", "Port": 8080,
                "TaggedAddresses": {"lan_ipv6": {"Address": "::2", "Port": 0}}}}))],
        vec![
            ask("75", "db.service.consul.", A).answer(&["db.service.consul. 0 A 127.0.0.2"]),
            ask("75", "db.service.consul.", AAAA).answer(&["db.service.consul. 0 AAAA ::2"]),
            ask("75", "foo.node.consul.", A).answer(&["foo.node.consul. 0 A 127.0.0.1"]).no_additional(),
            ask("75", "foo.node.consul.", AAAA).answer(&["foo.node.consul. 0 AAAA ::1"]).no_additional(),
        ],
    );
    g.scenario(
        "TestDNS_Lookup_TaggedIPAddresses",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Address": "127.0.0.2", "Port": 8080}}))],
        vec![
            // A service with instances but no IPv6 address: NODATA (spec §2.2).
            ask("76", "db.service.consul.", AAAA).nodata(),
            // A node without an IPv6 address: NOERROR, empty, no SOA (spec §2.2 notes).
            ask("76", "foo.node.consul.", AAAA).empty(),
        ],
    );
}

fn reverse_lookups(g: &mut Group) {
    g.scenario(
        "TestDNS_ReverseLookup",
        vec![reg(json!({"Node": "foo2", "Address": "127.0.0.2"}))],
        vec![
            ask("14", "2.0.0.127.in-addr.arpa.", ANY)
                .answer(&["2.0.0.127.in-addr.arpa. 0 PTR foo2.node.dc1.consul."]),
        ],
    );
    let v6 = "2.4.2.4.2.4.2.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.";
    g.scenario(
        "TestDNS_ReverseLookup_IPV6",
        vec![reg(json!({"Node": "bar", "Address": "::4242:4242"}))],
        vec![ask("16", v6, ANY).answer(&[format!("{v6} 0 PTR bar.node.dc1.consul.")])],
    );
    g.scenario(
        "TestDNS_ServiceReverseLookup",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Tags": ["primary"], "Port": 12345, "Address": "127.0.0.2"}}))],
        vec![
            ask("17", "2.0.0.127.in-addr.arpa.", ANY)
                .answer(&["2.0.0.127.in-addr.arpa. 0 PTR db.service.dc1.consul."]),
        ],
    );
    // The agent's own node (`node1`) also has 127.0.0.1; nodes are scanned in name order, as
    // Consul's catalog lists them, so `foo` comes first.
    g.scenario(
        "TestDNS_ServiceReverseLookupNodeAddress",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Tags": ["primary"], "Port": 12345, "Address": "127.0.0.1"}}))],
        vec![
            ask("18", "1.0.0.127.in-addr.arpa.", ANY)
                .answer(&["1.0.0.127.in-addr.arpa. 0 PTR foo.node.dc1.consul."]),
        ],
    );
    g.scenario(
        "TestDNS_ReverseLookup_NotFound",
        vec![],
        vec![ask("19", "2.0.0.127.in-addr.arpa.", ANY).nxdomain()],
    );
}

fn service_lookups(g: &mut Group) {
    let foo_db = || {
        reg(json!({"Node": "foo", "Address": "127.0.0.1",
        "Service": {"Service": "db", "Tags": ["primary"], "Port": 12345}}))
    };
    let srv_foo = |q: &str| format!("{q} 0 SRV 1 1 12345 foo.node.dc1.consul.");
    let a_foo = "foo.node.dc1.consul. 0 A 127.0.0.1";
    g.scenario(
        "TestDNS_ServiceLookup",
        vec![foo_db()],
        vec![
            ask("20", "db.service.consul.", SRV)
                .answer(&[srv_foo("db.service.consul.")])
                .additional(&[a_foo]),
            ask("22", "nodb.service.consul.", SRV).nxdomain(),
        ],
    );
    let db_agent = |id: &str, tag: &str, addr: &str| {
        Fixture::AgentService(json!({"ID": id, "Name": "db", "Tags": [tag], "Address": addr, "Port": 12345}))
    };
    let mut cases: Vec<Case> = ["_db._primary.service.dc1.consul.", "primary.db.service.dc1.consul."]
        .into_iter()
        .map(|q| {
            ask("23", q, SRV)
                .answer(&[format!("{q} 0 SRV 1 1 12345 7f000001.addr.dc1.consul.")])
                .additional_prefix(&["7f000001.addr.dc1.consul. 0 A 127.0.0.1"])
        })
        .collect();
    cases.push(ask("24", "banana._db._primary.service.dc1.consul.", SRV).nxdomain());
    g.scenario(
        "TestDNS_ServiceAddressWithTagLookup",
        vec![db_agent("db-1", "primary", "127.0.0.1"), db_agent("db-2", "secondary", "127.0.0.2")],
        cases,
    );
    g.scenario(
        "TestDNS_ServiceLookupWithInternalServiceAddress",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Address": "db.service.consul", "Port": 12345}}))],
        vec![
            ask("25", "db.service.consul.", SRV)
                .answer(&[srv_foo("db.service.consul.")])
                .additional(&[a_foo]),
        ],
    );
    let db_at = |node: &str, node_addr: &str, svc_addr: &str| {
        reg(json!({"Node": node, "Address": node_addr,
            "Service": {"Service": "db", "Port": 12345, "Address": svc_addr}}))
    };
    g.scenario(
        "TestDNS_ServiceLookupNoMultiCNAME",
        vec![db_at("foo", "198.18.0.1", "foo.node.consul"), db_at("bar", "198.18.0.2", "bar.node.consul")],
        vec![ask("26", "db.service.consul.", ANY).answer_one_of(&[
            &["db.service.consul. 0 CNAME foo.node.consul.", "foo.node.consul. 0 A 198.18.0.1"],
            &["db.service.consul. 0 CNAME bar.node.consul.", "bar.node.consul. 0 A 198.18.0.2"],
        ])],
    );
    g.scenario(
        "TestDNS_ServiceLookupPreferNoCNAME",
        vec![db_at("foo", "198.18.0.1", "198.18.0.1"), db_at("bar", "198.18.0.2", "bar.node.consul")],
        vec![ask("27", "db.service.consul.", ANY).answer(&["db.service.consul. 0 A 198.18.0.1"])],
    );
    g.scenario(
        "TestDNS_ServiceLookupMultiAddrNoCNAME",
        vec![
            db_at("foo", "198.18.0.1", "198.18.0.1"),
            db_at("bar", "198.18.0.2", "bar.node.consul"),
            db_at("baz", "198.18.0.3", "198.18.0.3"),
        ],
        vec![
            ask("28", "db.service.consul.", ANY).answer_unordered(&[
                "db.service.consul. 0 A 198.18.0.1",
                "db.service.consul. 0 A 198.18.0.3",
            ]),
        ],
    );
    g.scenario(
        "TestDNS_ExternalServiceLookup",
        vec![reg(
            json!({"Node": "foo", "Address": "www.google.com", "Service": {"Service": "db", "Port": 12345}}),
        )],
        vec![
            ask("29", "db.service.consul.", SRV)
                .answer(&["db.service.consul. 0 SRV 1 1 12345 www.google.com."])
                .no_additional(),
        ],
    );
    g.scenario(
        "TestDNS_ServiceLookup_ServiceAddress_A",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Tags": ["primary"], "Address": "127.0.0.2", "Port": 12345}}))],
        vec![
            ask("32", "db.service.consul.", SRV)
                .answer(&["db.service.consul. 0 SRV 1 1 12345 7f000002.addr.dc1.consul."])
                .additional(&["7f000002.addr.dc1.consul. 0 A 127.0.0.2"]),
        ],
    );
    let v6 = "2607002040050808000000000000200e.addr.dc1.consul.";
    g.scenario(
        "TestDNS_ServiceLookup_ServiceAddressIPV6",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Tags": ["primary"], "Address": "2607:20:4005:808::200e", "Port": 12345}}))],
        vec![
            ask("34", "db.service.consul.", SRV)
                .answer(&[format!("db.service.consul. 0 SRV 1 1 12345 {v6}")])
                .additional(&[format!("{v6} 0 AAAA 2607:20:4005:808::200e")]),
        ],
    );
    case_insensitive(g);
    g.scenario(
        "TestDNS_ServiceLookup_TagPeriod",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Tags": ["v1.primary"], "Port": 12345}}))],
        vec![
            ask("43", "v1.primary.db.service.consul.", SRV)
                .answer(&[srv_foo("v1.primary.db.service.consul.")])
                .additional(&[a_foo]),
            ask("43", "v1.primary2.db.service.consul.", SRV).nxdomain(),
        ],
    );
    g.scenario(
        "TestDNS_ServiceLookup_ExtraTags",
        vec![foo_db()],
        vec![ask("44", "dummy.primary.db.service.consul.", SRV).nxdomain()],
    );
    let dedup = || {
        vec![
            foo_db(),
            reg(json!({"Node": "foo", "Address": "127.0.0.1",
                "Service": {"ID": "db2", "Service": "db", "Tags": ["replica"], "Port": 12345}})),
            reg(json!({"Node": "foo", "Address": "127.0.0.1",
                "Service": {"ID": "db3", "Service": "db", "Tags": ["replica"], "Port": 12346}})),
        ]
    };
    g.scenario(
        "TestDNS_ServiceLookup_Dedup",
        dedup(),
        vec![ask("45", "db.service.consul.", ANY).answer(&["db.service.consul. 0 A 127.0.0.1"])],
    );
    g.scenario(
        "TestDNS_ServiceLookup_Dedup_SRV",
        dedup(),
        vec![
            ask("46", "db.service.consul.", SRV)
                .answer_unordered(&[
                    "db.service.consul. 0 SRV 1 1 12345 foo.node.dc1.consul.",
                    "db.service.consul. 0 SRV 1 1 12346 foo.node.dc1.consul.",
                ])
                .additional_prefix(&[a_foo]),
        ],
    );
    for (row, consul_test, tag) in [
        ("58", "TestDNS_ServiceLookup_SRV_RFC", "_primary"),
        ("59", "TestDNS_ServiceLookup_SRV_RFC_TCP_Default", "_tcp"),
    ] {
        let cases = ["service.dc1.consul.", "service.consul.", "dc1.consul.", "consul."]
            .into_iter()
            .map(|rest| {
                let q = format!("_db.{tag}.{rest}");
                ask(row, q.clone(), SRV).answer(&[srv_foo(&q)]).additional(&[a_foo])
            })
            .collect();
        g.scenario(consul_test, vec![foo_db()], cases);
    }
    let port = |q: &str, port: u16| {
        ask("63", q, SRV).answer(&[format!("{q} 0 SRV 1 1 {port} foo.node.dc1.consul.")]).additional(&[a_foo])
    };
    g.scenario(
        "TestDNS_ServiceLookup_MultiPort_SRV",
        vec![
            reg(json!({"Node": "foo", "Address": "127.0.0.1", "Service": {"Service": "multiport",
                "Ports": [{"Name": "http", "Port": 8080, "Default": true}, {"Name": "metrics", "Port": 9090}]}})),
            reg(json!({"Node": "foo", "Address": "127.0.0.1", "Service": {"Service": "singleport", "Port": 8080}})),
        ],
        vec![
            port("_multiport._tcp.service.consul.", 8080),
            port("_multiport._tcp.service.http.port.consul.", 8080),
            port("_multiport._tcp.service.metrics.port.consul.", 9090),
            ask("63", "_multiport._tcp.service.unknown.port.consul.", SRV).nxdomain(),
            port("_multiport._tcp.service.dc1.dc.http.port.consul.", 8080),
            ask("63", "_singleport._tcp.service.http.port.consul.", SRV).nxdomain(),
        ],
    );
    g.scenario(
        "TestDNS_NonExistentLookupEmptyAorAAAA",
        vec![
            reg(json!({"Node": "foov6", "Address": "fe80::1", "Service": {"Service": "webv6", "Port": 8000}})),
            reg(json!({"Node": "foov4", "Address": "127.0.0.1", "Service": {"Service": "webv4", "Port": 8000}})),
        ],
        vec![ask("88", "webv4.service.consul.", AAAA).nodata(), ask("88", "webv6.service.consul.", A).nodata()],
    );
}

/// `TestDNS_ServiceLookup_CaseInsensitive` (row 42) without its prepared-query questions.
fn case_insensitive(g: &mut Group) {
    let questions = [
        "primary.Db.service.consul.",
        "primary.db.service.consul.",
        "pRIMARY.dB.service.consul.",
        "PRIMARY.dB.service.consul.",
        "db.service.consul.",
        "DB.service.consul.",
        "Db.service.consul.",
    ];
    g.scenario(
        "TestDNS_ServiceLookup_CaseInsensitive",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "Db", "Tags": ["Primary"], "Port": 12345}}))],
        questions
            .into_iter()
            .map(|q| {
                ask("42", q, SRV)
                    .answer(&[format!("{q} 0 SRV 1 1 12345 foo.node.dc1.consul.")])
                    .additional(&["foo.node.dc1.consul. 0 A 127.0.0.1"])
            })
            .collect(),
    );
}

fn health_and_ordering(g: &mut Group) {
    let db = json!({"Service": "db", "Tags": ["primary"], "Port": 12345});
    let serf = |status: &str| json!({"CheckID": "serf", "Name": "serf", "Status": status});
    let db_check = |status: &str| json!({"CheckID": "db", "Name": "db", "ServiceID": "db", "Status": status});
    g.scenario(
        "TestDNS_ServiceLookup_FilterCritical",
        vec![
            reg(json!({"Node": "foo", "Address": "127.0.0.1", "Service": db, "Check": serf("critical")})),
            reg(json!({"Node": "bar", "Address": "127.0.0.2", "Service": db,
                "Checks": [serf("critical"), db_check("critical")]})),
            reg(json!({"Node": "baz", "Address": "127.0.0.3", "Service": db})),
            reg(json!({"Node": "quux", "Address": "127.0.0.4", "Service": db, "Check": db_check("warning")})),
        ],
        vec![
            ask("47", "db.service.consul.", ANY)
                .answer_unordered(&["db.service.consul. 0 A 127.0.0.3", "db.service.consul. 0 A 127.0.0.4"]),
        ],
    );
    g.scenario(
        "TestDNS_ServiceLookup_OnlyFailing",
        vec![
            reg(json!({"Node": "foo", "Address": "127.0.0.1", "Service": db, "Check": serf("critical")})),
            reg(json!({"Node": "bar", "Address": "127.0.0.2", "Service": db,
                "Checks": [serf("critical"), db_check("critical")]})),
        ],
        // Quirk §2.18.5: every instance filtered out is NXDOMAIN, not NODATA.
        vec![ask("48", "db.service.consul.", ANY).nxdomain()],
    );
    // Row 50: 96 instances, plain UDP: each reply holds exactly udp_answer_limit (3) answers, the
    // order changes between queries, and (quirk §2.18.8) no TC bit without enable_truncate.
    let web = json!({"Service": "web", "Port": 8000});
    let fixture = fleet("foo", 96, |i| format!("127.0.0.{}", i + 1), &web);
    let cleanup = g.register("TestDNS_ServiceLookup_Randomize", &fixture);
    let cases: Vec<Case> =
        (0..10).map(|_| ask("50", "web.service.consul.", ANY).udp_only().answer_count(3)).collect();
    g.run("TestDNS_ServiceLookup_Randomize", cases);
    if let Some(agent) = &g.agent {
        let mut orders = std::collections::HashSet::new();
        for _ in 0..10 {
            let q = ask("50", "web.service.consul.", ANY);
            if let Ok(r) = exchange(agent.dns, &request(&q), Proto::Udp, q.timeout) {
                orders.insert(dig(&r.msg.answers));
            }
        }
        if orders.len() < 2 {
            g.failures.push(format!(
                "row 50 (TestDNS_ServiceLookup_Randomize) [default] web.service.consul. ANY over Udp: \
                 {} distinct answer orders in 10 queries (want at least 2): {orders:?}",
                orders.len()
            ));
        }
    }
    g.deregister("TestDNS_ServiceLookup_Randomize", cleanup);
}

fn edns_and_transport(g: &mut Group) {
    g.scenario(
        "TestDNS_Over_TCP",
        vec![reg(json!({"Node": "Foo", "Address": "127.0.0.1"}))],
        vec![
            ask("66", "foo.node.dc1.consul.", ANY).tcp_only().answer(&["foo.node.dc1.consul. 0 A 127.0.0.1"]),
        ],
    );
    g.scenario(
        "TestDNS_EDNS0",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.2"}))],
        vec![
            ask("67", "foo.node.dc1.consul.", ANY)
                .edns(12345)
                .echo_edns()
                .answer(&["foo.node.dc1.consul. 0 A 127.0.0.2"]),
        ],
    );
    g.scenario(
        "TestDNS_EDNS0_ECS",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Tags": ["primary"], "Port": 12345}}))],
        vec![
            ask("68a", "db.service.consul.", A)
                .edns(12345)
                .ecs("198.18.0.1", 32)
                .echo_edns()
                .answer(&["db.service.consul. 0 A 127.0.0.1"]),
        ],
    );
}

fn addr_and_invalid_names(g: &mut Group) {
    g.scenario(
        "TestDNS_AddressLookup",
        vec![],
        vec![
            ask("83", "7f000001.addr.dc1.consul.", A)
                .answer(&["7f000001.addr.dc1.consul. 0 A 127.0.0.1"])
                .no_additional(),
        ],
    );
    // Quirk §2.18.4: a type mismatch on .addr. is NOERROR with the address in Additional, no SOA.
    g.scenario(
        "TestDNS_AddressLookupInvalidType",
        vec![],
        vec![
            ask("84", "7f000001.addr.dc1.consul.", SRV)
                .empty()
                .additional(&["7f000001.addr.dc1.consul. 0 A 127.0.0.1"]),
        ],
    );
    let v6 = "2607002040050808000000000000200e.addr.consul.";
    g.scenario(
        "TestDNS_AddressLookupIPV6",
        vec![],
        vec![ask("85", v6, AAAA).answer(&[format!("{v6} 0 AAAA 2607:20:4005:808::200e")])],
    );
    g.scenario(
        "TestDNS_NonExistentDC_Server",
        vec![],
        vec![ask("86", "consul.service.dc2.consul.", ANY).nxdomain()],
    );
    g.scenario("TestDNS_NonExistentLookup", vec![], vec![ask("87", "nonexisting.consul.", ANY).nxdomain()]);
    // Quirk §2.18.1: the apex and the bare kind labels are NXDOMAIN.
    let invalid = [
        "consul.",
        "node.consul.",
        "service.consul.",
        "query.consul.",
        "foo.node.dc1.extra.more.consul.",
        "foo.service.dc1.extra.more.consul.",
        "foo.query.dc1.extra.more.consul.",
    ];
    g.scenario(
        "TestDNS_InvalidQueries",
        vec![],
        invalid.into_iter().map(|q| ask("92", q, SRV).nxdomain()).collect(),
    );
    g.scenario("TestDNS_EmptyAltDomain", vec![], vec![ask("93", "consul.service.", A).refused()]);
}

// ----- other single configurations ----------------------------------------------------------

#[test]
fn custom_domain() {
    let mut g = Group::start("domain=custom", json!({"domain": "custom"}));
    g.scenario(
        "TestDNS_ReverseLookup_CustomDomain",
        vec![reg(json!({"Node": "foo2", "Address": "127.0.0.2"}))],
        vec![
            ask("15", "2.0.0.127.in-addr.arpa.", ANY)
                .answer(&["2.0.0.127.in-addr.arpa. 0 PTR foo2.node.dc1.custom."]),
        ],
    );
    report([g.finish()]);
}

#[test]
fn node_meta_txt_disabled() {
    let mut g = Group::start(
        "enable_additional_node_meta_txt=false",
        json!({"dns_config": {"enable_additional_node_meta_txt": false}}),
    );
    g.scenario(
        "TestDNS_NodeLookup_TXT_DontSuppress",
        vec![reg(json!({"Node": "google", "Address": "127.0.0.1",
            "NodeMeta": {"rfc1035-00": "value0", "key0": "value1"}}))],
        vec![ask("10", "google.node.consul.", TXT).answer_unordered(&[
            r#"google.node.consul. 0 TXT "value0""#,
            r#"google.node.consul. 0 TXT "key0=value1""#,
        ])],
    );
    let bar = || reg(json!({"Node": "bar", "Address": "127.0.0.1", "NodeMeta": {"key": "value"}}));
    g.scenario(
        "TestDNS_NodeLookup_ANY_DontSuppressTXT",
        vec![bar()],
        vec![
            ask("11", "bar.node.consul.", ANY)
                .answer(&["bar.node.consul. 0 A 127.0.0.1", r#"bar.node.consul. 0 TXT "key=value""#]),
        ],
    );
    g.scenario(
        "TestDNS_NodeLookup_A_SuppressTXT",
        vec![bar()],
        vec![ask("12", "bar.node.consul.", A).answer(&["bar.node.consul. 0 A 127.0.0.1"]).no_additional()],
    );
    g.scenario(
        "TestDNS_ServiceLookup_SuppressTXT",
        vec![reg(json!({"Node": "bar", "Address": "127.0.0.1", "NodeMeta": {"key": "value"},
            "Service": {"Service": "db", "Tags": ["primary"], "Port": 12345}}))],
        vec![
            ask("62", "db.service.consul.", SRV)
                .answer(&["db.service.consul. 0 SRV 1 1 12345 bar.node.dc1.consul."])
                .additional(&["bar.node.dc1.consul. 0 A 127.0.0.1"]),
        ],
    );
    report([g.finish()]);
}

#[test]
fn node_meta_txt_enabled() {
    let mut g = Group::start(
        "enable_additional_node_meta_txt=true",
        json!({"dns_config": {"enable_additional_node_meta_txt": true}}),
    );
    g.scenario(
        "TestDNS_ServiceLookup_MetaTXT",
        vec![reg(json!({"Node": "bar", "Address": "127.0.0.1", "NodeMeta": {"key": "value"},
            "Service": {"Service": "db", "Tags": ["primary"], "Port": 12345}}))],
        vec![
            ask("61", "db.service.consul.", SRV)
                .answer(&["db.service.consul. 0 SRV 1 1 12345 bar.node.dc1.consul."])
                .additional(&[
                    "bar.node.dc1.consul. 0 A 127.0.0.1",
                    r#"bar.node.dc1.consul. 0 TXT "key=value""#,
                ]),
        ],
    );
    report([g.finish()]);
}

/// Rows 30, 31, 71: `domain = "CONSUL."` and service addresses inside the domain, resolved
/// internally (spec §2.3, §2.5).
#[test]
fn uppercase_domain_and_internal_cnames() {
    let mut g = Group::start("domain=CONSUL.", json!({"domain": "CONSUL."}));
    let web =
        || reg(json!({"Node": "web", "Address": "127.0.0.1", "Service": {"Service": "web", "Port": 12345}}));
    let alias = || {
        reg(
            json!({"Node": "alias", "Address": "web.service.consul", "Service": {"Service": "alias", "Port": 12345}}),
        )
    };
    g.scenario(
        "TestDNS_ExternalServiceToConsulCNAMELookup",
        vec![web(), alias()],
        ["alias.service.consul.", "alias.service.CoNsUl."]
            .into_iter()
            .map(|q| {
                ask("30", q, SRV)
                    .answer(&[format!("{q} 0 SRV 1 1 12345 web.service.consul.")])
                    .additional(&["web.service.consul. 0 A 127.0.0.1"])
            })
            .collect(),
    );
    g.scenario(
        "TestDNS_ExternalServiceToConsulCNAMENestedLookup",
        vec![
            web(),
            alias(),
            reg(json!({"Node": "alias2", "Address": "alias.service.consul",
                "Service": {"Service": "alias2", "Port": 12345}})),
        ],
        vec![
            ask("31", "alias2.service.consul.", SRV)
                .answer(&["alias2.service.consul. 0 SRV 1 1 12345 alias.service.consul."])
                .additional(&[
                    "alias.service.consul. 0 CNAME web.service.consul.",
                    "web.service.consul. 0 A 127.0.0.1",
                ]),
        ],
    );
    g.scenario(
        "TestDNS_InifiniteRecursion",
        vec![reg(json!({"Node": "web", "Address": "web.service.consul.",
            "Service": {"Service": "web", "Port": 12345, "Address": "web.service.consul."}}))],
        vec![
            ask("71", "web.service.consul.", A)
                .answer_prefix(&["web.service.consul. 0 CNAME web.service.consul."]),
        ],
    );
    report([g.finish()]);
}

#[test]
fn alt_domain_without_trailing_dot() {
    let mut g = Group::start("alt_domain=test-domain", json!({"alt_domain": "test-domain"}));
    g.scenario(
        "TestDNS_AltDomain_ServiceLookup_ServiceAddress_A",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Tags": ["primary"], "Address": "127.0.0.2", "Port": 12345}}))],
        ["consul.", "test-domain."]
            .into_iter()
            .map(|d| {
                let target = format!("7f000002.addr.dc1.{d}");
                ask("33", format!("db.service.{d}"), SRV)
                    .answer(&[format!("db.service.{d} 0 SRV 1 1 12345 {target}")])
                    .additional(&[format!("{target} 0 A 127.0.0.2")])
            })
            .collect(),
    );
    report([g.finish()]);
}

#[test]
fn alt_domain_service() {
    let mut g = Group::start("alt_domain=test-domain.", json!({"alt_domain": "test-domain."}));
    let mut cases = Vec::new();
    for d in ["test-domain.", "consul."] {
        for q in [format!("db.service.{d}"), format!("db.service.dc1.{d}")] {
            let target = format!("test-node.node.dc1.{d}");
            cases.push(
                ask("89", q.clone(), SRV).answer(&[format!("{q} 0 SRV 1 1 12345 {target}")]).additional(&[
                    format!("{target} 0 A 127.0.0.1"),
                    format!(r#"{target} 0 TXT "key=value""#),
                ]),
            );
        }
    }
    g.scenario(
        "TestDNS_AltDomains_Service",
        vec![reg(json!({"Node": "test-node", "Address": "127.0.0.1", "NodeMeta": {"key": "value"},
            "Service": {"Service": "db", "Tags": ["primary"], "Port": 12345}}))],
        cases,
    );
    report([g.finish()]);
}

/// Row 90; also quirk §2.18.2: SOA for any name in the zone is NOERROR with data.
#[test]
fn alt_domain_soa() {
    let mut g = Group::start(
        "node_name=test-node alt_domain=test-domain.",
        json!({"node_name": "test-node", "alt_domain": "test-domain."}),
    );
    let cases = ["test-domain.", "consul."]
        .into_iter()
        .map(|d| {
            ask("90", format!("test-node.node.{d}"), SOA)
                .answer(&[soa(d)])
                .authority(&[format!("{d} 0 NS test-node.node.dc1.{d}")])
                .additional(&[format!("test-node.node.dc1.{d} 0 A 127.0.0.1")])
        })
        .collect();
    g.scenario("TestDNS_AltDomains_SOA", vec![], cases);
    report([g.finish()]);
}

#[test]
fn alt_domain_overlapping_the_domain() {
    let overlap = json!({"node_name": "test-node", "alt_domain": "test.consul."});
    let mut g = Group::start("alt_domain=test.consul.", overlap);
    let questions = [
        "test-node.node.consul.",
        "test-node.node.test.consul.",
        "test-node.node.dc1.consul.",
        "test-node.node.dc1.test.consul.",
    ];
    let cases =
        questions.into_iter().map(|q| ask("91", q, A).answer(&[format!("{q} 0 A 127.0.0.1")])).collect();
    g.scenario("TestDNS_AltDomains_Overlap", vec![], cases);
    let dc = json!({"datacenter": "dc-test", "node_name": "test-node", "alt_domain": "test.consul."});
    let mut h = Group::start("datacenter=dc-test alt_domain=test.consul.", dc);
    let questions = ["test-node.node.dc-test.consul.", "test-node.node.dc-test.test.consul."];
    let cases =
        questions.into_iter().map(|q| ask("91", q, A).answer(&[format!("{q} 0 A 127.0.0.1")])).collect();
    h.scenario("TestDNS_AltDomain_DCName_Overlap", vec![], cases);
    report([g.finish(), h.finish()]);
}

/// Rows 72-74; quirk §2.18.2: NS for a name that does not exist is NOERROR with data.
#[test]
fn ns_records() {
    let base = json!({"domain": "CONSUL.", "node_name": "server1"});
    let mut g = Group::start("domain=CONSUL. node_name=server1", base);
    g.scenario(
        "TestDNS_NSRecords",
        vec![],
        vec![
            ask("72", "something.node.consul.", NS)
                .answer(&["consul. 0 NS server1.node.dc1.consul."])
                .additional(&["server1.node.dc1.consul. 0 A 127.0.0.1"]),
        ],
    );
    let alt = json!({"domain": "CONSUL.", "node_name": "server1", "alt_domain": "test-domain."});
    let mut h = Group::start("domain=CONSUL. node_name=server1 alt_domain=test-domain.", alt);
    let cases = ["consul.", "test-domain."]
        .into_iter()
        .map(|d| {
            ask("73", format!("something.node.{d}"), NS)
                .answer(&[format!("{d} 0 NS server1.node.dc1.{d}")])
                .additional(&[format!("server1.node.dc1.{d} 0 A 127.0.0.1")])
        })
        .collect();
    h.scenario("TestDNS_AltDomain_NSRecords", vec![], cases);
    let v6 = json!({"domain": "CONSUL.", "node_name": "server1", "advertise_addr": "::1"});
    let mut k = Group::start("domain=CONSUL. node_name=server1 advertise_addr=::1", v6);
    k.scenario(
        "TestDNS_NSRecords_IPV6",
        vec![],
        vec![
            ask("74", "server1.node.dc1.consul.", NS)
                .answer(&["consul. 0 NS server1.node.dc1.consul."])
                .additional(&["server1.node.dc1.consul. 0 AAAA ::1"]),
        ],
    );
    report([g.finish(), h.finish(), k.finish()]);
}

#[test]
fn only_passing_and_its_reload() {
    let mut g = Group::start("only_passing=true", json!({"dns_config": {"only_passing": true}}));
    let db = json!({"Service": "db", "Tags": ["primary"], "Port": 12345});
    let check = |status: &str| json!({"CheckID": "db", "Name": "db", "ServiceID": "db", "Status": status});
    let fixture = vec![
        reg(json!({"Node": "foo", "Address": "127.0.0.1", "Service": db, "Check": check("passing")})),
        reg(json!({"Node": "bar", "Address": "127.0.0.2", "Service": db, "Check": check("warning")})),
        reg(json!({"Node": "baz", "Address": "127.0.0.3", "Service": db, "Check": check("critical")})),
    ];
    let test = "TestDNS_ServiceLookup_OnlyPassing";
    let cleanup = g.register(test, &fixture);
    g.run(test, vec![ask("49", "db.service.consul.", ANY).answer(&["db.service.consul. 0 A 127.0.0.1"])]);
    g.reload(&json!({"dns_config": {"only_passing": false}}));
    g.wait_for("db.service.consul.", ANY, |m| m.answers.len() == 2);
    g.run(
        test,
        vec![
            ask("49", "db.service.consul.", ANY)
                .answer_unordered(&["db.service.consul. 0 A 127.0.0.1", "db.service.consul. 0 A 127.0.0.2"]),
        ],
    );
    g.deregister(test, cleanup);
    report([g.finish()]);
}

#[test]
fn enable_truncate() {
    let mut g = Group::start("enable_truncate=true", json!({"dns_config": {"enable_truncate": true}}));
    let web = json!({"Service": "web", "Port": 8000});
    g.scenario(
        "TestDNS_ServiceLookup_Truncate",
        fleet("foo", 96, |i| format!("127.0.0.{}", i + 1), &web),
        vec![ask("51", "web.service.consul.", ANY).udp_only().tc(Some(true))],
    );
    let long = "this-is-a-very-very-very-very-very-long-name-for-a-service";
    let svc = json!({"Service": long, "Tags": ["primary"], "Port": 12345});
    g.scenario(
        "TestDNS_ServiceLookup_LargeResponses",
        fleet("foo", 4, |i| format!("127.0.0.{}", i + 1), &svc),
        vec![
            ask("52", format!("_{long}._primary.service.consul."), SRV)
                .udp_only()
                .tc(Some(true))
                .answer_count(2)
                .additional_count(2)
                .probe(|r| {
                    if r.len > 512 {
                        return Err(format!("{} bytes, more than 512", r.len));
                    }
                    let targets: Vec<String> = r
                        .msg
                        .answers
                        .iter()
                        .map(|a| match &a.data {
                            RData::SRV(s) => s.target.to_string(),
                            other => format!("not an SRV: {other}"),
                        })
                        .collect();
                    let owners: Vec<String> =
                        r.msg
                            .additionals
                            .iter()
                            .map(|x| {
                                if x.record_type() == A {
                                    x.name.to_string()
                                } else {
                                    format!("not an A: {x}")
                                }
                            })
                            .collect();
                    if targets == owners {
                        Ok(())
                    } else {
                        Err(format!("Additional {owners:?} does not match the SRV targets {targets:?}"))
                    }
                }),
        ],
    );
    report([g.finish()]);
}

/// Row 53 (`a_record_limit = udp_answer_limit = 1`, 30 instances, half IPv6, EDNS 8192 and TCP)
/// and row 54 (limit 6, 2 instances, plain 512-byte UDP).
#[test]
fn a_record_limits() {
    let svc = json!({"Service": "api-tier", "Port": 8080});
    let test = "TestDNS_ServiceLookup_ARecordLimits";
    let limits = |n: u32| json!({"node_name": "test-node", "dns_config": {"a_record_limit": n, "udp_answer_limit": n}});
    let mut g = Group::start("a_record_limit=1 udp_answer_limit=1", limits(1));
    let mut cases = Vec::new();
    for (qtype, n) in [(A, 1), (AAAA, 1), (ANY, 1), (SRV, 30)] {
        cases.push(ask("53", "api-tier.service.consul.", qtype).udp_only().edns(8192).answer_count(n));
        cases.push(ask("53", "api-tier.service.consul.", qtype).tcp_only().answer_count(n));
    }
    g.scenario(test, fleet("foo", 30, half_v6, &svc), cases);
    let mut h = Group::start("a_record_limit=6 udp_answer_limit=6", limits(6));
    let cases = [(A, 1), (AAAA, 1), (ANY, 2), (SRV, 2)]
        .into_iter()
        .map(|(qtype, n)| ask("54", "api-tier.service.consul.", qtype).udp_only().answer_count(n))
        .collect();
    h.scenario(test, fleet("foo", 2, half_v6, &svc), cases);
    report([g.finish(), h.finish()]);
}

/// Rows 55 and 56: `udp_answer_limit` 0 gives no answers to plain UDP; 30 is capped at 8.
#[test]
fn udp_answer_limits() {
    let svc = json!({"Service": "api-tier", "Port": 8080});
    let mut outcomes = Vec::new();
    for (row, limit, want) in [("55", 0, 0), ("56", 30, 8)] {
        let config = json!({"node_name": "test-node", "dns_config": {"udp_answer_limit": limit}});
        let mut g = Group::start(&format!("udp_answer_limit={limit}"), config);
        let cases = [A, AAAA, ANY]
            .into_iter()
            .map(|qtype| ask(row, "api-tier.service.consul.", qtype).udp_only().answer_count(want))
            .collect();
        g.scenario("TestDNS_ServiceLookup_AnswerLimits", fleet("foo", 96, half_v6, &svc), cases);
        outcomes.push(g.finish());
    }
    report(outcomes);
}

#[test]
fn service_ttls() {
    let ttl = json!({"dns_config": {"service_ttl": {"d*": "42s", "db": "10s", "db*": "66s", "*": "5s"}}});
    let mut g = Group::start("service_ttl", ttl);
    let services = [("db", 10), ("dblb", 66), ("dk", 42), ("api", 5)];
    let fixture = services
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            reg(json!({"Node": format!("foo{i}"), "Address": format!("127.0.0.{}", i + 1),
                "Service": {"Service": name, "Tags": ["primary"], "Port": 12345 + i}}))
        })
        .collect();
    let cases = services
        .iter()
        .enumerate()
        .map(|(i, (name, ttl))| {
            ask("57", format!("{name}.service.consul."), SRV)
                .answer(&[format!(
                    "{name}.service.consul. {ttl} SRV 1 1 {} foo{i}.node.dc1.consul.",
                    12345 + i
                )])
                .additional(&[format!("foo{i}.node.dc1.consul. {ttl} A 127.0.0.{}", i + 1)])
        })
        .collect();
    g.scenario("TestDNS_ServiceLookup_TTL", fixture, cases);
    report([g.finish()]);
}

#[test]
fn soa_settings() {
    let mut outcomes = Vec::new();
    for (soa_config, (min_ttl, expire, refresh, retry)) in [
        (json!({}), (0, 86400, 3600, 600)),
        (json!({"min_ttl": 60, "expire": 43200, "refresh": 1800, "retry": 300}), (60, 43200, 1800, 300)),
        (json!({"min_ttl": 60, "expire": 43200}), (60, 43200, 3600, 600)),
        (json!({"refresh": 1800, "retry": 300}), (0, 86400, 1800, 300)),
    ] {
        let mut g = Group::start(&format!("soa={soa_config}"), json!({"dns_config": {"soa": soa_config}}));
        let line = format!(
            "consul. {min_ttl} SOA ns.consul. hostmaster.consul. SERIAL {refresh} {retry} {expire} {min_ttl}"
        );
        g.scenario(
            "TestDNS_SOA_Settings",
            vec![],
            vec![ask("69", "nofoo.node.dc1.consul.", ANY).nxdomain_with(&line)],
        );
        outcomes.push(g.finish());
    }
    report(outcomes);
}

/// Row 42 again with `use_cache` and with the streaming backend: Consul loads these configs
/// unchanged and answers the same.
#[test]
fn case_insensitive_with_cache_and_streaming() {
    let cache = json!({"allow_stale": true, "max_stale": "3h", "use_cache": true, "cache_max_age": "3h"});
    let mut outcomes = Vec::new();
    for (name, config) in [
        ("use_cache", json!({"dns_config": cache})),
        (
            "streaming",
            json!({"rpc": {"enable_streaming": true}, "use_streaming_backend": true, "dns_config": cache}),
        ),
    ] {
        let mut g = Group::start(name, config);
        case_insensitive(&mut g);
        outcomes.push(g.finish());
    }
    report(outcomes);
}

// ----- recursors -----------------------------------------------------------------------------

/// The canned upstream of Consul's CNAME tests: `www.google.com. CNAME google.com.` and
/// `google.com. A 1.2.3.4`. Upstream TTLs are 300 so that the rows can tell "copied" (node
/// lookups, spec §2.5) from "forced to the service TTL" (service lookups, spec §2.3, §2.5).
fn google(with_txt: bool) -> Upstream {
    let mut records =
        vec![rr("www.google.com.", 300, cname("google.com.")), rr("google.com.", 300, a("1.2.3.4"))];
    if with_txt {
        records.push(rr("google.com.", 300, txt("my_txt_value")));
    }
    Upstream::Answer(records)
}

#[test]
fn node_cname_through_recursor() {
    let upstream = FakeRecursor::start(google(true));
    let mut g = Group::start("recursors=[cname+a+txt]", json!({"recursors": [upstream.addr()]}));
    g.scenario(
        "TestDNS_NodeLookup_CNAME",
        vec![reg(json!({"Node": "google", "Address": "www.google.com"}))],
        vec![
            ask("8", "google.node.consul.", ANY)
                .edns(8192)
                .echo_edns()
                .answer(&[
                    "google.node.consul. 0 CNAME www.google.com.",
                    "www.google.com. 300 CNAME google.com.",
                    "google.com. 300 A 1.2.3.4",
                    r#"google.com. 300 TXT "my_txt_value""#,
                ])
                .no_additional(),
        ],
    );
    report([g.finish()]);
}

#[test]
fn node_ttl_with_recursor() {
    let upstream = FakeRecursor::start(google(false));
    let mut g = Group::start(
        "recursors=[cname+a] node_ttl=10s",
        json!({"recursors": [upstream.addr()], "dns_config": {"node_ttl": "10s"}}),
    );
    g.scenario(
        "TestDNS_NodeLookup_TTL",
        vec![
            reg(json!({"Node": "foo", "Address": "127.0.0.1"})),
            reg(json!({"Node": "bar", "Address": "::4242:4242"})),
            reg(json!({"Node": "google", "Address": "www.google.com"})),
        ],
        vec![
            ask("13", "foo.node.consul.", ANY).answer(&["foo.node.consul. 10 A 127.0.0.1"]),
            ask("13", "bar.node.consul.", ANY).answer(&["bar.node.consul. 10 AAAA ::4242:4242"]),
            ask("13", "google.node.consul.", ANY).answer(&[
                "google.node.consul. 10 CNAME www.google.com.",
                "www.google.com. 300 CNAME google.com.",
                "google.com. 300 A 1.2.3.4",
            ]),
        ],
    );
    report([g.finish()]);
}

#[test]
fn service_cnames_through_recursor() {
    let upstream = FakeRecursor::start(google(false));
    let mut g = Group::start("recursors=[cname+a]", json!({"recursors": [upstream.addr()]}));
    g.scenario(
        "TestDNS_ServiceLookup_ServiceAddress_SRV",
        vec![reg(json!({"Node": "foo", "Address": "127.0.0.1",
            "Service": {"Service": "db", "Tags": ["primary"], "Address": "www.google.com", "Port": 12345}}))],
        vec![
            ask("35", "db.service.consul.", SRV)
                .answer(&["db.service.consul. 0 SRV 1 1 12345 www.google.com."])
                .additional(&["www.google.com. 0 CNAME google.com.", "google.com. 0 A 1.2.3.4"]),
        ],
    );
    let chain = [
        "search.service.consul. 0 CNAME www.google.com.",
        "www.google.com. 0 CNAME google.com.",
        "google.com. 0 A 1.2.3.4",
    ];
    g.scenario(
        "TestDNS_ServiceLookup_CNAME",
        vec![reg(json!({"Node": "google", "Address": "www.google.com", "Service": {"Service": "search", "Port": 80}}))],
        vec![ask("36", "search.service.consul.", ANY).answer(&chain)],
    );
    g.scenario(
        "TestDNS_ServiceLookup_ServiceAddress_CNAME",
        vec![reg(json!({"Node": "google", "Address": "1.2.3.4",
            "Service": {"Service": "search", "Port": 80, "Address": "www.google.com"}}))],
        vec![ask("37", "search.service.consul.", ANY).answer(&chain)],
    );
    report([g.finish()]);
}

/// Rows 78-82: names outside the domain are forwarded over the client's transport (spec §2.15).
#[test]
fn recursors() {
    let mut outcomes = Vec::new();

    let apple = FakeRecursor::start(Upstream::Answer(vec![rr("apple.com.", 300, a("1.2.3.4"))]));
    let mut g = Group::start("recursors=[apple]", json!({"recursors": [apple.addr()]}));
    g.scenario(
        "TestDNS_Recurse",
        vec![],
        vec![ask("78", "apple.com.", ANY).forwarded().answer(&["apple.com. 300 A 1.2.3.4"])],
    );
    let seen = apple.received();
    for proto in [Proto::Udp, Proto::Tcp] {
        if !seen.contains(&(proto, "apple.com.".to_owned(), ANY)) {
            g.failures.push(format!(
                "row 78 (TestDNS_Recurse) apple.com. ANY over {proto:?}: the recursor never saw it over {proto:?} \
                 (spec §2.15: same transport as the client); it saw {seen:?}"
            ));
        }
    }
    outcomes.push(g.finish());

    let truncating = FakeRecursor::start(Upstream::Truncated(vec![rr("apple.com.", 300, a("1.2.3.4"))]));
    let mut g = Group::start("recursors=[truncating]", json!({"recursors": [truncating.addr()]}));
    g.scenario(
        "TestDNS_Recurse_Truncation",
        vec![],
        vec![ask("79", "apple.com.", ANY).forwarded().tc(Some(true)).answer(&["apple.com. 300 A 1.2.3.4"])],
    );
    outcomes.push(g.finish());

    let silent = FakeRecursor::start(Upstream::Silent);
    let config = json!({"recursors": [silent.addr()], "dns_config": {"recursor_timeout": "3s"}});
    let mut g = Group::start("recursors=[silent] recursor_timeout=3s", config);
    g.scenario(
        "TestDNS_RecursorTimeout",
        vec![],
        vec![ask("80", "apple.com.", ANY).timeout(Duration::from_secs(10)).servfail().probe(|r| {
            if r.elapsed >= Duration::from_secs(3) {
                Ok(())
            } else {
                Err(format!("SERVFAIL after {:?}, before the 3s recursor_timeout", r.elapsed))
            }
        })],
    );
    outcomes.push(g.finish());

    let failing = FakeRecursor::start(Upstream::Rcode(ResponseCode::ServFail));
    let good = FakeRecursor::start(Upstream::Answer(vec![rr("www.google.com.", 0, a("172.21.45.67"))]));
    let mut g =
        Group::start("recursors=[servfail, good]", json!({"recursors": [failing.addr(), good.addr()]}));
    g.scenario(
        "TestDNS_CycleRecursorCheck",
        vec![],
        vec![ask("81", "google.com.", A).forwarded().answer(&["www.google.com. 0 A 172.21.45.67"])],
    );
    outcomes.push(g.finish());

    let refusing: Vec<FakeRecursor> =
        (0..3).map(|_| FakeRecursor::start(Upstream::Rcode(ResponseCode::Refused))).collect();
    let addrs: Vec<String> = refusing.iter().map(FakeRecursor::addr).collect();
    let mut g = Group::start("recursors=[refused x3]", json!({"recursors": addrs}));
    g.scenario("TestDNS_CycleRecursorCheckAllFail", vec![], vec![ask("82", "google.com.", A).servfail()]);
    for (i, r) in refusing.iter().enumerate() {
        let n = r.received().len();
        if n != 2 {
            g.failures.push(format!(
                "row 82 (TestDNS_CycleRecursorCheckAllFail): recursor {i} was asked {n} times for 2 client queries \
                 (each recursor is tried once per query)"
            ));
        }
    }
    outcomes.push(g.finish());

    report(outcomes);
}

// ----- sizes and compression ----------------------------------------------------------------

/// Row 94: with `enable_truncate`, no reply is larger than the size the client advertised
/// unless TC is set; 1 instance and 5001 instances, UDP with EDNS 8192, TCP with 8192 and 65535.
#[test]
fn tcp_and_udp_truncate() {
    let mut g = Group::start("enable_truncate=true", json!({"dns_config": {"enable_truncate": true}}));
    let mut fixture = vec![reg(json!({"Node": "normal-1.acme.com", "Address": "127.0.0.1",
        "Service": {"Service": "normal", "Port": 8000}}))];
    fixture.extend((1..5002).map(|j| {
        reg(json!({"Node": format!("truncated-{j}.acme.com"), "Address": format!("127.0.{}.{}", j / 255, j % 255),
            "Service": {"Service": "truncated", "Port": 8000}}))
    }));
    let mut cases = Vec::new();
    for svc in ["normal", "truncated"] {
        let q = format!("{svc}.service.consul.");
        for (proto, size) in [(Proto::Udp, 8192), (Proto::Tcp, 8192), (Proto::Tcp, 65535)] {
            let c = ask("94", q.clone(), ANY).edns(size).tc(None).probe(fits_or_truncated(usize::from(size)));
            cases.push(if proto == Proto::Udp { c.udp_only() } else { c.tcp_only() });
        }
    }
    g.scenario("TestDNS_TCP_and_UDP_Truncate", fixture, cases);
    report([g.finish()]);
}

/// Row 96: the same question gets a strictly smaller reply with compression on (the default)
/// than with `disable_compression = true`, for a service, a PTR and a forwarded reply.
#[test]
fn compression() {
    let apple = FakeRecursor::start(Upstream::Answer(vec![rr("apple.com.", 0, a("1.2.3.4"))]));
    let mut on = Group::start("compression on", json!({"recursors": [apple.addr()]}));
    let mut off = Group::start(
        "disable_compression=true",
        json!({"recursors": [apple.addr()], "dns_config": {"disable_compression": true}}),
    );
    let fixture = || {
        vec![
            reg(json!({"Node": "foo", "Address": "127.0.0.1",
                "Service": {"Service": "db", "Tags": ["primary"], "Port": 12345}})),
            reg(json!({"Node": "foo2", "Address": "127.0.0.2"})),
        ]
    };
    let on_cleanup = on.register("TestDNS_Compression_Query", &fixture());
    let off_cleanup = off.register("TestDNS_Compression_Query", &fixture());
    let mut failures = Vec::new();
    for (consul_test, qname, qtype) in [
        ("TestDNS_Compression_Query", "db.service.consul.", SRV),
        ("TestDNS_Compression_ReverseLookup", "2.0.0.127.in-addr.arpa.", ANY),
        ("TestDNS_Compression_Recurse", "apple.com.", ANY),
    ] {
        for proto in [Proto::Udp, Proto::Tcp] {
            let q = ask("96", qname, qtype);
            let size = |g: &Group| {
                let agent = g.agent.as_ref().ok_or_else(|| "agent did not start".to_owned())?;
                exchange(agent.dns, &request(&q), proto, q.timeout).map(|r| r.len)
            };
            match (size(&on), size(&off)) {
                (Ok(c), Ok(u)) if c < u => {}
                (c, u) => failures.push(format!(
                    "row 96 ({consul_test}) {qname} {qtype} over {proto:?}: compressed {c:?} bytes, \
                     uncompressed {u:?} bytes (want compressed < uncompressed)"
                )),
            }
        }
    }
    on.deregister("TestDNS_Compression_Query", on_cleanup);
    off.deregister("TestDNS_Compression_Query", off_cleanup);
    report([on.finish(), off.finish(), (failures, 6)]);
}
