//! Google credentials for GCP KMS (and `ksec export --to gcp-sm://`), resolved
//! as sops and Google's client libraries do, hand-written over the reqwest
//! client ksec already has (see docs/kms.md for why no Google crate is used).
//!
//! Order (first match wins):
//! 1. `GOOGLE_CREDENTIALS`: a credentials file path or the JSON itself (sops);
//! 2. `GOOGLE_OAUTH_ACCESS_TOKEN`: a ready access token (sops);
//! 3. `GOOGLE_APPLICATION_CREDENTIALS`: a credentials file (Application Default Credentials);
//! 4. gcloud's `application_default_credentials.json` under `CLOUDSDK_CONFIG`
//!    (default `~/.config/gcloud`), written by `gcloud auth application-default login`;
//! 5. the GCE/GKE metadata server (Workload Identity), at `GCE_METADATA_HOST`
//!    (default `metadata.google.internal`), plain HTTP as on Google's hosts.
//!
//! Credentials files: `service_account` (a JWT signed with the key, RS256,
//! exchanged at its `token_uri`), `authorized_user` (refresh token), and
//! `external_account` with a file- or URL-sourced subject token (workload
//! identity federation: STS exchange, then service-account impersonation if
//! configured). Tokens are cached until a minute before they expire.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value as J;
use zeroize::Zeroizing;

use super::ErrorClass;

/// OAuth scope for every call ksec makes (KMS and Secret Manager).
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const DEFAULT_STS_URI: &str = "https://sts.googleapis.com/v1/token";

/// Where a credential failed: the class and a message that never holds a token.
#[derive(Debug)]
pub(crate) struct AuthError {
    pub class: ErrorClass,
    pub detail: String,
}

fn auth_err(class: ErrorClass, detail: impl Into<String>) -> AuthError {
    AuthError {
        class,
        detail: detail.into(),
    }
}

/// A resolved credential; [`Credential::source`] names it in errors.
pub(crate) enum Credential {
    Static(Zeroizing<String>),
    ServiceAccount {
        email: String,
        key_id: String,
        pkcs8: Zeroizing<Vec<u8>>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Zeroizing<String>,
        refresh_token: Zeroizing<String>,
        token_uri: String,
    },
    ExternalAccount {
        audience: String,
        subject_token_type: String,
        token_url: String,
        source: SubjectSource,
        impersonation_url: Option<String>,
    },
    Metadata {
        host: String,
    },
}

pub(crate) enum SubjectSource {
    File(PathBuf),
    Url(String),
}

impl Credential {
    /// Which credential is in use, for error messages (no secret parts).
    pub fn source(&self) -> String {
        match self {
            Credential::Static(_) => "GOOGLE_OAUTH_ACCESS_TOKEN".into(),
            Credential::ServiceAccount { email, .. } => format!("service account {email}"),
            Credential::AuthorizedUser { .. } => "gcloud user credentials".into(),
            Credential::ExternalAccount { .. } => "workload identity federation".into(),
            Credential::Metadata { host } => format!("metadata server {host}"),
        }
    }
}

fn var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

/// Resolves the credential from the environment (order in the module docs).
pub(crate) fn from_env() -> Result<Credential, AuthError> {
    if let Some(c) = var("GOOGLE_CREDENTIALS") {
        let json = if Path::new(&c).is_file() {
            read_file(Path::new(&c), "GOOGLE_CREDENTIALS")?
        } else {
            Zeroizing::new(c)
        };
        return parse_json(&json, "GOOGLE_CREDENTIALS");
    }
    if let Some(t) = var("GOOGLE_OAUTH_ACCESS_TOKEN") {
        return Ok(Credential::Static(Zeroizing::new(t.trim().to_string())));
    }
    if let Some(p) = var("GOOGLE_APPLICATION_CREDENTIALS") {
        let json = read_file(Path::new(&p), "GOOGLE_APPLICATION_CREDENTIALS")?;
        return parse_json(&json, &p);
    }
    let gcloud = var("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| Path::new(&h).join(".config/gcloud")));
    if let Some(f) = gcloud
        .map(|d| d.join("application_default_credentials.json"))
        .filter(|f| f.is_file())
    {
        let json = read_file(&f, "gcloud application default credentials")?;
        return parse_json(&json, &f.display().to_string());
    }
    Ok(Credential::Metadata {
        host: var("GCE_METADATA_HOST")
            .or_else(|| var("GCE_METADATA_IP"))
            .unwrap_or_else(|| "metadata.google.internal".into()),
    })
}

fn read_file(p: &Path, what: &str) -> Result<Zeroizing<String>, AuthError> {
    std::fs::read_to_string(p).map(Zeroizing::new).map_err(|e| {
        auth_err(
            ErrorClass::AccessDenied,
            format!("{what}: cannot read {}: {}", p.display(), e.kind()),
        )
    })
}

/// Parses a credentials JSON document; `origin` names it in errors.
pub(crate) fn parse_json(json: &str, origin: &str) -> Result<Credential, AuthError> {
    let bad = |why: &str| {
        auth_err(
            ErrorClass::AccessDenied,
            format!("Google credentials from {origin}: {why}"),
        )
    };
    let v: J = serde_json::from_str(json).map_err(|_| bad("not a JSON credentials document"))?;
    let s = |k: &str| v[k].as_str().map(str::to_string);
    match v["type"].as_str() {
        Some("service_account") => {
            let pem = s("private_key").ok_or_else(|| bad("no private_key"))?;
            let pkcs8 = pem_to_der(&pem).ok_or_else(|| bad("private_key is not a PEM key"))?;
            Ok(Credential::ServiceAccount {
                email: s("client_email").ok_or_else(|| bad("no client_email"))?,
                key_id: s("private_key_id").unwrap_or_default(),
                pkcs8,
                token_uri: s("token_uri").unwrap_or_else(|| DEFAULT_TOKEN_URI.into()),
            })
        }
        Some("authorized_user") => Ok(Credential::AuthorizedUser {
            client_id: s("client_id").ok_or_else(|| bad("no client_id"))?,
            client_secret: Zeroizing::new(s("client_secret").unwrap_or_default()),
            refresh_token: Zeroizing::new(
                s("refresh_token").ok_or_else(|| bad("no refresh_token"))?,
            ),
            token_uri: s("token_uri").unwrap_or_else(|| DEFAULT_TOKEN_URI.into()),
        }),
        Some("external_account") => {
            let cs = &v["credential_source"];
            let source = if cs.get("environment_id").is_some() || cs.get("executable").is_some() {
                return Err(bad(
                    "only file- and URL-sourced external accounts are supported (no executable or AWS sources)",
                ));
            } else if let Some(f) = cs["file"].as_str() {
                SubjectSource::File(PathBuf::from(f))
            } else if let Some(u) = cs["url"].as_str() {
                SubjectSource::Url(u.to_string())
            } else {
                return Err(bad(
                    "only file- and URL-sourced external accounts are supported (no executable or AWS sources)",
                ));
            };
            if cs["format"]["type"].as_str().is_some_and(|t| t != "text") {
                return Err(bad("only text subject tokens are supported"));
            }
            Ok(Credential::ExternalAccount {
                audience: s("audience").ok_or_else(|| bad("no audience"))?,
                subject_token_type: s("subject_token_type")
                    .unwrap_or_else(|| "urn:ietf:params:oauth:token-type:jwt".into()),
                token_url: s("token_url").unwrap_or_else(|| DEFAULT_STS_URI.into()),
                source,
                impersonation_url: s("service_account_impersonation_url"),
            })
        }
        Some(t) => Err(bad(&format!("credential type {t:?} is not supported"))),
        None => Err(bad("no \"type\" field")),
    }
}

/// The DER body of a PEM block (`-----BEGIN PRIVATE KEY-----`, PKCS#8).
fn pem_to_der(pem: &str) -> Option<Zeroizing<Vec<u8>>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.is_empty())
        .collect();
    STANDARD.decode(body).ok().map(Zeroizing::new)
}

/// An access token and when to stop using it.
pub(crate) struct Token {
    pub value: Zeroizing<String>,
    pub fresh_until: Option<Instant>,
}

impl Token {
    pub fn is_fresh(&self) -> bool {
        self.fresh_until.is_none_or(|t| Instant::now() < t)
    }
}

/// Fetches a new access token for `cred`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    cred: &Credential,
) -> Result<Token, AuthError> {
    match cred {
        Credential::Static(t) => Ok(Token {
            value: t.clone(),
            fresh_until: None,
        }),
        Credential::ServiceAccount {
            email,
            key_id,
            pkcs8,
            token_uri,
        } => {
            let jwt = sign_jwt(email, key_id, pkcs8, token_uri)?;
            let pairs = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", jwt.as_str()),
            ];
            token_post(form(http.post(token_uri), &pairs), "token endpoint").await
        }
        Credential::AuthorizedUser {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
        } => {
            let pairs = [
                ("grant_type", "refresh_token"),
                ("client_id", client_id.as_str()),
                ("client_secret", client_secret.as_str()),
                ("refresh_token", refresh_token.as_str()),
            ];
            token_post(form(http.post(token_uri), &pairs), "token endpoint").await
        }
        Credential::ExternalAccount {
            audience,
            subject_token_type,
            token_url,
            source,
            impersonation_url,
        } => {
            let subject = subject_token(http, source).await?;
            let pairs = [
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("audience", audience.as_str()),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("scope", SCOPE),
                ("subject_token_type", subject_token_type.as_str()),
                ("subject_token", subject.as_str()),
            ];
            let sts = token_post(form(http.post(token_url), &pairs), "STS endpoint").await?;
            let Some(url) = impersonation_url else {
                return Ok(sts);
            };
            let r = http
                .post(url)
                .bearer_auth(sts.value.as_str())
                .json(&serde_json::json!({"scope": [SCOPE]}))
                .send()
                .await
                .map_err(|e| net("service-account impersonation", &e))?;
            let (status, body) = read_json(r, "service-account impersonation").await?;
            if !status.is_success() {
                return Err(http_err("service-account impersonation", status, &body));
            }
            let t = body["accessToken"].as_str().ok_or_else(|| {
                auth_err(ErrorClass::Other, "impersonation answer has no accessToken")
            })?;
            let fresh_until = body["expireTime"]
                .as_str()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .and_then(|t| {
                    (t.with_timezone(&chrono::Utc) - chrono::Utc::now())
                        .to_std()
                        .ok()
                })
                .map(|d| Instant::now() + d.saturating_sub(Duration::from_secs(60)));
            Ok(Token {
                value: Zeroizing::new(t.to_string()),
                fresh_until,
            })
        }
        Credential::Metadata { host } => {
            let url =
                format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
            let req = http
                .get(url)
                .header("Metadata-Flavor", "Google")
                .timeout(Duration::from_secs(5));
            token_post(req, "metadata server").await.map_err(|mut e| {
                if e.class == ErrorClass::Network {
                    e.detail.push_str(
                        " (no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth application-default login`, or run on GCE/GKE with Workload Identity)",
                    );
                }
                e
            })
        }
    }
}

async fn subject_token(
    http: &reqwest::Client,
    src: &SubjectSource,
) -> Result<Zeroizing<String>, AuthError> {
    match src {
        SubjectSource::File(p) => {
            read_file(p, "external account subject token").map(|s| Zeroizing::new(s.trim().into()))
        }
        SubjectSource::Url(u) => {
            let r = http
                .get(u)
                .send()
                .await
                .map_err(|e| net("subject token URL", &e))?;
            if !r.status().is_success() {
                return Err(auth_err(
                    ErrorClass::AccessDenied,
                    format!("subject token URL: HTTP {}", r.status().as_u16()),
                ));
            }
            let t = r.text().await.map_err(|e| net("subject token URL", &e))?;
            Ok(Zeroizing::new(t.trim().to_string()))
        }
    }
}

/// RS256 JWT for the OAuth 2.0 JWT-bearer grant (RFC 7523), valid one hour.
fn sign_jwt(email: &str, key_id: &str, pkcs8: &[u8], aud: &str) -> Result<String, AuthError> {
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
    let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| {
        auth_err(
            ErrorClass::AccessDenied,
            format!("service account {email}: private_key is not a PKCS#8 RSA key"),
        )
    })?;
    let now = chrono::Utc::now().timestamp();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key_id});
    let claims = serde_json::json!({
        "iss": email, "scope": SCOPE, "aud": aud, "iat": now, "exp": now + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| auth_err(ErrorClass::Other, "cannot sign the token request"))?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// An `application/x-www-form-urlencoded` body (reqwest's `form` feature is off).
fn form(req: reqwest::RequestBuilder, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    req.header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

fn net(what: &str, e: &reqwest::Error) -> AuthError {
    // reqwest errors carry the URL, never headers or bodies.
    auth_err(
        ErrorClass::Network,
        format!(
            "{what}: {}",
            super::service::sanitize(&error_chain(e as &dyn std::error::Error))
        ),
    )
}

/// An error and its causes on one line (reqwest's own Display hides the cause).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn read_json(
    r: reqwest::Response,
    what: &str,
) -> Result<(reqwest::StatusCode, J), AuthError> {
    let status = r.status();
    let bytes = r.bytes().await.map_err(|e| net(what, &e))?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(J::Null)))
}

fn http_err(what: &str, status: reqwest::StatusCode, body: &J) -> AuthError {
    let code = status.as_u16();
    let class = match code {
        400 | 401 | 403 => ErrorClass::AccessDenied,
        404 => ErrorClass::NotFound,
        429 => ErrorClass::Throttled,
        500..=599 => ErrorClass::Network,
        _ => ErrorClass::Other,
    };
    // OAuth errors: {"error": "invalid_grant", "error_description": "..."}; Google APIs: {"error": {...}}.
    let msg = match &body["error"] {
        J::String(s) => format!("{s}: {}", body["error_description"].as_str().unwrap_or("")),
        J::Object(o) => o
            .get("message")
            .and_then(J::as_str)
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    };
    auth_err(
        class,
        format!(
            "{what}: HTTP {code} {}",
            super::service::sanitize(msg.trim_end_matches(": "))
        ),
    )
}

async fn token_post(req: reqwest::RequestBuilder, what: &str) -> Result<Token, AuthError> {
    let r = req.send().await.map_err(|e| net(what, &e))?;
    let (status, body) = read_json(r, what).await?;
    if !status.is_success() {
        return Err(http_err(what, status, &body));
    }
    let t = body["access_token"]
        .as_str()
        .ok_or_else(|| auth_err(ErrorClass::Other, format!("{what}: no access_token")))?;
    let fresh_until = body["expires_in"]
        .as_u64()
        .map(|s| Instant::now() + Duration::from_secs(s.saturating_sub(60)));
    Ok(Token {
        value: Zeroizing::new(t.to_string()),
        fresh_until,
    })
}

/// One credential and its cached token, shared by every call of a source.
pub(crate) struct TokenCache {
    cred: Option<Credential>,
    token: Option<Token>,
}

impl TokenCache {
    pub fn new(cred: Option<Credential>) -> TokenCache {
        TokenCache { cred, token: None }
    }

    /// A fresh token, resolving the credential on first use.
    pub async fn get(&mut self, http: &reqwest::Client) -> Result<Zeroizing<String>, AuthError> {
        if let Some(t) = self.token.as_ref().filter(|t| t.is_fresh()) {
            return Ok(t.value.clone());
        }
        if self.cred.is_none() {
            self.cred = Some(from_env()?);
        }
        let cred = self.cred.as_ref().expect("set above");
        let t = fetch_token(http, cred).await.map_err(|mut e| {
            e.detail = format!("Google credential ({}): {}", cred.source(), e.detail);
            e
        })?;
        let v = t.value.clone();
        self.token = Some(t);
        Ok(v)
    }

    /// Drops the cached token (the service said it expired).
    pub fn invalidate(&mut self) {
        self.token = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_credential_kinds() {
        let e = parse_json(r#"{"type":"service_account","client_email":"a@b"}"#, "x")
            .err()
            .unwrap();
        assert!(e.detail.contains("no private_key"), "{}", e.detail);
        let c = parse_json(
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#,
            "x",
        )
        .unwrap();
        assert!(
            matches!(c, Credential::AuthorizedUser { ref token_uri, .. } if token_uri == DEFAULT_TOKEN_URI)
        );
        let c = parse_json(
            r#"{"type":"external_account","audience":"//iam/x","credential_source":{"file":"/t"}}"#,
            "x",
        )
        .unwrap();
        assert!(matches!(c, Credential::ExternalAccount { .. }));
        // An AWS source also has a `url` (the metadata endpoint): refused, not misread.
        let e = parse_json(
            r#"{"type":"external_account","audience":"a","credential_source":{"environment_id":"aws1","url":"http://169.254.169.254/x"}}"#,
            "x",
        )
        .err()
        .unwrap();
        assert!(e.detail.contains("no executable or AWS"), "{}", e.detail);
        let e = parse_json("not json secret-ish", "GOOGLE_CREDENTIALS")
            .err()
            .unwrap();
        assert!(!e.detail.contains("secret-ish"), "{}", e.detail);
    }
}
