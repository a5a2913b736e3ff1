//! `Spanned` values behave as the values they wrap: equality, hashing, borrowing and
//! serialization ignore where they were written.

use std::collections::HashSet;
use std::hash::BuildHasher;

use baton_core::span::{Span, Spanned};
use schemars::JsonSchema;

fn at(line: u32) -> Span {
    Span {
        line,
        column: 1,
        ..Span::default()
    }
}

#[test]
fn equality_and_hashing_ignore_the_span() {
    let a = Spanned::new("x".to_owned(), at(1));
    let b = Spanned::new("x".to_owned(), at(9));
    let c = Spanned::new("y".to_owned(), at(1));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let hasher = std::collections::hash_map::RandomState::new();
    assert_eq!(hasher.hash_one(&a), hasher.hash_one("x"));
    // `Borrow<str>` lets a set of spanned names be searched by plain name.
    let set: HashSet<Spanned<String>> = [a, c].into_iter().collect();
    assert!(set.contains("x"));
    assert!(set.contains("y"));
    assert!(!set.contains("z"));
}

#[test]
fn mapping_keeps_the_span_and_deref_reaches_the_value() {
    let n = Spanned::new(21, at(3)).map(|v| v * 2);
    assert_eq!((n.value, n.span), (42, at(3)));
    assert_eq!(*n + 1, 43);
    assert_eq!(
        serde_json::to_value(Spanned::new(vec![1, 2], at(2))).expect("serializes"),
        serde_json::json!([1, 2])
    );
}

#[test]
fn the_schema_of_a_spanned_value_is_the_schema_of_the_value() {
    let spanned = serde_json::to_value(schemars::schema_for!(
        Spanned<baton_core::duration::Duration>
    ))
    .expect("schema");
    let plain = serde_json::to_value(schemars::schema_for!(baton_core::duration::Duration))
        .expect("schema");
    assert_eq!(spanned, plain);
    // Named and referenced (or inlined) exactly as the value's own schema.
    type D = baton_core::duration::Duration;
    assert_eq!(<Spanned<D> as JsonSchema>::schema_name(), "Duration");
    assert_eq!(
        <Spanned<D> as JsonSchema>::schema_id(),
        <D as JsonSchema>::schema_id()
    );
    assert!(!<Spanned<D> as JsonSchema>::inline_schema());
    assert!(<Spanned<String> as JsonSchema>::inline_schema());
}
