//! `ksec doctor`: catches the outage before promotion. Broken references,
//! parity between environments, recipients drift, rotation age — offline,
//! from the manifests, without decrypting anything.

pub mod gitops;
pub mod inventory;
#[cfg(feature = "cluster")]
pub mod live;
pub mod rbac;
pub mod report;
pub mod runbook;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::Utc;
use serde::Serialize;

use crate::recipients::RecipientsDir;
use crate::workloads::RefKind;
pub use inventory::Inventory;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Error];

    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown severity {s:?} (info, warning, error)"))
    }
}

/// The check that produced a finding (also the SARIF rule id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    BrokenReference,
    NoProvider,
    UnresolvedName,
    Parity,
    StaleRecipients,
    ProbableTampering,
    CrossEnvironmentRecipient,
    UnknownRecipient,
    RotationAge,
    UnownedNamespace,
    WildcardSecretAccess,
    Plaintext,
    UnreadableFile,
    FailingPod,
    StaleConsumer,
}

impl Check {
    pub fn id(self) -> &'static str {
        match self {
            Check::BrokenReference => "broken-reference",
            Check::NoProvider => "no-provider",
            Check::UnresolvedName => "unresolved-name",
            Check::Parity => "parity",
            Check::StaleRecipients => "stale-recipients",
            Check::ProbableTampering => "probable-tampering",
            Check::CrossEnvironmentRecipient => "cross-environment-recipient",
            Check::UnknownRecipient => "unknown-recipient",
            Check::RotationAge => "rotation-age",
            Check::UnownedNamespace => "unowned-namespace",
            Check::WildcardSecretAccess => "wildcard-secret-access",
            Check::Plaintext => "plaintext",
            Check::UnreadableFile => "unreadable-file",
            Check::FailingPod => "failing-pod",
            Check::StaleConsumer => "stale-consumer",
        }
    }

    pub fn default_severity(self) -> Severity {
        match self {
            Check::BrokenReference
            | Check::Parity
            | Check::CrossEnvironmentRecipient
            | Check::ProbableTampering
            | Check::Plaintext => Severity::Error,
            Check::UnreadableFile | Check::UnresolvedName => Severity::Info,
            _ => Severity::Warning,
        }
    }

    pub const ALL: &[Check] = &[
        Check::BrokenReference,
        Check::NoProvider,
        Check::UnresolvedName,
        Check::Parity,
        Check::StaleRecipients,
        Check::ProbableTampering,
        Check::CrossEnvironmentRecipient,
        Check::UnknownRecipient,
        Check::RotationAge,
        Check::UnownedNamespace,
        Check::WildcardSecretAccess,
        Check::Plaintext,
        Check::UnreadableFile,
        Check::FailingPod,
        Check::StaleConsumer,
    ];
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    pub check: Check,
    /// Environment name, or "-" when the namespace has none.
    pub environment: String,
    pub namespace: String,
    /// `Kind/name` of the object the finding is about.
    pub object: String,
    pub file: Option<PathBuf>,
    pub message: String,
    /// The exact command that fixes it, when there is one.
    pub fix: Option<String>,
}

pub struct Options {
    pub now: chrono::DateTime<Utc>,
}

impl Default for Options {
    fn default() -> Self {
        Options { now: Utc::now() }
    }
}

fn env_name(dir: Option<&RecipientsDir>, ns: &str) -> String {
    dir.and_then(|d| d.env_for_namespace(ns).ok().flatten())
        .map(|e| e.name.clone())
        .unwrap_or_else(|| "-".into())
}

/// Runs every offline check; findings come back sorted (stable output).
pub fn check(inv: &Inventory, dir: Option<&RecipientsDir>, opts: &Options) -> Vec<Finding> {
    let mut out = Vec::new();
    references(inv, dir, false, &mut out);
    parity(inv, dir, &mut out);
    if let Some(d) = dir {
        recipients(inv, d, opts, &mut out);
    }
    plaintext(inv, &mut out);
    for r in &inv.roles {
        if let Some(f) = rbac::wildcard_finding(r, dir) {
            out.push(f);
        }
    }
    for (f, p) in &inv.misshapen {
        out.push(Finding {
            severity: Check::ProbableTampering.default_severity(),
            check: Check::ProbableTampering,
            environment: "-".into(),
            namespace: "-".into(),
            object: "-".into(),
            file: Some(f.clone()),
            message: format!("{p} (the MAC binds values, not where they sit)"),
            fix: Some(format!(
                "git log -p -- {}  (restore it from a trusted commit)",
                f.display()
            )),
        });
    }
    for (f, why) in &inv.unreadable {
        out.push(Finding {
            severity: Check::UnreadableFile.default_severity(),
            check: Check::UnreadableFile,
            environment: "-".into(),
            namespace: "-".into(),
            object: "-".into(),
            file: Some(f.clone()),
            message: format!("not read as a manifest: {why}"),
            fix: None,
        });
    }
    out.sort();
    out.dedup();
    out
}

/// Everything the pre-commit guard would block, for files the Secret check
/// above has not already reported as unencrypted.
fn plaintext(inv: &Inventory, out: &mut Vec<Finding>) {
    let already: BTreeSet<PathBuf> = out
        .iter()
        .filter(|f| f.check == Check::Plaintext)
        .filter_map(|f| f.file.clone())
        .collect();
    let blobs: Vec<crate::guard::Blob> = inv
        .files
        .iter()
        .filter(|(p, _)| !already.contains(p))
        .map(|(p, b)| crate::guard::Blob {
            path: p.display().to_string(),
            bytes: b.clone(),
            symlink: false,
        })
        .collect();
    let opts = crate::guard::Options::default();
    for g in crate::guard::check_blobs(&blobs, &crate::guard::NoSource, &opts) {
        if g.severity != crate::guard::Severity::Error {
            continue;
        }
        out.push(Finding {
            severity: Check::Plaintext.default_severity(),
            check: Check::Plaintext,
            environment: "-".into(),
            namespace: "-".into(),
            object: if g.key_path.is_empty() {
                format!("document {}", g.doc_index)
            } else {
                format!("document {} {}", g.doc_index, g.key_path)
            },
            file: Some(PathBuf::from(&g.file)),
            message: format!("[{}] {}", g.rule_id.as_str(), g.message),
            fix: Some(format!(
                "ksec check {}  (then `ksec encrypt -i` it, or remove the value)",
                g.file
            )),
        });
    }
}

/// `live`: the objects were read from a cluster, where a Secret that is not
/// there is missing whoever was meant to make it (no "no-provider").
pub(crate) fn references(
    inv: &Inventory,
    dir: Option<&RecipientsDir>,
    live: bool,
    out: &mut Vec<Finding>,
) {
    for (w, file) in &inv.workloads {
        let mut refs = w.refs.clone();
        if let Some(sa) = inv.service_account(&w.namespace, &w.service_account) {
            for p in &sa.pull_secrets {
                refs.push(crate::workloads::SecretRef {
                    secret: p.clone(),
                    key: None,
                    optional: false,
                    via: RefKind::ServiceAccountImagePullSecret,
                    sub_path_only: false,
                });
            }
        }
        for r in refs.iter().filter(|r| !r.optional) {
            let env = env_name(dir, &w.namespace);
            let found = inv.secret(&w.namespace, &r.secret);
            if found.is_none() {
                match provided_otherwise(inv, &w.namespace, &r.secret) {
                    Some(Otherwise::Provided) => continue,
                    Some(Otherwise::Unresolved) => {
                        out.push(Finding {
                            severity: Check::UnresolvedName.default_severity(),
                            check: Check::UnresolvedName,
                            environment: env,
                            namespace: w.namespace.clone(),
                            object: w.id(),
                            file: Some(file.clone()),
                            message: format!("{} uses Secret {:?} ({}), whose name is substituted at deploy time from variables outside the repository; not checked", w.id(), r.secret, r.via),
                            fix: None,
                        });
                        continue;
                    }
                    None => {}
                }
            }
            let message = match (found, &r.key) {
                (None, _) => format!(
                    "{} uses Secret {:?} ({}) but no such Secret exists in namespace {:?}{}",
                    w.id(),
                    r.secret,
                    r.via,
                    w.namespace,
                    consequence(r.via)
                ),
                (Some(s), Some(k)) if !s.keys.contains(k) => format!(
                    "{} uses key {k:?} of Secret {:?} ({}) but the Secret has no such key (it has: {})",
                    w.id(),
                    r.secret,
                    r.via,
                    s.keys.join(", ")
                ),
                _ => continue,
            };
            let fix = match found {
                None => elsewhere(inv, &r.secret).map(|src| {
                    format!("ksec doctor found {:?} in namespace {:?} ({}): copy it, set metadata.namespace: {}, then `ksec encrypt -i FILE`", r.secret, src.namespace, src.file.display(), w.namespace)
                }),
                Some(s) => Some(format!("ksec set {} '[\"stringData\"][\"{}\"]' --value-stdin", s.file.display(), r.key.clone().unwrap_or_default())),
            };
            // Present in another namespace: a promotion that missed it (the
            // field guide's outage). Nowhere at all: likely made at run time.
            let check = if !live && found.is_none() && fix.is_none() {
                Check::NoProvider
            } else {
                Check::BrokenReference
            };
            let fix = match (check, fix) {
                (Check::NoProvider, _) => Some(format!(
                    "add the Secret (encrypted), or, if an operator or a person creates it outside the repository, annotate {} with {}: {}",
                    w.id(),
                    gitops::EXTERNAL_ANNOTATION,
                    r.secret
                )),
                (_, f) => f,
            };
            out.push(Finding {
                severity: check.default_severity(),
                check,
                environment: env,
                namespace: w.namespace.clone(),
                object: w.id(),
                file: Some(file.clone()),
                message,
                fix,
            });
        }
    }
}

/// What a missing Secret does to its consumer.
fn consequence(via: RefKind) -> &'static str {
    match via {
        RefKind::ImagePullSecret | RefKind::ServiceAccountImagePullSecret => {
            ": pods will go into ImagePullBackOff"
        }
        RefKind::FluxDecryption => ": Flux cannot decrypt the files of this Kustomization",
        RefKind::HelmValuesFrom | RefKind::HelmExistingSecret => {
            ": the release will not install or its pods will not start"
        }
        _ => ": pods will fail with CreateContainerConfigError",
    }
}

enum Otherwise {
    Provided,
    Unresolved,
}

/// A reference satisfied by something other than a Secret manifest.
fn provided_otherwise(inv: &Inventory, ns: &str, name: &str) -> Option<Otherwise> {
    if inv.provider(ns, name).is_some() || inv.is_external(ns, name) {
        Some(Otherwise::Provided)
    } else if gitops::unresolved(name) {
        Some(Otherwise::Unresolved)
    } else {
        None
    }
}

fn elsewhere<'a>(inv: &'a Inventory, name: &str) -> Option<&'a inventory::SecretDecl> {
    inv.secrets.iter().find(|s| s.name == name)
}

/// A Secret (or a key of it) used by a workload in one environment and
/// missing in another environment that runs the same workload.
fn parity(inv: &Inventory, dir: Option<&RecipientsDir>, out: &mut Vec<Finding>) {
    let Some(dir) = dir else { return };
    // (kind, name) -> env -> namespaces where it runs
    let mut runs: BTreeMap<(String, String), BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (w, _) in &inv.workloads {
        let env = env_name(Some(dir), &w.namespace);
        if env != "-" {
            runs.entry((w.kind.clone(), w.name.clone()))
                .or_default()
                .entry(env)
                .or_default()
                .insert(w.namespace.clone());
        }
    }
    for ((kind, name), envs) in &runs {
        if envs.len() < 2 {
            continue;
        }
        let instances: Vec<&crate::workloads::Workload> = inv
            .workloads
            .iter()
            .map(|(w, _)| w)
            .filter(|w| &w.kind == kind && &w.name == name)
            .collect();
        let used: BTreeSet<&str> = instances
            .iter()
            .flat_map(|w| w.refs.iter().map(|r| r.secret.as_str()))
            .collect();
        for secret in used {
            let mut present: BTreeMap<&str, (&str, &inventory::SecretDecl)> = BTreeMap::new();
            let mut missing: Vec<(&str, &str)> = Vec::new();
            for (env, nss) in envs {
                for ns in nss {
                    match inv.secret(ns, secret) {
                        Some(s) => {
                            present.insert(env.as_str(), (ns.as_str(), s));
                        }
                        None => missing.push((env.as_str(), ns.as_str())),
                    }
                }
            }
            if let Some((penv, (pns, psec))) = present.iter().next() {
                for (menv, mns) in &missing {
                    out.push(Finding {
                        severity: Check::Parity.default_severity(),
                        check: Check::Parity,
                        environment: menv.to_string(),
                        namespace: mns.to_string(),
                        object: format!("{kind}/{name}"),
                        file: Some(psec.file.clone()),
                        message: format!(
                            "Secret {secret:?} exists in {penv} (namespace {pns}) but not in {menv} (namespace {mns}), where {kind}/{name} also runs"
                        ),
                        fix: Some(format!(
                            "copy {} to the {menv} tree with metadata.namespace: {mns}, then `ksec encrypt -i FILE` (recipients come from recipients/{menv}.yaml)",
                            psec.file.display()
                        )),
                    });
                }
                // keys present in one environment's copy and not another's
                let all: Vec<(&&str, &(&str, &inventory::SecretDecl))> = present.iter().collect();
                for (aenv, (ans, a)) in &all {
                    for (benv, (bns, b)) in &all {
                        for k in a.keys.iter().filter(|k| !b.keys.contains(k)) {
                            out.push(Finding {
                                severity: Check::Parity.default_severity(),
                                check: Check::Parity,
                                environment: benv.to_string(),
                                namespace: bns.to_string(),
                                object: format!("Secret/{secret}"),
                                file: Some(b.file.clone()),
                                message: format!(
                                    "key {k:?} of Secret {secret:?} exists in {aenv} (namespace {ans}) but not in {benv} (namespace {bns}), where {kind}/{name} also runs"
                                ),
                                fix: Some(format!("ksec set {} '[\"stringData\"][\"{k}\"]' --value-stdin", b.file.display())),
                            });
                        }
                    }
                }
            }
        }
    }
}

fn recipients(inv: &Inventory, dir: &RecipientsDir, opts: &Options, out: &mut Vec<Finding>) {
    let known: BTreeMap<String, Vec<&str>> = {
        let mut m: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for e in &dir.envs {
            for r in e.recipient_ids() {
                m.entry(r).or_default().push(e.name.as_str());
            }
        }
        m
    };
    for s in &inv.secrets {
        let object = format!("Secret/{}", s.name);
        let env = match dir.env_for_namespace(&s.namespace) {
            Ok(Some(e)) => e,
            Ok(None) => {
                out.push(Finding {
                    severity: Check::UnownedNamespace.default_severity(),
                    check: Check::UnownedNamespace,
                    environment: "-".into(),
                    namespace: s.namespace.clone(),
                    object,
                    file: Some(s.file.clone()),
                    message: format!(
                        "namespace {:?} belongs to no environment in {}",
                        s.namespace,
                        dir.dir.display()
                    ),
                    fix: Some(format!(
                        "add {:?} to the namespaces: of one recipients/<env>.yaml",
                        s.namespace
                    )),
                });
                continue;
            }
            Err(e) => {
                out.push(Finding {
                    severity: Severity::Error,
                    check: Check::UnownedNamespace,
                    environment: "-".into(),
                    namespace: s.namespace.clone(),
                    object,
                    file: Some(s.file.clone()),
                    message: e.to_string(),
                    fix: None,
                });
                continue;
            }
        };
        let Some(meta) = &s.meta else {
            out.push(Finding {
                severity: Check::Plaintext.default_severity(),
                check: Check::Plaintext,
                environment: env.name.clone(),
                namespace: s.namespace.clone(),
                object,
                file: Some(s.file.clone()),
                message: "the Secret is not encrypted".into(),
                fix: Some(format!("ksec encrypt -i {}", s.file.display())),
            });
            continue;
        };
        let have: BTreeSet<String> = meta.stanzas().map(|st| st.recipient()).collect();
        let want: BTreeSet<String> = env.recipient_ids().into_iter().collect();
        // Re-keying this file would hand it to another environment: its
        // readable fields were moved, not its recipients. Never suggest updatekeys.
        let moved = dir.admit_rekey(&have, &want, None);
        if let Err(e) = &moved {
            out.push(Finding {
                severity: Check::ProbableTampering.default_severity(),
                check: Check::ProbableTampering,
                environment: env.name.clone(),
                namespace: s.namespace.clone(),
                object: object.clone(),
                file: Some(s.file.clone()),
                message: format!(
                    "namespace {:?} says {}, but {e}. Or it was encrypted to the wrong keys: then {} may have read the values",
                    s.namespace, env.name, e.from
                ),
                fix: Some(format!(
                    "git log -p -- {}  (restore it from a trusted commit; if it was encrypted to the wrong keys, rotate the credentials and encrypt the new values)",
                    s.file.display()
                )),
            });
        }
        for r in &have {
            match known.get(r) {
                None => out.push(Finding {
                    severity: Check::UnknownRecipient.default_severity(),
                    check: Check::UnknownRecipient,
                    environment: env.name.clone(),
                    namespace: s.namespace.clone(),
                    object: object.clone(),
                    file: Some(s.file.clone()),
                    message: format!("encrypted to {r}, which appears in no recipients file"),
                    fix: Some(format!("ksec rotate -i {} {}  (or add the key to recipients/{}.yaml)", rm_flag(r), s.file.display(), env.name)),
                }),
                Some(envs) if !envs.contains(&env.name.as_str()) => out.push(Finding {
                    severity: Check::CrossEnvironmentRecipient.default_severity(),
                    check: Check::CrossEnvironmentRecipient,
                    environment: env.name.clone(),
                    namespace: s.namespace.clone(),
                    object: object.clone(),
                    file: Some(s.file.clone()),
                    message: format!("a {} Secret is readable by a recipient of {}: {r}", env.name, envs.join(", ")),
                    fix: Some(format!("ksec rotate -i {} {}  (rotate: the other key may already have read it; then change the value)", rm_flag(r), s.file.display())),
                }),
                _ => {}
            }
        }
        if moved.is_ok() && have != want && meta.key_groups.len() <= 1 {
            let add: Vec<&String> = want.difference(&have).collect();
            let rm: Vec<&String> = have.difference(&want).collect();
            out.push(Finding {
                severity: Check::StaleRecipients.default_severity(),
                check: Check::StaleRecipients,
                environment: env.name.clone(),
                namespace: s.namespace.clone(),
                object: object.clone(),
                file: Some(s.file.clone()),
                message: format!(
                    "recipients differ from {}: missing [{}], extra [{}]",
                    env.file.display(),
                    add.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    rm.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
                fix: Some(format!("ksec updatekeys -y {}", s.file.display())),
            });
        }
        if let (Some(days), Some(t)) = (
            env.rotate_after_days,
            crate::sops::scalar::parse_rfc3339(&meta.lastmodified),
        ) {
            let age = opts
                .now
                .signed_duration_since(t.with_timezone(&Utc))
                .num_days();
            if age > days as i64 {
                out.push(Finding {
                    severity: Check::RotationAge.default_severity(),
                    check: Check::RotationAge,
                    environment: env.name.clone(),
                    namespace: s.namespace.clone(),
                    object: object.clone(),
                    file: Some(s.file.clone()),
                    message: format!("last changed {age} days ago ({}); {} rotates every {days} days", meta.lastmodified, env.name),
                    fix: Some(format!("ksec edit {0}  (new credential), then ksec rotate -i {0} && ksec apply --env {1} {0}", s.file.display(), env.name)),
                });
            }
        }
    }
}

/// The `ksec rotate` flag that removes a recipient, from its id.
fn rm_flag(id: &str) -> String {
    if let Some(fp) = id.strip_prefix("pgp:") {
        format!("--rm-pgp {fp}")
    } else if let Some(rid) = id.strip_prefix("gcp_kms:") {
        format!("--rm-gcp-kms {rid}")
    } else if id.starts_with("arn:") {
        format!("--rm-kms {id}")
    } else if id.contains("/v1/") && id.contains("/keys/") {
        format!("--rm-hc-vault-transit {id}")
    } else if id.contains("/keys/") {
        format!("--rm-azure-kv {id}")
    } else {
        format!("--rm-age {id}")
    }
}

#[cfg(test)]
mod rm_flag_tests {
    #[test]
    fn gcp_kms_recipients_get_their_own_rotate_flag() {
        let id = "gcp_kms:projects/p/locations/global/keyRings/r/cryptoKeys/k";
        assert_eq!(
            super::rm_flag(id),
            "--rm-gcp-kms projects/p/locations/global/keyRings/r/cryptoKeys/k"
        );
    }
}
