//! File-level operations the CLI and the cluster code share: encrypt a
//! plaintext file, open an encrypted one, re-encrypt after a change.

pub mod exec;

use std::path::Path;

use chrono::Utc;

use crate::keys::{KeyError, KeyRing, Opened};
use crate::recipients::{ConfigError, Plan};
use crate::sops::engine::{self, Stash, WalkError};
use crate::sops::store::{self, StoreError};
use crate::sops::{DataKey, Documents, Format, Metadata, Rule, cipher};

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Walk(#[from] WalkError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "MAC mismatch: the file was changed outside sops/ksec, or values were moved (refusing to decrypt; --ignore-mac overrides)"
    )]
    MacMismatch,
    #[error("the file has no MAC (refusing to decrypt; --ignore-mac overrides)")]
    MacMissing,
    #[error("the MAC does not decrypt: {0}")]
    MacUndecryptable(cipher::DecryptError),
    #[error("invalid sops metadata: {0}")]
    Metadata(String),
    #[error("{0} (write the keys out: the MAC cannot bind where such values end up)")]
    Shape(crate::manifest::ShapeProblem),
}

impl OpError {
    /// 2 for configuration/usage problems, 1 for a failed operation.
    pub fn exit_code(&self) -> i32 {
        match self {
            OpError::Config(_) => 2,
            OpError::Key(KeyError::Config(_)) => 2,
            _ => 1,
        }
    }
}

/// The selection rule ksec uses when the configuration names none: the
/// Kubernetes rule for files holding Secrets, none for binary, sops's default otherwise.
pub fn default_rule(format: Format, docs: &Documents) -> Rule {
    if format == Format::Binary {
        Rule::None
    } else if crate::manifest::has_secret(docs) {
        Rule::EncryptedRegex(
            regex::Regex::new(crate::sops::rules::KUBERNETES_SECRET_REGEX).expect("static regex"),
        )
    } else {
        Rule::default()
    }
}

fn now_rfc3339() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Encrypts values, stamps lastmodified and the MAC into `meta`.
pub fn seal(
    docs: &mut Documents,
    meta: &mut Metadata,
    key: &DataKey,
    stash: Option<&Stash>,
) -> Result<(), OpError> {
    let mac = engine::encrypt_docs(&mut docs.0, key, &meta.rule, meta.mac_only_encrypted, stash)?;
    meta.lastmodified = now_rfc3339();
    let aad = meta.mac_aad().map_err(OpError::Metadata)?;
    meta.mac = cipher::encrypt(key, mac.as_bytes(), "str", &aad, None);
    Ok(())
}

/// The annotation `kubectl apply` writes: the whole object as JSON, so on a
/// Secret its values in plaintext. Never needed in Git (kubectl rewrites it).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An encrypted file, and what was dropped from the plaintext on the way.
#[derive(Debug)]
pub struct Sealed {
    pub bytes: Vec<u8>,
    /// (document index, key path) of each last-applied annotation removed.
    pub dropped: Vec<(usize, String)>,
}

/// Encrypts a plaintext file's bytes according to `plan`. A Secret's
/// last-applied annotation is removed first: it would stay in clear text
/// (only data/stringData are encrypted) while holding every value.
pub fn encrypt(
    bytes: &[u8],
    format: Format,
    plan: &Plan,
    ring: &KeyRing,
) -> Result<Sealed, OpError> {
    encrypt_to(bytes, format, format, plan, ring)
}

/// [`encrypt`], writing the result in another store format (sops's `--output-type`).
pub fn encrypt_to(
    bytes: &[u8],
    format: Format,
    out_format: Format,
    plan: &Plan,
    ring: &KeyRing,
) -> Result<Sealed, OpError> {
    let mut docs = store::load_plain(format, bytes)?;
    refuse_unbindable(&docs)?;
    let dropped = drop_last_applied(&mut docs);
    let rule = if format == Format::Binary {
        Rule::None
    } else {
        plan.rule
            .clone()
            .unwrap_or_else(|| default_rule(format, &docs))
    };
    let key = DataKey::generate();
    let (groups, threshold) = ring.wrap(&plan.groups, plan.threshold, &key)?;
    let mut meta = Metadata::new(groups, threshold, rule, plan.mac_only_encrypted);
    seal(&mut docs, &mut meta, &key, None)?;
    let bytes = store::emit_encrypted(out_format, &docs, &meta, plan.yaml_indent)?;
    Ok(Sealed { bytes, dropped })
}

/// Removes the last-applied annotation from every Secret (and Secret item
/// of a `*List`, at any depth); returns where each one was.
pub fn drop_last_applied(docs: &mut Documents) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (di, d) in docs.0.iter_mut().enumerate() {
        drop_in(d, di, String::new(), 0, &mut out);
    }
    out
}

fn drop_in(
    obj: &mut crate::sops::Map,
    doc: usize,
    prefix: String,
    depth: usize,
    out: &mut Vec<(usize, String)>,
) {
    use crate::sops::{SeqItem, Value};
    if drop_from(obj) {
        out.push((doc, format!("{prefix}metadata.annotations.{LAST_APPLIED}")));
    }
    if depth > 32 || !obj.str_of("kind").is_some_and(|k| k.ends_with("List")) {
        return;
    }
    if let Some(Value::Seq(items)) = obj.get_mut("items") {
        let elems = items.0.iter_mut().filter_map(|i| match i {
            SeqItem::Elem(Value::Map(m)) => Some(m),
            _ => None,
        });
        for (ii, m) in elems.enumerate() {
            drop_in(m, doc, format!("{prefix}items[{ii}]."), depth + 1, out);
        }
    }
}

fn drop_from(obj: &mut crate::sops::Map) -> bool {
    if !crate::manifest::is_secret(obj) {
        return false;
    }
    let Some(crate::sops::Value::Map(meta)) = obj.get_mut("metadata") else {
        return false;
    };
    let Some(crate::sops::Value::Map(ann)) = meta.get_mut("annotations") else {
        return false;
    };
    let removed = ann.remove(LAST_APPLIED).is_some();
    if removed && ann.pairs().next().is_none() {
        meta.remove("annotations");
    }
    removed
}

/// A Secret whose namespace comes from a merge key or is not a plain string
/// would be refused wherever it is consumed; refuse it before encrypting.
fn refuse_unbindable(docs: &Documents) -> Result<(), OpError> {
    use crate::manifest::ShapeKind;
    match crate::manifest::secret_shape(docs)
        .into_iter()
        .find(|p| matches!(p.kind, ShapeKind::MergeKey | ShapeKind::NamespaceNotString))
    {
        Some(p) => Err(OpError::Shape(p)),
        None => Ok(()),
    }
}

/// An opened (decrypted) file, with what is needed to write it back.
pub struct OpenedFile {
    pub docs: Documents,
    pub meta: Metadata,
    pub key: DataKey,
    pub stash: Stash,
    pub opened: Vec<Opened>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    pub ignore_mac: bool,
}

/// Parses and decrypts an encrypted file, verifying the MAC.
pub fn open(
    bytes: &[u8],
    format: Format,
    ring: &KeyRing,
    opts: OpenOptions,
) -> Result<OpenedFile, OpError> {
    let (docs, meta) = store::load_encrypted(format, bytes)?;
    open_parsed(docs, meta, ring, opts)
}

/// [`open`] for a file already parsed (callers that looked at its metadata first).
pub fn open_parsed(
    docs: Documents,
    meta: Metadata,
    ring: &KeyRing,
    opts: OpenOptions,
) -> Result<OpenedFile, OpError> {
    let (key, opened) = ring.recover(&meta)?;
    open_with_key(docs, meta, key, opened, opts)
}

/// Decrypts with a known data key (tests, vectors, and `open`).
pub fn open_with_key(
    mut docs: Documents,
    meta: Metadata,
    key: DataKey,
    opened: Vec<Opened>,
    opts: OpenOptions,
) -> Result<OpenedFile, OpError> {
    let mut stash = Stash::default();
    let mut warnings = Vec::new();
    let mac = engine::decrypt_docs(
        &mut docs.0,
        &key,
        &meta.rule,
        meta.mac_only_encrypted,
        Some(&mut stash),
        &mut warnings,
    )?;
    verify_mac(&meta, &key, &mac, opts, &mut warnings)?;
    Ok(OpenedFile {
        docs,
        meta,
        key,
        stash,
        opened,
        warnings,
    })
}

fn verify_mac(
    meta: &Metadata,
    key: &DataKey,
    computed: &str,
    opts: OpenOptions,
    warnings: &mut Vec<String>,
) -> Result<(), OpError> {
    let check = || -> Result<(), OpError> {
        if meta.mac.is_empty() {
            return Err(OpError::MacMissing);
        }
        let aad = meta.mac_aad().map_err(OpError::Metadata)?;
        let (stored, _, _) =
            cipher::decrypt(key, &meta.mac, &aad).map_err(OpError::MacUndecryptable)?;
        if stored.as_slice() != computed.as_bytes() {
            return Err(OpError::MacMismatch);
        }
        Ok(())
    };
    match check() {
        Ok(()) => Ok(()),
        Err(e) if opts.ignore_mac => {
            warnings.push(format!("WARNING: MAC NOT VERIFIED (--ignore-mac): {e}"));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Re-encrypts an opened file after a change, keeping its data key and the
/// IVs of unchanged values (small git diffs).
pub fn reseal(
    f: &mut OpenedFile,
    format: Format,
    indent: Option<usize>,
) -> Result<Vec<u8>, OpError> {
    let mut docs = f.docs.clone();
    seal(&mut docs, &mut f.meta, &f.key, Some(&f.stash))?;
    Ok(store::emit_encrypted(format, &docs, &f.meta, indent)?)
}

/// Whether bytes hold an encrypted file of this format (sops's `filestatus`).
/// A file refused by a resource bound (an alias bomb) is neither: an error.
pub fn is_encrypted(bytes: &[u8], format: Format) -> Result<bool, StoreError> {
    match store::load_encrypted(format, bytes) {
        Ok(_) => Ok(true),
        Err(e @ StoreError::Limit { .. }) => Err(e),
        Err(_) => Ok(false),
    }
}

/// Reads a file as bytes, naming it in the error.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        return Ok(v);
    }
    std::fs::read(path)
}
