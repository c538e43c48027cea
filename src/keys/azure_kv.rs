//! Azure Key Vault recipients (the `azure_kv` stanza): `enc` is the
//! base64url-no-pad result of the Key Vault **encrypt** operation with
//! RSA-OAEP-256 over the raw data key, as sops writes it. A recipient without
//! a version is resolved to the key's current version when wrapping, so the
//! file keeps opening after the key is rotated.
//!
//! Uses Microsoft's maintained `azure_security_keyvault_keys` 1.x with
//! `azure_identity` 1.x (the unofficial `azure_security_keyvault` 0.x line is
//! superseded and would add a second reqwest/azure_core stack).
//!
//! Credential, chosen from the environment on first use: workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE` + `AZURE_CLIENT_ID` + `AZURE_TENANT_ID`), client
//! secret (`AZURE_CLIENT_SECRET` + ids), managed identity (`IDENTITY_ENDPOINT`
//! / `MSI_ENDPOINT`, or `KSEC_AZURE_CREDENTIAL=managed_identity` for IMDS on
//! VMs and AKS nodes), else the developer tools (Azure CLI, azd).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_core::time::Duration as AzDuration;
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, DeveloperToolsCredential,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyClientEncryptOptions, KeyClientGetKeyOptions, KeyOperationParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use super::service;
use super::{ErrorClass, KeyError, KeySource, Recipient};
use crate::sops::Stanza;

const BACKEND: &str = "azure key vault";

/// Overrides for embedding and tests; defaults read the environment.
#[derive(Clone, Default)]
pub struct AzureKvOptions {
    /// Extra PEM CA bundle for Key Vault and the token endpoint (private
    /// endpoints behind a corporate CA, the test fake). `SSL_CERT_FILE` also works.
    pub ca_file: Option<PathBuf>,
    /// Key Vault's challenge names the resource to get a token for; the SDK
    /// checks it matches the vault's domain. Off only for emulators
    /// (`KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE=false`).
    pub skip_challenge_resource_check: bool,
    /// Client-secret credential given directly (tenant, client id, secret),
    /// with an optional authority host (else `AZURE_AUTHORITY_HOST` or public cloud).
    pub client_secret: Option<(String, String, Zeroizing<String>)>,
    pub authority_host: Option<String>,
}

impl AzureKvOptions {
    pub fn from_env() -> AzureKvOptions {
        AzureKvOptions {
            skip_challenge_resource_check: std::env::var("KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE")
                .is_ok_and(|v| matches!(v.as_str(), "0" | "false" | "FALSE" | "False")),
            ..Default::default()
        }
    }
}

struct State {
    credential: Option<Arc<dyn TokenCredential>>,
    clients: HashMap<String, Arc<KeyClient>>,
}

pub struct AzureKvSource {
    opts: AzureKvOptions,
    state: Arc<tokio::sync::Mutex<State>>,
}

impl AzureKvSource {
    pub fn new(opts: AzureKvOptions) -> AzureKvSource {
        AzureKvSource {
            opts,
            state: Arc::new(tokio::sync::Mutex::new(State {
                credential: None,
                clients: HashMap::new(),
            })),
        }
    }

    pub fn from_env() -> AzureKvSource {
        AzureKvSource::new(AzureKvOptions::from_env())
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

/// HTTP options (CA bundle, retries, timeouts, authority host) shared by the
/// key client and `ksec export`'s secret client.
pub(crate) fn client_options(opts: &AzureKvOptions, key: &str) -> Result<ClientOptions, KeyError> {
    let mut co = ClientOptions {
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: AzDuration::milliseconds(200),
            max_retries: service::MAX_ATTEMPTS - 1,
            max_total_elapsed: AzDuration::seconds(50),
            max_delay: AzDuration::seconds(5),
        }),
        ..Default::default()
    };
    let mut b = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(p) = &opts.ca_file {
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
    let http = b.build().map_err(|e| {
        err(
            key,
            ErrorClass::Other,
            format!("cannot build the HTTP client: {e}"),
        )
    })?;
    co.transport = Some(Transport::new(Arc::new(http)));
    if let Some(host) = &opts.authority_host {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = host.clone();
        co.cloud = Some(Arc::new(custom.into()));
    }
    Ok(co)
}

/// The credential chain described in the module docs; shared with `ksec export`.
pub(crate) fn credential(
    opts: &AzureKvOptions,
    key: &str,
) -> Result<Arc<dyn TokenCredential>, KeyError> {
    let cred_err = |e: azure_core::Error| {
        err(
            key,
            ErrorClass::AccessDenied,
            format!("Azure credential: {}", service::sanitize(&e.to_string())),
        )
    };
    let co = client_options(opts, key)?;
    if let Some((tenant, client, secret)) = &opts.client_secret {
        let c = ClientSecretCredential::new(
            tenant,
            client.clone(),
            Secret::new(secret.to_string()),
            Some(ClientSecretCredentialOptions { client_options: co }),
        )
        .map_err(cred_err)?;
        return Ok(c);
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let (tenant, client) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"));
    if var("AZURE_FEDERATED_TOKEN_FILE").is_some() && tenant.is_some() && client.is_some() {
        let mut o = WorkloadIdentityCredentialOptions::default();
        o.credential_options.client_options = co;
        return Ok(WorkloadIdentityCredential::new(Some(o)).map_err(cred_err)?);
    }
    if let (Some(secret), Some(t), Some(c)) = (var("AZURE_CLIENT_SECRET"), &tenant, &client) {
        let c = ClientSecretCredential::new(
            t,
            c.clone(),
            Secret::new(secret),
            Some(ClientSecretCredentialOptions { client_options: co }),
        )
        .map_err(cred_err)?;
        return Ok(c);
    }
    let mi = || {
        ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: client.clone().map(UserAssignedId::ClientId),
            client_options: co.clone(),
        }))
    };
    let want_mi = var("KSEC_AZURE_CREDENTIAL").is_some_and(|v| v == "managed_identity")
        || var("IDENTITY_ENDPOINT").is_some()
        || var("MSI_ENDPOINT").is_some();
    if want_mi {
        return Ok(mi().map_err(cred_err)?);
    }
    // Developer machines: `az login` / `azd auth login`.
    Ok(DeveloperToolsCredential::new(None).map_err(cred_err)?)
}

/// Maps an Azure SDK error to the service's own class and message.
pub(crate) fn classify(key: &str, e: azure_core::Error) -> KeyError {
    use azure_core::error::ErrorKind;
    match e.kind() {
        ErrorKind::HttpResponse {
            status,
            error_code,
            raw_response,
        } => {
            let code = u16::from(*status);
            let body: serde_json::Value = raw_response
                .as_ref()
                .and_then(|r| serde_json::from_slice(r.body().as_ref()).ok())
                .unwrap_or(serde_json::Value::Null);
            let svc_code = body["error"]["code"]
                .as_str()
                .map(str::to_string)
                .or_else(|| error_code.clone())
                .unwrap_or_default();
            let msg = body["error"]["message"].as_str().unwrap_or("");
            let lower = format!("{svc_code} {msg}").to_ascii_lowercase();
            let class = match code {
                _ if lower.contains("disabled") => ErrorClass::KeyDisabled,
                401 | 403 => ErrorClass::AccessDenied,
                404 => ErrorClass::NotFound,
                429 => ErrorClass::Throttled,
                400 if lower.contains("decrypt") || lower.contains("ciphertext") => {
                    ErrorClass::InvalidCiphertext
                }
                500..=599 => ErrorClass::Network,
                _ => ErrorClass::Other,
            };
            err(
                key,
                class,
                service::sanitize(&format!("HTTP {code} {svc_code}: {msg}")),
            )
        }
        ErrorKind::Connection | ErrorKind::Io => {
            err(key, ErrorClass::Network, service::sanitize(&format!("{e}")))
        }
        ErrorKind::Credential => err(
            key,
            ErrorClass::AccessDenied,
            service::sanitize(&format!("{e}")),
        ),
        _ => err(key, ErrorClass::Other, service::sanitize(&format!("{e}"))),
    }
}

async fn client_for(
    opts: &AzureKvOptions,
    state: &tokio::sync::Mutex<State>,
    vault_url: &str,
    key: &str,
) -> Result<Arc<KeyClient>, KeyError> {
    let mut st = state.lock().await;
    if let Some(c) = st.clients.get(vault_url) {
        return Ok(c.clone());
    }
    let cred = match &st.credential {
        Some(c) => c.clone(),
        None => {
            let c = credential(opts, key)?;
            st.credential = Some(c.clone());
            c
        }
    };
    let kc = KeyClient::new(
        vault_url,
        cred,
        Some(KeyClientOptions {
            client_options: client_options(opts, key)?,
            verify_challenge_resource: Some(!opts.skip_challenge_resource_check),
            ..Default::default()
        }),
    )
    .map_err(|e| KeyError::Config(format!("Azure Key Vault URL {vault_url:?}: {e}")))?;
    let kc = Arc::new(kc);
    st.clients.insert(vault_url.to_string(), kc.clone());
    Ok(kc)
}

fn key_id(vault_url: &str, name: &str, version: &str) -> String {
    format!("{}/keys/{name}/{version}", vault_url.trim_end_matches('/'))
}

impl KeySource for AzureKvSource {
    fn kind(&self) -> &'static str {
        "azure_kv"
    }

    fn wrap(&self, recipient: &Recipient, data_key: &[u8]) -> Result<Stanza, KeyError> {
        let Recipient::AzureKv {
            vault_url,
            name,
            version,
        } = recipient
        else {
            return Err(KeyError::NoIdentity);
        };
        let (opts, state) = (self.opts.clone(), self.state.clone());
        let (url, n, v) = (vault_url.clone(), name.clone(), version.clone());
        let plain = Zeroizing::new(data_key.to_vec());
        let (version, result) = service::block_on(async move {
            let id = key_id(&url, &n, &v);
            let client = client_for(&opts, &state, &url, &id).await?;
            // sops records the concrete version so key rotation keeps old files readable.
            let version = if v.is_empty() {
                let key = service::call(BACKEND, &id, false, || async {
                    client
                        .get_key(&n, None::<KeyClientGetKeyOptions>)
                        .await
                        .map_err(|e| classify(&id, e))?
                        .into_model()
                        .map_err(|e| classify(&id, e))
                })
                .await?;
                key.key
                    .and_then(|k| k.kid)
                    .and_then(|kid| kid.rsplit('/').next().map(str::to_string))
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| err(&id, ErrorClass::Other, "the key has no version (kid)"))?
            } else {
                v
            };
            let id = key_id(&url, &n, &version);
            let res = service::call(BACKEND, &id, false, || async {
                let params = KeyOperationParameters {
                    algorithm: Some(EncryptionAlgorithm::RsaOaep256),
                    value: Some(plain.to_vec()),
                    ..Default::default()
                };
                let body = params.try_into().map_err(|e| classify(&id, e))?;
                client
                    .encrypt(
                        &n,
                        body,
                        Some(KeyClientEncryptOptions {
                            key_version: Some(version.clone()),
                            ..Default::default()
                        }),
                    )
                    .await
                    .map_err(|e| classify(&id, e))?
                    .into_model()
                    .map_err(|e| classify(&id, e))
            })
            .await?;
            let out = res
                .result
                .ok_or_else(|| err(&id, ErrorClass::Other, "encrypt returned no result"))?;
            Ok::<_, KeyError>((version, out))
        })?;
        Ok(Stanza::AzureKv {
            vault_url: vault_url.clone(),
            name: name.clone(),
            version,
            created_at: service::now_rfc3339(),
            enc: URL_SAFE_NO_PAD.encode(result),
        })
    }

    fn unwrap(&self, stanza: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let Stanza::AzureKv {
            vault_url,
            name,
            version,
            enc,
            ..
        } = stanza
        else {
            return Err(KeyError::NoIdentity);
        };
        let id = key_id(vault_url, name, version);
        let trimmed = enc.trim();
        let ct = URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| URL_SAFE.decode(trimmed))
            .map_err(|_| err(&id, ErrorClass::InvalidCiphertext, "enc is not base64url"))?;
        let (opts, state) = (self.opts.clone(), self.state.clone());
        let (url, n, v) = (vault_url.clone(), name.clone(), version.clone());
        service::block_on(async move {
            let client = client_for(&opts, &state, &url, &id).await?;
            let res = service::call(BACKEND, &id, false, || async {
                let params = KeyOperationParameters {
                    algorithm: Some(EncryptionAlgorithm::RsaOaep256),
                    value: Some(ct.clone()),
                    ..Default::default()
                };
                let body = params.try_into().map_err(|e| classify(&id, e))?;
                client
                    .decrypt(&n, &v, body, None)
                    .await
                    .map_err(|e| classify(&id, e))?
                    .into_model()
                    .map_err(|e| classify(&id, e))
            })
            .await?;
            res.result
                .map(Zeroizing::new)
                .ok_or_else(|| err(&id, ErrorClass::Other, "decrypt returned no result"))
        })
    }
}
