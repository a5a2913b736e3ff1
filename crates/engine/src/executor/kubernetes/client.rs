//! The connection to one cluster: made at the first attempt that needs it (a baton that runs
//! no Job never needs a cluster), from the instance's kubeconfig and context, else the
//! environment's (`KUBECONFIG`, `~/.kube/config`, the pod's service account).

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Config};
use tokio::sync::OnceCell;

use super::KubernetesSettings;
use super::errors::{KubeError, Request};

/// How long the TCP connect to an API server may take: an address that answers nothing
/// must not hold an attempt (or a crash recovery) for kube's default 30 s each time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Client {
    settings: KubernetesSettings,
    connected: OnceCell<Connected>,
}

/// A cluster ready to take requests, and where they go.
#[derive(Clone)]
pub(super) struct Connected {
    pub client: kube::Client,
    pub namespace: String,
    /// The API server's address, for errors.
    pub server: String,
    pub executor: String,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("namespace", &self.namespace)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Connected {
    pub(super) fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub(super) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Describes a request of `verb` on `resource` `name`, for its error.
    pub(super) fn request<'a>(
        &'a self,
        verb: &'static str,
        resource: &'static str,
        name: &'a str,
    ) -> Request<'a> {
        Request {
            verb,
            resource,
            name,
            namespace: &self.namespace,
            server: &self.server,
            executor: &self.executor,
        }
    }
}

impl Client {
    pub(super) fn new(settings: KubernetesSettings) -> Self {
        Self {
            settings,
            connected: OnceCell::new(),
        }
    }

    /// The cluster, connecting on first use; a failure is tried again at the next call.
    pub(super) async fn get(&self) -> Result<&Connected, KubeError> {
        self.connected
            .get_or_try_init(|| connect(&self.settings))
            .await
    }
}

async fn connect(settings: &KubernetesSettings) -> Result<Connected, KubeError> {
    // The workspace's one TLS provider; another client may have installed it first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let no_config = |why: String| KubeError::NoConfig {
        executor: settings.name.clone(),
        why,
    };
    let options = KubeConfigOptions {
        context: settings.context.clone(),
        ..Default::default()
    };
    let mut config = match (&settings.kubeconfig, &settings.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path).map_err(|e| {
                no_config(format!("cannot read kubeconfig `{}`: {e}", path.display()))
            })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| no_config(format!("kubeconfig `{}`: {e}", path.display())))?
        }
        (None, Some(context)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| no_config(format!("context `{context}`: {e}")))?,
        (None, None) => Config::infer()
            .await
            .map_err(|e| no_config(crate::executor::error_chain(&e)))?,
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    let namespace = settings
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| KubeError::Unreachable {
        server: server.clone(),
        why: crate::executor::error_chain(&e),
    })?;
    Ok(Connected {
        client,
        namespace,
        server,
        executor: settings.name.clone(),
    })
}
