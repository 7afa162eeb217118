//! STAGE 1 of a filter: the expression text → `Expr`, or go-bexpr 0.1.2's exact error text.
//!
//! Input: the `?filter=` text. Output: the syntax tree, or the message Consul 1.8.7 answers
//! (`1:11 (10): no match found, expected: "-", "0", …`, `1:16 (15): rule "grouping": Unmatched
//! parentheses`), without the `Failed to create boolean expression evaluator: ` prefix.
//!
//! Invariants: every rule below is go-bexpr's PEG rule of the same name, tried in the same
//! order with the same backtracking; the farthest-failure bookkeeping is pigeon's (the parser
//! generator go-bexpr uses): a terminal that fails at the farthest offset so far adds what it
//! wanted to the expected set (under a `!` predicate: what it matched, prefixed `!`), a
//! farther failure empties the set, errors from predicates and actions accumulate and are
//! de-duplicated. Positions are Go's `line:col (offset)` (col counts characters, offset bytes,
//! and col restarts at 0 on the newline character itself, as pigeon counts). `OrExpression`,
//! `AndExpression` and `NotExpression` are memoised per offset: a rule re-parsed at the same
//! offset yields the same tree and repeats the same side effects, which de-duplication would
//! drop, so the answers are the same while nested parentheses cost linear, not exponential,
//! time. Nesting deeper than `MAX_NESTING` is refused (Go's stack grows; ours must not
//! overflow). Never panics.

use super::gostr::unquote;
use super::peg::{Memo, Parser, WS};
use super::{Expr, Match, MatchOp};

/// Deepest nesting of parentheses and `not` accepted.
pub(crate) const MAX_NESTING: usize = 64;

/// What go-bexpr's `Parse` answers for `text`.
pub(crate) fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser::new(text);
    let tree = p.input();
    if p.too_deep {
        return Err(format!("expression nests deeper than {MAX_NESTING} levels"));
    }
    if !p.errors.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<&str> =
            p.errors.iter().filter(|e| seen.insert(e.as_str())).map(String::as_str).collect();
        return Err(unique.join("\n"));
    }
    tree.ok_or_else(|| p.no_match())
}

impl Parser<'_> {
    /// `_ <- [ \t\r\n]+`
    fn ws(&mut self) -> bool {
        if !self.class(WS, |c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
            return false;
        }
        while self.class(WS, |c| matches!(c, ' ' | '\t' | '\r' | '\n')) {}
        true
    }

    /// `_?`
    fn opt_ws(&mut self) {
        self.ws();
    }

    /// `EOF <- !.`
    fn eof(&mut self) -> bool {
        self.not(Self::any)
    }

    /// `Input <- _? "(" _? OrExpression _? ")" _? EOF / _? OrExpression _? EOF`
    fn input(&mut self) -> Option<Expr> {
        let first = self.seq(|p| {
            p.opt_ws();
            p.lit("(", "\"(\"").then_some(())?;
            p.opt_ws();
            let e = p.or_expr()?;
            p.opt_ws();
            p.lit(")", "\")\"").then_some(())?;
            p.opt_ws();
            p.eof().then_some(e)
        });
        first.or_else(|| {
            self.seq(|p| {
                p.opt_ws();
                let e = p.or_expr()?;
                p.opt_ws();
                p.eof().then_some(e)
            })
        })
    }

    /// `OrExpression <- AndExpression _ "or" _ OrExpression / AndExpression`
    fn or_expr(&mut self) -> Option<Expr> {
        self.memo(Memo::Or, |p| {
            let both = p.seq(|p| {
                let left = p.and_expr()?;
                (p.ws() && p.lit("or", "\"or\"") && p.ws()).then_some(())?;
                let right = p.or_expr()?;
                Some(Expr::Or(Box::new(left), Box::new(right)))
            });
            both.or_else(|| p.and_expr())
        })
    }

    /// `AndExpression <- NotExpression _ "and" _ AndExpression / NotExpression`
    fn and_expr(&mut self) -> Option<Expr> {
        self.memo(Memo::And, |p| {
            let both = p.seq(|p| {
                let left = p.not_expr()?;
                (p.ws() && p.lit("and", "\"and\"") && p.ws()).then_some(())?;
                let right = p.and_expr()?;
                Some(Expr::And(Box::new(left), Box::new(right)))
            });
            both.or_else(|| p.not_expr())
        })
    }

    /// `NotExpression <- "not" _ NotExpression / ParenthesizedExpression` (`not not x` is `x`).
    fn not_expr(&mut self) -> Option<Expr> {
        if self.nesting >= MAX_NESTING {
            self.too_deep = true;
            return None;
        }
        self.nesting += 1;
        let r = self.memo(Memo::Not, |p| {
            let negated = p.seq(|p| {
                (p.lit("not", "\"not\"") && p.ws()).then_some(())?;
                Some(match p.not_expr()? {
                    Expr::Not(inner) => *inner,
                    e => Expr::Not(Box::new(e)),
                })
            });
            negated.or_else(|| p.paren_expr())
        });
        self.nesting -= 1;
        r
    }

    /// `"(" _? OrExpression _?`
    fn open_group(&mut self) -> Option<Expr> {
        self.lit("(", "\"(\"").then_some(())?;
        self.opt_ws();
        let e = self.or_expr()?;
        self.opt_ws();
        Some(e)
    }

    /// `ParenthesizedExpression "grouping" <- "(" _? OrExpression _? ")" / MatchExpression /
    /// "(" _? OrExpression _? !")" &{Unmatched parentheses}`
    fn paren_expr(&mut self) -> Option<Expr> {
        let grouped = self.seq(|p| {
            let e = p.open_group()?;
            p.lit(")", "\")\"").then_some(e)
        });
        if grouped.is_some() {
            return grouped;
        }
        if let Some(m) = self.match_expr() {
            return Some(Expr::Match(m));
        }
        self.seq(|p| {
            p.open_group()?;
            p.not(|p| p.lit(")", "\")\"")).then_some(())?;
            let at = p.pt;
            p.add_err(at, "\"grouping\"", "Unmatched parentheses");
            None
        })
    }

    /// `MatchExpression "match" <- MatchSelectorOpValue / MatchSelectorOp / MatchValueOpSelector`
    fn match_expr(&mut self) -> Option<Match> {
        if let Some(m) = self.seq(Self::selector_op_value) {
            return Some(m);
        }
        if let Some(m) = self.seq(Self::selector_op) {
            return Some(m);
        }
        self.value_op_selector()
    }

    /// `Selector (MatchEqual / MatchNotEqual / MatchContains / MatchNotContains / MatchMatches
    /// / MatchNotMatches) Value`
    fn selector_op_value(&mut self) -> Option<Match> {
        let selector = self.selector()?;
        let op = self.binary_op()?;
        let value = self.value()?;
        Some(Match { selector, op, value: Some(value) })
    }

    fn binary_op(&mut self) -> Option<MatchOp> {
        let symbol = |p: &mut Self, text: &str, shown: &str| {
            p.seq(|p| {
                p.opt_ws();
                p.lit(text, shown).then_some(())?;
                p.opt_ws();
                Some(())
            })
            .is_some()
        };
        if symbol(self, "==", "\"==\"") {
            Some(MatchOp::Equal)
        } else if symbol(self, "!=", "\"!=\"") {
            Some(MatchOp::NotEqual)
        } else if self.words(&[("contains", "\"contains\"")]) {
            Some(MatchOp::In)
        } else if self.words(&[("not", "\"not\""), ("contains", "\"contains\"")]) {
            Some(MatchOp::NotIn)
        } else if self.words(&[("matches", "\"matches\"")]) {
            Some(MatchOp::Matches)
        } else if self.words(&[("not", "\"not\""), ("matches", "\"matches\"")]) {
            Some(MatchOp::NotMatches)
        } else {
            None
        }
    }

    /// `_ w1 _ w2 … _`: keywords each preceded by whitespace, and whitespace after the last
    /// (`MatchIn`, `MatchNotIn`, `MatchContains`, …).
    fn words(&mut self, words: &[(&str, &str)]) -> bool {
        self.seq(|p| {
            for (w, shown) in words {
                (p.ws() && p.lit(w, shown)).then_some(())?;
            }
            p.ws().then_some(())
        })
        .is_some()
    }

    /// `_ w1 _ w2 …` without trailing whitespace (`MatchIsEmpty`, `MatchIsNotEmpty`).
    fn words_closed(&mut self, words: &[(&str, &str)]) -> bool {
        self.seq(|p| {
            for (w, shown) in words {
                (p.ws() && p.lit(w, shown)).then_some(())?;
            }
            Some(())
        })
        .is_some()
    }

    /// `Selector (MatchIsEmpty / MatchIsNotEmpty)`
    fn selector_op(&mut self) -> Option<Match> {
        let selector = self.selector()?;
        let op = if self.words_closed(&[("is", "\"is\""), ("empty", "\"empty\"")]) {
            MatchOp::IsEmpty
        } else if self.words_closed(&[("is", "\"is\""), ("not", "\"not\""), ("empty", "\"empty\"")]) {
            MatchOp::IsNotEmpty
        } else {
            return None;
        };
        Some(Match { selector, op, value: None })
    }

    fn in_op(&mut self) -> Option<MatchOp> {
        if self.words(&[("in", "\"in\"")]) {
            Some(MatchOp::In)
        } else if self.words(&[("not", "\"not\""), ("in", "\"in\"")]) {
            Some(MatchOp::NotIn)
        } else {
            None
        }
    }

    /// `MatchValueOpSelector "match" <- Value (MatchIn / MatchNotIn) Selector /
    /// Value (MatchIn / MatchNotIn) !Selector &{Invalid selector}`
    fn value_op_selector(&mut self) -> Option<Match> {
        let found = self.seq(|p| {
            let value = p.value()?;
            let op = p.in_op()?;
            let selector = p.selector()?;
            Some(Match { selector, op, value: Some(value) })
        });
        if found.is_some() {
            return found;
        }
        self.seq(|p| {
            p.value()?;
            p.in_op()?;
            p.not(|p| p.selector().is_some()).then_some(())?;
            let at = p.pt;
            p.add_err(at, "\"match\"", "Invalid selector");
            None
        })
    }

    /// `Selector "selector" <- Identifier SelectorOrIndex*`
    fn selector(&mut self) -> Option<Vec<String>> {
        let first = self.identifier()?;
        let mut sel = vec![first];
        while let Some(next) = self.selector_or_index() {
            sel.push(next);
        }
        Some(sel)
    }

    /// `Identifier <- [a-zA-Z] [a-zA-Z0-9_]*`
    fn identifier(&mut self) -> Option<String> {
        let start = self.pt.offset;
        if !self.class("[a-zA-Z]", |c| c.is_ascii_alphabetic()) {
            return None;
        }
        while self.class("[a-zA-Z0-9_]", |c| c.is_ascii_alphanumeric() || c == '_') {}
        Some(self.src[start..self.pt.offset].to_owned())
    }

    /// `SelectorOrIndex <- "." Identifier / IndexExpression`
    fn selector_or_index(&mut self) -> Option<String> {
        let dotted = self.seq(|p| {
            p.lit(".", "\".\"").then_some(())?;
            p.identifier()
        });
        dotted.or_else(|| self.index_expr())
    }

    /// `IndexExpression "index" <- "[" _? StringLiteral _? "]" / "[" _? !StringLiteral
    /// &{Invalid index} / "[" _? StringLiteral _? !"]" &{Unclosed index expression}`
    fn index_expr(&mut self) -> Option<String> {
        let key = self.seq(|p| {
            p.lit("[", "\"[\"").then_some(())?;
            p.opt_ws();
            let key = p.string_lit()?;
            p.opt_ws();
            p.lit("]", "\"]\"").then_some(key)
        });
        if key.is_some() {
            return key;
        }
        let invalid: Option<String> = self.seq(|p| {
            p.lit("[", "\"[\"").then_some(())?;
            p.opt_ws();
            p.not(|p| p.string_lit().is_some()).then_some(())?;
            let at = p.pt;
            p.add_err(at, "\"index\"", "Invalid index");
            None
        });
        invalid.or_else(|| {
            self.seq(|p| {
                p.lit("[", "\"[\"").then_some(())?;
                p.opt_ws();
                p.string_lit()?;
                p.opt_ws();
                p.not(|p| p.lit("]", "\"]\"")).then_some(())?;
                let at = p.pt;
                p.add_err(at, "\"index\"", "Unclosed index expression");
                None
            })
        })
    }

    /// `Value "value" <- Selector / NumberLiteral / StringLiteral` (a selector's raw text is
    /// its parts joined by `.`).
    fn value(&mut self) -> Option<String> {
        if let Some(sel) = self.seq(Self::selector) {
            return Some(sel.join("."));
        }
        self.number_lit().or_else(|| self.string_lit())
    }

    /// `NumberLiteral "number" <- "-"? IntegerOrFloat &AfterNumbers /
    /// "-"? IntegerOrFloat !AfterNumbers &{Invalid number literal}`
    fn number_lit(&mut self) -> Option<String> {
        let start = self.pt.offset;
        let ok = self.seq(|p| {
            p.lit("-", "\"-\"");
            p.integer_or_float().then_some(())?;
            p.and(Self::after_numbers).then_some(())
        });
        if ok.is_some() {
            return Some(self.src[start..self.pt.offset].to_owned());
        }
        self.seq(|p| {
            p.lit("-", "\"-\"");
            p.integer_or_float().then_some(())?;
            p.not(Self::after_numbers).then_some(())?;
            let at = p.pt;
            p.add_err(at, "\"number\"", "Invalid number literal");
            None
        })
    }

    /// `AfterNumbers <- &(_ / EOF / ")")`
    fn after_numbers(&mut self) -> bool {
        self.and(|p| p.ws() || p.eof() || p.lit(")", "\")\""))
    }

    /// `IntegerOrFloat <- ("0" / [1-9][0-9]*) ("." [0-9]+)?`
    fn integer_or_float(&mut self) -> bool {
        let whole = self.lit("0", "\"0\"") || {
            let first = self.class("[1-9]", |c| ('1'..='9').contains(&c));
            if first {
                while self.class("[0-9]", |c| c.is_ascii_digit()) {}
            }
            first
        };
        if !whole {
            return false;
        }
        self.seq(|p| {
            p.lit(".", "\".\"").then_some(())?;
            p.class("[0-9]", |c| c.is_ascii_digit()).then_some(())?;
            while p.class("[0-9]", |c| c.is_ascii_digit()) {}
            Some(())
        });
        true
    }

    /// `StringLiteral "string" <- ('`' RawStringChar* '`' / '"' DoubleStringChar* '"')
    /// {Unquote} / ('`' RawStringChar* / '"' DoubleStringChar*) EOF &{Unterminated string
    /// literal}`
    fn string_lit(&mut self) -> Option<String> {
        let start = self.pt;
        if self.seq(|p| p.quoted(true).then_some(())).is_some() {
            let src = self.src;
            let text = &src[start.offset..self.pt.offset];
            return Some(unquote(text).unwrap_or_else(|| {
                self.add_err(start, "\"string\"", "invalid syntax");
                String::new()
            }));
        }
        self.seq(|p| {
            p.quoted(false).then_some(())?;
            p.eof().then_some(())?;
            let at = p.pt;
            p.add_err(at, "\"string\"", "Unterminated string literal");
            None
        })
    }

    /// A backquoted or double-quoted run; with `closed`, including its closing quote.
    fn quoted(&mut self, closed: bool) -> bool {
        for (q, shown) in [('`', "\"`\""), ('"', "\"\\\"\"")] {
            let run = self.seq(|p| {
                p.lit(q.encode_utf8(&mut [0; 4]), shown).then_some(())?;
                while p.string_char(q, shown) {}
                (!closed || p.lit(q.encode_utf8(&mut [0; 4]), shown)).then_some(())
            });
            if run.is_some() {
                return true;
            }
        }
        false
    }

    /// `RawStringChar <- !'`' .` / `DoubleStringChar <- !'"' .`
    fn string_char(&mut self, q: char, shown: &str) -> bool {
        self.seq(|p| {
            p.not(|p| p.lit(q.encode_utf8(&mut [0; 4]), shown)).then_some(())?;
            p.any().then_some(())
        })
        .is_some()
    }
}
