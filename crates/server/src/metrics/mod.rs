//! Prometheus metrics of the control plane: a registry per app, the observer that turns
//! committed run changes into numbers, gauges read from the store at scrape, the HTTP layer,
//! and the OpenMetrics rendering. See docs/observability.md.

pub mod http;
mod known;
mod live;
pub mod observer;
pub mod openmetrics;
mod registry;

pub use live::REFRESH_AFTER;
pub use observer::RunObserver;
pub(crate) use registry::seconds_between;
pub use registry::{Kind, METRICS, Metrics};
