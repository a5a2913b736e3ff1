//! The checked model (`Pipeline`): what the engine, store and API work with.

mod artifacts;
mod container;
mod dataset;
mod http;
mod notify;
mod param;
mod pipeline;
mod retry;
mod runs_on;
mod schedule;
mod task;

pub use artifacts::{Artifacts, check_pattern};
pub use container::{ContainerCall, check_image_reference};
pub use dataset::{Dataset, DatasetError};
pub use http::{HttpBody, HttpCall};
pub use notify::{Notify, WebhookUrl, check_webhook_url};
pub use param::{Param, ParamValueError, json_kind, resolve_params};
pub use pipeline::{Concurrency, DefinitionHash, Pipeline, Trigger};
pub use retry::RetryPolicy;
pub use runs_on::{RunsOn, check_worker_label};
pub use schedule::{Missed, ON_TIME, Schedule, parse_cron, parse_timezone};
pub use task::{
    Action, Approval, Cache, Expression, ForEach, Resources, Task, Template, default_shell,
};
