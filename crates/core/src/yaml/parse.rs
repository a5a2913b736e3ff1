//! Builds a [`Node`] tree from saphyr's event stream.
//!
//! We build our own tree rather than use saphyr's loader so that duplicate keys are reported
//! (the loader silently keeps one), merge keys (`<<`) work, and hostile input (alias bombs,
//! deep nesting) is refused with a located error instead of exhausting memory or stack.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YamlSpan};

use super::node::{Node, NodeValue};
use crate::diagnostic::Diagnostic;
use crate::span::Span;

/// Deeper nesting than this is refused: no pipeline needs it, and the tree is walked recursively.
pub const MAX_DEPTH: usize = 64;
/// Upper bound on nodes created by alias expansion across a document.
pub const MAX_ALIAS_NODES: usize = 100_000;

enum Frame {
    Seq {
        span: Span,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        span: Span,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

/// Parses one YAML document. Problems that do not stop parsing (duplicate keys) are pushed to
/// `diags`; a syntax error ends parsing and is returned.
pub fn parse(source: &str, diags: &mut Vec<Diagnostic>) -> Result<Node, Diagnostic> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
        documents: 0,
        diags,
    };
    for event in Parser::new_from_str(source) {
        let (event, yspan) = event.map_err(|e| {
            let m = e.marker();
            Diagnostic::error(
                point(m.line(), m.col(), m.index()),
                "",
                format!("invalid YAML: {}", e.info()),
            )
        })?;
        builder.event(event, yspan)?;
    }
    Ok(builder.root.unwrap_or(Node {
        span: point(1, 0, 0),
        value: NodeValue::Null,
    }))
}

struct Builder<'d> {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    alias_nodes: usize,
    root: Option<Node>,
    documents: usize,
    diags: &'d mut Vec<Diagnostic>,
}

impl Builder<'_> {
    fn event(&mut self, event: Event<'_>, yspan: YamlSpan) -> Result<(), Diagnostic> {
        let span = span_of(yspan);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(Diagnostic::error(
                        span,
                        "",
                        "a pipeline file holds exactly one YAML document",
                    )
                    .with_hint("split the documents into separate files"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let forced_string = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == ScalarStyle::Plain && !forced_string {
                    resolve_plain(&text)
                } else {
                    NodeValue::Str(text.into_owned())
                };
                self.push(Node { span, value }, anchor)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(Frame::Seq {
                    span,
                    anchor,
                    items: Vec::new(),
                })?;
            }
            Event::MappingStart(anchor, _) => {
                self.open(Frame::Map {
                    span,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                })?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        span,
                        anchor,
                        items,
                    }) => (
                        Node {
                            span,
                            value: NodeValue::Seq(items),
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        span,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            span,
                            value: NodeValue::Map(self.finish_map(entries)),
                        },
                        anchor,
                    ),
                    None => return Ok(()),
                };
                self.push(node, anchor)?;
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(Diagnostic::error(span, "", "alias to an unknown anchor"));
                };
                self.alias_nodes += count_nodes(target, MAX_ALIAS_NODES + 1);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(Diagnostic::error(
                        span,
                        "",
                        format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                    ));
                }
                let mut node = target.clone();
                node.span = span;
                self.push(node, 0)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame) -> Result<(), Diagnostic> {
        if self.stack.len() >= MAX_DEPTH {
            let span = match &frame {
                Frame::Seq { span, .. } | Frame::Map { span, .. } => *span,
            };
            return Err(Diagnostic::error(
                span,
                "",
                format!("YAML nesting is deeper than {MAX_DEPTH} levels"),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<(), Diagnostic> {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if node.key_text().is_none() {
                        return Err(Diagnostic::error(
                            node.span,
                            "",
                            "mapping keys must be plain values, not lists or mappings",
                        ));
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(())
    }

    /// Applies merge keys: merged entries fill in keys the mapping does not set itself.
    /// Duplicate keys are kept so that the decoder can report them with their field path.
    fn finish_map(&mut self, entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
        let is_merge = |k: &Node| matches!(&k.value, NodeValue::Str(s) if s == "<<");
        if !entries.iter().any(|(k, _)| is_merge(k)) {
            return entries;
        }
        let mut out: Vec<(Node, Node)> = Vec::with_capacity(entries.len());
        let mut merged: Vec<(Node, Node)> = Vec::new();
        for (k, v) in entries {
            if !is_merge(&k) {
                out.push((k, v));
                continue;
            }
            match v.value {
                NodeValue::Map(m) => merged.extend(m),
                NodeValue::Seq(maps) => {
                    for m in maps {
                        if let NodeValue::Map(m) = m.value {
                            merged.extend(m);
                        }
                    }
                }
                _ => self.diags.push(Diagnostic::error(
                    v.span,
                    "",
                    "merge key `<<` takes a mapping or a list of mappings",
                )),
            }
        }
        let mut seen: std::collections::HashSet<String> =
            out.iter().filter_map(|(k, _)| k.key_text()).collect();
        for (k, v) in merged {
            if seen.insert(k.key_text().unwrap_or_default()) {
                out.push((k, v));
            }
        }
        out
    }
}

fn count_nodes(node: &Node, limit: usize) -> usize {
    let mut count = 0;
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        count += 1;
        if count >= limit {
            break;
        }
        match &n.value {
            NodeValue::Seq(items) => stack.extend(items),
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    stack.push(k);
                    stack.push(v);
                }
            }
            _ => {}
        }
    }
    count
}

fn point(line: usize, col: usize, index: usize) -> Span {
    Span {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(col + 1).unwrap_or(u32::MAX),
        offset: u32::try_from(index).unwrap_or(u32::MAX),
        len: 0,
    }
}

fn span_of(s: YamlSpan) -> Span {
    let mut span = point(s.start.line(), s.start.col(), s.start.index());
    span.len = u32::try_from(s.end.index().saturating_sub(s.start.index())).unwrap_or(0);
    span
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> NodeValue {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return NodeValue::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return NodeValue::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return NodeValue::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return NodeValue::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return NodeValue::Int(i);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(i) = text.parse::<i64>()
    {
        return NodeValue::Int(i);
    }
    if looks_like_float(digits)
        && let Ok(f) = text.parse::<f64>()
    {
        return NodeValue::Float(f);
    }
    NodeValue::Str(text.to_owned())
}

fn looks_like_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (mantissa, None),
    };
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok && (frac.is_some() || exponent.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> (Node, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let node = parse(src, &mut diags).expect("parses");
        (node, diags)
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let (node, _) = parse_ok("[1, -2, 0x1f, 1.5, 1e3, true, null, ~, '3', abc, 1.2.3]");
        let NodeValue::Seq(items) = node.value else {
            panic!("not a list")
        };
        let values: Vec<_> = items.into_iter().map(|n| n.value).collect();
        assert_eq!(
            values,
            vec![
                NodeValue::Int(1),
                NodeValue::Int(-2),
                NodeValue::Int(31),
                NodeValue::Float(1.5),
                NodeValue::Float(1000.0),
                NodeValue::Bool(true),
                NodeValue::Null,
                NodeValue::Null,
                NodeValue::Str("3".into()),
                NodeValue::Str("abc".into()),
                NodeValue::Str("1.2.3".into()),
            ]
        );
    }

    #[test]
    fn applies_merge_keys_without_overriding() {
        let (node, diags) = parse_ok("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n");
        assert!(diags.is_empty());
        let NodeValue::Map(top) = node.value else {
            panic!()
        };
        let thing = &top[1].1;
        assert_eq!(thing.to_json(), serde_json::json!({"y": 3, "x": 1}));
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&src, &mut Vec::new()).expect_err("must refuse");
        assert!(err.message.contains("aliases expand"), "{}", err.message);
    }

    #[test]
    fn refuses_deep_nesting() {
        let src = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let err = parse(&src, &mut Vec::new()).expect_err("must refuse");
        assert!(err.message.contains("nesting"), "{}", err.message);
        // Far deeper input is refused by the parser's own recursion limit.
        assert!(parse(&"[".repeat(100_000), &mut Vec::new()).is_err());
    }

    #[test]
    fn syntax_errors_carry_location() {
        let err = parse("a: [1, 2\nb: 3\n", &mut Vec::new()).expect_err("invalid");
        assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
        assert!(err.span.line >= 1);
    }
}
