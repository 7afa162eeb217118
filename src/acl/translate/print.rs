//! TRANSLATE, step 4: the document tree -> text, laid out as Consul 1.8's vendored HCL 1
//! printer (`hcl/printer`, two-space indent) lays it out [live on 1.8.7].
//!
//! Layout: top-level items are separated by one blank line; a block's body is one item a line,
//! indented; within a body, runs of one-line items on consecutive source lines are aligned
//! (`=` and line comments in columns) and a blank line separates such a run from what is not
//! in it; lead comments stay above their item, line comments after it; standalone comments are
//! printed where they stood between items. Keys, strings and numbers keep their source text.
//! No trailing newline, unless the text ends with a standalone comment.
//!
//! Invariant: pure; the printer's one state is the position of the last item printed, which
//! decides which standalone comments come next.

use super::scan::{Pos, Token};
use super::tree::{File, Item, Value};

const INDENT: &str = "  ";

/// Prints a document.
pub(super) fn print(file: &File) -> String {
    let mut p = Printer { prev: Pos::default(), standalone: standalone(file) };
    p.list(&file.items)
}

struct Printer {
    prev: Pos,
    /// Comment groups attached to no item, in text order.
    standalone: Vec<Vec<Token>>,
}

/// The comment groups that are neither a lead nor a line comment of any item or literal.
fn standalone(file: &File) -> Vec<Vec<Token>> {
    let mut attached: Vec<usize> = Vec::new();
    fn walk_items(items: &[Item], out: &mut Vec<usize>) {
        for item in items {
            for group in [&item.lead, &item.line].into_iter().flatten() {
                out.extend(group.iter().map(|c| c.pos.offset));
            }
            walk_value(&item.val, out);
        }
    }
    fn walk_value(val: &Value, out: &mut Vec<usize>) {
        match val {
            Value::Literal { line, .. } => out.extend(line.iter().flatten().map(|c| c.pos.offset)),
            Value::List { items, .. } => items.iter().for_each(|v| walk_value(v, out)),
            Value::Object { items, .. } => walk_items(items, out),
        }
    }
    walk_items(&file.items, &mut attached);
    file.comments
        .iter()
        .filter(|g| g.first().is_some_and(|c| !attached.contains(&c.pos.offset)))
        .cloned()
        .collect()
}

fn indent(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut bol = true;
    for c in text.chars() {
        if bol && c != '\n' {
            out.push_str(INDENT);
        }
        out.push(c);
        bol = c == '\n';
    }
    out
}

/// An empty block with no lead comment and no `=` (`key "a" {}`), which may sit on the line
/// after another.
fn single_line_object(item: &Item) -> bool {
    item.lead.is_none()
        && item.assign.is_none()
        && matches!(&item.val, Value::Object { items, .. } if items.is_empty())
}

fn lines(text: &str) -> usize {
    text.matches('\n').count() + 1
}

impl Printer {
    /// The standalone comment groups between the last printed item and `next`.
    fn groups_before(&self, next: Pos) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for group in &self.standalone {
            let texts: Vec<String> = group
                .iter()
                .filter(|c| c.pos.after(self.prev) && c.pos.before(next))
                .map(|c| c.text.clone())
                .collect();
            if !texts.is_empty() {
                out.push(texts);
            }
        }
        out
    }

    /// The top level: items one blank line apart, but for empty blocks on consecutive lines;
    /// a standalone comment group printed whole, a blank line after it (before it at the end).
    fn list(&mut self, items: &[Item]) -> String {
        let mut buf = String::new();
        let mut index = 0;
        loop {
            let next = items.get(index).map_or(Pos::END, Item::pos);
            for group in &self.standalone {
                let (mut printed, mut newline_printed) = (false, false);
                for c in group.iter().filter(|c| c.pos.after(self.prev) && c.pos.before(next)) {
                    if !newline_printed && self.prev.is_valid() && index == items.len() {
                        buf.push_str("\n\n");
                        newline_printed = true;
                    }
                    buf.push_str(&c.text);
                    buf.push('\n');
                    printed = true;
                }
                if printed && index != items.len() {
                    buf.push('\n');
                }
            }
            let Some(item) = items.get(index) else { break };
            self.prev = item.pos();
            buf.push_str(&self.item(item));
            if let Some(following) = items.get(index + 1) {
                buf.push('\n');
                if following.pos().line != item.pos().line + 1
                    || !single_line_object(following)
                    || !single_line_object(item)
                {
                    buf.push('\n');
                }
            }
            index += 1;
        }
        buf
    }

    fn item(&mut self, o: &Item) -> String {
        let mut buf = String::new();
        for c in o.lead.iter().flatten() {
            buf.push_str(&c.text);
            buf.push('\n');
        }
        for k in &o.keys {
            buf.push_str(&k.token.text);
            buf.push(' ');
        }
        if o.assign.is_some() && o.keys.len() == 1 {
            buf.push_str("= ");
        }
        buf.push_str(&self.value(&o.val));
        if let Some(line) = o.line.as_ref().filter(|_| o.val.pos().line == o.pos().line) {
            buf.push(' ');
            line.iter().for_each(|c| buf.push_str(&c.text));
        }
        buf
    }

    fn value(&mut self, v: &Value) -> String {
        match v {
            Value::Literal { token, .. } => token.text.clone(),
            Value::List { lbrack, items } => self.list_value(*lbrack, items),
            Value::Object { items, rbrace, .. } => self.object(items, *rbrace),
        }
    }

    fn object(&mut self, items: &[Item], rbrace: Pos) -> String {
        let mut buf = String::from("{");
        let (mut index, mut commented, mut newline_printed) = (0usize, false, false);
        loop {
            let next = items.get(index).map_or(rbrace, Item::pos);
            for group in self.groups_before(next) {
                if !newline_printed {
                    newline_printed = true;
                    buf.push('\n');
                }
                if index > 0 {
                    commented = true;
                    buf.push('\n');
                }
                for text in group {
                    buf.push_str(&indent(&text));
                    buf.push('\n');
                }
                if index != items.len() {
                    buf.push('\n');
                }
            }
            if index == items.len() {
                self.prev = rbrace;
                break;
            }
            if !newline_printed {
                buf.push('\n');
                newline_printed = true;
            }
            let aligned = self.aligned_run(items, &mut index);
            if !commented && index != aligned.len() {
                buf.push('\n');
            }
            if let Some(last) = aligned.last() {
                self.prev = last.pos();
                let text = self.aligned(&aligned);
                buf.push_str(&indent(&text));
            } else {
                self.prev = items[index].pos();
                let text = self.item(&items[index]);
                buf.push_str(&indent(&text));
                index += 1;
            }
            buf.push('\n');
        }
        buf.push('}');
        buf
    }

    /// The run of adjacent one-line items from `index` (HCL 1's grouping, moving `index`).
    fn aligned_run<'i>(&mut self, items: &'i [Item], index: &mut usize) -> Vec<&'i Item> {
        let mut aligned = Vec::new();
        if items.len() == 1 {
            return aligned;
        }
        let start = *index;
        for item in &items[start..] {
            if lines(&self.item(item)) > 2 {
                break;
            }
            let cur = item.pos();
            let next = if *index + 1 != items.len() { items[*index + 1].pos() } else { Pos::default() };
            let prev = if *index != 0 { items[*index - 1].pos() } else { Pos::default() };
            if cur.line + 1 == next.line {
                aligned.push(item);
                *index += 1;
                continue;
            }
            if cur.line == prev.line + 1 {
                aligned.push(item);
                *index += 1;
                if cur.line + 1 != next.line {
                    break;
                }
                continue;
            }
            break;
        }
        aligned
    }

    fn aligned(&mut self, items: &[&Item]) -> String {
        let key_width =
            items.iter().map(|i| i.keys.first().map_or(0, |k| k.token.text.len())).max().unwrap_or(0);
        let val_width = items.iter().map(|i| self.value(&i.val).len()).max().unwrap_or(0);
        let mut buf = String::new();
        for (n, item) in items.iter().enumerate() {
            for c in item.lead.iter().flatten() {
                buf.push_str(&c.text);
                buf.push('\n');
            }
            for k in &item.keys {
                buf.push_str(&k.token.text);
                buf.push_str(&" ".repeat(key_width.saturating_sub(k.token.text.len()) + 1));
            }
            if item.keys.len() == 1 {
                buf.push_str("= ");
            }
            let val = self.value(&item.val);
            buf.push_str(&val);
            if let Some(line) = item.line.as_ref().filter(|_| item.val.pos().line == item.pos().line) {
                buf.push_str(&" ".repeat(val_width.saturating_sub(val.len()) + 1));
                line.iter().for_each(|c| buf.push_str(&c.text));
            }
            if n + 1 != items.len() {
                buf.push('\n');
            }
        }
        buf
    }

    fn list_value(&mut self, lbrack: Pos, items: &[Value]) -> String {
        let longest = items
            .iter()
            .filter_map(|v| match v {
                Value::Literal { token, .. } => Some(token.text.len()),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let mut buf = String::from("[");
        let mut space = false;
        for (i, item) in items.iter().enumerate() {
            if item.pos().line != lbrack.line {
                buf.push('\n');
                space = false;
                let val = self.value(item);
                buf.push_str(&indent(&val));
                buf.push(',');
                if let Value::Literal { line: Some(line), .. } = item {
                    buf.push_str(&" ".repeat(longest.saturating_sub(val.len()) + 1));
                    line.iter().for_each(|c| buf.push_str(&c.text));
                }
                if i + 1 == items.len() {
                    buf.push('\n');
                }
            } else {
                if space {
                    buf.push(' ');
                    space = false;
                }
                buf.push_str(&self.value(item));
                if i + 1 != items.len() {
                    buf.push(',');
                    space = true;
                }
            }
        }
        buf.push(']');
        buf
    }
}
