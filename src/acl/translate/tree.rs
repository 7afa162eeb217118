//! TRANSLATE, step 2: HCL 1 tokens -> the document tree the printer lays out, with comments
//! attached as Consul 1.8's vendored `hcl/parser` attaches them.
//!
//! Input: a `Scanner`. Output: a `File` (its top-level items and every comment group), or the
//! error text (`At L:C: ...`, HCL 1's wording where cairn meets the same mistake).
//!
//! Comments: a group that ends on the line just before an item's first key is that item's
//! lead comment; a group on the same line as the token before it, with the next token on a
//! later line, is a line comment (given to the item whose value ends on its key's line); every
//! other group is standalone and printed between the items around it. Getting this the parser's
//! way is what makes the printed text Consul's, so the state machine below (one token of
//! look-ahead, `unscan`, the pending lead and line comments) is the parser's.
//!
//! Invariant: never panics; nesting depth is bounded (`MAX_DEPTH`) so recursion is too.

use super::scan::{Kind, Pos, Scanner, Token};

/// Deepest nesting of objects and lists accepted.
const MAX_DEPTH: usize = 64;

/// A comment group: comments on consecutive lines.
pub(super) type Group = Vec<Token>;

/// One key of an item (`key`, `"a"`): its token.
#[derive(Debug, Clone)]
pub(super) struct Key {
    pub(super) token: Token,
}

/// `keys... = value` or `keys... { ... }`.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) keys: Vec<Key>,
    /// Where `=` (or JSON's `:`) was, if any.
    pub(super) assign: Option<Pos>,
    pub(super) val: Value,
    pub(super) lead: Option<Group>,
    pub(super) line: Option<Group>,
}

impl Item {
    pub(super) fn pos(&self) -> Pos {
        self.keys.first().map_or(Pos::default(), |k| k.token.pos)
    }
}

/// A value.
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// A string (with its quotes), number or bool, as written.
    Literal {
        token: Token,
        line: Option<Group>,
    },
    List {
        lbrack: Pos,
        items: Vec<Self>,
    },
    Object {
        lbrace: Pos,
        items: Vec<Item>,
        rbrace: Pos,
    },
}

impl Value {
    pub(super) fn pos(&self) -> Pos {
        match self {
            Self::Literal { token, .. } => token.pos,
            Self::List { lbrack, .. } => *lbrack,
            Self::Object { lbrace, .. } => *lbrace,
        }
    }
}

/// A parsed document: top-level items and all comment groups in text order.
#[derive(Debug, Clone, Default)]
pub(super) struct File {
    pub(super) items: Vec<Item>,
    pub(super) comments: Vec<Group>,
}

/// Parses HCL 1 text.
pub(super) fn parse(text: &str) -> Result<File, String> {
    let mut p = Parser {
        scanner: Scanner::new(text),
        tok: Token { kind: Kind::Eof, text: String::new(), pos: Pos::default() },
        buffered: false,
        comments: Vec::new(),
        lead: None,
        line: None,
        depth: 0,
    };
    let (items, failed) = p.object_list(false)?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(File { items, comments: p.comments })
}

struct Parser<'a> {
    scanner: Scanner<'a>,
    tok: Token,
    buffered: bool,
    comments: Vec<Group>,
    lead: Option<Group>,
    line: Option<Group>,
    depth: usize,
}

/// An error, or the end of the text where an item could start.
enum Stop {
    Eof,
    Error(String),
}

fn at(pos: Pos, message: &str) -> String {
    format!("At {}:{}: {message}", pos.line, pos.column)
}

impl Parser<'_> {
    /// The next non-comment token; comments on the way become groups and the pending lead or
    /// line comment.
    fn scan(&mut self) -> Result<Token, String> {
        if self.buffered {
            self.buffered = false;
            return Ok(self.tok.clone());
        }
        let prev_line = self.tok.pos.line;
        self.tok = self.scanner.next_token()?;
        if self.tok.kind == Kind::Comment {
            if self.tok.pos.line == prev_line {
                let (group, end) = self.group(0)?;
                if self.tok.pos.line != end {
                    self.line = Some(group);
                }
            }
            let mut last: Option<(Group, usize)> = None;
            while self.tok.kind == Kind::Comment {
                last = Some(self.group(1)?);
            }
            if let Some((group, end)) = last
                && end + 1 == self.tok.pos.line
                && !matches!(self.tok.kind, Kind::RBrace | Kind::RBrack)
            {
                self.lead = Some(group);
            }
        }
        Ok(self.tok.clone())
    }

    fn unscan(&mut self) {
        self.buffered = true;
    }

    /// Comments from the current one while each starts within `gap` lines of the last's end.
    fn group(&mut self, gap: usize) -> Result<(Group, usize), String> {
        let mut list = Vec::new();
        let mut end = self.tok.pos.line;
        while self.tok.kind == Kind::Comment && self.tok.pos.line <= end + gap {
            end = self.tok.pos.line;
            if self.tok.text.starts_with("/*") {
                end += self.tok.text.matches('\n').count();
            }
            list.push(self.tok.clone());
            self.tok = self.scanner.next_token()?;
        }
        self.comments.push(list.clone());
        Ok((list, end))
    }

    /// The items up to the end (or `}`), and the error that stopped it early, if any (the
    /// caller decides: HCL 1 lets an error through when it stopped on a `}`).
    fn object_list(&mut self, in_object: bool) -> Result<(Vec<Item>, Option<String>), String> {
        let mut items = Vec::new();
        loop {
            if in_object {
                let tok = self.scan()?;
                self.unscan();
                if tok.kind == Kind::RBrace {
                    break;
                }
            }
            match self.object_item() {
                Ok(item) => items.push(item),
                Err(Stop::Eof) => break,
                Err(Stop::Error(e)) => return Ok((items, Some(e))),
            }
            if self.scan()?.kind != Kind::Comma {
                self.unscan();
            }
        }
        Ok((items, None))
    }

    fn object_item(&mut self) -> Result<Item, Stop> {
        let (keys, ended) = self.object_key().map_err(Stop::Error)?;
        if ended && keys.is_empty() {
            return Err(Stop::Eof);
        }
        let lead = self.lead.take();
        let (assign, val) = match self.tok.kind {
            Kind::Assign => (Some(self.tok.pos), self.value().map_err(Stop::Error)?),
            Kind::LBrace => (None, self.object_type().map_err(Stop::Error)?),
            _ => {
                let names: Vec<&str> = keys.iter().map(|k| k.token.text.as_str()).collect();
                let message =
                    format!("key '{}' expected start of object ('{{') or assignment ('=')", names.join(" "));
                return Err(Stop::Error(at(self.tok.pos, &message)));
            }
        };
        let mut item = Item { keys, assign, val, lead, line: self.line.take() };
        // Look ahead for a comment on the value's last line.
        self.scan().map_err(Stop::Error)?;
        if item.val.pos().line == item.pos().line && self.line.is_some() {
            item.line = self.line.take();
        }
        self.unscan();
        Ok(item)
    }

    /// The keys before `=` or `{`; `true` when the text ended first.
    fn object_key(&mut self) -> Result<(Vec<Key>, bool), String> {
        let mut keys = Vec::new();
        loop {
            let tok = self.scan()?;
            match tok.kind {
                Kind::Eof => {
                    if keys.is_empty() {
                        return Ok((keys, true));
                    }
                    let names: Vec<&str> = keys.iter().map(|k: &Key| k.token.text.as_str()).collect();
                    let message = format!(
                        "key '{}' expected start of object ('{{') or assignment ('=')",
                        names.join(" ")
                    );
                    return Err(at(tok.pos, &message));
                }
                Kind::Assign if keys.len() > 1 => {
                    return Err(at(tok.pos, "nested object expected: LBRACE got: ASSIGN"));
                }
                Kind::Assign if keys.is_empty() => return Err(at(tok.pos, "no object keys found!")),
                Kind::LBrace if keys.is_empty() => {
                    return Err(at(tok.pos, "expected: IDENT | STRING got: LBRACE"));
                }
                Kind::Assign | Kind::LBrace => return Ok((keys, false)),
                Kind::Ident | Kind::String => keys.push(Key { token: tok }),
                other => {
                    let message = format!("expected: IDENT | STRING | ASSIGN | LBRACE got: {}", other.name());
                    return Err(at(tok.pos, &message));
                }
            }
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        let tok = self.scan()?;
        match tok.kind {
            Kind::Number | Kind::Bool | Kind::String => Ok(Value::Literal { token: tok, line: None }),
            Kind::LBrace => self.object_type(),
            Kind::LBrack => self.list_type(),
            Kind::Eof => Err(at(tok.pos, "expected a value, got: EOF")),
            other => Err(at(tok.pos, &format!("Unknown token: {} {}", other.name(), tok.text))),
        }
    }

    fn deeper(&mut self, pos: Pos) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(at(pos, "nested too deeply")) } else { Ok(()) }
    }

    fn object_type(&mut self) -> Result<Value, String> {
        let lbrace = self.tok.pos;
        self.deeper(lbrace)?;
        let (items, failed) = self.object_list(true)?;
        if let Some(e) = failed
            && self.tok.kind != Kind::RBrace
        {
            return Err(e);
        }
        let tok = self.scan()?;
        if tok.kind != Kind::RBrace {
            return Err(at(tok.pos, &format!("object expected closing RBRACE got: {}", tok.kind.name())));
        }
        self.depth -= 1;
        Ok(Value::Object { lbrace, items, rbrace: tok.pos })
    }

    fn list_type(&mut self) -> Result<Value, String> {
        let lbrack = self.tok.pos;
        self.deeper(lbrack)?;
        let mut items: Vec<Value> = Vec::new();
        let mut need_comma = false;
        loop {
            let tok = self.scan()?;
            if need_comma && !matches!(tok.kind, Kind::Comma | Kind::RBrack) {
                return Err(at(
                    tok.pos,
                    &format!("error parsing list, expected comma or list end, got: {}", tok.kind.name()),
                ));
            }
            match tok.kind {
                Kind::Number | Kind::Bool | Kind::String => {
                    items.push(Value::Literal { token: tok, line: None });
                    need_comma = true;
                }
                Kind::Comma => {
                    // A comment after the comma, on the item's line, is that item's.
                    self.scan()?;
                    if let Some(group) = self.line.take() {
                        match items.last_mut() {
                            Some(Value::Literal { line, .. }) => *line = Some(group),
                            _ => self.line = Some(group),
                        }
                    }
                    self.unscan();
                    need_comma = false;
                }
                Kind::LBrace => {
                    items.push(self.object_type()?);
                    need_comma = true;
                }
                Kind::LBrack => {
                    items.push(self.list_type()?);
                    need_comma = true;
                }
                Kind::RBrack => break,
                other => {
                    return Err(at(
                        tok.pos,
                        &format!("unexpected token while parsing list: {}", other.name()),
                    ));
                }
            }
        }
        self.depth -= 1;
        Ok(Value::List { lbrack, items })
    }
}
