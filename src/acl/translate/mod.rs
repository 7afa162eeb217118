//! TRANSLATE: a legacy (pre-1.4) token's rules -> the same rules in the current syntax, as
//! Consul 1.8's `acl.TranslateLegacyRules` prints them (`/v1/acl/rules/translate`,
//! `consul acl translate-rules`).
//!
//! ```text
//! text --scan--> tokens --tree (HCL) | json (JSON)--> File --rename--> File --print--> text
//! ```
//!
//! What Consul does, and so does this [live on 1.8.7]: every item (at any depth) whose first
//! key is `agent`, `key`, `node`, `query`, `service`, `session` or `event` (quoted or not,
//! case-sensitive) gets that kind's `_prefix` name, and `policy` is written bare; nothing else
//! changes meaning. The text is re-printed by HCL 1's printer (`print`): two-space indent,
//! comments kept, one blank line between top-level items. A text HCL 1 cannot parse is
//! `Failed to parse rules: At L:C: ...`.
//!
//! Why our own code rather than hcl-rs (which `acl::syntax` uses to read rules): the output must
//! be HCL 1's printer's byte for byte, which depends on HCL 1's comment attachment and on source
//! line positions; hcl-rs parses HCL 2, drops comments and formats differently. The pieces here
//! are small (a scanner, a one-token-look-ahead parser, a printer) and pinned by tests taken
//! from live Consul. Known differences, always for inputs legacy rules do not use: heredocs are
//! refused, and some of HCL 1's syntax error texts differ (same prefix and `At L:C:` layout).
//!
//! Invariants: pure; never panics on any input (fuzzed: rules arrive over HTTP); the output of
//! a text that parses as legacy rules parses as current rules with the same meaning (proptest).

mod json;
mod print;
mod scan;
mod tree;

#[cfg(test)]
mod tests;

use tree::{File, Item, Value};

/// Why a text could not be translated. The Display text is Consul's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TranslateError {
    /// HCL 1 (or its JSON form) could not parse the text.
    #[error("Failed to parse rules: {0}")]
    Parse(String),
}

/// Translates legacy rules to the current syntax.
pub(crate) fn translate_legacy_rules(text: &str) -> Result<String, TranslateError> {
    let mut file: File =
        if text.trim_start().starts_with('{') { json::parse(text) } else { tree::parse(text) }
            .map_err(TranslateError::Parse)?;
    rename(&mut file.items);
    Ok(print::print(&file))
}

/// The new name of a first key, if it changes.
fn renamed(key: &str) -> Option<&'static str> {
    Some(match key {
        "policy" => "policy",
        "agent" => "agent_prefix",
        "key" => "key_prefix",
        "node" => "node_prefix",
        "query" => "query_prefix",
        "service" => "service_prefix",
        "session" => "session_prefix",
        "event" => "event_prefix",
        _ => return None,
    })
}

fn rename(items: &mut [Item]) {
    for item in items {
        if let Some(first) = item.keys.first_mut() {
            let bare = match first.token.kind {
                scan::Kind::String => unquote(&first.token.text),
                _ => Some(first.token.text.clone()),
            };
            if let Some(name) = bare.as_deref().and_then(renamed) {
                name.clone_into(&mut first.token.text);
            }
        }
        rename_value(&mut item.val);
    }
}

fn rename_value(val: &mut Value) {
    match val {
        Value::Literal { .. } => {}
        Value::List { items, .. } => items.iter_mut().for_each(rename_value),
        Value::Object { items, .. } => rename(items),
    }
}

/// A quoted key's text, when it is a plain quoted string (the names above need no escapes).
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains(['\\', '"'])).then(|| inner.to_owned())
}
