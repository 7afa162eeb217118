//! TRACE of a window, for `/debug/pprof/trace?seconds=N`: cairn's own `tracing` spans and
//! events, at every level, as Chrome trace-event JSON (load it in Perfetto or
//! `chrome://tracing`).
//!
//! Input: every span entry and exit and every event the process emits while a capture runs
//! → output: `{"traceEvents":[…]}` with `B`/`E` pairs per span entry (name, target), `i`
//! instants per event (message and fields), timestamps in microseconds from the window's
//! start, one track per thread (named by `M` records).
//!
//! Why not Go's format: `go tool trace` reads the Go runtime's execution trace (goroutine
//! scheduling, GC, syscalls), which has no counterpart in a Rust process; a file in that
//! format could only be made up. What cairn can tell truthfully about a window is what its
//! code reports through `tracing`, so that is what is served, in a format viewers read.
//!
//! Invariants: with no capture running the tap costs nothing (its filter's interest is
//! `never`, and the callsite cache is rebuilt when a capture starts and ends, as
//! `log_stream` does); one capture at a time (Go's `tracing is already enabled` for a
//! second); at most `MAX_EVENTS` records are kept, the rest counted as dropped.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::ProfileError;

/// Records kept per capture (about 100 MB at most).
const MAX_EVENTS: usize = 500_000;

static CAPTURING: AtomicBool = AtomicBool::new(false);
/// Bumped per capture, so each thread names its track once per capture.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static NEXT_TID: AtomicU64 = AtomicU64::new(1);
static CAPTURE: Mutex<Capture> = Mutex::new(Capture { start: None, events: Vec::new(), dropped: 0 });

thread_local! {
    static TID: Cell<u64> = const { Cell::new(0) };
    static NAMED_IN: Cell<u64> = const { Cell::new(0) };
}

struct Capture {
    start: Option<Instant>,
    events: Vec<Value>,
    dropped: u64,
}

/// Captures `window` of spans and events; the Chrome trace JSON.
pub(crate) async fn capture(window: Duration) -> Result<Vec<u8>, ProfileError> {
    if CAPTURING.load(Ordering::Acquire) {
        return Err(ProfileError::TraceBusy);
    }
    {
        let mut c = lock();
        if c.start.is_some() {
            return Err(ProfileError::TraceBusy);
        }
        *c = Capture { start: Some(Instant::now()), events: Vec::new(), dropped: 0 };
    }
    let _stop = Stop;
    GENERATION.fetch_add(1, Ordering::Relaxed);
    CAPTURING.store(true, Ordering::Release);
    tracing::callsite::rebuild_interest_cache();
    tokio::time::sleep(window).await;
    Ok(finish())
}

/// Ends the capture (also when the request goes away mid-window).
struct Stop;

impl Drop for Stop {
    fn drop(&mut self) {
        if CAPTURING.swap(false, Ordering::AcqRel) {
            tracing::callsite::rebuild_interest_cache();
        }
        lock().start = None;
    }
}

fn finish() -> Vec<u8> {
    CAPTURING.store(false, Ordering::Release);
    tracing::callsite::rebuild_interest_cache();
    let (events, dropped) = {
        let mut c = lock();
        (std::mem::take(&mut c.events), c.dropped)
    };
    let doc = json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"producer": "cairn", "dropped_events": dropped},
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn lock() -> std::sync::MutexGuard<'static, Capture> {
    CAPTURE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tap to add to the agent's subscriber.
pub fn layer<S: Subscriber + for<'a> LookupSpan<'a>>() -> impl Layer<S> {
    Tap.with_filter(Capturing)
}

struct Tap;

/// This thread's track id, and its name record when first seen in this capture.
fn track() -> (u64, Option<Value>) {
    let tid = TID.with(|t| {
        if t.get() == 0 {
            t.set(NEXT_TID.fetch_add(1, Ordering::Relaxed));
        }
        t.get()
    });
    let generation = GENERATION.load(Ordering::Relaxed);
    let first = NAMED_IN.with(|g| g.replace(generation) != generation);
    let name = first.then(|| {
        let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
        json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}})
    });
    (tid, name)
}

fn push(ph: &str, name: &str, meta: &Metadata<'_>, args: Value) {
    let (tid, named) = track();
    let mut c = lock();
    let Some(start) = c.start else { return };
    if c.events.len() >= MAX_EVENTS {
        c.dropped += 1;
        return;
    }
    if let Some(n) = named {
        c.events.push(n);
    }
    let ts = start.elapsed().as_secs_f64() * 1e6;
    let mut e =
        json!({"ph": ph, "name": name, "cat": meta.target(), "ts": ts, "pid": 1, "tid": tid, "args": args});
    if ph == "i" {
        e["s"] = json!("t");
    }
    c.events.push(e);
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Tap {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut v = Fields::default();
        attrs.record(&mut v);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanArgs(Value::Object(v.0)));
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let args = span.extensions().get::<SpanArgs>().map_or(Value::Null, |a| a.0.clone());
            push("B", span.name(), span.metadata(), args);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            push("E", span.name(), span.metadata(), Value::Null);
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = Fields::default();
        event.record(&mut v);
        let name = v.0.remove("message").and_then(|m| m.as_str().map(str::to_owned));
        let meta = event.metadata();
        let name = name.unwrap_or_else(|| meta.name().to_owned());
        v.0.insert("level".into(), json!(meta.level().as_str()));
        push("i", &name, meta, Value::Object(v.0));
    }
}

struct SpanArgs(Value);

/// Lets everything through while a capture runs, nothing otherwise.
struct Capturing;

impl<S> Filter<S> for Capturing {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        CAPTURING.load(Ordering::Relaxed)
    }

    fn callsite_enabled(&self, _meta: &'static Metadata<'static>) -> Interest {
        if CAPTURING.load(Ordering::Relaxed) { Interest::sometimes() } else { Interest::never() }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if CAPTURING.load(Ordering::Relaxed) { LevelFilter::TRACE } else { LevelFilter::OFF })
    }
}

#[derive(Default)]
struct Fields(serde_json::Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), json!(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), json!(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[tokio::test]
    async fn a_capture_holds_the_window_and_nothing_after() {
        let subscriber = tracing_subscriber::registry().with(layer());
        let _guard = tracing::subscriber::set_default(subscriber);
        tracing::trace!("before the window");
        let run = tokio::spawn(async {});
        run.await.unwrap();
        let window = capture(Duration::from_millis(300));
        let emit = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let span = tracing::trace_span!("apply", index = 7u64);
            let _e = span.enter();
            tracing::trace!(key = "web", "synced");
        };
        let (out, ()) = tokio::join!(window, emit);
        tracing::trace!("after the window");
        let doc: Value = serde_json::from_slice(&out.unwrap()).unwrap();
        let events = doc["traceEvents"].as_array().unwrap();
        let names: Vec<&str> = events.iter().filter_map(|e| e["name"].as_str()).collect();
        assert!(names.contains(&"apply") && names.contains(&"synced"), "{names:?}");
        assert!(!names.contains(&"before the window") && !names.contains(&"after the window"));
        let b = events.iter().find(|e| e["ph"] == "B").unwrap();
        assert_eq!(b["args"]["index"], 7);
        let i = events.iter().find(|e| e["name"] == "synced").unwrap();
        assert_eq!((i["args"]["key"].as_str(), i["args"]["level"].as_str()), (Some("web"), Some("TRACE")));
    }
}
