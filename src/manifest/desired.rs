//! A decrypted Secret as it will be written: its identity, its applyable
//! skeleton and its data. Apply, export and the controller consume it;
//! it needs no cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use serde_json::{Value as J, json};

/// A Secret ready to apply. `data` holds decrypted bytes: memory only.
#[derive(Clone)]
pub struct DesiredSecret {
    pub file: PathBuf,
    pub namespace: String,
    pub name: String,
    /// The environment owning its namespace (empty when no `recipients/` was consulted).
    pub env: String,
    /// apiVersion/kind/metadata(name, namespace, labels, annotations)/type/immutable; no data.
    pub object: J,
    pub data: BTreeMap<String, Vec<u8>>,
    /// sops `lastmodified` of the source file (Unix seconds; the MAC covers it).
    pub lastmodified: Option<i64>,
}

impl std::fmt::Debug for DesiredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesiredSecret")
            .field("file", &self.file)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("env", &self.env)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a Secret that names no namespace goes, and which one it may name.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamespacePolicy<'a> {
    /// Secrets without `metadata.namespace` go there (none, and no `only`: refused).
    pub default: Option<&'a str>,
    /// When set, the only namespace a Secret may name (`--namespace`).
    pub only: Option<&'a str>,
}

/// Why a Secret has no usable identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("a Secret has no metadata.name")]
    NoName,
    #[error("the Secret {name} names no metadata.namespace")]
    NoNamespace { name: String },
    #[error("the Secret names namespace {namespace:?}, not {only:?}")]
    WrongNamespace {
        namespace: String,
        name: String,
        only: String,
    },
}

impl IdentityError {
    /// `namespace/name`, when known.
    pub fn secret(&self) -> Option<String> {
        match self {
            IdentityError::WrongNamespace {
                namespace, name, ..
            } => Some(format!("{namespace}/{name}")),
            _ => None,
        }
    }
}

impl NamespacePolicy<'_> {
    /// `(namespace, name)` of a Secret from its own metadata and this policy.
    pub fn identify(
        &self,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<(String, String), IdentityError> {
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or(IdentityError::NoName)?;
        let own = namespace.filter(|s| !s.is_empty());
        let ns = match (own, self.only, self.default) {
            (Some(own), Some(only), _) if own != only => {
                return Err(IdentityError::WrongNamespace {
                    namespace: own.into(),
                    name: name.into(),
                    only: only.into(),
                });
            }
            (Some(own), _, _) => own,
            (None, _, Some(d)) => d,
            (None, Some(only), None) => only,
            (None, None, None) => return Err(IdentityError::NoNamespace { name: name.into() }),
        };
        Ok((ns.to_string(), name.to_string()))
    }

    /// [`Self::identify`] from a decrypted Secret.
    pub fn identify_json(&self, secret: &J) -> Result<(String, String), IdentityError> {
        let get = |p| secret.pointer(p).and_then(J::as_str);
        self.identify(get("/metadata/namespace"), get("/metadata/name"))
    }
}

/// Splits a decrypted Secret into its applyable skeleton and its data
/// (`stringData` merged into `data`, as the API server would; it wins).
/// The error names the key, never its value.
pub fn secret_parts(j: &J, ns: &str) -> Result<(J, BTreeMap<String, Vec<u8>>), String> {
    let mut data = BTreeMap::new();
    if let Some(d) = j.get("data").filter(|d| !d.is_null()) {
        let m = d.as_object().ok_or("data is not a map")?;
        for (k, v) in m {
            let s = v
                .as_str()
                .ok_or_else(|| format!("data.{k} is not a base64 string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map_err(|_| format!("data.{k} is not valid base64"))?;
            data.insert(k.clone(), bytes);
        }
    }
    if let Some(d) = j.get("stringData").filter(|d| !d.is_null()) {
        let m = d.as_object().ok_or("stringData is not a map")?;
        for (k, v) in m {
            let s = match v {
                J::String(s) => s.clone(),
                J::Number(_) | J::Bool(_) => v.to_string(),
                J::Null => String::new(),
                _ => return Err(format!("stringData.{k} is not a string")),
            };
            data.insert(k.clone(), s.into_bytes());
        }
    }
    Ok((skeleton(j, ns), data))
}

/// The Secret without its data: what apply writes besides `data`.
fn skeleton(j: &J, ns: &str) -> J {
    let meta = j.get("metadata").cloned().unwrap_or(json!({}));
    let mut m = serde_json::Map::new();
    m.insert("name".into(), meta.get("name").cloned().unwrap_or(J::Null));
    m.insert("namespace".into(), J::String(ns.to_string()));
    for k in ["labels", "annotations"] {
        if let Some(v) = meta.get(k).filter(|v| v.is_object()) {
            m.insert(k.into(), v.clone());
        }
    }
    let mut obj = json!({"apiVersion": "v1", "kind": "Secret", "metadata": J::Object(m)});
    for k in ["type", "immutable"] {
        if let Some(v) = j.get(k).filter(|v| !v.is_null()) {
            obj[k] = v.clone();
        }
    }
    obj
}
