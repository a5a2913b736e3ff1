//! Prometheus metrics of the control plane: a registry per app, the observer that turns
//! committed run changes into numbers, gauges read from the store at scrape, and the
//! OpenMetrics rendering (the HTTP layer that counts requests is `baton-server`'s). See docs/observability.md.

mod known;
mod live;
pub mod observer;
pub mod openmetrics;
mod registry;

pub use live::REFRESH_AFTER;
pub use observer::RunObserver;
pub use registry::seconds_between;
pub use registry::{Kind, METRICS, Metrics};
