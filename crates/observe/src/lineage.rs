//! OpenLineage: RunEvents for runs and task attempts, as an observer of committed changes.
//!
//! A baton run is an OpenLineage run of job `<pipeline>`; each task attempt is a run of job
//! `<pipeline>.<task>` whose `parent` facet points at the baton run. START is sent when the run
//! or attempt starts, COMPLETE, FAIL or ABORT (cancelled, interrupted) when it ends. Task events
//! carry the task's `inputs` and `outputs` datasets. Run ids are UUIDs: the run's ULID becomes
//! a UUIDv7 (same bits, version and variant set), an attempt's is a UUIDv5 of the run's UUID and
//! `key/attempt`, so the same run always gets the same ids.

use crate::outbox::{Outbox, Ticket};
use std::path::PathBuf;

use baton_core::ids::{RunId, TaskKey};
use baton_core::model::{Dataset, Pipeline};
use baton_core::state::{AttemptState, RunState};
use baton_engine::{Observer, RunScope};
use baton_store::{Change, Millis, RunRecord};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::delivery::{Delivery, Kind, Message};
use crate::notify::rfc3339;

pub const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PARENT_FACET_URL: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const NOMINAL_TIME_FACET_URL: &str =
    "https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet";

/// baton's repository at this version, as OpenLineage's `producer`.
pub fn producer() -> String {
    format!(
        "{}/tree/v{}",
        env!("CARGO_PKG_REPOSITORY"),
        env!("CARGO_PKG_VERSION")
    )
}

/// Where lineage goes and how it is named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineageConfig {
    /// A Marquez-compatible server: events are POSTed to `{url}/api/v1/lineage`.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// A file events are appended to, one JSON document per line.
    pub file: Option<PathBuf>,
    /// Job namespace (default: each pipeline's baton namespace).
    pub namespace: Option<String>,
}

impl LineageConfig {
    pub fn is_enabled(&self) -> bool {
        self.url.is_some() || self.file.is_some()
    }
}

/// The OpenLineage run id of a baton run.
pub fn run_uuid(run: &RunId) -> Uuid {
    match ulid::Ulid::from_string(&run.to_string().to_uppercase()) {
        Ok(u) => uuid::Builder::from_bytes(u.to_bytes())
            .with_version(uuid::Version::SortRand)
            .with_variant(uuid::Variant::RFC4122)
            .into_uuid(),
        Err(_) => Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("baton:run:{run}").as_bytes()),
    }
}

/// The OpenLineage run id of one attempt of a task instance.
pub fn attempt_uuid(run: &RunId, key: &TaskKey, attempt: u32) -> Uuid {
    Uuid::new_v5(&run_uuid(run), format!("{key}/{attempt}").as_bytes())
}

/// Sends RunEvents to the configured sinks.
#[derive(Debug, Clone)]
pub struct Lineage {
    namespace: Option<String>,
    http: Option<(String, Option<String>, Delivery)>,
    file: Option<mpsc::Sender<(Value, Ticket)>>,
    /// Counts file lines not yet written (the delivery's own, when there is one).
    outbox: Outbox,
}

impl Lineage {
    /// Starts the sinks `config` names; call inside a Tokio runtime.
    pub fn start(config: &LineageConfig, delivery: Option<Delivery>) -> Self {
        crate::delivery::describe_metrics();
        let outbox = delivery
            .as_ref()
            .map(|d| d.outbox().clone())
            .unwrap_or_default();
        let http = config.url.as_ref().zip(delivery).map(|(url, d)| {
            let url = format!("{}/api/v1/lineage", url.trim_end_matches('/'));
            (url, config.api_key.clone(), d)
        });
        Self {
            namespace: config.namespace.clone(),
            http,
            file: config.file.clone().map(file_sink),
            outbox,
        }
    }

    fn emit(&self, run: &RunId, event: Value) {
        if let Some((url, key, delivery)) = &self.http {
            delivery.send(Message {
                url: url.clone(),
                body: event.clone(),
                headers: key
                    .iter()
                    .map(|k| ("authorization".to_owned(), format!("Bearer {k}")))
                    .collect(),
                kind: Kind::Lineage,
                run: run.to_string(),
            });
        }
        if let Some(tx) = &self.file
            && tx.try_send((event, self.outbox.enter())).is_err()
        {
            tracing::warn!(run = %run, "lineage file queue full: event dropped");
            crate::delivery::count(&Kind::Lineage, false);
        }
    }

    fn job_namespace(&self, p: &Pipeline) -> String {
        self.namespace
            .clone()
            .unwrap_or_else(|| p.id.namespace.to_string())
    }
}

/// Appends events to `path` on a task of its own, one line each.
fn file_sink(path: PathBuf) -> mpsc::Sender<(Value, Ticket)> {
    let (tx, mut rx) = mpsc::channel::<(Value, Ticket)>(4096);
    tokio::spawn(async move {
        let mut file = None;
        while let Some((event, _ticket)) = rx.recv().await {
            if file.is_none() {
                match tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .await
                {
                    Ok(f) => file = Some(f),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot open the lineage file");
                        crate::delivery::count(&Kind::Lineage, false);
                        continue;
                    }
                }
            }
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            let written = match file.as_mut() {
                Some(f) => f.write_all(&line).await.and(f.flush().await),
                None => Ok(()),
            };
            if let Err(e) = &written {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the lineage file");
                file = None;
            }
            crate::delivery::count(&Kind::Lineage, written.is_ok());
        }
    });
    tx
}

impl Observer for Lineage {
    fn committed(&self, scope: RunScope<'_>, changes: &[Change]) {
        let (run, p) = (scope.run, scope.pipeline);
        // A success's files are stored in its commit, just before it.
        let stored = |k: &TaskKey, a: u32| {
            changes.iter().find_map(|c| match c {
                Change::ArtifactsStored {
                    key,
                    attempt,
                    store,
                    files,
                    ..
                } if key == k && *attempt == a => Some((store.as_str(), files.as_slice())),
                _ => None,
            })
        };
        for change in changes {
            let event = match change {
                Change::Run { state, at, .. } => {
                    let kind = match state {
                        RunState::Running => "START",
                        RunState::Succeeded => "COMPLETE",
                        RunState::Failed => "FAIL",
                        RunState::Cancelled => "ABORT",
                        RunState::Queued => continue,
                    };
                    self.run_event(kind, run, p, *at)
                }
                Change::AttemptStarted {
                    key, attempt, at, ..
                } => self.attempt_event("START", run, p, key, *attempt, *at),
                Change::AttemptFinished {
                    key,
                    attempt,
                    state,
                    at,
                    ..
                } => {
                    let kind = match state {
                        AttemptState::Succeeded => "COMPLETE",
                        AttemptState::Failed | AttemptState::TimedOut => "FAIL",
                        AttemptState::Cancelled | AttemptState::Interrupted => "ABORT",
                        AttemptState::Running => continue,
                    };
                    let mut event = self.attempt_event(kind, run, p, key, *attempt, *at);
                    if let (Some((store, files)), Some(outputs)) =
                        (stored(key, *attempt), event["outputs"].as_array_mut())
                    {
                        outputs.extend(files.iter().map(|f| artifact_dataset(store, f)));
                    }
                    event
                }
                _ => continue,
            };
            self.emit(&run.id, event);
        }
    }
}

impl Lineage {
    fn run_event(&self, kind: &str, run: &RunRecord, p: &Pipeline, at: Millis) -> Value {
        let mut facets = serde_json::Map::new();
        if let Some(date) = &run.logical_date {
            facets.insert(
                "nominalTime".into(),
                json!({
                    "_producer": producer(),
                    "_schemaURL": NOMINAL_TIME_FACET_URL,
                    "nominalStartTime": date,
                }),
            );
        }
        json!({
            "eventType": kind,
            "eventTime": rfc3339(at),
            "producer": producer(),
            "schemaURL": SCHEMA_URL,
            "run": { "runId": run_uuid(&run.id).to_string(), "facets": facets },
            "job": { "namespace": self.job_namespace(p), "name": p.id.name.as_str() },
            "inputs": [],
            "outputs": [],
        })
    }

    fn attempt_event(
        &self,
        kind: &str,
        run: &RunRecord,
        p: &Pipeline,
        key: &TaskKey,
        attempt: u32,
        at: Millis,
    ) -> Value {
        let namespace = self.job_namespace(p);
        let task = p.task(key.task_id());
        let datasets = |f: fn(&baton_core::model::Task) -> &Vec<Dataset>| -> Vec<Value> {
            task.map(f)
                .into_iter()
                .flatten()
                .map(|d| json!({ "namespace": d.namespace, "name": d.name }))
                .collect()
        };
        json!({
            "eventType": kind,
            "eventTime": rfc3339(at),
            "producer": producer(),
            "schemaURL": SCHEMA_URL,
            "run": {
                "runId": attempt_uuid(&run.id, key, attempt).to_string(),
                "facets": {
                    "parent": {
                        "_producer": producer(),
                        "_schemaURL": PARENT_FACET_URL,
                        "run": { "runId": run_uuid(&run.id).to_string() },
                        "job": { "namespace": namespace, "name": p.id.name.as_str() },
                    }
                }
            },
            "job": { "namespace": namespace, "name": format!("{}.{}", p.id.name, key.task_id()) },
            "inputs": datasets(|t| &t.input_datasets),
            "outputs": datasets(|t| &t.output_datasets),
        })
    }
}

/// Where an artifact's bytes are, as an OpenLineage dataset (`file` or `s3` namespace, the
/// object's key as its name), with the path it had in the task's working directory and its
/// digest in a `batonArtifact` facet.
fn artifact_dataset(store: &str, f: &baton_store::ArtifactFile) -> Value {
    let hex = f.digest.strip_prefix("sha256:").unwrap_or(&f.digest);
    let object = format!("sha256/{}/{hex}", hex.get(..2).unwrap_or_default());
    let (namespace, name) = if let Some(dir) = store.strip_prefix("dir:") {
        (
            "file".to_owned(),
            format!("{}/{object}", dir.trim_end_matches('/')),
        )
    } else if let Some(rest) = store.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let name = if prefix.is_empty() {
            object
        } else {
            format!("{}/{object}", prefix.trim_matches('/'))
        };
        (format!("s3://{bucket}"), name)
    } else {
        (store.to_owned(), object)
    };
    json!({
        "namespace": namespace,
        "name": name,
        "facets": {
            "batonArtifact": {
                "_producer": producer(),
                "_schemaURL": format!("{}/blob/v{}/docs/executors.md#artifacts", env!("CARGO_PKG_REPOSITORY"), env!("CARGO_PKG_VERSION")),
                "path": f.path,
                "digest": f.digest,
                "size": f.size,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_artifact_is_a_dataset_where_its_bytes_are() {
        let f = baton_store::ArtifactFile {
            path: "dist/app.tar.gz".into(),
            digest: format!("sha256:ab{}", "0".repeat(62)),
            size: 7,
            executable: false,
        };
        let d = artifact_dataset("s3://bucket/ci/artifacts", &f);
        assert_eq!(d["namespace"], "s3://bucket");
        assert_eq!(
            d["name"],
            format!("ci/artifacts/sha256/ab/ab{}", "0".repeat(62))
        );
        assert_eq!(d["facets"]["batonArtifact"]["path"], "dist/app.tar.gz");
        let d = artifact_dataset("dir:/home/me/.baton/artifacts", &f);
        assert_eq!(d["namespace"], "file");
        assert_eq!(
            d["name"],
            format!("/home/me/.baton/artifacts/sha256/ab/ab{}", "0".repeat(62))
        );
    }

    #[test]
    fn run_ids_become_stable_uuids() {
        let run = RunId::from_string("01jd0x6z4q7m8n9p0r1s2t3v4w".to_owned());
        let u = run_uuid(&run);
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(u, run_uuid(&run));
        // The ULID's millisecond timestamp survives as the UUIDv7's.
        let ms = ulid::Ulid::from_string("01JD0X6Z4Q7M8N9P0R1S2T3V4W")
            .expect("ulid")
            .timestamp_ms();
        let (secs, nanos) = u.get_timestamp().expect("v7").to_unix();
        assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, ms);
        let key = TaskKey::task(&baton_core::ids::TaskId::new("load".to_owned()).expect("id"));
        let a1 = attempt_uuid(&run, &key, 1);
        assert_eq!(a1.get_version_num(), 5);
        assert_eq!(a1, attempt_uuid(&run, &key, 1));
        assert_ne!(a1, attempt_uuid(&run, &key, 2));
    }
}
