//! `impl Store for SqlStore`: each method says which concept file of `sql/` answers it.

use async_trait::async_trait;
use baton_core::ids::{BackfillId, LeaseOwner, RunId, TaskKey};
use baton_core::state::{RunState, TaskState};

use super::SqlStore;
use crate::changes::Changes;
use crate::error::Result;
use crate::lease::{Fence, Lease, TakenRun};
use crate::records::{
    Admitted, ApprovalWait, ArtifactRecord, AttemptRecord, BackfillFilter, BackfillRecord,
    CacheEntry, Change, Control, DeadLetterFilter, DeadLetterRecord, DefinitionRecord, EventRecord,
    Millis, NewRun, OrphanClaim, PipelineCount, PoolRecord, RunBrief, RunFilter, RunRecord,
    SlotClaim, TaskCount, TaskPageFilter, TaskRecord, VersionRecord,
};
use crate::store::Store;

#[async_trait]
impl Store for SqlStore {
    async fn create_run(&self, run: &NewRun) -> Result<RunId> {
        self.insert_run(run).await
    }

    async fn admit(&self, run: &RunId, now: Millis) -> Result<Admitted> {
        self.admit_run(run, now).await
    }

    async fn group_runs(&self, group: &str) -> Result<Vec<RunRecord>> {
        self.runs_of_group(group).await
    }

    async fn cancel_waiting(&self, group: &str, at: Millis) -> Result<Vec<RunId>> {
        self.cancel_waiting_runs(group, at).await
    }

    async fn create_backfill(
        &self,
        backfill: &BackfillRecord,
        runs: &[NewRun],
    ) -> Result<BackfillId> {
        self.insert_backfill(backfill, runs).await
    }

    async fn backfill(&self, id: &BackfillId) -> Result<Option<BackfillRecord>> {
        self.backfill_by_id(id).await
    }

    async fn backfills(&self, filter: &BackfillFilter) -> Result<Vec<BackfillRecord>> {
        self.list_backfills(filter).await
    }

    async fn backfill_counts(&self, id: &BackfillId) -> Result<Vec<(RunState, u64)>> {
        self.backfill_state_counts(id).await
    }

    async fn apply(&self, run: &RunId, fence: Fence<'_>, changes: &[Change]) -> Result<()> {
        self.apply_changes(run, fence, changes).await
    }

    async fn definition(&self, hash: &str) -> Result<Option<DefinitionRecord>> {
        self.definition_by_hash(hash).await
    }

    async fn put_definition(&self, definition: &DefinitionRecord, at: Millis) -> Result<()> {
        self.put_definition_row(definition, at).await
    }

    async fn versions(&self, namespace: &str, name: &str) -> Result<Vec<VersionRecord>> {
        self.definition_versions(namespace, name).await
    }

    async fn run(&self, id: &RunId) -> Result<Option<RunRecord>> {
        self.run_by_id(id).await
    }

    async fn resolve_run(&self, prefix: &str) -> Result<RunId> {
        self.resolve_prefix(prefix).await
    }

    async fn child_runs(&self, parent: &RunId) -> Result<Vec<RunRecord>> {
        self.children_of(parent).await
    }

    async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.list_runs(filter).await
    }

    async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetterRecord>> {
        self.list_dead_letters(filter).await
    }

    async fn latest_runs(&self, per_pipeline: u32) -> Result<Vec<RunBrief>> {
        self.latest_per_pipeline(per_pipeline).await
    }

    async fn finished_since(&self, since: Millis) -> Result<Vec<RunBrief>> {
        self.briefs_finished_since(since).await
    }

    async fn awaiting_approval(&self, limit: u32) -> Result<Vec<ApprovalWait>> {
        self.approval_waits(limit).await
    }

    async fn dead_letter_counts(&self) -> Result<Vec<PipelineCount>> {
        self.dead_letter_counts_by_pipeline().await
    }

    async fn active_task_counts(&self) -> Result<Vec<TaskCount>> {
        self.active_task_counts_by_state().await
    }

    async fn tasks(&self, run: &RunId) -> Result<Vec<TaskRecord>> {
        self.task_rows(run).await
    }

    async fn attempts(&self, run: &RunId) -> Result<Vec<AttemptRecord>> {
        self.attempt_rows(run).await
    }

    async fn artifacts(&self, run: &RunId) -> Result<Vec<ArtifactRecord>> {
        self.artifact_rows(run).await
    }

    async fn artifacts_of(&self, run: &RunId, tasks: &[TaskKey]) -> Result<Vec<ArtifactRecord>> {
        self.artifact_rows_of(run, tasks).await
    }

    async fn task_page(&self, run: &RunId, filter: &TaskPageFilter) -> Result<Vec<TaskRecord>> {
        self.task_page_rows(run, filter).await
    }

    async fn attempts_of(&self, run: &RunId, tasks: &[TaskKey]) -> Result<Vec<AttemptRecord>> {
        self.attempt_rows_of(run, tasks).await
    }

    async fn task_counts(&self, run: &RunId) -> Result<Vec<(TaskState, u64)>> {
        self.task_state_counts(run).await
    }

    async fn events(&self, run: &RunId, after_seq: i64) -> Result<Vec<EventRecord>> {
        self.event_rows(run, after_seq).await
    }

    async fn acquire_lease(
        &self,
        run: &RunId,
        owner: &LeaseOwner,
        now: Millis,
        expires_at: Millis,
        steal_from: Option<&str>,
    ) -> Result<Option<Lease>> {
        self.acquire(run, owner, now, expires_at, steal_from).await
    }

    async fn renew_lease(&self, run: &RunId, lease: &Lease, expires_at: Millis) -> Result<()> {
        self.renew(run, lease, expires_at).await
    }

    async fn lease_holders(&self, now: Millis) -> Result<Vec<String>> {
        self.holders(now).await
    }

    async fn unowned_runs(&self, limit: u32) -> Result<Vec<RunId>> {
        self.unowned(limit).await
    }

    async fn claim_orphans(&self, claim: &OrphanClaim<'_>) -> Result<Vec<TakenRun>> {
        self.claim_orphaned(claim).await
    }

    async fn admissible_waiting(&self, limit: u32) -> Result<Vec<RunRecord>> {
        self.admissible(limit).await
    }

    async fn release_lease(&self, run: &RunId, lease: &Lease) -> Result<()> {
        self.release(run, lease).await
    }

    async fn last_tick(
        &self,
        namespace: &str,
        pipeline: &str,
        schedule: &str,
    ) -> Result<Option<Millis>> {
        self.schedule_last_tick(namespace, pipeline, schedule).await
    }

    async fn advance_tick(
        &self,
        namespace: &str,
        pipeline: &str,
        schedule: &str,
        from: Option<Millis>,
        to: Millis,
    ) -> Result<bool> {
        self.advance_schedule_tick(namespace, pipeline, schedule, from, to)
            .await
    }

    async fn set_paused(
        &self,
        namespace: &str,
        pipeline: &str,
        paused: bool,
        by: &str,
        at: Millis,
    ) -> Result<bool> {
        self.set_pipeline_paused(namespace, pipeline, paused, by, at)
            .await
    }

    async fn is_paused(&self, namespace: &str, pipeline: &str) -> Result<bool> {
        self.pipeline_paused(namespace, pipeline).await
    }

    async fn paused_pipelines(&self) -> Result<Vec<(String, String)>> {
        self.paused_pipeline_rows().await
    }

    async fn request_cancel(&self, run: &RunId) -> Result<()> {
        self.request_run_cancel(run).await
    }

    async fn decide(
        &self,
        run: &RunId,
        key: &TaskKey,
        approved: bool,
        by: &str,
        at: Millis,
        comment: Option<&str>,
    ) -> Result<bool> {
        self.record_decision(run, key, approved, by, at, comment)
            .await
    }

    fn changes(&self) -> Changes {
        self.feed.subscribe()
    }

    async fn control(&self, run: &RunId) -> Result<Control> {
        self.control_of(run).await
    }

    async fn record_deadline_miss(
        &self,
        run: &RunId,
        key: Option<&TaskKey>,
        at: Millis,
    ) -> Result<bool> {
        self.insert_deadline_miss(run, key, at).await
    }

    async fn cached_result(
        &self,
        namespace: &str,
        pipeline: &str,
        task_id: &str,
        cache_key: &str,
        not_before: Option<Millis>,
    ) -> Result<Option<CacheEntry>> {
        self.cache_lookup(namespace, pipeline, task_id, cache_key, not_before)
            .await
    }

    async fn pools(&self, now: Millis) -> Result<Vec<PoolRecord>> {
        self.pools_at(now, None).await
    }

    async fn pool(&self, name: &str, now: Millis) -> Result<Option<PoolRecord>> {
        Ok(self.pools_at(now, Some(name)).await?.into_iter().next())
    }

    async fn put_pool(
        &self,
        name: &str,
        slots: u32,
        description: Option<&str>,
        at: Millis,
    ) -> Result<PoolRecord> {
        self.put_pool_row(name, slots, description, at).await
    }

    async fn delete_pool(&self, name: &str) -> Result<bool> {
        self.delete_pool_row(name).await
    }

    async fn claim_slot(
        &self,
        pool: &str,
        run: &RunId,
        key: &TaskKey,
        priority: i32,
        lease: &Lease,
        now: Millis,
    ) -> Result<SlotClaim> {
        self.claim(pool, run, key, priority, lease, now).await
    }

    async fn drop_claims(&self, owner: &str) -> Result<u64> {
        self.drop_owner_claims(owner).await
    }
}
