//! The agent's long-running tasks as named services on one `TaskTracker`, stopped by one
//! `CancellationToken` and drained in one place.
//!
//! Input: futures with a name, started by `App::run`. Output: `wait` (shutdown was asked, or
//! a listener ended on its own, which is fatal) and `drain` (every service has returned, or
//! the bound passed and the ones still running are named in the log).
//!
//! Two kinds: a *listener* (DNS, HTTP, server RPC) serves until the token fires, and its end
//! before that (an error, a panic, or a plain return) stops the agent with that error; a
//! *feed* (check runners, anti-entropy, timers, gossip join, cluster forming, ...) runs until
//! the token fires or its work is done (a join that succeeded), and its end is not an error.
//!
//! Shutdown order (`App::run`): cancel the token, drain the services (bounded), stop gossip,
//! stop Raft, flush the deferred rows; SIGTERM ends the process within 2 s, whatever stdout
//! and stderr are.
//!
//! Invariants: every task `App::run` starts goes through here, so the set of services is the
//! list of `spawn_*` calls in `App::run`; the token is cancelled at most once for a cause and
//! the first failure wins; `drain` never waits longer than its bound, so SIGTERM ends the
//! process in time even while an HTTP client holds a blocking query.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the services share: the token, the names still running, the first failure.
struct Shared {
    stop: CancellationToken,
    /// Running services by name, with how many instances (a name may run more than once).
    running: Mutex<BTreeMap<&'static str, usize>>,
    failure: Mutex<Option<anyhow::Error>>,
}

impl Shared {
    fn fail(&self, error: anyhow::Error) {
        let mut first = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() && !self.stop.is_cancelled() {
            *first = Some(error);
        }
        drop(first);
        self.stop.cancel();
    }
}

/// The agent's services: started by name, stopped by one token, drained together.
pub(super) struct Services {
    tracker: TaskTracker,
    shared: Arc<Shared>,
}

/// Marks one service as running while it lives; a listener that ends (returns or unwinds)
/// before shutdown fails the agent.
struct Running {
    name: &'static str,
    shared: Arc<Shared>,
    listener: bool,
    /// Set when the service's future returned, so a drop without it is a panic.
    returned: bool,
}

impl Running {
    fn start(name: &'static str, shared: &Arc<Shared>, listener: bool) -> Self {
        *shared.running.lock().unwrap_or_else(PoisonError::into_inner).entry(name).or_default() += 1;
        Self { name, shared: shared.clone(), listener, returned: false }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        {
            let mut running = self.shared.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = running.get_mut(self.name) {
                *n -= 1;
                if *n == 0 {
                    running.remove(self.name);
                }
            }
        }
        if self.listener && !self.shared.stop.is_cancelled() {
            let why = if self.returned { "stopped unexpectedly" } else { "panicked" };
            self.shared.fail(anyhow::anyhow!("{}: {why}", self.name));
        }
    }
}

impl Services {
    /// Services stopped by `stop` (cancelled by the owner on SIGTERM, or here on a failure).
    pub(super) fn new(stop: CancellationToken) -> Self {
        let shared = Shared { stop, running: Mutex::default(), failure: Mutex::default() };
        Self { tracker: TaskTracker::new(), shared: Arc::new(shared) }
    }

    /// The token every service watches.
    pub(super) fn stop(&self) -> CancellationToken {
        self.shared.stop.clone()
    }

    /// Starts a feed: it runs until the token fires or its work is done.
    pub(super) fn spawn_feed(&self, name: &'static str, feed: impl Future<Output = ()> + Send + 'static) {
        let running = Running::start(name, &self.shared, false);
        self.tracker.spawn(async move {
            // The whole guard moves in (not just its field), so it lives as long as the feed.
            let mut running = running;
            feed.await;
            running.returned = true;
        });
    }

    /// Starts a listener: it serves until the token fires; an error, a panic or a return
    /// before that stops the agent and becomes `wait`'s error.
    pub(super) fn spawn_listener(
        &self,
        name: &'static str,
        listener: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let running = Running::start(name, &self.shared, true);
        let shared = self.shared.clone();
        self.tracker.spawn(async move {
            let mut running = running;
            let result = listener.await;
            running.returned = true;
            match result {
                Err(e) if !shared.stop.is_cancelled() => shared.fail(e.context(name)),
                Err(e) => tracing::warn!(service = name, error = %format!("{e:#}"), "while stopping"),
                Ok(()) => {}
            }
        });
    }

    /// Waits until the token fires; the error is the first listener failure, if one fired it.
    pub(super) async fn wait(&self) -> anyhow::Result<()> {
        self.shared.stop.cancelled().await;
        match self.shared.failure.lock().unwrap_or_else(PoisonError::into_inner).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits, at most `within`, for every service to return after the token fired; names
    /// the ones still running when the bound passes (they end with the runtime).
    pub(super) async fn drain(&self, within: Duration) {
        self.shared.stop.cancel();
        self.tracker.close();
        if tokio::time::timeout(within, self.tracker.wait()).await.is_err() {
            let running = self.shared.running.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let names: Vec<String> = running.iter().map(|(n, k)| format!("{n} ×{k}")).collect();
            tracing::warn!(services = %names.join(", "), "still running {within:?} after shutdown began");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_that_returns_early_fails_the_agent() {
        let services = Services::new(CancellationToken::new());
        services.spawn_listener("DNS", async { Ok(()) });
        let err = services.wait().await.unwrap_err();
        assert_eq!(err.to_string(), "DNS: stopped unexpectedly");
        services.drain(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn a_listener_error_names_the_service() {
        let services = Services::new(CancellationToken::new());
        services.spawn_listener("HTTP", async { Err(anyhow::anyhow!("socket gone")) });
        let err = services.wait().await.unwrap_err();
        assert_eq!(format!("{err:#}"), "HTTP: socket gone");
    }

    #[tokio::test]
    async fn a_panicking_listener_fails_the_agent() {
        let services = Services::new(CancellationToken::new());
        services.spawn_listener("server RPC", async { panic!("boom") });
        let err = services.wait().await.unwrap_err();
        assert_eq!(err.to_string(), "server RPC: panicked");
    }

    #[tokio::test]
    async fn shutdown_is_not_a_failure_and_drain_waits_for_every_service() {
        let stop = CancellationToken::new();
        let services = Services::new(stop.clone());
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for name in ["DNS", "check runner"] {
            let (s, d) = (services.stop(), done.clone());
            services.spawn_listener(name, async move {
                s.cancelled().await;
                d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            });
        }
        let (s, d) = (services.stop(), done.clone());
        services.spawn_feed("timers", async move {
            s.cancelled().await;
            d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        services.spawn_feed("join", async {});
        stop.cancel();
        services.wait().await.unwrap();
        services.drain(Duration::from_secs(5)).await;
        assert_eq!(done.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(services.shared.running.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn drain_gives_up_after_its_bound() {
        let services = Services::new(CancellationToken::new());
        services.spawn_feed("stuck", std::future::pending());
        let started = tokio::time::Instant::now();
        services.drain(Duration::from_millis(50)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(services.shared.running.lock().unwrap().get("stuck"), Some(&1));
    }
}
