//! `.sops.yaml`: creation rules (first match wins), key fields in sops's
//! spellings, and store options.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value as J;

use super::ConfigError;
use super::env::parse_yaml_json;
use crate::keys::Recipient;
use crate::sops::Rule;

/// Key fields shared by `.sops.yaml` rules and recipients files. Values may
/// be comma-separated strings or lists, as sops accepts since 3.11.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct KeySpec {
    #[serde(default)]
    pub age: Option<J>,
    #[serde(default)]
    pub kms: Option<J>,
    #[serde(default)]
    pub aws_profile: Option<String>,
    #[serde(default)]
    pub hc_vault_transit_uri: Option<J>,
    #[serde(default)]
    pub hc_vault: Option<J>,
    #[serde(default)]
    pub azure_keyvault: Option<J>,
    #[serde(default)]
    pub pgp: Option<J>,
    #[serde(default)]
    pub gcp_kms: Option<J>,
    #[serde(default)]
    pub hckms: Option<J>,
    #[serde(default)]
    pub key_groups: Option<Vec<J>>,
}

fn strings(v: &Option<J>) -> Vec<String> {
    match v {
        None | Some(J::Null) => vec![],
        Some(J::String(s)) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        Some(J::Array(a)) => a
            .iter()
            .flat_map(|x| match x {
                J::String(s) => s
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
                _ => vec![],
            })
            .collect(),
        Some(_) => vec![],
    }
}

fn kms_list(v: &Option<J>, profile: &str) -> Result<Vec<Recipient>, String> {
    let mut out = Vec::new();
    let items: Vec<J> = match v {
        None | Some(J::Null) => vec![],
        Some(J::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    };
    for it in items {
        match it {
            J::String(s) => {
                for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                    out.push(Recipient::kms_from_str(part, IndexMap::new(), profile));
                }
            }
            J::Object(o) => {
                let arn = o
                    .get("arn")
                    .and_then(J::as_str)
                    .ok_or("kms entry without arn")?;
                let mut ctx = IndexMap::new();
                if let Some(J::Object(c)) = o.get("context") {
                    for (k, v) in c {
                        ctx.insert(
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        );
                    }
                }
                let role = o.get("role").and_then(J::as_str).unwrap_or("");
                let prof = o.get("aws_profile").and_then(J::as_str).unwrap_or(profile);
                let base = if role.is_empty() {
                    arn.to_string()
                } else {
                    format!("{arn}+{role}")
                };
                out.push(Recipient::kms_from_str(&base, ctx, prof));
            }
            _ => {
                return Err(
                    "kms entries must be ARNs or {arn, role, context, aws_profile} maps".into(),
                );
            }
        }
    }
    Ok(out)
}

fn azure_list(v: &Option<J>) -> Result<Vec<Recipient>, String> {
    let mut out = Vec::new();
    let items: Vec<J> = match v {
        None | Some(J::Null) => vec![],
        Some(J::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    };
    for it in items {
        match it {
            J::String(s) => {
                for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                    out.push(Recipient::azure_from_url(part).map_err(|e| e.to_string())?);
                }
            }
            J::Object(o) => {
                let url = o
                    .get("vaultUrl")
                    .or_else(|| o.get("vault_url"))
                    .and_then(J::as_str)
                    .ok_or("azure_keyvault entry without vaultUrl")?;
                let key = o
                    .get("key")
                    .or_else(|| o.get("name"))
                    .and_then(J::as_str)
                    .ok_or("azure_keyvault entry without key")?;
                let version = o.get("version").and_then(J::as_str).unwrap_or("");
                out.push(Recipient::AzureKv {
                    vault_url: url.trim_end_matches('/').to_string(),
                    name: key.to_string(),
                    version: version.to_string(),
                });
            }
            _ => {
                return Err(
                    "azure_keyvault entries must be URLs or {vaultUrl, key, version} maps".into(),
                );
            }
        }
    }
    Ok(out)
}

fn group_from(spec: &KeySpec) -> Result<Vec<Recipient>, String> {
    for (name, v) in [
        ("pgp", &spec.pgp),
        ("gcp_kms", &spec.gcp_kms),
        ("hckms", &spec.hckms),
    ] {
        if v.as_ref()
            .is_some_and(|v| !v.is_null() && v != &J::Array(vec![]))
        {
            return Err(format!(
                "{name} recipients are not supported by ksec (use age, kms, hc_vault_transit_uri or azure_keyvault)"
            ));
        }
    }
    let profile = spec.aws_profile.clone().unwrap_or_default();
    let mut g: Vec<Recipient> = strings(&spec.age).into_iter().map(Recipient::Age).collect();
    g.extend(kms_list(&spec.kms, &profile)?);
    for uri in strings(&spec.hc_vault_transit_uri)
        .into_iter()
        .chain(strings(&spec.hc_vault))
    {
        g.push(Recipient::vault_from_uri(&uri).map_err(|e| e.to_string())?);
    }
    g.extend(azure_list(&spec.azure_keyvault)?);
    let mut dedup: Vec<Recipient> = Vec::new();
    for r in g {
        if !dedup
            .iter()
            .any(|d| d.kind() == r.kind() && d.id() == r.id())
        {
            dedup.push(r);
        }
    }
    Ok(dedup)
}

/// Groups from a spec: `key_groups` when present (flat fields ignored, as sops does), else one group.
pub fn parse_groups(spec: &KeySpec) -> Result<Vec<Vec<Recipient>>, String> {
    let groups = parse_groups_allow_empty(spec)?;
    if let Some(i) = groups.iter().position(Vec::is_empty) {
        return Err(format!("key_groups[{i}] is empty"));
    }
    Ok(groups)
}

/// [`parse_groups`], keeping empty groups: a `.sops.yaml` rule may name
/// one, and sops fails only when that rule is used.
fn parse_groups_allow_empty(spec: &KeySpec) -> Result<Vec<Vec<Recipient>>, String> {
    if let Some(groups) = &spec.key_groups {
        let mut out = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            let mut gs: KeySpec =
                serde_json::from_value(g.clone()).map_err(|e| format!("key_groups[{i}]: {e}"))?;
            gs.aws_profile = gs.aws_profile.or_else(|| spec.aws_profile.clone());
            let mut group = group_from(&gs).map_err(|e| format!("key_groups[{i}]: {e}"))?;
            if let Some(J::Array(merges)) = g.get("merge") {
                for m in merges {
                    let ms: KeySpec = serde_json::from_value(m.clone())
                        .map_err(|e| format!("key_groups[{i}].merge: {e}"))?;
                    for r in group_from(&ms)? {
                        if !group
                            .iter()
                            .any(|d| d.kind() == r.kind() && d.id() == r.id())
                        {
                            group.push(r);
                        }
                    }
                }
            }
            out.push(group);
        }
        return Ok(out);
    }
    let g = group_from(spec)?;
    Ok(if g.is_empty() { vec![] } else { vec![g] })
}

#[derive(Debug, Deserialize)]
struct RawRule {
    #[serde(default)]
    path_regex: Option<String>,
    #[serde(flatten)]
    keys: KeySpec,
    #[serde(default)]
    shamir_threshold: Option<usize>,
    #[serde(default)]
    unencrypted_suffix: Option<String>,
    #[serde(default)]
    encrypted_suffix: Option<String>,
    #[serde(default)]
    unencrypted_regex: Option<String>,
    #[serde(default)]
    encrypted_regex: Option<String>,
    #[serde(default)]
    unencrypted_comment_regex: Option<String>,
    #[serde(default)]
    encrypted_comment_regex: Option<String>,
    #[serde(default)]
    mac_only_encrypted: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct CreationRule {
    pub path_regex: Option<Regex>,
    pub groups: Vec<Vec<Recipient>>,
    pub shamir_threshold: usize,
    pub rule: Option<Rule>,
    pub mac_only_encrypted: bool,
}

#[derive(Debug, Clone)]
pub struct SopsConfig {
    pub path: PathBuf,
    pub rules: Vec<CreationRule>,
    pub yaml_indent: Option<usize>,
}

impl SopsConfig {
    /// sops's lookup: `.sops.yaml` in `start` or up to 100 parents.
    pub fn find(start: &Path) -> Result<Option<SopsConfig>, ConfigError> {
        let abs = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        for d in abs.ancestors().take(100) {
            let p = d.join(".sops.yaml");
            if p.is_file() {
                return SopsConfig::load(&p).map(Some);
            }
        }
        Ok(None)
    }

    pub fn load(path: &Path) -> Result<SopsConfig, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigError::File {
            file: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        SopsConfig::parse(path, &bytes)
    }

    /// Parses a `.sops.yaml` from its bytes; `path` names the file in errors
    /// and is the folder `path_regex` is matched against.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<SopsConfig, ConfigError> {
        let err = |msg: String| ConfigError::File {
            file: path.to_path_buf(),
            msg,
        };
        let json = parse_yaml_json(path, bytes)?;
        let yaml_indent = json
            .pointer("/stores/yaml/indent")
            .and_then(J::as_u64)
            .map(|n| n as usize);
        let raw_rules = match json.get("creation_rules") {
            None | Some(J::Null) => vec![],
            Some(J::Array(a)) => a.clone(),
            Some(_) => return Err(err("creation_rules must be a list".into())),
        };
        let mut rules = Vec::new();
        for (i, r) in raw_rules.into_iter().enumerate() {
            let raw: RawRule =
                serde_json::from_value(r).map_err(|e| err(format!("creation_rules[{i}]: {e}")))?;
            let path_regex = match raw.path_regex.as_deref().filter(|s| !s.is_empty()) {
                Some(re) => Some(
                    Regex::new(re)
                        .map_err(|e| err(format!("creation_rules[{i}].path_regex: {e}")))?,
                ),
                None => None,
            };
            let groups = parse_groups_allow_empty(&raw.keys)
                .map_err(|e| err(format!("creation_rules[{i}]: {e}")))?;
            let rule = Rule::from_fields([
                ("unencrypted_suffix", raw.unencrypted_suffix.as_deref()),
                ("encrypted_suffix", raw.encrypted_suffix.as_deref()),
                ("unencrypted_regex", raw.unencrypted_regex.as_deref()),
                ("encrypted_regex", raw.encrypted_regex.as_deref()),
                (
                    "unencrypted_comment_regex",
                    raw.unencrypted_comment_regex.as_deref(),
                ),
                (
                    "encrypted_comment_regex",
                    raw.encrypted_comment_regex.as_deref(),
                ),
            ])
            .map_err(|e| err(format!("creation_rules[{i}]: {e}")))?;
            rules.push(CreationRule {
                path_regex,
                groups,
                shamir_threshold: raw.shamir_threshold.unwrap_or(0),
                rule,
                mac_only_encrypted: raw.mac_only_encrypted.unwrap_or(false),
            });
        }
        Ok(SopsConfig {
            path: path.to_path_buf(),
            rules,
            yaml_indent,
        })
    }

    /// First matching rule, matched (unanchored) against the path relative to the config's folder.
    pub fn rule_for(&self, file: &Path) -> Result<Option<(usize, &CreationRule)>, ConfigError> {
        let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let base = self
            .path
            .parent()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
        let rel = base
            .as_ref()
            .and_then(|b| abs.strip_prefix(b).ok())
            .unwrap_or(&abs);
        let rel_s = rel.to_string_lossy();
        for (i, r) in self.rules.iter().enumerate() {
            if r.path_regex.as_ref().is_none_or(|re| re.is_match(&rel_s)) {
                if r.groups.is_empty() || r.groups.iter().any(Vec::is_empty) {
                    return Err(ConfigError::EmptyKeyGroup {
                        config: self.path.clone(),
                        rule: i,
                    });
                }
                return Ok(Some((i, r)));
            }
        }
        Ok(None)
    }
}
