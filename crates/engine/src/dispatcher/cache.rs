//! Cached results (`cache:`): looking a task's key up before it runs, storing a success
//! under it.

use baton_core::state::TaskState;
use baton_store::{Change, Millis};

use super::{Dispatcher, Progress, lease};
use crate::clock::now_ms;
use crate::error::Result;
use crate::render;

impl Dispatcher {
    /// Looks up the cache keys of tasks that became runnable: a hit succeeds the task with the
    /// stored outputs and no attempt, a miss makes it ready. A success settles what follows,
    /// which may queue more tasks to look up.
    pub(super) async fn check_cache(&mut self) -> Result<()> {
        while let Some(i) = self.lookups.pop() {
            if self.insts[i].state != TaskState::Queued {
                continue;
            }
            let Some(cache) = self.task(i).cache.clone() else {
                self.push_ready(i);
                continue;
            };
            if !self.env_errors.is_empty() {
                // `prepare` fails it, saying why.
                self.push_ready(i);
                continue;
            }
            let rendered =
                render::render(&cache.key.0, &self.scope_item(self.insts[i].item.as_ref()));
            let cache_key = match rendered {
                Ok(k) => k,
                Err(e) => {
                    self.set(
                        i,
                        TaskState::Failed,
                        Some(format!("cannot render `cache.key`: {e}")),
                    );
                    self.settle(vec![i]);
                    continue;
                }
            };
            self.insts[i].cache_key = Some(cache_key.clone());
            if self.run.no_cache {
                self.push_ready(i);
                continue;
            }
            let now = now_ms();
            let not_before = cache.ttl.map(|ttl| {
                now.saturating_sub(i64::try_from(ttl.as_std().as_millis()).unwrap_or(i64::MAX))
            });
            let key = self.insts[i].key.clone();
            let (store, id) = (self.store.as_ref(), &self.pipeline.id);
            let entry = lease::patiently(
                self.store_deadline(),
                &self.run.id,
                "looking up the cache",
                || {
                    store.cached_result(
                        id.namespace.as_str(),
                        id.name.as_str(),
                        key.task_id(),
                        &cache_key,
                        not_before,
                    )
                },
            )
            .await?;
            let hit = entry.as_ref().map(|e| e.source.clone());
            if let Some(from) = &hit {
                self.notes.push(Progress::Cached {
                    key: key.clone(),
                    from: from.clone(),
                    at: now,
                });
            }
            self.pending.push(Change::CacheChecked {
                key,
                cache_key,
                hit,
                at: now,
            });
            match entry {
                Some(entry) => {
                    self.insts[i].outputs = entry.outputs;
                    self.set(i, TaskState::Succeeded, None);
                    self.settle(vec![i]);
                }
                None => self.push_ready(i),
            }
        }
        Ok(())
    }

    /// Stores a success under the task's cache key, in the commit of the success. After a
    /// resume the key is rendered again, from the same scope.
    pub(super) fn save_to_cache(&mut self, i: usize, at: Millis) {
        let Some(cache) = &self.task(i).cache else {
            return;
        };
        let cache_key = match &self.insts[i].cache_key {
            Some(k) => k.clone(),
            None => {
                let scope = self.scope_item(self.insts[i].item.as_ref());
                match render::render(&cache.key.0, &scope) {
                    Ok(k) => k,
                    // It rendered before the attempt; nothing to store under if it no longer does.
                    Err(_) => return,
                }
            }
        };
        self.pending.push(Change::CacheSaved {
            key: self.insts[i].key.clone(),
            cache_key,
            outputs: self.insts[i].outputs.clone(),
            at,
        });
    }
}
