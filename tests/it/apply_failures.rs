//! `ksec apply` refusing and failing against the real API server: a failing
//! rollout (exit 1, rollback), namespace boundary refusals, RBAC 403s.
use crate::support;

use serde_json::json;
use support::cluster::{FakeKubelet, Health, Repo, cluster, names};

#[test]
fn failing_rollout_exits_1_and_rolls_back() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "fail");
    let id = &repo.prod.identity_file;
    let db = repo.secret("p/db.yaml", &ns, "db", &[("password", "CANARY-good")]);
    assert_eq!(repo.apply_json(id, &[db.to_str().unwrap()]).0, 0);
    c.deployment_using(&ns, "web", &[("db", "password")], 1);
    // FAKE kubelet: pods started for the new Secret content crash; the old ones run.
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, Health::crash_when_rolled_for("db"));
    c.wait_rolled_out(&ns, "web");

    repo.set(&db, "password", "CANARY-bad");
    let (code, r, err) = repo.apply_json(
        id,
        &[
            "--timeout",
            "45s",
            "--rollback-on-failure",
            db.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "stderr: {err}\nreport: {r}");
    assert_eq!(r["ok"], false);
    let w = &r["restarted"][0];
    assert_eq!(w["name"], "web", "{r}");
    assert_eq!(w["outcome"]["result"], "failed", "{r}");
    assert!(
        w["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("CrashLoopBackOff"),
        "{r}"
    );
    assert_eq!(w["rolledBack"], true, "{r}");
    assert!(!r.to_string().contains("CANARY"));

    // The template is the old one again, and the controller went back to the old pods.
    let d = c.deployment(&ns, "web");
    let ann = d
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap_or_default();
    assert!(!ann.contains_key("secret.ksec.io/db"), "{ann:?}");
    c.wait_for("the crashing pods to go away", 60, || {
        c.pods(&ns).iter().all(|p| {
            p.metadata.deletion_timestamp.is_some()
                || !p
                    .metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key("secret.ksec.io/db"))
        })
    });
    c.wait_rolled_out(&ns, "web");
    // The human report names the workload and the reason.
    drop(_kubelet);
}

#[test]
fn failing_rollout_without_rollback_is_reported_and_left() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "failtxt");
    let id = &repo.prod.identity_file;
    let db = repo.secret("p/db.yaml", &ns, "db", &[("password", "CANARY-1")]);
    assert_eq!(repo.apply_json(id, &[db.to_str().unwrap()]).0, 0);
    c.deployment_using(&ns, "api", &[("db", "password")], 1);
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, Health::crash_when_rolled_for("db"));
    c.wait_rolled_out(&ns, "api");
    repo.set(&db, "password", "CANARY-2");
    let o = repo.ksec("apply", id, &["--timeout", "30s", db.to_str().unwrap()]);
    let err = support::bin::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("Deployment {ns}/api")) && err.contains("CrashLoopBackOff"),
        "{err}"
    );
    // No rollback asked: the new template stays.
    let ann = c
        .deployment(&ns, "api")
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(ann.contains_key("secret.ksec.io/db"));
}

#[test]
fn namespace_not_owned_by_the_files_environment_is_refused_before_anything_is_applied() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "boundary");
    // A Secret for a prod namespace, but encrypted for dev's key only.
    let bad = repo.path("p/smuggled.yaml");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    std::fs::write(
        &bad,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: smuggled\n  namespace: {ns}\nstringData:\n  k: CANARY-x\n"),
    )
    .unwrap();
    let o = support::bin::run(
        support::bin::ksec()
            .args(["encrypt", "-i", "--age", &repo.dev.recipient])
            .arg(&bad),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let good = repo.secret("p/good.yaml", &ns, "good", &[("k", "CANARY-y")]);

    let keys = repo.keys_file();
    let (code, r, err) = repo.apply_json(&keys, &[good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{err} {r}");
    let reason = r["refused"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("belongs to environment prod")
            && reason.contains("encrypted for environment dev"),
        "{r}"
    );
    assert!(c.secret(&ns, "smuggled").is_none());
    assert!(
        c.secret(&ns, "good").is_none(),
        "nothing may be applied when one file is refused"
    );

    // A file moved to another namespace (namespace edited in the ciphertext file) fails the MAC.
    let ns2 = c.namespace("prod", "moved");
    let moved = repo.path("p/moved.yaml");
    std::fs::write(
        &moved,
        std::fs::read_to_string(&good).unwrap().replace(&ns, &ns2),
    )
    .unwrap();
    let (code, r, _) = repo.apply_json(&keys, &[moved.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        r["refused"][0]["reason"].as_str().unwrap().contains("MAC"),
        "{r}"
    );
    assert!(c.secret(&ns2, "good").is_none());

    // --env dev skips prod files without decrypting them.
    let (code, r, err) = repo.apply_json(
        &repo.dev.identity_file,
        &["--env", "dev", good.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(&r, "applied"), Vec::<String>::new());
    assert!(
        r["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not --env dev"),
        "{r}"
    );
}

#[test]
fn rbac_forbidding_secrets_in_another_namespace_is_a_clear_error() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let allowed = c.namespace("prod", "rbac-ok");
    let denied = c.namespace("prod", "rbac-no");
    // The limited user may manage Secrets (and what apply reads) in `allowed` only.
    c.create(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "ksec-apply", "namespace": allowed},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list", "create", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["pods", "serviceaccounts"], "verbs": ["list"]},
            {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"], "verbs": ["get", "list", "patch"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]}
        ]
    }));
    c.create(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "ksec-apply", "namespace": allowed},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ksec-apply"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "limited"}]
    }));
    let a = repo.secret("p/a.yaml", &allowed, "a", &[("k", "CANARY-a")]);
    let b = repo.secret("p/b.yaml", &denied, "b", &[("k", "CANARY-b")]);
    let id = &repo.prod.identity_file;

    let o = repo.ksec(
        "apply",
        id,
        &[
            "--context",
            "limited",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
        ],
    );
    let err = support::bin::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("forbidden"), "{err}");
    assert!(
        err.contains("User \"limited\"") && err.contains(&denied),
        "{err}"
    );
    assert!(err.contains("nothing was applied"), "{err}");
    assert!(!err.contains("CANARY"));
    assert!(
        c.secret(&allowed, "a").is_none(),
        "no write before the RBAC check passed"
    );
    assert!(c.secret(&denied, "b").is_none());

    // The same token can apply where it is allowed.
    let o = repo.ksec("apply", id, &["--context", "limited", a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert_eq!(c.secret_data(&allowed, "a")["k"], "CANARY-a");
}
