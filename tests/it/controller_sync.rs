//! `ksec controller` (a child process) against the real kube-apiserver:
//! EncryptedSecret → Secret with Ready=True, consumers restarted on a
//! change; refusals (wrong namespace, namespace outside the environment,
//! tampered MAC) become Stalled conditions with events and no Secret;
//! /metrics counts them; no canary value ever shows up in status, events,
//! metrics or logs.
use crate::support;

use std::path::Path;
use std::time::Duration;

use ksec::controller::EncryptedSecret;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use support::cluster::controller::{
    condition, content_hash, cr, install_crd, put_cr, rotate, start, start_with, template_hash,
    wait_condition,
};
use support::cluster::{Cluster, FakeKubelet, Health, Repo, cluster};

fn event_reasons_for(c: &Cluster, ns: &str, name: &str) -> Vec<String> {
    c.events(ns)
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

#[test]
fn encrypted_secrets_sync_refuse_and_report() {
    let scenario = support::bin::Scenario::new("encrypted_secrets_sync_refuse_and_report");
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "ctl");
    let other = c.namespace("prod", "ctlo");
    let dev = c.namespace("dev", "ctl");

    scenario.step("A valid one, used by a Deployment.");
    // A valid one, used by a Deployment.
    let good = repo.secret(
        "clusters/prod/db.yaml",
        &ns,
        "db",
        &[("password", "CANARY-ctl-pw-1"), ("user", "CANARY-ctl-user")],
    );
    scenario.step("Encrypted for `other`, placed in `ns`.");
    // Encrypted for `other`, placed in `ns`.
    let moved = repo.secret(
        "clusters/prod/moved.yaml",
        &other,
        "moved-db",
        &[("password", "CANARY-ctl-moved")],
    );
    scenario.step("Encrypted for `ns`, then renamed outside ksec: the MAC no longer verifies.");
    // Encrypted for `ns`, then renamed outside ksec: the MAC no longer verifies.
    let tampered = repo.secret(
        "clusters/prod/tampered.yaml",
        &ns,
        "tampered",
        &[("password", "CANARY-ctl-tampered")],
    );
    let t = std::fs::read_to_string(&tampered).unwrap();
    assert!(t.contains("name: tampered\n"), "{t}");
    std::fs::write(
        &tampered,
        t.replace("name: tampered\n", "name: tampered2\n"),
    )
    .unwrap();
    scenario.step("A dev Secret in a dev namespace the controller watches but prod does not own.");
    // A dev Secret in a dev namespace the controller watches but prod does not own.
    let devf = repo.secret(
        "clusters/dev/app.yaml",
        &dev,
        "app",
        &[("token", "CANARY-ctl-dev")],
    );
    scenario.step("Policy Delete: owned by its EncryptedSecret.");
    // Policy Delete: owned by its EncryptedSecret.
    let owned = repo.secret(
        "clusters/prod/owned.yaml",
        &other,
        "owned",
        &[("k", "CANARY-ctl-owned")],
    );

    scenario.step("drift: report — hand edits are reported, not reverted.");
    // drift: report — hand edits are reported, not reverted.
    let reported = repo.secret(
        "clusters/prod/reported.yaml",
        &ns,
        "reported",
        &[("password", "CANARY-ctl-reported")],
    );
    scenario.step("Someone else's Secret: an EncryptedSecret must not take it over.");
    // Someone else's Secret: an EncryptedSecret must not take it over.
    let taken = repo.secret(
        "clusters/prod/taken.yaml",
        &ns,
        "taken",
        &[("password", "CANARY-ctl-taken")],
    );
    c.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "taken", "namespace": ns},
        "stringData": {"password": "someone-elses"},
    }));

    c.deployment_using(&ns, "web", &[("db", "password")], 1);
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);

    let ctl = start(&c, &repo, &[&ns, &other, &dev]);
    put_cr(&c, &ns, "db", &good, json!({}));
    put_cr(&c, &ns, "moved", &moved, json!({}));
    put_cr(&c, &ns, "tampered", &tampered, json!({}));
    put_cr(&c, &dev, "app", &devf, json!({}));
    put_cr(&c, &ns, "taken", &taken, json!({}));
    put_cr(&c, &ns, "reported", &reported, json!({"drift": "report"}));
    put_cr(
        &c,
        &other,
        "owned",
        &owned,
        json!({"deletionPolicy": "Delete"}),
    );

    scenario.step(
        "1. The good one: Secret with the decrypted values, labelled, not owned (Orphan), Ready.",
    );
    // 1. The good one: Secret with the decrypted values, labelled, not owned (Orphan), Ready.
    wait_condition(&c, &ns, "db", "Ready", ("True", "Synced"));
    let data = c.secret_data(&ns, "db");
    assert_eq!(data["password"], "CANARY-ctl-pw-1");
    assert_eq!(data["user"], "CANARY-ctl-user");
    let s = c.secret(&ns, "db").unwrap();
    let labels = s.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["ksec.io/encryptedsecret"], "db");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "ksec");
    assert!(s.metadata.owner_references.is_none(), "Orphan: no owner");
    let st = cr(&c, &ns, "db").status.unwrap();
    assert_eq!(st.secret_name.as_deref(), Some(format!("{ns}/db").as_str()));
    assert_eq!(st.keys, vec!["password", "user"]);
    assert_eq!(condition(&c, &ns, "db", "Stalled").unwrap().0, "False");
    c.wait_for("a Synced event", 30, || {
        event_reasons_for(&c, &ns, "db").contains(&"Synced".to_string())
    });

    scenario.step("2. Policy Delete: owned by the EncryptedSecret.");
    // 2. Policy Delete: owned by the EncryptedSecret.
    wait_condition(&c, &other, "owned", "Ready", ("True", "Synced"));
    let owner = c
        .secret(&other, "owned")
        .unwrap()
        .metadata
        .owner_references
        .unwrap();
    assert_eq!(owner[0].kind, "EncryptedSecret");
    assert_eq!(owner[0].uid, cr(&c, &other, "owned").metadata.uid.unwrap());

    scenario.step("3. Refusals: Stalled with the reason, a Warning event, no Secret.");
    // 3. Refusals: Stalled with the reason, a Warning event, no Secret.
    for (n, name, reason) in [
        (&ns, "moved", "NamespaceNotAllowed"),
        (&ns, "tampered", "MacMismatch"),
        (&dev, "app", "NamespaceNotAllowed"),
        (&ns, "taken", "SecretConflict"),
    ] {
        wait_condition(&c, n, name, "Stalled", ("True", reason));
        assert_eq!(
            condition(&c, n, name, "Ready").unwrap(),
            ("False".to_string(), reason.to_string())
        );
        c.wait_for(&format!("a {reason} event for {n}/{name}"), 30, || {
            event_reasons_for(&c, n, name).contains(&reason.to_string())
        });
    }
    assert!(c.secret(&ns, "moved-db").is_none());
    assert!(c.secret(&other, "moved-db").is_none());
    assert!(c.secret(&ns, "tampered").is_none());
    assert!(c.secret(&ns, "tampered2").is_none());
    assert!(c.secret(&dev, "app").is_none());
    assert_eq!(c.secret_data(&ns, "taken")["password"], "someone-elses");

    scenario
        .step("4. A rotation: new value → Secret updated → the consumer rolled with the new hash.");
    // 4. A rotation: new value → Secret updated → the consumer rolled with the new hash.
    c.wait_rolled_out(&ns, "web");
    rotate(&c, &repo, &ns, "db", &good, "password", "CANARY-ctl-pw-2");
    assert_eq!(
        template_hash(&c, &ns, "web", "db"),
        Some(content_hash(&c, &ns, "db"))
    );

    scenario.step("5. A hand-deleted Secret comes back (the controller watches its own Secrets).");
    // 5. A hand-deleted Secret comes back (the controller watches its own Secrets).
    c.block(
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(c.admin.clone(), &ns)
            .delete("db", &Default::default()),
    )
    .unwrap();
    c.wait_for("the deleted Secret to be recreated", 30, || {
        c.secret_data(&ns, "db").get("password").map(String::as_str) == Some("CANARY-ctl-pw-2")
    });

    scenario.step("6. Drift: a hand edit is reverted (enforce, the default) or reported and kept.");
    // 6. Drift: a hand edit is reverted (enforce, the default) or reported and kept.
    let hand_edit = |name: &str| {
        c.block(
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(c.admin.clone(), &ns).patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"password": "CANARY-ctl-hand-edit"}})),
            ),
        )
        .unwrap();
    };
    hand_edit("db");
    c.wait_for("the hand edit to be reverted", 30, || {
        c.secret_data(&ns, "db").get("password").map(String::as_str) == Some("CANARY-ctl-pw-2")
    });
    wait_condition(&c, &ns, "reported", "Ready", ("True", "Synced"));
    hand_edit("reported");
    wait_condition(&c, &ns, "reported", "Drifted", ("True", "DriftDetected"));
    c.wait_for("a DriftDetected event", 30, || {
        event_reasons_for(&c, &ns, "reported").contains(&"DriftDetected".to_string())
    });
    let msg = cr(&c, &ns, "reported")
        .status
        .unwrap()
        .condition("Drifted")
        .unwrap()
        .message
        .clone();
    assert!(msg.contains("~password"), "{msg}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        c.secret_data(&ns, "reported")["password"],
        "CANARY-ctl-hand-edit"
    );

    scenario.step("7. Metrics count syncs, errors by reason, decrypt errors and restarts.");
    // 7. Metrics count syncs, errors by reason, decrypt errors and restarts.
    let (code, m) = ctl.get("/metrics");
    assert_eq!(code, 200);
    for want in [
        "ksec_controller_syncs_total{result=\"success\"}",
        "ksec_controller_sync_errors_total{reason=\"MacMismatch\"}",
        "ksec_controller_sync_errors_total{reason=\"NamespaceNotAllowed\"}",
        "ksec_controller_decrypt_errors_total{reason=\"MacMismatch\"}",
        "ksec_controller_restarts_total{outcome=\"executed\"}",
        "ksec_controller_reconcile_duration_seconds_count",
        "ksec_controller_drift_detected_total 1",
    ] {
        assert!(m.contains(want), "{want} missing from:\n{m}");
    }
    assert_eq!(ctl.get("/healthz").0, 200);
    assert_eq!(ctl.get("/nope").0, 404);

    scenario
        .step("8. Deleting the source: Orphan (default) keeps the Secret, Delete removes it (GC).");
    // 8. Deleting the source: Orphan (default) keeps the Secret, Delete removes it (GC).
    c.block(
        Api::<EncryptedSecret>::namespaced(c.admin.clone(), &ns).delete("db", &Default::default()),
    )
    .unwrap();
    c.block(
        Api::<EncryptedSecret>::namespaced(c.admin.clone(), &other)
            .delete("owned", &Default::default()),
    )
    .unwrap();
    c.wait_for("the owned Secret to be garbage-collected", 60, || {
        c.secret(&other, "owned").is_none()
    });
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-ctl-pw-2");

    scenario.step("9. No value anywhere: statuses, events, metrics, logs.");
    // 9. No value anywhere: statuses, events, metrics, logs.
    let mut seen = String::new();
    for n in [&ns, &other, &dev] {
        let list = c
            .block(
                Api::<EncryptedSecret>::namespaced(c.admin.clone(), n).list(&ListParams::default()),
            )
            .unwrap();
        for o in list.items {
            seen.push_str(&serde_json::to_string(&o.status).unwrap());
        }
        for e in c.events(n) {
            seen.push_str(&serde_json::to_string(&e).unwrap());
        }
    }
    seen.push_str(&m);
    let logs = ctl.logs();
    seen.push_str(&logs);
    assert!(logs.contains("metrics listening"), "logs:\n{logs}");
    assert!(!seen.contains("CANARY"), "a value leaked:\n{seen}");
}

/// The Role shipped in examples/deploy is enough: the controller, running as
/// a user bound only to it, syncs a Secret, restarts its consumer and records
/// an event.
#[test]
fn shipped_role_is_enough_for_a_namespaced_controller() {
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "ctlrbac");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/role.yaml"),
    )
    .unwrap();
    let docs = ksec::sops::store::yaml::parse(&text).unwrap();
    for d in docs.0 {
        let mut j = ksec::sops::Value::Map(d).to_json();
        j["metadata"]["namespace"] = json!(ns);
        if j["kind"] == "RoleBinding" {
            j["subjects"] = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "limited"}]);
        }
        c.create(j);
    }
    let f = repo.secret(
        "clusters/prod/api.yaml",
        &ns,
        "api",
        &[("token", "CANARY-rbac-1")],
    );
    c.deployment_using(&ns, "api", &[("api", "token")], 1);
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    c.wait_rolled_out(&ns, "api");
    let ctl = start_with(&c, &repo, &[&ns], "limited", &["--leader-elect"], &[]);
    put_cr(&c, &ns, "api", &f, json!({}));
    wait_condition(&c, &ns, "api", "Ready", ("True", "Synced"));
    assert_eq!(c.secret_data(&ns, "api")["token"], "CANARY-rbac-1");
    // The consumer was restarted (its template carries the content hash) and rolled out.
    rotate(&c, &repo, &ns, "api", &f, "token", "CANARY-rbac-2");
    assert_eq!(
        template_hash(&c, &ns, "api", "api"),
        Some(content_hash(&c, &ns, "api"))
    );
    c.wait_for("a Synced event", 30, || {
        event_reasons_for(&c, &ns, "api").contains(&"Synced".to_string())
    });
    let logs = ctl.logs();
    assert!(
        !logs.contains("forbidden") && !logs.contains("Forbidden"),
        "{logs}"
    );
    assert!(!logs.contains("CANARY"), "{logs}");
}

/// The ClusterRole shipped in examples/deploy/cluster-wide is enough: a
/// cluster-wide controller (`--env`, no `--namespace`) running as its
/// ServiceAccount, bound only by the shipped ClusterRoleBinding and Lease
/// Role, syncs a Secret, restarts its consumer, records an event and holds its
/// Lease; an EncryptedSecret in another environment's namespace is left alone.
#[test]
fn shipped_cluster_role_is_enough_for_a_cluster_wide_controller() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let repo = Repo::new(&c);
    let tag = support::cluster::suffix();
    // The shared cluster runs other tests: this environment owns only this test's namespaces.
    std::fs::write(
        repo.path("recipients/prod.yaml"),
        format!(
            "namespaces: [\"t-prod-cw{tag}-*\"]\nage:\n  - {}\n",
            repo.prod.recipient
        ),
    )
    .unwrap();
    let home = c.namespace("prod", &format!("cw{tag}"));
    let app = c.namespace("prod", &format!("cw{tag}"));
    let dev = c.namespace("dev", "cw");
    c.create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "ksec-controller", "namespace": home}}));
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/cluster-wide/clusterrole.yaml"),
    )
    .unwrap();
    let cluster_name = format!("ksec-controller-{tag}");
    for d in ksec::sops::store::yaml::parse(&text).unwrap().0 {
        let mut j = ksec::sops::Value::Map(d).to_json();
        match j["kind"].as_str().unwrap() {
            "ClusterRole" => j["metadata"]["name"] = json!(cluster_name),
            "ClusterRoleBinding" => {
                j["metadata"]["name"] = json!(cluster_name);
                j["roleRef"]["name"] = json!(cluster_name);
                j["subjects"][0]["namespace"] = json!(home);
            }
            _ => j["metadata"]["namespace"] = json!(home),
        }
        c.create(j);
    }
    // A kubeconfig context authenticating as the ServiceAccount (TokenRequest).
    c.kubeconfig_as(&home, "ksec-controller", &repo.path("sa.kubeconfig"));
    let sa = Cluster::at(repo.path("sa.kubeconfig"));

    let f = repo.secret(
        "clusters/prod/api.yaml",
        &app,
        "api",
        &[("token", "CANARY-cw-1")],
    );
    let other = repo.secret(
        "clusters/dev/other.yaml",
        &dev,
        "other",
        &[("token", "CANARY-cw-dev")],
    );
    c.deployment_using(&app, "api", &[("api", "token")], 1);
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &app, |_| Health::Ready);
    c.wait_rolled_out(&app, "api");
    let ctl = start_with(
        &sa,
        &repo,
        &[],
        "sa",
        &["--leader-elect"],
        &[("POD_NAMESPACE", home.as_str()), ("POD_NAME", "cw-replica")],
    );
    put_cr(&c, &dev, "other", &other, json!({}));
    put_cr(&c, &app, "api", &f, json!({}));
    wait_condition(&c, &app, "api", "Ready", ("True", "Synced"));
    assert_eq!(c.secret_data(&app, "api")["token"], "CANARY-cw-1");
    rotate(&c, &repo, &app, "api", &f, "token", "CANARY-cw-2");
    assert_eq!(
        template_hash(&c, &app, "api", "api"),
        Some(content_hash(&c, &app, "api"))
    );
    c.wait_for("a Synced event", 30, || {
        event_reasons_for(&c, &app, "api").contains(&"Synced".to_string())
    });
    assert_eq!(lease_holder(&c, &home).as_deref(), Some("cw-replica"));
    // Another environment's object: no status written, no Secret.
    assert!(cr(&c, &dev, "other").status.is_none());
    assert!(c.secret(&dev, "other").is_none());
    let logs = ctl.logs();
    assert!(
        !logs.contains("forbidden") && !logs.contains("Forbidden"),
        "{logs}"
    );
    assert!(!logs.contains("CANARY"), "{logs}");
    drop(ctl);
    let _ = c.block(
        Api::<ClusterRoleBinding>::all(c.admin.clone()).delete(&cluster_name, &Default::default()),
    );
    let _ = c
        .block(Api::<ClusterRole>::all(c.admin.clone()).delete(&cluster_name, &Default::default()));
}

fn lease_holder(c: &Cluster, ns: &str) -> Option<String> {
    c.block(
        Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(c.admin.clone(), ns)
            .get_opt("ksec-controller"),
    )
    .unwrap()
    .and_then(|l| l.spec)
    .and_then(|s| s.holder_identity)
}

/// Two replicas: one leads and syncs, the other stands by; when the leader
/// dies the standby takes over and syncs.
#[test]
fn two_replicas_one_leader_then_failover() {
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "ctllead");
    let args = ["--leader-elect", "--lease-duration", "3s"];
    let a = start_with(
        &c,
        &repo,
        &[&ns],
        "admin",
        &args,
        &[("POD_NAME", "replica-a")],
    );
    c.wait_for("replica-a to lead", 20, || {
        a.metric("ksec_controller_leader") == Some(1.0)
    });
    let b = start_with(
        &c,
        &repo,
        &[&ns],
        "admin",
        &args,
        &[("POD_NAME", "replica-b")],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(b.metric("ksec_controller_leader"), Some(0.0));
    assert_eq!(lease_holder(&c, &ns).as_deref(), Some("replica-a"));

    let one = repo.secret(
        "clusters/prod/one.yaml",
        &ns,
        "one",
        &[("k", "CANARY-lead-1")],
    );
    put_cr(&c, &ns, "one", &one, json!({}));
    wait_condition(&c, &ns, "one", "Ready", ("True", "Synced"));
    assert!(b.logs().contains("standing by"), "{}", b.logs());
    assert!(
        !b.logs().contains("reconciled"),
        "the standby reconciled:\n{}",
        b.logs()
    );

    assert!(a.logs().contains("reconciled"), "{}", a.logs());
    // The leader dies without releasing: the standby takes over after the lease expires.
    drop(a);
    c.wait_for("replica-b to lead", 20, || {
        b.metric("ksec_controller_leader") == Some(1.0)
    });
    assert_eq!(lease_holder(&c, &ns).as_deref(), Some("replica-b"));
    let two = repo.secret(
        "clusters/prod/two.yaml",
        &ns,
        "two",
        &[("k", "CANARY-lead-2")],
    );
    put_cr(&c, &ns, "two", &two, json!({}));
    wait_condition(&c, &ns, "two", "Ready", ("True", "Synced"));
    assert_eq!(c.secret_data(&ns, "two")["k"], "CANARY-lead-2");
    assert!(!b.logs().contains("CANARY"));
}
