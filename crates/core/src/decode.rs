//! Turning a [`Node`] tree into spec types while collecting every problem.
//!
//! serde stops at the first error; users fixing a file want all of them at once, each with its
//! location and field path. So spec types implement [`Decode`] by hand over spanned nodes, with
//! [`MapReader`] doing the bookkeeping (required keys, unknown keys with suggestions).

use indexmap::IndexMap;

use crate::diagnostic::{Diagnostic, did_you_mean, one_of};
use crate::span::{Span, Spanned};
use crate::yaml::{Node, NodeValue};

#[derive(Debug, Default)]
pub struct Decoder {
    pub diags: Vec<Diagnostic>,
    path: Vec<String>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The dotted path of the field being decoded.
    pub fn field(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            if !seg.starts_with('[') && !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
        out
    }

    pub fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        let diag = Diagnostic::error(span, self.field(), message);
        self.diags.push(diag);
        self.diags.last_mut().expect("just pushed")
    }

    /// Decodes under a path segment: a key, or `[i]` for a list index.
    pub fn at<T>(&mut self, segment: impl Into<String>, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(segment.into());
        let out = f(self);
        self.path.pop();
        out
    }

    fn mismatch(&mut self, node: &Node, expected: &str) {
        self.error(
            node.span,
            format!("expected {expected}, found {}", node.kind()),
        );
    }

    pub fn map<'n>(&mut self, node: &'n Node, what: &'static str) -> Option<MapReader<'n>> {
        match &node.value {
            NodeValue::Map(entries) => {
                self.duplicates(entries, "key");
                Some(MapReader {
                    node,
                    what,
                    entries,
                    used: vec![false; entries.len()],
                    known: Vec::new(),
                })
            }
            _ => {
                self.mismatch(node, "a mapping");
                None
            }
        }
    }

    pub fn string(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            NodeValue::Str(s) => Some(s.clone()),
            _ => {
                self.mismatch(node, "a string");
                None
            }
        }
    }

    /// A string where YAML may have typed the value (`WAREHOUSE: 3`, `DEBUG: true`): environment
    /// values and similar are text whatever they look like.
    pub fn scalar_text(&mut self, node: &Node) -> Option<String> {
        match &node.value {
            NodeValue::Seq(_) | NodeValue::Map(_) | NodeValue::Null => {
                self.mismatch(node, "a string");
                None
            }
            _ => node.key_text(),
        }
    }

    /// One of a fixed set of names, reported with the allowed values and a suggestion.
    pub fn keyword<T: Copy>(
        &mut self,
        node: &Node,
        what: &str,
        choices: &[(&'static str, T)],
    ) -> Option<T> {
        let text = self.string(node)?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let hint = did_you_mean(&text, names.iter().copied()).unwrap_or_else(|| one_of(&names));
        self.error(node.span, format!("unknown {what} `{text}`"))
            .hint = Some(hint);
        None
    }

    pub fn list<T>(
        &mut self,
        node: &Node,
        mut item: impl FnMut(&mut Self, &Node) -> Option<T>,
    ) -> Option<Vec<T>> {
        let NodeValue::Seq(items) = &node.value else {
            self.mismatch(node, "a list");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, n) in items.iter().enumerate() {
            match self.at(format!("[{i}]"), |d| item(d, n)) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// Reports keys written twice; the first one written is the one used.
    fn duplicates(&mut self, entries: &[(Node, Node)], what: &str) -> Vec<bool> {
        let mut first: std::collections::HashMap<String, u32> =
            std::collections::HashMap::with_capacity(entries.len());
        let mut dup = vec![false; entries.len()];
        for (i, (k, _)) in entries.iter().enumerate() {
            let text = k.key_text().unwrap_or_default();
            match first.get(&text) {
                Some(line) => {
                    dup[i] = true;
                    let line = *line;
                    self.at(text.clone(), |d| {
                        d.error(k.span, format!("duplicate {what} `{text}`")).hint =
                            Some(format!("first defined at line {line}"));
                    });
                }
                None => {
                    first.insert(text, k.span.line);
                }
            }
        }
        dup
    }

    /// A mapping from names to values; `what` names the keys in
    /// messages (`duplicate task id `x``).
    pub fn entries<T>(
        &mut self,
        node: &Node,
        what: &str,
        mut value: impl FnMut(&mut Self, &Node) -> Option<T>,
    ) -> Option<IndexMap<Spanned<String>, T>> {
        let NodeValue::Map(entries) = &node.value else {
            self.mismatch(node, "a mapping");
            return None;
        };
        let dup = self.duplicates(entries, what);
        let mut out = IndexMap::with_capacity(entries.len());
        let mut ok = true;
        for ((k, v), dup) in entries.iter().zip(dup) {
            if dup {
                ok = false;
                continue;
            }
            let name = k.key_text().unwrap_or_default();
            match self.at(name.clone(), |d| value(d, v)) {
                Some(v) => {
                    out.insert(Spanned::new(name, k.span), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// Reads the keys of one mapping, remembering which were asked for so that [`finish`] can
/// report the rest as unknown, with a suggestion among the known ones.
///
/// [`finish`]: MapReader::finish
#[derive(Debug)]
pub struct MapReader<'n> {
    node: &'n Node,
    what: &'static str,
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'n> MapReader<'n> {
    /// The value node of `key`, if present and not null: `description:` left empty means the
    /// same as leaving the key out.
    pub fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        self.get_raw(key).filter(|n| n.value != NodeValue::Null)
    }

    /// The value node of `key`, null included, for keys where an empty value means something.
    pub fn get_raw(&mut self, key: &'static str) -> Option<&'n Node> {
        self.known.push(key);
        // The first occurrence wins; later duplicates were reported by `Decoder::map`.
        let i = self
            .entries
            .iter()
            .position(|(k, _)| matches!(&k.value, NodeValue::Str(s) if s == key))?;
        for (j, (k, _)) in self.entries.iter().enumerate().skip(i) {
            if matches!(&k.value, NodeValue::Str(s) if s == key) {
                self.used[j] = true;
            }
        }
        self.used[i] = true;
        Some(&self.entries[i].1)
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries
            .iter()
            .any(|(k, _)| matches!(&k.value, NodeValue::Str(s) if s == key))
    }

    /// Decodes an optional key; `None` when absent or invalid (invalid is reported).
    pub fn opt<T>(
        &mut self,
        d: &mut Decoder,
        key: &'static str,
        f: impl FnOnce(&mut Decoder, &Node) -> Option<T>,
    ) -> Option<T> {
        let node = self.get(key)?;
        d.at(key, |d| f(d, node))
    }

    /// Like [`MapReader::opt`], but hands a null value to `f` instead of treating it as absent.
    pub fn opt_raw<T>(
        &mut self,
        d: &mut Decoder,
        key: &'static str,
        f: impl FnOnce(&mut Decoder, &Node) -> Option<T>,
    ) -> Option<T> {
        let node = self.get_raw(key)?;
        d.at(key, |d| f(d, node))
    }

    /// Decodes a required key, reporting it as missing at the mapping's location.
    pub fn req<T>(
        &mut self,
        d: &mut Decoder,
        key: &'static str,
        f: impl FnOnce(&mut Decoder, &Node) -> Option<T>,
    ) -> Option<T> {
        if let Some(node) = self.get_raw(key) {
            return d.at(key, |d| {
                if node.value == NodeValue::Null {
                    d.error(node.span, format!("`{key}` has no value"));
                    return None;
                }
                f(d, node)
            });
        }
        let what = self.what;
        d.error(
            self.node.span,
            format!("missing required key `{key}` in {what}"),
        );
        None
    }

    /// Reports every key that no `get` asked for.
    pub fn finish(self, d: &mut Decoder) {
        for ((k, _), used) in self.entries.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let name = k.key_text().unwrap_or_default();
            let hint = did_you_mean(&name, self.known.iter().copied())
                .unwrap_or_else(|| one_of(&self.known));
            let what = self.what;
            d.at(name.clone(), |d| {
                d.error(k.span, format!("unknown key `{name}` in {what}"))
                    .hint = Some(hint);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    fn node(src: &str) -> Node {
        yaml::parse(src, &mut Vec::new()).expect("valid yaml")
    }

    #[test]
    fn unknown_keys_get_a_suggestion() {
        let n = node("neds: [a]\nrun: x\n");
        let mut d = Decoder::new();
        d.at("tasks", |d| {
            d.at("check", |d| {
                let mut m = d.map(&n, "a task").expect("map");
                m.get("needs");
                m.get("run");
                m.finish(d);
            });
        });
        assert_eq!(d.diags.len(), 1);
        let diag = &d.diags[0];
        assert_eq!(diag.message, "unknown key `neds` in a task");
        assert_eq!(diag.field, "tasks.check.neds");
        assert_eq!(diag.hint.as_deref(), Some("did you mean `needs`?"));
    }

    #[test]
    fn duplicate_keys_are_reported_with_path_and_first_line() {
        let n = node("tasks:\n  a: 1\n  b: 2\n  a: 3\n");
        let mut d = Decoder::new();
        let mut m = d.map(&n, "the pipeline").expect("map");
        let tasks = m.opt(&mut d, "tasks", |d, n| d.entries(n, "task id", i64::decode));
        m.finish(&mut d);
        assert!(tasks.is_none());
        assert_eq!(d.diags.len(), 1);
        let diag = &d.diags[0];
        assert_eq!(diag.message, "duplicate task id `a`");
        assert_eq!(diag.field, "tasks.a");
        assert_eq!((diag.span.line, diag.span.column), (4, 3));
        assert_eq!(diag.hint.as_deref(), Some("first defined at line 2"));
    }

    #[test]
    fn list_paths_use_brackets() {
        let n = node("[a, 3, b]");
        let mut d = Decoder::new();
        let out = d.at("tags", |d| d.list(&n, Decoder::string));
        assert!(out.is_none());
        assert_eq!(d.diags[0].field, "tags[1]");
        assert_eq!(d.diags[0].message, "expected a string, found an integer");
    }
}

/// Types that decode from a single node.
pub trait Decode: Sized {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self>;
}

impl Decode for String {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        d.string(node)
    }
}

impl Decode for bool {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        match node.value {
            NodeValue::Bool(b) => Some(b),
            _ => {
                d.mismatch(node, "`true` or `false`");
                None
            }
        }
    }
}

impl Decode for i64 {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        match node.value {
            NodeValue::Int(i) => Some(i),
            _ => {
                d.mismatch(node, "an integer");
                None
            }
        }
    }
}

macro_rules! decode_int {
    ($($ty:ty),*) => {$(
        impl Decode for $ty {
            fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
                let i = i64::decode(d, node)?;
                match <$ty>::try_from(i) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        d.error(
                            node.span,
                            format!("{i} is out of range ({} to {})", <$ty>::MIN, <$ty>::MAX),
                        );
                        None
                    }
                }
            }
        }
    )*};
}
decode_int!(u32, i32);

impl Decode for f64 {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        match node.value {
            #[expect(clippy::cast_precision_loss, reason = "YAML integers used as numbers")]
            NodeValue::Int(i) => Some(i as f64),
            NodeValue::Float(f) if f.is_finite() => Some(f),
            _ => {
                d.mismatch(node, "a number");
                None
            }
        }
    }
}

impl Decode for serde_json::Value {
    fn decode(_: &mut Decoder, node: &Node) -> Option<Self> {
        Some(node.to_json())
    }
}

impl Decode for crate::duration::Duration {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        let text = match &node.value {
            NodeValue::Str(s) => s.clone(),
            NodeValue::Int(i) => {
                d.error(node.span, format!("missing unit in duration `{i}`"))
                    .hint = Some(format!("add a unit, e.g. `{i}s` or `{i}m`"));
                return None;
            }
            _ => {
                d.mismatch(node, "a duration such as `30s`");
                return None;
            }
        };
        match text.parse::<Self>() {
            Ok(v) => Some(v),
            Err(e) => {
                let hint = e.hint();
                d.error(node.span, e.to_string()).hint = Some(hint.to_owned());
                None
            }
        }
    }
}

impl<T: Decode> Decode for Spanned<T> {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        T::decode(d, node).map(|v| Spanned::new(v, node.span))
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        d.list(node, T::decode)
    }
}

/// A mapping with free-form names (environment, labels).
impl<T: Decode> Decode for IndexMap<Spanned<String>, T> {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        d.entries(node, "key", T::decode)
    }
}

/// Text that YAML may have typed as a number or boolean (`PORT: 5432`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text(pub String);

impl Decode for Text {
    fn decode(d: &mut Decoder, node: &Node) -> Option<Self> {
        d.scalar_text(node).map(Text)
    }
}
