//! AWS KMS recipients (the `kms` stanza): `enc` is the std-base64
//! CiphertextBlob of KMS `Encrypt` over the raw data key, with the stanza's
//! encryption context, in the region named by the ARN.
//!
//! Credentials come from aws-config's standard chain (env, profiles, SSO,
//! web identity / IRSA, ECS and EC2 metadata); `role` is assumed through STS
//! on top of that, and `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_KMS` are honoured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use indexmap::IndexMap;
use zeroize::Zeroizing;

use super::service;
use super::{ErrorClass, KeyError, KeySource, Recipient};
use crate::sops::Stanza;

const BACKEND: &str = "aws kms";

/// Test and embedding overrides; everything unset means the standard chain.
#[derive(Clone, Default)]
pub struct AwsKmsOptions {
    /// Endpoint for KMS and STS (normally from `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Static credentials instead of the chain (tests against moto).
    pub static_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for AwsKmsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsOptions")
            .field("endpoint_url", &self.endpoint_url)
            .field("static_credentials", &self.static_credentials.is_some())
            .finish()
    }
}

/// One KMS client per (region, profile, role).
type Clients = tokio::sync::Mutex<HashMap<(String, String, String), aws_sdk_kms::Client>>;

/// Clients are built on first use per (region, profile, role), so a file
/// without KMS recipients never loads AWS configuration.
pub struct AwsKmsSource {
    opts: AwsKmsOptions,
    clients: Arc<Clients>,
}

impl Default for AwsKmsSource {
    fn default() -> Self {
        AwsKmsSource::new(AwsKmsOptions::default())
    }
}

impl AwsKmsSource {
    pub fn new(opts: AwsKmsOptions) -> AwsKmsSource {
        AwsKmsSource {
            opts,
            clients: Arc::default(),
        }
    }
}

/// `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` → REGION (sops takes the region from the ARN).
pub fn region_from_arn(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    if parts.next()? != "arn" {
        return None;
    }
    let _partition = parts.next()?;
    if parts.next()? != "kms" {
        return None;
    }
    Some(parts.next()?.to_string()).filter(|r| !r.is_empty())
}

/// STS role session names allow `[\w+=,.@-]{2,64}`.
fn session_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let clean: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(*c))
        .collect();
    let mut s = format!("ksec@{clean}");
    s.truncate(64);
    s
}

async fn client_for(
    opts: &AwsKmsOptions,
    cache: &Clients,
    arn: &str,
    profile: &str,
    role: &str,
) -> aws_sdk_kms::Client {
    let region = region_from_arn(arn).unwrap_or_default();
    let k = (region.clone(), profile.to_string(), role.to_string());
    let mut map = cache.lock().await;
    if let Some(c) = map.get(&k) {
        return c.clone();
    }
    let client = aws_sdk_kms::Client::new(&sdk_config(opts, &region, profile, role).await);
    map.insert(k, client.clone());
    client
}

/// The AWS configuration every ksec AWS client uses (KMS, and Secrets
/// Manager for `ksec export`): the standard chain (incl. IRSA web identity),
/// an optional profile, `role` assumed through STS on top, bounded retries
/// and timeouts, and `AWS_ENDPOINT_URL` / the test overrides.
pub(crate) async fn sdk_config(
    opts: &AwsKmsOptions,
    region: &str,
    profile: &str,
    role: &str,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(service::MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(200)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(50))
                .build(),
        );
    if !region.is_empty() {
        loader = loader.region(Region::new(region.to_string()));
    }
    if !profile.is_empty() {
        loader = loader.profile_name(profile);
    }
    if let Some(u) = &opts.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    if let Some((id, secret)) = &opts.static_credentials {
        loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
            id,
            secret,
            None,
            None,
            "ksec-static",
        ));
    }
    let base = loader.load().await;
    if role.is_empty() {
        return base;
    }
    let mut b = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name(session_name())
        .configure(&base);
    if !region.is_empty() {
        b = b.region(Region::new(region.to_string()));
    }
    let provider = b.build().await;
    base.to_builder()
        .credentials_provider(aws_sdk_kms::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build()
}

/// Maps the SDK's error to the service's own class, naming the KMS error code.
pub(crate) fn classify<E>(key: &str, err: SdkError<E>) -> KeyError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (class, detail) = match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("Unknown");
            let class = match code {
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "IncompleteSignature"
                | "MissingAuthenticationToken" => ErrorClass::AccessDenied,
                "DisabledException" | "KMSInvalidStateException" | "KeyUnavailableException" => {
                    ErrorClass::KeyDisabled
                }
                "NotFoundException" => ErrorClass::NotFound,
                "ThrottlingException" | "LimitExceededException" | "TooManyRequestsException" => {
                    ErrorClass::Throttled
                }
                "InvalidCiphertextException" | "IncorrectKeyException" => {
                    ErrorClass::InvalidCiphertext
                }
                "DependencyTimeoutException" => ErrorClass::Network,
                _ => ErrorClass::Other,
            };
            let msg = e.message().unwrap_or("");
            (class, service::sanitize(&format!("{code}: {msg}")))
        }
        SdkError::TimeoutError(_) => (ErrorClass::Network, "request timed out".to_string()),
        SdkError::DispatchFailure(d) => {
            let class = if d.is_io() || d.is_timeout() {
                ErrorClass::Network
            } else {
                ErrorClass::Other
            };
            (
                class,
                service::sanitize(&DisplayErrorContext(&err).to_string()),
            )
        }
        _ => (
            ErrorClass::Other,
            service::sanitize(&DisplayErrorContext(&err).to_string()),
        ),
    };
    // No credentials at all reads better as access denied than as "other".
    let class = if class == ErrorClass::Other
        && (detail.contains("credentials") || detail.contains("Credentials"))
    {
        ErrorClass::AccessDenied
    } else {
        class
    };
    KeyError::Backend {
        backend: BACKEND,
        key: key.to_string(),
        class,
        detail,
    }
}

fn context_map(ctx: &IndexMap<String, String>) -> Option<HashMap<String, String>> {
    (!ctx.is_empty()).then(|| ctx.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

impl KeySource for AwsKmsSource {
    fn kind(&self) -> &'static str {
        "kms"
    }

    fn wrap(&self, recipient: &Recipient, data_key: &[u8]) -> Result<Stanza, KeyError> {
        let Recipient::Kms {
            arn,
            role,
            context,
            aws_profile,
        } = recipient
        else {
            return Err(KeyError::NoIdentity);
        };
        let (opts, cache) = (self.opts.clone(), self.clients.clone());
        let (a, r, p, ctx) = (
            arn.clone(),
            role.clone(),
            aws_profile.clone(),
            context_map(context),
        );
        let plain = Zeroizing::new(data_key.to_vec());
        let blob = service::block_on(async move {
            let client = client_for(&opts, &cache, &a, &p, &r).await;
            service::call(BACKEND, &a, false, || {
                let req = client
                    .encrypt()
                    .key_id(&a)
                    .plaintext(Blob::new(plain.to_vec()))
                    .set_encryption_context(ctx.clone());
                let key = a.clone();
                async move {
                    let out = req.send().await.map_err(|e| classify(&key, e))?;
                    out.ciphertext_blob
                        .map(|b| b.into_inner())
                        .ok_or_else(|| KeyError::Backend {
                            backend: BACKEND,
                            key: key.clone(),
                            class: ErrorClass::Other,
                            detail: "Encrypt returned no CiphertextBlob".into(),
                        })
                }
            })
            .await
        })?;
        Ok(Stanza::Kms {
            arn: arn.clone(),
            role: role.clone(),
            context: context.clone(),
            created_at: service::now_rfc3339(),
            enc: STANDARD.encode(blob),
            aws_profile: aws_profile.clone(),
        })
    }

    fn unwrap(&self, stanza: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let Stanza::Kms {
            arn,
            role,
            context,
            enc,
            aws_profile,
            ..
        } = stanza
        else {
            return Err(KeyError::NoIdentity);
        };
        let blob = STANDARD.decode(enc.trim()).map_err(|_| KeyError::Backend {
            backend: BACKEND,
            key: arn.clone(),
            class: ErrorClass::InvalidCiphertext,
            detail: "enc is not standard base64".into(),
        })?;
        let (opts, cache) = (self.opts.clone(), self.clients.clone());
        let (a, r, p, ctx) = (
            arn.clone(),
            role.clone(),
            aws_profile.clone(),
            context_map(context),
        );
        service::block_on(async move {
            let client = client_for(&opts, &cache, &a, &p, &r).await;
            service::call(BACKEND, &a, false, || {
                // KeyId pins the key: a blob of another key is refused, not silently used.
                let req = client
                    .decrypt()
                    .key_id(&a)
                    .ciphertext_blob(Blob::new(blob.clone()))
                    .set_encryption_context(ctx.clone());
                let key = a.clone();
                async move {
                    let out = req.send().await.map_err(|e| classify(&key, e))?;
                    out.plaintext
                        .map(|b| Zeroizing::new(b.into_inner()))
                        .ok_or_else(|| KeyError::Backend {
                            backend: BACKEND,
                            key: key.clone(),
                            class: ErrorClass::Other,
                            detail: "Decrypt returned no Plaintext".into(),
                        })
                }
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_arn() {
        assert_eq!(
            region_from_arn("arn:aws:kms:eu-west-1:123456789012:key/abc").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            region_from_arn("arn:aws-us-gov:kms:us-gov-west-1:1:alias/x").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(region_from_arn("alias/foo"), None);
        assert_eq!(region_from_arn("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn session_name_is_valid_for_sts() {
        let s = session_name();
        assert!(s.starts_with("ksec@") && s.len() <= 64);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        );
    }
}
