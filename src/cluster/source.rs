//! From files to the objects to apply, without a cluster: decrypt in memory
//! (MAC verified), and refuse — before anything is applied — every Secret
//! whose namespace is not owned by the environment it was encrypted for.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value as J, json};

use crate::keys::KeyRing;
use crate::manifest;
use crate::ops::{self, OpenOptions};
use crate::recipients::{self, RecipientsDir};
use crate::sops::store::{self, StoreError};
use crate::sops::{Documents, Format, Value};

#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// `recipients/` to check the boundary against (default: found upward from each file).
    pub recipients_dir: Option<PathBuf>,
    /// Only this environment's namespaces; other files are skipped undecrypted.
    pub env: Option<String>,
    /// `--namespace`: the namespace of objects without one; a different explicit one is refused.
    pub namespace: Option<String>,
    /// The kubeconfig context's namespace, used when neither says.
    pub default_namespace: String,
    /// Accept files whose MAC covers only encrypted values (namespace and name unauthenticated).
    pub allow_mac_only: bool,
    /// Also apply non-Secret objects (plain or encrypted files).
    pub all: bool,
}

/// A Secret ready to apply. `data` holds decrypted bytes: memory only.
#[derive(Clone)]
pub struct DesiredSecret {
    pub file: PathBuf,
    pub namespace: String,
    pub name: String,
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

/// A non-Secret object (`--all`).
#[derive(Clone, Debug)]
pub struct DesiredOther {
    pub file: PathBuf,
    pub namespace: Option<String>,
    pub object: J,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub file: PathBuf,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub file: PathBuf,
    /// `namespace/name` of the Secret, when one is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Loaded {
    pub secrets: Vec<DesiredSecret>,
    pub others: Vec<DesiredOther>,
    pub skipped: Vec<Skipped>,
    pub refused: Vec<Refusal>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Config(#[from] recipients::ConfigError),
    #[error(
        "{0}: no recipients/ directory found; ksec apply needs it to check that each Secret's namespace belongs to the environment it was encrypted for (or pass --recipients-dir)"
    )]
    NoRecipientsDir(PathBuf),
    #[error("--env {0}: no such environment in {1}")]
    UnknownEnv(String, PathBuf),
}

/// Reads, decrypts and checks every file (in parallel). Per-file problems
/// become refusals; only configuration errors fail the call.
pub fn load(
    files: &[PathBuf],
    ring: &KeyRing,
    opts: &SourceOptions,
) -> Result<Loaded, SourceError> {
    // One recipients/ per folder, loaded once.
    let mut dirs: HashMap<PathBuf, Arc<RecipientsDir>> = HashMap::new();
    let fixed = match &opts.recipients_dir {
        Some(d) => Some(Arc::new(RecipientsDir::load(d)?)),
        None => None,
    };
    let mut plan: Vec<(PathBuf, Arc<RecipientsDir>)> = Vec::new();
    for f in files {
        let rdir = match &fixed {
            Some(d) => d.clone(),
            None => {
                let parent = std::path::absolute(f)
                    .unwrap_or_else(|_| f.clone())
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                match dirs.get(&parent) {
                    Some(d) => d.clone(),
                    None => {
                        let d = Arc::new(
                            RecipientsDir::find(f)?
                                .ok_or_else(|| SourceError::NoRecipientsDir(f.clone()))?,
                        );
                        dirs.insert(parent, d.clone());
                        d
                    }
                }
            }
        };
        if let Some(e) = &opts.env
            && rdir.env(e).is_none()
        {
            return Err(SourceError::UnknownEnv(e.clone(), rdir.dir.clone()));
        }
        plan.push((f.clone(), rdir));
    }
    let outcomes: Vec<Loaded> = plan
        .par_iter()
        .map(|(f, rdir)| load_file(f, rdir, ring, opts))
        .collect();
    let mut out = Loaded::default();
    for o in outcomes {
        out.secrets.extend(o.secrets);
        out.others.extend(o.others);
        out.skipped.extend(o.skipped);
        out.refused.extend(o.refused);
    }
    // The same Secret from two files: which one wins would be arbitrary.
    let mut seen: HashMap<(String, String), PathBuf> = HashMap::new();
    let mut dups = Vec::new();
    for s in &out.secrets {
        if let Some(prev) = seen.insert((s.namespace.clone(), s.name.clone()), s.file.clone()) {
            dups.push(Refusal {
                file: s.file.clone(),
                secret: Some(format!("{}/{}", s.namespace, s.name)),
                reason: format!("also defined in {}", prev.display()),
            });
        }
    }
    out.refused.extend(dups);
    Ok(out)
}

fn refuse(file: &Path, secret: Option<String>, reason: impl Into<String>) -> Loaded {
    Loaded {
        refused: vec![Refusal {
            file: file.to_path_buf(),
            secret,
            reason: reason.into(),
        }],
        ..Default::default()
    }
}

fn skip(file: &Path, reason: impl Into<String>) -> Loaded {
    Loaded {
        skipped: vec![Skipped {
            file: file.to_path_buf(),
            reason: reason.into(),
        }],
        ..Default::default()
    }
}

fn load_file(file: &Path, rdir: &RecipientsDir, ring: &KeyRing, opts: &SourceOptions) -> Loaded {
    let bytes = match ops::read(file) {
        Ok(b) => b,
        Err(e) => return refuse(file, None, format!("cannot read: {e}")),
    };
    let format = Format::from_path(file);
    if !matches!(format, Format::Yaml | Format::Json) {
        return skip(file, "not a YAML or JSON manifest");
    }
    let (docs, meta) = match store::load_encrypted(format, &bytes) {
        Ok(x) => x,
        Err(StoreError::NotEncrypted) => return load_plain_file(file, format, &bytes, opts),
        Err(e) => return refuse(file, None, e.to_string()),
    };
    if let Some(p) = manifest::secret_shape(&docs).first() {
        return refuse(file, None, format!("probable tampering: {p}"));
    }
    let candidates = encrypted_for(&meta, rdir);
    if let Some(want) = &opts.env
        && !candidates.contains(&want.as_str())
    {
        let was = if candidates.is_empty() {
            "recipients of no single environment".to_string()
        } else {
            format!("environment {}", candidates.join("/"))
        };
        return skip(file, format!("encrypted for {was}, not --env {want}"));
    }
    if manifest::has_secret(&docs) && meta.mac_only_encrypted && !opts.allow_mac_only {
        return refuse(
            file,
            None,
            "mac_only_encrypted: the MAC does not cover the Secret's namespace and name, so a moved file would not be detected (re-encrypt without it, or pass --allow-mac-only)",
        );
    }
    let lastmodified = unix_time(&meta);
    let opened = match ops::open_parsed(docs, meta, ring, OpenOptions::default()) {
        Ok(o) => o,
        Err(e) => return refuse(file, None, format!("cannot decrypt: {e}")),
    };
    for w in &opened.warnings {
        tracing::warn!("{}: {w}", file.display());
    }
    objects_from_docs(file, &opened.docs, rdir, &candidates, lastmodified, opts)
}

fn unix_time(meta: &crate::sops::Metadata) -> Option<i64> {
    crate::sops::scalar::parse_rfc3339(&meta.lastmodified).map(|t| t.timestamp())
}

/// The names of the environments that could have encrypted a file.
pub fn encrypted_for<'a>(meta: &crate::sops::Metadata, rdir: &'a RecipientsDir) -> Vec<&'a str> {
    let ids = recipients::boundary::file_recipients(meta);
    rdir.encrypted_for(&ids)
        .into_iter()
        .map(|e| e.name.as_str())
        .collect()
}

fn load_plain_file(file: &Path, format: Format, bytes: &[u8], opts: &SourceOptions) -> Loaded {
    let docs = match store::load_plain(format, bytes) {
        Ok(d) => d,
        Err(e) => return refuse(file, None, e.to_string()),
    };
    if manifest::has_secret(&docs) {
        return refuse(
            file,
            None,
            "holds a plaintext Secret; ksec apply only applies encrypted Secrets (ksec encrypt it first)",
        );
    }
    if !opts.all {
        return skip(file, "plain manifest (pass --all to apply it too)");
    }
    let mut out = Loaded::default();
    for d in &docs.0 {
        for obj in manifest::objects(d) {
            if obj.str_of("kind").is_some_and(|k| k.ends_with("List")) || obj.0.is_empty() {
                continue;
            }
            let j = Value::Map(obj.clone()).to_json();
            out.others.push(DesiredOther {
                file: file.to_path_buf(),
                namespace: j
                    .pointer("/metadata/namespace")
                    .and_then(J::as_str)
                    .map(str::to_string),
                object: j,
            });
        }
    }
    out
}

fn objects_from_docs(
    file: &Path,
    docs: &Documents,
    rdir: &RecipientsDir,
    candidates: &[&str],
    lastmodified: Option<i64>,
    opts: &SourceOptions,
) -> Loaded {
    let mut out = Loaded::default();
    let mut secrets = Vec::new();
    for d in &docs.0 {
        for obj in manifest::objects(d) {
            if obj.str_of("kind").is_some_and(|k| k.ends_with("List")) || obj.0.is_empty() {
                continue;
            }
            let j = Value::Map(obj.clone()).to_json();
            if manifest::is_secret(&obj) {
                secrets.push(j);
            } else if opts.all {
                out.others.push(DesiredOther {
                    file: file.to_path_buf(),
                    namespace: j
                        .pointer("/metadata/namespace")
                        .and_then(J::as_str)
                        .map(str::to_string),
                    object: j,
                });
            }
        }
    }
    if secrets.is_empty() && out.others.is_empty() {
        return skip(file, "no Secret in it (pass --all to apply other objects)");
    }
    for j in secrets {
        let name = j
            .pointer("/metadata/name")
            .and_then(J::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            out.refused.push(Refusal {
                file: file.to_path_buf(),
                secret: None,
                reason: "a Secret has no metadata.name".into(),
            });
            continue;
        }
        let own_ns = j
            .pointer("/metadata/namespace")
            .and_then(J::as_str)
            .filter(|s| !s.is_empty());
        let ns = match (own_ns, &opts.namespace) {
            (Some(a), Some(b)) if a != b => {
                out.refused.push(Refusal {
                    file: file.to_path_buf(),
                    secret: Some(format!("{a}/{name}")),
                    reason: format!("its namespace {a:?} does not match --namespace {b:?}"),
                });
                continue;
            }
            (Some(a), _) => a.to_string(),
            (None, Some(b)) => b.clone(),
            (None, None) => opts.default_namespace.clone(),
        };
        let id = format!("{ns}/{name}");
        let owner = match rdir.env_for_namespace(&ns) {
            Ok(Some(e)) => e,
            Ok(None) => {
                out.refused.push(Refusal {
                    file: file.to_path_buf(),
                    secret: Some(id),
                    reason: format!(
                        "namespace {ns:?} belongs to no environment in {}",
                        rdir.dir.display()
                    ),
                });
                continue;
            }
            Err(e) => {
                out.refused.push(Refusal {
                    file: file.to_path_buf(),
                    secret: Some(id),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if !candidates.contains(&owner.name.as_str()) {
            let was = if candidates.is_empty() {
                "recipients that match no single environment".to_string()
            } else {
                format!("environment {}", candidates.join("/"))
            };
            out.refused.push(Refusal {
                file: file.to_path_buf(),
                secret: Some(id),
                reason: format!(
                    "namespace {ns:?} belongs to environment {}, but the file was encrypted for {was}",
                    owner.name
                ),
            });
            continue;
        }
        if let Some(want) = &opts.env
            && &owner.name != want
        {
            out.skipped.push(Skipped {
                file: file.to_path_buf(),
                reason: format!("{id} is in environment {}, not --env {want}", owner.name),
            });
            continue;
        }
        match secret_parts(&j, &ns) {
            Ok((object, data)) => out.secrets.push(DesiredSecret {
                file: file.to_path_buf(),
                namespace: ns,
                name,
                env: owner.name.clone(),
                object,
                data,
                lastmodified,
            }),
            Err(reason) => out.refused.push(Refusal {
                file: file.to_path_buf(),
                secret: Some(id),
                reason,
            }),
        }
    }
    out
}

/// Splits a decrypted Secret into its applyable skeleton and its data
/// (`stringData` merged into `data`, as the API server would; it wins).
fn secret_parts(j: &J, ns: &str) -> Result<(J, BTreeMap<String, Vec<u8>>), String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut data = BTreeMap::new();
    if let Some(d) = j.get("data").filter(|d| !d.is_null()) {
        let m = d.as_object().ok_or("data is not a map")?;
        for (k, v) in m {
            let s = v
                .as_str()
                .ok_or_else(|| format!("data.{k} is not a base64 string"))?;
            let bytes = b64
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
    Ok((obj, data))
}

/// Why [`open_one`] refused a document. The controller maps these to its
/// condition reasons; messages carry names, never values.
#[derive(Debug, thiserror::Error)]
pub enum OpenRefusal {
    /// Plaintext, or not a SOPS document at all.
    #[error("{0}")]
    NotEncrypted(String),
    /// Decryption or MAC verification failed (see [`ops::OpError`]).
    #[error("cannot decrypt: {0}")]
    Decrypt(#[source] ops::OpError),
    /// The namespace boundary: wrong namespace, or one the environment does not own.
    #[error("{0}")]
    Namespace(String),
    #[error("{0}")]
    Invalid(String),
}

/// Where a single document ([`open_one`]) may land.
#[derive(Clone, Copy, Debug)]
pub struct OneOptions<'a> {
    /// The only namespace the Secret may name (absent: it goes there).
    pub namespace: &'a str,
    /// With it, the Secret's namespace must belong to the environment the
    /// document was encrypted for (as `ksec apply` checks).
    pub recipients: Option<&'a RecipientsDir>,
    /// Only this environment.
    pub env: Option<&'a str>,
    pub allow_mac_only: bool,
}

/// Where the Secrets of one file ([`open_all`]) may land.
#[derive(Clone, Copy, Debug)]
pub struct FileOptions<'a> {
    /// Secrets without `metadata.namespace` go there (none: they are refused).
    pub default_namespace: Option<&'a str>,
    /// When set, the only namespace a Secret may name.
    pub only_namespace: Option<&'a str>,
    /// With it, each Secret's namespace must belong to the environment the
    /// file was encrypted for (as `ksec apply` checks).
    pub recipients: Option<&'a RecipientsDir>,
    /// Only this environment.
    pub env: Option<&'a str>,
    pub allow_mac_only: bool,
}

/// Why [`open_all`] refused one Secret of a file (the others may be fine).
#[derive(Debug)]
pub struct SecretRefusal {
    /// `namespace/name`, when known.
    pub secret: Option<String>,
    pub refusal: OpenRefusal,
}

/// Decrypts one in-memory document holding exactly one Secret (the
/// controller's `EncryptedSecret`), MAC verified, and checks the namespace
/// boundary. `label` names it in messages.
pub fn open_one(
    label: &Path,
    bytes: &[u8],
    ring: &KeyRing,
    opts: OneOptions<'_>,
) -> Result<DesiredSecret, OpenRefusal> {
    let mut all = open_all(
        label,
        bytes,
        ring,
        FileOptions {
            default_namespace: Some(opts.namespace),
            only_namespace: Some(opts.namespace),
            recipients: opts.recipients,
            env: opts.env,
            allow_mac_only: opts.allow_mac_only,
        },
    )?;
    if all.len() != 1 {
        return Err(OpenRefusal::Invalid(format!(
            "holds {} Secrets; exactly one is expected",
            all.len()
        )));
    }
    all.pop().expect("one").map_err(|r| r.refusal)
}

/// Decrypts one in-memory file (YAML, several documents or a `List`, or
/// JSON) once, MAC verified, and returns every Secret in it, in document
/// order, each checked against the namespace boundary. A problem of the
/// whole file (plaintext, unparsable, no Secret, `mac_only_encrypted`,
/// decryption or MAC failure) is the outer error: none of its Secrets may
/// be applied. `label` names the file in messages.
pub fn open_all(
    label: &Path,
    bytes: &[u8],
    ring: &KeyRing,
    opts: FileOptions<'_>,
) -> Result<Vec<Result<DesiredSecret, SecretRefusal>>, OpenRefusal> {
    let format = if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        Format::Json
    } else {
        Format::Yaml
    };
    let (docs, meta) = match store::load_encrypted(format, bytes) {
        Ok(x) => x,
        Err(StoreError::NotEncrypted) => {
            return Err(OpenRefusal::NotEncrypted(
                "not SOPS-encrypted (no sops metadata); plaintext Secrets are refused".into(),
            ));
        }
        Err(e) => return Err(OpenRefusal::Invalid(e.to_string())),
    };
    let candidates: Vec<&str> = opts
        .recipients
        .map(|rdir| encrypted_for(&meta, rdir))
        .unwrap_or_default();
    if !manifest::has_secret(&docs) {
        return Err(OpenRefusal::Invalid("holds no Secret".into()));
    }
    if let Some(p) = manifest::secret_shape(&docs).first() {
        return Err(OpenRefusal::Invalid(format!("probable tampering: {p}")));
    }
    if meta.mac_only_encrypted && !opts.allow_mac_only {
        return Err(OpenRefusal::Invalid(
            "mac_only_encrypted: the MAC does not cover the Secret's namespace and name".into(),
        ));
    }
    let lastmodified = unix_time(&meta);
    let opened =
        ops::open_parsed(docs, meta, ring, OpenOptions::default()).map_err(OpenRefusal::Decrypt)?;
    let mut secrets = Vec::new();
    for d in &opened.docs.0 {
        for obj in manifest::objects(d) {
            if manifest::is_secret(&obj) {
                secrets.push(Value::Map(obj.clone()).to_json());
            }
        }
    }
    drop(opened);
    Ok(secrets
        .iter()
        .map(|j| check_secret(label, j, &candidates, lastmodified, &opts))
        .collect())
}

/// One decrypted Secret of [`open_all`]: name, namespace, boundary.
fn check_secret(
    label: &Path,
    j: &J,
    candidates: &[&str],
    lastmodified: Option<i64>,
    opts: &FileOptions<'_>,
) -> Result<DesiredSecret, SecretRefusal> {
    let name = j
        .pointer("/metadata/name")
        .and_then(J::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        return Err(SecretRefusal {
            secret: None,
            refusal: OpenRefusal::Invalid("the Secret has no metadata.name".into()),
        });
    }
    let own = j
        .pointer("/metadata/namespace")
        .and_then(J::as_str)
        .filter(|s| !s.is_empty());
    let refuse = |ns: &str, refusal| SecretRefusal {
        secret: Some(format!("{ns}/{name}")),
        refusal,
    };
    let ns = match (own, opts.only_namespace, opts.default_namespace) {
        (Some(own), Some(only), _) if own != only => {
            return Err(refuse(
                own,
                OpenRefusal::Namespace(format!("the Secret names namespace {own:?}, not {only:?}")),
            ));
        }
        (Some(own), _, _) => own.to_string(),
        (None, _, Some(d)) => d.to_string(),
        (None, Some(only), None) => only.to_string(),
        (None, None, None) => {
            return Err(SecretRefusal {
                secret: None,
                refusal: OpenRefusal::Invalid(format!(
                    "the Secret {name} names no metadata.namespace"
                )),
            });
        }
    };
    let mut env = String::new();
    if let Some(rdir) = opts.recipients {
        let owner = match rdir.env_for_namespace(&ns) {
            Ok(Some(e)) => e,
            Ok(None) => {
                return Err(refuse(
                    &ns,
                    OpenRefusal::Namespace(format!("namespace {ns:?} belongs to no environment")),
                ));
            }
            Err(e) => return Err(refuse(&ns, OpenRefusal::Namespace(e.to_string()))),
        };
        if !candidates.contains(&owner.name.as_str()) {
            return Err(refuse(
                &ns,
                OpenRefusal::Namespace(format!(
                    "namespace {ns:?} belongs to environment {}, but the document was encrypted for {}",
                    owner.name,
                    if candidates.is_empty() {
                        "recipients of no single environment".to_string()
                    } else {
                        format!("environment {}", candidates.join("/"))
                    }
                )),
            ));
        }
        if let Some(want) = opts.env
            && owner.name != want
        {
            return Err(refuse(
                &ns,
                OpenRefusal::Namespace(format!(
                    "namespace {ns:?} is in environment {}, not {want}",
                    owner.name
                )),
            ));
        }
        env = owner.name.clone();
    }
    let (object, data) = secret_parts(j, &ns).map_err(|m| refuse(&ns, OpenRefusal::Invalid(m)))?;
    Ok(DesiredSecret {
        file: label.to_path_buf(),
        namespace: ns,
        name,
        env,
        object,
        data,
        lastmodified,
    })
}
