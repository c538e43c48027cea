//! Who may decrypt what: `recipients/<env>.yaml` environments routed by
//! namespace, `.sops.yaml` creation rules, and explicit flags, resolved into
//! one [`Plan`] per file.

pub mod boundary;
pub mod env;
pub mod sops_config;

use std::path::{Path, PathBuf};

use crate::keys::Recipient;
use crate::sops::{Documents, Rule};

pub use boundary::{EnvMove, EnvMoveRefused};
pub use env::{Environment, RecipientsDir};
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

/// The `.sops.yaml` above the file, else (as sops looks) above the working
/// directory: `sops -e /tmp/x.yaml` run in a repository uses its rules.
fn find_sops_config(file: &Path) -> Result<Option<SopsConfig>, ConfigError> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match SopsConfig::find(dir)? {
        Some(c) => Ok(Some(c)),
        None => SopsConfig::find(Path::new(".")),
    }
}

/// Resolves the recipients for `file`: flags, then `recipients/` (by
/// namespace, then path), then `.sops.yaml`.
pub fn plan_for(file: &Path, docs: &Documents, ov: &Overrides) -> Result<Plan, ConfigError> {
    let sops_cfg = match &ov.sops_config {
        Some(p) => Some(SopsConfig::load(p)?),
        None => find_sops_config(file)?,
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
    let sops_rule = match &sops_cfg {
        Some(c) => c.rule_for(file)?,
        None => None,
    };
    if let Some(dir) = &rdir {
        if let Some((env, why)) = dir.route(file, docs, ov.env.as_deref())? {
            let mut notes = Vec::new();
            if let Some((i, _)) = &sops_rule {
                notes.push(format!(
                    "recipients from {} won over .sops.yaml creation_rules[{i}], which also matched",
                    env.file.display()
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
    if let Some((i, rule)) = sops_rule {
        let cfg = sops_cfg.as_ref().expect("rule came from it");
        return Ok(Plan {
            groups: rule.groups.clone(),
            threshold: ov.threshold.unwrap_or(rule.shamir_threshold),
            rule: ov.rule.clone().or_else(|| rule.rule.clone()),
            mac_only_encrypted: ov.mac_only_encrypted || rule.mac_only_encrypted,
            source: format!("{} creation_rules[{i}]", cfg.path.display()),
            environment: None,
            notes: vec![],
            yaml_indent: indent,
        });
    }
    Err(ConfigError::NoRecipients(format!(
        "{}: no recipients: no recipients/<env>.yaml routes it, no .sops.yaml creation rule matches, and no --age/--kms/--hc-vault-transit/--azure-kv was given",
        file.display()
    )))
}
