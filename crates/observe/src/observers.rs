//! The observers every run gets, for `baton server` and `baton run` alike: notifications and
//! deadlines always (they do nothing for pipelines without `notify` or `deadline`), lineage
//! when configured.

use std::sync::Arc;

use baton_engine::Observers;

use crate::delivery::{Delivery, Settings, SetupError};
use crate::lineage::{Lineage, LineageConfig};
use crate::notify::Notifier;
use crate::outbox::Outbox;
use crate::secrets::Secrets;

/// Builds the standard observers, and the outbox to wait on before the process exits; call
/// inside a Tokio runtime.
pub fn standard(
    lineage: &LineageConfig,
    secrets: Arc<dyn Secrets>,
) -> Result<(Observers, Outbox), SetupError> {
    let delivery = Delivery::start(Settings::default())?;
    let mut observers =
        Observers::default().with(Arc::new(Notifier::new(delivery.clone(), secrets)));
    let outbox = delivery.outbox().clone();
    if lineage.is_enabled() {
        observers.push(Arc::new(Lineage::start(lineage, Some(delivery))));
    }
    Ok((observers, outbox))
}
