//! What can go wrong between baton and a cluster, and how each reads as an attempt's outcome:
//! what an administrator must fix (a missing permission or namespace, a Job the API rejects)
//! is refused, what may pass (an API server restarting) is retried.

use crate::executor::Outcome;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeError {
    #[error(
        "no Kubernetes configuration for executor `{executor}`: {why} (set `kubeconfig` in \
         [executors.{executor}], or run baton in a pod with a service account)"
    )]
    NoConfig { executor: String, why: String },
    #[error("cannot reach the Kubernetes API server at `{server}`: {why}")]
    Unreachable { server: String, why: String },
    #[error(
        "the Kubernetes API server at `{server}` does not accept baton's credentials: {why} \
         (check the kubeconfig's user or the service account token)"
    )]
    Unauthorized { server: String, why: String },
    #[error(
        "baton may not `{verb}` `{resource}` in namespace `{namespace}`: {why} (bind a Role \
         granting it to baton's identity; docs/executors.md lists the verbs)"
    )]
    Forbidden {
        verb: &'static str,
        resource: &'static str,
        namespace: String,
        why: String,
    },
    #[error(
        "namespace `{namespace}` does not exist (create it, or set `namespace` in [executors.{executor}])"
    )]
    NoNamespace { namespace: String, executor: String },
    #[error("the Kubernetes API rejects job `{job}`: {why}")]
    Rejected { job: String, why: String },
    #[error("cannot `{verb}` `{resource}` `{name}`: {why}")]
    Api {
        verb: &'static str,
        resource: &'static str,
        name: String,
        why: String,
    },
}

impl KubeError {
    /// What an attempt that met this error reports.
    pub(super) fn outcome(&self) -> Outcome {
        match self {
            Self::Forbidden { .. } | Self::NoNamespace { .. } | Self::Rejected { .. } => {
                Outcome::Refused(self.to_string())
            }
            _ => Outcome::Error(self.to_string()),
        }
    }
}

/// A request that failed: `verb` on `resource` `name` in `namespace` of `server`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request<'a> {
    pub verb: &'static str,
    pub resource: &'static str,
    pub name: &'a str,
    pub namespace: &'a str,
    pub server: &'a str,
    pub executor: &'a str,
}

impl Request<'_> {
    /// `e`, typed by what it says of the cluster.
    pub(super) fn failed(&self, e: &kube::Error) -> KubeError {
        let why = message(e);
        match e {
            kube::Error::Api(s) if s.code == 401 => KubeError::Unauthorized {
                server: self.server.to_owned(),
                why,
            },
            kube::Error::Api(s) if s.code == 403 => KubeError::Forbidden {
                verb: self.verb,
                resource: self.resource,
                namespace: self.namespace.to_owned(),
                why,
            },
            // The API server answers a create in a namespace that is not there with a 404
            // naming the namespace.
            kube::Error::Api(s)
                if s.code == 404
                    && s.message.contains(&format!("\"{}\"", self.namespace))
                    && s.message.contains("namespace") =>
            {
                KubeError::NoNamespace {
                    namespace: self.namespace.to_owned(),
                    executor: self.executor.to_owned(),
                }
            }
            kube::Error::Api(s) if s.code == 422 || s.code == 400 => KubeError::Rejected {
                job: self.name.to_owned(),
                why,
            },
            kube::Error::Api(_) => KubeError::Api {
                verb: self.verb,
                resource: self.resource,
                name: self.name.to_owned(),
                why,
            },
            _ => KubeError::Unreachable {
                server: self.server.to_owned(),
                why,
            },
        }
    }
}

/// The HTTP status of an API answer, if it was one.
pub(super) fn status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The server's own words (and the causes under a transport error).
pub(super) fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        e => crate::executor::error_chain(e),
    }
}

/// How a pod failed to run before its container could end on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PodFailure {
    #[error(
        "image `{image}` cannot be pulled ({reason}) for {waited}: {message} (check the \
         reference and the registry's credentials, `imagePullSecrets` of the service account)"
    )]
    ImagePull {
        image: String,
        reason: String,
        message: String,
        waited: String,
    },
    #[error("the container of job `{job}` cannot be created ({reason}): {message}")]
    ContainerConfig {
        job: String,
        reason: String,
        message: String,
    },
    #[error("the pod of job `{job}` found no node for {waited} (`unschedulable_limit`): {message}")]
    Unschedulable {
        job: String,
        message: String,
        waited: String,
    },
    #[error("job `{job}` was deleted while its attempt ran, not by this baton")]
    Vanished { job: String },
    #[error("job `{job}` failed ({reason}): {message}")]
    JobFailed {
        job: String,
        reason: String,
        message: String,
    },
}

impl PodFailure {
    pub(super) fn outcome(&self) -> Outcome {
        match self {
            Self::ImagePull { .. } | Self::ContainerConfig { .. } => {
                Outcome::Refused(self.to_string())
            }
            _ => Outcome::Error(self.to_string()),
        }
    }
}
