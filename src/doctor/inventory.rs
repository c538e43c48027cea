//! What a repository of manifests declares: Secrets (names, keys, recipients,
//! age — read without decrypting), workloads, service accounts and Roles.

use std::path::{Path, PathBuf};

use serde_json::Value as J;

use crate::sops::store;
use crate::sops::{Format, Metadata, Value};
use crate::workloads::{self, Workload};

#[derive(Debug, Clone)]
pub struct SecretDecl {
    pub namespace: String,
    pub name: String,
    pub keys: Vec<String>,
    pub file: PathBuf,
    pub doc: usize,
    /// The sops metadata when the file is encrypted.
    pub meta: Option<Metadata>,
}

#[derive(Debug, Clone)]
pub struct ServiceAccountDecl {
    pub namespace: String,
    pub name: String,
    pub pull_secrets: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RoleDecl {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub file: PathBuf,
    pub rules: Vec<J>,
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub secrets: Vec<SecretDecl>,
    pub workloads: Vec<(Workload, PathBuf)>,
    pub service_accounts: Vec<ServiceAccountDecl>,
    pub roles: Vec<RoleDecl>,
    /// Files that could not be read as manifests (reported, not fatal).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Encrypted Secrets whose readable structure is not what ksec writes.
    pub misshapen: Vec<(PathBuf, crate::manifest::ShapeProblem)>,
    /// Manifest files read from disk with their bytes, for the guard's plaintext rules.
    pub files: Vec<(PathBuf, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("kustomize build of {0} failed: {1}")]
    Kustomize(PathBuf, String),
}

impl Inventory {
    pub fn secret(&self, ns: &str, name: &str) -> Option<&SecretDecl> {
        self.secrets
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
    }

    pub fn service_account(&self, ns: &str, name: &str) -> Option<&ServiceAccountDecl> {
        self.service_accounts
            .iter()
            .find(|s| s.namespace == ns && s.name == name)
    }

    /// Adds every object in one file's bytes (multi-document YAML or JSON).
    pub fn add_bytes(&mut self, file: &Path, bytes: &[u8], default_ns: &str) {
        let format = match Format::from_path(file) {
            Format::Json => Format::Json,
            _ => Format::Yaml,
        };
        let (docs, meta) = match store::load_encrypted(format, bytes) {
            Ok((d, m)) => (d, Some(m)),
            Err(_) => match store::load_plain(format, bytes) {
                Ok(d) => (d, None),
                Err(e) => {
                    self.unreadable.push((file.to_path_buf(), e.to_string()));
                    return;
                }
            },
        };
        if meta.is_some() {
            for p in crate::manifest::secret_shape(&docs) {
                self.misshapen.push((file.to_path_buf(), p));
            }
        }
        for (i, d) in docs.0.iter().enumerate() {
            for obj in crate::manifest::objects(d) {
                self.add_object(
                    file,
                    i,
                    &Value::Map(obj).to_json(),
                    meta.as_ref(),
                    default_ns,
                );
            }
        }
    }

    pub fn add_object(
        &mut self,
        file: &Path,
        doc: usize,
        obj: &J,
        meta: Option<&Metadata>,
        default_ns: &str,
    ) {
        let kind = obj.get("kind").and_then(J::as_str).unwrap_or("");
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(J::as_str)
            .unwrap_or(default_ns)
            .to_string();
        let name = obj
            .pointer("/metadata/name")
            .and_then(J::as_str)
            .unwrap_or("")
            .to_string();
        match kind {
            "Secret" => {
                let mut keys: Vec<String> = Vec::new();
                for section in ["data", "stringData"] {
                    if let Some(J::Object(m)) = obj.get(section) {
                        keys.extend(m.keys().cloned());
                    }
                }
                keys.sort();
                keys.dedup();
                self.secrets.push(SecretDecl {
                    namespace: ns,
                    name,
                    keys,
                    file: file.to_path_buf(),
                    doc,
                    meta: meta.cloned(),
                });
            }
            "ServiceAccount" => {
                let pull_secrets = obj
                    .get("imagePullSecrets")
                    .and_then(J::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("name").and_then(J::as_str).map(str::to_string))
                    .collect();
                self.service_accounts.push(ServiceAccountDecl {
                    namespace: ns,
                    name,
                    pull_secrets,
                });
            }
            "Role" | "ClusterRole" => self.roles.push(RoleDecl {
                kind: kind.to_string(),
                namespace: (kind == "Role").then_some(ns),
                name,
                file: file.to_path_buf(),
                rules: obj
                    .get("rules")
                    .and_then(J::as_array)
                    .cloned()
                    .unwrap_or_default(),
            }),
            _ => {
                if let Some(w) = workloads::workload(obj, default_ns) {
                    self.workloads.push((w, file.to_path_buf()));
                }
            }
        }
    }

    /// Walks paths: manifest files, directories (a directory holding a
    /// kustomization is rendered with `kubectl kustomize` / `kustomize build`
    /// when one is installed), and `-` for rendered output on stdin (Helm).
    pub fn load(paths: &[PathBuf], default_ns: &str) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::default();
        for p in paths {
            if p == Path::new("-") {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                    .map_err(|e| InventoryError::Io(p.clone(), e))?;
                inv.add_bytes(Path::new("<stdin>.yaml"), &buf, default_ns);
                continue;
            }
            if p.is_dir() && is_kustomization(p) {
                if let Some(out) = kustomize(p)? {
                    inv.add_bytes(&p.join("kustomization.yaml"), &out, default_ns);
                    continue;
                }
            }
            if p.is_dir() {
                let mut files: Vec<PathBuf> = walkdir::WalkDir::new(p)
                    .into_iter()
                    .filter_entry(|e| {
                        e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.')
                    })
                    .filter_map(Result::ok)
                    .filter(|e| {
                        e.file_type().is_file()
                            && matches!(Format::from_path(e.path()), Format::Yaml | Format::Json)
                    })
                    .filter(|e| !e.path().components().any(|c| c.as_os_str() == "recipients"))
                    .filter(|e| {
                        e.file_name() != "kustomization.yaml" && e.file_name() != ".sops.yaml"
                    })
                    .map(|e| e.into_path())
                    .collect();
                files.sort();
                for f in files {
                    let b = std::fs::read(&f).map_err(|e| InventoryError::Io(f.clone(), e))?;
                    inv.add_bytes(&f, &b, default_ns);
                    inv.files.push((f, b));
                }
            } else {
                let b = std::fs::read(p).map_err(|e| InventoryError::Io(p.clone(), e))?;
                inv.add_bytes(p, &b, default_ns);
                inv.files.push((p.clone(), b));
            }
        }
        Ok(inv)
    }
}

fn is_kustomization(d: &Path) -> bool {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .any(|n| d.join(n).is_file())
}

fn kustomize(dir: &Path) -> Result<Option<Vec<u8>>, InventoryError> {
    let tries: [(&str, &[&str]); 2] = [("kustomize", &["build"]), ("kubectl", &["kustomize"])];
    for (bin, args) in tries {
        let out = match std::process::Command::new(bin).args(args).arg(dir).output() {
            Ok(o) => o,
            Err(_) => continue,
        };
        if out.status.success() {
            return Ok(Some(out.stdout));
        }
        // kustomize's stderr can quote the manifests it read (secretGenerator
        // literals included), so it is not relayed.
        let msg = format!(
            "{bin} exited with {}; run it by hand to see why",
            out.status
        );
        return Err(InventoryError::Kustomize(dir.to_path_buf(), msg));
    }
    Ok(None)
}
