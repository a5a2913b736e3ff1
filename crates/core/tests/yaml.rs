//! How YAML text becomes values: the core schema's scalars and the alias budget.

use baton_core::yaml::{MAX_ALIAS_NODES, NodeValue, parse};

fn items(src: &str) -> Vec<NodeValue> {
    let node = parse(src, &mut Vec::new()).expect("valid yaml");
    let NodeValue::Seq(items) = node.value else {
        panic!("not a list")
    };
    items.into_iter().map(|n| n.value).collect()
}

#[test]
fn infinities_and_nan_are_floats_only_in_yaml_spelling() {
    let floats: Vec<String> = items("[-.inf, -.Inf, -.INF, .inf, +.inf, .nan]")
        .into_iter()
        .map(|v| match v {
            NodeValue::Float(f) => f.to_string(),
            other => format!("not a float: {other:?}"),
        })
        .collect();
    assert_eq!(floats, ["-inf", "-inf", "-inf", "inf", "inf", "NaN"]);
    // Rust's float parser reads these, YAML's core schema does not: they stay strings.
    assert_eq!(
        items("[inf, nan, infinity, -inf, 1e, 1.5x]"),
        ["inf", "nan", "infinity", "-inf", "1e", "1.5x"]
            .map(|s| NodeValue::Str(s.into()))
            .to_vec()
    );
    assert_eq!(
        items("[1e3, 1.5, .5, 1., -2.5E-1]"),
        [1000.0, 1.5, 0.5, 1.0, -0.25]
            .map(NodeValue::Float)
            .to_vec()
    );
}

#[test]
fn one_alias_may_expand_to_the_budget_and_not_one_node_more() {
    // The anchored list counts as itself plus its items.
    let alias_to = |nodes: usize| {
        let zeros = vec!["0"; nodes - 1].join(", ");
        format!("a: &a [{zeros}]\nb: *a\n")
    };
    assert!(parse(&alias_to(MAX_ALIAS_NODES), &mut Vec::new()).is_ok());
    let err = parse(&alias_to(MAX_ALIAS_NODES + 1), &mut Vec::new()).expect_err("over budget");
    assert_eq!(
        err.message,
        format!("aliases expand to more than {MAX_ALIAS_NODES} nodes")
    );
}

#[test]
fn integers_too_big_for_i64_stay_strings_rather_than_lose_digits() {
    assert_eq!(
        items("[9223372036854775807, 99999999999999999999]"),
        [
            NodeValue::Int(i64::MAX),
            NodeValue::Str("99999999999999999999".into())
        ]
    );
}
