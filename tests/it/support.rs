//! Test support: agent processes on free ports, a DNS client over UDP/TCP, an HTTP client.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde_json::Value;

/// The binary under test.
pub(crate) fn cairn_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn"))
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
        let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        for flag in ["--http-port", "--dns-port", "--server-port", "--serf-lan-port"] {
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
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut dns, mut http) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        while dns.is_none() || http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                panic!("agent did not start: {}", std::fs::read_to_string(&stderr_log).unwrap_or_default());
            };
            if let Some(a) = line.trim().strip_prefix("DNS: ") {
                dns = Some(a.split(' ').next().unwrap().parse().unwrap());
            }
            if let Some(a) = line.trim().strip_prefix("HTTP: ") {
                http = Some(a.parse().unwrap());
            }
        }
        let agent = Self {
            child: Some(child),
            dns: dns.unwrap(),
            http: http.unwrap(),
            stderr_log,
            _log_dir: log_dir,
        };
        agent.wait_ready();
        agent
    }

    fn wait_ready(&self) {
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
            let r =
                reqwest::Client::new().get(self.url(path)).timeout(Duration::from_secs(700)).send().await?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            Ok((status, headers, r.text().await?))
        })
    }

    /// PUT with a JSON (or raw) body; returns (status, body text).
    pub(crate) fn put(&self, path: &str, body: &str) -> (u16, String) {
        block(async {
            let r = reqwest::Client::new().put(self.url(path)).body(body.to_owned()).send().await.unwrap();
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

fn block<F: Future>(f: F) -> F::Output {
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
