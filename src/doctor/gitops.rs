//! How GitOps tools change what a manifest file means before it reaches
//! the cluster, as far as Secret references are concerned: Flux
//! `Kustomization`s (`spec.path`, `targetNamespace`, `postBuild.substitute`),
//! kustomize's `namespace:` and `secretGenerator`, and the objects that make
//! Secrets at run time (ExternalSecret, SealedSecret, SopsSecret,
//! EncryptedSecret, cert-manager Certificate).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as J;

/// The namespace and substitution variables that apply below one folder.
#[derive(Debug, Clone)]
struct Scope {
    dir: PathBuf,
    namespace: Option<String>,
    vars: BTreeMap<String, String>,
    /// Flux `substituteFrom`: variables exist that are not in the repository.
    has_external_vars: bool,
    /// A Flux target namespace overrides a nested kustomization's.
    flux: bool,
}

/// What applies to one file.
#[derive(Debug, Clone, Default)]
pub struct FileContext {
    /// Forced namespace (Flux `targetNamespace`, kustomize `namespace:`).
    pub namespace: Option<String>,
    pub vars: BTreeMap<String, String>,
    pub has_external_vars: bool,
}

/// The folder scopes of a repository.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    scopes: Vec<Scope>,
}

impl Layout {
    /// Builds the scopes from every manifest file (`root`: where Flux paths start).
    pub fn scan(root: &Path, files: &[(PathBuf, J)]) -> Layout {
        let mut scopes = Vec::new();
        for (file, obj) in files {
            if let Some(s) = flux_scope(root, obj) {
                scopes.push(s);
            } else if is_kustomize_config(obj)
                && let Some(ns) = obj.get("namespace").and_then(J::as_str)
            {
                scopes.push(Scope {
                    dir: normalize(file.parent().unwrap_or(Path::new(""))),
                    namespace: Some(ns.to_string()),
                    vars: BTreeMap::new(),
                    has_external_vars: false,
                    flux: false,
                });
            }
        }
        Layout { scopes }
    }

    /// The deepest Flux scope wins; else the deepest kustomize scope.
    pub fn context(&self, file: &Path) -> FileContext {
        let file = normalize(file);
        let mut best: Option<&Scope> = None;
        for s in self.scopes.iter().filter(|s| file.starts_with(&s.dir)) {
            let better = match best {
                None => true,
                Some(b) if s.flux != b.flux => s.flux,
                Some(b) => s.dir.components().count() > b.dir.components().count(),
            };
            if better {
                best = Some(s);
            }
        }
        let mut ctx = FileContext::default();
        if let Some(b) = best {
            ctx.namespace = b.namespace.clone();
        }
        // Variables of every enclosing Flux scope (outer first, inner wins).
        let mut flux: Vec<&Scope> = self
            .scopes
            .iter()
            .filter(|s| s.flux && file.starts_with(&s.dir))
            .collect();
        flux.sort_by_key(|s| s.dir.components().count());
        for s in flux {
            ctx.vars.extend(s.vars.clone());
            ctx.has_external_vars |= s.has_external_vars;
        }
        ctx
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn is_flux_kustomization(obj: &J) -> bool {
    obj.get("kind").and_then(J::as_str) == Some("Kustomization")
        && obj
            .get("apiVersion")
            .and_then(J::as_str)
            .is_some_and(|a| a.starts_with("kustomize.toolkit.fluxcd.io/"))
}

/// kustomize's own `kustomization.yaml` (a Kustomization or Component).
pub fn is_kustomize_config(obj: &J) -> bool {
    let api = obj.get("apiVersion").and_then(J::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(J::as_str).unwrap_or("");
    api.starts_with("kustomize.config.k8s.io/") && matches!(kind, "Kustomization" | "Component")
}

fn flux_scope(root: &Path, obj: &J) -> Option<Scope> {
    if !is_flux_kustomization(obj) {
        return None;
    }
    let spec = obj.get("spec")?;
    let path = spec.get("path").and_then(J::as_str).unwrap_or("./");
    let vars = spec
        .pointer("/postBuild/substitute")
        .and_then(J::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), scalar(v)?)))
                .collect()
        })
        .unwrap_or_default();
    Some(Scope {
        dir: normalize(&root.join(path.trim_start_matches('/'))),
        namespace: spec
            .get("targetNamespace")
            .and_then(J::as_str)
            .map(str::to_string),
        vars,
        has_external_vars: spec
            .pointer("/postBuild/substituteFrom")
            .and_then(J::as_array)
            .is_some_and(|a| !a.is_empty()),
        flux: true,
    })
}

fn scalar(v: &J) -> Option<String> {
    match v {
        J::String(s) => Some(s.clone()),
        J::Number(n) => Some(n.to_string()),
        J::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Flux's `envsubst`: `${VAR}`, `${VAR:=default}`, `${VAR:-default}`.
/// Unknown variables without a default stay as they are.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &after[..end];
        let (name, default) = match inner.find(":=").or_else(|| inner.find(":-")) {
            Some(j) => (&inner[..j], Some(&inner[j + 2..])),
            None => (inner, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match (valid, vars.get(name), default) {
            (true, Some(v), _) => out.push_str(v),
            (true, None, Some(d)) => out.push_str(d),
            _ => out.push_str(&rest[i..i + 3 + end]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Does a name still hold a `${VAR}` after substitution?
pub fn unresolved(name: &str) -> bool {
    name.contains("${")
}

/// A Secret that something other than a Secret manifest creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub namespace: String,
    pub name: String,
    /// `ExternalSecret/x`, `secretGenerator`, …
    pub by: String,
    pub file: PathBuf,
}

/// The Secrets an object makes at run time (`ns`: its namespace).
pub fn provided(obj: &J, ns: &str, file: &Path) -> Vec<Provider> {
    let kind = obj.get("kind").and_then(J::as_str).unwrap_or("");
    let own = obj
        .pointer("/metadata/name")
        .and_then(J::as_str)
        .unwrap_or("");
    let s = |p: &str| obj.pointer(p).and_then(J::as_str).map(str::to_string);
    let names: Vec<String> = match kind {
        "ExternalSecret" => vec![s("/spec/target/name").unwrap_or_else(|| own.to_string())],
        "SealedSecret" => {
            vec![s("/spec/template/metadata/name").unwrap_or_else(|| own.to_string())]
        }
        "EncryptedSecret" => vec![own.to_string()],
        "Certificate" => s("/spec/secretName").into_iter().collect(),
        "SopsSecret" => obj
            .pointer("/spec/secretTemplates")
            .and_then(J::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("name").and_then(J::as_str).map(str::to_string))
            .collect(),
        _ if is_kustomize_config(obj) => return generated(obj, ns, file),
        _ => vec![],
    };
    names
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|name| Provider {
            namespace: ns.to_string(),
            name,
            by: format!("{kind}/{own}"),
            file: file.to_path_buf(),
        })
        .collect()
}

/// kustomize `secretGenerator`s. References by the generator's name are
/// rewritten by kustomize to the hashed name, so the plain name provides.
fn generated(obj: &J, ns: &str, file: &Path) -> Vec<Provider> {
    let prefix = obj.get("namePrefix").and_then(J::as_str).unwrap_or("");
    let suffix = obj.get("nameSuffix").and_then(J::as_str).unwrap_or("");
    let ns = obj.get("namespace").and_then(J::as_str).unwrap_or(ns);
    obj.get("secretGenerator")
        .and_then(J::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| {
            let name = g.get("name").and_then(J::as_str)?;
            Some(Provider {
                namespace: g
                    .get("namespace")
                    .and_then(J::as_str)
                    .unwrap_or(ns)
                    .to_string(),
                name: format!("{prefix}{name}{suffix}"),
                by: "secretGenerator".into(),
                file: file.to_path_buf(),
            })
        })
        .collect()
}

/// Secrets declared by a consumer as made outside the repository (an
/// operator at run time): `ksec.io/external-secrets: "a, b"`.
pub const EXTERNAL_ANNOTATION: &str = "ksec.io/external-secrets";

pub fn declared_external(obj: &J) -> Vec<String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(EXTERNAL_ANNOTATION))
        .and_then(J::as_str)
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flux_target_namespace_and_vars_apply_below_the_path() {
        let files = vec![
            (
                PathBuf::from("repo/apps/a/ks.yaml"),
                json!({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                       "metadata": {"name": "a"},
                       "spec": {"path": "./apps/a/app", "targetNamespace": "tools",
                                "postBuild": {"substitute": {"APP": "atuin"}}}}),
            ),
            (
                PathBuf::from("repo/apps/a/app/kustomization.yaml"),
                json!({"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "other"}),
            ),
        ];
        let l = Layout::scan(Path::new("repo"), &files);
        let c = l.context(Path::new("repo/apps/a/app/deploy.yaml"));
        assert_eq!(c.namespace.as_deref(), Some("tools"));
        assert_eq!(c.vars.get("APP").map(String::as_str), Some("atuin"));
        assert_eq!(l.context(Path::new("repo/apps/b/x.yaml")).namespace, None);
    }

    #[test]
    fn envsubst_forms() {
        let v = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(substitute("${A}-${B:=d}-${C}-${A:-z}", &v), "x-d-${C}-x");
    }
}
