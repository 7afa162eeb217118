//! THREADS, cairn's honest analogue of Go's goroutine profile (`/debug/pprof/goroutine`).
//!
//! Input: `/proc/self/task` and the async runtime's metrics → output: one entry per OS thread
//! of the process (its name, scheduler state, the kernel function it sleeps in and its CPU
//! time), and the runtime's worker and live-task counts, as pprof protobuf (`goroutine` /
//! `count`, one sample per thread whose one frame is named `thread <name>`, labelled with
//! its id and state) or as text (`?debug=1` grouped by name, `?debug=2` one block per thread).
//!
//! What it does not hold, and why: a goroutine is Go's unit of concurrency and the runtime
//! can walk every one's stack at any time. cairn's units are OS threads and tokio tasks.
//! Tokio can dump task stacks only when built with `--cfg tokio_unstable` and its `taskdump`
//! feature, which cairn does not ship; a suspended task has no stack to walk anyway (its
//! state is a future's fields). Walking another thread's user stack would take a signal and
//! an unwinder inside its handler, which is not async-signal-safe and would interrupt the
//! thread's system call; for a read-only debug endpoint we do not take that risk. So there
//! are no stacks: the thread list and the task counts are what is true and cheap to know.

use std::fmt::Write as _;

use super::ProfileBuilder;

/// One OS thread of this process.
#[derive(Debug, Clone)]
pub(crate) struct Thread {
    pub(crate) tid: u32,
    pub(crate) name: String,
    /// `/proc`'s one-letter state (`R`, `S`, `D`, …).
    pub(crate) state: char,
    /// The kernel function it waits in (`0` or empty when running).
    pub(crate) wchan: String,
    /// User and system CPU time, in clock ticks.
    pub(crate) ticks: (u64, u64),
}

/// The async runtime's view, when called from inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tasks {
    pub(crate) workers: usize,
    pub(crate) alive: usize,
}

/// Every thread of the process, by id.
pub(crate) fn threads() -> Vec<Thread> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut out: Vec<Thread> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_thread)
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

fn read_thread(tid: u32) -> Option<Thread> {
    let base = format!("/proc/self/task/{tid}");
    let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
    let (name, state, ticks) = parse_stat(&stat)?;
    let wchan = std::fs::read_to_string(format!("{base}/wchan")).unwrap_or_default();
    Some(Thread { tid, name, state, wchan: wchan.trim().to_owned(), ticks })
}

/// `pid (comm) S ...`: the name (which may hold spaces and parentheses), the state, and
/// fields 14 and 15 (utime, stime).
fn parse_stat(stat: &str) -> Option<(String, char, (u64, u64))> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let mut rest = rest.skip(10);
    let utime = rest.next()?.parse().ok()?;
    let stime = rest.next()?.parse().ok()?;
    Some((name, state, (utime, stime)))
}

/// The runtime's worker and live-task counts (`None` outside a tokio runtime).
pub(crate) fn tasks() -> Option<Tasks> {
    let m = tokio::runtime::Handle::try_current().ok()?.metrics();
    Some(Tasks { workers: m.num_workers(), alive: m.num_alive_tasks() })
}

fn state_name(c: char) -> &'static str {
    match c {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk sleep",
        'T' => "stopped",
        't' => "tracing stop",
        'Z' => "zombie",
        'X' => "dead",
        'I' => "idle",
        _ => "unknown",
    }
}

fn summary(threads: &[Thread], tasks: Option<Tasks>) -> String {
    let tasks = tasks.map_or_else(
        || "async tasks: not known outside the runtime".to_owned(),
        |t| format!("async tasks: {} alive on {} runtime workers", t.alive, t.workers),
    );
    format!(
        "cairn has no goroutines: {} OS threads; {tasks}; no stacks (see cairn's profile::threads)",
        threads.len()
    )
}

/// The protobuf profile.
pub(crate) fn profile(threads: &[Thread], tasks: Option<Tasks>) -> pprof::protos::Profile {
    let mut b = ProfileBuilder::new(&[("goroutine", "count")], ("goroutine", "count", 1));
    b.timed(std::time::SystemTime::now(), std::time::Duration::ZERO);
    b.comment(&summary(threads, tasks));
    for t in threads {
        let loc = b.named_location(&format!("thread {}", t.name));
        let (tid, state) = (t.tid.to_string(), state_name(t.state));
        b.sample(vec![loc], vec![1], &[("thread_id", &tid), ("state", state)]);
    }
    b.finish()
}

/// `?debug=1`: threads grouped by name, most first.
pub(crate) fn text_grouped(threads: &[Thread], tasks: Option<Tasks>) -> String {
    let mut groups: std::collections::BTreeMap<&str, Vec<&Thread>> = Default::default();
    for t in threads {
        groups.entry(&t.name).or_default().push(t);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let mut out = format!("thread profile: total {}\n# {}\n", threads.len(), summary(threads, tasks));
    for (name, ts) in groups {
        let states: Vec<String> = ts.iter().map(|t| format!("{}:{}", t.tid, t.state)).collect();
        let _ = writeln!(out, "{} @ thread {name}\n#\t{}\n", ts.len(), states.join(" "));
    }
    out
}

/// `?debug=2`: one block per thread.
pub(crate) fn text_each(threads: &[Thread], tasks: Option<Tasks>) -> String {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = format!("# {}\n\n", summary(threads, tasks));
    for t in threads {
        let wchan = if t.wchan.is_empty() || t.wchan == "0" { "-" } else { &t.wchan };
        let _ = writeln!(
            out,
            "thread {} [{}]: {}\n\twaiting in: {wchan}\n\tcpu: user {:.2}s, system {:.2}s\n",
            t.tid,
            state_name(t.state),
            t.name,
            t.ticks.0 as f64 / tick,
            t.ticks.1 as f64 / tick,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_with_spaces_and_parentheses() {
        let stat = "42 (tokio (w) 1) S 1 2 3 4 5 6 7 8 9 10 17 3 0 0 20 0";
        let (name, state, ticks) = parse_stat(stat).unwrap();
        assert_eq!((name.as_str(), state, ticks), ("tokio (w) 1", 'S', (17, 3)));
        assert!(parse_stat("garbage").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_stat_line_parses_or_is_refused(raw in ".*") {
            let _ = parse_stat(&raw);
        }
    }

    #[test]
    fn this_process_has_this_thread() {
        let ts = threads();
        assert!(!ts.is_empty());
        let me = std::process::id();
        assert!(ts.iter().any(|t| t.tid == me), "the main thread's id is the pid");
        let text = text_each(&ts, None);
        assert!(text.contains("thread ") && text.contains("cpu: user"));
    }
}
