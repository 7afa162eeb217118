//! ACL RULES, parse step 1: rules text (HCL or JSON) -> one document tree for both syntaxes.
//!
//! Input: a policy's Rules string. Output: its top-level entries in text order, each a name
//! and a `Node` (a string, an object with its keys in order and duplicates kept, a list, or
//! another value), or the parse error's text for `Failed to parse ACL rules: ...`.
//!
//! As in Consul 1.8 (HCL 1 picks its JSON parser when the first non-blank character is `{`),
//! a text starting with `{` is JSON (serde_json) and anything else is HCL (hcl-rs; see
//! `layout` for the HCL 1 one-line forms). HCL blocks become nested objects, one level per
//! label: `key "a" { policy = "read" }` and `{"key": {"a": {"policy": "read"}}}` give the same
//! tree. Strings are taken literally: `"${x}"` is the five characters Consul sees, not a
//! template.
//!
//! Invariants: never panics; nesting is bounded by the parsers (hcl-edit: 64 levels,
//! serde_json: 128), so the recursion here is too.

use std::fmt;

use hcl::expr::TemplateExpr;
use hcl::{Body, Expression, ObjectKey, Structure};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::layout;

/// One value of a rules document.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Node {
    /// A string (numbers are kept as their text, as Consul's decoder reads `acl = 1` as "1").
    Text(String),
    /// An object or an HCL block body: keys in order, duplicates kept.
    Map(Vec<(String, Self)>),
    /// A JSON array or HCL tuple.
    List(Vec<Self>),
    /// Anything else (a bool, null, an HCL expression), named for the error text.
    Other(&'static str),
}

impl Node {
    /// What it is, for an error text ("expected a string, found an object").
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "a string",
            Self::Map(_) => "an object",
            Self::List(_) => "a list",
            Self::Other(what) => what,
        }
    }
}

/// The top-level entries of a rules text, or the parse error's text.
pub(super) fn document(text: &str) -> Result<Vec<(String, Node)>, String> {
    if text.trim_start().starts_with('{') { json_document(text) } else { hcl_document(text) }
}

fn json_document(text: &str) -> Result<Vec<(String, Node)>, String> {
    match serde_json::from_str::<Node>(text) {
        Ok(Node::Map(entries)) => Ok(entries),
        Ok(other) => Err(format!("expected an object at the top level, found {}", other.kind())),
        Err(e) => {
            // serde_json ends its text with " at line L column C"; say it first, as Consul does.
            let text = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = text.strip_suffix(&suffix).unwrap_or(&text);
            Err(format!("At {}:{}: {message}", e.line(), e.column()))
        }
    }
}

fn hcl_document(text: &str) -> Result<Vec<(String, Node)>, String> {
    let body = match hcl::parse(text) {
        Ok(body) => body,
        Err(first) => match layout::hcl2_lines(text).map(|t| hcl::parse(&t)) {
            Some(Ok(body)) => body,
            _ => return Err(hcl_error(&first)),
        },
    };
    body_entries(&body)
}

/// hcl-rs's error as one line: `At L:C: message` (Consul's layout; hcl-rs's own Display
/// draws a multi-line caret diagram).
fn hcl_error(e: &hcl::Error) -> String {
    match e {
        hcl::Error::Parse(p) => {
            format!("At {}:{}: {}", p.location().line(), p.location().column(), p.message())
        }
        other => other.to_string().replace('\n', " "),
    }
}

fn body_entries(body: &Body) -> Result<Vec<(String, Node)>, String> {
    body.iter()
        .map(|s| match s {
            Structure::Attribute(a) => Ok((a.key.to_string(), expr_node(&a.expr)?)),
            Structure::Block(b) => {
                let mut node = Node::Map(body_entries(&b.body)?);
                for label in b.labels.iter().rev() {
                    node = Node::Map(vec![(label.as_str().to_owned(), node)]);
                }
                Ok((b.identifier.to_string(), node))
            }
        })
        .collect()
}

fn expr_node(expr: &Expression) -> Result<Node, String> {
    Ok(match expr {
        Expression::String(s) => Node::Text(s.clone()),
        Expression::Number(n) => Node::Text(n.to_string()),
        Expression::TemplateExpr(t) => Node::Text(match t.as_ref() {
            TemplateExpr::QuotedString(raw) => raw.clone(),
            TemplateExpr::Heredoc(h) => h.template.clone(),
        }),
        Expression::Parenthesis(inner) => expr_node(inner)?,
        Expression::Array(items) => Node::List(items.iter().map(expr_node).collect::<Result<_, _>>()?),
        Expression::Object(object) => Node::Map(
            object.iter().map(|(k, v)| Ok((object_key(k)?, expr_node(v)?))).collect::<Result<_, String>>()?,
        ),
        Expression::Bool(_) => Node::Other("a bool"),
        Expression::Null => Node::Other("null"),
        _ => Node::Other("an expression"),
    })
}

fn object_key(key: &ObjectKey) -> Result<String, String> {
    match key {
        ObjectKey::Identifier(id) => Ok(id.to_string()),
        ObjectKey::Expression(e) => match expr_node(e)? {
            Node::Text(s) => Ok(s),
            other => Err(format!("an object key must be a string, found {}", other.kind())),
        },
        _ => Err("an object key must be a string".to_owned()),
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Reads any JSON value into a `Node`, keeping object keys in order with duplicates (Consul
/// merges `{"key_prefix": {"a/": ..., "a/": ...}}` rather than keeping the last).
struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Text(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Text(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Text(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Text(v.to_string()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Other("a bool"))
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Other("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Node>()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}
