//! ACL RULES, parse step 0 (a fallback): Consul's HCL 1 one-line forms laid out as HCL 2.
//!
//! Input: a rules text that hcl-rs refused. Output: the same text with line breaks added
//! where HCL 1 needs none and HCL 2 needs one, for hcl-rs to try again; `parse` reports the
//! first attempt's error if the second fails too, so positions always refer to the caller's
//! text.
//!
//! Why this exists: Consul 1.8 parses Rules with HCL 1 (hashicorp/hcl v1), and hcl-rs, the
//! maintained Rust HCL parser, implements HCL 2. HCL 1 accepts several items on one line
//! (`service "web" { policy = "write"  intentions = "read" }`, spec §1.5; `key "a" {...}
//! key "b" {...}`), a closing brace after an item (`{\n policy = "read" }`) and commas
//! between block items (`{ policy = "read", }`); HCL 2 refuses all of them. The grammar stays
//! hcl-rs's: this pass only inserts newlines after `{`, around `}`, between a quoted value
//! and the identifier that follows it on the same line, and turns a comma directly inside
//! braces into a newline. Quoted strings, comments and heredocs are copied unchanged.
//!
//! Invariants: never panics; output length is at most three times the input's; non-ASCII
//! bytes are copied as they are, so the output is valid UTF-8.

/// `text` with HCL 1's one-line layouts broken into HCL 2 lines, or `None` if the result is
/// not UTF-8 (it always is; the check keeps this total without a panic path).
pub(super) fn hcl2_lines(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() + b.len() / 4 + 8);
    // Open `{`, `[` and `(` (unbalanced closers are copied and ignored).
    let mut open: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let copied = match c {
            b'"' => string_end(b, i),
            b'#' => line_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'/') => line_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => comment_end(b, i),
            b'<' if b.get(i + 1) == Some(&b'<') => heredoc_end(b, i).unwrap_or(i),
            _ => i,
        };
        if copied > i {
            out.extend_from_slice(&b[i..copied]);
            i = copied;
            if c == b'"' && in_body(&open) && identifier_follows(b, i) {
                out.push(b'\n');
            }
            continue;
        }
        match c {
            b'{' => {
                open.push(c);
                out.extend_from_slice(b"{\n");
            }
            b'[' | b'(' => {
                open.push(c);
                out.push(c);
            }
            b'}' => {
                open.pop();
                out.extend_from_slice(b"\n}");
                if in_body(&open) {
                    out.push(b'\n');
                }
            }
            b']' | b')' => {
                open.pop();
                out.push(c);
            }
            b',' if open.last() == Some(&b'{') => out.push(b'\n'),
            _ => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Inside a body or an object (where HCL 2 separates items by newlines), not a list or call.
fn in_body(open: &[u8]) -> bool {
    matches!(open.last(), None | Some(b'{'))
}

/// Whether an identifier starts after blanks on the same line (a new item after a value).
fn identifier_follows(b: &[u8], mut i: usize) -> bool {
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    b.get(i).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
}

/// End (exclusive) of the quoted string starting at `start`: after its closing quote, or at
/// the end of its line if unterminated (the parser reports that).
fn string_end(b: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            b'\n' => return j,
            _ => j += 1,
        }
    }
    b.len()
}

/// End (exclusive) of a `#` or `//` comment: its newline stays for the normal pass.
fn line_end(b: &[u8], start: usize) -> usize {
    b[start..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| start + p)
}

/// End (exclusive) of a `/* */` comment starting at `start`.
fn comment_end(b: &[u8], start: usize) -> usize {
    let body = start + 2;
    b.get(body..).and_then(|rest| rest.windows(2).position(|w| w == b"*/")).map_or(b.len(), |p| body + p + 2)
}

/// End (exclusive) of a heredoc `<<ID` / `<<-ID` starting at `start`: the end of the line
/// that closes it (or of the text). `None` if `<<` does not open a heredoc.
fn heredoc_end(b: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 2;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    let id_start = j;
    while b.get(j).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-') {
        j += 1;
    }
    let id = &b[id_start..j];
    if b.get(j) == Some(&b'\r') {
        j += 1;
    }
    if id.is_empty() || b.get(j) != Some(&b'\n') {
        return None;
    }
    let mut line = j + 1;
    while line < b.len() {
        let end = line_end(b, line);
        if b[line..end].trim_ascii() == id {
            return Some(end);
        }
        line = end + 1;
    }
    Some(b.len())
}
