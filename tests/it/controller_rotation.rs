//! The rotation handler (`ksec controller --watch-secrets`) against the real
//! kube-apiserver and kube-controller-manager, with the tests playing
//! External Secrets Operator: the Secret an ExternalSecret owns changes, and
//! exactly its consumers roll, once, verified; a metadata change, a burst, a
//! controller restart (a full re-list) and a re-created Secret never start a
//! restart loop; in an environment with `rotation: {approval: required}` the
//! rollout waits for a SecretApproval that only the owners' Role may create
//! (the real authorizer refuses anyone else), and `ksec apply` exits 3.
use crate::support;

use std::time::Duration;

use serde_json::json;
use support::bin::{self, Scenario};
use support::cluster::controller::{install_crd, start_with, template_hash};
use support::cluster::eso::{install_eso_crd, put_external_secret, write_target_secret};
use support::cluster::{Cluster, FakeKubelet, Health, Repo, cluster};

fn generation(c: &Cluster, ns: &str, dep: &str) -> i64 {
    c.deployment(ns, dep).metadata.generation.unwrap_or(0)
}

fn generations(c: &Cluster, ns: &str, deps: &[&str]) -> Vec<i64> {
    deps.iter().map(|d| generation(c, ns, d)).collect()
}

/// Reasons and notes of the events about Secret `name`.
fn secret_events(c: &Cluster, ns: &str, name: &str) -> Vec<(String, String)> {
    c.events(ns)
        .into_iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Secret")
                && e.involved_object.name.as_deref() == Some(name)
        })
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Holds for `secs` that the generations do not move (no rollout started).
fn stays(c: &Cluster, ns: &str, deps: &[&str], want: &[i64], secs: u64, what: &str) {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        assert_eq!(generations(c, ns, deps), want, "{what}: a rollout started");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn an_eso_rotation_rolls_exactly_its_consumers_once_and_nothing_else_does() {
    let s = Scenario::new("an_eso_rotation_rolls_exactly_its_consumers_once_and_nothing_else_does");
    let Some(c) = cluster() else { return };
    install_crd(&c);
    install_eso_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "rot");
    put_external_secret(&c, &ns, "db", "1h", None);
    write_target_secret(&c, &ns, "db", &[("password", "CANARY-rot-1")]);
    // Not owned by an ExternalSecret, not opted in: never watched.
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "plain", "namespace": ns}, "stringData": {"token": "CANARY-rot-plain"}}));
    c.deployment_using(&ns, "web", &[("db", "password")], 1);
    c.deployment_using(&ns, "worker", &[("db", "password")], 1);
    c.deployment_using(&ns, "bystander", &[("plain", "token")], 1);
    let deps = ["web", "worker", "bystander"];
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    for d in deps {
        c.wait_rolled_out(&ns, d);
    }
    let args = [
        "--watch-secrets",
        "--watch-debounce",
        "1s",
        "--eso-interval",
        "0",
    ];
    let ctl = start_with(&c, &repo, &[&ns], "admin", &args, &[]);
    let watched = "ksec_controller_watched_secrets";

    s.step("first sight: nothing rolls");
    c.wait_for("the ESO Secret to be watched", 30, || {
        ctl.metric(watched) == Some(1.0)
    });
    let g0 = generations(&c, &ns, &deps);
    stays(&c, &ns, &deps, &g0, 3, "first sight of a Secret");

    s.step("ESO writes a new value: web and worker roll once, verified");
    write_target_secret(&c, &ns, "db", &[("password", "CANARY-rot-2")]);
    c.wait_for("the Rotated event", 60, || {
        secret_events(&c, &ns, "db")
            .iter()
            .any(|(r, _)| r == "Rotated")
    });
    let g1 = generations(&c, &ns, &deps);
    assert_eq!(
        g1,
        vec![g0[0] + 1, g0[1] + 1, g0[2]],
        "one rollout each, bystander untouched"
    );
    let hash = template_hash(&c, &ns, "web", "db").expect("web carries the content hash");
    assert_eq!(template_hash(&c, &ns, "worker", "db"), Some(hash.clone()));
    let (_, note) = secret_events(&c, &ns, "db")
        .into_iter()
        .find(|(r, _)| r == "Rotated")
        .unwrap();
    assert!(
        note.contains("~password") && note.contains("verified"),
        "{note}"
    );
    assert!(
        note.contains("Deployment web") && note.contains("Deployment worker"),
        "{note}"
    );
    let verified = format!(
        "ksec_controller_rotation_rollouts_total{{namespace=\"{ns}\",result=\"verified\"}}"
    );
    assert_eq!(
        ctl.metric(&verified),
        Some(2.0),
        "{}",
        ctl.get("/metrics").1
    );

    s.step("a label edit restarts nothing");
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": ns, "labels": {"team": "payments"}}}));
    stays(&c, &ns, &deps, &g1, 4, "a metadata-only change");

    s.step("a burst of changes gives one rollout");
    write_target_secret(&c, &ns, "db", &[("password", "CANARY-rot-3")]);
    write_target_secret(
        &c,
        &ns,
        "db",
        &[("password", "CANARY-rot-4"), ("user", "app")],
    );
    c.wait_for("the burst's rollout", 60, || {
        generation(&c, &ns, "web") > g1[0]
    });
    c.wait_rolled_out(&ns, "web");
    stays(
        &c,
        &ns,
        &deps,
        &[g1[0] + 1, g1[1] + 1, g1[2]],
        4,
        "after the burst",
    );
    c.wait_for("the burst's own Rotated event, with both keys", 30, || {
        secret_events(&c, &ns, "db")
            .iter()
            .any(|(r, n)| r == "Rotated" && n.contains("+user") && n.contains("~password"))
    });
    let g2 = generations(&c, &ns, &deps);

    s.step("a controller restart (a full re-list) rolls nothing");
    drop(ctl);
    let ctl = start_with(&c, &repo, &[&ns], "admin", &args, &[]);
    c.wait_for("the re-listed Secret", 30, || {
        ctl.metric(watched) == Some(1.0)
    });
    stays(&c, &ns, &deps, &g2, 4, "a re-list with unchanged content");

    s.step("deleted and re-created by ESO: at most one rollout, then quiet");
    c.block(
        kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(c.admin.clone(), &ns)
            .delete("db", &Default::default()),
    )
    .unwrap();
    write_target_secret(
        &c,
        &ns,
        "db",
        &[("password", "CANARY-rot-4"), ("user", "app")],
    );
    c.wait_for("the re-created Secret's rollout", 60, || {
        generation(&c, &ns, "web") > g2[0]
    });
    c.wait_rolled_out(&ns, "web");
    let g3 = generations(&c, &ns, &deps);
    assert_eq!(g3, vec![g2[0] + 1, g2[1] + 1, g2[2]]);
    stays(&c, &ns, &deps, &g3, 4, "after the re-creation");

    s.step("no value anywhere");
    let (_, m) = ctl.get("/metrics");
    let events: Vec<String> = secret_events(&c, &ns, "db")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    for (what, text) in [
        ("metrics", m),
        ("logs", ctl.logs()),
        ("events", events.join("\n")),
    ] {
        assert!(!text.contains("CANARY"), "a value in the {what}:\n{text}");
    }
    // The hash salt (the Secret's uid) stays with the Secret: not in events.
    let uid = c.secret(&ns, "db").unwrap().metadata.uid.unwrap();
    let all_events = serde_json::to_string(&c.events(&ns)).unwrap();
    assert!(!all_events.contains(&uid), "the salt in an event");

    s.step("SIGTERM stops it (regression: the watch loop ignored it)");
    let mut ctl = ctl;
    let pid = ctl.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = ctl.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            std::time::Instant::now() < end,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}\n{}", ctl.logs());
}

/// `recipients/prod.yaml` with an approval gate; owners are a group and the
/// `approver` ServiceAccount of `ns`.
fn gated_repo(c: &Cluster, ns: &str) -> Repo {
    let repo = Repo::new(c);
    let p = repo.path("recipients/prod.yaml");
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.push_str(&format!(
        "owners: [\"@secret-approvers\", \"system:serviceaccount:{ns}:approver\"]\nrotation: {{approval: required}}\n"
    ));
    std::fs::write(&p, text).unwrap();
    repo
}

/// The hash in the `ksec approve … --hash HASH` command a message names.
fn hash_to_approve(message: &str) -> Option<String> {
    let rest = message.split("--hash ").nth(1)?;
    rest.split_whitespace().next().map(str::to_string)
}

/// `ksec approve` as the ServiceAccount behind `kubeconfig` (context `sa`).
fn approve_as(kubeconfig: &std::path::Path, ns: &str, hash: &str) -> std::process::Output {
    bin::run(
        bin::ksec()
            .args(["approve", "--kubeconfig"])
            .arg(kubeconfig)
            .args([
                "--context",
                "sa",
                "-n",
                ns,
                "db",
                "--hash",
                hash,
                "--reason",
                "CHG-1",
            ]),
    )
}

#[test]
fn a_gated_environment_holds_the_rollout_until_an_owner_approves() {
    let s = Scenario::new("a_gated_environment_holds_the_rollout_until_an_owner_approves");
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let ns = c.namespace("prod", "gate");
    let repo = gated_repo(&c, &ns);
    // The Role comes from `ksec rbac` over the repository (a manifest names the namespace).
    repo.secret(
        "clusters/prod/app.yaml",
        &ns,
        "app",
        &[("k", "CANARY-gate-app")],
    );
    let o = bin::run(
        bin::ksec()
            .args(["rbac", "-o", "json"])
            .arg(repo.path("clusters"))
            .arg("--recipients-dir")
            .arg(repo.path("recipients")),
    );
    let rbac: serde_json::Value = serde_json::from_str(&bin::stdout(&o)).expect("rbac -o json");
    let mut roles = 0;
    for obj in rbac["items"].as_array().unwrap() {
        if obj["metadata"]["name"] == "ksec-secret-approver" {
            roles += 1;
            c.create(obj.clone());
        }
    }
    assert_eq!(roles, 2, "a Role and its RoleBinding: {rbac}");
    for sa in ["approver", "mallory"] {
        c.create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": sa, "namespace": ns}}));
    }
    let approver = c.kubeconfig_as(&ns, "approver", &repo.path("approver.kubeconfig"));
    let mallory = c.kubeconfig_as(&ns, "mallory", &repo.path("mallory.kubeconfig"));
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": ns, "annotations": {"ksec.io/watch": "true"}},
        "stringData": {"password": "CANARY-gate-1"}}));
    c.deployment_using(&ns, "web", &[("db", "password")], 1);
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    c.wait_rolled_out(&ns, "web");
    let args = [
        "--watch-secrets",
        "--watch-debounce",
        "1s",
        "--approval-poll",
        "1s",
        "--eso-interval",
        "0",
    ];
    let ctl = start_with(&c, &repo, &[&ns], "admin", &args, &[]);
    c.wait_for("the Secret to be watched", 30, || {
        ctl.metric("ksec_controller_watched_secrets") == Some(1.0)
    });
    let g0 = generation(&c, &ns, "web");

    s.step("the rotation waits, naming the owners");
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": ns, "annotations": {"ksec.io/watch": "true"}},
        "stringData": {"password": "CANARY-gate-2"}}));
    let awaiting =
        format!("ksec_controller_rotation_awaiting_approval{{namespace=\"{ns}\",secret=\"db\"}}");
    c.wait_for("awaiting approval", 60, || {
        ctl.metric(&awaiting) == Some(1.0)
    });
    let (_, note) = secret_events(&c, &ns, "db")
        .into_iter()
        .find(|(r, _)| r == "AwaitingApproval")
        .expect("an AwaitingApproval event");
    assert!(
        note.contains("@secret-approvers") && note.contains("~password"),
        "{note}"
    );
    let hash = hash_to_approve(&note).expect("the hash to approve");
    stays(&c, &ns, &["web"], &[g0], 3, "before approval");

    s.step("someone without the approver Role is refused by the authorizer");
    let o = approve_as(&mallory, &ns, &hash);
    assert_eq!(o.status.code(), Some(1), "{}", bin::stderr(&o));
    assert!(bin::stderr(&o).contains("forbidden"), "{}", bin::stderr(&o));
    stays(&c, &ns, &["web"], &[g0], 2, "after a refused approval");

    s.step("an approval of another hash does not release it");
    let o = approve_as(&approver, &ns, "0123456789abcdef0123456789abcdef");
    assert!(o.status.success(), "{}", bin::stderr(&o));
    stays(&c, &ns, &["web"], &[g0], 3, "after approving another hash");

    s.step("newer content while held: announced again, with its own hash");
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": ns, "annotations": {"ksec.io/watch": "true"}},
        "stringData": {"password": "CANARY-gate-3"}}));
    let mut newer = None;
    c.wait_for("a second AwaitingApproval event", 60, || {
        newer = secret_events(&c, &ns, "db")
            .into_iter()
            .filter(|(r, _)| r == "AwaitingApproval")
            .filter_map(|(_, n)| hash_to_approve(&n))
            .find(|h| *h != hash);
        newer.is_some()
    });
    let newer = newer.unwrap();
    let o = approve_as(&approver, &ns, &hash);
    assert!(o.status.success(), "{}", bin::stderr(&o));
    stays(
        &c,
        &ns,
        &["web"],
        &[g0],
        3,
        "after approving the superseded hash",
    );
    let hash = newer;

    s.step("the owner approves the current hash: one rollout, recorded");
    let o = approve_as(&approver, &ns, &hash);
    assert!(o.status.success(), "{}", bin::stderr(&o));
    c.wait_for("the approved rollout", 60, || {
        generation(&c, &ns, "web") == g0 + 1
    });
    c.wait_for("the Rotated event", 60, || {
        secret_events(&c, &ns, "db")
            .iter()
            .any(|(r, n)| r == "Rotated" && n.starts_with("approved"))
    });
    assert_eq!(template_hash(&c, &ns, "web", "db"), Some(hash));
    c.wait_for("the awaiting series to go", 30, || {
        ctl.metric(&awaiting).is_none()
    });
    let all: Vec<String> = secret_events(&c, &ns, "db")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    let (_, m) = ctl.get("/metrics");
    for (what, text) in [
        ("metrics", m),
        ("logs", ctl.logs()),
        ("events", all.join("\n")),
    ] {
        assert!(!text.contains("CANARY"), "a value in the {what}:\n{text}");
    }
}

#[test]
fn ksec_apply_exits_3_until_the_change_is_approved() {
    let s = Scenario::new("ksec_apply_exits_3_until_the_change_is_approved");
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let ns = c.namespace("prod", "gapply");
    let repo = gated_repo(&c, &ns);
    let f = repo.secret(
        "clusters/prod/db.yaml",
        &ns,
        "db",
        &[("password", "CANARY-ga-1")],
    );
    let keys = repo.keys_file();
    let dir = repo.path("recipients");
    let dir = dir.to_str().unwrap();

    s.step("a new Secret is not a rotation: applied");
    let (code, _, err) = repo.apply_json(&keys, &["--recipients-dir", dir, f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    s.step("a changed value is held: exit 3, nothing written");
    repo.set(&f, "password", "CANARY-ga-2");
    let (code, report, err) =
        repo.apply_json(&keys, &["--recipients-dir", dir, f.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}\n{report}");
    let held = &report["awaiting"][0];
    assert_eq!(held["name"], "db");
    assert_eq!(held["keys"]["changed"][0], "password");
    assert_eq!(
        c.secret_data(&ns, "db")["password"],
        "CANARY-ga-1",
        "not written"
    );
    let hash = held["contentHash"].as_str().unwrap().to_string();

    s.step("--wait-approval goes on once approved");
    let kc = c.kubeconfig.clone();
    let (ns2, hash2) = (ns.clone(), hash.clone());
    let approver = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        bin::run(
            bin::ksec()
                .args(["approve", "--kubeconfig"])
                .arg(&kc)
                .args(["-n", &ns2, "db", "--hash", &hash2]),
        )
    });
    let (code, report, err) = repo.apply_json(
        &keys,
        &[
            "--recipients-dir",
            dir,
            "--wait-approval=60s",
            f.to_str().unwrap(),
        ],
    );
    let o = approver.join().unwrap();
    assert!(o.status.success(), "approve: {}", bin::stderr(&o));
    assert_eq!(code, 0, "{err}\n{report}");
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-ga-2");
    assert!(!err.contains("CANARY") && !report.to_string().contains("CANARY"));
}

#[test]
fn a_rotation_whose_pods_crash_is_reported_and_rolled_back() {
    let s = Scenario::new("a_rotation_whose_pods_crash_is_reported_and_rolled_back");
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "rotbad");
    // Selected by label (--watch-secrets=SELECTOR), not by annotation.
    let secret = |v: &str| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": ns, "labels": {"rotation": "on"}},
            "stringData": {"password": v}})
    };
    c.create(secret("CANARY-rb-1"));
    c.deployment_using(&ns, "web", &[("db", "password")], 1);
    // FAKE kubelet: pods started for a new content hash crash; the old ones run.
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, Health::crash_when_rolled_for("db"));
    c.wait_rolled_out(&ns, "web");
    let args = [
        "--watch-secrets=rotation=on",
        "--watch-debounce",
        "1s",
        "--rollout-timeout",
        "20s",
        "--rollback-on-failure",
        "--eso-interval",
        "0",
    ];
    let ctl = start_with(&c, &repo, &[&ns], "admin", &args, &[]);
    c.wait_for("the Secret to be watched", 30, || {
        ctl.metric("ksec_controller_watched_secrets") == Some(1.0)
    });

    s.step("the rotated pods crash: RolloutFailed, rolled back, counted");
    c.create(secret("CANARY-rb-2"));
    c.wait_for("the RolloutFailed event", 90, || {
        secret_events(&c, &ns, "db")
            .iter()
            .any(|(r, _)| r == "RolloutFailed")
    });
    let (_, note) = secret_events(&c, &ns, "db")
        .into_iter()
        .find(|(r, _)| r == "RolloutFailed")
        .unwrap();
    assert!(
        note.contains("Deployment web") && note.contains("rolled back"),
        "{note}"
    );
    assert!(note.contains("CrashLoopBackOff"), "{note}");
    let rb = format!(
        "ksec_controller_rotation_rollouts_total{{namespace=\"{ns}\",result=\"rolled_back\"}}"
    );
    assert_eq!(ctl.metric(&rb), Some(1.0), "{}", ctl.get("/metrics").1);
    assert_eq!(
        template_hash(&c, &ns, "web", "db"),
        None,
        "the template is the old one again"
    );
    c.wait_rolled_out(&ns, "web");
    let (_, m) = ctl.get("/metrics");
    assert!(!m.contains("CANARY") && !ctl.logs().contains("CANARY") && !note.contains("CANARY"));
}

#[test]
fn an_encryptedsecret_in_a_gated_environment_waits_for_its_approval() {
    use support::cluster::controller::{put_cr, wait_condition};
    let s = Scenario::new("an_encryptedsecret_in_a_gated_environment_waits_for_its_approval");
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let ns = c.namespace("prod", "gcr");
    let repo = gated_repo(&c, &ns);
    let f = repo.secret(
        "clusters/prod/db.yaml",
        &ns,
        "db",
        &[("password", "CANARY-gcr-1")],
    );
    let ctl = start_with(&c, &repo, &[&ns], "admin", &["--eso-interval", "0"], &[]);

    s.step("a new Secret is created without approval");
    put_cr(&c, &ns, "db", &f, json!({}));
    wait_condition(&c, &ns, "db", "Ready", ("True", "Synced"));

    s.step("its rotation waits: AwaitingApproval, the old value stays");
    repo.set(&f, "password", "CANARY-gcr-2");
    put_cr(&c, &ns, "db", &f, json!({}));
    wait_condition(&c, &ns, "db", "Ready", ("False", "AwaitingApproval"));
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-gcr-1");
    let cr = support::cluster::controller::cr(&c, &ns, "db");
    let msg = cr
        .status
        .unwrap()
        .condition("Ready")
        .unwrap()
        .message
        .clone();
    assert!(
        msg.contains("@secret-approvers") && msg.contains("~password"),
        "{msg}"
    );
    let hash = hash_to_approve(&msg).expect("the hash to approve");

    s.step("approved: the next retry writes it");
    let o = bin::run(
        bin::ksec()
            .args(["approve", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .args(["-n", &ns, "db", "--hash", &hash]),
    );
    assert!(o.status.success(), "{}", bin::stderr(&o));
    c.wait_for("the approved value", 60, || {
        c.secret_data(&ns, "db").get("password").map(String::as_str) == Some("CANARY-gcr-2")
    });
    wait_condition(&c, &ns, "db", "Ready", ("True", "Synced"));
    assert!(!ctl.logs().contains("CANARY") && !msg.contains("CANARY"));
}

/// The repository cannot drop the gate: a Namespace labelled
/// `ksec.io/rotation-approval=required` holds changes although its
/// environment's recipients file says nothing of approval.
#[test]
fn a_namespace_label_gates_rotations_whatever_the_repository_says() {
    let s = Scenario::new("a_namespace_label_gates_rotations_whatever_the_repository_says");
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let repo = Repo::new(&c); // recipients/prod.yaml: no rotation policy
    let ns = c.namespace("prod", "nslabel");
    c.create(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"ksec.io/rotation-approval": "required"}}}));
    let f = repo.secret(
        "clusters/prod/db.yaml",
        &ns,
        "db",
        &[("password", "CANARY-nl-1")],
    );
    let keys = repo.keys_file();
    let file = f.to_str().unwrap();
    assert_eq!(repo.apply_json(&keys, &[file]).0, 0, "a new Secret");

    s.step("a change is held by the label alone");
    repo.set(&f, "password", "CANARY-nl-2");
    let (code, report, err) = repo.apply_json(&keys, &[file]);
    assert_eq!(code, 3, "{err}\n{report}");
    // recipients/ names no owners for prod: the approvers' Role decides.
    assert_eq!(
        report["awaiting"][0]["approvers"],
        json!({"env": "prod", "owners": []}),
        "{report}"
    );
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-nl-1");

    s.step("approved, it goes through");
    let hash = report["awaiting"][0]["contentHash"].as_str().unwrap();
    let o = bin::run(
        bin::ksec()
            .args(["approve", "--kubeconfig"])
            .arg(&c.kubeconfig)
            .args(["-n", &ns, "db", "--hash", hash]),
    );
    assert!(o.status.success(), "{}", bin::stderr(&o));
    assert_eq!(repo.apply_json(&keys, &[file]).0, 0);
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-nl-2");
}
