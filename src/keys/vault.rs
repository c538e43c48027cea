//! HashiCorp Vault / OpenBao transit recipients (the `hc_vault` stanza).
//! `enc` is the transit ciphertext as returned (`vault:v1:…`); the request
//! sends the raw data key std-base64 encoded, exactly as sops does.
//!
//! Plain reqwest rather than vaultrs: four endpoints, and direct control over
//! timeouts, retries, the namespace header, the CA bundle and error classes.
//!
//! Token, in this order: `VAULT_TOKEN`; AppRole login (`VAULT_ROLE_ID` +
//! `VAULT_SECRET_ID`, mount `VAULT_APPROLE_MOUNT`, default `approle`);
//! Kubernetes login (`VAULT_K8S_ROLE`, JWT from `VAULT_K8S_TOKEN_PATH`, default
//! the pod's service-account token, mount `VAULT_K8S_MOUNT`, default
//! `kubernetes`); `~/.vault-token`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::service;
use super::{ErrorClass, KeyError, KeySource, Recipient};
use crate::sops::Stanza;

const BACKEND: &str = "vault transit";
const K8S_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How to obtain a Vault token.
#[derive(Clone)]
pub enum VaultAuth {
    Token(Zeroizing<String>),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: Zeroizing<String>,
    },
    Kubernetes {
        mount: String,
        role: String,
        jwt_path: PathBuf,
    },
    /// `~/.vault-token` (read when first needed).
    TokenFile(PathBuf),
    /// Nothing configured: the error says what to set.
    None,
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl VaultAuth {
    /// Reads the environment (no file or network access).
    pub fn from_env() -> VaultAuth {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(t) = var("VAULT_TOKEN") {
            return VaultAuth::Token(Zeroizing::new(t.trim().to_string()));
        }
        if let (Some(role_id), Some(secret_id)) = (var("VAULT_ROLE_ID"), var("VAULT_SECRET_ID")) {
            return VaultAuth::AppRole {
                mount: var("VAULT_APPROLE_MOUNT").unwrap_or_else(|| "approle".into()),
                role_id,
                secret_id: Zeroizing::new(secret_id),
            };
        }
        if let Some(role) = var("VAULT_K8S_ROLE") {
            return VaultAuth::Kubernetes {
                mount: var("VAULT_K8S_MOUNT").unwrap_or_else(|| "kubernetes".into()),
                role,
                jwt_path: var("VAULT_K8S_TOKEN_PATH")
                    .unwrap_or_else(|| K8S_TOKEN.into())
                    .into(),
            };
        }
        match std::env::var_os("HOME") {
            Some(h) => VaultAuth::TokenFile(PathBuf::from(h).join(".vault-token")),
            None => VaultAuth::None,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            VaultAuth::Token(_) => "token",
            VaultAuth::AppRole { .. } => "approle",
            VaultAuth::Kubernetes { .. } => "kubernetes",
            VaultAuth::TokenFile(_) => "token file",
            VaultAuth::None => "none",
        }
    }
}

/// Connection settings beside the token.
#[derive(Clone, Debug, Default)]
pub struct VaultOptions {
    /// `VAULT_NAMESPACE` (Vault Enterprise / OpenBao namespaces).
    pub namespace: Option<String>,
    /// `VAULT_CACERT`: PEM bundle trusted in addition to the system roots.
    pub ca_cert: Option<PathBuf>,
    /// `VAULT_SKIP_VERIFY=true` (development only).
    pub skip_verify: bool,
    /// `VAULT_ADDR`: used for recipients configured without an address.
    pub default_address: Option<String>,
}

impl VaultOptions {
    pub fn from_env() -> VaultOptions {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        VaultOptions {
            namespace: var("VAULT_NAMESPACE"),
            ca_cert: var("VAULT_CACERT").map(PathBuf::from),
            skip_verify: var("VAULT_SKIP_VERIFY")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "True")),
            default_address: var("VAULT_ADDR"),
        }
    }
}

struct Conn {
    http: reqwest::Client,
    token: Zeroizing<String>,
}

pub struct VaultSource {
    auth: VaultAuth,
    opts: VaultOptions,
    /// One logged-in connection per Vault address, created on first use.
    conns: Arc<tokio::sync::Mutex<HashMap<String, Arc<Conn>>>>,
}

impl VaultSource {
    pub fn new(auth: VaultAuth, opts: VaultOptions) -> VaultSource {
        VaultSource {
            auth,
            opts,
            conns: Arc::default(),
        }
    }

    pub fn from_env() -> VaultSource {
        VaultSource::new(VaultAuth::from_env(), VaultOptions::from_env())
    }

    fn address(&self, addr: &str) -> Result<String, KeyError> {
        let a = if addr.trim().is_empty() {
            self.opts.default_address.clone().ok_or_else(|| {
                KeyError::Config(
                    "Vault transit key without an address and VAULT_ADDR is unset".into(),
                )
            })?
        } else {
            addr.to_string()
        };
        Ok(a.trim_end_matches('/').to_string())
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

fn http_client(opts: &VaultOptions, key: &str) -> Result<reqwest::Client, KeyError> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("ksec/", env!("CARGO_PKG_VERSION")));
    if let Some(p) = &opts.ca_cert {
        let pem = std::fs::read(p).map_err(|e| {
            KeyError::Config(format!("VAULT_CACERT {}: cannot read: {e}", p.display()))
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
            KeyError::Config(format!(
                "VAULT_CACERT {}: not a PEM certificate bundle",
                p.display()
            ))
        })?;
        b = b.tls_certs_merge(certs);
    }
    if opts.skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| {
        err(
            key,
            ErrorClass::Other,
            format!("cannot build the HTTP client: {e}"),
        )
    })
}

/// Turns a Vault response into JSON or the service's error class.
async fn read_json(key: &str, r: reqwest::Response) -> Result<serde_json::Value, KeyError> {
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let msgs: Vec<String> = body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m.as_str())
                .map(service::sanitize)
                .collect()
        })
        .unwrap_or_default();
    let joined = msgs.join("; ");
    let lower = joined.to_ascii_lowercase();
    let class = match status.as_u16() {
        401 | 403 => ErrorClass::AccessDenied,
        404 => ErrorClass::NotFound,
        429 => ErrorClass::Throttled,
        400 if lower.contains("not found") => ErrorClass::NotFound,
        400 if lower.contains("disabled") || lower.contains("deletion") => ErrorClass::KeyDisabled,
        400 if lower.contains("cipher")
            || lower.contains("invalid ciphertext")
            || lower.contains("decrypt") =>
        {
            ErrorClass::InvalidCiphertext
        }
        500..=599 => ErrorClass::Network,
        _ => ErrorClass::Other,
    };
    let detail = if joined.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {joined}")
    };
    Err(err(key, class, detail))
}

fn send_err(key: &str, e: reqwest::Error) -> KeyError {
    let class = if e.is_timeout() || e.is_connect() || e.is_request() {
        ErrorClass::Network
    } else {
        ErrorClass::Other
    };
    // reqwest's Display names the URL (no credentials in it: tokens travel in headers).
    err(key, class, service::sanitize(&e.to_string()))
}

fn request(
    http: &reqwest::Client,
    opts: &VaultOptions,
    url: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    let mut r = http.post(url).header("X-Vault-Request", "true").json(body);
    if let Some(t) = token {
        r = r.header("X-Vault-Token", t);
    }
    if let Some(ns) = &opts.namespace {
        r = r.header("X-Vault-Namespace", ns);
    }
    r
}

async fn login(
    http: &reqwest::Client,
    opts: &VaultOptions,
    addr: &str,
    auth: &VaultAuth,
    key: &str,
) -> Result<Zeroizing<String>, KeyError> {
    let (mount, body) = match auth {
        VaultAuth::Token(t) => return Ok(t.clone()),
        VaultAuth::TokenFile(p) => {
            return match std::fs::read_to_string(p) {
                Ok(t) if !t.trim().is_empty() => Ok(Zeroizing::new(t.trim().to_string())),
                _ => Err(err(
                    key,
                    ErrorClass::AccessDenied,
                    "no Vault token: set VAULT_TOKEN, log in (~/.vault-token), or configure AppRole (VAULT_ROLE_ID/VAULT_SECRET_ID) or Kubernetes auth (VAULT_K8S_ROLE)",
                )),
            };
        }
        VaultAuth::None => {
            return Err(err(
                key,
                ErrorClass::AccessDenied,
                "no Vault token: set VAULT_TOKEN or configure AppRole / Kubernetes auth",
            ));
        }
        VaultAuth::AppRole {
            mount,
            role_id,
            secret_id,
        } => (
            mount.clone(),
            serde_json::json!({"role_id": role_id, "secret_id": secret_id.as_str()}),
        ),
        VaultAuth::Kubernetes {
            mount,
            role,
            jwt_path,
        } => {
            let jwt = Zeroizing::new(std::fs::read_to_string(jwt_path).map_err(|e| {
                KeyError::Config(format!(
                    "Vault Kubernetes auth: cannot read the service-account token {}: {e}",
                    jwt_path.display()
                ))
            })?);
            (
                mount.clone(),
                serde_json::json!({"role": role, "jwt": jwt.trim()}),
            )
        }
    };
    let url = format!("{addr}/v1/auth/{}/login", mount.trim_matches('/'));
    let what = format!("{} login at auth/{mount}", auth.describe());
    let v = service::call(BACKEND, key, true, || async {
        let r = request(http, opts, &url, None, &body)
            .send()
            .await
            .map_err(|e| send_err(key, e))?;
        read_json(key, r).await
    })
    .await
    .map_err(|e| match e {
        KeyError::Backend {
            backend,
            key,
            class,
            detail,
        } => KeyError::Backend {
            backend,
            key,
            class,
            detail: format!("{what}: {detail}"),
        },
        e => e,
    })?;
    v["auth"]["client_token"]
        .as_str()
        .map(|t| Zeroizing::new(t.to_string()))
        .ok_or_else(|| {
            err(
                key,
                ErrorClass::Other,
                format!("{what}: no client_token in the answer"),
            )
        })
}

/// Logs in to the Vault at `addr` with `auth` and returns the token; shared
/// with `ksec export` (KV v2), so both paths accept the same credentials.
pub(crate) async fn token_for(
    addr: &str,
    auth: &VaultAuth,
    opts: &VaultOptions,
) -> Result<Zeroizing<String>, KeyError> {
    let http = http_client(opts, addr)?;
    login(&http, opts, addr.trim_end_matches('/'), auth, addr).await
}

impl VaultSource {
    /// Runs one transit operation (`encrypt`/`decrypt`) and returns its `data`.
    fn transit(
        &self,
        address: &str,
        engine_path: &str,
        key_name: &str,
        op: &'static str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, KeyError> {
        let addr = self.address(address)?;
        let engine = engine_path.trim_matches('/').to_string();
        let key_id = format!("{addr}/v1/{engine}/keys/{key_name}");
        let url = format!("{addr}/v1/{engine}/{op}/{key_name}");
        let (auth, opts, conns) = (self.auth.clone(), self.opts.clone(), self.conns.clone());
        service::block_on(async move {
            let conn = {
                let mut map = conns.lock().await;
                match map.get(&addr) {
                    Some(c) => c.clone(),
                    None => {
                        let http = http_client(&opts, &key_id)?;
                        let token = login(&http, &opts, &addr, &auth, &key_id).await?;
                        let c = Arc::new(Conn { http, token });
                        map.insert(addr.clone(), c.clone());
                        c
                    }
                }
            };
            let v = service::call(BACKEND, &key_id, true, || async {
                let r = request(&conn.http, &opts, &url, Some(&conn.token), &body)
                    .send()
                    .await
                    .map_err(|e| send_err(&key_id, e))?;
                read_json(&key_id, r).await
            })
            .await
            .map_err(|e| match e {
                KeyError::Backend {
                    backend,
                    key,
                    class,
                    detail,
                } => KeyError::Backend {
                    backend,
                    key,
                    class,
                    detail: format!("{op}: {detail}"),
                },
                e => e,
            })?;
            Ok(v["data"].clone())
        })
    }
}

impl KeySource for VaultSource {
    fn kind(&self) -> &'static str {
        "hc_vault"
    }

    fn wrap(&self, recipient: &Recipient, data_key: &[u8]) -> Result<Stanza, KeyError> {
        let Recipient::HcVault {
            address,
            engine_path,
            key_name,
        } = recipient
        else {
            return Err(KeyError::NoIdentity);
        };
        let plaintext = Zeroizing::new(STANDARD.encode(data_key));
        let data = self.transit(
            address,
            engine_path,
            key_name,
            "encrypt",
            serde_json::json!({ "plaintext": plaintext.as_str() }),
        )?;
        let enc = data["ciphertext"]
            .as_str()
            .filter(|c| c.starts_with("vault:"))
            .ok_or_else(|| {
                err(
                    key_name,
                    ErrorClass::Other,
                    "encrypt: the answer has no vault:v… ciphertext",
                )
            })?;
        Ok(Stanza::HcVault {
            vault_address: self.address(address)?,
            engine_path: engine_path.clone(),
            key_name: key_name.clone(),
            created_at: service::now_rfc3339(),
            enc: enc.to_string(),
        })
    }

    fn unwrap(&self, stanza: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let Stanza::HcVault {
            vault_address,
            engine_path,
            key_name,
            enc,
            ..
        } = stanza
        else {
            return Err(KeyError::NoIdentity);
        };
        let data = self.transit(
            vault_address,
            engine_path,
            key_name,
            "decrypt",
            serde_json::json!({ "ciphertext": enc }),
        )?;
        let b64 = Zeroizing::new(data["plaintext"].as_str().unwrap_or_default().to_string());
        STANDARD
            .decode(b64.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| {
                err(
                    key_name,
                    ErrorClass::InvalidCiphertext,
                    "decrypt: the plaintext is not base64",
                )
            })
    }
}
