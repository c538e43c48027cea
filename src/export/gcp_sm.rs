//! Google Secret Manager (`gcp-sm://PROJECT[/PREFIX]`): thin REST calls over
//! the GCP KMS backend's session (same credential chain, CA bundle and token
//! cache, [`crate::keys::gcp_kms`]). The endpoint is `KSEC_GCP_SM_ENDPOINT`,
//! else `https://secretmanager.googleapis.com`.
//!
//! One secret per Secret, id from [`secret_id`]; the value is the entry's JSON
//! object as the latest version (sent with its CRC32C so the service rejects a
//! corrupted payload); ownership the `managed-by=ksec` label, the source
//! Secret in the `ksec-secret` label. Each write is a new version, made only
//! when the compared values differ.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value as J, json};

use super::{
    Backend, BackendError, ErrorClass, Item, MARKER_KEY, MARKER_VALUE, Remote, SOURCE_KEY,
};
use crate::keys::gcp_kms::{Session, classify_status, send_json, session};

const DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";

/// Maps a logical path to a Secret Manager secret id (`[A-Za-z0-9_-]`, at
/// most 255): `/` becomes `--`, letters, digits, `_` and `-` stay, any other
/// character becomes `_XX_` (its hex UTF-8 bytes).
/// `prod/web/registry.pull` → `prod--web--registry_2e_pull`. Not injective
/// for paths holding `--` or `_XX_` themselves: the plan refuses two Secrets
/// that land on one id, before anything is written.
pub fn secret_id(path: &str) -> Result<String, String> {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            '/' => out.push_str("--"),
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("_{b:02x}_"));
                }
            }
        }
    }
    if out.is_empty() || out.len() > 255 {
        return Err(format!(
            "Secret Manager secret id {out:?} (from {path:?}) must be 1 to 255 characters; shorten --path-template"
        ));
    }
    Ok(out)
}

/// A label value: lowercase letters, digits, `_` and `-`, at most 63
/// (`prod/registry.pull` → `prod_registry_pull`); for humans, not lookups.
pub fn label_value(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_ascii_lowercase() {
            c if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' => c,
            _ => '_',
        })
        .take(63)
        .collect()
}

/// CRC32C (Castagnoli) of the payload, as Secret Manager checks it.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82F6_3B78 & (!(crc & 1)).wrapping_add(1));
        }
    }
    !crc
}

pub struct GcpSmStore {
    s: Session,
    base: String,
    project: String,
}

impl GcpSmStore {
    pub fn connect(project: &str) -> Result<GcpSmStore, BackendError> {
        let endpoint = std::env::var("KSEC_GCP_SM_ENDPOINT")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        Ok(GcpSmStore {
            s: session(None, None)?,
            base: format!("{}/v1", endpoint.trim_end_matches('/')),
            project: project.to_string(),
        })
    }

    fn name(&self, id: &str) -> String {
        format!("projects/{}/secrets/{id}", self.project)
    }

    /// One call; `Ok(None)` for 404, other failures classified with `what id`.
    async fn call(
        &self,
        what: &str,
        id: &str,
        method: Method,
        url: String,
        body: Option<J>,
    ) -> Result<Option<J>, BackendError> {
        let fail = |class, detail: String| -> BackendError {
            let mut b: BackendError = crate::keys::KeyError::Backend {
                backend: "gcp secret manager",
                key: id.to_string(),
                class,
                detail,
            }
            .into();
            b.detail = format!("{what} {id}: {}", b.detail);
            b
        };
        // Throttling and 5xx/network failures are retried with backoff; a
        // repeated addVersion at worst adds an equal version.
        let mut n = 0;
        let answer = loop {
            n += 1;
            let r = send_json(&self.s, method.clone(), &url, body.as_ref()).await;
            let transient = match &r {
                Ok((status, _)) => *status == 429 || *status >= 500,
                Err((class, _)) => *class == crate::keys::ErrorClass::Network,
            };
            if !transient || n >= crate::keys::service::MAX_ATTEMPTS {
                break r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200 << (n - 1))).await;
        };
        match answer {
            Ok((status, v)) if (200..300).contains(&status) => Ok(Some(v)),
            Ok((404, _)) => Ok(None),
            Ok((409, v)) => Err(BackendError::new(
                ErrorClass::Conflict,
                format!(
                    "{what} {id}: created by someone else meanwhile: {}",
                    v["error"]["message"].as_str().unwrap_or("")
                ),
            )),
            Ok((status, v)) => {
                let (class, detail) = classify_status(status, &v, false);
                Err(fail(class, detail))
            }
            Err((class, detail)) => Err(fail(class, detail)),
        }
    }

    fn labels(item: &Item, existing: Option<&J>) -> J {
        let mut m: serde_json::Map<String, J> =
            existing.and_then(J::as_object).cloned().unwrap_or_default();
        m.insert(MARKER_KEY.into(), json!(MARKER_VALUE));
        m.insert(SOURCE_KEY.into(), json!(label_value(&item.secret())));
        J::Object(m)
    }
}

impl Backend for GcpSmStore {
    fn location(&self, id: &str) -> String {
        self.name(id)
    }

    async fn read(&self, id: &str) -> Result<Option<Remote>, BackendError> {
        let url = format!("{}/{}", self.base, self.name(id));
        let Some(meta) = self.call("get", id, Method::GET, url, None).await? else {
            return Ok(None);
        };
        let owned = meta["labels"][MARKER_KEY].as_str() == Some(MARKER_VALUE);
        let url = format!("{}/{}/versions/latest:access", self.base, self.name(id));
        let values = self
            .call("access", id, Method::GET, url, None)
            .await?
            .and_then(|v| {
                let data = STANDARD.decode(v["payload"]["data"].as_str()?).ok()?;
                let data = zeroize::Zeroizing::new(data);
                let crc_ok = v["payload"]["dataCrc32c"]
                    .as_str()
                    .and_then(|c| c.parse::<u32>().ok())
                    .is_none_or(|c| c == crc32c(&data));
                if !crc_ok {
                    return None;
                }
                let text = std::str::from_utf8(&data).ok()?;
                super::Entry::parse_values(text)
            });
        Ok(Some(Remote {
            owned,
            values,
            version: None,
        }))
    }

    async fn write(&self, item: &Item, prev: Option<&Remote>) -> Result<(), BackendError> {
        let id = &item.id;
        let name = self.name(id);
        if prev.is_none() {
            let url = format!(
                "{}/projects/{}/secrets?secretId={id}",
                self.base, self.project
            );
            let body =
                json!({"replication": {"automatic": {}}, "labels": Self::labels(item, None)});
            self.call("create", id, Method::POST, url, Some(body))
                .await?;
        } else if !prev.is_some_and(|p| p.owned) {
            // --force: claim it, keeping the owner's other labels.
            let url = format!("{}/{name}", self.base);
            let cur = self.call("get", id, Method::GET, url.clone(), None).await?;
            let labels = Self::labels(item, cur.as_ref().map(|c| &c["labels"]));
            let url = format!("{url}?updateMask=labels");
            self.call(
                "label",
                id,
                Method::PATCH,
                url,
                Some(json!({"labels": labels})),
            )
            .await?;
        }
        let payload = item.entry.to_json();
        let body = json!({"payload": {
            "data": STANDARD.encode(payload.as_bytes()),
            "dataCrc32c": crc32c(payload.as_bytes()).to_string(),
        }});
        let url = format!("{}/{name}:addVersion", self.base);
        self.call("add version", id, Method::POST, url, Some(body))
            .await?
            .ok_or_else(|| {
                BackendError::new(
                    ErrorClass::NotFound,
                    format!("add version {id}: the secret vanished"),
                )
            })?;
        Ok(())
    }
}

/// Exact-resource IAM grants for ESO: one binding of
/// `roles/secretmanager.secretAccessor` per exported secret, for the Google
/// service account ESO's Kubernetes service account acts as (never a
/// project-wide role). A shell script of `gcloud` commands, per environment.
pub fn iam_script(project: &str, gsa: &str, env: &str, ids: &[&str]) -> String {
    let mut ids: Vec<&str> = ids.to_vec();
    ids.sort();
    let mut s = format!(
        "#!/bin/sh\n# Generated by `ksec export`: what ESO may read for environment {env}.\n\
         # One binding per secret, no project-wide role: a new Secret needs a new line (re-run ksec export).\n\
         set -eu\n"
    );
    for id in ids {
        s.push_str(&format!(
            "gcloud secrets add-iam-policy-binding {id} --project {project} \\\n  --member serviceAccount:{gsa} --role roles/secretmanager.secretAccessor\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_the_secret_manager_alphabet() {
        assert_eq!(
            secret_id("prod/web/registry.pull").unwrap(),
            "prod--web--registry_2e_pull"
        );
        assert_eq!(secret_id("a_b-c").unwrap(), "a_b-c");
        assert!(secret_id(&"x".repeat(256)).is_err());
        assert_eq!(
            label_value("prod-web/Registry.pull"),
            "prod-web_registry_pull"
        );
    }

    #[test]
    fn colliding_ids_are_refused_before_writing() {
        let secret = |ns: &str, name: &str| crate::manifest::DesiredSecret {
            file: format!("{ns}.yaml").into(),
            namespace: ns.into(),
            name: name.into(),
            env: "prod".into(),
            object: serde_json::json!({}),
            data: Default::default(),
            lastmodified: None,
        };
        let target = super::super::Target::parse("gcp-sm://p").unwrap();
        // `a--b/c` and `a/b--c` both map to `a--b--c`.
        let e = super::super::plan(
            &[secret("a--b", "c"), secret("a", "b--c")],
            &target,
            "{namespace}/{name}",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("which Secret a--b/c also maps to"),
            "{e}"
        );
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
