//! Least-privilege RBAC: one Role + RoleBinding per workload service
//! account, scoped by `resourceNames` to exactly the Secrets it uses (the
//! field guide's Step 4), and a finding for Roles that grant wildcard access.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value as J, json};

use super::inventory::{Inventory, RoleDecl};
use super::{Check, Finding};
use crate::recipients::RecipientsDir;

/// (namespace, service account) -> Secret names its workloads use.
pub fn secrets_by_service_account(inv: &Inventory) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut m: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (w, _) in &inv.workloads {
        let e = m
            .entry((w.namespace.clone(), w.service_account.clone()))
            .or_default();
        e.extend(w.refs.iter().map(|r| r.secret.clone()));
    }
    m.retain(|_, v| !v.is_empty());
    m
}

/// The generated objects, as JSON (the CLI prints them as YAML or JSON).
pub fn generate(inv: &Inventory) -> Vec<J> {
    let mut out = Vec::new();
    for ((ns, sa), secrets) in secrets_by_service_account(inv) {
        let name = format!("ksec-{sa}-secrets");
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "ksec"}},
            "rules": [{
                "apiGroups": [""],
                "resources": ["secrets"],
                "verbs": ["get"],
                "resourceNames": secrets.iter().collect::<Vec<_>>(),
            }],
        }));
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "ksec"}},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        }));
    }
    out
}

/// The Role that may approve rotations (create SecretApprovals) in each
/// namespace of an environment with `rotation: {approval: required}`,
/// bound to its `owners`. Namespaces: the environment's literal ones and
/// those of the manifests that its globs match.
pub fn approvers(dir: &RecipientsDir, inv: &Inventory) -> Vec<J> {
    let seen: BTreeSet<&str> = inv
        .secrets
        .iter()
        .map(|s| s.namespace.as_str())
        .chain(inv.workloads.iter().map(|(w, _)| w.namespace.as_str()))
        .collect();
    let mut out = Vec::new();
    for env in dir.envs.iter().filter(|e| e.approval_required()) {
        let literal = env
            .namespaces
            .iter()
            .filter(|n| !n.contains(['*', '?', '[', '{']))
            .map(String::as_str);
        let namespaces: BTreeSet<&str> = literal
            .chain(seen.iter().copied().filter(|n| env.owns_namespace(n)))
            .collect();
        let subjects: Vec<J> = env.owners.iter().map(|o| owner_subject(o)).collect();
        for ns in namespaces {
            let meta = json!({"name": "ksec-secret-approver", "namespace": ns,
                "labels": {"app.kubernetes.io/managed-by": "ksec", "ksec.io/environment": env.name}});
            out.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": [{
                    "apiGroups": ["ksec.io"],
                    "resources": ["secretapprovals"],
                    "verbs": ["create", "get", "list", "watch"],
                }],
            }));
            // A gated environment always names owners (the recipients file refuses it otherwise).
            out.push(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "subjects": subjects,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ksec-secret-approver"},
            }));
        }
    }
    out
}

/// An `owners:` entry as an RBAC subject: `@team` and `group:team` are
/// groups, `system:serviceaccount:NS:NAME` a service account, anything else a user.
pub fn owner_subject(owner: &str) -> J {
    let rbac = "rbac.authorization.k8s.io";
    if let Some(sa) = owner.strip_prefix("system:serviceaccount:")
        && let Some((ns, name)) = sa.split_once(':')
    {
        return json!({"kind": "ServiceAccount", "name": name, "namespace": ns});
    }
    if let Some(g) = owner
        .strip_prefix('@')
        .or_else(|| owner.strip_prefix("group:"))
    {
        return json!({"kind": "Group", "apiGroup": rbac, "name": g});
    }
    json!({"kind": "User", "apiGroup": rbac, "name": owner.strip_prefix("user:").unwrap_or(owner)})
}

fn strs(v: Option<&J>) -> Vec<&str> {
    v.and_then(J::as_array)
        .into_iter()
        .flatten()
        .filter_map(J::as_str)
        .collect()
}

/// A Role/ClusterRole rule that reaches Secrets without naming them.
pub fn wildcard_finding(r: &RoleDecl, dir: Option<&RecipientsDir>) -> Option<Finding> {
    for rule in &r.rules {
        let groups = strs(rule.get("apiGroups"));
        let resources = strs(rule.get("resources"));
        let verbs = strs(rule.get("verbs"));
        let names = strs(rule.get("resourceNames"));
        let core = groups.iter().any(|g| g.is_empty() || *g == "*");
        let secrets = resources.iter().any(|x| *x == "secrets" || *x == "*");
        let reads = verbs
            .iter()
            .any(|v| matches!(*v, "get" | "list" | "watch" | "*"));
        let listing = verbs.iter().any(|v| matches!(*v, "list" | "watch" | "*"));
        if core && secrets && reads && (names.is_empty() || listing) {
            let ns = r
                .namespace
                .clone()
                .unwrap_or_else(|| "(cluster-wide)".into());
            let env = r
                .namespace
                .as_deref()
                .and_then(|n| dir.and_then(|d| d.env_for_namespace(n).ok().flatten()))
                .map(|e| e.name.clone())
                .unwrap_or_else(|| "-".into());
            return Some(Finding {
                severity: Check::WildcardSecretAccess.default_severity(),
                check: Check::WildcardSecretAccess,
                environment: env,
                namespace: ns,
                object: format!("{}/{}", r.kind, r.name),
                file: Some(r.file.clone()),
                message: format!(
                    "grants {} on {} secrets{}",
                    verbs.join(","),
                    if names.is_empty() { "all" } else { "named" },
                    if listing && !names.is_empty() {
                        " (list/watch ignore resourceNames, so every Secret is readable)"
                    } else {
                        ""
                    }
                ),
                fix: Some(
                    "replace it with the Roles from `ksec rbac PATH` (get on resourceNames only)"
                        .into(),
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipients::env::parse_env;

    #[test]
    fn owners_become_subjects_of_the_approver_role_in_each_namespace() {
        let key = age::x25519::Identity::generate().to_public().to_string();
        let text = format!(
            "namespaces: [prod, \"prod-*\"]\nage: [{key}]\nowners: [\"@sec\", \"group:ops\", \"system:serviceaccount:ci:approver\", \"alice@example.com\"]\nrotation: {{approval: required}}\n"
        );
        let env = parse_env(
            std::path::Path::new("recipients/prod.yaml"),
            text.as_bytes(),
        )
        .unwrap();
        let dir = RecipientsDir {
            dir: "recipients".into(),
            root: ".".into(),
            envs: vec![env],
        };
        let objs = approvers(&dir, &Inventory::default());
        // Only the literal namespace without manifests naming a prod-* one.
        assert_eq!(objs.len(), 2, "{objs:#?}");
        assert_eq!(objs[0]["metadata"]["namespace"], "prod");
        assert_eq!(objs[0]["rules"][0]["resources"][0], "secretapprovals");
        let subjects = &objs[1]["subjects"];
        assert_eq!(
            subjects[0],
            json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "sec"})
        );
        assert_eq!(subjects[1]["name"], "ops");
        assert_eq!(
            subjects[2],
            json!({"kind": "ServiceAccount", "name": "approver", "namespace": "ci"})
        );
        assert_eq!(subjects[3]["kind"], "User");
    }
}
