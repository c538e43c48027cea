//! `ksec apply` against the real kube-apiserver + kube-controller-manager:
//! first apply, no-op re-apply, value change → one restart → verified,
//! re-encrypt without change → no restart, stale consumers.
use crate::support;

use serde_json::json;
use support::cluster::{FakeKubelet, Health, Repo, cluster, names};

#[test]
fn first_apply_then_noop_reapply() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "first");
    let f = repo.secret(
        "clusters/prod/db.yaml",
        &ns,
        "db",
        &[("password", "CANARY-first-1"), ("user", "app")],
    );
    let id = &repo.prod.identity_file;

    let (code, r, err) = repo.apply_json(id, &[f.to_str().unwrap()]);
    assert_eq!(code, 0, "stderr: {err}\nreport: {r}");
    assert_eq!(names(&r, "applied"), vec![format!("{ns}/db")]);
    assert_eq!(r["applied"][0]["action"], "created");
    assert_eq!(
        r["applied"][0]["keys"]["added"],
        json!(["password", "user"])
    );
    // The server holds the decrypted values, applied by field manager ksec, labelled.
    let s = c.secret(&ns, "db").expect("secret exists");
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-first-1");
    let managers: Vec<(String, String)> = s
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("ksec".into(), "Apply".into())),
        "{managers:?}"
    );
    let labels = s.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "ksec");
    let rv = s.metadata.resource_version.clone();
    // Never a value in the report.
    assert!(!r.to_string().contains("CANARY"));

    let (code, r, err) = repo.apply_json(id, &[f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(&r, "unchanged"), vec![format!("{ns}/db")]);
    assert!(names(&r, "applied").is_empty(), "{r}");
    assert_eq!(
        c.secret(&ns, "db").unwrap().metadata.resource_version,
        rv,
        "a no-op apply must not write"
    );

    // Human output too: key names, no values.
    let o = repo.ksec("apply", id, &[f.to_str().unwrap()]);
    let text = format!("{}{}", support::bin::stdout(&o), support::bin::stderr(&o));
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("unchanged") && !text.contains("CANARY"),
        "{text}"
    );
}

#[test]
fn value_change_restarts_consumers_once_and_verifies_reencrypt_does_not() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "roll");
    let id = &repo.prod.identity_file;
    let db = repo.secret("p/db.yaml", &ns, "db", &[("password", "CANARY-v1")]);
    let api = repo.secret("p/api.yaml", &ns, "api", &[("token", "CANARY-t1")]);
    let (code, _, err) = repo.apply_json(id, &[db.to_str().unwrap(), api.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    // web uses both Secrets; other uses neither; a bare pod uses db.
    c.deployment_using(&ns, "web", &[("db", "password"), ("api", "token")], 2);
    c.deployment_using(&ns, "other", &[], 1);
    c.create(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "debug", "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "example.invalid/x:1",
            "envFrom": [{"secretRef": {"name": "db"}}]}]}
    }));
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    c.wait_rolled_out(&ns, "web");
    c.wait_rolled_out(&ns, "other");
    let gen_web = c.deployment(&ns, "web").metadata.generation;
    let gen_other = c.deployment(&ns, "other").metadata.generation;

    // Both Secrets change together: one rollout of web.
    repo.set(&db, "password", "CANARY-v2");
    repo.set(&api, "token", "CANARY-t2");
    let (code, r, err) = repo.apply_json(
        id,
        &[
            "--timeout",
            "60s",
            db.to_str().unwrap(),
            api.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "stderr: {err}\nreport: {r}");
    assert!(!r.to_string().contains("CANARY"), "{r}");
    assert_eq!(
        r["applied"][0]["keys"]["changed"],
        json!(["password"]),
        "{r}"
    );
    let restarted = r["restarted"].as_array().unwrap();
    assert_eq!(restarted.len(), 1, "{r}");
    assert_eq!(restarted[0]["name"], "web");
    assert_eq!(restarted[0]["secrets"], json!(["api", "db"]));
    assert_eq!(restarted[0]["outcome"]["result"], "verified", "{r}");
    assert_eq!(r["verified"], json!([format!("{ns}/Deployment/web")]));
    // The bare pod cannot be rolled: listed as stale.
    let stale = r["stale"].as_array().unwrap();
    assert_eq!(stale.len(), 1, "{r}");
    assert_eq!(
        (stale[0]["kind"].as_str(), stale[0]["name"].as_str()),
        (Some("Pod"), Some("debug"))
    );

    // On the server: exactly one new generation, every pod carries the new hashes.
    let d = c.deployment(&ns, "web");
    assert_eq!(d.metadata.generation, gen_web.map(|g| g + 1), "one rollout");
    assert_eq!(c.deployment(&ns, "other").metadata.generation, gen_other);
    let tmpl = d
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    let h_db =
        c.secret(&ns, "db").unwrap().metadata.annotations.unwrap()["ksec.io/content-hash"].clone();
    assert_eq!(tmpl["secret.ksec.io/db"], h_db);
    assert!(tmpl.contains_key("secret.ksec.io/api"));
    let web_pods: Vec<_> = c
        .pods(&ns)
        .into_iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str)
                == Some("web")
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(web_pods.len(), 2);
    for p in &web_pods {
        assert_eq!(
            p.metadata.annotations.as_ref().unwrap()["secret.ksec.io/db"],
            h_db
        );
    }
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-v2");

    // Re-encrypt (new data key, every ciphertext changes) without changing a value: no restart.
    let before = std::fs::read_to_string(&db).unwrap();
    let o = support::bin::run(
        support::bin::ksec()
            .args(["rotate", "-i"])
            .arg(&db)
            .env("SOPS_AGE_KEY_FILE", &repo.prod.identity_file),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert_ne!(before, std::fs::read_to_string(&db).unwrap());
    let generation = c.deployment(&ns, "web").metadata.generation;
    let (code, r, err) = repo.apply_json(id, &[db.to_str().unwrap(), api.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["restarted"], json!([]), "{r}");
    assert_eq!(r["unchanged"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(c.deployment(&ns, "web").metadata.generation, generation);
}

#[test]
fn opted_out_workloads_are_not_restarted_and_env_users_are_stale() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "optout");
    let id = &repo.prod.identity_file;
    let db = repo.secret("p/db.yaml", &ns, "db", &[("password", "CANARY-a")]);
    assert_eq!(repo.apply_json(id, &[db.to_str().unwrap()]).0, 0);
    c.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "legacy", "namespace": ns, "annotations": {"ksec.io/restart": "false"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "legacy"}},
            "template": {"metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1",
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]}}}
    }));
    let generation = c.deployment(&ns, "legacy").metadata.generation;
    repo.set(&db, "password", "CANARY-b");
    let (code, r, err) = repo.apply_json(id, &[db.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["restarted"], json!([]), "{r}");
    assert_eq!(r["stale"][0]["name"], "legacy", "{r}");
    assert!(
        r["stale"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("env secretKeyRef")
    );
    assert_eq!(c.deployment(&ns, "legacy").metadata.generation, generation);
}
