//! TRANSLATE, step 1: rules text -> HCL 1 tokens with their positions (what Consul 1.8's
//! vendored `hcl/scanner` yields), comments included as tokens.
//!
//! Input: the text. Output: `Token`s, the last one `Eof`. Positions are 1-based lines and
//! columns (in characters) and byte offsets; the printer compares them to lay out blank lines,
//! aligned items and comments, so they must be the scanner's.
//!
//! Covered: identifiers (letters, digits, `_`, `-`, `.`, `:`), `true`/`false`, numbers (with
//! a sign, fraction and exponent), quoted strings (with escapes and `${...}`), `#`, `//` and
//! `/* */` comments, and the punctuation `{ } [ ] = ,`. Heredocs (`<<EOF`) are refused: rules
//! never need them. Invariant: never panics; every text ends in `Eof` or an error.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Ident,
    String,
    Number,
    Bool,
    Comment,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Assign,
    Comma,
    /// A character JSON has no token for (HCL's scanner reports these as errors).
    Illegal,
    Eof,
}

impl Kind {
    /// The name HCL 1's error texts give it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Ident => "IDENT",
            Self::String => "STRING",
            Self::Number => "NUMBER",
            Self::Bool => "BOOL",
            Self::Comment => "COMMENT",
            Self::LBrace => "LBRACE",
            Self::RBrace => "RBRACE",
            Self::LBrack => "LBRACK",
            Self::RBrack => "RBRACK",
            Self::Assign => "ASSIGN",
            Self::Comma => "COMMA",
            Self::Illegal => "ILLEGAL",
            Self::Eof => "EOF",
        }
    }
}

/// A position; `line == 0` is "no position" (Go's invalid `token.Pos`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) offset: usize,
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Pos {
    /// A position after every other.
    pub(super) const END: Self = Self { offset: 1 << 30, line: 1 << 30, column: 0 };

    pub(super) fn is_valid(self) -> bool {
        self.line > 0
    }

    /// Go's `Pos.Before`: `other` is further on.
    pub(super) fn before(self, other: Self) -> bool {
        other.offset > self.offset || other.line > self.line
    }

    /// Go's `Pos.After`: `other` is earlier.
    pub(super) fn after(self, other: Self) -> bool {
        other.offset < self.offset || other.line < self.line
    }
}

/// One token: its kind, its text as written (strings with their quotes) and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) text: String,
    pub(super) pos: Pos,
}

/// The scanner over one text.
pub(super) struct Scanner<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    text: &'a str,
    line: usize,
    column: usize,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self { chars: text.char_indices().peekable(), text, line: 1, column: 1 }
    }

    fn pos(&mut self) -> Pos {
        let offset = self.chars.peek().map_or(self.text.len(), |(i, _)| *i);
        Pos { offset, line: self.line, column: self.column }
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|(_, c)| *c)
    }

    fn bump(&mut self) -> Option<char> {
        let (_, c) = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn error(pos: Pos, message: &str) -> String {
        format!("At {}:{}: {message}", pos.line, pos.column)
    }

    /// The next token, or the error text (`At L:C: ...`).
    pub(super) fn next_token(&mut self) -> Result<Token, String> {
        while self.peek().is_some_and(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
        let pos = self.pos();
        let Some(c) = self.bump() else {
            // HCL 1's scanner moves one column on at each read past the end (its error texts
            // show it: `key "" {` ends `At 1:10`).
            self.column += 1;
            return Ok(Token { kind: Kind::Eof, text: String::new(), pos });
        };
        let mut text = String::from(c);
        let kind = match c {
            '{' => Kind::LBrace,
            '}' => Kind::RBrace,
            '[' => Kind::LBrack,
            ']' => Kind::RBrack,
            '=' => Kind::Assign,
            ',' => Kind::Comma,
            '"' => {
                self.string(&mut text).map_err(|m| Self::error(pos, m))?;
                Kind::String
            }
            '#' => {
                self.line_comment(&mut text);
                Kind::Comment
            }
            '/' => match self.peek() {
                Some('/') => {
                    self.line_comment(&mut text);
                    Kind::Comment
                }
                Some('*') => {
                    self.block_comment(&mut text).map_err(|m| Self::error(pos, m))?;
                    Kind::Comment
                }
                _ => return Err(Self::error(pos, "illegal char")),
            },
            c if c.is_ascii_digit() || (c == '-' && self.peek().is_some_and(|d| d.is_ascii_digit())) => {
                self.number(&mut text);
                Kind::Number
            }
            c if c.is_alphabetic() || c == '_' => {
                while let Some(n) =
                    self.peek().filter(|n| n.is_alphanumeric() || matches!(n, '_' | '-' | '.' | ':'))
                {
                    text.push(n);
                    self.bump();
                }
                if text == "true" || text == "false" { Kind::Bool } else { Kind::Ident }
            }
            _ => return Err(Self::error(pos, "illegal char")),
        };
        Ok(Token { kind, text, pos })
    }

    fn line_comment(&mut self, text: &mut String) {
        while let Some(c) = self.peek().filter(|c| *c != '\n') {
            text.push(c);
            self.bump();
        }
    }

    fn block_comment(&mut self, text: &mut String) -> Result<(), &'static str> {
        let mut last = '\0';
        while let Some(c) = self.bump() {
            text.push(c);
            if last == '*' && c == '/' && text.len() > 3 {
                return Ok(());
            }
            last = c;
        }
        Err("comment not terminated")
    }

    fn string(&mut self, text: &mut String) -> Result<(), &'static str> {
        let mut braces = 0usize;
        loop {
            let c = self.bump().ok_or("literal not terminated")?;
            text.push(c);
            match c {
                '\n' if braces == 0 => return Err("literal not terminated"),
                '\\' => text.push(self.bump().ok_or("literal not terminated")?),
                '$' if self.peek() == Some('{') => {
                    braces += 1;
                    text.push('{');
                    self.bump();
                }
                '}' if braces > 0 => braces -= 1,
                '"' if braces == 0 => return Ok(()),
                _ => {}
            }
        }
    }

    fn number(&mut self, text: &mut String) {
        while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'))
        {
            // A sign only right after an exponent marker.
            if matches!(c, '+' | '-') && !text.ends_with(['e', 'E']) {
                break;
            }
            text.push(c);
            self.bump();
        }
    }
}
