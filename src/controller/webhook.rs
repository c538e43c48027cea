//! `POST /hook`: a push notification from the Git host triggers an
//! immediate fetch. Authenticated by GitHub's `X-Hub-Signature-256` (HMAC
//! of the body) or GitLab's `X-Gitlab-Token`, both compared in constant
//! time; anything else is 401 and triggers nothing. The body is only read
//! for its `ref` (a push to another branch is acknowledged and ignored).

use std::sync::Arc;

use hmac::{Hmac, Mac};
use hyper::StatusCode;
use hyper::header::HeaderMap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use zeroize::Zeroizing;

/// Larger bodies are refused before they are authenticated.
pub const MAX_BODY: usize = 1 << 20;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    /// `accepted`, `ignored` (another branch) or `unauthorized`.
    pub result: String,
}

pub struct Webhook {
    secret: Zeroizing<Vec<u8>>,
    branch: String,
    trigger: Arc<Notify>,
    pub calls: Family<HookLabels, Counter>,
}

impl Webhook {
    pub fn new(secret: Zeroizing<Vec<u8>>, branch: &str, trigger: Arc<Notify>) -> Webhook {
        Webhook {
            secret,
            branch: branch.to_string(),
            trigger,
            calls: Default::default(),
        }
    }

    fn authentic(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        if self.secret.is_empty() {
            return false;
        }
        if let Some(sig) = headers
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok())
        {
            let Some(hex_sig) = sig.trim().strip_prefix("sha256=") else {
                return false;
            };
            let Ok(want) = hex::decode(hex_sig) else {
                return false;
            };
            let mut mac =
                Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
            mac.update(body);
            return mac.verify_slice(&want).is_ok();
        }
        if let Some(tok) = headers.get("x-gitlab-token") {
            return bool::from(tok.as_bytes().ct_eq(self.secret.as_slice()));
        }
        false
    }

    /// Authenticates, then wakes the Git source (202) unless the push was
    /// for another branch.
    pub fn handle(&self, headers: &HeaderMap, body: &[u8]) -> (StatusCode, &'static str) {
        let (code, result, text) = if !self.authentic(headers, body) {
            (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong signature\n",
            )
        } else if self.other_branch(body) {
            (StatusCode::ACCEPTED, "ignored", "another branch; ignored\n")
        } else {
            self.trigger.notify_one();
            (StatusCode::ACCEPTED, "accepted", "fetch scheduled\n")
        };
        self.calls
            .get_or_create(&HookLabels {
                result: result.into(),
            })
            .inc();
        (code, text)
    }

    fn other_branch(&self, body: &[u8]) -> bool {
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("ref").and_then(|r| r.as_str()).map(str::to_string))
            .is_some_and(|r| r.starts_with("refs/") && r != format!("refs/heads/{}", self.branch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> (Webhook, Arc<Notify>) {
        let n = Arc::new(Notify::new());
        (
            Webhook::new(Zeroizing::new(b"hook-secret".to_vec()), "main", n.clone()),
            n,
        )
    }

    fn sign(key: &[u8], body: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(body);
        format!("sha256={}", hex::encode(m.finalize().into_bytes()))
    }

    #[test]
    fn github_signatures_and_gitlab_tokens_are_checked() {
        let (h, _) = hook();
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut hm = HeaderMap::new();
        assert_eq!(h.handle(&hm, body).0, StatusCode::UNAUTHORIZED);
        hm.insert("x-hub-signature-256", sign(b"wrong", body).parse().unwrap());
        assert_eq!(h.handle(&hm, body).0, StatusCode::UNAUTHORIZED);
        hm.insert(
            "x-hub-signature-256",
            sign(b"hook-secret", body).parse().unwrap(),
        );
        assert_eq!(h.handle(&hm, body).0, StatusCode::ACCEPTED);
        // The signature covers the body.
        assert_eq!(
            h.handle(&hm, br#"{"ref":"refs/heads/evil"}"#).0,
            StatusCode::UNAUTHORIZED
        );
        let mut gl = HeaderMap::new();
        gl.insert("x-gitlab-token", "hook-secre".parse().unwrap());
        assert_eq!(h.handle(&gl, body).0, StatusCode::UNAUTHORIZED);
        gl.insert("x-gitlab-token", "hook-secret".parse().unwrap());
        assert_eq!(h.handle(&gl, body).0, StatusCode::ACCEPTED);
    }

    #[test]
    fn pushes_to_other_branches_do_not_trigger() {
        let (h, _) = hook();
        let body = br#"{"ref":"refs/heads/feature"}"#;
        let mut hm = HeaderMap::new();
        hm.insert("x-gitlab-token", "hook-secret".parse().unwrap());
        assert_eq!(
            h.handle(&hm, body),
            (StatusCode::ACCEPTED, "another branch; ignored\n")
        );
    }
}
