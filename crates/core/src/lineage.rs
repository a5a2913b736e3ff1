//! A pipeline's place among datasets: what each task reads and writes, and which other
//! pipelines feed it (write what it reads) or consume it (read what it writes).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::model::{Dataset, Pipeline};

/// The datasets one task declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TaskDatasets {
    pub task: String,
    pub inputs: Vec<Dataset>,
    pub outputs: Vec<Dataset>,
}

/// Another pipeline linked through datasets, and the datasets that link them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LinkedPipeline {
    /// `namespace/name`.
    pub pipeline: String,
    pub datasets: Vec<Dataset>,
}

/// A pipeline's datasets and neighbours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PipelineLineage {
    /// Tasks that declare datasets, in definition order.
    pub tasks: Vec<TaskDatasets>,
    /// Every dataset some task reads, sorted.
    pub inputs: Vec<Dataset>,
    /// Every dataset some task writes, sorted.
    pub outputs: Vec<Dataset>,
    /// Pipelines writing a dataset this one reads, by name.
    pub upstream: Vec<LinkedPipeline>,
    /// Pipelines reading a dataset this one writes, by name.
    pub downstream: Vec<LinkedPipeline>,
}

fn reads(p: &Pipeline) -> BTreeSet<&Dataset> {
    p.tasks.iter().flat_map(|t| &t.input_datasets).collect()
}

fn writes(p: &Pipeline) -> BTreeSet<&Dataset> {
    p.tasks.iter().flat_map(|t| &t.output_datasets).collect()
}

/// Links `pipeline` to `others` (which may include it; it is skipped) through shared datasets.
pub fn lineage<'a>(
    pipeline: &Pipeline,
    others: impl IntoIterator<Item = &'a Pipeline>,
) -> PipelineLineage {
    let (inputs, outputs) = (reads(pipeline), writes(pipeline));
    let mut upstream = Vec::new();
    let mut downstream = Vec::new();
    for other in others {
        if other.id == pipeline.id {
            continue;
        }
        let link = |a: &BTreeSet<&Dataset>, b: &BTreeSet<&Dataset>| {
            let shared: Vec<Dataset> = a.intersection(b).map(|d| (*d).clone()).collect();
            (!shared.is_empty()).then(|| LinkedPipeline {
                pipeline: other.id.to_string(),
                datasets: shared,
            })
        };
        upstream.extend(link(&writes(other), &inputs));
        downstream.extend(link(&reads(other), &outputs));
    }
    upstream.sort_by(|a, b| a.pipeline.cmp(&b.pipeline));
    downstream.sort_by(|a, b| a.pipeline.cmp(&b.pipeline));
    PipelineLineage {
        tasks: pipeline
            .tasks
            .iter()
            .filter(|t| !t.input_datasets.is_empty() || !t.output_datasets.is_empty())
            .map(|t| TaskDatasets {
                task: t.id.to_string(),
                inputs: t.input_datasets.clone(),
                outputs: t.output_datasets.clone(),
            })
            .collect(),
        inputs: inputs.into_iter().cloned().collect(),
        outputs: outputs.into_iter().cloned().collect(),
        upstream,
        downstream,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(source: &str) -> Pipeline {
        let loaded = crate::load(source);
        loaded
            .pipeline
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    fn names(linked: &[LinkedPipeline]) -> Vec<String> {
        linked
            .iter()
            .map(|l| {
                let ds: Vec<String> = l
                    .datasets
                    .iter()
                    .map(|d| format!("{}/{}", d.namespace, d.name))
                    .collect();
                format!("{} via {}", l.pipeline, ds.join(","))
            })
            .collect()
    }

    #[test]
    fn links_pipelines_through_shared_datasets() {
        let ingest =
            pipeline("name: ingest\ntasks:\n  pull:\n    run: x\n    outputs: [s3://raw/events]\n");
        let transform = pipeline(
            "name: transform\nnamespace: data\ntasks:\n  clean:\n    run: x\n    inputs: [s3://raw/events]\n    outputs: [postgres://db/public.events]\n  note:\n    run: x\n",
        );
        let report = pipeline(
            "name: report\ntasks:\n  build:\n    run: x\n    inputs: [postgres://db/public.events, s3://other/x]\n",
        );
        let all = [&ingest, &transform, &report];
        let l = lineage(&transform, all);
        assert_eq!(names(&l.upstream), ["default/ingest via s3://raw/events"]);
        assert_eq!(
            names(&l.downstream),
            ["default/report via postgres://db/public.events"]
        );
        assert_eq!(l.tasks.len(), 1, "tasks without datasets are left out");
        assert_eq!(l.tasks[0].task, "clean");
        assert_eq!(l.inputs.len(), 1);
        assert_eq!(l.outputs.len(), 1);

        let l = lineage(&ingest, all);
        assert!(l.upstream.is_empty());
        assert_eq!(names(&l.downstream), ["data/transform via s3://raw/events"]);
    }
}
