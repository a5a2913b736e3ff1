//! The observers every run gets, for `baton server` and `baton run` alike: notifications and
//! deadlines always (they do nothing for pipelines without `notify` or `deadline`), lineage
//! when configured.

use std::sync::Arc;

use baton_engine::Observers;
use baton_store::Store;

use crate::delivery::{Delivery, Settings, SetupError};
use crate::lineage::{Lineage, LineageConfig};
use crate::notify::Notifier;
use crate::secrets::Secrets;

/// Builds the standard observers; call inside a Tokio runtime.
pub fn standard(
    lineage: &LineageConfig,
    secrets: Arc<dyn Secrets>,
    store: Arc<dyn Store>,
) -> Result<Observers, SetupError> {
    let delivery = Delivery::start(Settings::default())?;
    let mut observers = Observers::default().with(Arc::new(Notifier::new(
        delivery.clone(),
        secrets,
        Some(store),
    )));
    if lineage.is_enabled() {
        observers.push(Arc::new(Lineage::start(lineage, Some(delivery))));
    }
    Ok(observers)
}
