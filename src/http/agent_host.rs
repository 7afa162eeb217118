//! `GET /v1/agent/host`: the host the agent runs on, in Consul 1.8.7's shape (gopsutil's
//! `Memory`, `CPU`, `Host`, `Disk`, plus `CollectionTime` and `Errors`).
//!
//! Stage: agent read view (IO at the edge: `/proc`, `/sys`, `/etc/os-release`, `statvfs` of the
//! data dir). Input: nothing but the request → output: the JSON object.
//! Invariants: needs `operator:read` with ACLs on (Consul's rule); every number is read from
//! the host, never filled in: a part that cannot be read is left out and its reason listed
//! in `Errors` (null when everything was read), as Consul does; the reads run on the blocking
//! pool, not on the async workers.
//!
//! Why our own code: Consul uses gopsutil; the Rust crates that do the same (sysinfo and
//! kin) pull in a large dependency for what is a handful of `/proc` files on Linux, the only
//! platform cairn packages for, and none of them keeps gopsutil's field names and units.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::{Map, Value, json as js};

use super::error::ApiError;
use super::query::Query;
use super::token::{Acl, require};
use super::{ApiState, json};

pub(super) async fn host(
    State(st): State<ApiState>,
    acl: Acl,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require(acl.operator_read())?;
    let q = Query::parse(q.as_deref());
    let data_dir = st.config.data_dir.clone();
    let body = tokio::task::spawn_blocking(move || collect(&data_dir))
        .await
        .map_err(|e| ApiError::Internal(format!("collecting host information: {e}")))?;
    Ok(json(&body, q.has("pretty")))
}

/// Reads every part; a failed part is named in `Errors`.
fn collect(data_dir: &Path) -> Value {
    let mut errors = Vec::new();
    let mut body = Map::new();
    let parts: [(&str, Result<Value, String>); 4] =
        [("Memory", memory()), ("CPU", cpu()), ("Host", host_info()), ("Disk", disk(data_dir))];
    for (name, part) in parts {
        match part {
            Ok(v) => {
                body.insert(name.into(), v);
            }
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    body.insert("CollectionTime".into(), js!(u64::try_from(now.as_nanos()).unwrap_or(u64::MAX)));
    body.insert("Errors".into(), if errors.is_empty() { Value::Null } else { js!(errors) });
    Value::Object(body)
}

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

/// `/proc/meminfo` as gopsutil's `VirtualMemoryStat` (bytes).
fn memory() -> Result<Value, String> {
    let text = read("/proc/meminfo")?;
    let kb: BTreeMap<&str, u64> = text
        .lines()
        .filter_map(|l| {
            let (k, rest) = l.split_once(':')?;
            let mut words = rest.split_whitespace();
            let n: u64 = words.next()?.parse().ok()?;
            Some((k, if words.next() == Some("kB") { n * 1024 } else { n }))
        })
        .collect();
    let get = |k: &str| kb.get(k).copied().unwrap_or(0);
    let total = get("MemTotal");
    let (free, buffers, cached) = (get("MemFree"), get("Buffers"), get("Cached") + get("SReclaimable"));
    let used = total.saturating_sub(free + buffers + cached);
    let percent = if total == 0 { 0.0 } else { used as f64 / total as f64 * 100.0 };
    let mut m = js!({
        "total": total, "available": get("MemAvailable"), "used": used, "usedPercent": percent,
        "free": free, "buffers": buffers, "cached": cached,
    });
    for (key, field) in [
        ("active", "Active"),
        ("inactive", "Inactive"),
        ("writeback", "Writeback"),
        ("dirty", "Dirty"),
        ("writebacktmp", "WritebackTmp"),
        ("shared", "Shmem"),
        ("slab", "Slab"),
        ("sreclaimable", "SReclaimable"),
        ("sunreclaim", "SUnreclaim"),
        ("pagetables", "PageTables"),
        ("swapcached", "SwapCached"),
        ("commitlimit", "CommitLimit"),
        ("committedas", "Committed_AS"),
        ("swaptotal", "SwapTotal"),
        ("swapfree", "SwapFree"),
        ("mapped", "Mapped"),
        ("vmalloctotal", "VmallocTotal"),
        ("vmallocused", "VmallocUsed"),
        ("vmallocchunk", "VmallocChunk"),
        ("hugepagestotal", "HugePages_Total"),
        ("hugepagesfree", "HugePages_Free"),
        ("hugepagesize", "Hugepagesize"),
    ] {
        m[key] = get(field).into();
    }
    Ok(m)
}

/// `/proc/cpuinfo` as gopsutil's `[]InfoStat`, one entry per logical CPU.
fn cpu() -> Result<Value, String> {
    let text = read("/proc/cpuinfo")?;
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| b.contains("processor")) {
        let f: BTreeMap<&str, &str> =
            block.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim(), v.trim())).collect();
        let s = |k: &str| f.get(k).copied().unwrap_or("");
        let n = |k: &str| s(k).parse::<i64>().unwrap_or(0);
        let cache_kb: i64 =
            s("cache size").split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0);
        out.push(js!({
            "cpu": n("processor"), "vendorId": s("vendor_id"), "family": s("cpu family"),
            "model": s("model"), "stepping": n("stepping"), "physicalId": s("physical id"),
            "coreId": s("core id"), "cores": n("cpu cores"), "modelName": s("model name"),
            "mhz": s("cpu MHz").parse::<f64>().unwrap_or(0.0), "cacheSize": cache_kb,
            "flags": s("flags").split_whitespace().collect::<Vec<_>>(), "microcode": s("microcode"),
        }));
    }
    Ok(Value::Array(out))
}

/// `/etc/os-release` keys without their quotes.
fn os_release() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// gopsutil's `host.InfoStat`: name, uptime, boot time, processes, platform and kernel.
fn host_info() -> Result<Value, String> {
    let uptime: f64 =
        read("/proc/uptime")?.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stat = read("/proc/stat")?;
    let boot: u64 = stat.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok()).unwrap_or(0);
    let procs = std::fs::read_dir("/proc")
        .map_err(|e| format!("/proc: {e}"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .count();
    let os = os_release();
    let platform = os.get("ID").cloned().unwrap_or_default();
    let family = os.get("ID_LIKE").and_then(|l| l.split_whitespace().next().map(str::to_owned));
    let version = std::fs::read_to_string("/etc/debian_version")
        .ok()
        .filter(|_| platform == "debian")
        .or_else(|| os.get("VERSION_ID").cloned())
        .unwrap_or_default();
    let hostid = read("/sys/class/dmi/id/product_uuid").or_else(|_| read("/proc/sys/kernel/random/boot_id"));
    Ok(js!({
        "hostname": hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        "uptime": uptime as u64,
        "bootTime": boot,
        "procs": procs,
        "os": std::env::consts::OS,
        "platform": platform,
        "platformFamily": family.unwrap_or_else(|| platform.clone()),
        "platformVersion": version.trim(),
        "kernelVersion": read("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "kernelArch": std::env::consts::ARCH,
        "virtualizationSystem": "",
        "virtualizationRole": "",
        "hostid": hostid.unwrap_or_default().trim().to_ascii_lowercase(),
    }))
}

/// The file system type of the longest mount point holding `path` (`/proc/mounts`).
fn fstype(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (_, point, kind) = (w.next()?, w.next()?, w.next()?);
            path.starts_with(point).then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
        .unwrap_or_default()
}

/// gopsutil's `disk.UsageStat` of the data dir's file system.
// `c_ulong` and `fsblkcnt_t` are `u64` on 64-bit Linux only; the conversions keep 32-bit builds.
#[allow(clippy::useless_conversion)]
fn disk(data_dir: &Path) -> Result<Value, String> {
    let path: PathBuf = std::fs::canonicalize(data_dir).unwrap_or_else(|_| PathBuf::from("/"));
    let s = nix::sys::statvfs::statvfs(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let frsize = u64::from(s.fragment_size());
    let (blocks, bfree, bavail) =
        (u64::from(s.blocks()), u64::from(s.blocks_free()), u64::from(s.blocks_available()));
    let (files, ffree) = (u64::from(s.files()), u64::from(s.files_free()));
    let (total, free, used) = (blocks * frsize, bavail * frsize, (blocks - bfree.min(blocks)) * frsize);
    let pct = |part: u64, whole: u64| if whole == 0 { 0.0 } else { part as f64 / whole as f64 * 100.0 };
    let inodes_used = files.saturating_sub(ffree);
    Ok(js!({
        "path": path.display().to_string(),
        "fstype": fstype(&path),
        "total": total,
        "free": free,
        "used": used,
        "usedPercent": pct(used, used + free),
        "inodesTotal": files,
        "inodesUsed": inodes_used,
        "inodesFree": ffree,
        "inodesUsedPercent": pct(inodes_used, files),
    }))
}
