//! Pipeline files as written (`PipelineSpec`), before any cross-field checks.
//!
//! These types define the file format: the decoder reads them from YAML and the JSON Schema is
//! generated from them, so the two cannot drift apart.

mod artifacts;
mod concurrency;
mod container;
mod dataset;
mod defaults;
mod http;
mod kinds;
mod notify;
mod param;
mod pipeline;
mod retry;
mod runs_on;
mod schedule;
mod schema_helpers;
mod task;

pub use artifacts::ArtifactsSpec;
pub use concurrency::ConcurrencySpec;
pub use container::{ContainerNetwork, ContainerSpec, PullPolicy};
pub use dataset::{DatasetNameSpec, DatasetSpec};
pub use defaults::TaskDefaultsSpec;
pub use http::{CallbackSpec, ExpectSpec, HttpMethod, HttpSpec, OutputsFrom, PollSpec};
pub use kinds::{Backoff, Catchup, Jitter, Overlap, ParamType, TriggerRule};
pub use notify::{NotifyEvent, NotifyFormat, NotifySpec};
pub use param::ParamSpec;
pub use pipeline::PipelineSpec;
pub use retry::{RetryPolicySpec, RetrySpec};
pub use runs_on::RunsOnSpec;
pub use schedule::{ScheduleSpec, TriggerSpec, WebhookSpec};
pub use task::{
    ApprovalSpec, CacheSpec, EnvSpec, ForEachSpec, ResourcesSpec, ShellSpec, TaskSpec, TemplateText,
};
