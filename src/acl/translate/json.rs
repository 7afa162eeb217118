//! TRANSLATE, step 2 for JSON rules: JSON text -> the same document tree as HCL (Consul 1.8's
//! vendored `hcl/json/parser`), then flattened as that parser flattens it.
//!
//! Input: a text whose first non-blank character is `{`. Output: a `File` without comments.
//! Keys keep their quotes (`"operator"` prints quoted), `:` counts as `=`. Flattening: an item
//! whose value is an object of objects becomes one item per inner object with the inner key
//! appended (`{"key": {"a": {...}}}` is `key "a" {...}`), and an item whose value is a list of
//! objects one item per object; both repeat until no such item is left, order kept.
//!
//! Why not serde_json: the printer needs each token's text as written and its line, which
//! serde_json's values do not keep. Invariant: never panics; nesting is bounded.

use super::scan::{Kind, Pos, Token};
use super::tree::{File, Item, Key, Value};

const MAX_DEPTH: usize = 64;

/// Parses JSON rules into the tree, flattened. As HCL 1's JSON parser: the top-level object
/// ends where its items end (a missing `}` or text after it is not noticed), an item cut off
/// by the end of the text is dropped, bools and nested `[` inside a list are skipped
/// [live on 1.8.7: `{"key": ` translates to nothing].
pub(super) fn parse(text: &str) -> Result<File, String> {
    let tokens = tokens(text)?;
    let mut p = Parser { tokens, at: 0, depth: 0, tok: Kind::Eof, illegal: None };
    let open = p.next();
    if open.kind != Kind::LBrace {
        return Err(format!("Expected object value, got unknown token: {}", open.text));
    }
    let parsed = p.object(open.pos);
    // The scanner's complaint wins over the parser's, as in HCL 1.
    if let Some(pos) = p.illegal {
        return Err(format!("{}:{}: illegal char", pos.line, pos.column));
    }
    match parsed {
        Ok(Value::Object { items, .. }) => Ok(File { items: flatten(items), comments: Vec::new() }),
        Ok(_) | Err(Stop::Eof) => Ok(File::default()),
        Err(Stop::Error(e)) => Err(e),
    }
}

/// An error, or the end of the text where more was expected.
enum Stop {
    Eof,
    Error(String),
}

/// HCL 1's JSON token names.
fn name(kind: Kind) -> &'static str {
    match kind {
        Kind::Assign => "COLON",
        other => other.name(),
    }
}

fn at(pos: Pos, message: &str) -> String {
    format!("At {}:{}: {message}", pos.line, pos.column)
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let (mut line, mut column) = (1usize, 1usize);
    let mut chars = text.char_indices().peekable();
    while let Some(&(offset, c)) = chars.peek() {
        let pos = Pos { offset, line, column };
        let step = |ch: char, line: &mut usize, column: &mut usize| {
            if ch == '\n' {
                *line += 1;
                *column = 1;
            } else {
                *column += 1;
            }
        };
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            chars.next();
            step(c, &mut line, &mut column);
            continue;
        }
        let mut tok = String::from(c);
        chars.next();
        step(c, &mut line, &mut column);
        let kind = match c {
            '{' => Kind::LBrace,
            '}' => Kind::RBrace,
            '[' => Kind::LBrack,
            ']' => Kind::RBrack,
            ':' => Kind::Assign,
            ',' => Kind::Comma,
            '"' => {
                let mut escaped = false;
                loop {
                    let Some((_, ch)) = chars.next() else { return Err(at(pos, "literal not terminated")) };
                    step(ch, &mut line, &mut column);
                    tok.push(ch);
                    match ch {
                        '\n' => return Err(at(pos, "literal not terminated")),
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
                Kind::String
            }
            c if c == '-' || c.is_ascii_digit() || c.is_ascii_alphabetic() => {
                while let Some(&(_, ch)) =
                    chars.peek().filter(|(_, ch)| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '+' | '-'))
                {
                    tok.push(ch);
                    chars.next();
                    step(ch, &mut line, &mut column);
                }
                match tok.as_str() {
                    "true" | "false" => Kind::Bool,
                    // HCL 1 reads a JSON null as an empty string.
                    "null" => {
                        tok.clear();
                        Kind::String
                    }
                    t if t.starts_with(|d: char| d == '-' || d.is_ascii_digit()) => Kind::Number,
                    _ => Kind::Illegal,
                }
            }
            _ => Kind::Illegal,
        };
        if kind == Kind::Illegal {
            // The parser stops at the first token it cannot use; what follows is never read.
            out.push(Token { kind, text: tok, pos });
            break;
        }
        out.push(Token { kind, text: tok, pos });
    }
    let end = Pos { offset: text.len(), line, column };
    out.push(Token { kind: Kind::Eof, text: String::new(), pos: end });
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    /// The kind of the last token read.
    tok: Kind,
    /// Where the parser read a character JSON has no token for.
    illegal: Option<Pos>,
}

impl Parser {
    fn next(&mut self) -> Token {
        let tok = self.tokens.get(self.at).or(self.tokens.last()).cloned();
        self.at = (self.at + 1).min(self.tokens.len());
        let tok = tok.unwrap_or(Token { kind: Kind::Eof, text: String::new(), pos: Pos::default() });
        self.tok = tok.kind;
        if tok.kind == Kind::Illegal {
            self.illegal = Some(tok.pos);
        }
        tok
    }

    /// After `{`: items while a comma follows each; an error that stopped on `}` is ignored.
    fn object(&mut self, lbrace: Pos) -> Result<Value, Stop> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::Error(at(lbrace, "nested too deeply")));
        }
        let mut items = Vec::new();
        loop {
            match self.item() {
                Ok(item) => items.push(item),
                Err(Stop::Eof) => break,
                Err(Stop::Error(e)) if self.tok != Kind::RBrace => return Err(Stop::Error(e)),
                Err(Stop::Error(_)) => break,
            }
            if self.next().kind != Kind::Comma {
                break;
            }
        }
        self.depth -= 1;
        Ok(Value::Object { lbrace, items, rbrace: Pos::default() })
    }

    /// `"k" ["k2" ...] : value`.
    fn item(&mut self) -> Result<Item, Stop> {
        let mut keys = Vec::new();
        let colon = loop {
            let tok = self.next();
            match tok.kind {
                Kind::Eof => return Err(Stop::Eof),
                Kind::String => keys.push(Key { token: tok }),
                Kind::Assign if !keys.is_empty() => break tok.pos,
                other => return Err(Stop::Error(format!("expected: STRING got: {}", name(other)))),
            }
        };
        let val = self.value()?;
        Ok(Item { keys, assign: Some(colon), val, lead: None, line: None })
    }

    fn value(&mut self) -> Result<Value, Stop> {
        let tok = self.next();
        match tok.kind {
            Kind::String | Kind::Number | Kind::Bool => Ok(Value::Literal { token: tok, line: None }),
            Kind::LBrace => self.object(tok.pos),
            Kind::LBrack => self.list(tok.pos),
            Kind::Eof => Err(Stop::Eof),
            other => Err(Stop::Error(format!("Expected object value, got unknown token: {}", name(other)))),
        }
    }

    fn list(&mut self, lbrack: Pos) -> Result<Value, Stop> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Stop::Error(at(lbrack, "nested too deeply")));
        }
        let mut items = Vec::new();
        loop {
            let tok = self.next();
            match tok.kind {
                Kind::String | Kind::Number => items.push(Value::Literal { token: tok, line: None }),
                Kind::LBrace => items.push(self.object(tok.pos)?),
                Kind::Comma | Kind::Bool | Kind::LBrack => {}
                Kind::RBrack => break,
                other => {
                    return Err(Stop::Error(format!("unexpected token while parsing list: {}", name(other))));
                }
            }
        }
        self.depth -= 1;
        Ok(Value::List { lbrack, items })
    }
}

/// HCL 1's JSON flattening (module doc), applied at every level.
fn flatten(items: Vec<Item>) -> Vec<Item> {
    let mut out = Vec::new();
    for item in items {
        flatten_item(item, &mut out);
    }
    out
}

fn flatten_item(mut item: Item, out: &mut Vec<Item>) {
    match item.val {
        Value::Object { ref items, .. }
            if !items.is_empty() && items.iter().all(|i| matches!(i.val, Value::Object { .. })) =>
        {
            let Value::Object { items: inner, .. } =
                std::mem::replace(&mut item.val, Value::List { lbrack: Pos::default(), items: Vec::new() })
            else {
                return;
            };
            for sub in inner {
                let mut keys = item.keys.clone();
                keys.extend(sub.keys);
                let next = Item {
                    keys,
                    assign: item.assign,
                    val: sub.val,
                    lead: item.lead.clone(),
                    line: item.line.clone(),
                };
                flatten_item(next, out);
            }
        }
        Value::List { ref items, .. }
            if !items.is_empty() && items.iter().all(|v| matches!(v, Value::Object { .. })) =>
        {
            let Value::List { items: inner, .. } =
                std::mem::replace(&mut item.val, Value::List { lbrack: Pos::default(), items: Vec::new() })
            else {
                return;
            };
            for val in inner {
                let next = Item {
                    keys: item.keys.clone(),
                    assign: item.assign,
                    val,
                    lead: item.lead.clone(),
                    line: item.line.clone(),
                };
                flatten_item(next, out);
            }
        }
        Value::Object { lbrace, items, rbrace } => {
            out.push(Item { val: Value::Object { lbrace, items: flatten(items), rbrace }, ..item })
        }
        _ => out.push(item),
    }
}
