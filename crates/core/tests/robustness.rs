//! Arbitrary input never panics the loader: random bytes, and valid files mutated at random.

use proptest::prelude::*;

const SEED_FILES: &[&str] = &[
    include_str!("../../../examples/nightly-etl.yaml"),
    "name: p\nparams:\n  r: { type: array, default: [a, b] }\ntasks:\n  a:\n    for_each: params.r\n    run: echo {{ item }}\n    outputs: [x]\n  b:\n    needs: [a]\n    if: \"{{ tasks.a.outputs.x == '1' }}\"\n    run: y\n",
];

fn config() -> ProptestConfig {
    let cases = std::env::var("BATON_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(512);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, u8),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let yamlish = prop::sample::select(vec![
        ":", "- ", "\n", "  ", "{", "}", "[", "]", "&a ", "*a", "<<: ", "\"", "'", "|", "{{", "}}",
        "#", "!!str ", "needs: [", "tasks:", "\t", "---\n", "\u{feff}", "é",
    ]);
    prop_oneof![
        (any::<usize>(), 0usize..20).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), yamlish.prop_map(str::to_owned)).prop_map(|(a, s)| Mutation::Insert(a, s)),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Replace(a, b)),
        (any::<usize>(), 0usize..200).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
    ]
}

fn apply(src: &str, mutations: &[Mutation]) -> String {
    let mut bytes = src.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Insert(at, s) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, s.bytes());
            }
            Mutation::Replace(at, b) => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = *b;
                }
            }
            Mutation::Duplicate(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    let chunk = bytes[at..end].to_vec();
                    bytes.splice(at..at, chunk);
                }
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_text_never_panics(src in any::<String>()) {
        let _ = baton_core::load(&src);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        seed in prop::sample::select(SEED_FILES.to_vec()),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let src = apply(seed, &mutations);
        let loaded = baton_core::load(&src);
        // Whatever the input, a file is either valid or says why not.
        prop_assert!(loaded.pipeline.is_some() || loaded.has_errors());
        for d in &loaded.diagnostics {
            prop_assert!(d.span.line >= 1 && d.span.column >= 1, "{d:?}");
            let rendered = baton_core::render::render_diagnostic("f.yaml", Some(&src), d);
            prop_assert!(rendered.starts_with("f.yaml:"));
        }
    }
}
