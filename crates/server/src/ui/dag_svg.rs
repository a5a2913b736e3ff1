//! A DAG drawn as SVG, laid out on the server in layers (Sugiyama style): longest-path
//! layering, so every edge points to a later layer; an edge that spans layers gets a bend
//! point in each layer it crosses, which takes a thin slot there so no box is drawn over it;
//! then a few barycenter sweeps order each layer and cut crossings; then boxes go on a grid,
//! left to right. Linear in nodes, edges and bends per sweep, so a 2,000-task DAG lays out in
//! milliseconds.

use maud::{Markup, html};

use super::widgets::icon;

const NODE_W: usize = 180;
const NODE_H: usize = 44;
/// The height of a bend's slot in a layer: room for an edge to pass between boxes.
const BEND_H: usize = 8;
const GAP_X: usize = 60;
const GAP_Y: usize = 14;
const PAD: usize = 10;
/// Barycenter sweeps (each one down and one up); more rarely helps.
const SWEEPS: usize = 4;
/// Characters of a label drawn in a box; the full text is in the tooltip.
const LABEL_CHARS: usize = 22;
/// Bends laid out at most; past this, long edges are drawn straight (over boxes, perhaps)
/// rather than letting a pathological graph cost seconds.
const MAX_BENDS: usize = 20_000;

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

/// Where each node goes: its layer (column) and its position in the layer (row). Nodes
/// `0..real` are the graph's; the ones after are bends of long edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub layer: Vec<usize>,
    pub row: Vec<usize>,
    /// Nodes per layer, in row order.
    pub layers: Vec<Vec<usize>>,
    pub real: usize,
    /// For each edge given, the bends it passes through, upstream first.
    pub bends: Vec<Vec<usize>>,
}

/// Lays out `n` nodes joined by `edges` (`from -> to`, upstream first).
pub(crate) fn layout(n: usize, edges: &[(usize, usize)]) -> Layout {
    let valid = |&(a, b): &(usize, usize)| a < n && b < n && a != b;
    let mut ups: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut downs: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges.iter().filter(|e| valid(e)) {
        ups[b].push(a);
        downs[a].push(b);
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
    // Long edges become chains through bends, for ordering as for drawing.
    let mut bends = vec![Vec::new(); edges.len()];
    let mut budget = MAX_BENDS;
    for (e, &(a, b)) in edges.iter().enumerate() {
        if !valid(&(a, b)) {
            continue;
        }
        let span = layer[b].saturating_sub(layer[a]);
        if span < 2 || span - 1 > budget {
            continue;
        }
        budget -= span - 1;
        let remove = |list: &mut Vec<usize>, v: usize| {
            if let Some(i) = list.iter().position(|&x| x == v) {
                list.swap_remove(i);
            }
        };
        remove(&mut downs[a], b);
        remove(&mut ups[b], a);
        let mut prev = a;
        for l in layer[a] + 1..layer[b] {
            let d = layer.len();
            layer.push(l);
            ups.push(vec![prev]);
            downs.push(Vec::new());
            downs[prev].push(d);
            bends[e].push(d);
            prev = d;
        }
        downs[prev].push(b);
        ups[b].push(prev);
    }
    let total = layer.len();
    let depth = layer.iter().max().map_or(0, |m| m + 1);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for v in 0..total {
        layers[layer[v]].push(v);
    }
    let mut row = vec![0usize; total];
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
    Layout {
        layer,
        row,
        layers,
        real: n,
        bends,
    }
}

/// The top-left corner of every node's slot (a box, or a bend's thin slot), the drawing's
/// width and height; shorter layers are centred.
pub(crate) fn positions(layout: &Layout) -> (Vec<(usize, usize)>, usize, usize) {
    let height = |v: usize| if v < layout.real { NODE_H } else { BEND_H };
    let extent = |nodes: &[usize]| -> usize {
        nodes
            .iter()
            .map(|&v| height(v) + GAP_Y)
            .sum::<usize>()
            .saturating_sub(GAP_Y)
    };
    let tallest = layout.layers.iter().map(|l| extent(l)).max().unwrap_or(0);
    let mut at = vec![(0, 0); layout.layer.len()];
    for (l, nodes) in layout.layers.iter().enumerate() {
        let mut y = PAD + (tallest - extent(nodes)) / 2;
        for &v in nodes {
            at[v] = (PAD + l * (NODE_W + GAP_X), y);
            y += height(v) + GAP_Y;
        }
    }
    let width = 2 * PAD + layout.layers.len() * (NODE_W + GAP_X);
    (at, width, 2 * PAD + tallest)
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
    let mut arrows = String::new();
    for (e, &(a, b)) in edges.iter().enumerate() {
        if a >= nodes.len() || b >= nodes.len() || a == b {
            continue;
        }
        let (ax, ay) = at[a];
        let (bx, by) = at[b];
        let (mut x, mut y) = (ax + NODE_W, ay + NODE_H / 2);
        paths.push_str(&format!("M{x} {y}"));
        // Across each layer it spans the edge runs straight through its bend's slot.
        for &d in &layout.bends[e] {
            let (dx, dy) = at[d];
            let dy = dy + BEND_H / 2;
            let mid = (x + dx) / 2;
            paths.push_str(&format!("C{mid} {y} {mid} {dy} {dx} {dy}H{}", dx + NODE_W));
            (x, y) = (dx + NODE_W, dy);
        }
        let (x2, y2) = (bx.saturating_sub(1), by + NODE_H / 2);
        let mid = (x + x2) / 2;
        paths.push_str(&format!("C{mid} {y} {mid} {y2} {x2} {y2}"));
        // One arrowhead per edge: a marker would mark only the last vertex of the one path.
        arrows.push_str(&format!(
            "M{} {}L{x2} {y2}L{} {}Z",
            x2.saturating_sub(7),
            y2.saturating_sub(4),
            x2.saturating_sub(7),
            y2 + 4
        ));
    }
    html! {
        svg #dag xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img" aria-label="task graph" {
            path.edges d=(paths) {}
            path.arrows d=(arrows) {}
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
        let h = |v: usize| if v < n { NODE_H } else { BEND_H };
        // Boxes and bends' slots never overlap: an edge never passes under a box.
        for i in 0..l.layer.len() {
            for j in i + 1..l.layer.len() {
                let (a, b) = (at[i], at[j]);
                let apart = a.0 + NODE_W <= b.0
                    || b.0 + NODE_W <= a.0
                    || a.1 + h(i) <= b.1
                    || b.1 + h(j) <= a.1;
                assert!(apart, "slots {i} and {j} overlap");
            }
        }
        // Every edge has a bend in each layer between its ends.
        for (e, &(a, b)) in edges.iter().enumerate() {
            let layers: Vec<usize> = l.bends[e].iter().map(|&d| l.layer[d]).collect();
            assert_eq!(layers, (l.layer[a] + 1..l.layer[b]).collect::<Vec<_>>());
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
    fn a_long_edge_bends_around_the_boxes_it_passes() {
        // 0 -> 1 -> 2 -> 3 and 0 -> 3: the long edge passes layers 1 and 2 in slots of its own.
        let edges = [(0, 1), (1, 2), (2, 3), (0, 3)];
        let l = layout(4, &edges);
        assert_eq!(l.bends[3].len(), 2);
        assert!(l.bends[..3].iter().all(Vec::is_empty));
        let svg = render(&vec![Node::default(); 4], &edges).into_string();
        // Each edge has its own arrowhead.
        let arrows = svg
            .split("class=\"arrows\" d=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("arrows");
        assert_eq!(arrows.matches('Z').count(), 4, "{arrows}");
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
