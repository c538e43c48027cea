//! External Secrets Operator manifests for exported Secrets (ESO API
//! `external-secrets.io/v1`, as in the field guide): per namespace one
//! `SecretStore`, per Secret one `ExternalSecret` that rebuilds the same
//! Secret — name, type, labels, annotations and exactly the same keys.
//!
//! * Each key is fetched by `remoteRef.property` (escaped for ESO's gjson
//!   lookup, so `.dockerconfigjson` is one key, not a path); values ksec
//!   stored as base64 (non-UTF-8) get `decodingStrategy: Base64`.
//! * Non-Opaque types (pull secrets, TLS, …) and labels/annotations need a
//!   `target.template`; its `data` passes every key through unchanged
//!   (`{{ index . "KEY" }}`) so the bytes equal what `ksec apply` writes —
//!   the field guide's host/username/password decomposition would rebuild a
//!   different `.dockerconfigjson` (other whitespace, no `email`, one registry).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value as J, json};

use super::{ExportError, Item, Target};
use crate::sops::{Documents, Map, MapItem, Value};

/// What ESO does with the Secret; chosen explicitly, see [`CreationPolicy::comment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreationPolicy {
    Owner,
    Merge,
}

impl CreationPolicy {
    fn as_str(self) -> &'static str {
        match self {
            CreationPolicy::Owner => "Owner",
            CreationPolicy::Merge => "Merge",
        }
    }

    /// The deletion consequences, written above `creationPolicy`.
    fn comment(self) -> &'static [&'static str] {
        match self {
            CreationPolicy::Owner => &[
                " creationPolicy Owner: ESO creates this Secret and owns it (ownerReference).",
                " Deleting this ExternalSecret DELETES the Secret with it: pods that mount it fail",
                " on their next start. Grant delete on ExternalSecrets as carefully as on Secrets.",
            ],
            CreationPolicy::Merge => &[
                " creationPolicy Merge: ESO only writes these keys into the existing Secret (the",
                " one `ksec apply` created) and never creates or deletes it. Deleting this",
                " ExternalSecret leaves the Secret and its last values in place. Use it for the",
                " cut-over, then switch to Owner once ksec no longer applies the Secret.",
            ],
        }
    }
}

/// How the SecretStores authenticate and what they are called. `{env}` and
/// `{namespace}` are replaced in the name templates.
#[derive(Debug, Clone)]
pub struct EsoOptions {
    pub refresh_interval: String,
    pub creation_policy: CreationPolicy,
    /// `SecretStore` name (default `{env}-secretstore`).
    pub store_name: String,
    /// Service account ESO authenticates as (default `{env}-workload-sa`).
    pub service_account: String,
    /// Vault Kubernetes auth: mount and role (default `{env}-secret-reader`).
    pub vault_k8s_mount: String,
    pub vault_role: String,
    /// Google service account ESO's Kubernetes service account acts as
    /// (Workload Identity); `{project}` is replaced too.
    pub gcp_service_account: String,
    /// `NAME[/KEY]` of a Kubernetes Secret holding a service-account key
    /// file: the SecretStore authenticates with it instead of Workload Identity.
    pub gcp_key_secret: Option<String>,
}

impl Default for EsoOptions {
    fn default() -> Self {
        EsoOptions {
            refresh_interval: "1h".into(),
            creation_policy: CreationPolicy::Owner,
            store_name: "{env}-secretstore".into(),
            service_account: "{env}-workload-sa".into(),
            vault_k8s_mount: "kubernetes".into(),
            vault_role: "{env}-secret-reader".into(),
            gcp_service_account: "{env}-external-secrets@{project}.iam.gserviceaccount.com".into(),
            gcp_key_secret: None,
        }
    }
}

/// The Google service account email for `env` (`{env}`, `{namespace}`, `{project}` filled).
pub fn gcp_sa(o: &EsoOptions, env: &str, ns: &str, project: &str) -> String {
    fill(&o.gcp_service_account, env, ns).replace("{project}", project)
}

pub fn fill(tpl: &str, env: &str, ns: &str) -> String {
    tpl.replace("{env}", env).replace("{namespace}", ns)
}

/// Escapes the characters gjson treats as syntax, so a property names one key.
pub fn gjson_escape(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if ".*?|#@!\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The SecretStore of `namespace` (environment `env`) for `target`.
pub fn secret_store(target: &Target, env: &str, ns: &str, o: &EsoOptions) -> J {
    let sa = fill(&o.service_account, env, ns);
    let provider = match target {
        Target::Vault { addr, mount, .. } => json!({"vault": {
            "server": addr,
            "path": mount,
            "version": "v2",
            "auth": {"kubernetes": {
                "mountPath": o.vault_k8s_mount,
                "role": fill(&o.vault_role, env, ns),
                "serviceAccountRef": {"name": sa},
            }},
        }}),
        Target::AwsSm { region, .. } => json!({"aws": {
            "service": "SecretsManager",
            "region": region,
            "auth": {"jwt": {"serviceAccountRef": {"name": sa}}},
        }}),
        Target::AzureKv { url, .. } => json!({"azurekv": {
            "authType": "WorkloadIdentity",
            "vaultUrl": url,
            "serviceAccountRef": {"name": sa},
        }}),
        Target::GcpSm { project, .. } => {
            let auth = match &o.gcp_key_secret {
                Some(s) => {
                    let (name, key) = s.split_once('/').unwrap_or((s, "credentials.json"));
                    json!({"secretRef": {"secretAccessKeySecretRef": {"name": name, "key": key}}})
                }
                None => json!({"workloadIdentity": {"serviceAccountRef": {"name": sa}}}),
            };
            json!({"gcpsm": {"projectID": project, "auth": auth}})
        }
    };
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "SecretStore",
        "metadata": {"name": fill(&o.store_name, env, ns), "namespace": ns},
        "spec": {"provider": provider},
    })
}

/// The ExternalSecret rebuilding `item`'s Secret.
pub fn external_secret(item: &Item, o: &EsoOptions) -> J {
    let data: Vec<J> = item
        .entry
        .values
        .keys()
        .map(|k| {
            let mut r = json!({"key": item.id, "property": gjson_escape(k)});
            if item.entry.binary.contains(k) {
                r["decodingStrategy"] = json!("Base64");
            }
            json!({"secretKey": k, "remoteRef": r})
        })
        .collect();
    let mut target = json!({"name": item.name, "creationPolicy": o.creation_policy.as_str()});
    let typed = item.secret_type != "Opaque";
    if typed || !item.labels.is_empty() || !item.annotations.is_empty() {
        let mut tpl = json!({"engineVersion": "v2"});
        if typed {
            tpl["type"] = json!(item.secret_type);
            let d: serde_json::Map<String, J> = item
                .entry
                .values
                .keys()
                .map(|k| (k.clone(), json!(format!("{{{{ index . \"{k}\" }}}}"))))
                .collect();
            tpl["data"] = J::Object(d);
        }
        let mut meta = serde_json::Map::new();
        if !item.labels.is_empty() {
            meta.insert("labels".into(), J::Object(item.labels.clone()));
        }
        if !item.annotations.is_empty() {
            meta.insert("annotations".into(), J::Object(item.annotations.clone()));
        }
        if !meta.is_empty() {
            tpl["metadata"] = J::Object(meta);
        }
        target["template"] = tpl;
    }
    json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": {"name": item.name, "namespace": item.namespace},
        "spec": {
            "refreshInterval": o.refresh_interval,
            "secretStoreRef": {"name": fill(&o.store_name, &item.env, &item.namespace), "kind": "SecretStore"},
            "target": target,
            "data": data,
        },
    })
}

fn to_map(j: &J) -> Map {
    match Value::from_json(j) {
        Value::Map(m) => m,
        _ => unreachable!("manifests are objects"),
    }
}

fn pair_mut<'a>(m: &'a mut Map, key: &str) -> Option<&'a mut Map> {
    m.0.iter_mut().find_map(|i| match i {
        MapItem::Pair(k, Value::Map(v)) if k == key => Some(v),
        _ => None,
    })
}

fn yaml(header: &[String], m: Map) -> String {
    let mut out = String::new();
    for h in header {
        out.push_str(&format!("#{h}\n"));
    }
    out.push_str(&crate::sops::store::yaml::emit(&Documents(vec![m]), 2));
    out
}

/// The ExternalSecret as YAML, with the refresh lag and the creation
/// policy's deletion consequences as comments.
pub fn external_secret_yaml(item: &Item, o: &EsoOptions) -> String {
    let mut m = to_map(&external_secret(item, o));
    if let Some(spec) = pair_mut(&mut m, "spec") {
        if let Some(pos) = spec
            .0
            .iter()
            .position(|i| matches!(i, MapItem::Pair(k, _) if k == "refreshInterval"))
        {
            spec.0.insert(
                pos,
                MapItem::Comment(format!(
                    " refreshInterval {}: a change in the store reaches the Secret after up to this long; restart consumers after the sync (ksec apply does that for you today).",
                    o.refresh_interval
                )),
            );
        }
        if let Some(target) = pair_mut(spec, "target") {
            let pos = target
                .0
                .iter()
                .position(|i| matches!(i, MapItem::Pair(k, _) if k == "creationPolicy"))
                .unwrap_or(0);
            for (i, c) in o.creation_policy.comment().iter().enumerate() {
                target.0.insert(pos + i, MapItem::Comment((*c).to_string()));
            }
        }
    }
    let header = vec![format!(
        " Generated by `ksec export` from {} ({}); rebuilds Secret {} with keys: {}.",
        item.file.display(),
        item.env,
        item.secret(),
        item.entry
            .values
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )];
    yaml(&header, m)
}

pub fn secret_store_yaml(target: &Target, env: &str, ns: &str, o: &EsoOptions) -> String {
    let sa = fill(&o.service_account, env, ns);
    let how = match target {
        Target::Vault { .. } => format!(
            " Vault Kubernetes auth: role {} must bind service account {ns}/{sa} and policy policies/vault-{env}.hcl.",
            fill(&o.vault_role, env, ns)
        ),
        Target::AwsSm { .. } => format!(
            " IRSA: annotate service account {ns}/{sa} with eks.amazonaws.com/role-arn; the role's policy is policies/aws-iam-{env}.json."
        ),
        Target::AzureKv { .. } => format!(
            " Workload Identity: annotate service account {ns}/{sa} with azure.workload.identity/client-id; grant that identity \"Key Vault Secrets User\" on the vault (not the subscription)."
        ),
        Target::GcpSm { project, .. } => match &o.gcp_key_secret {
            Some(k) => format!(
                " Service-account key in Secret {ns}/{k}: that service account needs roles/secretmanager.secretAccessor on each secret (policies/gcp-iam-{env}.sh), not on the project."
            ),
            None => format!(
                " GKE Workload Identity: annotate service account {ns}/{sa} with iam.gke.io/gcp-service-account={}; policies/gcp-iam-{env}.sh grants it roles/secretmanager.secretAccessor on each exported secret, not on the project.",
                gcp_sa(o, env, ns, project)
            ),
        },
    };
    yaml(
        &[
            format!(
                " Generated by `ksec export`: the SecretStore of namespace {ns} (environment {env})."
            ),
            how,
        ],
        to_map(&secret_store(target, env, ns, o)),
    )
}

/// Writes `DIR/<namespace>/secretstore.yaml`, `DIR/<namespace>/<name>.externalsecret.yaml`
/// and `DIR/policies/…` (see [`super::policy`]); returns the files written.
pub fn write_all(
    dir: &Path,
    target: &Target,
    items: &[std::sync::Arc<Item>],
    o: &EsoOptions,
    aws_account: Option<&str>,
) -> Result<Vec<PathBuf>, ExportError> {
    let mut written = Vec::new();
    let mut put = |p: PathBuf, text: String| -> Result<(), ExportError> {
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ExportError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        crate::fsio::write_atomic(&p, text.as_bytes()).map_err(|source| ExportError::Io {
            path: p.clone(),
            source,
        })?;
        written.push(p);
        Ok(())
    };
    let mut namespaces: BTreeMap<&str, &str> = BTreeMap::new();
    for it in items {
        namespaces.insert(&it.namespace, &it.env);
        put(
            dir.join(&it.namespace)
                .join(format!("{}.externalsecret.yaml", it.name)),
            external_secret_yaml(it, o),
        )?;
    }
    for (ns, env) in &namespaces {
        put(
            dir.join(ns).join("secretstore.yaml"),
            secret_store_yaml(target, env, ns, o),
        )?;
    }
    for (name, text) in super::policy::policies(target, items, o, aws_account) {
        put(dir.join("policies").join(name), text)?;
    }
    Ok(written)
}
