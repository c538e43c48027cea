//! `recipients/<env>.yaml`: an environment owns namespaces (and optionally
//! paths) and names who may decrypt them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use super::ConfigError;
use super::sops_config::{KeySpec, parse_groups};
use crate::keys::Recipient;
use crate::sops::{Documents, Rule};

/// The on-disk schema (documented in the README): these fields and the key
/// fields of [`KeySpec`], read from the same mapping. Both are plain serde
/// structs (no `flatten`), so their field lists, read by [`struct_fields`],
/// are the one list of what a recipients file may hold.
#[derive(Debug, Deserialize)]
struct EnvFile {
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    rotate_after: Option<String>,
    #[serde(default)]
    shamir_threshold: Option<usize>,
    #[serde(default)]
    encrypted_regex: Option<String>,
    #[serde(default)]
    unencrypted_regex: Option<String>,
    #[serde(default)]
    encrypted_suffix: Option<String>,
    #[serde(default)]
    unencrypted_suffix: Option<String>,
    #[serde(default)]
    mac_only_encrypted: bool,
    #[serde(default)]
    rotation: Option<RotationPolicy>,
}

/// `rotation: {approval: required}`: a content change of a Secret in this
/// environment reaches no pod before someone in `owners` approves that
/// exact content (a SecretApproval object, which RBAC limits to them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationPolicy {
    #[serde(default)]
    pub approval: Approval,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Rotations roll out as soon as they are seen (the default).
    #[default]
    None,
    /// Rotations wait for a SecretApproval of their content hash.
    Required,
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub file: PathBuf,
    pub namespaces: Vec<String>,
    ns_matchers: Vec<GlobMatcher>,
    pub paths: Vec<String>,
    path_matchers: Vec<GlobMatcher>,
    pub owners: Vec<String>,
    /// Days after which a Secret should be rotated (`rotate_after: 90d`).
    pub rotate_after_days: Option<u32>,
    pub groups: Vec<Vec<Recipient>>,
    pub shamir_threshold: usize,
    pub rule: Option<Rule>,
    pub mac_only_encrypted: bool,
    /// `rotation:` (approval gate).
    pub rotation: RotationPolicy,
}

impl Environment {
    /// Rotations in this environment wait for an approval.
    pub fn approval_required(&self) -> bool {
        self.rotation.approval == Approval::Required
    }

    pub fn owns_namespace(&self, ns: &str) -> bool {
        self.ns_matchers.iter().any(|m| m.is_match(ns))
    }

    /// `rel` is relative to the repository root (the parent of `recipients/`).
    pub fn owns_path(&self, rel: &Path) -> bool {
        self.path_matchers.iter().any(|m| m.is_match(rel))
    }

    /// Every recipient id in every group.
    pub fn recipient_ids(&self) -> Vec<String> {
        self.groups.iter().flatten().map(Recipient::id).collect()
    }
}

fn parse_days(s: &str) -> Option<u32> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u32 = n.parse().ok()?;
    match unit {
        "" | "d" => Some(n),
        "w" => Some(n * 7),
        "m" | "mo" => Some(n * 30),
        "y" => Some(n * 365),
        _ => None,
    }
}

/// A loaded `recipients/` directory.
#[derive(Debug, Clone)]
pub struct RecipientsDir {
    pub dir: PathBuf,
    /// The folder `paths:` globs are relative to.
    pub root: PathBuf,
    pub envs: Vec<Environment>,
}

pub fn load_yaml_json(path: &Path) -> Result<serde_json::Value, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::File {
        file: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    parse_yaml_json(path, &bytes)
}

/// [`load_yaml_json`] on bytes already read; `path` only names the file in errors.
pub fn parse_yaml_json(path: &Path, bytes: &[u8]) -> Result<serde_json::Value, ConfigError> {
    let docs = crate::sops::store::load_plain(crate::sops::Format::Yaml, bytes).map_err(|e| {
        ConfigError::File {
            file: path.to_path_buf(),
            msg: e.to_string(),
        }
    })?;
    Ok(docs
        .0
        .first()
        .map(|m| crate::sops::Value::Map(m.clone()).to_json())
        .unwrap_or(serde_json::Value::Object(Default::default())))
}

impl RecipientsDir {
    /// Looks for `recipients/` in the file's folder and its ancestors, up to the repository root.
    pub fn find(file: &Path) -> Result<Option<RecipientsDir>, ConfigError> {
        let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let mut dir = abs.parent();
        while let Some(d) = dir {
            let cand = d.join("recipients");
            if cand.is_dir() && has_yaml(&cand) {
                return RecipientsDir::load(&cand).map(Some);
            }
            if d.join(".git").exists() {
                break;
            }
            dir = d.parent();
        }
        Ok(None)
    }

    pub fn load(dir: &Path) -> Result<RecipientsDir, ConfigError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ConfigError::File {
                file: dir.to_path_buf(),
                msg: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        let mut envs = Vec::new();
        for f in files {
            envs.push(load_env(&f)?);
        }
        unique_names(&envs)?;
        let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let root = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(RecipientsDir {
            dir: dir.to_path_buf(),
            root,
            envs,
        })
    }

    pub fn env(&self, name: &str) -> Option<&Environment> {
        self.envs.iter().find(|e| e.name == name)
    }

    /// The one environment owning `ns`; two is an error, none is `Ok(None)`.
    pub fn env_for_namespace(&self, ns: &str) -> Result<Option<&Environment>, ConfigError> {
        let owners: Vec<&Environment> = self.envs.iter().filter(|e| e.owns_namespace(ns)).collect();
        match owners.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(ConfigError::NamespaceConflict {
                namespace: ns.to_string(),
                files: many.iter().map(|e| e.file.clone()).collect(),
            }),
        }
    }

    fn env_for_path(&self, file: &Path) -> Result<Option<&Environment>, ConfigError> {
        let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let Ok(rel) = abs.strip_prefix(&self.root) else {
            return Ok(None);
        };
        let owners: Vec<&Environment> = self.envs.iter().filter(|e| e.owns_path(rel)).collect();
        match owners.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(ConfigError::Invalid(format!(
                "{} is matched by the paths of several environments: {}",
                rel.display(),
                many.iter()
                    .map(|e| e.file.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Picks the environment for a file. Namespaces decide; a Secret without
    /// one falls back to path globs or `--env`. Returns the reason too.
    pub fn route(
        &self,
        file: &Path,
        docs: &Documents,
        explicit: Option<&str>,
    ) -> Result<Option<(&Environment, String)>, ConfigError> {
        let explicit_env = match explicit {
            Some(n) => Some(self.env(n).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "--env {n}: no such environment in {} (have: {})",
                    self.dir.display(),
                    self.envs
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?),
            None => None,
        };
        // A Secret without a namespace belongs where `--env` or the file's
        // path puts it; every Secret of the file must land in one environment.
        let fallback = match explicit_env {
            Some(x) => Some((x, "--env".to_string())),
            None => self.env_for_path(file)?.map(|e| (e, "path".to_string())),
        };
        let mut chosen: Option<(&Environment, String)> = None;
        for ns in crate::manifest::secret_namespaces(docs) {
            let (env, why) = match ns {
                Some(ns) => (self.namespace_env(&ns, explicit_env)?, format!("namespace {ns}")),
                None => fallback.clone().ok_or_else(|| {
                    ConfigError::NoRecipients(format!(
                        "{}: a Secret has no metadata.namespace and no recipients path glob matches the file; set the namespace, add a `paths:` glob, or pass --env",
                        file.display()
                    ))
                })?,
            };
            match &chosen {
                Some((c, cwhy)) if c.name != env.name => {
                    return Err(ConfigError::MixedEnvironments(format!(
                        "{}: a Secret is in environment {} ({why}) but another is in {} ({cwhy}); split the file",
                        file.display(),
                        env.name,
                        c.name
                    )));
                }
                Some(_) => {}
                None => chosen = Some((env, why)),
            }
        }
        Ok(chosen.or(fallback))
    }

    /// The environment owning a Secret's namespace, which must agree with `--env`.
    fn namespace_env(
        &self,
        ns: &str,
        explicit: Option<&Environment>,
    ) -> Result<&Environment, ConfigError> {
        let env = self
            .env_for_namespace(ns)?
            .ok_or_else(|| ConfigError::NamespaceUnclaimed {
                namespace: ns.to_string(),
                dir: self.dir.clone(),
            })?;
        if let Some(x) = explicit
            && x.name != env.name
        {
            return Err(ConfigError::MixedEnvironments(format!(
                "--env {} was given but namespace {ns:?} belongs to environment {} ({})",
                x.name,
                env.name,
                env.file.display()
            )));
        }
        Ok(env)
    }
}

fn has_yaml(d: &Path) -> bool {
    std::fs::read_dir(d)
        .map(|it| {
            it.filter_map(Result::ok).any(|e| {
                e.path()
                    .extension()
                    .is_some_and(|x| x == "yaml" || x == "yml")
            })
        })
        .unwrap_or(false)
}

/// Two files naming the same environment (`environment:`, or the default
/// from the file name: `a.yaml` and `a.yml`) would make `--env` and reports
/// ambiguous: refused, naming both files.
fn unique_names(envs: &[Environment]) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for e in envs {
        if let Some(first) = seen.insert(&e.name, &e.file) {
            return Err(ConfigError::Invalid(format!(
                "environment {:?} is declared by two files: {} and {}",
                e.name,
                first.display(),
                e.file.display()
            )));
        }
    }
    Ok(())
}

/// Every top-level key must be a field of [`EnvFile`] or [`KeySpec`]: serde
/// would drop an unknown one silently, and a typo (`namespace:`) would
/// quietly change who may decrypt what.
fn check_fields(json: &serde_json::Value) -> Result<(), String> {
    let Some(obj) = json.as_object() else {
        return Ok(()); // not a mapping: serde says so, with the type
    };
    let known: Vec<&str> = struct_fields::<EnvFile>()
        .iter()
        .chain(struct_fields::<KeySpec>())
        .copied()
        .collect();
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            let hint = closest(k, &known)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            return Err(format!(
                "unknown field `{k}`{hint} (known fields: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

/// The known name within a small edit distance of `word`, if any.
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    let max = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (strsim::levenshtein(word, k), *k))
        .filter(|(d, _)| *d <= max)
        .min()
        .map(|(_, k)| k)
}

/// The field names serde's derive reads for `T` (a struct without
/// `flatten`): it passes them to `deserialize_struct`, where this probe
/// records them and stops.
fn struct_fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("field probe"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("field probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

fn load_env(path: &Path) -> Result<Environment, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::File {
        file: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    parse_env(path, &bytes)
}

/// Parses one `recipients/<env>.yaml` from its bytes; `path` names the file
/// in errors and gives the default environment name.
pub fn parse_env(path: &Path, bytes: &[u8]) -> Result<Environment, ConfigError> {
    let err = |msg: String| ConfigError::File {
        file: path.to_path_buf(),
        msg,
    };
    let json = parse_yaml_json(path, bytes)?;
    check_fields(&json).map_err(err)?;
    let keys: KeySpec = serde_json::from_value(json.clone()).map_err(|e| err(e.to_string()))?;
    let f: EnvFile = serde_json::from_value(json).map_err(|e| err(e.to_string()))?;
    let name = f.environment.clone().unwrap_or_else(|| {
        path.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("default")
            .to_string()
    });
    let glob = |p: &str| {
        Glob::new(p)
            .map(|g| g.compile_matcher())
            .map_err(|e| err(format!("bad glob {p:?}: {e}")))
    };
    let ns_matchers = f
        .namespaces
        .iter()
        .map(|p| glob(p))
        .collect::<Result<Vec<_>, _>>()?;
    let path_matchers = f
        .paths
        .iter()
        .map(|p| glob(p))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = parse_groups(&keys).map_err(|e| err(e.to_string()))?;
    if groups.is_empty() {
        return Err(err(
            "no recipients (give age:, kms:, gcp_kms:, hc_vault:, azure_keyvault: or key_groups:)"
                .into(),
        ));
    }
    let rotation = f.rotation.unwrap_or_default();
    if rotation.approval == Approval::Required && f.owners.is_empty() {
        return Err(err(
            "rotation: {approval: required} needs `owners:` (who may approve; `ksec rbac` binds them)"
                .into(),
        ));
    }
    if f.namespaces.is_empty() && f.paths.is_empty() {
        return Err(err("an environment needs `namespaces:` or `paths:`".into()));
    }
    let rule = Rule::from_fields([
        ("unencrypted_suffix", f.unencrypted_suffix.as_deref()),
        ("encrypted_suffix", f.encrypted_suffix.as_deref()),
        ("unencrypted_regex", f.unencrypted_regex.as_deref()),
        ("encrypted_regex", f.encrypted_regex.as_deref()),
    ])
    .map_err(err)?;
    let rotate_after_days = match &f.rotate_after {
        None => None,
        Some(s) => Some(parse_days(s).ok_or_else(|| {
            err(format!(
                "rotate_after {s:?}: use a number of days like 90d, 12w, 6m, 1y"
            ))
        })?),
    };
    Ok(Environment {
        name,
        file: path.to_path_buf(),
        namespaces: f.namespaces,
        ns_matchers,
        paths: f.paths,
        path_matchers,
        owners: f.owners,
        rotate_after_days,
        groups,
        shamir_threshold: f.shamir_threshold.unwrap_or(0),
        rule,
        mac_only_encrypted: f.mac_only_encrypted,
        rotation,
    })
}

#[cfg(test)]
mod strict_tests {
    use super::*;

    fn age() -> String {
        age::x25519::Identity::generate().to_public().to_string()
    }

    fn parse(text: &str) -> Result<Environment, String> {
        parse_env(Path::new("recipients/dev.yaml"), text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_known_fields_come_from_the_structs() {
        let env = struct_fields::<EnvFile>();
        let keys = struct_fields::<KeySpec>();
        for f in ["environment", "namespaces", "paths", "mac_only_encrypted"] {
            assert!(env.contains(&f), "{env:?}");
        }
        for f in ["age", "kms", "key_groups", "azure_keyvault"] {
            assert!(keys.contains(&f), "{keys:?}");
        }
    }

    #[test]
    fn the_approval_gate_is_parsed_strictly_and_needs_owners() {
        let base = format!("namespaces: [prod]\nage: [{}]\n", age());
        assert!(!parse(&base).unwrap().approval_required());
        let gated = format!("{base}owners: [\"@sec\"]\nrotation: {{approval: required}}\n");
        assert!(parse(&gated).unwrap().approval_required());
        let e = parse(&format!("{base}rotation: {{approval: required}}\n")).unwrap_err();
        assert!(e.contains("needs `owners:`"), "{e}");
        let e = parse(&format!("{base}owners: [a]\nrotation: {{approval: yes}}\n")).unwrap_err();
        assert!(e.contains("unknown variant"), "{e}");
        let e = parse(&format!(
            "{base}owners: [a]\nrotation: {{aproval: required}}\n"
        ))
        .unwrap_err();
        assert!(e.contains("unknown field `aproval`"), "{e}");
    }

    #[test]
    fn unknown_fields_are_errors_with_a_suggestion() {
        let e = parse(&format!("namespace: [dev]\nage: [{}]\n", age())).unwrap_err();
        assert!(e.starts_with("recipients/dev.yaml: "), "{e}");
        assert!(e.contains("unknown field `namespace`"), "{e}");
        assert!(e.contains("did you mean `namespaces`?"), "{e}");
        let e = parse(&format!(
            "namespaces: [dev]\nage: [{}]\ncolour: red\n",
            age()
        ))
        .unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
        assert!(!e.contains("did you mean"), "{e}");
        assert!(parse(&format!("namespaces: [dev]\nage: [{}]\n", age())).is_ok());
    }

    #[test]
    fn flat_keys_next_to_key_groups_are_errors() {
        let (a, b) = (age(), age());
        let e = parse(&format!(
            "namespaces: [dev]\nage: [{a}]\nkey_groups:\n  - age: [{b}]\n"
        ))
        .unwrap_err();
        assert!(e.contains("`age:` next to `key_groups:`"), "{e}");
        let ok = parse(&format!(
            "namespaces: [dev]\nkey_groups:\n  - age: [{a}]\n  - age: [{b}]\n"
        ))
        .unwrap();
        assert_eq!(ok.groups.len(), 2);
        // The same check in .sops.yaml creation rules (same parse_groups).
        let cfg = format!(
            "creation_rules:\n  - path_regex: .*\n    age: {a}\n    key_groups:\n      - age: [{b}]\n"
        );
        // Only when the rule is the one that applies (sops evaluates no other).
        let parsed = super::super::SopsConfig::parse(Path::new(".sops.yaml"), cfg.as_bytes())
            .expect("a rule's keys are checked when it applies");
        let e = parsed
            .rule_for(Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`age:` next to `key_groups:`"), "{e}");
    }

    #[test]
    fn two_files_declaring_one_environment_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let body = |extra: &str| format!("{extra}namespaces: [x]\nage: [{}]\n", age());
        std::fs::write(dir.path().join("a.yaml"), body("environment: prod\n")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), body("environment: prod\n")).unwrap();
        let e = RecipientsDir::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("\"prod\""), "{e}");
        assert!(e.contains("a.yaml") && e.contains("b.yaml"), "{e}");
        // Default names count too: b.yaml and b.yml are both "b".
        std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), body("")).unwrap();
        std::fs::write(dir.path().join("b.yml"), body("")).unwrap();
        let e = RecipientsDir::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("b.yaml") && e.contains("b.yml"), "{e}");
    }
}
