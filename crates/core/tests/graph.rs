//! `baton graph`'s renderings of a DAG, pinned on a pipeline that uses every kind of task and
//! every badge.

use baton_core::graph::{Graph, TaskKind, to_dot, to_json, to_mermaid, to_text};
use baton_core::model::Pipeline;

const SOURCE: &str = r#"
name: g
namespace: team
params:
  x: { default: true }
tasks:
  fetch:
    run: echo
  each:
    needs: [fetch]
    for_each: [a, b]
    run: echo {{ item }}
  approve:
    needs: [fetch]
    approval: { message: go? }
  child:
    needs: [each, approve]
    pipeline: other
  checked:
    needs: [fetch]
    run: echo
    approval: {}
    if: params.x
    trigger_rule: all_done
"#;

fn pipeline() -> Pipeline {
    let loaded = baton_core::load(SOURCE);
    loaded
        .pipeline
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
}

#[test]
fn text_lists_layers_needs_and_badges() {
    let p = pipeline();
    assert_eq!(
        to_text(&p),
        format!(
            "team/g ({}): 5 tasks in 3 layers\n\
             layer 0:\n  \
             fetch\n\
             layer 1:\n  \
             each     <- fetch  [for_each]\n  \
             approve  <- fetch  [gate]\n  \
             checked  <- fetch  [approval, if, all_done]\n\
             layer 2:\n  \
             child    <- each, approve  [pipeline team/other]\n",
            p.version.short()
        )
    );
}

#[test]
fn dot_and_mermaid_draw_every_edge_once() {
    let p = pipeline();
    assert_eq!(
        to_dot(&p),
        "digraph \"team/g\" {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n  \
         \"fetch\" [label=\"fetch\"];\n  \
         \"each\" [label=\"each\\n[for_each]\"];\n  \
         \"approve\" [label=\"approve\\n[gate]\"];\n  \
         \"child\" [label=\"child\\n[pipeline team/other]\"];\n  \
         \"checked\" [label=\"checked\\n[approval, if, all_done]\"];\n  \
         \"fetch\" -> \"each\";\n  \
         \"fetch\" -> \"approve\";\n  \
         \"each\" -> \"child\";\n  \
         \"approve\" -> \"child\";\n  \
         \"fetch\" -> \"checked\";\n}\n"
    );
    assert_eq!(
        to_mermaid(&p),
        "flowchart LR\n  \
         t0[\"fetch\"]\n  \
         t1[\"each<br/>[for_each]\"]\n  \
         t2[\"approve<br/>[gate]\"]\n  \
         t3[\"child<br/>[pipeline team/other]\"]\n  \
         t4[\"checked<br/>[approval, if, all_done]\"]\n  \
         t0 --> t1\n  \
         t0 --> t2\n  \
         t1 --> t3\n  \
         t2 --> t3\n  \
         t0 --> t4\n"
    );
}

#[test]
fn json_describes_each_task_and_a_runnable_order() {
    let p = pipeline();
    let g = Graph::of(&p);
    assert_eq!(g.pipeline, "team/g");
    assert_eq!(g.version, p.version);
    let kinds: Vec<(&str, usize, TaskKind, bool, bool, bool)> = g
        .tasks
        .iter()
        .map(|t| {
            (
                t.id.as_str(),
                t.layer,
                t.kind,
                t.fan_out,
                t.approval,
                t.conditional,
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("fetch", 0, TaskKind::Command, false, false, false),
            ("each", 1, TaskKind::Command, true, false, false),
            ("approve", 1, TaskKind::Gate, false, true, false),
            ("child", 2, TaskKind::Pipeline, false, false, false),
            ("checked", 1, TaskKind::Command, false, true, true),
        ]
    );
    let edges: Vec<String> = g.edges.iter().map(|[u, d]| format!("{u}->{d}")).collect();
    assert_eq!(
        edges,
        [
            "fetch->each",
            "fetch->approve",
            "each->child",
            "approve->child",
            "fetch->checked"
        ]
    );
    let position = |id: &str| g.order.iter().position(|t| t.as_str() == id);
    for [u, d] in &g.edges {
        assert!(position(u) < position(d), "{u} before {d}");
    }
    assert_eq!(g.order.len(), 5);
    let json = to_json(&p);
    assert_eq!(json["pipeline"], "team/g");
    assert_eq!(json["tasks"][3]["kind"], "pipeline");
    assert_eq!(json["tasks"][4]["trigger_rule"], "all_done");
    assert_eq!(json["edges"][0], serde_json::json!(["fetch", "each"]));
}
