//! Test support: agent processes on free ports, a DNS client over UDP/TCP, an HTTP client, and a
//! fake upstream DNS server (`FakeRecursor`) for recursor and CNAME-chain tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::Value;

/// The binary under test: `$CAIRN_BIN` if set, else the one cargo built for this test run.
///
/// With a `CARGO_TARGET_DIR` shared between worktrees, `target/debug/cairn` is whichever
/// worktree built last; `CAIRN_BIN` pins a copy of the intended build.
pub(crate) fn cairn_bin() -> PathBuf {
    std::env::var_os("CAIRN_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cairn")), PathBuf::from)
}

/// A running agent process; killed on drop.
pub(crate) struct Agent {
    child: Option<Child>,
    pub(crate) dns: SocketAddr,
    pub(crate) http: SocketAddr,
    stderr_log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Agent {
    /// `cairn agent --dev` on free ports with `extra` flags.
    pub(crate) fn dev(extra: &[&str]) -> Self {
        let mut args = vec!["--dev", "--node", "node1"];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// A single server with its data in `dir` (survives restarts).
    pub(crate) fn server(dir: &Path, extra: &[&str]) -> Self {
        let d = dir.to_str().unwrap().to_owned();
        let mut args = vec!["--server", "--bootstrap-expect", "1", "--node", "node1", "--data-dir", &d];
        args.extend_from_slice(extra);
        Self::start(&args)
    }

    /// Starts `cairn agent ARGS --http-port 0 --dns-port 0 --server-port 0` and waits until ready.
    pub(crate) fn start(args: &[&str]) -> Self {
        Self::start_in(None, args)
    }

    /// `cairn agent --dev` on free ports with `extra` flags, run from the directory `cwd`
    /// (`--dev` serves `./zones` when it exists).
    pub(crate) fn dev_in(cwd: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--dev", "--node", "node1"];
        args.extend_from_slice(extra);
        Self::start_in(Some(cwd), &args)
    }

    /// Like [`Agent::start`], from the working directory `cwd`; by default a fresh empty one,
    /// so an agent never picks up files (such as `zones/`) from the repository root.
    pub(crate) fn start_in(cwd: Option<&Path>, args: &[&str]) -> Self {
        Self::try_start_in(cwd, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Agent::start`], but a failed start (bad config, no leader) is an error, not a panic,
    /// so a table-driven test can report it as one failing row and go on.
    pub(crate) fn try_start(args: &[&str]) -> Result<Self, String> {
        Self::try_start_in(None, args)
    }

    fn try_start_in(cwd: Option<&Path>, args: &[&str]) -> Result<Self, String> {
        let agent = Self::spawn_in(cwd, args)?;
        agent.wait_ready();
        Ok(agent)
    }

    /// Starts `cairn agent ARGS` (free ports unless given) and returns once it listens, without
    /// waiting for a Raft leader (servers of a cluster are started before one can exist).
    pub(crate) fn spawn(args: &[&str]) -> Self {
        Self::spawn_in(None, args).unwrap_or_else(|e| panic!("{e}"))
    }

    fn spawn_in(cwd: Option<&Path>, args: &[&str]) -> Result<Self, String> {
        let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        for flag in ["--http-port", "--dns-port", "--server-port", "--serf-lan-port", "--serf-wan-port"] {
            if !args.iter().any(|a| a == flag) {
                args.push(flag.into());
                args.push("0".into());
            }
        }
        let log_dir = tempfile::tempdir().unwrap();
        let stderr_log = log_dir.path().join("agent.log");
        let mut child = Command::new(cairn_bin())
            .current_dir(cwd.unwrap_or(log_dir.path()))
            .arg("agent")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .expect("spawn cairn");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after start-up, so a later line never hits a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut dns, mut http) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while dns.is_none() || http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                return Err(format!("agent {args:?} did not start: {}", log.trim()));
            };
            if let Some(a) = line.trim().strip_prefix("DNS: ") {
                dns = Some(a.split(' ').next().unwrap().parse().unwrap());
            }
            if let Some(a) = line.trim().strip_prefix("HTTP: ") {
                http = Some(a.parse().unwrap());
            }
        }
        Ok(Self { child: Some(child), dns: dns.unwrap(), http: http.unwrap(), stderr_log, _log_dir: log_dir })
    }

    /// Waits until the agent knows a Raft leader.
    pub(crate) fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.get("/v1/status/leader")
                && r.0 == 200
                && r.1.as_str().is_some_and(|s| !s.is_empty())
            {
                return;
            }
            assert!(Instant::now() < deadline, "agent not ready: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// `kill -9`.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub(crate) fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("agent did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal to the agent process.
    pub(crate) fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg(format!("-{sig}")).arg(c.id().to_string()).status();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// GET returning (status, JSON body or Null).
    pub(crate) fn get(&self, path: &str) -> reqwest::Result<(u16, Value)> {
        let (s, _, body) = self.get_full(path)?;
        Ok((s, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// GET returning (status, headers, raw body).
    pub(crate) fn get_full(&self, path: &str) -> reqwest::Result<(u16, reqwest::header::HeaderMap, String)> {
        block(async {
            let r = http_client().get(self.url(path)).timeout(Duration::from_secs(700)).send().await?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            Ok((status, headers, r.text().await?))
        })
    }

    /// PUT with a JSON (or raw) body; returns (status, body text).
    pub(crate) fn put(&self, path: &str, body: &str) -> (u16, String) {
        block(async {
            let r = http_client().put(self.url(path)).body(body.to_owned()).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        })
    }

    /// PUT that must succeed.
    pub(crate) fn put_ok(&self, path: &str, body: &str) -> String {
        let (status, text) = self.put(path, body);
        assert_eq!(status, 200, "PUT {path} {body}: {text}");
        text
    }

    /// A DNS query over UDP (with EDNS payload `edns` if given) or TCP.
    pub(crate) fn query(&self, name: &str, rtype: RecordType, transport: Transport) -> Message {
        query(self.dns, name, rtype, transport)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The tests' HTTP client builder. reqwest is built with `rustls-no-provider` (TLS on ring, no
/// aws-lc), so a client without a preconfigured TLS backend needs ring installed as the
/// process's default provider first; every test HTTP client comes from here.
pub(crate) fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A plain test HTTP client (see `http_client_builder`).
pub(crate) fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap()
}

pub(crate) fn block<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// How a DNS query travels.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    /// UDP without EDNS (classic 512-byte limit).
    Udp,
    /// UDP with an EDNS OPT record advertising this payload size.
    UdpEdns(u16),
    /// TCP with 2-byte length framing.
    Tcp,
}

/// Sends one query and returns the parsed response.
pub(crate) fn query(server: SocketAddr, name: &str, rtype: RecordType, transport: Transport) -> Message {
    let mut msg = Message::query();
    msg.metadata.id = rand_id();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Transport::UdpEdns(size) = transport {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        msg.set_edns(edns);
    }
    let bytes = msg.to_vec().unwrap();
    let reply = match transport {
        Transport::Udp | Transport::UdpEdns(_) => {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            sock.send_to(&bytes, server).unwrap();
            let mut buf = vec![0u8; 65535];
            let (n, _) = sock.recv_from(&mut buf).expect("DNS reply over UDP");
            buf.truncate(n);
            buf
        }
        Transport::Tcp => {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(server).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            s.write_all(&framed).unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf).unwrap();
            buf
        }
    };
    let resp = Message::from_vec(&reply).unwrap();
    assert_eq!(resp.metadata.id, msg.metadata.id);
    resp
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(4242);
    NEXT.fetch_add(7, Ordering::Relaxed)
}

/// Answer records rendered `name ttl TYPE rdata`, in wire order.
pub(crate) fn rendered(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data)).collect()
}

/// SRV (port, target) pairs of an answer section, sorted.
pub(crate) fn srv_targets(msg: &Message) -> Vec<(u16, String)> {
    let mut v: Vec<(u16, String)> = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some((s.port, s.target.to_ascii())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// Polls `f` until it returns true or 10 s pass.
pub(crate) fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Agent {
    /// PUTs each body to `path` over one HTTP client, eight requests in flight at a time, and
    /// returns (status, response body) in input order. Registers thousands of nodes in seconds.
    pub(crate) fn put_many(&self, path: &str, bodies: Vec<String>) -> Vec<(u16, String)> {
        let url = self.url(path);
        let n = bodies.len();
        block(async move {
            let client = http_client();
            let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
            let mut tasks = tokio::task::JoinSet::new();
            for (i, body) in bodies.into_iter().enumerate() {
                let (client, url, slots) = (client.clone(), url.clone(), slots.clone());
                tasks.spawn(async move {
                    let _slot = slots.acquire_owned().await.unwrap();
                    match client.put(url).body(body).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            (i, status, r.text().await.unwrap_or_default())
                        }
                        Err(e) => (i, 0, e.to_string()),
                    }
                });
            }
            let mut out = vec![(0, String::new()); n];
            while let Some(done) = tasks.join_next().await {
                let (i, status, text) = done.unwrap();
                out[i] = (status, text);
            }
            out
        })
    }
}

/// The transport of one DNS exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Proto {
    /// One datagram each way.
    Udp,
    /// A connection with 2-byte length framing (RFC 1035 §4.2.2).
    Tcp,
}

/// A DNS reply as received.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The decoded message.
    pub(crate) msg: Message,
    /// Its size on the wire, in bytes.
    pub(crate) len: usize,
    /// Time from sending the request to receiving the reply.
    pub(crate) elapsed: Duration,
}

/// Sends `request` over `proto` and waits up to `timeout` for the reply carrying its ID.
/// Errors (timeout, undecodable reply) are returned, not panicked, so callers can report them.
pub(crate) fn exchange(
    server: SocketAddr,
    request: &Message,
    proto: Proto,
    timeout: Duration,
) -> Result<Reply, String> {
    use std::io::{Read, Write};
    let bytes = request.to_vec().map_err(|e| format!("encoding the request: {e}"))?;
    let started = Instant::now();
    let wire = match proto {
        Proto::Udp => {
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            sock.connect(server).map_err(|e| e.to_string())?;
            sock.send(&bytes).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 65535];
            loop {
                let left = timeout.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(format!("no UDP reply within {timeout:?}"));
                }
                sock.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
                let n = sock.recv(&mut buf).map_err(|e| format!("no UDP reply within {timeout:?}: {e}"))?;
                if buf.get(..2) == bytes.get(..2) {
                    buf.truncate(n);
                    break buf;
                }
            }
        }
        Proto::Tcp => {
            let mut s = std::net::TcpStream::connect_timeout(&server, timeout).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
            let len = u16::try_from(bytes.len()).map_err(|_| "request too long".to_owned())?;
            let mut framed = len.to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            s.write_all(&framed).map_err(|e| e.to_string())?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).map_err(|e| format!("no TCP reply within {timeout:?}: {e}"))?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf).map_err(|e| format!("truncated TCP reply: {e}"))?;
            if buf.get(..2) != bytes.get(..2) {
                return Err(format!("TCP reply with ID {:02x?}, not the request's", buf.get(..2)));
            }
            buf
        }
    };
    let elapsed = started.elapsed();
    let msg =
        Message::from_vec(&wire).map_err(|e| format!("undecodable reply ({} bytes): {e}", wire.len()))?;
    Ok(Reply { msg, len: wire.len(), elapsed })
}

/// Records one per line as `owner ttl TYPE rdata`, dig-style: TXT strings are quoted and the
/// SOA serial (Consul uses the current Unix time) is shown as `SERIAL`, so that expectations
/// can name every other field exactly.
pub(crate) fn dig(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let data = match &r.data {
                RData::TXT(t) => t
                    .txt_data
                    .iter()
                    .map(|s| format!("{:?}", String::from_utf8_lossy(s)))
                    .collect::<Vec<_>>()
                    .join(" "),
                RData::SOA(s) => format!(
                    "{} {} SERIAL {} {} {} {}",
                    s.mname, s.rname, s.refresh, s.retry, s.expire, s.minimum
                ),
                other => other.to_string(),
            };
            format!("{} {} {} {}", r.name, r.ttl, r.record_type(), data)
        })
        .collect()
}

/// A record from text parts, for canned upstream answers: `rr("google.com.", 300, a("1.2.3.4"))`.
pub(crate) fn rr(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(Name::from_ascii(owner).unwrap(), ttl, data)
}

/// `A` rdata.
pub(crate) fn a(ip: &str) -> RData {
    RData::A(hickory_proto::rr::rdata::A(ip.parse().unwrap()))
}

/// `CNAME` rdata.
pub(crate) fn cname(target: &str) -> RData {
    RData::CNAME(hickory_proto::rr::rdata::CNAME(Name::from_ascii(target).unwrap()))
}

/// `TXT` rdata with one character-string.
pub(crate) fn txt(s: &str) -> RData {
    RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![s.to_owned()]))
}

/// What a [`FakeRecursor`] sends back, whatever the question.
#[derive(Debug, Clone)]
pub(crate) enum Upstream {
    /// NOERROR with these records in the Answer section.
    Answer(Vec<Record>),
    /// NOERROR with the TC bit set and these records.
    Truncated(Vec<Record>),
    /// This RCODE and empty sections.
    Rcode(ResponseCode),
    /// Nothing: UDP queries are dropped; TCP connections stay open and quiet.
    Silent,
}

/// State shared by a [`FakeRecursor`]'s threads.
struct Upstreams {
    reply: Upstream,
    /// Every question received: transport, QNAME as sent, QTYPE.
    received: std::sync::Mutex<Vec<(Proto, String, RecordType)>>,
    /// Set on drop; the loops check it after every wake-up.
    stopping: std::sync::atomic::AtomicBool,
}

/// A fake upstream DNS server ("recursor") on a free UDP+TCP port of 127.0.0.1, answering every
/// question the same canned way; stopped on drop.
pub(crate) struct FakeRecursor {
    addr: SocketAddr,
    shared: std::sync::Arc<Upstreams>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl FakeRecursor {
    /// Starts a fake upstream that replies with `reply`.
    pub(crate) fn start(reply: Upstream) -> Self {
        let (udp, tcp) = (0..20)
            .find_map(|_| {
                let udp = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
                let tcp = std::net::TcpListener::bind(udp.local_addr().ok()?).ok()?;
                Some((udp, tcp))
            })
            .expect("a free port for UDP and TCP");
        let addr = udp.local_addr().unwrap();
        let shared = std::sync::Arc::new(Upstreams {
            reply,
            received: std::sync::Mutex::new(Vec::new()),
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        let s = shared.clone();
        let udp_loop = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while let Ok((n, peer)) = udp.recv_from(&mut buf) {
                if s.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                if let Some(out) = s.answer(&buf[..n], Proto::Udp) {
                    let _ = udp.send_to(&out, peer);
                }
            }
        });
        let s = shared.clone();
        let tcp_loop = std::thread::spawn(move || {
            for conn in tcp.incoming() {
                if s.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || s.serve_tcp(conn));
            }
        });
        Self { addr, shared, threads: vec![udp_loop, tcp_loop] }
    }

    /// `127.0.0.1:PORT`, as written in an agent's `recursors` list.
    pub(crate) fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every question received so far: transport, QNAME, QTYPE.
    pub(crate) fn received(&self) -> Vec<(Proto, String, RecordType)> {
        self.shared.received.lock().unwrap().clone()
    }
}

impl Upstreams {
    /// The reply bytes for one query, or `None` to stay silent.
    fn answer(&self, query: &[u8], proto: Proto) -> Option<Vec<u8>> {
        let req = Message::from_vec(query).ok()?;
        if let Some(q) = req.queries.first() {
            self.received.lock().unwrap().push((proto, q.name().to_string(), q.query_type()));
        }
        let mut resp = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
        resp.metadata.recursion_desired = req.metadata.recursion_desired;
        resp.metadata.recursion_available = true;
        resp.queries = req.queries.clone();
        match &self.reply {
            Upstream::Answer(records) => resp.answers = records.clone(),
            Upstream::Truncated(records) => {
                resp.metadata.truncation = true;
                resp.answers = records.clone();
            }
            Upstream::Rcode(rcode) => resp.metadata.response_code = *rcode,
            Upstream::Silent => return None,
        }
        resp.to_vec().ok()
    }

    /// Answers length-framed queries on one connection until the client closes it.
    fn serve_tcp(&self, mut conn: std::net::TcpStream) {
        use std::io::{Read, Write};
        loop {
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).is_err() || self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if conn.read_exact(&mut query).is_err() {
                return;
            }
            // Silent: no reply; the next read blocks until the client gives up and closes.
            if let Some(out) = self.answer(&query, Proto::Tcp) {
                let mut framed = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                if conn.write_all(&framed).is_err() {
                    return;
                }
            }
        }
    }
}

impl Drop for FakeRecursor {
    fn drop(&mut self) {
        self.shared.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake both blocking loops so they see the flag.
        if let Ok(s) = std::net::UdpSocket::bind("127.0.0.1:0") {
            let _ = s.send_to(&[0], self.addr);
        }
        let _ = std::net::TcpStream::connect(self.addr);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
