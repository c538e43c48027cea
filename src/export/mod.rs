//! `ksec export`: move decrypted Secrets into a central secrets manager
//! (Vault/OpenBao KV v2, AWS Secrets Manager, Azure Key Vault, Google Secret
//! Manager) and write the
//! External Secrets Operator manifests that rebuild them (docs/export.md).
//!
//! One entry per Secret, a JSON object `key → value`, at a path rendered from
//! a template (`{env}/{namespace}/{name}` by default). Every write is preceded
//! by a read: equal values write nothing, an entry without ksec's ownership
//! marker is left alone unless forced, and every written entry is read back
//! and compared. Values live in memory only; outcomes carry names.

pub mod aws_sm;
pub mod azure_kv;
pub mod eso;
pub mod gcp_sm;
pub mod policy;
pub mod vault;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use futures_util::StreamExt;
use serde::Serialize;
use zeroize::Zeroize;

use crate::keys::KeyError;
use crate::manifest::DesiredSecret;

/// Ownership marker (KV v2 custom_metadata, Secrets Manager and Key Vault tags, Secret Manager labels).
pub const MARKER_KEY: &str = "managed-by";
pub const MARKER_VALUE: &str = "ksec";
/// Which Secret an entry holds (`namespace/name`), for audits and humans.
pub const SOURCE_KEY: &str = "ksec-secret";
/// The default entry path template.
pub const DEFAULT_TEMPLATE: &str = "{env}/{namespace}/{name}";

/// Why an export could not start, or why one Secret failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// `--to` is not a target ksec knows (usage error).
    #[error("--to {0}")]
    Target(String),
    /// `--path-template` is invalid (usage error).
    #[error("--path-template {0}")]
    Template(String),
    /// Two Secrets map to one entry, or a Secret maps to no valid entry name.
    #[error("{file}: Secret {secret}: {reason}")]
    Plan {
        file: PathBuf,
        secret: String,
        reason: String,
    },
    /// Connecting or logging in to the backend failed before any write.
    #[error("{0}")]
    Backend(#[from] BackendError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What kind of failure a backend call had (reported per Secret in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    AccessDenied,
    NotFound,
    Throttled,
    Network,
    /// Someone else wrote the entry between our read and our write (KV v2 CAS).
    Conflict,
    /// The entry read back after writing differs from the source.
    VerifyMismatch,
    Invalid,
    Other,
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorClass::AccessDenied => "access denied",
            ErrorClass::NotFound => "not found",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Network => "network error",
            ErrorClass::Conflict => "conflict",
            ErrorClass::VerifyMismatch => "verify mismatch",
            ErrorClass::Invalid => "invalid",
            ErrorClass::Other => "error",
        })
    }
}

/// One failed backend call. `detail` is sanitized: names and service
/// messages, never a value or a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{class}: {detail}")]
pub struct BackendError {
    pub class: ErrorClass,
    pub detail: String,
}

impl BackendError {
    pub fn new(class: ErrorClass, detail: impl Into<String>) -> BackendError {
        BackendError {
            class,
            detail: crate::keys::service::sanitize(&detail.into()),
        }
    }
}

impl From<KeyError> for BackendError {
    /// The key services' auth and error classification, reused as is.
    fn from(e: KeyError) -> BackendError {
        use crate::keys::ErrorClass as K;
        match e {
            KeyError::Backend { class, detail, .. } => BackendError {
                class: match class {
                    K::AccessDenied => ErrorClass::AccessDenied,
                    K::NotFound => ErrorClass::NotFound,
                    K::Throttled => ErrorClass::Throttled,
                    K::Network => ErrorClass::Network,
                    K::KeyDisabled | K::InvalidCiphertext | K::Other => ErrorClass::Other,
                },
                detail,
            },
            KeyError::Config(m) => BackendError::new(ErrorClass::Invalid, m),
            other => BackendError::new(ErrorClass::Other, other.to_string()),
        }
    }
}

// ------------------------------------------------------------------ targets

/// Where `--to` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `vault://HOST[:PORT]/MOUNT[/PREFIX]` (https) or `vault+http://…`.
    Vault {
        addr: String,
        mount: String,
        prefix: String,
    },
    /// `aws-sm://REGION[/PREFIX]`.
    AwsSm { region: String, prefix: String },
    /// `azure-kv://VAULT` (→ `https://VAULT.vault.azure.net`) or
    /// `azure-kv://HOST[:PORT]` (a full host: private endpoints, the test fake).
    AzureKv { url: String, prefix: String },
    /// `gcp-sm://PROJECT[/PREFIX]` (Google Secret Manager).
    GcpSm { project: String, prefix: String },
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, ExportError> {
        let bad = |why: &str| ExportError::Target(format!("{s:?}: {why}"));
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("expected vault://, aws-sm://, azure-kv:// or gcp-sm://"))?;
        let rest = rest.trim_matches('/');
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(bad("no host/region"));
        }
        let clean = |p: &str| -> Result<String, ExportError> {
            let p = p.trim_matches('/');
            if p.split('/').any(|seg| seg == ".." || seg == ".") {
                return Err(bad("'.' and '..' are not allowed in the path"));
            }
            Ok(p.to_string())
        };
        match scheme {
            "vault" | "vault+https" | "vault+http" => {
                let (mount, prefix) = path.split_once('/').unwrap_or((path, ""));
                if mount.is_empty() {
                    return Err(bad(
                        "name the KV v2 mount: vault://HOST:PORT/MOUNT[/PREFIX]",
                    ));
                }
                let http = if scheme == "vault+http" {
                    "http"
                } else {
                    "https"
                };
                Ok(Target::Vault {
                    addr: format!("{http}://{host}"),
                    mount: clean(mount)?,
                    prefix: clean(prefix)?,
                })
            }
            "aws-sm" => {
                if !host
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    return Err(bad("the host part must be an AWS region, e.g. eu-west-1"));
                }
                Ok(Target::AwsSm {
                    region: host.to_string(),
                    prefix: clean(path)?,
                })
            }
            "azure-kv" => {
                let url = if host.contains('.') || host.contains(':') {
                    format!("https://{host}")
                } else {
                    format!("https://{host}.vault.azure.net")
                };
                Ok(Target::AzureKv {
                    url,
                    prefix: clean(path)?,
                })
            }
            "gcp-sm" => {
                let ok = host
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c));
                if !ok {
                    return Err(bad("the host part must be a Google Cloud project id"));
                }
                Ok(Target::GcpSm {
                    project: host.to_string(),
                    prefix: clean(path)?,
                })
            }
            _ => Err(bad(
                "expected vault://, aws-sm://, azure-kv:// or gcp-sm://",
            )),
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Target::Vault { prefix, .. }
            | Target::AwsSm { prefix, .. }
            | Target::AzureKv { prefix, .. }
            | Target::GcpSm { prefix, .. } => prefix,
        }
    }

    /// The backend's name for a logical path (`prefix/rendered template`).
    pub fn entry_id(&self, path: &str) -> Result<String, String> {
        match self {
            Target::Vault { .. } => Ok(path.to_string()),
            Target::AwsSm { .. } => {
                let ok = path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
                if !ok || path.len() > 512 {
                    return Err(format!(
                        "entry name {path:?} is not a valid Secrets Manager name ([A-Za-z0-9/_+=.@-], at most 512)"
                    ));
                }
                Ok(path.to_string())
            }
            Target::AzureKv { .. } => azure_kv::secret_name(path),
            Target::GcpSm { .. } => gcp_sm::secret_id(path),
        }
    }
}

// ------------------------------------------------------------------ plan

/// The values of one entry, as stored: UTF-8 values as they are, other
/// values standard base64 (their keys in `binary`). Zeroized on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub values: BTreeMap<String, String>,
    pub binary: BTreeSet<String>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("binary", &self.binary)
            .finish()
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        for v in self.values.values_mut() {
            v.zeroize();
        }
    }
}

impl Entry {
    pub fn from_data(data: &BTreeMap<String, Vec<u8>>) -> Entry {
        let mut e = Entry::default();
        for (k, v) in data {
            match std::str::from_utf8(v) {
                Ok(s) => {
                    e.values.insert(k.clone(), s.to_string());
                }
                Err(_) => {
                    e.values.insert(
                        k.clone(),
                        base64::engine::general_purpose::STANDARD.encode(v),
                    );
                    e.binary.insert(k.clone());
                }
            }
        }
        e
    }

    /// The stored form: a JSON object, keys sorted.
    pub fn to_json(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(serde_json::to_string(&self.values).expect("string map"))
    }

    /// Parses a stored entry; `None` when it is not a flat object of strings
    /// (then it differs from anything ksec would write).
    pub fn parse_values(s: &str) -> Option<BTreeMap<String, String>> {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        values_of(&v)
    }
}

/// A JSON object of strings → map; anything else → `None`.
pub fn values_of(v: &serde_json::Value) -> Option<BTreeMap<String, String>> {
    let m = v.as_object()?;
    let mut out = BTreeMap::new();
    for (k, v) in m {
        out.insert(k.clone(), v.as_str()?.to_string());
    }
    Some(out)
}

/// One Secret's planned entry.
#[derive(Debug)]
pub struct Item {
    pub file: PathBuf,
    pub env: String,
    pub namespace: String,
    pub name: String,
    /// Logical path: `prefix/rendered template`.
    pub path: String,
    /// The backend's name for it (Azure maps the path, see [`azure_kv::secret_name`]).
    pub id: String,
    /// `type` of the Secret (`Opaque` when unset).
    pub secret_type: String,
    pub labels: serde_json::Map<String, serde_json::Value>,
    pub annotations: serde_json::Map<String, serde_json::Value>,
    pub entry: Entry,
}

impl Item {
    pub fn secret(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Renders `{env}`, `{namespace}`, `{name}`; other braces are an error.
pub fn render_template(tpl: &str, env: &str, ns: &str, name: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = tpl;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let j = after
            .find('}')
            .ok_or_else(|| format!("{tpl:?}: unclosed '{{'"))?;
        out.push_str(match &after[..j] {
            "env" => env,
            "namespace" => ns,
            "name" => name,
            other => {
                return Err(format!(
                    "{tpl:?}: unknown placeholder {{{other}}} (use {{env}}, {{namespace}}, {{name}})"
                ));
            }
        });
        rest = &after[j + 1..];
    }
    if rest.contains('}') {
        return Err(format!("{tpl:?}: stray '}}'"));
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a template before any Secret is read: it must name the Secret
/// (`{name}`) and its namespace, or two Secrets would share an entry.
pub fn check_template(tpl: &str) -> Result<(), ExportError> {
    render_template(tpl, "e", "n", "s").map_err(ExportError::Template)?;
    if !tpl.contains("{name}") || !tpl.contains("{namespace}") {
        return Err(ExportError::Template(format!(
            "{tpl:?}: must contain {{namespace}} and {{name}} so every Secret gets its own entry"
        )));
    }
    Ok(())
}

/// Secrets → entries. Refuses (naming file and Secret) a path that is not a
/// valid entry name, and two Secrets that would land in one entry.
pub fn plan(
    secrets: &[DesiredSecret],
    target: &Target,
    template: &str,
) -> Result<Vec<Arc<Item>>, ExportError> {
    check_template(template)?;
    let mut items = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for s in secrets {
        let secret = format!("{}/{}", s.namespace, s.name);
        let plan_err = |reason: String| ExportError::Plan {
            file: s.file.clone(),
            secret: secret.clone(),
            reason,
        };
        let rendered =
            render_template(template, &s.env, &s.namespace, &s.name).map_err(plan_err)?;
        let path = match target.prefix() {
            "" => rendered.trim_matches('/').to_string(),
            p => format!("{p}/{}", rendered.trim_matches('/')),
        };
        if path
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(plan_err(format!(
                "entry path {path:?} has an empty, '.' or '..' segment (is the environment known?)"
            )));
        }
        let id = target.entry_id(&path).map_err(plan_err)?;
        if let Some(prev) = seen.insert(id.clone(), secret.clone()) {
            return Err(plan_err(format!(
                "maps to entry {id:?}, which Secret {prev} also maps to"
            )));
        }
        let meta = |k: &str| {
            s.object
                .pointer(&format!("/metadata/{k}"))
                .and_then(|v| v.as_object())
                .cloned()
                .unwrap_or_default()
        };
        items.push(Arc::new(Item {
            file: s.file.clone(),
            env: s.env.clone(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            path,
            id,
            secret_type: s
                .object
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("Opaque")
                .to_string(),
            labels: meta("labels"),
            annotations: meta("annotations"),
            entry: Entry::from_data(&s.data),
        }));
    }
    Ok(items)
}

// ------------------------------------------------------------------ backends

/// What is stored at an entry now.
#[derive(Default)]
pub struct Remote {
    /// Carries ksec's marker.
    pub owned: bool,
    /// The current values; `None` when there is no readable current value
    /// (metadata only, deleted) or it is not a flat object of strings.
    pub values: Option<BTreeMap<String, String>>,
    /// The backend's current version (KV v2 check-and-set).
    pub version: Option<u64>,
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(m) = &mut self.values {
            for v in m.values_mut() {
                v.zeroize();
            }
        }
    }
}

/// One secrets manager. `read` returns `None` when there is no entry at all.
/// `write` stores `item.entry` with ksec's marker; `prev` is what `read` saw
/// (Vault uses its version for check-and-set).
pub trait Backend: Send + Sync + 'static {
    /// Where an entry lives, for reports (`secret/data/prod/…`, an ARN-less name, a URL).
    fn location(&self, id: &str) -> String;
    fn read(&self, id: &str) -> impl Future<Output = Result<Option<Remote>, BackendError>> + Send;
    fn write(
        &self,
        item: &Item,
        prev: Option<&Remote>,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

// ------------------------------------------------------------------ run

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Written (new entry or new version) and read back equal.
    Exported,
    /// Already equal: nothing written.
    Unchanged,
    /// An entry without ksec's marker is there; not touched (`--force` overrides).
    SkippedForeign,
    Failed,
    /// `--dry-run`: would create / update.
    WouldCreate,
    WouldUpdate,
}

/// One Secret's result. Names only.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub secret: String,
    pub file: PathBuf,
    pub env: String,
    pub entry: String,
    pub status: Status,
    pub keys: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

#[derive(Clone, Default)]
pub struct Options {
    pub dry_run: bool,
    /// Overwrite (and claim) entries that lack ksec's marker.
    pub force: bool,
    /// Secrets in flight at once (at least 1).
    pub concurrency: usize,
    /// Called with (done, total) after each Secret.
    pub progress: Option<Progress>,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub exported: usize,
    pub unchanged: usize,
    pub skipped_foreign: usize,
    pub failed: usize,
    pub would_write: usize,
}

impl Summary {
    pub fn of(outcomes: &[Outcome]) -> Summary {
        let mut s = Summary::default();
        for o in outcomes {
            match o.status {
                Status::Exported => s.exported += 1,
                Status::Unchanged => s.unchanged += 1,
                Status::SkippedForeign => s.skipped_foreign += 1,
                Status::Failed => s.failed += 1,
                Status::WouldCreate | Status::WouldUpdate => s.would_write += 1,
            }
        }
        s
    }

    /// Everything in place (or, in a dry run, nothing in the way).
    pub fn ok(&self) -> bool {
        self.failed == 0 && self.skipped_foreign == 0
    }
}

/// Exports every item, at most `concurrency` at a time, and returns one
/// outcome per item in the items' order. Never stops at the first failure:
/// the report says exactly which Secrets were and were not exported, and a
/// re-run (compare first) finishes the job.
pub async fn run<B: Backend>(backend: Arc<B>, items: &[Arc<Item>], opts: &Options) -> Vec<Outcome> {
    let total = items.len();
    let done = Arc::new(AtomicUsize::new(0));
    let n = opts.concurrency.max(1);
    let mut out: Vec<(usize, Outcome)> = futures_util::stream::iter(items.iter().enumerate())
        .map(|(i, item)| {
            let (backend, item, opts, done) =
                (backend.clone(), item.clone(), opts.clone(), done.clone());
            async move {
                let o = export_one(&*backend, &item, &opts).await;
                let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                if let Some(p) = &opts.progress {
                    p(d, total);
                }
                (i, o)
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}

async fn export_one<B: Backend>(backend: &B, item: &Item, opts: &Options) -> Outcome {
    let mut o = Outcome {
        secret: item.secret(),
        file: item.file.clone(),
        env: item.env.clone(),
        entry: backend.location(&item.id),
        status: Status::Failed,
        keys: item.entry.values.keys().cloned().collect(),
        error_class: None,
        error: None,
    };
    match step(backend, item, opts).await {
        Ok(s) => o.status = s,
        Err(e) => {
            o.error_class = Some(e.class);
            o.error = Some(e.detail);
        }
    }
    o
}

async fn step<B: Backend>(
    backend: &B,
    item: &Item,
    opts: &Options,
) -> Result<Status, BackendError> {
    let remote = backend.read(&item.id).await?;
    if let Some(r) = &remote {
        if !r.owned && !opts.force {
            return Ok(Status::SkippedForeign);
        }
        if r.owned && r.values.as_ref() == Some(&item.entry.values) {
            return Ok(Status::Unchanged);
        }
    }
    if opts.dry_run {
        return Ok(if remote.is_some() {
            Status::WouldUpdate
        } else {
            Status::WouldCreate
        });
    }
    backend.write(item, remote.as_ref()).await?;
    // Verify: read back with a fresh request and compare with the source.
    let back = backend.read(&item.id).await?;
    match back {
        Some(r) if r.owned && r.values.as_ref() == Some(&item.entry.values) => Ok(Status::Exported),
        Some(r) if !r.owned => Err(BackendError::new(
            ErrorClass::VerifyMismatch,
            "read back without ksec's ownership marker",
        )),
        Some(_) => Err(BackendError::new(
            ErrorClass::VerifyMismatch,
            "the entry read back differs from the decrypted source",
        )),
        None => Err(BackendError::new(
            ErrorClass::VerifyMismatch,
            "the entry is missing when read back",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("vault+http://127.0.0.1:8200/secret/ksec").unwrap(),
            Target::Vault {
                addr: "http://127.0.0.1:8200".into(),
                mount: "secret".into(),
                prefix: "ksec".into()
            }
        );
        assert_eq!(
            Target::parse("vault://vault.internal:8200/secret").unwrap(),
            Target::Vault {
                addr: "https://vault.internal:8200".into(),
                mount: "secret".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            Target::parse("aws-sm://eu-west-1/ksec").unwrap(),
            Target::AwsSm {
                region: "eu-west-1".into(),
                prefix: "ksec".into()
            }
        );
        assert_eq!(
            Target::parse("azure-kv://myvault").unwrap(),
            Target::AzureKv {
                url: "https://myvault.vault.azure.net".into(),
                prefix: "".into()
            }
        );
        assert!(Target::parse("vault://h").is_err());
        assert!(Target::parse("s3://x").is_err());
        assert!(Target::parse("vault://h/secret/../x").is_err());
        assert!(Target::parse("aws-sm://EU_WEST/x").is_err());
    }

    #[test]
    fn templates_render_and_refuse() {
        assert_eq!(
            render_template(DEFAULT_TEMPLATE, "prod", "web", "db").unwrap(),
            "prod/web/db"
        );
        assert!(render_template("{env}/{nope}", "a", "b", "c").is_err());
        assert!(render_template("{env", "a", "b", "c").is_err());
        assert!(check_template("{env}/{name}").is_err());
        assert!(check_template("k8s/{namespace}-{name}").is_ok());
    }

    /// A store that drops one key of what it is given: the read-back must
    /// catch it (verify-mismatch), never report it as exported.
    struct Lossy(std::sync::Mutex<HashMap<String, BTreeMap<String, String>>>);

    impl Backend for Lossy {
        fn location(&self, id: &str) -> String {
            id.to_string()
        }
        async fn read(&self, id: &str) -> Result<Option<Remote>, BackendError> {
            Ok(self.0.lock().unwrap().get(id).map(|v| Remote {
                owned: true,
                values: Some(v.clone()),
                version: None,
            }))
        }
        async fn write(&self, item: &Item, _: Option<&Remote>) -> Result<(), BackendError> {
            let mut v = item.entry.values.clone();
            v.remove("b");
            self.0.lock().unwrap().insert(item.id.clone(), v);
            Ok(())
        }
    }

    #[test]
    fn a_write_that_reads_back_different_is_a_failure() {
        let mut data = BTreeMap::new();
        data.insert("a".to_string(), b"1".to_vec());
        data.insert("b".to_string(), b"2".to_vec());
        let item = Arc::new(Item {
            file: "f.yaml".into(),
            env: "prod".into(),
            namespace: "ns".into(),
            name: "s".into(),
            path: "prod/ns/s".into(),
            id: "prod/ns/s".into(),
            secret_type: "Opaque".into(),
            labels: Default::default(),
            annotations: Default::default(),
            entry: Entry::from_data(&data),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let b = Arc::new(Lossy(Default::default()));
        let out = rt.block_on(run(b, &[item], &Options::default()));
        assert_eq!(out[0].status, Status::Failed);
        assert_eq!(out[0].error_class, Some(ErrorClass::VerifyMismatch));
        assert!(!Summary::of(&out).ok());
    }

    #[test]
    fn binary_values_are_base64_and_debug_is_redacted() {
        let mut d = BTreeMap::new();
        d.insert("bin".to_string(), vec![0xff, 0x00, 0x10]);
        d.insert("txt".to_string(), b"CANARY-9".to_vec());
        let e = Entry::from_data(&d);
        assert_eq!(e.values["bin"], "/wAQ");
        assert!(e.binary.contains("bin") && !e.binary.contains("txt"));
        assert!(!format!("{e:?}").contains("CANARY"));
        assert_eq!(Entry::parse_values(&e.to_json()).unwrap(), e.values);
    }
}
