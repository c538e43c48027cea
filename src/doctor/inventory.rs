//! What a repository of manifests declares: Secrets (names, keys, recipients,
//! age — read without decrypting), workloads, service accounts and Roles.

use std::path::{Path, PathBuf};

use serde_json::Value as J;

use super::gitops::{self, FileContext, Layout, Provider};
use crate::sops::store;
use crate::sops::{Format, Metadata, Value};
use crate::workloads::{self, RefKind, SecretRef, Workload};

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
    /// Secrets that other objects make (ExternalSecret, secretGenerator, …).
    pub providers: Vec<Provider>,
    /// (namespace, name) of Secrets a consumer declares as made outside the repository.
    pub external: Vec<(String, String)>,
    /// What the run could not do but went on without (said on stderr).
    pub warnings: Vec<String>,
    /// Objects read, and how many of them doctor models.
    pub objects: usize,
    pub modelled: usize,
    /// Kinds read that doctor does not model (for "nothing to check").
    pub other_kinds: std::collections::BTreeSet<String>,
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

    /// Something other than a Secret manifest provides this Secret.
    pub fn provider(&self, ns: &str, name: &str) -> Option<&Provider> {
        self.providers
            .iter()
            .find(|p| p.namespace == ns && p.name == name)
    }

    pub fn is_external(&self, ns: &str, name: &str) -> bool {
        self.external.iter().any(|(n, s)| n == ns && s == name)
    }

    /// Adds every object in one file's bytes (multi-document YAML or JSON).
    pub fn add_bytes(&mut self, file: &Path, bytes: &[u8], default_ns: &str) {
        self.add_bytes_in(file, bytes, default_ns, &FileContext::default());
    }

    /// [`Self::add_bytes`] where GitOps tooling forces a namespace or substitutes variables.
    pub fn add_bytes_in(&mut self, file: &Path, bytes: &[u8], default_ns: &str, ctx: &FileContext) {
        let substituted;
        let bytes = match std::str::from_utf8(bytes) {
            Ok(t) if !ctx.vars.is_empty() && t.contains("${") => {
                substituted = gitops::substitute(t, &ctx.vars);
                substituted.as_bytes()
            }
            _ => bytes,
        };
        let format = match Format::from_path(file) {
            Format::Json => Format::Json,
            _ => Format::Yaml,
        };
        let (docs, meta) = match parse_any(format, bytes) {
            Ok(x) => x,
            Err(_) if is_json6902(bytes) => return,
            Err(e) => {
                self.unreadable.push((file.to_path_buf(), e));
                return;
            }
        };
        if meta.is_some() {
            for p in crate::manifest::secret_shape(&docs) {
                self.misshapen.push((file.to_path_buf(), p));
            }
        }
        for (i, d) in docs.0.iter().enumerate() {
            for obj in crate::manifest::objects(d) {
                let mut j = Value::Map(obj).to_json();
                if let (Some(ns), Some(o)) = (&ctx.namespace, j.as_object_mut()) {
                    let md = o
                        .entry("metadata")
                        .or_insert_with(|| J::Object(Default::default()));
                    if let Some(m) = md.as_object_mut() {
                        m.insert("namespace".into(), J::String(ns.clone()));
                    }
                }
                self.add_object(file, i, &j, meta.as_ref(), default_ns);
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
        let before = self.modelled_now();
        self.objects += 1;
        self.providers.extend(gitops::provided(obj, &ns, file));
        // On a Namespace, the annotation names Secrets of that namespace.
        let declared_in = if kind == "Namespace" {
            name.clone()
        } else {
            ns.clone()
        };
        for secret in gitops::declared_external(obj) {
            self.external.push((declared_in.clone(), secret));
        }
        if let Some(w) = gitops_consumer(obj, &ns) {
            self.workloads.push((w, file.to_path_buf()));
        }
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
        if self.modelled_now() > before {
            self.modelled += 1;
        } else if !kind.is_empty() && !kind.ends_with("List") {
            self.other_kinds.insert(kind.to_string());
        }
    }

    fn modelled_now(&self) -> usize {
        self.secrets.len()
            + self.workloads.len()
            + self.service_accounts.len()
            + self.roles.len()
            + self.providers.len()
            + self.external.len()
    }

    /// `kustomize build` output: each object is reported against the file
    /// it came from (found by kind and name), not the kustomization.
    fn add_rendered(&mut self, dir: &Path, out: &[u8], default_ns: &str) {
        let sources = source_index(dir);
        let fallback = dir.join("kustomization.yaml");
        let (docs, meta) = match parse_any(Format::Yaml, out) {
            Ok(x) => x,
            Err(e) => {
                self.unreadable.push((fallback, e));
                return;
            }
        };
        for (i, d) in docs.0.iter().enumerate() {
            for obj in crate::manifest::objects(d) {
                let j = Value::Map(obj).to_json();
                let key = (
                    j.get("kind").and_then(J::as_str).unwrap_or("").to_string(),
                    j.pointer("/metadata/name")
                        .and_then(J::as_str)
                        .unwrap_or("")
                        .to_string(),
                );
                let file = sources
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| fallback.clone());
                self.add_object(&file, i, &j, meta.as_ref(), default_ns);
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
                match kustomize(p) {
                    Ok(Some(out)) => {
                        inv.add_rendered(p, &out, default_ns);
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => inv.warnings.push(format!("{e}; reading the files instead")),
                }
            }
            if p.is_dir() {
                let walked = crate::fsio::walk::walk(
                    std::slice::from_ref(p),
                    crate::fsio::walk::Policy::Manifests,
                )
                .map_err(|e| InventoryError::Io(p.clone(), std::io::Error::other(e)))?;
                let files: Vec<PathBuf> = walked
                    .files
                    .into_iter()
                    .map(|f| f.path)
                    .filter(|f| !f.components().any(|c| c.as_os_str() == "recipients"))
                    .collect();
                let read: Vec<(PathBuf, Vec<u8>)> = files
                    .into_iter()
                    .map(|f| {
                        std::fs::read(&f)
                            .map(|b| (f.clone(), b))
                            .map_err(|e| InventoryError::Io(f, e))
                    })
                    .collect::<Result<_, _>>()?;
                let layout = layout(p, &read);
                for (f, b) in read {
                    let ctx = layout.context(&absolute(&f));
                    inv.add_bytes_in(&f, &b, default_ns, &ctx);
                    if !is_kustomization_file(&f) {
                        inv.files.push((f, b));
                    }
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
        // literals included): only its first line, quoted text redacted.
        let msg = format!(
            "{bin} exited with {}: {}",
            out.status,
            redact(&String::from_utf8_lossy(&out.stderr))
        );
        return Err(InventoryError::Kustomize(dir.to_path_buf(), msg));
    }
    Ok(None)
}

/// A manifest file, encrypted (with its sops metadata) or not.
fn parse_any(
    format: Format,
    bytes: &[u8],
) -> Result<(crate::sops::Documents, Option<Metadata>), String> {
    match store::load_encrypted(format, bytes) {
        Ok((d, m)) => Ok((d, Some(m))),
        Err(_) => store::load_plain(format, bytes)
            .map(|d| (d, None))
            .map_err(|e| e.to_string()),
    }
}

/// The first line of a tool's stderr with every quoted part replaced by `…`.
fn redact(stderr: &str) -> String {
    let line = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => {
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => {
                out.push(c);
                out.push('…');
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    out.chars().take(240).collect()
}

/// A JSON 6902 patch file: a YAML list of `op:` entries, not a manifest.
fn is_json6902(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#') && *l != "---")
        .is_some_and(|l| {
            l.starts_with("- op:") || l.starts_with("- {op:") || l.starts_with("- {\"op\"")
        })
}

/// (kind, name) → the file below `dir` that declares it.
fn source_index(dir: &Path) -> std::collections::HashMap<(String, String), PathBuf> {
    let mut idx = std::collections::HashMap::new();
    let walked =
        crate::fsio::walk::walk(&[dir.to_path_buf()], crate::fsio::walk::Policy::Manifests);
    for found in walked.map(|w| w.files).unwrap_or_default() {
        let f = found.path.as_path();
        let Ok(b) = std::fs::read(f) else { continue };
        let Ok(docs) = store::load_plain(Format::from_path(f), &b) else {
            continue;
        };
        for d in &docs.0 {
            for obj in crate::manifest::objects(d) {
                if let (Some(k), Some(n)) = (
                    obj.str_of("kind"),
                    obj.get("metadata")
                        .and_then(Value::as_map)
                        .and_then(|m| m.str_of("name")),
                ) {
                    idx.entry((k.to_string(), n.to_string()))
                        .or_insert_with(|| f.to_path_buf());
                }
            }
        }
    }
    idx
}

fn is_kustomization_file(f: &Path) -> bool {
    matches!(
        f.file_name().and_then(|n| n.to_str()),
        Some("kustomization.yaml" | "kustomization.yml")
    )
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Flux paths start at the repository root (the folder holding `.git`).
fn layout(walked: &Path, files: &[(PathBuf, Vec<u8>)]) -> Layout {
    let start = absolute(walked);
    let root = start
        .ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(&start)
        .to_path_buf();
    let mut objs = Vec::new();
    for (f, b) in files {
        if memchr::memmem::find(b, b"kustomiz").is_none() {
            continue;
        }
        let format = if Format::from_path(f) == Format::Json {
            Format::Json
        } else {
            Format::Yaml
        };
        if let Ok(docs) = store::load_plain(format, b) {
            for d in &docs.0 {
                objs.push((absolute(f), Value::Map(d.clone()).to_json()));
            }
        }
    }
    Layout::scan(&root, &objs)
}

/// Flux and Helm objects that read Secrets: a Kustomization's
/// `decryption.secretRef`, a HelmRelease's `valuesFrom` and the
/// `existingSecret`-style values common charts take.
fn gitops_consumer(obj: &J, ns: &str) -> Option<Workload> {
    let kind = obj.get("kind")?.as_str()?;
    let api = obj.get("apiVersion").and_then(J::as_str).unwrap_or("");
    let name = obj.pointer("/metadata/name")?.as_str()?.to_string();
    let r = |secret: &str, key: Option<String>, optional: bool, via| SecretRef {
        secret: secret.to_string(),
        key,
        optional,
        via,
        sub_path_only: false,
    };
    let mut refs = Vec::new();
    if kind == "Kustomization" && api.starts_with("kustomize.toolkit.fluxcd.io/") {
        if let Some(s) = obj
            .pointer("/spec/decryption/secretRef/name")
            .and_then(J::as_str)
        {
            refs.push(r(s, None, false, RefKind::FluxDecryption));
        }
    } else if kind == "HelmRelease" && api.starts_with("helm.toolkit.fluxcd.io/") {
        for v in obj
            .pointer("/spec/valuesFrom")
            .and_then(J::as_array)
            .into_iter()
            .flatten()
        {
            if v.get("kind").and_then(J::as_str) == Some("Secret")
                && let Some(s) = v.get("name").and_then(J::as_str)
            {
                let key = v.get("valuesKey").and_then(J::as_str).map(str::to_string);
                let optional = v.get("optional").and_then(J::as_bool).unwrap_or(false);
                refs.push(r(s, key, optional, RefKind::HelmValuesFrom));
            }
        }
        let mut names = Vec::new();
        existing_secrets(obj.pointer("/spec/values"), 0, &mut names);
        refs.extend(
            names
                .iter()
                .map(|s| r(s, None, false, RefKind::HelmExistingSecret)),
        );
    }
    if refs.is_empty() {
        return None;
    }
    Some(Workload {
        kind: kind.to_string(),
        namespace: ns.to_string(),
        name,
        service_account: String::new(),
        refs,
    })
}

/// Chart values named `existingSecret` (or `…ExistingSecret`) with a Secret name.
fn existing_secrets(v: Option<&J>, depth: usize, out: &mut Vec<String>) {
    let Some(v) = v else { return };
    if depth > 32 {
        return;
    }
    match v {
        J::Object(m) => {
            for (k, x) in m {
                let named = k == "existingSecret" || k.ends_with("ExistingSecret");
                match x {
                    J::String(s) if named && !s.is_empty() => out.push(s.clone()),
                    _ => existing_secrets(Some(x), depth + 1, out),
                }
            }
        }
        J::Array(a) => a
            .iter()
            .for_each(|x| existing_secrets(Some(x), depth + 1, out)),
        _ => {}
    }
}
