//! Callbacks of `http:` steps with `callback`: the request carries a URL the callee calls
//! with the result, and the attempt waits for that call. A URL's token is a random id and
//! its HMAC under a key of this process, so a forged one is refused without a lookup, and it
//! is good once: the first call ends the wait and forgets it. A server restarted meanwhile
//! knows none of the old ones; their attempts were interrupted and run again, with new URLs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::oneshot;

/// The callbacks a server waits for.
#[derive(Debug, Clone, Default)]
pub struct Callbacks {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `https://baton.example.com`: where callees reach the server, set once it listens.
    base: OnceLock<String>,
    key: [u8; 32],
    pending: Mutex<HashMap<String, oneshot::Sender<Vec<u8>>>>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            base: OnceLock::new(),
            key: rand::random(),
            pending: Mutex::default(),
        }
    }
}

/// Why a call was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error(
        "no attempt waits for this callback: it was used already, its attempt ended, or it \
         was never issued"
    )]
    Unknown,
}

/// One issued callback: its URL, and the wait for its call (forgotten when dropped).
#[derive(Debug)]
pub struct Ticket {
    pub url: String,
    token: String,
    rx: oneshot::Receiver<Vec<u8>>,
    callbacks: Callbacks,
}

impl Ticket {
    /// The body of the call, once it comes.
    pub async fn called(&mut self) -> Option<Vec<u8>> {
        (&mut self.rx).await.ok()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.callbacks.lock().remove(&self.token);
    }
}

impl Callbacks {
    /// Callbacks are addressed at `base` (the server's URL as callees reach it); set once.
    pub fn set_base(&self, base: &str) {
        let _ = self.inner.base.set(base.trim_end_matches('/').to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Vec<u8>>>> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mac(&self, id: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.inner.key).expect("HMAC takes any key size");
        mac.update(id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A new callback URL; `None` until the server's address is known.
    pub fn issue(&self) -> Option<Ticket> {
        let base = self.inner.base.get()?;
        let id = hex::encode(rand::random::<[u8; 16]>());
        let token = format!("{id}.{}", self.mac(&id));
        let (tx, rx) = oneshot::channel();
        self.lock().insert(token.clone(), tx);
        Some(Ticket {
            url: format!("{base}/api/v1/callbacks/{token}"),
            token,
            rx,
            callbacks: self.clone(),
        })
    }

    /// Hands `body` to the attempt waiting for `token`, once.
    pub fn deliver(&self, token: &str, body: Vec<u8>) -> Result<(), CallbackError> {
        let (id, mac) = token.split_once('.').ok_or(CallbackError::Unknown)?;
        let genuine: bool =
            subtle::ConstantTimeEq::ct_eq(self.mac(id).as_bytes(), mac.as_bytes()).into();
        if !genuine {
            return Err(CallbackError::Unknown);
        }
        let tx = self.lock().remove(token).ok_or(CallbackError::Unknown)?;
        tx.send(body).map_err(|_| CallbackError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_callback_is_taken_once_and_a_forged_one_never() {
        let c = Callbacks::default();
        assert!(c.issue().is_none(), "no address, no callback");
        c.set_base("http://127.0.0.1:8080/");
        let mut t = c.issue().expect("ticket");
        assert!(
            t.url.starts_with("http://127.0.0.1:8080/api/v1/callbacks/"),
            "{}",
            t.url
        );
        let token = t.url.rsplit('/').next().expect("token").to_owned();
        let forged = format!("{}.{}", &token[..32], "0".repeat(64));
        assert_eq!(
            c.deliver(&forged, b"{}".to_vec()),
            Err(CallbackError::Unknown)
        );
        c.deliver(&token, b"{\"ok\":1}".to_vec())
            .expect("delivered");
        assert_eq!(
            c.deliver(&token, b"{}".to_vec()),
            Err(CallbackError::Unknown),
            "once"
        );
        assert_eq!(t.called().await.as_deref(), Some(&b"{\"ok\":1}"[..]));
        let t2 = c.issue().expect("ticket");
        let token2 = t2.url.rsplit('/').next().expect("token").to_owned();
        drop(t2);
        assert_eq!(
            c.deliver(&token2, Vec::new()),
            Err(CallbackError::Unknown),
            "forgotten"
        );
    }
}
