//! `ksec controller` (a child process) against the real kube-apiserver:
//! EncryptedSecret → Secret with Ready=True, consumers restarted on a
//! change; refusals (wrong namespace, namespace outside the environment,
//! tampered MAC) become Stalled conditions with events and no Secret;
//! /metrics counts them; no canary value ever shows up in status, events,
//! metrics or logs.

mod cluster_support;
mod common;

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_support::{Cluster, FakeKubelet, Health, Repo, cluster};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use ksec::controller::EncryptedSecret;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

/// The controller process; killed on drop. Its stdout+stderr are collected.
struct Running {
    child: Child,
    logs: Arc<Mutex<String>>,
    metrics: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut s = std::net::TcpStream::connect(&self.metrics).expect("connect to metrics");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        (code, body)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn install_crd(c: &Cluster) {
    let crd = serde_json::to_value(<EncryptedSecret as kube::CustomResourceExt>::crd()).unwrap();
    let api = Api::<CustomResourceDefinition>::all(c.admin.clone());
    c.block(api.patch(
        "encryptedsecrets.ksec.io",
        &PatchParams::apply("test-setup").force(),
        &Patch::Apply(&crd),
    ))
    .expect("install CRD");
    c.wait_for("the CRD to be served", 30, || {
        c.block(Api::<EncryptedSecret>::all(c.admin.clone()).list(&ListParams::default()))
            .is_ok()
    });
}

fn start(c: &Cluster, repo: &Repo, namespaces: &[&str]) -> Running {
    start_with(c, repo, namespaces, "admin", &[], &[])
}

fn start_with(
    c: &Cluster,
    repo: &Repo,
    namespaces: &[&str],
    context: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Running {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut cmd = common::ksec();
    cmd.args(["controller", "-v", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(["--context", context, "--env", "prod", "--recipients-dir"])
        .arg(repo.path("recipients"))
        .arg("--identity")
        .arg(repo.keys_file())
        .args(["--metrics-addr", &metrics, "--rollout-timeout", "60s"])
        .arg("--namespace")
        .arg(namespaces.join(","))
        .args(extra)
        .envs(env.iter().copied())
        .env("RUST_LOG", "debug,hyper=info,tower=info,rustls=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ksec controller");
    let logs = Arc::new(Mutex::new(String::new()));
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut l = logs.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    let r = Running {
        child,
        logs,
        metrics,
    };
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while !(std::net::TcpStream::connect(&r.metrics).is_ok() && r.get("/readyz").0 == 200) {
        assert!(
            std::time::Instant::now() < end,
            "the controller is not ready (/readyz); logs:\n{}",
            r.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    r
}

/// Creates (server-side applies) an EncryptedSecret holding `file`'s text.
fn put_cr(c: &Cluster, ns: &str, name: &str, file: &Path, extra: serde_json::Value) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut spec = json!({"encrypted": text});
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            spec[k] = v.clone();
        }
    }
    let obj = json!({
        "apiVersion": "ksec.io/v1alpha1", "kind": "EncryptedSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    c.block(
        Api::<EncryptedSecret>::namespaced(c.admin.clone(), ns).patch(
            name,
            &PatchParams::apply("test-setup").force(),
            &Patch::Apply(&obj),
        ),
    )
    .unwrap_or_else(|e| panic!("create EncryptedSecret {ns}/{name}: {e}"));
}

fn cr(c: &Cluster, ns: &str, name: &str) -> EncryptedSecret {
    c.block(Api::<EncryptedSecret>::namespaced(c.admin.clone(), ns).get(name))
        .expect("get EncryptedSecret")
}

/// (status, reason) of a condition, once the controller has observed the current generation.
fn condition(c: &Cluster, ns: &str, name: &str, type_: &str) -> Option<(String, String)> {
    let o = cr(c, ns, name);
    let st = o.status?;
    if st.observed_generation != o.metadata.generation {
        return None;
    }
    st.condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn wait_condition(c: &Cluster, ns: &str, name: &str, type_: &str, want: (&str, &str)) {
    c.wait_for(
        &format!("{ns}/{name} {type_}={} ({})", want.0, want.1),
        60,
        || condition(c, ns, name, type_).is_some_and(|(s, r)| s == want.0 && r == want.1),
    );
}

fn events(c: &Cluster, ns: &str) -> Vec<Event> {
    c.block(Api::<Event>::namespaced(c.admin.clone(), ns).list(&ListParams::default()))
        .expect("list events")
        .items
}

fn event_reasons_for(c: &Cluster, ns: &str, name: &str) -> Vec<String> {
    events(c, ns)
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

#[test]
fn encrypted_secrets_sync_refuse_and_report() {
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "ctl");
    let other = c.namespace("prod", "ctlo");
    let dev = c.namespace("dev", "ctl");

    // A valid one, used by a Deployment.
    let good = repo.secret(
        "clusters/prod/db.yaml",
        &ns,
        "db",
        &[("password", "CANARY-ctl-pw-1"), ("user", "CANARY-ctl-user")],
    );
    // Encrypted for `other`, placed in `ns`.
    let moved = repo.secret(
        "clusters/prod/moved.yaml",
        &other,
        "moved-db",
        &[("password", "CANARY-ctl-moved")],
    );
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
    // A dev Secret in a dev namespace the controller watches but prod does not own.
    let devf = repo.secret(
        "clusters/dev/app.yaml",
        &dev,
        "app",
        &[("token", "CANARY-ctl-dev")],
    );
    // Policy Delete: owned by its EncryptedSecret.
    let owned = repo.secret(
        "clusters/prod/owned.yaml",
        &other,
        "owned",
        &[("k", "CANARY-ctl-owned")],
    );

    // drift: report — hand edits are reported, not reverted.
    let reported = repo.secret(
        "clusters/prod/reported.yaml",
        &ns,
        "reported",
        &[("password", "CANARY-ctl-reported")],
    );
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

    // 4. A rotation: new value → Secret updated → the consumer rolled with the new hash.
    c.wait_rolled_out(&ns, "web");
    repo.set(&good, "password", "CANARY-ctl-pw-2");
    put_cr(&c, &ns, "db", &good, json!({}));
    c.wait_for("the rotated value", 60, || {
        c.secret_data(&ns, "db").get("password").map(String::as_str) == Some("CANARY-ctl-pw-2")
    });
    wait_condition(&c, &ns, "db", "Ready", ("True", "Synced"));
    let hash = cr(&c, &ns, "db").status.unwrap().content_hash.unwrap();
    let tmpl = c
        .deployment(&ns, "web")
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap_or_default();
    assert_eq!(tmpl.get("secret.ksec.io/db"), Some(&hash), "{tmpl:?}");

    // 5. A hand-deleted Secret comes back (the controller watches its own Secrets).
    c.block(
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(c.admin.clone(), &ns)
            .delete("db", &Default::default()),
    )
    .unwrap();
    c.wait_for("the deleted Secret to be recreated", 30, || {
        c.secret_data(&ns, "db").get("password").map(String::as_str) == Some("CANARY-ctl-pw-2")
    });

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
        for e in events(&c, n) {
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
    repo.set(&f, "token", "CANARY-rbac-2");
    put_cr(&c, &ns, "api", &f, json!({}));
    c.wait_for("the rotated value", 60, || {
        c.secret_data(&ns, "api").get("token").map(String::as_str) == Some("CANARY-rbac-2")
    });
    wait_condition(&c, &ns, "api", "Ready", ("True", "Synced"));
    let hash = cr(&c, &ns, "api").status.unwrap().content_hash.unwrap();
    let tmpl = c
        .deployment(&ns, "api")
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap();
    assert_eq!(
        tmpl.annotations
            .unwrap_or_default()
            .get("secret.ksec.io/api"),
        Some(&hash)
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

fn metric(r: &Running, name: &str) -> Option<f64> {
    let (_, body) = r.get("/metrics");
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
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
        metric(&a, "ksec_controller_leader") == Some(1.0)
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
    assert_eq!(metric(&b, "ksec_controller_leader"), Some(0.0));
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
        metric(&b, "ksec_controller_leader") == Some(1.0)
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
