//! `ksec doctor --cluster` and `ksec rbac` against the real kube-apiserver.
//! Pod statuses are set by the test (there is no kubelet): that part is a
//! fake, the API server, its RBAC authorizer and the objects are real.
use crate::support;

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value as J, json};
use support::bin::{ksec, run, stderr, stdout};
use support::cluster::cluster;

fn doctor(kc: &std::path::Path, ns: &str) -> (i32, Vec<J>) {
    let o = run(ksec()
        .args([
            "doctor",
            "--cluster",
            "--context",
            "admin",
            "-o",
            "json",
            "-n",
            ns,
        ])
        .arg("--kubeconfig")
        .arg(kc));
    let v: J = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&o), stderr(&o)));
    (
        o.status.code().unwrap(),
        v["findings"].as_array().unwrap().clone(),
    )
}

fn checks(f: &[J]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = f
        .iter()
        .map(|x| {
            (
                x["check"].as_str().unwrap().to_string(),
                x["object"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn live_references_failing_pods_and_stale_consumers() {
    let Some(c) = cluster() else { return };
    let ns = c.namespace("prod", "doctor");
    c.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns, "annotations": {"ksec.io/content-hash": "new-hash"}}, "stringData": {"password": "CANARY-live"}}));
    // the field guide's incident: the pull secret is missing in prod
    c.create(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shop", "namespace": ns},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "shop"}}, "template": {"metadata": {"labels": {"app": "shop"}},
        "spec": {"imagePullSecrets": [{"name": "registry-pull-secret"}], "containers": [{"name": "app", "image": "registry.example.com/shop:1"}]}}}}));
    // a bare pod that wants a key the Secret does not have, and runs an old hash
    c.create(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker", "namespace": ns, "annotations": {"secret.ksec.io/db": "old-hash"}},
        "spec": {"containers": [{"name": "w", "image": "x", "env": [{"name": "U", "valueFrom": {"secretKeyRef": {"name": "db", "key": "username"}}}],
        "volumeMounts": [{"name": "d", "mountPath": "/d"}]}], "volumes": [{"name": "d", "secret": {"secretName": "db"}}]}}));
    // FAKE kubelet: the status a real kubelet would report for that pod
    let now = "2026-01-01T00:00:00Z";
    c.block(Api::<Pod>::namespaced(c.admin.clone(), &ns).patch_status("worker", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Pending",
        "containerStatuses": [{"name": "w", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "couldn't find key username in Secret"}}}], "startTime": now}})))).unwrap();
    let (code, f) = doctor(&c.kubeconfig, &ns);
    assert_eq!(code, 1);
    assert_eq!(
        checks(&f),
        vec![
            ("broken-reference".into(), "Deployment/shop".into()),
            ("broken-reference".into(), "Pod/worker".into()),
            ("failing-pod".into(), "Pod/worker".into()),
            ("stale-consumer".into(), "Pod/worker".into()),
        ]
    );
    let failing = f.iter().find(|x| x["check"] == "failing-pod").unwrap();
    assert!(
        failing["message"]
            .as_str()
            .unwrap()
            .contains("db[username]")
    );
    assert!(
        !serde_json::to_string(&f).unwrap().contains("CANARY"),
        "a value reached the report"
    );
    // fix the cluster: findings go away
    c.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry-pull-secret", "namespace": ns}, "stringData": {".dockerconfigjson": "{}"}}));
    c.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns, "annotations": {"ksec.io/content-hash": "old-hash"}}, "stringData": {"password": "p", "username": "u"}}));
    c.block(Api::<Pod>::namespaced(c.admin.clone(), &ns).patch_status("worker", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Running",
        "containerStatuses": [{"name": "w", "image": "x", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": now}}}]}})))).unwrap();
    let (code, f) = doctor(&c.kubeconfig, &ns);
    assert_eq!((code, checks(&f)), (0, vec![]));
}

#[test]
fn generated_roles_allow_exactly_the_named_secrets() {
    let Some(c) = cluster() else { return };
    let ns = c.namespace("prod", "rbac");
    for s in ["used-a", "used-b", "other"] {
        c.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": s, "namespace": ns}, "stringData": {"k": "v"}}));
    }
    let dir = support::bin::tempdir();
    std::fs::write(dir.path().join("deploy.yaml"), format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\n  namespace: {ns}\nspec:\n  selector: {{matchLabels: {{app: shop}}}}\n  template:\n    metadata: {{labels: {{app: shop}}}}\n    spec:\n      serviceAccountName: shop-sa\n      imagePullSecrets: [{{name: used-a}}]\n      containers:\n        - name: app\n          image: x\n          envFrom: [{{secretRef: {{name: used-b}}}}]\n"
    )).unwrap();
    let o = run(ksec().args(["rbac", "-o", "json"]).arg(dir.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: J = serde_json::from_str(&stdout(&o)).unwrap();
    let role = v["items"][0].clone();
    c.create(role.clone());
    c.create(v["items"][1].clone());
    // The generated Role, bound to the test's `limited` user, is checked by the real authorizer.
    c.create(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "limited-probe", "namespace": ns},
        "subjects": [{"kind": "User", "name": "limited", "apiGroup": "rbac.authorization.k8s.io"}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}}));
    let limited = c.block(async {
        let kcfg = kube::config::Kubeconfig::read_from(&c.kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(
            kcfg,
            &kube::config::KubeConfigOptions {
                context: Some("limited".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        kube::Client::try_from(cfg).unwrap()
    });
    let api: Api<Secret> = Api::namespaced(limited, &ns);
    // RBAC bindings take effect within moments; poll briefly for the first allow
    c.wait_for("the RoleBinding to take effect", 10, || {
        c.block(api.get("used-a")).is_ok()
    });
    assert!(c.block(api.get("used-b")).is_ok());
    for denied in ["other"] {
        match c.block(api.get(denied)) {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{denied}"),
            other => panic!("{denied}: expected 403, got {other:?}"),
        }
    }
    match c.block(api.list(&Default::default())) {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "list must be denied"),
        other => panic!("list: expected 403, got {:?}", other.map(|l| l.items.len())),
    }
}
