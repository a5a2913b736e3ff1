//! An attempt's artifacts: the files of the upstream tasks it names, and what its success
//! stored.

use std::collections::BTreeMap;

use baton_core::state::TaskState;
use baton_store::{ArtifactFile, Change};

use super::Dispatcher;
use super::state::TaskRef;
use crate::artifacts::{ArtifactError, ArtifactPlan, StoredArtifacts};
use crate::clock::now_ms;

impl Dispatcher {
    /// What instance `i` downloads (every file its named upstream tasks' successful instances
    /// uploaded, one per path) and uploads. Two files for one path with different content is
    /// the pipeline's mistake, told before anything runs.
    pub(super) fn artifact_plan(&self, i: usize) -> Result<ArtifactPlan, String> {
        let task = self.task(i);
        let mut by_path: BTreeMap<&str, &ArtifactFile> = BTreeMap::new();
        for upstream in &task.artifacts.download {
            let Some(t) = self.pipeline.task_index(upstream.as_str()) else {
                continue;
            };
            let primary = self.primary[t];
            if primary == usize::MAX {
                continue;
            }
            // A fan-out's files are its instances'.
            let instances = self
                .children
                .get(&primary)
                .map_or_else(|| vec![primary], Clone::clone);
            for j in instances {
                let inst = &self.insts[j];
                if inst.state != TaskState::Succeeded
                    || !matches!(inst.task, TaskRef::Dag(u) if u == t)
                {
                    continue;
                }
                for f in &inst.artifacts {
                    match by_path.get(f.path.as_str()) {
                        Some(have) if have.digest != f.digest => {
                            return Err(ArtifactError::Conflict {
                                path: f.path.clone(),
                                a: have.digest.clone(),
                                b: f.digest.clone(),
                            }
                            .to_string());
                        }
                        Some(_) => {}
                        None => {
                            by_path.insert(&f.path, f);
                        }
                    }
                }
            }
        }
        Ok(ArtifactPlan {
            download: by_path.into_values().cloned().collect(),
            upload: task.artifacts.upload.clone(),
        })
    }

    /// Keeps what a successful attempt of `i` stored, for tasks downstream and, in the commit
    /// that records the success, for the store.
    pub(super) fn stored_artifacts(&mut self, i: usize, attempt: u32, stored: StoredArtifacts) {
        self.pending.push(Change::ArtifactsStored {
            key: self.insts[i].key.clone(),
            attempt,
            store: stored.store,
            files: stored.files.clone(),
            at: now_ms(),
        });
        self.insts[i].artifacts = stored.files;
    }
}
