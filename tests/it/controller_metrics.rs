//! The per-Secret gauges of `ksec controller` against the real kube-apiserver
//! and kube-controller-manager: `ksec_controller_stale_consumers` counts
//! consumers whose pods may still run an old content hash (1 while a restarted
//! Deployment has not rolled out, 0 once the fake kubelet makes its new pods
//! ready; an opted-out workload pinned to an old hash stays counted), and
//! `ksec_controller_ciphertext_age_seconds` is now − sops `lastmodified` of
//! the source; both series go away with their EncryptedSecret.
use crate::support;

use ksec::controller::EncryptedSecret;
use kube::Api;
use serde_json::json;
use support::cluster::controller::{install_crd, put_cr, start_with, wait_condition};
use support::cluster::eso::{install_eso_crd, put_external_secret};
use support::cluster::{FakeKubelet, Health, Repo, cluster};

/// The file's sops `lastmodified`, Unix seconds.
fn lastmodified(file: &std::path::Path) -> i64 {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("lastmodified:"))
        .expect("sops.lastmodified");
    let v = line.split_once(':').unwrap().1.trim().trim_matches('"');
    chrono::DateTime::parse_from_rfc3339(v)
        .expect("RFC 3339")
        .timestamp()
}

#[test]
fn stale_consumers_and_ciphertext_age_per_secret() {
    let Some(c) = cluster() else { return };
    install_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "ctlmet");
    let db = repo.secret(
        "clusters/prod/db.yaml",
        &ns,
        "db",
        &[("password", "CANARY-met-db")],
    );
    let api = repo.secret(
        "clusters/prod/api.yaml",
        &ns,
        "api",
        &[("token", "CANARY-met-api")],
    );
    // `web` is restarted by the controller; no kubelet yet, so its new pod never gets ready.
    c.deployment_using(&ns, "web", &[("db", "password")], 1);
    // `pinned` opted out of restarts and carries an old hash for `api`: stale until someone rolls it.
    c.create(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "pinned", "namespace": ns, "annotations": {"ksec.io/restart": "false"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "pinned"}},
            "template": {
                "metadata": {"labels": {"app": "pinned"}, "annotations": {"secret.ksec.io/api": "0123456789abcdef"}},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1",
                    "envFrom": [{"secretRef": {"name": "api"}}]}]}
            }
        }
    }));

    let ctl = start_with(
        &c,
        &repo,
        &[&ns],
        "admin",
        &["--rollout-timeout", "3s"],
        &[],
    );
    let before = chrono::Utc::now().timestamp();
    put_cr(&c, &ns, "db", &db, json!({}));
    put_cr(&c, &ns, "api", &api, json!({}));
    // The restart of `web` cannot finish without a kubelet.
    wait_condition(&c, &ns, "db", "Ready", ("False", "RolloutFailed"));
    wait_condition(&c, &ns, "api", "Ready", ("True", "Synced"));

    let stale_db = format!("ksec_controller_stale_consumers{{namespace=\"{ns}\",secret=\"db\"}}");
    let stale_api = format!("ksec_controller_stale_consumers{{namespace=\"{ns}\",secret=\"api\"}}");
    let age_db =
        format!("ksec_controller_ciphertext_age_seconds{{namespace=\"{ns}\",secret=\"db\"}}");
    let age_api =
        format!("ksec_controller_ciphertext_age_seconds{{namespace=\"{ns}\",secret=\"api\"}}");
    assert_eq!(
        ctl.metric(&stale_db),
        Some(1.0),
        "{}",
        ctl.get("/metrics").1
    );
    assert_eq!(ctl.metric(&stale_api), Some(1.0));

    // The kubelet starts the new pod: the rollout completes and db's gauge drops to 0.
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    c.wait_rolled_out(&ns, "web");
    c.wait_for("stale_consumers{db} to drop to 0", 60, || {
        ctl.metric(&stale_db) == Some(0.0)
    });
    assert_eq!(ctl.metric(&stale_api), Some(1.0), "pinned stays stale");

    // Ciphertext age: now − lastmodified of each file (whole seconds).
    let after = chrono::Utc::now().timestamp();
    let (_, body) = ctl.get("/metrics");
    for (series, file) in [(&age_db, &db), (&age_api, &api)] {
        let lm = lastmodified(file);
        let age = ctl
            .metric(series)
            .unwrap_or_else(|| panic!("{series}:\n{body}"));
        let now_after = chrono::Utc::now().timestamp();
        assert!(
            age >= (before - lm - 1) as f64 && age <= (now_after - lm + 1) as f64,
            "{series} = {age}, lastmodified {lm}, scraped between {before} and {now_after}"
        );
    }
    // Each series follows its own file: the gap between the two ages is the
    // gap between the two lastmodified stamps (it cannot pass with a shared
    // or constant gauge unless the stamps are equal).
    let gap = ctl.metric(&age_db).unwrap() - ctl.metric(&age_api).unwrap();
    let want = (lastmodified(&api) - lastmodified(&db)) as f64;
    assert!(
        (gap - want).abs() <= 1.0,
        "age gap {gap}, lastmodified gap {want} (scraped after {after})"
    );

    // Deleting an EncryptedSecret removes its series.
    c.block(
        Api::<EncryptedSecret>::namespaced(c.admin.clone(), &ns).delete("api", &Default::default()),
    )
    .unwrap();
    c.wait_for("api's series to go", 30, || {
        let (_, m) = ctl.get("/metrics");
        !m.contains(&stale_api) && !m.contains(&age_api)
    });
    let (_, m) = ctl.get("/metrics");
    assert!(m.contains(&stale_db) && m.contains(&age_db), "{m}");
    assert!(!m.contains("CANARY") && !ctl.logs().contains("CANARY"));
    assert!(
        !m.contains("password") && !m.contains("token"),
        "key names in metrics:\n{m}"
    );
}

#[test]
fn eso_sync_health_is_exported_from_externalsecret_status() {
    let Some(c) = cluster() else { return };
    install_crd(&c);
    install_eso_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "eso");
    let ago = |s: i64| {
        (chrono::Utc::now() - chrono::Duration::seconds(s))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let ready = |t: &str, ok: bool| {
        json!({
            "refreshTime": t,
            "conditions": [{"type": "Ready", "status": if ok { "True" } else { "False" },
                "reason": if ok { "SecretSynced" } else { "SecretSyncedError" }, "message": "m",
                "lastTransitionTime": t}]
        })
    };
    put_external_secret(&c, &ns, "fresh", "1h", Some(ready(&ago(600), true)));
    put_external_secret(&c, &ns, "late", "10m", Some(ready(&ago(3600), true)));
    put_external_secret(&c, &ns, "broken", "1h", Some(ready(&ago(60), false)));
    put_external_secret(&c, &ns, "unsynced", "1h", None);
    let ctl = start_with(&c, &repo, &[&ns], "admin", &["--eso-interval", "1s"], &[]);
    let series = |m: &str, metric: &str, name: &str| -> Option<f64> {
        let prefix =
            format!("{metric}{{namespace=\"{ns}\",name=\"{name}\",store=\"vault-backend\"}} ");
        m.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|v| v.parse().unwrap())
    };
    let mut m = String::new();
    c.wait_for("the ESO series", 30, || {
        m = ctl.get("/metrics").1;
        series(&m, "ksec_controller_eso_sync_stale", "unsynced").is_some()
    });
    let stale = |n| series(&m, "ksec_controller_eso_sync_stale", n);
    let failing = |n| series(&m, "ksec_controller_eso_sync_failing", n);
    let age = |n| series(&m, "ksec_controller_eso_sync_age_seconds", n);
    assert_eq!(
        (stale("fresh"), failing("fresh")),
        (Some(0.0), Some(0.0)),
        "{m}"
    );
    assert_eq!(
        stale("late"),
        Some(1.0),
        "an hour without sync, refreshInterval 10m:\n{m}"
    );
    assert_eq!(
        (stale("broken"), failing("broken")),
        (Some(0.0), Some(1.0)),
        "{m}"
    );
    assert_eq!(
        (stale("unsynced"), failing("unsynced")),
        (Some(0.0), Some(0.0)),
        "{m}"
    );
    assert!(age("unsynced").is_none(), "no status, no age:\n{m}");
    let a = age("late").expect("age of late");
    assert!((3590.0..3700.0).contains(&a), "age {a}");
    // A deleted ExternalSecret's series go away.
    let gvk = kube::core::GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret");
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, "externalsecrets");
    c.block(
        Api::<kube::api::DynamicObject>::namespaced_with(c.admin.clone(), &ns, &ar)
            .delete("late", &Default::default()),
    )
    .unwrap();
    c.wait_for("the deleted ExternalSecret's series to go", 30, || {
        series(
            &ctl.get("/metrics").1,
            "ksec_controller_eso_sync_stale",
            "late",
        )
        .is_none()
    });
}

/// Every metric the shipped alerts (examples/deploy/prometheusrule.yaml)
/// use is one the controller registers (a family prints on /metrics only
/// once it has a series, so the registry is read from its source).
#[test]
fn the_shipped_alerts_use_metrics_the_controller_exports() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = std::fs::read_to_string(root.join("examples/deploy/prometheusrule.yaml")).unwrap();
    let src = std::fs::read_to_string(root.join("src/controller/metrics.rs")).unwrap();
    let registered: Vec<String> = regex::Regex::new(r#"register\(\s*"([a-z_]+)""#)
        .unwrap()
        .captures_iter(&src)
        .map(|c| format!("ksec_controller_{}", &c[1]))
        .collect();
    assert!(registered.len() >= 10, "{registered:?}");
    let used: Vec<&str> = regex::Regex::new(r"ksec_controller_[a-z_]+")
        .unwrap()
        .find_iter(&rules)
        .map(|n| n.as_str())
        .collect();
    assert!(used.len() >= 5, "{used:?}");
    for name in used {
        let family = name.trim_end_matches("_total");
        assert!(
            registered.iter().any(|r| r == family),
            "prometheusrule.yaml uses {name}, which the controller does not register: {registered:?}"
        );
    }
}
