//! PROFILING of the cairn process itself, for Consul's `/debug/pprof/*` (`http::debug`).
//!
//! Input: a request for one profile and, for the timed ones, how long to watch → output: the
//! profile's bytes in the format Go serves it in, so `go tool pprof`, `consul debug` and Go's
//! api `Debug` client read them unchanged:
//! - `cpu`: the whole process's CPU time, sampled at 100 Hz by SIGPROF (pprof-rs), as pprof
//!   protobuf (gzip);
//! - `heap`: a sampling of heap allocations (about one per 512 KiB allocated, Go's
//!   `MemProfileRate`) with their stacks, live ones tracked until freed: pprof protobuf with
//!   Go's four sample types (`alloc_objects`, `alloc_space`, `inuse_objects`, `inuse_space`);
//! - `threads`: the honest analogue of goroutines (see its doc): the process's OS threads and
//!   the async runtime's task counts;
//! - `trace`: cairn's own `tracing` spans and events of a window, as Chrome trace-event JSON.
//!
//! Invariants: profiling costs nothing measurable until asked for (the heap sampler is one
//! relaxed atomic load per allocation and free while off); at most one CPU profile and one
//! trace run at a time (a second is refused with Go's text, as Go refuses it); no profile
//! is ever made up: what a profile cannot hold (goroutine stacks of tasks, Go's execution
//! trace) is left out and said so in its doc.
//! Imports nothing of cairn.

pub(crate) mod cpu;
pub(crate) mod heap;
pub(crate) mod heap_report;
mod symbols;
pub(crate) mod threads;
pub(crate) mod trace;

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use pprof::protos::Message as _;

/// Why a profile could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProfileError {
    /// A CPU profile is already running (Go's `cpu profiling already in use`).
    #[error("cpu profiling already in use")]
    CpuBusy,
    /// A trace is already running (Go's `runtime error: tracing is already enabled`).
    #[error("runtime error: tracing is already enabled")]
    TraceBusy,
    /// The sampler or its report failed.
    #[error("{0}")]
    Sampler(String),
}

/// A pprof `Profile` message as Go's `runtime/pprof` writes it: protobuf, gzipped.
pub(crate) fn gzip_profile(profile: &pprof::protos::Profile) -> Result<Vec<u8>, ProfileError> {
    let raw = profile.encode_to_vec();
    let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 2 + 64), Compression::default());
    gz.write_all(&raw).map_err(|e| ProfileError::Sampler(e.to_string()))?;
    gz.finish().map_err(|e| ProfileError::Sampler(e.to_string()))
}

/// The function at code address `addr` (Go's `/debug/pprof/symbol`), if a symbol covers it.
pub(crate) fn symbols_at(addr: u64) -> Option<String> {
    let frames = symbols::resolve(addr, true);
    let outer = frames.last()?;
    (!outer.name.starts_with("0x")).then(|| outer.name.clone())
}

/// Builds a pprof `Profile`: the string table (index 0 is "") and the functions and
/// locations of symbolized stacks, each added once.
#[derive(Default)]
pub(crate) struct ProfileBuilder {
    profile: pprof::protos::Profile,
    strings: std::collections::HashMap<String, i64>,
    locations: std::collections::HashMap<u64, u64>,
    functions: std::collections::HashMap<(i64, i64), u64>,
}

impl ProfileBuilder {
    /// A builder whose samples carry `types` (`(type, unit)` pairs), with the period
    /// `(type, unit, period)`.
    pub(crate) fn new(types: &[(&str, &str)], period: (&str, &str, i64)) -> Self {
        let mut b = Self::default();
        b.string("");
        let sample_type = types.iter().map(|(t, u)| b.value_type(t, u)).collect();
        b.profile.sample_type = sample_type;
        b.profile.period_type = Some(b.value_type(period.0, period.1));
        b.profile.period = period.2;
        b
    }

    fn value_type(&mut self, ty: &str, unit: &str) -> pprof::protos::ValueType {
        pprof::protos::ValueType { ty: self.string(ty), unit: self.string(unit) }
    }

    /// The index of `s` in the string table, added when new.
    pub(crate) fn string(&mut self, s: &str) -> i64 {
        if let Some(i) = self.strings.get(s) {
            return *i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_owned());
        self.strings.insert(s.to_owned(), i);
        i
    }

    /// The location of the code address `ip` (a return address unless `leaf`), symbolized
    /// with its inlined frames, added when new.
    pub(crate) fn location(&mut self, ip: u64, leaf: bool) -> u64 {
        if let Some(id) = self.locations.get(&ip) {
            return *id;
        }
        let frames = symbols::resolve(ip, leaf);
        let mut lines = Vec::with_capacity(frames.len());
        for f in frames {
            let name = self.string(&f.name);
            let file = self.string(&f.file);
            let function_id = self.function(name, file);
            lines.push(pprof::protos::Line { function_id, line: i64::from(f.line) });
        }
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(pprof::protos::Location {
            id,
            address: ip,
            line: lines,
            ..Default::default()
        });
        self.locations.insert(ip, id);
        id
    }

    /// A location standing for something that is not code (a thread's name): one line of a
    /// function so named, no address.
    pub(crate) fn named_location(&mut self, name: &str) -> u64 {
        let name = self.string(name);
        let function_id = self.function(name, 0);
        let id = self.profile.location.len() as u64 + 1;
        let line = vec![pprof::protos::Line { function_id, line: 0 }];
        self.profile.location.push(pprof::protos::Location { id, line, ..Default::default() });
        id
    }

    /// The function names of location `id`'s lines.
    pub(crate) fn names(&self, id: u64) -> impl Iterator<Item = &str> {
        let loc = id.checked_sub(1).and_then(|i| self.profile.location.get(i as usize));
        loc.into_iter().flat_map(|l| l.line.iter()).filter_map(|line| {
            let f = self.profile.function.get(line.function_id.checked_sub(1)? as usize)?;
            self.profile.string_table.get(f.name as usize).map(String::as_str)
        })
    }

    fn function(&mut self, name: i64, file: i64) -> u64 {
        if let Some(id) = self.functions.get(&(name, file)) {
            return *id;
        }
        let id = self.profile.function.len() as u64 + 1;
        self.profile.function.push(pprof::protos::Function {
            id,
            name,
            system_name: name,
            filename: file,
            start_line: 0,
        });
        self.functions.insert((name, file), id);
        id
    }

    /// Adds a sample: its stack (leaf first) as location ids, its values and string labels.
    pub(crate) fn sample(&mut self, location_id: Vec<u64>, value: Vec<i64>, labels: &[(&str, &str)]) {
        let label = labels
            .iter()
            .map(|(k, v)| pprof::protos::Label {
                key: self.string(k),
                str: self.string(v),
                ..Default::default()
            })
            .collect();
        self.profile.sample.push(pprof::protos::Sample { location_id, value, label });
    }

    /// Adds a comment line.
    pub(crate) fn comment(&mut self, text: &str) {
        let i = self.string(text);
        self.profile.comment.push(i);
    }

    /// When the profile was taken and over how long.
    pub(crate) fn timed(&mut self, start: std::time::SystemTime, duration: std::time::Duration) {
        self.profile.time_nanos =
            start.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
        self.profile.duration_nanos = duration.as_nanos() as i64;
    }

    /// The finished profile.
    pub(crate) fn finish(self) -> pprof::protos::Profile {
        self.profile
    }
}
