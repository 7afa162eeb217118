//! Static zones: RFC 1035 zone files served authoritatively beside the Consul domain.
//!
//! ```text
//! LOAD   zones_dir/*.zone -> parse (text -> records with lines) -> Zone::build (checks, tree)
//!        -> ZoneSet (immutable, shared as Arc<ZoneSet> inside dns::DnsContext)
//! QUERY  ZoneSet::answer(qname, qtype) -> ZoneAnswer (dns converts it to its own Answer)
//! ```
//!
//! The zone answers in its own terms and imports nothing from `dns`: the DNS path calls
//! it, never the other way round.
//!
//! A file's zone is the owner of its SOA record; relative names start from `$ORIGIN`, or
//! else from the file name minus `.zone` (`10.in-addr.arpa.zone` -> `10.in-addr.arpa.`).
//! Errors name the file and the line (`zones/example.zone:12: ...`).
//!
//! Reloads are per file ([`ZoneSet::reload_dir`]): a file that no longer parses keeps its
//! previous version serving and is reported; the other files are replaced.
//!
//! Invariants: a `ZoneSet` is never mutated once built (a reload builds a new one, sharing
//! unchanged data through `Arc`); [`ZoneSet::answer`] is pure, takes no lock, never panics
//! and allocates in proportion to the name and the records it returns.

mod lookup;
mod parse;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// Why a zone file (or the zones directory) could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    /// The directory or a file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A line of a file is wrong (syntax, data, or a rule such as "CNAME and other data").
    #[error("{}:{line}: {msg}", file.display())]
    Line {
        /// The zone file.
        file: PathBuf,
        /// 1-based line number.
        line: u32,
        /// What is wrong.
        msg: String,
    },
    /// The file as a whole is wrong (no SOA, no NS, an origin another file already serves).
    #[error("{}: {msg}", file.display())]
    File {
        /// The zone file.
        file: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

impl ZoneError {
    /// The file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } => path,
            Self::Line { file, .. } | Self::File { file, .. } => file,
        }
    }
}

/// One owner name's records, grouped by type in file order. Empty for an empty
/// non-terminal (a name that exists only because names below it do, RFC 4592 §2.2.2).
#[derive(Debug, Default)]
struct Node {
    rrsets: Vec<(RecordType, Vec<Record>)>,
}

impl Node {
    fn get(&self, rtype: RecordType) -> Option<&[Record]> {
        self.rrsets.iter().find(|(t, _)| *t == rtype).map(|(_, rs)| rs.as_slice())
    }

    fn has(&self, rtype: RecordType) -> bool {
        self.get(rtype).is_some()
    }
}

/// One zone, as loaded from one file.
#[derive(Debug)]
pub struct Zone {
    /// The apex (the SOA owner).
    origin: Name,
    /// Labels in `origin`, counted as `trim_to` counts them.
    origin_labels: usize,
    /// Where it was loaded from, for errors and reloads.
    file: PathBuf,
    /// The SOA record, for negative answers.
    soa: Record,
    /// Every name that exists in the zone, including empty non-terminals. Keys compare
    /// case-insensitively (hickory's `Name` equality and hash ignore ASCII case).
    nodes: HashMap<Name, Node>,
}

/// Labels in a name, counting a leading `*` (unlike `Name::num_labels`).
fn label_count(name: &Name) -> usize {
    name.iter().len()
}

impl Zone {
    /// Parses the text of one zone file; `file` names it in errors and gives the default
    /// origin (its name minus `.zone`).
    pub fn parse(file: &Path, text: &[u8]) -> Result<Self, ZoneError> {
        let default_origin = file
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.strip_suffix(".zone").unwrap_or(n))
            .and_then(|n| Name::from_ascii(n).ok())
            .map(|mut n| {
                n.set_fqdn(true);
                n
            });
        let records = parse::parse(text, default_origin).map_err(|(line, msg)| ZoneError::Line {
            file: file.to_path_buf(),
            line,
            msg,
        })?;
        Self::build(file, records)
    }

    /// Checks the records form a zone (RFC 1034 §4.2, §3.6.2) and indexes them by name.
    fn build(file: &Path, records: Vec<parse::Parsed>) -> Result<Self, ZoneError> {
        let at = |line: u32, msg: String| ZoneError::Line { file: file.to_path_buf(), line, msg };
        let whole = |msg: &str| ZoneError::File { file: file.to_path_buf(), msg: msg.to_owned() };

        let mut soas = records.iter().filter(|p| p.record.record_type() == RecordType::SOA);
        let soa = soas.next().ok_or_else(|| whole("no SOA record: a zone file needs one, at its origin"))?;
        if let Some(second) = soas.next() {
            return Err(at(second.line, format!("second SOA record (the first is on line {})", soa.line)));
        }
        let origin = soa.record.name.clone();
        let soa = soa.record.clone();
        let origin_labels = label_count(&origin);

        let mut nodes: HashMap<Name, Node> = HashMap::new();
        // Line of the first record of each (name, type), for conflict messages.
        let mut first_line: HashMap<(Name, RecordType), u32> = HashMap::new();
        for parse::Parsed { record, line } in records {
            let owner = record.name.clone();
            let rtype = record.record_type();
            if !origin.zone_of(&owner) {
                return Err(at(line, format!("{owner} is outside the zone {origin}")));
            }
            if owner.is_wildcard() && rtype == RecordType::NS {
                return Err(at(line, format!("{owner}: a wildcard cannot own NS records (RFC 4592 §4.2)")));
            }
            let node = nodes.entry(owner.clone()).or_default();
            // RFC 1034 §3.6.2: a CNAME's owner has no other data (and one CNAME).
            let conflict = match rtype {
                RecordType::CNAME => node.rrsets.first().map(|(t, _)| *t),
                _ => node.has(RecordType::CNAME).then_some(RecordType::CNAME),
            };
            if let Some(other) = conflict {
                let other_line = first_line.get(&(owner.clone(), other)).copied().unwrap_or_default();
                let msg = if rtype == other {
                    format!("{owner} has a second CNAME record (the first is on line {other_line})")
                } else {
                    format!("{owner} has a CNAME and other records (RFC 1034 §3.6.2; see line {other_line})")
                };
                return Err(at(line, msg));
            }
            first_line.entry((owner.clone(), rtype)).or_insert(line);
            match node.rrsets.iter_mut().find(|(t, _)| *t == rtype) {
                Some((_, set)) => {
                    // An RRset has one TTL (RFC 2181 §5.2); like BIND, the first one wins.
                    let mut record = record;
                    record.ttl = set.first().map_or(record.ttl, |r| r.ttl);
                    if !set.iter().any(|r| r.data == record.data) {
                        set.push(record);
                    }
                }
                None => node.rrsets.push((rtype, vec![record])),
            }
            // The names between the apex and the owner exist too (empty non-terminals).
            for k in origin_labels + 1..label_count(&owner) {
                nodes.entry(owner.trim_to(k)).or_default();
            }
        }
        if nodes.get(&origin).is_none_or(|n| !n.has(RecordType::NS)) {
            return Err(whole("no NS records at the zone origin"));
        }
        Ok(Self { origin, origin_labels, file: file.to_path_buf(), soa, nodes })
    }

    /// The zone apex.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The file the zone was loaded from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Number of records in the zone.
    pub fn record_count(&self) -> usize {
        self.nodes.values().flat_map(|n| &n.rrsets).map(|(_, rs)| rs.len()).sum()
    }
}

/// Every static zone served, longest origin first so the first match is the closest.
#[derive(Clone, Default)]
pub struct ZoneSet {
    zones: Vec<Arc<Zone>>,
}

impl fmt::Debug for ZoneSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.zones.iter().map(|z| (z.origin.to_ascii(), z.file.display()))).finish()
    }
}

/// The `*.zone` files of a directory, in name order.
fn zone_files(dir: &Path) -> Result<Vec<PathBuf>, ZoneError> {
    let read_err = |source| ZoneError::Read { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_some_and(|e| e == "zone") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl ZoneSet {
    /// A set of parsed zones; two zones with the same origin are an error naming both files.
    pub fn from_zones(zones: impl IntoIterator<Item = Zone>) -> Result<Self, ZoneError> {
        let mut set = Self::default();
        for zone in zones {
            set.insert(Arc::new(zone))?;
        }
        Ok(set)
    }

    fn insert(&mut self, zone: Arc<Zone>) -> Result<(), ZoneError> {
        if let Some(other) = self.zones.iter().find(|z| z.origin == zone.origin) {
            return Err(ZoneError::File {
                file: zone.file.clone(),
                msg: format!("zone {} is already loaded from {}", zone.origin, other.file.display()),
            });
        }
        let pos = self.zones.partition_point(|z| z.origin_labels >= zone.origin_labels);
        self.zones.insert(pos, zone);
        Ok(())
    }

    /// Loads every `*.zone` file in `dir`; the first broken file fails the whole load.
    pub fn load_dir(dir: &Path) -> Result<Self, ZoneError> {
        let (set, errors) = Self::default().reload_dir(dir);
        match errors.into_iter().next() {
            Some(err) => Err(err),
            None => Ok(set),
        }
    }

    /// Loads `dir` again, per file: a file that fails keeps the version of it in `self`
    /// (if any) and is reported; files that parse replace theirs; removed files are dropped.
    /// If the directory itself cannot be read, everything in `self` is kept.
    pub fn reload_dir(&self, dir: &Path) -> (Self, Vec<ZoneError>) {
        let files = match zone_files(dir) {
            Ok(files) => files,
            Err(err) => return (self.clone(), vec![err]),
        };
        let mut errors = Vec::new();
        let mut next = Self::default();
        let mut failed = Vec::new();
        for file in files {
            let parsed = std::fs::read(&file)
                .map_err(|source| ZoneError::Read { path: file.clone(), source })
                .and_then(|text| Zone::parse(&file, &text));
            match parsed.and_then(|zone| next.insert(Arc::new(zone))) {
                Ok(()) => {}
                Err(err) => {
                    errors.push(err);
                    failed.push(file);
                }
            }
        }
        // Previous versions of the files that failed, unless a good file now serves the origin.
        for zone in self.zones.iter().filter(|z| failed.contains(&z.file)) {
            if let Err(err) = next.insert(zone.clone()) {
                // Reported once, even when the new version failed for the same conflict.
                if !errors.iter().any(|e| e.to_string() == err.to_string()) {
                    errors.push(err);
                }
            }
        }
        (next, errors)
    }

    /// True when no zone is loaded (the DNS path skips the lookup).
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zones, longest origin first.
    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter().map(AsRef::as_ref)
    }
}

/// A static zone's answer to one question, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneAnswer {
    /// RCODE: NOERROR, NXDOMAIN, or NOTIMP for zone transfers.
    pub rcode: ResponseCode,
    /// AA: set for data of the zone, clear for referrals to a delegated child.
    pub authoritative: bool,
    /// Answer section, owner names spelled as in the question (CNAME chains: as in the
    /// CNAME that led there).
    pub answers: Vec<Record>,
    /// Authority section: the SOA for NXDOMAIN/NODATA, the child's NS for referrals.
    pub authorities: Vec<Record>,
    /// Additional section: addresses of in-zone MX, SRV and NS targets (glue for referrals).
    pub additionals: Vec<Record>,
}

/// The name an answer record points at, whose in-zone addresses go in Additional (MX
/// exchange, SRV target, NS name); `None` for other types.
pub(crate) fn additional_target(record: &Record) -> Option<&Name> {
    match &record.data {
        RData::MX(mx) => Some(&mx.exchange),
        RData::SRV(srv) => Some(&srv.target),
        RData::NS(ns) => Some(&ns.0),
        _ => None,
    }
}

/// Whether `name` is `domain` or below it (`domain` as in `DnsContext`: `consul.`), ignoring
/// ASCII case; compares labels in place, without allocating.
pub(crate) fn name_under(name: &Name, domain: &str) -> bool {
    let mut wanted = domain.split('.').filter(|l| !l.is_empty()).rev();
    let mut have = name.iter().rev();
    loop {
        match (wanted.next(), have.next()) {
            (None, _) => return true,
            (Some(_), None) => return false,
            (Some(w), Some(h)) if w.as_bytes().eq_ignore_ascii_case(h) => {}
            (Some(_), Some(_)) => return false,
        }
    }
}
