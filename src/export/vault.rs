//! Vault / OpenBao KV v2 through `vaultrs`. The login (token, AppRole,
//! Kubernetes, ~/.vault-token) is the transit backend's, so one set of
//! `VAULT_*` variables serves both.
//!
//! Ownership lives in the entry's `custom_metadata` (`managed-by: ksec`).
//! A new entry gets its metadata first and then version 1 with `cas=0`, so an
//! interrupted run leaves an entry ksec still recognises as its own; an
//! update uses `cas=<version read>`, so a concurrent writer is never
//! silently overwritten (reported as a conflict).

use std::collections::HashMap;
use std::time::Duration;

use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::kv2;

use super::{
    Backend, BackendError, ErrorClass, Item, MARKER_KEY, MARKER_VALUE, Remote, SOURCE_KEY,
};
use crate::keys::vault::{VaultAuth, VaultOptions};

pub struct VaultStore {
    client: VaultClient,
    addr: String,
    mount: String,
}

impl VaultStore {
    /// Logs in (the key services' auth chain) and builds the KV client.
    pub async fn connect(
        addr: &str,
        mount: &str,
        auth: &VaultAuth,
        opts: &VaultOptions,
    ) -> Result<VaultStore, BackendError> {
        let token = crate::keys::vault::token_for(addr, auth, opts).await?;
        let mut s = VaultClientSettingsBuilder::default();
        s.address(addr)
            .token(token.as_str())
            .timeout(Some(Duration::from_secs(20)))
            .verify(!opts.skip_verify)
            .namespace(opts.namespace.clone());
        if let Some(ca) = &opts.ca_cert {
            s.ca_certs(vec![ca.display().to_string()]);
        } else {
            s.ca_certs(vec![]);
        }
        let settings = s
            .build()
            .map_err(|e| BackendError::new(ErrorClass::Invalid, format!("Vault client: {e}")))?;
        let client = VaultClient::new(settings)
            .map_err(|e| BackendError::new(ErrorClass::Invalid, format!("Vault client: {e}")))?;
        Ok(VaultStore {
            client,
            addr: addr.trim_end_matches('/').to_string(),
            mount: mount.to_string(),
        })
    }
}

/// vaultrs errors → class; Vault's own messages kept (they name paths, not values).
fn classify(what: &str, e: ClientError) -> BackendError {
    match e {
        ClientError::APIError { code, errors } => {
            let msg = errors.join("; ");
            let class = match code {
                401 | 403 => ErrorClass::AccessDenied,
                404 => ErrorClass::NotFound,
                429 => ErrorClass::Throttled,
                400 if msg.contains("check-and-set") => ErrorClass::Conflict,
                500..=599 => ErrorClass::Network,
                _ => ErrorClass::Other,
            };
            BackendError::new(class, format!("{what}: HTTP {code}: {msg}"))
        }
        ClientError::RestClientError { .. } | ClientError::RestClientBuildError { .. } => {
            BackendError::new(ErrorClass::Network, format!("{what}: {e}"))
        }
        other => BackendError::new(ErrorClass::Other, format!("{what}: {other}")),
    }
}

impl VaultStore {
    fn marker(item: &Item) -> HashMap<String, String> {
        HashMap::from([
            (MARKER_KEY.to_string(), MARKER_VALUE.to_string()),
            (SOURCE_KEY.to_string(), item.secret()),
        ])
    }

    async fn set_marker(&self, item: &Item) -> Result<(), BackendError> {
        let mut b = SetSecretMetadataRequest::builder();
        b.custom_metadata(Self::marker(item));
        kv2::set_metadata(&self.client, &self.mount, &item.id, Some(&mut b))
            .await
            .map_err(|e| classify("write metadata", e))
    }
}

impl Backend for VaultStore {
    fn location(&self, id: &str) -> String {
        format!("{}/v1/{}/data/{id}", self.addr, self.mount)
    }

    async fn read(&self, id: &str) -> Result<Option<Remote>, BackendError> {
        let meta = match kv2::read_metadata(&self.client, &self.mount, id).await {
            Ok(m) => m,
            Err(ClientError::APIError { code: 404, .. }) => return Ok(None),
            Err(e) => return Err(classify("read metadata", e)),
        };
        let owned = meta
            .custom_metadata
            .as_ref()
            .and_then(|m| m.get(MARKER_KEY))
            .is_some_and(|v| v == MARKER_VALUE);
        let version = meta.current_version;
        let current_live = meta
            .versions
            .get(&version.to_string())
            .is_some_and(|v| !v.destroyed && v.deletion_time.is_empty());
        let values = if version == 0 || !current_live {
            None
        } else {
            match kv2::read_version::<serde_json::Value>(&self.client, &self.mount, id, version)
                .await
            {
                Ok(v) => super::values_of(&v),
                Err(ClientError::APIError { code: 404, .. }) => None,
                Err(e) => return Err(classify("read", e)),
            }
        };
        Ok(Some(Remote {
            owned,
            values,
            version: Some(version),
        }))
    }

    async fn write(&self, item: &Item, prev: Option<&Remote>) -> Result<(), BackendError> {
        let owned = prev.is_some_and(|r| r.owned);
        if !owned {
            // Claim first: a run cut off after this still recognises the entry.
            self.set_marker(item).await?;
        }
        let cas = prev.and_then(|r| r.version).unwrap_or(0);
        let cas = u32::try_from(cas)
            .map_err(|_| BackendError::new(ErrorClass::Other, "version out of range for CAS"))?;
        kv2::set_with_options(
            &self.client,
            &self.mount,
            &item.id,
            &item.entry.values,
            SetSecretRequestOptions { cas },
        )
        .await
        .map_err(|e| classify("write", e))?;
        Ok(())
    }
}
