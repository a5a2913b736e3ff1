//! The observers every run gets, for `baton server` and `baton run` alike: notifications and
//! deadlines always (they do nothing for pipelines without `notify` or `deadline`), lineage
//! when configured.

use std::sync::Arc;

use baton_engine::Observers;
use baton_store::Store;

use crate::delivery::{Delivery, Settings, SetupError};
use crate::lineage::{Lineage, LineageConfig};
use crate::notify::Notifier;
use crate::outbox::Outbox;
use crate::secrets::Secrets;

/// Builds the standard observers, and the outbox to wait on before the process exits; call
/// inside a Tokio runtime. With a `store`, a resumed run's task deadlines count from the
/// attempts it recorded; without, from when this process first sees the task.
pub fn standard(
    lineage: &LineageConfig,
    secrets: Arc<dyn Secrets>,
    store: Option<Arc<dyn Store>>,
) -> Result<(Observers, Outbox), SetupError> {
    let delivery = Delivery::start(Settings::default())?;
    let mut observers =
        Observers::default().with(Arc::new(Notifier::new(delivery.clone(), secrets, store)));
    let outbox = delivery.outbox().clone();
    if lineage.is_enabled() {
        observers.push(Arc::new(Lineage::start(lineage, Some(delivery))));
    }
    Ok((observers, outbox))
}
