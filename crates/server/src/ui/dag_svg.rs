//! A DAG drawn as SVG, laid out on the server in layers (Sugiyama style): longest-path
//! layering, so every edge points to a later layer, then a few barycenter sweeps to order
//! each layer and cut crossings, then a grid of boxes, left to right. Linear in nodes and
//! edges per sweep, so a 2,000-task DAG lays out in milliseconds.

use maud::{Markup, html};

use super::widgets::icon;

const NODE_W: usize = 180;
const NODE_H: usize = 44;
const GAP_X: usize = 60;
const GAP_Y: usize = 14;
const PAD: usize = 10;
/// Barycenter sweeps (each one down and one up); more rarely helps.
const SWEEPS: usize = 4;
/// Characters of a label drawn in a box; the full text is in the tooltip.
const LABEL_CHARS: usize = 22;

/// A box of the drawing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    /// `data-task`: a task id (pipeline page, group node) or a task key (run page).
    pub key: String,
    pub label: String,
    /// The state it is coloured by (run page).
    pub state: Option<String>,
    pub href: Option<String>,
    /// Collapsed fan-out instances: counts by state.
    pub group: Option<Vec<(String, usize)>>,
}

/// Where each node goes: its layer (column) and its position in the layer (row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub layer: Vec<usize>,
    pub row: Vec<usize>,
    /// Nodes per layer, in row order.
    pub layers: Vec<Vec<usize>>,
}

/// Lays out `n` nodes joined by `edges` (`from -> to`, upstream first).
pub(crate) fn layout(n: usize, edges: &[(usize, usize)]) -> Layout {
    let mut ups: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut downs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a < n && b < n && a != b {
            ups[b].push(a);
            downs[a].push(b);
        }
    }
    // Longest path from the sources, in topological order (Kahn).
    let mut indegree: Vec<usize> = ups.iter().map(Vec::len).collect();
    let mut queue: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut layer = vec![0usize; n];
    let mut head = 0;
    while head < queue.len() {
        let v = queue[head];
        head += 1;
        for &w in &downs[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                queue.push(w);
            }
        }
    }
    let depth = layer.iter().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for v in 0..n {
        layers[layer[v]].push(v);
    }
    let mut row = vec![0usize; n];
    let renumber = |layers: &Vec<Vec<usize>>, row: &mut Vec<usize>| {
        for l in layers {
            for (i, &v) in l.iter().enumerate() {
                row[v] = i;
            }
        }
    };
    renumber(&layers, &mut row);
    #[expect(clippy::cast_precision_loss, reason = "rows are far below 2^52")]
    let barycenter = |v: usize, near: &[usize], row: &[usize]| {
        if near.is_empty() {
            row[v] as f64
        } else {
            near.iter().map(|&u| row[u] as f64).sum::<f64>() / near.len() as f64
        }
    };
    for _ in 0..SWEEPS {
        for l in 1..depth {
            let mut keyed: Vec<(f64, usize)> = layers[l]
                .iter()
                .map(|&v| (barycenter(v, &ups[v], &row), v))
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            layers[l] = keyed.into_iter().map(|(_, v)| v).collect();
            renumber(&layers, &mut row);
        }
        for l in (0..depth.saturating_sub(1)).rev() {
            let mut keyed: Vec<(f64, usize)> = layers[l]
                .iter()
                .map(|&v| (barycenter(v, &downs[v], &row), v))
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            layers[l] = keyed.into_iter().map(|(_, v)| v).collect();
            renumber(&layers, &mut row);
        }
    }
    Layout { layer, row, layers }
}

/// The top-left corner of every node's box; smaller layers are centred.
pub(crate) fn positions(layout: &Layout) -> (Vec<(usize, usize)>, usize, usize) {
    let tallest = layout.layers.iter().map(Vec::len).max().unwrap_or(0);
    let step_y = NODE_H + GAP_Y;
    let mut at = vec![(0, 0); layout.layer.len()];
    for (l, nodes) in layout.layers.iter().enumerate() {
        let offset = (tallest - nodes.len()) * step_y / 2;
        for (i, &v) in nodes.iter().enumerate() {
            at[v] = (PAD + l * (NODE_W + GAP_X), PAD + offset + i * step_y);
        }
    }
    let width = 2 * PAD + layout.layers.len() * (NODE_W + GAP_X);
    let height = 2 * PAD + tallest * step_y;
    (at, width, height)
}

fn short(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        label.to_owned()
    } else {
        let cut: String = label.chars().take(LABEL_CHARS - 1).collect();
        format!("{cut}…")
    }
}

/// The drawing: `svg#dag` with a `g.node[data-task]` per node and an arrow per edge.
pub(crate) fn render(nodes: &[Node], edges: &[(usize, usize)]) -> Markup {
    let layout = layout(nodes.len(), edges);
    let (at, width, height) = positions(&layout);
    let mut paths = String::new();
    for &(a, b) in edges {
        if a >= nodes.len() || b >= nodes.len() {
            continue;
        }
        let (ax, ay) = at[a];
        let (bx, by) = at[b];
        let (x1, y1) = (ax + NODE_W, ay + NODE_H / 2);
        let (x2, y2) = (bx.saturating_sub(2), by + NODE_H / 2);
        let mid = (x1 + x2) / 2;
        paths.push_str(&format!("M{x1} {y1}C{mid} {y1} {mid} {y2} {x2} {y2}"));
    }
    html! {
        svg #dag xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img" aria-label="task graph" {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"
                    markerHeight="7" orient="auto-start-reverse" {
                    path d="M0 0L10 5L0 10z" {}
                }
            }
            path.edges d=(paths) marker-end="url(#arrow)" {}
            @for (i, node) in nodes.iter().enumerate() {
                (node_markup(node, at[i]))
            }
        }
    }
}

fn node_markup(node: &Node, (x, y): (usize, usize)) -> Markup {
    let state = node.state.as_deref();
    let class = match (state, node.group.is_some()) {
        (Some(s), true) => format!("node group state-{s}"),
        (Some(s), false) => format!("node state-{s}"),
        (None, true) => "node group".to_owned(),
        (None, false) => "node".to_owned(),
    };
    let title = match state {
        Some(s) => format!("{} — {s}", node.label),
        None => node.label.clone(),
    };
    let body = html! {
        title { (title) }
        rect width=(NODE_W) height=(NODE_H) rx="6" {}
        text x="10" y="19" {
            tspan.icon { @if let Some(s) = state { (icon(s)) " " } }
            tspan.label { (short(&node.label)) }
        }
        @if let Some(counts) = &node.group {
            text.counts x="10" y="36" {
                @for (s, n) in counts {
                    tspan class={ "count state-" (s) } { (icon(s)) (n) " " }
                }
            }
        } @else if let Some(s) = state {
            text.sub x="10" y="36" { (s.replace('_', " ")) }
        }
    };
    html! {
        g class=(class) data-task=(node.key) data-state=[state]
            transform={ "translate(" (x) "," (y) ")" } {
            @if let Some(href) = &node.href {
                a href=(href) { (body) }
            } @else {
                (body)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(n: usize, edges: &[(usize, usize)]) {
        let l = layout(n, edges);
        for &(a, b) in edges {
            assert!(l.layer[a] < l.layer[b], "edge {a}->{b} goes back");
        }
        let (at, _, _) = positions(&l);
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (at[i], at[j]);
                let apart = a.0 + NODE_W <= b.0
                    || b.0 + NODE_W <= a.0
                    || a.1 + NODE_H <= b.1
                    || b.1 + NODE_H <= a.1;
                assert!(apart, "nodes {i} and {j} overlap");
            }
        }
    }

    #[test]
    fn layers_follow_edges_and_boxes_do_not_overlap() {
        check(1, &[]);
        check(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        // A long edge next to a chain: the chain sets the layers.
        check(5, &[(0, 1), (1, 2), (2, 3), (0, 3), (4, 3)]);
        // A wide fan-out and fan-in.
        let mut edges: Vec<(usize, usize)> = (1..60).map(|i| (0, i)).collect();
        edges.extend((1..60).map(|i| (i, 60)));
        check(61, &edges);
    }

    #[test]
    fn barycenter_ordering_removes_a_crossing() {
        // 0->3 and 1->2: ordering layer 1 by its parents puts 3 above 2.
        let l = layout(4, &[(0, 3), (1, 2)]);
        assert!(l.row[3] < l.row[2]);
    }

    #[test]
    fn labels_are_escaped_and_shortened() {
        let nodes = [Node {
            key: "<script>".into(),
            label: "<script>alert(1)</script> and a long tail".into(),
            ..Node::default()
        }];
        let svg = render(&nodes, &[]).into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains('…'));
    }
}
