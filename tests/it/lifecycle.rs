//! Stopping: SIGTERM and SIGINT stop an agent within 2 s, also when the pipe its stdout and
//! stderr go to has lost its reader (a supervisor that died, `cairn agent --dev 2>&1 | head -1`).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cairn_bin;

/// How long an agent may take to exit after the signal (Consul's bound in the same setup).
const STOP_WITHIN: Duration = Duration::from_secs(2);

/// Starts `cairn agent --dev` with stdout and stderr on one pipe, reads it until the HTTP API
/// answers with a leader, then closes the pipe's only read end.
fn agent_behind_a_dead_pipe() -> Child {
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = Command::new(cairn_bin())
        .current_dir(std::env::temp_dir())
        .args(["agent", "--dev", "--node", "node1"])
        .args([
            "--http-port",
            "0",
            "--dns-port",
            "0",
            "--server-port",
            "0",
            "--serf-lan-port",
            "0",
            "--serf-wan-port",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .expect("spawn cairn");
    // The Command (and with it the parent's write ends) is gone: the agent holds the only ones.
    let mut lines = BufReader::new(reader);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut http: Option<SocketAddr> = None;
    while http.is_none() {
        assert!(Instant::now() < deadline, "agent printed no HTTP address");
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("agent closed its output before serving: {:?}", child.wait());
        }
        http = line.trim().strip_prefix("HTTP: ").map(|a| a.parse().unwrap());
    }
    let http = http.unwrap();
    // Start-up logs far less than a pipe buffer, so the agent does not block meanwhile.
    while !has_leader(http) {
        assert!(Instant::now() < deadline, "agent has no leader");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(lines);
    // Let the agent hit the closed pipe (EPIPE) before the signal as well as after it.
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// Whether `GET /v1/status/leader` names a leader.
fn has_leader(http: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect(http) else { return false };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    if conn.write_all(b"GET /v1/status/leader HTTP/1.0\r\nHost: cairn\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = conn.read_to_string(&mut response);
    response.split("\r\n").next().is_some_and(|status| status.contains(" 200 "))
        && response.rsplit("\r\n\r\n").next().is_some_and(|b| b.len() > 2)
}

/// Sends `sig` and returns how long the agent took to exit (killing it after a generous bound).
fn stop_with(mut child: Child, sig: nix::sys::signal::Signal) -> Duration {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let sent = Instant::now();
    nix::sys::signal::kill(pid, sig).unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return sent.elapsed();
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("agent still running 10 s after {sig}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_an_agent_whose_output_pipe_is_closed_within_2s() {
    let took = stop_with(agent_behind_a_dead_pipe(), nix::sys::signal::Signal::SIGTERM);
    assert!(took < STOP_WITHIN, "SIGTERM took {took:?}");
}

#[test]
fn sigint_stops_an_agent_whose_output_pipe_is_closed_within_2s() {
    let took = stop_with(agent_behind_a_dead_pipe(), nix::sys::signal::Signal::SIGINT);
    assert!(took < STOP_WITHIN, "SIGINT took {took:?}");
}
