//! Script checks: a command run in a process group of its own.
//!
//! Stage: `probe`, for `Args` checks. Input: the command and its arguments, the output limit →
//! output: exit 0 passing, 1 warning, anything else critical, with the tails of stdout and
//! stderr as output.
//! Invariants: when the probe times out (its future is dropped) the whole process group is
//! killed, children included; only the last `max` bytes of each stream are kept, so a chatty
//! script cannot grow the agent's memory.

use tokio::io::AsyncRead;

use super::Outcome;
use crate::catalog::HealthStatus;
use crate::health::status::tail;

/// Runs a script check: exit 0 passing, 1 warning, anything else critical. The script runs
/// in a process group of its own; when the probe times out (the future is dropped) the whole
/// group is killed, children included. Only the last `max` bytes of each stream are kept.
pub(super) async fn script(args: &[String], max: usize) -> Outcome {
    let Some((cmd, rest)) = args.split_first() else {
        return (HealthStatus::Critical, "no command".into());
    };
    let child = tokio::process::Command::new(cmd)
        .args(rest)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (HealthStatus::Critical, format!("Failed to start {cmd:?}: {e}")),
    };
    let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (mut all, err, waited) = tokio::join!(read_tail(stdout, max), read_tail(stderr, max), child.wait());
    group.0 = None;
    let code = match waited {
        Ok(s) => s.code(),
        Err(e) => return (HealthStatus::Critical, format!("Failed to run {cmd:?}: {e}")),
    };
    all.extend_from_slice(&err);
    let status = match code {
        Some(0) => HealthStatus::Passing,
        Some(1) => HealthStatus::Warning,
        _ => HealthStatus::Critical,
    };
    (status, tail(&all, max))
}

/// Kills a script's process group when dropped before the script finished (probe timeout).
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Reads a stream to its end, keeping only its last `max` bytes (a chatty script cannot
/// grow the agent's memory).
async fn read_tail<R: AsyncRead + Unpin>(stream: Option<R>, max: usize) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    let Some(mut stream) = stream else { return Vec::new() };
    let keep = max.max(1);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if buf.len() > 2 * keep + chunk.len() {
                    buf.drain(..buf.len() - keep);
                }
            }
        }
    }
    buf
}

#[cfg(test)]
mod script_tests {
    use std::time::Duration;

    use super::script;
    use crate::catalog::HealthStatus;

    fn args(sh: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), sh.into()]
    }

    #[tokio::test]
    async fn a_chatty_script_keeps_only_the_tail() {
        let (status, out) = script(&args("yes 0123456789 | head -c 2000000; echo END; exit 1"), 100).await;
        assert_eq!(status, HealthStatus::Warning);
        assert!(out.len() <= 100 && out.ends_with("END\n"), "{out:?}");
    }

    #[tokio::test]
    async fn a_timed_out_script_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let sh = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let argv = args(&sh);
        let run = script(&argv, 4096);
        assert!(tokio::time::timeout(Duration::from_millis(500), run).await.is_err());
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let gone = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() || zombie(pid);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !gone() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone(), "the script's child {pid} survived the timeout");
    }

    /// A killed child of a killed shell may linger as a zombie until init reaps it.
    fn zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
    }
}
