//! Who may decrypt what: `recipients/<env>.yaml` environments routed by
//! namespace, `.sops.yaml` creation rules, and explicit flags, resolved into
//! one [`Plan`] per file.

pub mod boundary;
pub mod env;
pub mod sops_config;

use std::path::{Path, PathBuf};

use crate::keys::Recipient;
use crate::sops::{Documents, Rule};

pub use boundary::{Boundary, BoundaryRefusal, EncryptedFor, EnvMove, EnvMoveRefused, ScopeError};
pub use env::{Approval, Environment, RecipientsDir, RotationPolicy};
pub use sops_config::SopsConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {msg}")]
    File { file: PathBuf, msg: String },
    #[error("namespace {namespace:?} is claimed by more than one environment: {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "))]
    NamespaceConflict {
        namespace: String,
        files: Vec<PathBuf>,
    },
    #[error(
        "namespace {namespace:?} belongs to no environment in {dir} (add it to the `namespaces:` of one recipients file)"
    )]
    NamespaceUnclaimed { namespace: String, dir: PathBuf },
    #[error("the file mixes environments: {0}")]
    MixedEnvironments(String),
    #[error("{0}")]
    NoRecipients(String),
    /// sops's exact words (scripts and its test suite match them); the
    /// rule is named by [`ConfigError::detail`].
    #[error("Could not generate data key: [empty key group provided]")]
    EmptyKeyGroup { config: PathBuf, rule: usize },
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// Where an error with sops's fixed wording comes from.
    pub fn detail(&self) -> Option<String> {
        match self {
            ConfigError::EmptyKeyGroup { config, rule } => Some(format!(
                "{}: creation_rules[{rule}] matches the file but names no keys (or an empty key group)",
                config.display()
            )),
            _ => None,
        }
    }
}

/// What to encrypt a file for, and why.
#[derive(Debug, Clone)]
pub struct Plan {
    pub groups: Vec<Vec<Recipient>>,
    pub threshold: usize,
    /// `None`: ksec's default (Kubernetes rule for Secrets, sops's suffix otherwise).
    pub rule: Option<Rule>,
    pub mac_only_encrypted: bool,
    /// Human description of where the recipients came from.
    pub source: String,
    pub environment: Option<String>,
    /// Other configurations that also matched and lost (said on `--verbose`).
    pub notes: Vec<String>,
    pub yaml_indent: Option<usize>,
}

/// Explicit recipients from flags/env (`--age`, `SOPS_AGE_RECIPIENTS`, …).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub recipients: Vec<Recipient>,
    pub threshold: Option<usize>,
    pub rule: Option<Rule>,
    pub mac_only_encrypted: bool,
    pub env: Option<String>,
    pub recipients_dir: Option<PathBuf>,
    pub sops_config: Option<PathBuf>,
}

/// The `recipients/` folder that governs `file` (`--recipients-dir` wins).
pub fn recipients_dir_for(
    file: &Path,
    ov: &Overrides,
) -> Result<Option<RecipientsDir>, ConfigError> {
    match &ov.recipients_dir {
        Some(d) => RecipientsDir::load(d).map(Some),
        None => RecipientsDir::find(file),
    }
}

/// Resolves the recipients for `file`: flags, then `recipients/` (by
/// namespace, then path; found upward from the file), then `.sops.yaml`
/// (`--config`/`SOPS_CONFIG`, else found upward from the working folder, as
/// sops does, with `path_regex` matched against the file's absolute path
/// relative to the config's folder).
pub fn plan_for(file: &Path, docs: &Documents, ov: &Overrides) -> Result<Plan, ConfigError> {
    let sops_cfg = match &ov.sops_config {
        Some(p) => Some(SopsConfig::load(p)?),
        None => SopsConfig::find_from_cwd()?,
    };
    let indent = sops_cfg.as_ref().and_then(|c| c.yaml_indent);
    if !ov.recipients.is_empty() {
        let mut p = Plan {
            groups: vec![ov.recipients.clone()],
            threshold: ov.threshold.unwrap_or(0),
            rule: ov.rule.clone(),
            mac_only_encrypted: ov.mac_only_encrypted,
            source: "command-line recipients".into(),
            environment: None,
            notes: vec![],
            yaml_indent: indent,
        };
        if ov.env.is_some() {
            p.notes
                .push("--env is ignored because recipients were given explicitly".into());
        }
        return Ok(p);
    }
    let rdir = recipients_dir_for(file, ov)?;
    if let Some(dir) = &rdir {
        if let Some((env, why)) = dir.route(file, docs, ov.env.as_deref())? {
            let mut notes = Vec::new();
            // Only said, never used: a broken rule that lost must not stop ksec.
            if let Some(r) = sops_cfg
                .as_ref()
                .and_then(|c| c.matching(file, false).ok().flatten())
            {
                notes.push(format!(
                    "recipients from {} won over .sops.yaml {}, which also matched",
                    env.file.display(),
                    r.label()
                ));
            }
            return Ok(Plan {
                groups: env.groups.clone(),
                threshold: ov.threshold.unwrap_or(env.shamir_threshold),
                rule: ov.rule.clone().or_else(|| env.rule.clone()),
                mac_only_encrypted: ov.mac_only_encrypted || env.mac_only_encrypted,
                source: format!("{} ({why})", env.file.display()),
                environment: Some(env.name.clone()),
                notes,
                yaml_indent: indent,
            });
        }
    }
    if let Some(cfg) = &sops_cfg {
        if let Some(rule) = cfg.rule_for(file)? {
            return Ok(Plan {
                groups: rule.groups,
                threshold: ov.threshold.unwrap_or(rule.shamir_threshold),
                rule: ov.rule.clone().or(rule.rule),
                mac_only_encrypted: ov.mac_only_encrypted || rule.mac_only_encrypted,
                source: format!("{} creation_rules[{}]", cfg.path.display(), rule.index),
                environment: None,
                notes: vec![],
                yaml_indent: indent,
            });
        }
    }
    Err(ConfigError::NoRecipients(format!(
        "{}: no recipients: no recipients/<env>.yaml routes it, no .sops.yaml creation rule matches, and no --age/--pgp/--kms/--hc-vault-transit/--azure-kv/--gcp-kms was given",
        file.display()
    )))
}
