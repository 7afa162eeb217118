//! The service manager's two hand-offs: readiness notification (`sd_notify`) and inherited
//! sockets (socket activation, `LISTEN_FDS`).
//!
//! Input: the environment systemd sets for a service (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
//! `WATCHDOG_PID`, `LISTEN_PID`, `LISTEN_FDS`). Output: datagrams on the notify socket
//! (`READY=1`, `STATUS=…`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`) and the inherited DNS
//! sockets, sorted into UDP and TCP.
//!
//! Invariants: outside systemd (no variables) every call is a no-op, so `cairn agent` behaves
//! the same from a shell; a failed notification is logged at debug and never stops the agent.
//!
//! Why not the `sd-notify` crate (0.5): it connects with a file-system path only, so an
//! abstract `NOTIFY_SOCKET` (`@name`, which sd_notify(3) allows and the tests here use) fails;
//! it reads the environment again at each call where cairn reads it once at start; and its
//! `listen_fds` hands back raw descriptors, so cairn would still need the `unsafe` wrapping
//! into `OwnedFd`, the once-only guard and the sort by socket type below. What it would
//! replace is the parsing of four variables; the protocol is one datagram of `KEY=VALUE` lines.

use std::net::{TcpListener, UdpSocket};
use std::os::fd::{FromRawFd as _, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::time::Duration;

use nix::sys::socket::{SockType, getsockopt, sockopt};

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// A connection to the service manager's notify socket, if there is one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, UnixAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` from the environment.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let target = var("NOTIFY_SOCKET").and_then(|path| match connect(&path) {
            Ok(t) => Some(t),
            Err(err) => {
                tracing::warn!(%err, socket = %path, "NOTIFY_SOCKET unusable; not notifying systemd");
                None
            }
        });
        let watchdog = watchdog_interval(
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        Self { target, watchdog }
    }

    /// A notifier that sends nothing (tests, or not under systemd).
    pub fn disabled() -> Self {
        Self { target: None, watchdog: None }
    }

    /// Whether a notify socket is connected.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines); best effort.
    pub fn notify(&self, state: &str) {
        if let Some((sock, addr)) = &self.target
            && let Err(err) = sock.send_to_addr(state.as_bytes(), addr)
        {
            tracing::debug!(%err, "sd_notify failed");
        }
    }

    /// `STATUS=<text>`: the line `systemctl status` shows.
    pub fn status(&self, text: &str) {
        self.notify(&format!("STATUS={text}"));
    }

    /// `READY=1` with a status line: start-up (or a reload) is complete.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1`: a reload started; `ready` ends it.
    pub fn reloading(&self) {
        self.notify("RELOADING=1\nSTATUS=reloading configuration");
    }

    /// `STOPPING=1`: shutdown started.
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=stopping");
    }

    /// How often to send `WATCHDOG=1`: half of `WatchdogSec=`, if it is set for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `WATCHDOG=1`: the agent is alive.
    pub fn watchdog_ping(&self) {
        self.notify("WATCHDOG=1");
    }
}

/// A socket for `path`: a file system path, or an abstract name when it starts with `@`.
fn connect(path: &str) -> std::io::Result<(UnixDatagram, UnixAddr)> {
    let addr = match path.strip_prefix('@') {
        Some(name) => UnixAddr::from_abstract_name(name.as_bytes())?,
        None => UnixAddr::from_pathname(path)?,
    };
    Ok((UnixDatagram::unbound()?, addr))
}

/// Half of `WATCHDOG_USEC` when the watchdog is meant for `pid` (no `WATCHDOG_PID`: for us).
fn watchdog_interval(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = for_pid
        && p.trim().parse::<u32>().ok() != Some(pid)
    {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

/// Sockets handed over by the service manager (socket activation), sorted by type.
#[derive(Debug, Default)]
pub(crate) struct Inherited {
    /// Datagram sockets (`ListenDatagram=`).
    pub udp: Vec<UdpSocket>,
    /// Listening stream sockets (`ListenStream=`).
    pub tcp: Vec<TcpListener>,
}

impl Inherited {
    /// Whether nothing was inherited.
    pub(crate) fn is_empty(&self) -> bool {
        self.udp.is_empty() && self.tcp.is_empty()
    }
}

/// Takes the sockets passed with `LISTEN_FDS` when `LISTEN_PID` is this process.
///
/// Each descriptor is taken at most once per process: a second call finds nothing, because
/// the count is read once and remembered.
pub(crate) fn inherited_sockets() -> Inherited {
    static TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let var = |k: &str| std::env::var(k).ok();
    let Some(count) =
        listen_fds(var("LISTEN_PID").as_deref(), var("LISTEN_FDS").as_deref(), std::process::id())
    else {
        return Inherited::default();
    };
    if TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Inherited::default();
    }
    let mut found = Inherited::default();
    for fd in LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count) {
        if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
            tracing::warn!(fd, "LISTEN_FDS names a descriptor that is not open; skipped");
            continue;
        }
        // SAFETY: systemd passes descriptors LISTEN_FDS_START.. to this process (LISTEN_PID
        // checked above), open (checked just now) and owned by nobody else in it; the static
        // flag makes sure each is wrapped in an `OwnedFd` only once.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let _ = nix::fcntl::fcntl(&owned, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
        match getsockopt(&owned, sockopt::SockType) {
            Ok(SockType::Datagram) => found.udp.push(UdpSocket::from(owned)),
            Ok(SockType::Stream) => found.tcp.push(TcpListener::from(owned)),
            Ok(other) => tracing::warn!(fd, ?other, "inherited socket of an unused type; closed"),
            Err(err) => tracing::warn!(fd, %err, "inherited descriptor is not a socket; closed"),
        }
    }
    found
}

/// The number of inherited descriptors when they are meant for `pid`.
fn listen_fds(listen_pid: Option<&str>, listen_fds: Option<&str>, pid: u32) -> Option<RawFd> {
    if listen_pid?.trim().parse::<u32>().ok()? != pid {
        return None;
    }
    listen_fds?.trim().parse::<RawFd>().ok().filter(|&n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_watchdog(usec: Option<&str>, for_pid: Option<&str>, want: Option<u64>) {
        assert_eq!(
            watchdog_interval(usec, for_pid, 42),
            want.map(Duration::from_millis),
            "{usec:?} {for_pid:?}"
        );
    }

    #[test]
    fn watchdog_is_half_the_timeout_for_this_process() {
        check_watchdog(Some("30000000"), None, Some(15_000));
        check_watchdog(Some("30000000"), Some("42"), Some(15_000));
        check_watchdog(Some("30000000"), Some("43"), None);
        check_watchdog(Some("0"), None, None);
        check_watchdog(Some("x"), None, None);
        check_watchdog(None, Some("42"), None);
    }

    #[test]
    fn listen_fds_only_for_this_process() {
        assert_eq!(listen_fds(Some("42"), Some("2"), 42), Some(2));
        assert_eq!(listen_fds(Some("41"), Some("2"), 42), None);
        assert_eq!(listen_fds(Some("42"), Some("0"), 42), None);
        assert_eq!(listen_fds(None, Some("2"), 42), None);
        assert_eq!(listen_fds(Some("42"), None, 42), None);
    }

    #[test]
    fn notifications_arrive_on_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier { target: Some(connect(path.to_str().unwrap()).unwrap()), watchdog: None };
        n.ready("serving");
        n.watchdog_ping();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn abstract_notify_socket() {
        let name = format!("cairn-test-{}", std::process::id());
        let server =
            UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier { target: Some(connect(&format!("@{name}")).unwrap()), watchdog: None };
        n.status("hello");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=hello");
    }
}
