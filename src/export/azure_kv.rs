//! Azure Key Vault secrets (`azure_security_keyvault_secrets` 1.x, the same
//! azure_core stack as the key backend). The credential chain, CA bundle and
//! challenge options are the key backend's ([`crate::keys::azure_kv`]):
//! workload identity, client secret, managed identity, developer tools.
//!
//! Secret names allow only `[0-9a-zA-Z-]`, at most 127: see [`secret_name`].
//! The value is the entry's JSON object (`contentType: application/json`),
//! ownership the `managed-by=ksec` tag. Each write is a new version; writes
//! happen only when the compared values differ.

use std::collections::HashMap;

use azure_security_keyvault_secrets::models::SetSecretParameters;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};

use super::{
    Backend, BackendError, ErrorClass, Item, MARKER_KEY, MARKER_VALUE, Remote, SOURCE_KEY,
};
use crate::keys::azure_kv::AzureKvOptions;

/// Maps a logical path to a Key Vault secret name: `/` becomes `--`, letters,
/// digits and `-` stay, any other character `c` becomes `-XX-` (its hex
/// byte(s)). `prod/web/registry.pull` → `prod--web--registry-2e-pull`.
/// The mapping is not injective for names holding `--` or `-XX-` themselves;
/// the plan refuses two Secrets that land on one name.
pub fn secret_name(path: &str) -> Result<String, String> {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            '/' => out.push_str("--"),
            c if c.is_ascii_alphanumeric() || c == '-' => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("-{b:02x}-"));
                }
            }
        }
    }
    if out.is_empty() || out.len() > 127 {
        return Err(format!(
            "Key Vault secret name {out:?} (from {path:?}) must be 1 to 127 characters; shorten --path-template"
        ));
    }
    Ok(out)
}

pub struct AzureKvStore {
    client: SecretClient,
    url: String,
}

impl AzureKvStore {
    pub fn connect(vault_url: &str, opts: &AzureKvOptions) -> Result<AzureKvStore, BackendError> {
        let cred = crate::keys::azure_kv::credential(opts, vault_url)?;
        let client = SecretClient::new(
            vault_url,
            cred,
            Some(SecretClientOptions {
                client_options: crate::keys::azure_kv::client_options(opts, vault_url)?,
                verify_challenge_resource: Some(!opts.skip_challenge_resource_check),
                ..Default::default()
            }),
        )
        .map_err(|e| {
            BackendError::new(
                ErrorClass::Invalid,
                format!("Azure Key Vault URL {vault_url:?}: {e}"),
            )
        })?;
        Ok(AzureKvStore {
            client,
            url: vault_url.trim_end_matches('/').to_string(),
        })
    }
}

fn classify(what: &str, id: &str, e: azure_core::Error) -> BackendError {
    let mut b: BackendError = crate::keys::azure_kv::classify(id, e).into();
    b.detail = format!("{what} {id}: {}", b.detail);
    b
}

fn is_not_found(e: &azure_core::Error) -> bool {
    matches!(
        e.kind(),
        azure_core::error::ErrorKind::HttpResponse { status, .. } if u16::from(*status) == 404
    )
}

impl Backend for AzureKvStore {
    fn location(&self, id: &str) -> String {
        format!("{}/secrets/{id}", self.url)
    }

    async fn read(&self, id: &str) -> Result<Option<Remote>, BackendError> {
        let resp = match self.client.get_secret(id, None).await {
            Ok(r) => r,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(classify("get", id, e)),
        };
        let s = resp.into_model().map_err(|e| classify("get", id, e))?;
        let owned = s
            .tags
            .as_ref()
            .and_then(|t| t.get(MARKER_KEY))
            .is_some_and(|v| v == MARKER_VALUE);
        let values = s.value.as_deref().and_then(super::Entry::parse_values);
        Ok(Some(Remote {
            owned,
            values,
            version: None,
        }))
    }

    async fn write(&self, item: &Item, _prev: Option<&Remote>) -> Result<(), BackendError> {
        let id = &item.id;
        let params = SetSecretParameters {
            value: Some(item.entry.to_json().to_string()),
            content_type: Some("application/json".into()),
            tags: Some(HashMap::from([
                (MARKER_KEY.to_string(), MARKER_VALUE.to_string()),
                (SOURCE_KEY.to_string(), item.secret()),
            ])),
            ..Default::default()
        };
        let body = params.try_into().map_err(|e| classify("set", id, e))?;
        self.client
            .set_secret(id, body, None)
            .await
            .map_err(|e| classify("set", id, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_the_key_vault_alphabet() {
        assert_eq!(
            secret_name("prod/web/registry.pull").unwrap(),
            "prod--web--registry-2e-pull"
        );
        assert_eq!(secret_name("a_b").unwrap(), "a-5f-b");
        assert!(secret_name(&"x".repeat(128)).is_err());
        assert!(
            secret_name("ksec/prod/ns/n")
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
    }
}
