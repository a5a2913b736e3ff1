//! Every value a task's templates may read, as environment variables, so a script can use
//! `"$BATON_OUTPUT_EXTRACT_ROWS"` instead of a template.

use baton_core::Pipeline;
use baton_core::shell::env::output_var;
use serde_json::{Map, Value as Json};

/// `BATON_OUTPUT_<TASK>_<NAME>` of each finished task upstream of `task` (of every finished
/// task for a hook, `None`), in file order. Two outputs with one name (`a_b.c` and `a.b_c`,
/// which validation warns about) give the variable to the task first in the file.
pub(crate) fn outputs(
    pipeline: &Pipeline,
    task: Option<usize>,
    finished: &Map<String, Json>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (t, spec) in pipeline.tasks.iter().enumerate() {
        if task.is_some_and(|me| me == t || !pipeline.dag.is_ancestor(t, me)) {
            continue;
        }
        let id = spec.id.to_string();
        let Some(Json::Object(outputs)) = finished.get(&id).and_then(|f| f.get("outputs")) else {
            continue;
        };
        for (name, value) in outputs {
            let var = output_var(&id, name);
            if out.iter().any(|(k, _)| *k == var) {
                continue;
            }
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            out.push((var, text));
        }
    }
    out
}
