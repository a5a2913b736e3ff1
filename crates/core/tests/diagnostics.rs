//! Diagnostics: their constructors, reading order, suggestions, rendering, and what `load`
//! reports for files it cannot read.

use baton_core::diagnostic::{Diagnostic, Severity, did_you_mean, one_of, sort};
use baton_core::ids::PipelineId;
use baton_core::load::{MAX_FILE_BYTES, duplicate_id_diagnostic, duplicate_ids};
use baton_core::render::{render_diagnostic, render_diagnostics};
use baton_core::span::Span;

fn at(line: u32, column: u32) -> Span {
    Span {
        line,
        column,
        ..Span::default()
    }
}

#[test]
fn warnings_are_not_errors() {
    let e = Diagnostic::error(at(1, 1), "f", "m");
    let w = Diagnostic::warning(at(1, 1), "f", "m");
    assert!(e.is_error());
    assert!(!w.is_error());
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!((w.field.as_str(), w.message.as_str()), ("f", "m"));
    assert_eq!(e.with_hint("h").hint.as_deref(), Some("h"));
}

#[test]
fn sorting_follows_the_file_then_puts_errors_first() {
    let mut diags = vec![
        Diagnostic::warning(at(3, 1), "", "c"),
        Diagnostic::error(at(2, 5), "", "b"),
        Diagnostic::warning(at(2, 1), "", "a-warning"),
        Diagnostic::error(at(2, 1), "", "a-error"),
    ];
    sort(&mut diags);
    let order: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(order, ["a-error", "a-warning", "b", "c"]);
}

#[test]
fn suggestions_allow_a_third_of_the_name_to_differ() {
    assert_eq!(
        did_you_mean("neds", ["needs", "run"]),
        Some("did you mean `needs`?".into())
    );
    // Six letters, one wrong: within a third.
    assert_eq!(
        did_you_mean("inptus", ["inputs"]),
        Some("did you mean `inputs`?".into())
    );
    assert_eq!(did_you_mean("zzzzzz", ["inputs"]), None);
    assert_eq!(did_you_mean("x", ["n"]), None);
    assert_eq!(
        did_you_mean("tiemout", ["timeout", "timeouts"]),
        Some("did you mean `timeout`?".into()),
        "the closest wins"
    );
    assert_eq!(one_of(&["a", "b", "c"]), "expected one of `a`, `b`, `c`");
}

#[test]
fn rendering_underlines_the_span_and_adds_field_and_hint() {
    let source = "name: p\ntasks:\n  a:\n    neds: [b]\n";
    let mut d = Diagnostic::error(
        Span {
            line: 4,
            column: 5,
            offset: 0,
            len: 4,
        },
        "tasks.a.neds",
        "unknown field `neds`",
    )
    .with_hint("did you mean `needs`?");
    assert_eq!(
        render_diagnostic("p.yaml", Some(source), &d),
        "p.yaml:4:5: error: unknown field `neds`\n  |\n4 |     neds: [b]\n  |     ^^^^\n  \
         = field: tasks.a.neds\n  = hint: did you mean `needs`?\n"
    );
    d.field.clear();
    d.hint = None;
    d.severity = Severity::Warning;
    assert_eq!(
        render_diagnostic("p.yaml", None, &d),
        "p.yaml:4:5: warning: unknown field `neds`\n"
    );
    let two = [d.clone(), d];
    assert_eq!(
        render_diagnostics("p.yaml", None, &two),
        "p.yaml:4:5: warning: unknown field `neds`\n\np.yaml:4:5: warning: unknown field `neds`\n"
    );
}

#[test]
fn files_over_the_size_limit_are_refused_before_parsing() {
    assert_eq!(MAX_FILE_BYTES, 64 * 1024 * 1024);
    let valid = "name: p\ntasks:\n  a:\n    run: x\n";
    let big = format!("{valid}{}\n", "#".repeat(1_200_000));
    let loaded = baton_core::load(&big);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    assert!(loaded.pipeline.is_some(), "a 1.2 MB file is fine");

    let huge = " ".repeat(MAX_FILE_BYTES + 1);
    let loaded = baton_core::load(&huge);
    assert!(loaded.has_errors());
    assert!(loaded.pipeline.is_none());
    let d = &loaded.diagnostics[0];
    assert_eq!(d.message, "file is larger than 64 MiB");
    assert_eq!((d.span.line, d.span.column), (1, 1));
}

#[test]
fn a_file_that_is_not_yaml_has_its_name_at_the_top() {
    let loaded = baton_core::load("name: [\n");
    assert!(loaded.has_errors());
    assert_eq!((loaded.name_span.line, loaded.name_span.column), (1, 1));
    let named = baton_core::load("tasks:\n  a:\n    run: x\nname: p\n");
    assert!(!named.has_errors());
    assert_eq!(named.name_span.line, 4);
}

#[test]
fn duplicate_pipeline_ids_point_at_the_first_definition() {
    let ns = baton_core::ids::Namespace::default_namespace();
    let a = PipelineId::parse("a", &ns).expect("valid");
    let b = PipelineId::parse("b", &ns).expect("valid");
    assert_eq!(
        duplicate_ids([Some(&a), None, Some(&b), Some(&a), Some(&b), Some(&a)]),
        [(3, 0), (4, 2), (5, 0)]
    );
    assert_eq!(duplicate_ids([Some(&a), Some(&b)]), []);
    let d = duplicate_id_diagnostic(&a, at(2, 7), "x.yaml");
    assert!(d.is_error());
    assert_eq!(
        (
            d.span,
            d.field.as_str(),
            d.message.as_str(),
            d.hint.as_deref()
        ),
        (
            at(2, 7),
            "name",
            "pipeline `default/a` is already defined in `x.yaml`",
            Some("pipeline names are unique within a namespace")
        )
    );
}

#[test]
fn a_file_lists_at_most_a_hundred_problems_and_counts_the_rest() {
    use std::fmt::Write;
    let mut source = String::from("name: junk\ntasks:\n  a:\n    run: x\n");
    for i in 0..500 {
        let _ = writeln!(source, "unknown_{i}: 1");
    }
    let loaded = baton_core::load::load(&source);
    assert!(loaded.pipeline.is_none());
    let d = &loaded.diagnostics;
    assert_eq!(d.len(), baton_core::diagnostic::MAX_PER_FILE + 1);
    // The first hundred in reading order, then the count of the others.
    assert!(d[99].message.contains("unknown_99"), "{}", d[99].message);
    let last = &d[100];
    assert_eq!(
        last.message,
        "400 more problems in this file (400 of them errors), not shown"
    );
    assert!(last.is_error());
    assert_eq!(last.span.line, 105, "where the first one not shown is");
}

#[test]
fn the_count_of_problems_not_shown_is_an_error_only_when_one_of_them_is() {
    use baton_core::diagnostic::{MAX_PER_FILE, cap};
    let mut few: Vec<Diagnostic> = (0..MAX_PER_FILE)
        .map(|i| Diagnostic::warning(at(1, 1), "", format!("w{i}")))
        .collect();
    cap(&mut few);
    assert_eq!(few.len(), MAX_PER_FILE, "a hundred are all shown");
    let mut warnings = few.clone();
    warnings.push(Diagnostic::warning(at(9, 1), "x", "w"));
    cap(&mut warnings);
    assert_eq!(warnings.len(), MAX_PER_FILE + 1);
    assert_eq!(warnings[MAX_PER_FILE].severity, Severity::Warning);
    assert_eq!(
        warnings[MAX_PER_FILE].message,
        "1 more problem in this file (0 of them errors), not shown"
    );
    assert_eq!(warnings[MAX_PER_FILE].field, "x");
    let mut errors = few;
    errors.push(Diagnostic::warning(at(9, 1), "", "w"));
    errors.push(Diagnostic::error(at(9, 2), "", "e"));
    cap(&mut errors);
    assert_eq!(errors.len(), MAX_PER_FILE + 1);
    assert!(errors[MAX_PER_FILE].is_error());
}
