//! From manifest files to the Secrets to apply or export, without a
//! cluster: open each file ([`Manifest`]), decrypt it in memory (MAC
//! verified), and check every Secret against the environment boundary
//! ([`Boundary::admit`]) before anything is written anywhere. `ksec apply`,
//! `ksec export` and the controller's sources go through [`load`] or
//! [`open_all`]; both share [`desire`], so a Secret is admitted by one rule.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value as J;

use crate::keys::KeyRing;
use crate::manifest::desired::secret_parts;
use crate::manifest::{
    DecryptedObjects, EncryptedManifest, IdentityError, Manifest, ManifestError, NamespacePolicy,
    PlainManifest,
};
use crate::ops::{self, OpenOptions};
use crate::recipients::{self, Boundary, BoundaryRefusal, EncryptedFor, RecipientsDir, ScopeError};

pub use crate::manifest::DesiredSecret;

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

impl SourceOptions {
    fn policy(&self) -> NamespacePolicy<'_> {
        NamespacePolicy {
            default: Some(
                self.namespace
                    .as_deref()
                    .unwrap_or(self.default_namespace.as_str()),
            ),
            only: self.namespace.as_deref(),
        }
    }
}

/// A non-Secret object (`--all`).
#[derive(Clone, Debug)]
pub struct DesiredOther {
    pub file: PathBuf,
    pub namespace: Option<String>,
    pub object: J,
}

impl DesiredOther {
    fn new(file: &Path, object: J) -> DesiredOther {
        DesiredOther {
            file: file.to_path_buf(),
            namespace: object
                .pointer("/metadata/namespace")
                .and_then(J::as_str)
                .map(str::to_string),
            object,
        }
    }
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

impl Loaded {
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

    fn extend(&mut self, o: Loaded) {
        self.secrets.extend(o.secrets);
        self.others.extend(o.others);
        self.skipped.extend(o.skipped);
        self.refused.extend(o.refused);
    }
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

impl From<ScopeError> for SourceError {
    fn from(e: ScopeError) -> SourceError {
        match e {
            ScopeError::Config(c) => SourceError::Config(c),
            ScopeError::UnknownEnv { env, dir } => SourceError::UnknownEnv(env, dir),
            ScopeError::EnvWithoutRecipients => SourceError::NoRecipientsDir(PathBuf::new()),
        }
    }
}

/// Reads, decrypts and checks every file (in parallel). Per-file problems
/// become refusals; only configuration errors fail the call.
pub fn load(
    files: &[PathBuf],
    ring: &KeyRing,
    opts: &SourceOptions,
) -> Result<Loaded, SourceError> {
    let plan = boundaries(files, opts)?;
    let outcomes: Vec<Loaded> = plan
        .par_iter()
        .map(|(f, b)| load_file(f, b, ring, opts))
        .collect();
    let mut out = Loaded::default();
    for o in outcomes {
        out.extend(o);
    }
    let dups = duplicates(&out.secrets);
    out.refused.extend(dups);
    Ok(out)
}

/// Each file with its boundary: one `recipients/` per folder, loaded once.
fn boundaries(
    files: &[PathBuf],
    opts: &SourceOptions,
) -> Result<Vec<(PathBuf, Boundary)>, SourceError> {
    let scope =
        |d: Arc<RecipientsDir>| Boundary::with_shared(Some(d), opts.env.clone(), BTreeSet::new());
    let fixed = match &opts.recipients_dir {
        Some(d) => Some(scope(Arc::new(RecipientsDir::load(d)?))?),
        None => None,
    };
    let mut by_dir: HashMap<PathBuf, Boundary> = HashMap::new();
    let mut plan = Vec::with_capacity(files.len());
    for f in files {
        let b = match &fixed {
            Some(b) => b.clone(),
            None => {
                let parent = std::path::absolute(f)
                    .unwrap_or_else(|_| f.clone())
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                if !by_dir.contains_key(&parent) {
                    let d = RecipientsDir::find(f)?
                        .ok_or_else(|| SourceError::NoRecipientsDir(f.clone()))?;
                    by_dir.insert(parent.clone(), scope(Arc::new(d))?);
                }
                by_dir[&parent].clone()
            }
        };
        plan.push((f.clone(), b));
    }
    Ok(plan)
}

/// The same Secret from two files: which one wins would be arbitrary.
fn duplicates(secrets: &[DesiredSecret]) -> Vec<Refusal> {
    let mut seen: HashMap<(&str, &str), &Path> = HashMap::new();
    let mut dups = Vec::new();
    for s in secrets {
        if let Some(prev) = seen.insert((&s.namespace, &s.name), &s.file) {
            dups.push(Refusal {
                file: s.file.clone(),
                secret: Some(format!("{}/{}", s.namespace, s.name)),
                reason: format!("also defined in {}", prev.display()),
            });
        }
    }
    dups
}

fn load_file(file: &Path, boundary: &Boundary, ring: &KeyRing, opts: &SourceOptions) -> Loaded {
    let bytes = match ops::read(file) {
        Ok(b) => b,
        Err(e) => return Loaded::refuse(file, None, format!("cannot read: {e}")),
    };
    match Manifest::open(file, &bytes) {
        Ok(Manifest::Encrypted(m)) => load_encrypted(file, m, boundary, ring, opts),
        Ok(Manifest::Plain(p)) => load_plain(file, &p, opts),
        Err(ManifestError::NotAManifest) => Loaded::skip(file, "not a YAML or JSON manifest"),
        Err(e) => Loaded::refuse(file, None, e.to_string()),
    }
}

/// An encrypted file: checks that need no key first (shape, `--env`,
/// `mac_only_encrypted`), then decryption, then each Secret.
fn load_encrypted(
    file: &Path,
    m: EncryptedManifest,
    boundary: &Boundary,
    ring: &KeyRing,
    opts: &SourceOptions,
) -> Loaded {
    if let Some(p) = m.shape_problem() {
        return Loaded::refuse(file, None, format!("probable tampering: {p}"));
    }
    let encrypted_for = boundary.encrypted_for(&m.meta);
    if let Err(why) = boundary.file_in_env(&encrypted_for) {
        return Loaded::skip(file, why);
    }
    if !m.secrets().is_empty() && m.meta.mac_only_encrypted && !opts.allow_mac_only {
        return Loaded::refuse(
            file,
            None,
            "mac_only_encrypted: the MAC does not cover the Secret's namespace and name, so a moved file would not be detected (re-encrypt without it, or pass --allow-mac-only)",
        );
    }
    let lastmodified = m.lastmodified();
    let objects = match decrypt(file, m, ring) {
        Ok(o) => o,
        Err(e) => return Loaded::refuse(file, None, format!("cannot decrypt: {e}")),
    };
    let ctx = Admission {
        label: file,
        policy: opts.policy(),
        boundary,
        encrypted_for: &encrypted_for,
        lastmodified,
    };
    collect(&ctx, objects, opts.all)
}

/// Decrypts (MAC verified) and lists the objects; warnings are logged.
fn decrypt(
    file: &Path,
    m: EncryptedManifest,
    ring: &KeyRing,
) -> Result<DecryptedObjects, ops::OpError> {
    let (docs, meta) = m.into_parts();
    let opened = ops::open_parsed(docs, meta, ring, OpenOptions::default())?;
    for w in &opened.warnings {
        tracing::warn!("{}: {w}", file.display());
    }
    Ok(DecryptedObjects::of(&opened.docs))
}

fn load_plain(file: &Path, p: &PlainManifest, opts: &SourceOptions) -> Loaded {
    if p.has_secret() {
        return Loaded::refuse(
            file,
            None,
            "holds a plaintext Secret; ksec apply only applies encrypted Secrets (ksec encrypt it first)",
        );
    }
    if !opts.all {
        return Loaded::skip(file, "plain manifest (pass --all to apply it too)");
    }
    let others = DecryptedObjects::of(&p.docs).others;
    Loaded {
        others: others
            .into_iter()
            .map(|j| DesiredOther::new(file, j))
            .collect(),
        ..Default::default()
    }
}

/// The decrypted objects of one file → Secrets admitted, skipped (another
/// `--env`) or refused, and (`--all`) its other objects.
fn collect(ctx: &Admission<'_>, objects: DecryptedObjects, all: bool) -> Loaded {
    let file = ctx.label;
    let mut out = Loaded::default();
    if all {
        out.others = objects
            .others
            .into_iter()
            .map(|j| DesiredOther::new(file, j))
            .collect();
    }
    if objects.secrets.is_empty() && out.others.is_empty() {
        return Loaded::skip(file, "no Secret in it (pass --all to apply other objects)");
    }
    for j in &objects.secrets {
        match desire(ctx, j) {
            Ok(s) => out.secrets.push(s),
            Err(r) if r.refusal.is_out_of_scope() => out.skipped.push(Skipped {
                file: file.to_path_buf(),
                reason: r.refusal.to_string(),
            }),
            Err(r) => out.refused.push(Refusal {
                file: file.to_path_buf(),
                secret: r.secret,
                reason: r.refusal.to_string(),
            }),
        }
    }
    out
}

/// Why [`open_one`] or [`open_all`] refused a document. The controller maps
/// these to its condition reasons; messages carry names, never values.
#[derive(Debug, thiserror::Error)]
pub enum OpenRefusal {
    /// Plaintext, or not a SOPS document at all.
    #[error("{0}")]
    NotEncrypted(String),
    /// Decryption or MAC verification failed (see [`ops::OpError`]).
    #[error("cannot decrypt: {0}")]
    Decrypt(#[source] ops::OpError),
    /// The environment boundary ([`Boundary::admit`]).
    #[error("{0}")]
    Namespace(BoundaryRefusal),
    /// No name, no namespace, or a namespace other than the one allowed.
    #[error("{0}")]
    Identity(IdentityError),
    #[error("{0}")]
    Invalid(String),
}

impl OpenRefusal {
    /// Another `--env`'s Secret: skipped by a run, not an error.
    pub fn is_out_of_scope(&self) -> bool {
        matches!(self, OpenRefusal::Namespace(b) if b.is_out_of_scope())
    }
}

/// Where a single document ([`open_one`]) may land.
#[derive(Clone, Copy, Debug)]
pub struct OneOptions<'a> {
    /// The only namespace the Secret may name (absent: it goes there).
    pub namespace: &'a str,
    pub boundary: &'a Boundary,
    pub allow_mac_only: bool,
}

/// Where the Secrets of one file ([`open_all`]) may land.
#[derive(Clone, Copy, Debug)]
pub struct FileOptions<'a> {
    /// Where Secrets without `metadata.namespace` go, and which one they may name.
    pub policy: NamespacePolicy<'a>,
    /// Each Secret's namespace is admitted here ([`Boundary::default`]: anywhere).
    pub boundary: &'a Boundary,
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
    let m = match Manifest::open_document(bytes) {
        Ok(m) => m,
        Err(e) => return Err(not_encrypted(e)),
    };
    let file = FileOptions {
        policy: NamespacePolicy {
            default: Some(opts.namespace),
            only: Some(opts.namespace),
        },
        boundary: opts.boundary,
        allow_mac_only: opts.allow_mac_only,
    };
    let mut all = open_manifest(label, m, ring, file)?;
    if all.len() != 1 {
        return Err(OpenRefusal::Invalid(format!(
            "holds {} Secrets; exactly one is expected",
            all.len()
        )));
    }
    all.pop().expect("one").map_err(|r| r.refusal)
}

/// Decrypts one in-memory file (YAML, several documents or a `List`, or
/// JSON; by `label`'s extension) once, MAC verified, and returns every
/// Secret in it, in document order (that of [`EncryptedManifest::secrets`]),
/// each checked against the boundary. A problem of the whole file
/// (plaintext, unparsable, no Secret, `mac_only_encrypted`, decryption or
/// MAC failure) is the outer error: none of its Secrets may be applied.
pub fn open_all(
    label: &Path,
    bytes: &[u8],
    ring: &KeyRing,
    opts: FileOptions<'_>,
) -> Result<Vec<Result<DesiredSecret, SecretRefusal>>, OpenRefusal> {
    let m = match Manifest::open(label, bytes) {
        Ok(m) => m,
        Err(e) => return Err(not_encrypted(e)),
    };
    open_manifest(label, m, ring, opts)
}

fn not_encrypted(e: ManifestError) -> OpenRefusal {
    OpenRefusal::Invalid(e.to_string())
}

/// [`open_all`] once the file is parsed.
pub fn open_manifest(
    label: &Path,
    m: Manifest,
    ring: &KeyRing,
    opts: FileOptions<'_>,
) -> Result<Vec<Result<DesiredSecret, SecretRefusal>>, OpenRefusal> {
    let Manifest::Encrypted(m) = m else {
        return Err(OpenRefusal::NotEncrypted(
            "not SOPS-encrypted (no sops metadata); plaintext Secrets are refused".into(),
        ));
    };
    let encrypted_for = opts.boundary.encrypted_for(&m.meta);
    if m.secrets().is_empty() {
        return Err(OpenRefusal::Invalid("holds no Secret".into()));
    }
    if let Some(p) = m.shape_problem() {
        return Err(OpenRefusal::Invalid(format!("probable tampering: {p}")));
    }
    if m.meta.mac_only_encrypted && !opts.allow_mac_only {
        return Err(OpenRefusal::Invalid(
            "mac_only_encrypted: the MAC does not cover the Secret's namespace and name".into(),
        ));
    }
    let lastmodified = m.lastmodified();
    let objects = decrypt(label, m, ring).map_err(OpenRefusal::Decrypt)?;
    let ctx = Admission {
        label,
        policy: opts.policy,
        boundary: opts.boundary,
        encrypted_for: &encrypted_for,
        lastmodified,
    };
    Ok(objects.secrets.iter().map(|j| desire(&ctx, j)).collect())
}

/// What one file's Secrets are admitted against.
struct Admission<'a> {
    label: &'a Path,
    policy: NamespacePolicy<'a>,
    boundary: &'a Boundary,
    encrypted_for: &'a EncryptedFor,
    lastmodified: Option<i64>,
}

/// One decrypted Secret: its identity, the boundary, its data.
fn desire(ctx: &Admission<'_>, j: &J) -> Result<DesiredSecret, SecretRefusal> {
    let (ns, name) = ctx.policy.identify_json(j).map_err(|e| SecretRefusal {
        secret: e.secret(),
        refusal: OpenRefusal::Identity(e),
    })?;
    let refuse = |refusal| SecretRefusal {
        secret: Some(format!("{ns}/{name}")),
        refusal,
    };
    let env = ctx
        .boundary
        .admit(&ns, ctx.encrypted_for)
        .map_err(|b| refuse(OpenRefusal::Namespace(b)))?;
    let (object, data) = secret_parts(j, &ns).map_err(|m| refuse(OpenRefusal::Invalid(m)))?;
    Ok(DesiredSecret {
        file: ctx.label.to_path_buf(),
        namespace: ns,
        name,
        env,
        object,
        data,
        lastmodified: ctx.lastmodified,
    })
}
