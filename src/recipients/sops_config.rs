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
    let profile = spec.aws_profile.clone().unwrap_or_default();
    let mut g: Vec<Recipient> = strings(&spec.age).into_iter().map(Recipient::Age).collect();
    g.extend(strings(&spec.pgp).into_iter().map(|fp| Recipient::pgp(&fp)));
    g.extend(kms_list(&spec.kms, &profile)?);
    for uri in strings(&spec.hc_vault_transit_uri)
        .into_iter()
        .chain(strings(&spec.hc_vault))
    {
        g.push(Recipient::vault_from_uri(&uri).map_err(|e| e.to_string())?);
    }
    g.extend(azure_list(&spec.azure_keyvault)?);
    for id in id_list(&spec.gcp_kms, "resource_id")? {
        g.push(Recipient::gcp_from_str(&id).map_err(|e| e.to_string())?);
    }
    // Kept typed so a configuration naming them loads; only wrapping for them fails.
    g.extend(
        id_list(&spec.hckms, "key_id")?
            .into_iter()
            .map(|key_id| Recipient::HcKms { key_id }),
    );
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

/// `gcp_kms` / `hckms` entries: strings (comma-separated) or `{field: …}` maps, as sops writes them.
fn id_list(v: &Option<J>, field: &str) -> Result<Vec<String>, String> {
    let items: Vec<J> = match v {
        None | Some(J::Null) => vec![],
        Some(J::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    };
    let mut out = Vec::new();
    for it in items {
        match it {
            J::String(s) => out.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string),
            ),
            J::Object(o) => out.push(
                o.get(field)
                    .and_then(J::as_str)
                    .ok_or_else(|| format!("entry without {field}"))?
                    .to_string(),
            ),
            _ => return Err(format!("entries must be strings or {{{field}: …}} maps")),
        }
    }
    Ok(out)
}

/// Groups from a spec: `key_groups` when present, else one group. Flat key
/// fields beside `key_groups` are an error: sops would ignore them, so a
/// recipient the author meant to add would silently not be one.
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
        let flat = [
            ("age", &spec.age),
            ("kms", &spec.kms),
            ("hc_vault_transit_uri", &spec.hc_vault_transit_uri),
            ("hc_vault", &spec.hc_vault),
            ("azure_keyvault", &spec.azure_keyvault),
            ("pgp", &spec.pgp),
            ("gcp_kms", &spec.gcp_kms),
            ("hckms", &spec.hckms),
        ];
        let given = |v: &Option<J>| match v {
            None | Some(J::Null) => false,
            Some(J::String(s)) => !s.trim().is_empty(),
            Some(J::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if let Some((name, _)) = flat.iter().find(|(_, v)| given(v)) {
            return Err(format!(
                "`{name}:` next to `key_groups:` would be ignored (only key_groups is read when both are given); move those keys into a key group"
            ));
        }
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

/// One `.sops.yaml` creation rule, parsed field by field: a rule that does
/// not apply to a file must never stop ksec (sops reads only the rule that
/// matches), so each part keeps its own error until the rule is used.
#[derive(Debug, Clone)]
pub struct CreationRule {
    pub index: usize,
    /// `path_regex` as written (messages); `None`: the rule matches every file.
    pub path_regex_src: Option<String>,
    path_regex: Result<Option<Regex>, String>,
    pub groups: Result<Vec<Vec<Recipient>>, String>,
    /// The rule's value selection (`encrypted_regex`, …).
    pub rule: Result<Option<Rule>, String>,
    pub shamir_threshold: usize,
    pub mac_only_encrypted: bool,
}

/// The rule that applies to a file, checked usable.
#[derive(Debug, Clone)]
pub struct AppliedRule {
    pub index: usize,
    pub groups: Vec<Vec<Recipient>>,
    pub rule: Option<Rule>,
    pub shamir_threshold: usize,
    pub mac_only_encrypted: bool,
}

impl CreationRule {
    fn parse(index: usize, r: J) -> CreationRule {
        let path_regex_src = r
            .get("path_regex")
            .and_then(J::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let path_regex = match &path_regex_src {
            Some(re) => Regex::new(re).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        };
        let raw: RawRule = match serde_json::from_value(r) {
            Ok(raw) => raw,
            Err(e) => {
                return CreationRule {
                    index,
                    path_regex_src,
                    path_regex,
                    groups: Err(e.to_string()),
                    rule: Err(e.to_string()),
                    shamir_threshold: 0,
                    mac_only_encrypted: false,
                };
            }
        };
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
        ]);
        CreationRule {
            index,
            path_regex_src,
            path_regex,
            groups: parse_groups_allow_empty(&raw.keys),
            rule,
            shamir_threshold: raw.shamir_threshold.unwrap_or(0),
            mac_only_encrypted: raw.mac_only_encrypted.unwrap_or(false),
        }
    }

    /// `creation_rules[i] (path_regex "…")`, how errors name the rule.
    pub fn label(&self) -> String {
        match &self.path_regex_src {
            Some(re) => format!("creation_rules[{}] (path_regex {re:?})", self.index),
            None => format!("creation_rules[{}] (no path_regex)", self.index),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SopsConfig {
    pub path: PathBuf,
    pub rules: Vec<CreationRule>,
    pub yaml_indent: Option<usize>,
}

impl SopsConfig {
    /// sops's lookup: `.sops.yaml` in `start` or up to 99 parents (sops
    /// starts at the working folder: [`SopsConfig::find_from_cwd`]). A
    /// `.sops.yml` is not read, as in sops, but said.
    pub fn find(start: &Path) -> Result<Option<SopsConfig>, ConfigError> {
        let start = if start.as_os_str().is_empty() {
            Path::new(".")
        } else {
            start
        };
        let abs = clean_absolute(start);
        for d in abs.ancestors().take(100) {
            let p = d.join(".sops.yaml");
            if p.is_file() {
                return SopsConfig::load(&p).map(Some);
            }
            let alt = d.join(".sops.yml");
            if alt.is_file() {
                tracing::warn!(
                    "ignoring {} when looking for the sops config: it must be called .sops.yaml",
                    alt.display()
                );
            }
        }
        Ok(None)
    }

    /// Where sops looks when neither `--config` nor `SOPS_CONFIG` is given:
    /// upward from the working folder, whatever the file's own folder.
    pub fn find_from_cwd() -> Result<Option<SopsConfig>, ConfigError> {
        SopsConfig::find(Path::new("."))
    }

    pub fn load(path: &Path) -> Result<SopsConfig, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| ConfigError::File {
            file: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        SopsConfig::parse(path, &bytes)
    }

    /// Parses a `.sops.yaml` from its bytes; `path` names the file in errors
    /// and is the folder `path_regex` is matched against. Only the file's
    /// YAML and the shape of `creation_rules` can fail here; each rule's
    /// problems wait until the rule applies to a file.
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
        let rules = raw_rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| CreationRule::parse(i, r))
            .collect();
        Ok(SopsConfig {
            path: path.to_path_buf(),
            rules,
            yaml_indent,
        })
    }

    /// The first rule whose `path_regex` matches (unanchored) the file's path
    /// relative to the config's folder, as sops picks it. A rule before the
    /// match whose `path_regex` does not compile is an error when `strict`
    /// (sops stops there too), and is skipped otherwise (the guard's policy).
    pub fn matching(
        &self,
        file: &Path,
        strict: bool,
    ) -> Result<Option<&CreationRule>, ConfigError> {
        let rel = self.relative(file);
        for r in &self.rules {
            match &r.path_regex {
                Ok(None) => return Ok(Some(r)),
                Ok(Some(re)) if re.is_match(&rel) => return Ok(Some(r)),
                Ok(Some(_)) => {}
                Err(e) if strict => {
                    return Err(ConfigError::File {
                        file: self.path.clone(),
                        msg: format!(
                            "{}: path_regex is not a valid regular expression ({e}), so it cannot be told whether the rule applies to {}; fix or remove the rule",
                            r.label(),
                            file.display()
                        ),
                    });
                }
                Err(_) => {}
            }
        }
        Ok(None)
    }

    /// The path `path_regex` sees: `file` made absolute (and cleaned, as Go's
    /// `filepath.Abs` does), minus the config's folder when it is inside it.
    fn relative(&self, file: &Path) -> String {
        let abs = clean_absolute(file);
        let base = self.path.parent().map(clean_absolute);
        let rel = base
            .as_ref()
            .and_then(|b| abs.strip_prefix(b).ok())
            .unwrap_or(&abs);
        rel.to_string_lossy().into_owned()
    }

    /// The rule that applies to `file`, checked usable: any problem of that
    /// rule is an error naming it and the fix. Rules that do not apply are
    /// never looked at.
    pub fn rule_for(&self, file: &Path) -> Result<Option<AppliedRule>, ConfigError> {
        let Some(r) = self.matching(file, true)? else {
            return Ok(None);
        };
        let fail = |problem: String, fix: &str| ConfigError::File {
            file: self.path.clone(),
            msg: format!(
                "{} applies to {} but {problem}; fix: {fix}",
                r.label(),
                file.display()
            ),
        };
        let keys_fix =
            "correct the rule's keys, or name recipients explicitly (--age, --pgp, --kms, …)";
        let groups = r
            .groups
            .clone()
            .map_err(|e| fail(format!("its keys cannot be used: {e}"), keys_fix))?;
        let rule = r.rule.clone().map_err(|e| {
            fail(
                format!("its encryption selection is invalid: {e}"),
                "correct the rule's *_suffix/*_regex field",
            )
        })?;
        if groups.is_empty() || groups.iter().any(Vec::is_empty) {
            // sops's own words (its functional tests and scripts match them).
            return Err(ConfigError::EmptyKeyGroup {
                config: self.path.clone(),
                rule: r.index,
            });
        }
        if let Some(u) = groups.iter().flatten().find(|x| !x.is_supported()) {
            return Err(fail(
                format!(
                    "ksec cannot encrypt for its {} recipient {} (not supported here yet)",
                    u.kind(),
                    u.id()
                ),
                "give this rule age, pgp, kms, gcp_kms, hc_vault_transit_uri or azure_keyvault keys, or name recipients explicitly",
            ));
        }
        Ok(Some(AppliedRule {
            index: r.index,
            groups,
            rule,
            shamir_threshold: r.shamir_threshold,
            mac_only_encrypted: r.mac_only_encrypted,
        }))
    }
}

/// `path` made absolute against the working folder, `.` and `..` resolved
/// lexically (no symlinks followed), like Go's `filepath.Abs`.
pub fn clean_absolute(path: &Path) -> PathBuf {
    use std::path::Component;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            // `..` at the root stays at the root, as in Go's `filepath.Clean`.
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> SopsConfig {
        SopsConfig::parse(Path::new("/r/.sops.yaml"), text.as_bytes()).unwrap()
    }

    #[test]
    fn path_regex_sees_the_cleaned_path_relative_to_the_config() {
        let c = cfg(
            "creation_rules:\n  - path_regex: ^a/s\\.yaml$\n    age: X\n  - path_regex: ^/elsewhere/\n    age: Y\n",
        );
        let idx = |p: &str| c.matching(Path::new(p), true).unwrap().map(|r| r.index);
        assert_eq!(idx("/r/a/s.yaml"), Some(0));
        assert_eq!(idx("/r/b/../a/./s.yaml"), Some(0));
        // Outside the config's folder the whole absolute path is matched.
        assert_eq!(idx("/elsewhere/s.yaml"), Some(1));
        assert_eq!(idx("/r/b/s.yaml"), None);
    }

    #[test]
    fn an_invalid_path_regex_stops_strict_matching_only_before_the_match() {
        let c = cfg(
            "creation_rules:\n  - path_regex: ^ok/\n    age: X\n  - path_regex: '('\n    age: Y\n  - age: Z\n",
        );
        assert_eq!(
            c.matching(Path::new("/r/ok/a"), true)
                .unwrap()
                .unwrap()
                .index,
            0
        );
        let e = c.matching(Path::new("/r/x"), true).unwrap_err().to_string();
        assert!(e.contains("creation_rules[1] (path_regex \"(\")"), "{e}");
        assert_eq!(
            c.matching(Path::new("/r/x"), false).unwrap().unwrap().index,
            2
        );
    }
}
