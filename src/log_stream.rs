//! The agent's own log events as a stream, for `/v1/agent/monitor` (Consul's `consul monitor`).
//!
//! Stage: beside logging (a `tracing` layer added at start-up). Input: every log event the
//! agent emits at or below the most verbose level a monitor asked for. Output: `LogRecord`s on
//! a broadcast channel each open monitor subscribes to.
//! Invariants: with no monitor attached the tap costs nothing: its filter's callsite interest
//! is `never` above the agent's own level and the interest cache is rebuilt whenever a monitor
//! comes or goes; a slow monitor lags and loses records (broadcast), never blocks a logger.
//! Imports nothing of cairn.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};

/// One log event as a monitor shows it.
#[derive(Debug, Clone)]
pub(crate) struct LogRecord {
    /// Level.
    pub(crate) level: Level,
    /// Module path of the emitter (Consul's `@module`).
    pub(crate) target: String,
    /// The message.
    pub(crate) message: String,
    /// The other fields, in order.
    pub(crate) fields: Vec<(String, String)>,
    /// When it was emitted.
    pub(crate) time: SystemTime,
}

/// Open monitors per level, most verbose last (ERROR, WARN, INFO, DEBUG, TRACE).
static MONITORS: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];
static CHANNEL: OnceLock<broadcast::Sender<Arc<LogRecord>>> = OnceLock::new();

fn channel() -> &'static broadcast::Sender<Arc<LogRecord>> {
    CHANNEL.get_or_init(|| broadcast::channel(1024).0)
}

fn slot(level: Level) -> usize {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

/// The most verbose level any open monitor wants (`OFF` with none).
fn wanted() -> LevelFilter {
    let levels =
        [LevelFilter::ERROR, LevelFilter::WARN, LevelFilter::INFO, LevelFilter::DEBUG, LevelFilter::TRACE];
    (0..5).rev().find(|i| MONITORS[*i].load(Ordering::Relaxed) > 0).map_or(LevelFilter::OFF, |i| levels[i])
}

/// An open monitor: records at `level` or less verbose; closing it (drop) detaches the tap
/// when it was the last.
#[derive(Debug)]
pub(crate) struct Monitor {
    level: Level,
    records: broadcast::Receiver<Arc<LogRecord>>,
}

impl Monitor {
    /// Opens a monitor for `level`.
    pub(crate) fn open(level: Level) -> Self {
        let records = channel().subscribe();
        MONITORS[slot(level)].fetch_add(1, Ordering::Relaxed);
        tracing::callsite::rebuild_interest_cache();
        Self { level, records }
    }

    /// The next record at this monitor's level; `None` once the channel is closed. Records
    /// lost to lag are skipped.
    pub(crate) async fn next(&mut self) -> Option<Arc<LogRecord>> {
        loop {
            match self.records.recv().await {
                Ok(r) if r.level <= self.level => return Some(r),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        MONITORS[slot(self.level)].fetch_sub(1, Ordering::Relaxed);
        tracing::callsite::rebuild_interest_cache();
    }
}

/// The tap to add to the agent's subscriber.
pub fn layer<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>>() -> impl Layer<S> {
    Tap.with_filter(Listening)
}

struct Tap;

impl<S: Subscriber> Layer<S> for Tap {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = Fields::default();
        event.record(&mut v);
        let meta = event.metadata();
        let record = LogRecord {
            level: *meta.level(),
            target: meta.target().to_owned(),
            message: v.message,
            fields: v.fields,
            time: SystemTime::now(),
        };
        let _ = channel().send(Arc::new(record));
    }
}

/// Lets events through only while a monitor wants their level.
struct Listening;

/// Whether a monitor wants an event of `meta`: at or below the most verbose level asked for,
/// and openraft's own chatter only from WARN, as the agent's default log filter has it.
fn wants(meta: &Metadata<'_>) -> bool {
    let quiet = meta.target().starts_with("openraft") && *meta.level() > Level::WARN;
    !quiet && wanted() >= *meta.level()
}

impl<S> Filter<S> for Listening {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        wants(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if wants(meta) { Interest::sometimes() } else { Interest::never() }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(wanted())
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        } else {
            self.fields.push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[tokio::test]
    async fn a_monitor_sees_events_at_its_level_and_none_above() {
        let subscriber = tracing_subscriber::registry().with(layer());
        let _guard = tracing::subscriber::set_default(subscriber);
        let mut info = Monitor::open(Level::INFO);
        tracing::debug!("not for an info monitor");
        tracing::info!(service = "redis", "synced service");
        let r = info.next().await.unwrap();
        assert_eq!((r.level, r.message.as_str()), (Level::INFO, "synced service"));
        assert_eq!(r.fields, [("service".to_owned(), "redis".to_owned())]);
    }
}
