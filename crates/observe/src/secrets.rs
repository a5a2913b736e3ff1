//! Where the server reads secrets (webhook keys today): the environment in production, a map
//! in tests, a secret store later.

use std::collections::HashMap;

pub trait Secrets: Send + Sync + std::fmt::Debug {
    fn get(&self, name: &str) -> Option<String>;
}

/// Secrets from the server's environment variables.
#[derive(Debug, Default)]
pub struct EnvSecrets;

impl Secrets for EnvSecrets {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Fixed secrets, for tests and embedding.
#[derive(Debug, Default)]
pub struct StaticSecrets(pub HashMap<String, String>);

impl Secrets for StaticSecrets {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}
