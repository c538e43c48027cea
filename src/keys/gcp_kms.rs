//! Google Cloud KMS recipients (the `gcp_kms` stanza: `resource_id`,
//! `created_at`, `enc`), as sops writes them: `enc` is the standard-base64
//! ciphertext of the KMS **encrypt** call over the raw data key, made with a
//! symmetric CryptoKey (`projects/P/locations/L/keyRings/R/cryptoKeys/K`);
//! KMS picks the primary version when encrypting and finds the version from
//! the ciphertext when decrypting, so key rotation keeps old files readable.
//!
//! Thin REST calls (`POST v1/{name}:encrypt|:decrypt`) over reqwest with the
//! credential chain of [`super::gcp_auth`]. The endpoint is
//! `KSEC_GCP_KMS_ENDPOINT`, else `SOPS_GCP_KMS_ENDPOINT` (sops ≥ 3.12),
//! else `https://cloudkms.googleapis.com`.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value as J;
use zeroize::Zeroizing;

use super::gcp_auth::{self, TokenCache};
use super::service;
use super::{
    ErrorClass, KeyError, KeySource, Recipient, validate_gcp_resource_id as validate_resource_id,
};
use crate::sops::Stanza;
use crate::sops::tree::{Map, MapItem, Value};

const BACKEND: &str = "gcp kms";
const DEFAULT_ENDPOINT: &str = "https://cloudkms.googleapis.com";

/// Overrides for embedding and tests; defaults read the environment.
#[derive(Clone, Default)]
pub struct GcpKmsOptions {
    /// KMS REST endpoint (scheme://host[:port]).
    pub endpoint: Option<String>,
    /// Extra PEM CA bundle (private endpoints, the test fake); `SSL_CERT_FILE` also works.
    pub ca_file: Option<PathBuf>,
    /// A credentials JSON document used instead of the environment's chain.
    pub credentials_json: Option<Zeroizing<String>>,
}

impl GcpKmsOptions {
    pub fn from_env() -> GcpKmsOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        GcpKmsOptions {
            endpoint: var("KSEC_GCP_KMS_ENDPOINT").or_else(|| var("SOPS_GCP_KMS_ENDPOINT")),
            ..Default::default()
        }
    }
}

/// The HTTP client and token cache of one source, built on first use.
pub(crate) struct Session {
    pub http: reqwest::Client,
    pub tokens: tokio::sync::Mutex<TokenCache>,
}

pub struct GcpKmsSource {
    opts: GcpKmsOptions,
    session: Arc<tokio::sync::OnceCell<Arc<Session>>>,
}

impl GcpKmsSource {
    pub fn new(opts: GcpKmsOptions) -> GcpKmsSource {
        GcpKmsSource {
            opts,
            session: Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    pub fn from_env() -> GcpKmsSource {
        GcpKmsSource::new(GcpKmsOptions::from_env())
    }
}

fn err(key: &str, class: ErrorClass, detail: impl Into<String>) -> KeyError {
    KeyError::Backend {
        backend: BACKEND,
        key: key.to_string(),
        class,
        detail: detail.into(),
    }
}

/// An HTTP client with the CA bundle and timeouts (shared with `ksec export`).
pub(crate) fn http_client(ca_file: Option<&PathBuf>) -> Result<reqwest::Client, KeyError> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(p) = ca_file {
        let pem = std::fs::read(p)
            .map_err(|e| KeyError::Config(format!("CA file {}: cannot read: {e}", p.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
            KeyError::Config(format!(
                "CA file {}: not a PEM certificate bundle",
                p.display()
            ))
        })?;
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| KeyError::Config(format!("cannot build the HTTP client: {e}")))
}

/// A session for `opts`' CA bundle and credential (shared with `ksec export`).
pub(crate) fn session(
    ca_file: Option<&PathBuf>,
    credentials_json: Option<&Zeroizing<String>>,
) -> Result<Session, KeyError> {
    let cred = match credentials_json {
        Some(j) => Some(
            gcp_auth::parse_json(j, "the given credentials")
                .map_err(|e| KeyError::Config(e.detail))?,
        ),
        None => None,
    };
    Ok(Session {
        http: http_client(ca_file)?,
        tokens: tokio::sync::Mutex::new(TokenCache::new(cred)),
    })
}

/// Maps a Google API error answer to the service's own class.
pub(crate) fn classify_status(status: u16, body: &J, decrypting: bool) -> (ErrorClass, String) {
    let e = &body["error"];
    let gstatus = e["status"].as_str().unwrap_or("");
    let msg = e["message"].as_str().unwrap_or("");
    let lower = msg.to_ascii_lowercase();
    let class = match (status, gstatus) {
        (_, "FAILED_PRECONDITION") if lower.contains("disabled") || lower.contains("destroy") => {
            ErrorClass::KeyDisabled
        }
        (401 | 403, _) | (_, "PERMISSION_DENIED" | "UNAUTHENTICATED") => ErrorClass::AccessDenied,
        (404, _) | (_, "NOT_FOUND") => ErrorClass::NotFound,
        (429, _) | (_, "RESOURCE_EXHAUSTED") => ErrorClass::Throttled,
        (400, "INVALID_ARGUMENT") if decrypting => ErrorClass::InvalidCiphertext,
        (500..=599, _) => ErrorClass::Network,
        _ => ErrorClass::Other,
    };
    let detail = service::sanitize(&format!("HTTP {status} {gstatus}: {msg}"));
    (class, detail)
}

/// One authenticated JSON request, retried once after a 401 (an expired
/// cached token). Returns the status and body of any answer; errors are the
/// failures to get a token or an answer (class and sanitized detail).
pub(crate) async fn send_json(
    s: &Session,
    method: reqwest::Method,
    url: &str,
    body: Option<&J>,
) -> Result<(u16, J), (ErrorClass, String)> {
    let net = |x: reqwest::Error| {
        (
            ErrorClass::Network,
            service::sanitize(&gcp_auth::error_chain(&x)),
        )
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let token = s
            .tokens
            .lock()
            .await
            .get(&s.http)
            .await
            .map_err(|a| (a.class, a.detail))?;
        let mut req = s
            .http
            .request(method.clone(), url)
            .bearer_auth(token.as_str());
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(net)?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await.map_err(net)?;
        if status == 401 && attempt == 1 {
            s.tokens.lock().await.invalidate();
            continue;
        }
        return Ok((status, serde_json::from_slice(&bytes).unwrap_or(J::Null)));
    }
}

/// A KMS POST: any non-2xx answer is classified and names `key`.
pub(crate) async fn post_json(
    s: &Session,
    key: &str,
    url: &str,
    body: &J,
    decrypting: bool,
) -> Result<J, KeyError> {
    match send_json(s, reqwest::Method::POST, url, Some(body)).await {
        Ok((status, v)) if (200..300).contains(&status) => Ok(v),
        Ok((status, v)) => {
            let (class, detail) = classify_status(status, &v, decrypting);
            Err(err(key, class, detail))
        }
        Err((class, detail)) => Err(err(key, class, detail)),
    }
}

impl GcpKmsSource {
    async fn call(
        opts: GcpKmsOptions,
        cell: Arc<tokio::sync::OnceCell<Arc<Session>>>,
        id: String,
        op: &'static str,
        body: J,
    ) -> Result<J, KeyError> {
        let s = cell
            .get_or_try_init(|| async {
                session(opts.ca_file.as_ref(), opts.credentials_json.as_ref()).map(Arc::new)
            })
            .await?
            .clone();
        let endpoint = opts.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let url = format!("{}/v1/{id}:{op}", endpoint.trim_end_matches('/'));
        service::call(BACKEND, &id, true, || {
            post_json(&s, &id, &url, &body, op == "decrypt")
        })
        .await
    }
}

/// The stanza sops writes (fields alphabetical, as sops 3.13 emits them).
pub fn stanza(resource_id: &str, created_at: &str, enc: &str) -> Stanza {
    let s = |k: &str, v: &str| MapItem::Pair(k.to_string(), Value::Str(v.to_string()));
    Stanza::Other {
        kind: "gcp_kms".into(),
        fields: Map(vec![
            s("created_at", created_at),
            s("enc", enc),
            s("resource_id", resource_id),
        ]),
    }
}

impl KeySource for GcpKmsSource {
    fn kind(&self) -> &'static str {
        "gcp_kms"
    }

    fn wrap(&self, recipient: &Recipient, data_key: &[u8]) -> Result<Stanza, KeyError> {
        let Recipient::GcpKms { resource_id } = recipient else {
            return Err(KeyError::NoIdentity);
        };
        validate_resource_id(resource_id)?;
        let body = serde_json::json!({"plaintext": STANDARD.encode(data_key)});
        let (opts, cell, id) = (self.opts.clone(), self.session.clone(), resource_id.clone());
        let v = service::block_on(Self::call(opts, cell, id, "encrypt", body))?;
        let ct = v["ciphertext"]
            .as_str()
            .and_then(|c| STANDARD.decode(c).ok())
            .ok_or_else(|| {
                err(
                    resource_id,
                    ErrorClass::Other,
                    "encrypt returned no ciphertext",
                )
            })?;
        Ok(stanza(
            resource_id,
            &service::now_rfc3339(),
            &STANDARD.encode(ct),
        ))
    }

    fn unwrap(&self, stanza: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let Stanza::Other { kind, fields } = stanza else {
            return Err(KeyError::NoIdentity);
        };
        if kind != "gcp_kms" {
            return Err(KeyError::NoIdentity);
        }
        let id = fields.str_of("resource_id").unwrap_or("").to_string();
        validate_resource_id(&id)?;
        let enc = fields.str_of("enc").unwrap_or("").trim().to_string();
        if STANDARD.decode(&enc).is_err() || enc.is_empty() {
            return Err(err(&id, ErrorClass::InvalidCiphertext, "enc is not base64"));
        }
        let body = serde_json::json!({"ciphertext": enc});
        let (opts, cell) = (self.opts.clone(), self.session.clone());
        let v = service::block_on(Self::call(opts, cell, id.clone(), "decrypt", body))?;
        v["plaintext"]
            .as_str()
            .and_then(|p| STANDARD.decode(p).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| err(&id, ErrorClass::Other, "decrypt returned no plaintext"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids_are_checked_like_sops() {
        assert!(
            validate_resource_id("projects/p/locations/global/keyRings/r/cryptoKeys/k").is_ok()
        );
        for bad in [
            "projects/p/locations/global/keyRings/r",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "projects//locations/global/keyRings/r/cryptoKeys/k",
        ] {
            assert!(validate_resource_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn google_error_statuses_map_to_classes() {
        let b = |s: &str, m: &str| serde_json::json!({"error": {"status": s, "message": m}});
        assert_eq!(
            classify_status(403, &b("PERMISSION_DENIED", "no"), true).0,
            ErrorClass::AccessDenied
        );
        assert_eq!(
            classify_status(400, &b("FAILED_PRECONDITION", "version is DISABLED"), true).0,
            ErrorClass::KeyDisabled
        );
        assert_eq!(
            classify_status(400, &b("INVALID_ARGUMENT", "Decryption failed"), true).0,
            ErrorClass::InvalidCiphertext
        );
        assert_eq!(
            classify_status(404, &b("NOT_FOUND", "x"), false).0,
            ErrorClass::NotFound
        );
    }
}
