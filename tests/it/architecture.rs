//! Architecture invariants checked on the source tree (rust-analyzer's "tidy" tests).
//!
//! These are the invariants of ARCHITECTURE.md that the type system does not enforce,
//! including the import direction between the top-level modules of src/ (`LAYERS`).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn src(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(sub)
}

/// Non-test code of a file: everything before a `#[cfg(test)]` module and outside `tests.rs`.
fn code(p: &Path) -> String {
    if p.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(p).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for p in rust_files(&src(dir)) {
        let text = code(&p);
        for f in forbidden {
            if text.contains(f) {
                bad.push(format!("{} uses {f}", p.display()));
            }
        }
    }
    bad
}

#[test]
fn dns_path_takes_no_lock_opens_no_lmdb_txn_and_never_touches_raft() {
    let bad = offenders(
        "dns",
        &[
            "Mutex",
            "RwLock",
            "crate::raft",
            "crate::store",
            "heed",
            "read_txn",
            "write_txn",
            "crate::http",
            ".lock()",
            // Under ACLs DNS loads the precomputed `DnsView`; resolving a token takes the
            // resolver's locks, so DNS never reaches the resolver itself.
            "AclResolver",
            "refresh_dns_view",
        ],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn static_zone_lookup_is_pure_and_takes_no_lock() {
    let text = code(&src("zone/lookup.rs"));
    for f in
        ["Mutex", "RwLock", ".lock()", "std::fs", "tokio", "SystemTime", "Instant", "rand::", "crate::raft"]
    {
        assert!(!text.contains(f), "zone/lookup.rs uses {f}");
    }
}

#[test]
fn apply_is_deterministic() {
    for file in ["catalog/apply.rs", "catalog/apply/kv.rs", "catalog/command.rs", "catalog/kv.rs"] {
        // Code lines only: the module doc may name what apply avoids.
        let text: String = code(&src(file))
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for f in ["Instant", "SystemTime", "rand::", "rng", "std::fs", "tokio", "env::"] {
            assert!(!text.contains(f), "{file} uses {f}");
        }
    }
}

#[test]
fn only_the_state_machine_mutates_the_catalog() {
    let mutators = [
        "upsert_node(",
        "delete_node(",
        "upsert_service(",
        "delete_service(",
        "upsert_check(",
        "delete_check(",
        "upsert_query(",
        "delete_query(",
        "put_entry(",
        "delete_entry(",
        "upsert_session(",
        "remove_session(",
        "set_lock_delay(",
        "settle_clock(",
        "reap_tombstones(",
        "kv_mut(",
    ];
    let mut bad = Vec::new();
    for p in rust_files(&src("")) {
        let rel = p.strip_prefix(src("")).unwrap().to_string_lossy().into_owned();
        if rel.starts_with("catalog/") {
            continue;
        }
        let text = code(&p);
        for m in mutators {
            if text.contains(&format!(".{m}")) {
                bad.push(format!("{rel} calls {m}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn consul_json_shapes_live_only_in_the_http_layer() {
    let mut bad = Vec::new();
    for dir in ["catalog", "dns", "raft", "snapshot", "store", "health", "config", "local"] {
        bad.extend(offenders(dir, &["PascalCase", "\"ServiceID\"", "\"CheckID\""]));
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// Persisted and wire bytes (Raft log, LMDB rows and meta, snapshots, RPC frames, backups,
/// gossip meta, the agent's local files) are encoded only in `codec`; http, cli, config and
/// agent speak Consul's own JSON and are not checked.
#[test]
fn persisted_and_wire_formats_are_encoded_only_in_the_codec() {
    let encoders = ["serde_json", "SerdeJson", "bincode", "rmp_serde", "postcard", "ciborium"];
    let mut bad = Vec::new();
    for dir in ["raft", "store", "rpc", "replica", "gossip", "local", "snapshot", "session", "backup"] {
        bad.extend(offenders(dir, &encoders));
    }
    for file in ["serve_rpc.rs", "consensus.rs"] {
        let text = code(&src(file));
        bad.extend(encoders.iter().filter(|f| text.contains(**f)).map(|f| format!("src/{file} uses {f}")));
    }
    assert!(bad.is_empty(), "encode through crate::codec instead: {bad:#?}");
}

#[test]
fn the_agent_local_state_feeds_the_catalog_only_through_proposals() {
    // It reads published snapshots and proposes; no store, no Raft internals, no HTTP shapes.
    let bad =
        offenders("local", &["crate::store", "heed", ".raft()", "client_write", "crate::http", "crate::rpc"]);
    assert!(bad.is_empty(), "{bad:#?}");
    let text: String = rust_files(&src("local")).iter().map(|p| code(p)).collect();
    assert!(text.contains(".propose("), "local/ proposes its changes");
}

#[test]
fn only_the_state_machine_or_a_client_replica_publishes_snapshots() {
    let mut bad = Vec::new();
    for p in rust_files(&src("")) {
        let rel = p.strip_prefix(src("")).unwrap().to_string_lossy().into_owned();
        // A client agent has no state machine: its replica (`replica/client.rs`) publishes.
        if rel.starts_with("raft/state_machine") || rel.starts_with("snapshot/") || rel == "replica/client.rs"
        {
            continue;
        }
        if code(&p).contains(".publish(") {
            bad.push(rel);
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut bad = Vec::new();
    for p in rust_files(&src("")) {
        let text = std::fs::read_to_string(&p).unwrap();
        if !text.starts_with("//!") {
            bad.push(p.display().to_string());
        }
    }
    assert!(bad.is_empty(), "files without a leading //! doc: {bad:#?}");
}

// ---- Import direction between the top-level modules of src/ ----

/// The top-level modules of src/, bottom layer first. A module may import (`crate::<module>`)
/// only modules of a LOWER layer: modules of one layer never import each other, so the
/// graph has no cycle. A new top-level module must be placed here.
const LAYERS: &[&[&str]] = &[
    // Vocabulary: time, and the catalog with its write commands and the pure `apply`;
    // systemd's socket activation and readiness notification (imports nothing of cairn).
    // ACL policy rules and the authorizer (pure; the catalog stores tokens and policies);
    // `?filter=` expressions over JSON items (pure; go-bexpr's grammar and semantics);
    // the log tap `/v1/agent/monitor` reads (imports nothing of cairn); the process's own
    // profiles for `/debug/pprof/*` (imports nothing of cairn).
    &["acl", "filter", "log_stream", "profile"],
    &["clock", "catalog", "systemd"],
    // Consul's service/check definitions.
    &["agent"],
    // Configuration: imports domain types only.
    &["config"],
    // TLS: certificates and rustls configurations from the configuration's settings.
    &["tls"],
    // The encoding of every persisted and wire format (imports nothing of cairn).
    &["codec"],
    // The read model, the LMDB store, backups.
    &["snapshot", "store", "backup"],
    &["metrics"],
    // Server-RPC wire types, framing, the connection pool.
    &["rpc"],
    // The handle writers and readers hold: propose, read barrier, the cluster's view.
    &["consensus"],
    // The ACL state reader (token -> authorizer over the published snapshot) and the
    // leader's ACL duties; used by DNS and HTTP.
    &["acl_state"],
    // Its two halves' engines and the gossip pool: raft (servers) never imports replica.
    &["raft", "gossip"],
    // A client's replica (a `consensus::Participant`), sessions, the agent's local state.
    &["replica", "session", "local"],
    // Check runners; the server-RPC listener that routes to raft, replica and session.
    &["health", "serve_rpc"],
    // The DNS side: static zones below the DNS pipeline that answers from them.
    &["zone"],
    &["dns"],
    // Consul's HTTP API.
    &["http"],
    // Startup and the command line.
    &["app", "cli"],
];

/// Same-layer imports allowed explicitly (none today).
const PEERS: &[(&str, &str)] = &[];

/// Removes comments and string/char literals, so neither a doc comment naming a module nor a
/// brace inside a string confuses what follows.
fn strip_comments_and_literals(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'#' | b'"')) && !ident_byte(b, i.wrapping_sub(1))
        {
            // Raw string r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && b[j + 1..].iter().take(hashes).filter(|&&h| h == b'#').count() == hashes {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}', '{') or a lifetime ('a).
            if b.get(i + 1) == Some(&b'\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != b'\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            // Multi-byte UTF-8 outside literals is copied byte-run by byte-run.
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_byte(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `text` without its `#[cfg(test)]` items (an inline test module, a test helper) and without
/// the names of `#[cfg(test)] mod x;` files, which are returned apart.
fn strip_test_items(text: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at + "#[cfg(test)]".len()..];
        let semi = item.find(';').unwrap_or(item.len());
        let brace = item.find('{').unwrap_or(item.len());
        if semi < brace {
            // `mod name;` (a test-only file) or a `use`.
            let decl = item[..semi].trim();
            if let Some(name) = decl.rsplit_once("mod ").map(|(_, n)| n.trim()) {
                test_mods.push(name.to_owned());
            }
            rest = &item[(semi + 1).min(item.len())..];
        } else {
            let mut depth = 0usize;
            let mut end = item.len();
            for (k, ch) in item.char_indices().skip_while(|(k, _)| *k < brace) {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = &item[end..];
        }
    }
    out.push_str(rest);
    (out, test_mods)
}

/// The top-level module names in a `crate::` path list, e.g. `crate::{a::X, b::{c, d}}`.
fn crate_refs(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    for (at, _) in code.match_indices("crate::") {
        if ident_byte(b, at.wrapping_sub(1)) || (at > 0 && b[at - 1] == b'$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: the first identifier after `{` and after each
            // comma at depth 0.
            let mut depth = 0;
            let mut expect = true;
            let mut name = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect = true,
                    c if expect && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if expect && !name.is_empty() => {
                        out.push(std::mem::take(&mut name));
                        expect = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                out.push(name);
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push(name);
        }
    }
    out
}

/// Every import `(from, to, file)` between two different top-level modules of src/, test code
/// excluded (`tests.rs`, `*_tests.rs`, `#[cfg(test)]` items and the files they declare).
fn module_imports() -> Vec<(String, String, String)> {
    let root = src("");
    let files = rust_files(&root);
    let rel = |p: &Path| p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
    let mut test_files: Vec<String> = Vec::new();
    let mut parsed = Vec::new();
    for p in &files {
        let r = rel(p);
        let (code, test_mods) =
            strip_test_items(&strip_comments_and_literals(&std::fs::read_to_string(p).unwrap()));
        // The directory a `mod x;` in this file resolves in.
        let dir = if r == "lib.rs" || r == "main.rs" {
            String::new()
        } else if r.ends_with("/mod.rs") {
            r.trim_end_matches("mod.rs").to_owned()
        } else {
            format!("{}/", r.trim_end_matches(".rs"))
        };
        for m in test_mods {
            test_files.push(format!("{dir}{m}.rs"));
            test_files.push(format!("{dir}{m}/"));
        }
        parsed.push((r, code));
    }
    let modules = top_level_modules();
    let mut edges = Vec::new();
    for (r, code) in parsed {
        let name = r.rsplit('/').next().unwrap_or("");
        if name == "tests.rs"
            || name.ends_with("_tests.rs")
            || r == "lib.rs"
            || r == "main.rs"
            || test_files.iter().any(|t| r == *t || (t.ends_with('/') && r.starts_with(t.as_str())))
        {
            continue;
        }
        let from = r.split('/').next().unwrap_or("").trim_end_matches(".rs").to_owned();
        for to in crate_refs(&code) {
            if to != from
                && modules.contains(&to)
                && !edges.iter().any(|(f, t, file)| *f == from && *t == to && *file == r)
            {
                edges.push((from.clone(), to, r.clone()));
            }
        }
    }
    edges
}

fn top_level_modules() -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(src("")).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            out.push(name);
        } else if let Some(m) = name.strip_suffix(".rs").filter(|m| *m != "lib" && *m != "main") {
            out.push(m.to_owned());
        }
    }
    out.sort();
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_top_level_module_has_a_layer() {
    let missing: Vec<String> = top_level_modules().into_iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "top-level modules missing from LAYERS in tests/it/architecture.rs: {missing:?}"
    );
}

#[test]
fn modules_import_only_lower_layers() {
    let mut bad = Vec::new();
    for (from, to, file) in module_imports() {
        if PEERS.contains(&(from.as_str(), to.as_str())) {
            continue;
        }
        let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to)) else { continue };
        if b >= a {
            let how = if a == b { "the same layer" } else { "a higher layer" };
            bad.push(format!("src/{file}: `{from}` imports `crate::{to}`, which is in {how}"));
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layer order (LAYERS in tests/it/architecture.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let edges: Vec<(String, String)> = module_imports().into_iter().map(|(f, t, _)| (f, t)).collect();
    // Depth-first search from every module; a module met again on the current path closes a cycle.
    fn visit(
        m: &str,
        edges: &[(String, String)],
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_owned());
            return Some(cycle);
        }
        if done.iter().any(|d| d == m) {
            return None;
        }
        path.push(m.to_owned());
        for (_, to) in edges.iter().filter(|(f, _)| f == m) {
            if let Some(c) = visit(to, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.push(m.to_owned());
        None
    }
    let mut done = Vec::new();
    for m in top_level_modules() {
        if let Some(cycle) = visit(&m, &edges, &mut Vec::new(), &mut done) {
            panic!("import cycle between top-level modules: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn named_import_directions_hold() {
    let edges = module_imports();
    let imports = |from: &str, to: &str| {
        edges.iter().find(|(f, t, _)| f == from && t == to).map(|(_, _, file)| file.clone())
    };
    assert_eq!(imports("raft", "replica"), None, "raft must not import replica");
    assert_eq!(imports("rpc", "raft"), None, "rpc (wire types) must not import raft");
    for low in ["catalog", "config"] {
        let up: Vec<_> = edges
            .iter()
            .filter(|(f, _, _)| f == low)
            .filter(|(_, t, _)| layer_of(t) >= layer_of(low))
            .collect();
        assert!(up.is_empty(), "{low} imports a module above it: {up:?}");
    }
}

#[test]
fn the_import_parser_sees_groups_and_skips_test_code() {
    let code = "use crate::{a::X, b::{c, d}, e};\nfn f() { crate::g::h(); let s = \"crate::z\"; }\n// crate::y\n#[cfg(test)]\nmod tests { use crate::w; }\n";
    let (code, _) = strip_test_items(&strip_comments_and_literals(code));
    assert_eq!(crate_refs(&code), ["a", "b", "e", "g"]);
}

/// The code of one line as far as braces go: without `//` comments, string and char
/// literals (a string spanning lines counts its braces, which in this tree are balanced).
fn braces_of_line(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '"' => {
                while let Some(s) = chars.next() {
                    match s {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                // '{' or '}' as a char literal; a lifetime ('a) has no closing quote nearby.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("{'") || rest.starts_with("}'") {
                    chars.next();
                    chars.next();
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Whether `p` holds only tests (`tests.rs`, `*_tests.rs`).
fn is_test_file(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == "tests.rs" || n.ends_with("_tests.rs"))
}

/// The lines of a file before its `#[cfg(test)]` module, if any.
fn lines_before_tests(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| {
            w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod ") && w[1].contains('{')
        })
        .unwrap_or(lines.len());
    lines[..end].to_vec()
}

/// Files over 600 lines and functions over 80, outside tests, unless a `// length:` comment
/// (in the file's first 40 lines, or just above the function) says why.
#[test]
fn no_function_over_80_lines_and_no_file_over_600_lines() {
    const FILE_MAX: usize = 600;
    const FN_MAX: usize = 80;
    let mut bad = Vec::new();
    for p in rust_files(&src("")).into_iter().filter(|p| !is_test_file(p)) {
        let text = std::fs::read_to_string(&p).unwrap();
        let lines = lines_before_tests(&text);
        let excused = |at: usize| lines[at.saturating_sub(3)..at].iter().any(|l| l.contains("// length:"));
        if lines.len() > FILE_MAX && !lines.iter().take(40).any(|l| l.contains("// length:")) {
            bad.push(format!("{}: {} lines", p.display(), lines.len()));
        }
        let code: Vec<String> = lines.iter().map(|l| braces_of_line(l)).collect();
        for i in 0..code.len() {
            let t = lines[i].trim_start();
            let t = t.strip_prefix("pub(crate) ").or_else(|| t.strip_prefix("pub(super) ")).unwrap_or(t);
            let t = t.strip_prefix("pub ").unwrap_or(t);
            let t = t.strip_prefix("async ").unwrap_or(t);
            if !t.starts_with("fn ") {
                continue;
            }
            let (mut depth, mut opened) = (0i32, false);
            for (j, l) in code.iter().enumerate().skip(i) {
                for ch in l.chars() {
                    match ch {
                        '{' => (depth, opened) = (depth + 1, true),
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if !opened && l.trim_end().ends_with(';') {
                    break;
                }
                if opened && depth <= 0 {
                    let len = j - i + 1;
                    if len > FN_MAX && !excused(i.min(lines.len())) {
                        bad.push(format!("{}:{}: fn of {len} lines", p.display(), i + 1));
                    }
                    break;
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "over the size limits of ARCHITECTURE.md (split, or say why in a `// length:` comment):\n{}",
        bad.join("\n")
    );
}
