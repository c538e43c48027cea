//! The reviewable escape hatches and the path policy.
//!
//! - `.ksec.yaml` → `guard: {exclude: [globs], path_policy: true}`: path
//!   excludes live in one committed file, so a reviewer sees them.
//! - Inline `# ksec:allow reason=...` markers, optionally narrowed with
//!   `rule=` and `key=`. A marker without a reason is itself a finding.
//! - Path policy: a `.sops.yaml` creation rule with a `path_regex`, or a
//!   `recipients/<env>.yaml` `paths:` glob, says a file must be encrypted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;

use super::lines::is_placeholder;
use super::{Finding, GuardError, RuleId, Severity};
use crate::recipients::{RecipientsDir, SopsConfig};
use crate::sops::Rule;

/// The file name looked up from the current folder up to the repository root.
pub const CONFIG_FILE: &str = ".ksec.yaml";

/// The `guard:` section of `.ksec.yaml`.
#[derive(Clone, Debug)]
pub struct GuardConfig {
    /// Folder the exclude globs are relative to.
    pub root: Option<PathBuf>,
    pub exclude_patterns: Vec<String>,
    exclude: GlobSet,
    /// `false` turns the `.sops.yaml`/`recipients/` path policy off.
    pub path_policy: bool,
    pub file: Option<PathBuf>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            root: None,
            exclude_patterns: vec![],
            exclude: GlobSet::empty(),
            path_policy: true,
            file: None,
        }
    }
}

impl GuardConfig {
    /// Builds from exclude globs; a glob without `/` matches a file name at any depth.
    pub fn new(
        root: Option<PathBuf>,
        patterns: Vec<String>,
        path_policy: bool,
    ) -> Result<GuardConfig, String> {
        let mut b = GlobSetBuilder::new();
        for p in &patterns {
            let p2 = if p.contains('/') {
                p.trim_start_matches('/').to_string()
            } else {
                format!("**/{p}")
            };
            let g = GlobBuilder::new(&p2)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("guard.exclude {p:?}: {e}"))?;
            b.add(g);
            // `dir/**` style: also match the folder given without the trailing glob.
            if let Some(d) = p2.strip_suffix('/') {
                if let Ok(g) = GlobBuilder::new(&format!("{d}/**"))
                    .literal_separator(true)
                    .build()
                {
                    b.add(g);
                }
            }
        }
        Ok(GuardConfig {
            root,
            exclude: b.build().map_err(|e| e.to_string())?,
            exclude_patterns: patterns,
            path_policy,
            file: None,
        })
    }

    /// Reads `.ksec.yaml`. Missing `guard:` means defaults; a malformed file is a tool error.
    pub fn load(path: &Path) -> Result<GuardConfig, GuardError> {
        let err = |msg: String| GuardError::Config {
            file: path.display().to_string(),
            msg,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let docs = crate::sops::store::load_plain(crate::sops::Format::Yaml, &bytes)
            .map_err(|e| err(e.to_string()))?;
        let json = docs
            .0
            .first()
            .map(|m| crate::sops::Value::Map(m.clone()).to_json())
            .unwrap_or(serde_json::Value::Null);
        let guard = json
            .get("guard")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let mut patterns = Vec::new();
        let mut path_policy = true;
        match &guard {
            serde_json::Value::Null => {}
            serde_json::Value::Object(o) => {
                for (k, v) in o {
                    match k.as_str() {
                        "exclude" => match v {
                            serde_json::Value::Array(a) => {
                                for p in a {
                                    match p.as_str() {
                                        Some(s) if !s.is_empty() => patterns.push(s.to_string()),
                                        _ => {
                                            return Err(err(
                                                "guard.exclude entries must be non-empty strings"
                                                    .into(),
                                            ));
                                        }
                                    }
                                }
                            }
                            serde_json::Value::Null => {}
                            _ => return Err(err("guard.exclude must be a list of globs".into())),
                        },
                        "path_policy" => {
                            path_policy = v.as_bool().ok_or_else(|| {
                                err("guard.path_policy must be true or false".into())
                            })?
                        }
                        other => return Err(err(format!("guard: unknown setting {other:?}"))),
                    }
                }
            }
            _ => return Err(err("guard must be a mapping".into())),
        }
        let root = path
            .parent()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
        let mut c = GuardConfig::new(root, patterns, path_policy).map_err(err)?;
        c.file = Some(path.to_path_buf());
        Ok(c)
    }

    /// Looks for `.ksec.yaml` in `start` and its parents, stopping at the repository root.
    pub fn discover(start: &Path) -> Result<GuardConfig, GuardError> {
        let abs = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        for d in abs.ancestors() {
            let p = d.join(CONFIG_FILE);
            if p.is_file() {
                return GuardConfig::load(&p);
            }
            if d.join(".git").exists() {
                break;
            }
        }
        Ok(GuardConfig::default())
    }

    /// Whether `path` (as given, or relative to the config's folder) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        if self.exclude_patterns.is_empty() {
            return false;
        }
        let given = path.trim_start_matches("./");
        if self.exclude.is_match(given) {
            return true;
        }
        if let Some(root) = &self.root {
            let abs = std::path::absolute(Path::new(path)).unwrap_or_else(|_| path.into());
            if let Ok(rel) = abs.strip_prefix(root) {
                return self.exclude.is_match(rel);
            }
        }
        false
    }
}

/// An inline `ksec:allow` marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub line: usize,
    pub rule: Option<String>,
    pub key: Option<String>,
    pub reason: Option<String>,
}

fn marker_re() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?:#|//|\{\{-?\s*/\*|\{#)[^\n]*?\bksec:allow\b([^\n]*)").expect("static regex")
    })
}

/// Finds the markers in a file's text (in `#`, `//`, `{{/* */}}` or `{# #}` comments).
pub fn markers(text: &str) -> Vec<Marker> {
    if !text.contains("ksec:allow") {
        return vec![];
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(c) = marker_re().captures(line) else {
            continue;
        };
        let rest = c.get(1).map(|m| m.as_str()).unwrap_or("");
        let rest = rest
            .trim()
            .trim_end_matches("*/}}")
            .trim_end_matches("*/ -}}")
            .trim_end_matches("#}")
            .trim();
        let mut m = Marker {
            line: n + 1,
            rule: None,
            key: None,
            reason: None,
        };
        // reason= takes the rest of the line; rule= and key= are single words before it.
        let (head, reason) = match rest.find("reason=") {
            Some(i) => (&rest[..i], Some(&rest[i + "reason=".len()..])),
            None => (rest, None),
        };
        for w in head.split_whitespace() {
            if let Some(v) = w.strip_prefix("rule=") {
                m.rule = Some(v.to_string());
            } else if let Some(v) = w.strip_prefix("key=") {
                m.key = Some(v.to_string());
            }
        }
        m.reason = reason
            .map(|r| {
                r.trim()
                    .trim_matches(|c| c == '"' || c == '\'')
                    .trim()
                    .to_string()
            })
            .filter(|r| !r.is_empty());
        out.push(m);
    }
    out
}

/// Applies markers: matching findings become `Allowed`; a marker without a
/// reason suppresses nothing and is reported.
pub fn apply_markers(file: &str, text: &str, findings: &mut Vec<Finding>) {
    let ms = markers(text);
    for m in &ms {
        let Some(reason) = &m.reason else {
            findings.push(
                Finding::new(
                    file,
                    0,
                    "",
                    RuleId::AllowWithoutReason,
                    Severity::Error,
                    "ksec:allow needs a reason: `# ksec:allow reason=why this is safe`",
                )
                .at_line(m.line),
            );
            continue;
        };
        if let Some(r) = &m.rule {
            if RuleId::from_str_id(r).is_none() {
                findings.push(
                    Finding::new(
                        file,
                        0,
                        "",
                        RuleId::AllowWithoutReason,
                        Severity::Error,
                        format!("ksec:allow names an unknown rule {r:?}"),
                    )
                    .at_line(m.line),
                );
                continue;
            }
        }
        for f in findings.iter_mut() {
            if f.severity == Severity::Allowed || f.rule_id == RuleId::AllowWithoutReason {
                continue;
            }
            let rule_ok = m.rule.as_deref().is_none_or(|r| r == f.rule_id.as_str());
            let key_ok = m.key.as_deref().is_none_or(|k| {
                f.key_path == k
                    || f.key_path.starts_with(&format!("{k}."))
                    || f.key_path.starts_with(&format!("{k}["))
            });
            if rule_ok && key_ok {
                f.severity = Severity::Allowed;
                f.message = format!("{} (allowed at line {}: {reason})", f.message, m.line);
            }
        }
    }
}

/// Why a file must carry sops metadata.
#[derive(Clone, Debug)]
pub struct Requirement {
    pub why: String,
    /// The creation rule's selection; `None`: ksec's default for the file.
    pub scope: Option<Rule>,
    /// recipients/ globs route Secrets; they only bind secret-bearing files.
    pub secrets_only: bool,
}

/// Answers "must this file be encrypted?" for the judge.
pub trait PathPolicy: Sync {
    fn requirement(&self, path: &str) -> Option<Requirement>;

    /// Why the file is a template rendered before encryption (its
    /// `.sops.yaml` rule is itself a template), or `None`.
    fn template(&self, _path: &str) -> Option<String> {
        None
    }
}

/// Path policy precomputed from the working tree's `.sops.yaml` and
/// `recipients/` for a known set of files, so judging stays infallible and
/// configuration errors surface before any file is judged (exit 2).
#[derive(Default)]
pub struct FsPolicy {
    reqs: HashMap<String, Requirement>,
    templates: HashMap<String, String>,
}

impl FsPolicy {
    /// `files`: (path as reported, path on disk where the configuration applies).
    pub fn build(files: &[(String, PathBuf)]) -> Result<FsPolicy, GuardError> {
        let mut sops_cache: HashMap<PathBuf, Option<SopsConfig>> = HashMap::new();
        let mut rdir_cache: HashMap<PathBuf, Option<RecipientsDir>> = HashMap::new();
        let mut reqs = HashMap::new();
        let mut templates = HashMap::new();
        for (name, fs_path) in files {
            let base = fs_path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            // The configuration files themselves are never "must be encrypted".
            if base == ".sops.yaml" || base == CONFIG_FILE {
                continue;
            }
            let dir = fs_path.parent().unwrap_or(Path::new(".")).to_path_buf();
            if !sops_cache.contains_key(&dir) {
                let c = SopsConfig::find(&dir)?;
                sops_cache.insert(dir.clone(), c);
            }
            if let Some(Some(cfg)) = sops_cache.get(&dir) {
                if let Some(why) = template_rule(cfg, fs_path) {
                    templates.insert(name.clone(), why);
                    continue;
                }
                if let Some(req) = sops_requirement(cfg, fs_path) {
                    reqs.insert(name.clone(), req);
                    continue;
                }
            }
            if !rdir_cache.contains_key(&dir) {
                let d = RecipientsDir::find(fs_path)?;
                rdir_cache.insert(dir.clone(), d);
            }
            if let Some(Some(rd)) = rdir_cache.get(&dir) {
                if fs_path.starts_with(&rd.dir) {
                    continue;
                }
                let abs = std::path::absolute(fs_path).unwrap_or_else(|_| fs_path.clone());
                if let Ok(rel) = abs.strip_prefix(&rd.root) {
                    if let Some(env) = rd.envs.iter().find(|e| e.owns_path(rel)) {
                        reqs.insert(
                            name.clone(),
                            Requirement {
                                why: format!(
                                    "{} routes {} to environment {:?} (paths:)",
                                    env.file.display(),
                                    rel.display(),
                                    env.name
                                ),
                                scope: env.rule.clone(),
                                secrets_only: true,
                            },
                        );
                    }
                }
            }
        }
        Ok(FsPolicy { reqs, templates })
    }
}

/// A `.sops.yaml` whose matching rule names only `${…}` recipients is a
/// template of a configuration (cluster templates render it, and the files
/// beside it, with envsubst before anything is encrypted): sops cannot
/// encrypt with it, so it sets no path policy, and the files it governs are
/// templates whose values are filled at render time.
pub(crate) fn template_rule(cfg: &SopsConfig, file: &Path) -> Option<String> {
    let r = cfg.matching(file, false).ok().flatten()?;
    let i = r.index;
    let groups = r.groups.as_ref().ok()?;
    let mut ids = groups.iter().flatten().map(|r| r.id()).peekable();
    ids.peek()?;
    let all_placeholders = ids.all(|id| id.trim().starts_with("${") && is_placeholder(&id));
    all_placeholders.then(|| {
        format!(
            "{} creation_rules[{i}] names only ${{…}} recipients: a template rendered before encryption",
            cfg.path.display()
        )
    })
}

/// Only rules with an explicit `path_regex` make a promise about paths;
/// a catch-all rule is just sops's default recipients.
///
/// The first matching rule decides, as in sops; a rule's key problems never
/// matter here (the guard judges paths, not keys), and a rule whose own
/// selection is invalid falls back to ksec's default selection.
fn sops_requirement(cfg: &SopsConfig, file: &Path) -> Option<Requirement> {
    let r = cfg.matching(file, false).ok().flatten()?;
    r.path_regex_src.as_ref()?;
    Some(Requirement {
        why: format!("{} {} matches it", cfg.path.display(), r.label()),
        scope: r.rule.clone().ok().flatten(),
        secrets_only: false,
    })
}

impl PathPolicy for FsPolicy {
    fn requirement(&self, path: &str) -> Option<Requirement> {
        self.reqs.get(path).cloned()
    }

    fn template(&self, path: &str) -> Option<String> {
        self.templates.get(path).cloned()
    }
}

/// Joins a relative reference onto a `/`-separated folder, resolving `.` and
/// `..`; `None` when it escapes the root or is absolute.
pub fn join_rel(dir: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_parsing() {
        let m = markers(
            "a: b\n# ksec:allow rule=plaintext-secret-value key=data.x reason=test fixture\n",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].line, 2);
        assert_eq!(m[0].rule.as_deref(), Some("plaintext-secret-value"));
        assert_eq!(m[0].key.as_deref(), Some("data.x"));
        assert_eq!(m[0].reason.as_deref(), Some("test fixture"));
        let m = markers("# ksec:allow\n");
        assert_eq!(m[0].reason, None);
        assert!(markers("ksec:allow reason=x (not in a comment)\n").is_empty());
    }

    #[test]
    fn excludes() {
        let c =
            GuardConfig::new(None, vec!["tests/fixtures/**".into(), "*.tpl".into()], true).unwrap();
        assert!(c.is_excluded("tests/fixtures/a/b.yaml"));
        assert!(c.is_excluded("charts/x/templates/s.tpl"));
        assert!(!c.is_excluded("tests/other.yaml"));
    }

    #[test]
    fn join() {
        assert_eq!(join_rel("a/b", "../c.env").as_deref(), Some("a/c.env"));
        assert_eq!(join_rel("", "./x/y").as_deref(), Some("x/y"));
        assert_eq!(join_rel("", "../x"), None);
    }
}
