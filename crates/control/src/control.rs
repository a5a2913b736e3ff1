//! The control plane's handle: the store, the catalog, the runner and the metrics every part
//! of it (scheduler, triggers, takeover, the API in front of it) shares.

use std::sync::Arc;

use baton_observe::metrics::{Metrics, RunObserver};
use tokio::sync::RwLock;

use crate::LaunchError;
use crate::catalog::{self, Catalog, CatalogPipelines};
use crate::runner::Runner;

#[derive(Debug, Clone)]
pub struct Control {
    pub store: Arc<dyn baton_store::Store>,
    pub catalog: Arc<RwLock<Catalog>>,
    pub runner: Runner,
    /// This control plane's own registry (the server scrapes it at `GET /metrics`).
    pub metrics: Metrics,
}

impl Control {
    /// A control plane over `pipelines` (loaded by the first [`Control::reload`]), with a fresh
    /// metrics registry that hears every run `runner` drives, and sub-pipeline tasks that start
    /// the catalog's pipelines: use `control.runner` from here on, since a clone of `runner`
    /// taken before this call does neither.
    pub fn new(
        store: Arc<dyn baton_store::Store>,
        runner: Runner,
        pipelines: impl Into<std::path::PathBuf>,
    ) -> Self {
        let metrics = Metrics::new();
        let pipelines: std::path::PathBuf = pipelines.into();
        let catalog = Arc::new(RwLock::new(Catalog::new(pipelines.clone())));
        let runner = runner
            .with_observer(Arc::new(RunObserver::new(metrics.clone())))
            .with_pipelines(Arc::new(CatalogPipelines::new(
                Arc::clone(&catalog),
                pipelines,
            )));
        Self {
            store,
            catalog,
            runner,
            metrics,
        }
    }

    /// The version runs of `namespace/name` start with.
    pub async fn active_version(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<catalog::Version, LaunchError> {
        let pipeline = || format!("{namespace}/{name}");
        self.catalog
            .read()
            .await
            .find(namespace, name)
            .ok_or_else(|| LaunchError::UnknownPipeline(pipeline()))?
            .active
            .clone()
            .ok_or_else(|| LaunchError::NoValidVersion(pipeline()))
    }

    /// A pipeline's datasets, and the pipelines linked to it through them (among the valid
    /// versions loaded now).
    pub async fn lineage(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<baton_core::lineage::PipelineLineage, LaunchError> {
        let version = self.active_version(namespace, name).await?;
        let catalog = self.catalog.read().await;
        let others = catalog
            .entries()
            .filter_map(|e| e.active.as_ref())
            .map(|v| v.pipeline.as_ref());
        Ok(baton_core::lineage::lineage(&version.pipeline, others))
    }

    /// Reloads the pipelines directory, recording each new valid version in the store.
    ///
    /// Files are read and parsed on a copy of the catalog, off the async threads, so the API
    /// and the scheduler keep reading the current one meanwhile; the copy then replaces it.
    pub async fn reload(&self) -> catalog::Reload {
        let mut next = self.catalog.read().await.clone();
        let (next, report) = match tokio::task::spawn_blocking(move || {
            let report = next.reload();
            (next, report)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "pipeline reload failed");
                return catalog::Reload::default();
            }
        };
        let mut catalog = self.catalog.write().await;
        *catalog = next;
        let catalog = catalog.downgrade();
        let broken = catalog.entries().filter(|e| !e.errors.is_empty()).count();
        #[allow(clippy::cast_precision_loss)] // a count of files
        self.metrics
            .gauge("baton_definition_load_errors", &[], broken as f64);
        self.metrics
            .counter("baton_definition_reloads_total", &[], 1);
        for v in catalog.entries().filter_map(|e| e.active.as_ref()) {
            self.metrics.known_pipeline(&v.pipeline);
        }
        self.withhold_secrets(&catalog);
        for path in &report.changed {
            let Some(entry) = catalog.entry(path) else {
                continue;
            };
            let Some(v) = &entry.active else { continue };
            let def = baton_store::DefinitionRecord {
                hash: v.pipeline.version.to_string(),
                namespace: v.pipeline.id.namespace.to_string(),
                name: v.pipeline.id.name.to_string(),
                source: v.source.to_string(),
                path: Some(entry.path.clone()),
            };
            if let Err(e) = self
                .store
                .put_definition(&def, baton_engine::now_ms())
                .await
            {
                tracing::error!(error = %e, path = %entry.path, "cannot record pipeline version");
            }
        }
        report
    }

    /// Keeps every loaded pipeline's secret variables out of every task's environment, not
    /// only out of its own pipeline's tasks.
    fn withhold_secrets(&self, catalog: &Catalog) {
        let secrets: std::collections::BTreeSet<String> = catalog
            .entries()
            .filter_map(|e| e.active.as_ref())
            .flat_map(|v| {
                v.pipeline
                    .secret_variables()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        let environment = self.runner.environment();
        for name in environment.allowed_secrets(secrets.iter().map(String::as_str)) {
            tracing::warn!(
                variable = name,
                "`[engine] inherit_env` names a pipeline's secret variable: tasks do not get it"
            );
        }
        environment.withheld().set(secrets);
    }
}
