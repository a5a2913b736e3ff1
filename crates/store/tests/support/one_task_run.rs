//! A run to create for store tests: one task `a`, pending, of pipeline `data/NAME`.
#![allow(dead_code, unreachable_pub)]

use baton_core::ids::{RunId, TaskKey};
use baton_core::state::TaskState;
use baton_store::{DefinitionRecord, NewRun, NewTask};

pub fn new_run(id: &str, name: &str) -> NewRun {
    NewRun {
        id: RunId::from_string(id),
        definition: DefinitionRecord {
            hash: format!("h-{name}"),
            namespace: "data".into(),
            name: name.into(),
            source: format!("name: {name}\ntasks:\n  a:\n    run: x\n"),
            path: None,
        },
        params: serde_json::json!({}),
        trigger: "manual".into(),
        logical_date: None,
        base_dir: "/tmp".into(),
        idempotency_key: None,
        created_at: 1_000,
        tasks: vec![NewTask {
            key: TaskKey::from_string("a"),
            task_id: "a".into(),
            position: 0,
            item: None,
            state: TaskState::Pending,
        }],
        admission: None,
        backfill_id: None,
        no_cache: false,
        parent: None,
    }
}
