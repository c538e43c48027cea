//! `ksec export --to vault…` against a real OpenBao dev server (KV v2,
//! AppRole login): every entry read back over Vault's HTTP API equals the
//! plaintext, a second run writes no new version, a foreign entry is left
//! alone without --force, and a server lost halfway gives an exact partial
//! report that a re-run completes.
use crate::support;

use serde_json::json;
use support::export::{Fixture, outcome, statuses};
use support::kms::{Bao, proxy};

/// A KV v2 mount `kv` and AppRole credentials allowed to write `kv/…/ksec/*` only.
fn setup(bao: &Bao) -> Vec<(&'static str, String)> {
    bao.post(
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    bao.enable_auth("approle", "approle");
    let (st, v) = bao.api(
        "PUT",
        "sys/policies/acl/ksec-export",
        Some(json!({"policy": "path \"kv/data/ksec/*\" { capabilities = [\"create\", \"read\", \"update\"] }\npath \"kv/metadata/ksec/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n"})),
        None,
    );
    assert!(st < 300, "{st} {v}");
    bao.post(
        "auth/approle/role/ksec",
        json!({"token_policies": ["ksec-export"], "token_ttl": "1h"}),
    );
    let role_id = bao.get("auth/approle/role/ksec/role-id")["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id = bao.post("auth/approle/role/ksec/secret-id", json!({}))["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    vec![("VAULT_ROLE_ID", role_id), ("VAULT_SECRET_ID", secret_id)]
}

fn kv_get(bao: &Bao, path: &str) -> Option<serde_json::Value> {
    let (st, v) = bao.api("GET", &format!("kv/data/{path}"), None, None);
    (st == 200).then_some(v)
}

fn meta(bao: &Bao, path: &str) -> serde_json::Value {
    bao.get(&format!("kv/metadata/{path}"))["data"].clone()
}

#[test]
fn export_to_vault_is_verified_idempotent_and_respects_foreign_entries() {
    let Some(bao) = Bao::start() else { return };
    let env = setup(&bao);
    let fx = Fixture::new(10);
    let to = format!("vault+http://127.0.0.1:{}/kv/ksec", bao.server.port);
    // An entry someone else wrote where one Secret would go.
    let foreign = "ksec/prod/prod-web/app-0";
    bao.post(
        &format!("kv/data/{foreign}"),
        json!({"data": {"owner": "other-team"}}),
    );

    // Dry run: path and key names, never a value; nothing written.
    let o = support::bin::run(&mut fx.command(&["--to", &to, "--dry-run"], &env));
    let out = format!("{}{}", support::bin::stdout(&o), support::bin::stderr(&o));
    assert!(!out.contains("CANARY"), "a value leaked: {out}");
    assert!(
        out.contains("would create") && out.contains("kv/data/ksec/dev/dev-app/blob"),
        "{out}"
    );
    assert!(out.contains("keystore.p12"), "{out}");
    assert!(
        kv_get(&bao, "ksec/dev/dev-app/blob").is_none(),
        "dry run wrote"
    );
    // A run of 20+ Secrets shows progress on stderr; -q silences it.
    let total = fx.count();
    assert!(
        support::bin::stderr(&o).contains(&format!("ksec export: {total}/{total} Secrets")),
        "{out}"
    );
    let o = support::bin::run(&mut fx.command(&["--to", &to, "--dry-run", "-q"], &env));
    let e = support::bin::stderr(&o);
    assert!(
        support::bin::stdout(&o).is_empty() && !e.contains("ksec export:"),
        "-q: {e}"
    );
    // Only the finding remains: the foreign entry in the way.
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.starts_with("foreign"), "{e}");

    let (code, r, err) = fx.export(&["--to", &to], &env);
    assert_eq!(
        code, 1,
        "a foreign entry means not everything was exported: {err}"
    );
    assert!(!r.to_string().contains("CANARY") && !err.contains("CANARY"));
    let st = statuses(&r);
    assert_eq!(st.get("exported"), Some(&(fx.count() - 1)), "{r}");
    assert_eq!(st.get("skipped-foreign"), Some(&1), "{r}");
    assert_eq!(outcome(&r, "prod-web/app-0")["status"], "skipped-foreign");

    // Read back with Vault's own API: values equal the plaintext, marked as ksec's.
    for key in fx.expected.keys() {
        let (env_, ns, name) = key;
        let path = format!("ksec/{env_}/{ns}/{name}");
        if path == foreign {
            continue;
        }
        let v = kv_get(&bao, &path).unwrap_or_else(|| panic!("{path} missing"));
        let got: std::collections::BTreeMap<String, String> =
            serde_json::from_value(v["data"]["data"].clone()).unwrap();
        assert_eq!(got, fx.stored(key), "{path}");
        let m = meta(&bao, &path);
        assert_eq!(m["custom_metadata"]["managed-by"], "ksec", "{path}: {m}");
        assert_eq!(m["current_version"], 1);
    }
    let f = kv_get(&bao, foreign).unwrap();
    assert_eq!(
        f["data"]["data"],
        json!({"owner": "other-team"}),
        "foreign entry was overwritten"
    );

    // Second run: compare first, nothing written (no new version).
    let (code, r, _) = fx.export(&["--to", &to], &env);
    assert_eq!(code, 1);
    assert_eq!(
        statuses(&r).get("unchanged"),
        Some(&(fx.count() - 1)),
        "{r}"
    );
    assert_eq!(statuses(&r).get("exported"), None, "{r}");
    for (env_, ns, name) in fx.expected.keys() {
        let path = format!("ksec/{env_}/{ns}/{name}");
        if path != foreign {
            assert_eq!(
                meta(&bao, &path)["current_version"],
                1,
                "{path} got a new version"
            );
        }
    }

    // --force claims the foreign entry (check-and-set on its version).
    let (code, r, err) = fx.export(&["--to", &to, "--force"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(outcome(&r, "prod-web/app-0")["status"], "exported");
    let v = kv_get(&bao, foreign).unwrap();
    assert_eq!(v["data"]["data"]["password"], "CANARY-prod-web-0-pw");
    assert_eq!(meta(&bao, foreign)["custom_metadata"]["managed-by"], "ksec");

    // A value changed in Git → exactly one new version.
    let file = fx.secrets_dir().join("prod-db/app-3.yaml");
    let o = support::bin::run(
        support::bin::ksec()
            .arg("set")
            .arg(&file)
            .arg("[\"stringData\"][\"password\"]")
            .arg("\"CANARY-rotated\"")
            .env("SOPS_AGE_KEY_FILE", &fx.ids[0]),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let (code, r, _) = fx.export(&["--to", &to], &env);
    assert_eq!(code, 0);
    assert_eq!(statuses(&r).get("exported"), Some(&1), "{r}");
    assert_eq!(meta(&bao, "ksec/prod/prod-db/app-3")["current_version"], 2);
    assert_eq!(
        kv_get(&bao, "ksec/prod/prod-db/app-3").unwrap()["data"]["data"]["password"],
        "CANARY-rotated"
    );
}

#[test]
fn vault_lost_halfway_reports_exactly_and_a_rerun_completes() {
    let Some(bao) = Bao::start() else { return };
    let env = setup(&bao);
    let fx = Fixture::new(8);
    // Every request its own connection, so the proxy counts them; after 40
    // requests the server is "gone" (connections reset).
    let p = proxy::Proxy::http(&format!("127.0.0.1:{}", bao.server.port));
    p.set(proxy::rule(|i| {
        if i < 40 {
            proxy::Action::Pass
        } else {
            proxy::Action::Reset
        }
    }));
    let to = format!("vault+http://127.0.0.1:{}/kv/ksec", p.port);
    let (code, r, err) = fx.export(&["--to", &to, "--concurrency", "4"], &env);
    assert_eq!(code, 1, "{err}");
    let st = statuses(&r);
    let exported = st.get("exported").copied().unwrap_or(0);
    let failed = st.get("failed").copied().unwrap_or(0);
    assert!(exported > 0 && failed > 0, "{r}");
    assert_eq!(exported + failed, fx.count(), "{r}");
    // The report is exact: exported entries are there, failed ones are not readable as complete.
    for s in r["secrets"].as_array().unwrap() {
        let (ns, name) = s["secret"].as_str().unwrap().split_once('/').unwrap();
        let env_ = if ns.starts_with("prod") {
            "prod"
        } else {
            "dev"
        };
        let got = kv_get(&bao, &format!("ksec/{env_}/{ns}/{name}"));
        if s["status"] == "exported" {
            let got = got.expect("exported entry missing");
            let want = fx.stored(&(env_.into(), ns.into(), name.into()));
            assert_eq!(
                serde_json::from_value::<std::collections::BTreeMap<String, String>>(
                    got["data"]["data"].clone()
                )
                .unwrap(),
                want
            );
        } else {
            assert_eq!(s["error_class"], "network", "{s}");
        }
    }
    // Text mode names what was not exported (the server goes away again).
    p.set(proxy::rule(|i| {
        if i < 10 {
            proxy::Action::Pass
        } else {
            proxy::Action::Reset
        }
    }));
    let o = support::bin::run(&mut fx.command(&["--to", &to], &env));
    let e = support::bin::stderr(&o);
    assert!(e.contains("NOT exported"), "{e}");
    assert!(!e.contains("CANARY"));

    // Back up: a re-run finishes the job and rewrites nothing already there.
    p.set(proxy::rule(|_| proxy::Action::Pass));
    let (code, r, err) = fx.export(&["--to", &to], &env);
    assert_eq!(code, 0, "{err} {r}");
    let st = statuses(&r);
    assert_eq!(st.get("failed"), None, "{r}");
    assert_eq!(
        st.get("exported").copied().unwrap_or(0) + st.get("unchanged").copied().unwrap_or(0),
        fx.count()
    );
    assert!(st.get("unchanged").copied().unwrap_or(0) >= exported, "{r}");
}

/// Kubernetes auth for real: OpenBao's `kubernetes` method checks the
/// service-account token with a TokenReview against the test kube-apiserver
/// (the token's own service account holds system:auth-delegator), and
/// `ksec export` logs in with VAULT_K8S_ROLE + VAULT_K8S_TOKEN_PATH exactly as
/// a pod would.
#[test]
fn export_logs_in_with_kubernetes_auth_against_the_real_apiserver() {
    let Some(c) = support::cluster::cluster() else {
        return;
    };
    let Some(bao) = Bao::start() else { return };
    let ns = c.namespace("prod", "export-k8s");
    let tag = support::cluster::suffix();
    c.create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "ksec-export", "namespace": ns}}));
    c.create(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("ksec-export-review-{tag}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": "ksec-export", "namespace": ns}]}));
    let token = c.service_account_token(&ns, "ksec-export");
    let dir = support::bin::tempdir();
    let jwt = dir.path().join("token");
    std::fs::write(&jwt, &token).unwrap();
    // The API server's address and CA, from the test kubeconfig.
    let kc = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let field = |k: &str| {
        kc.lines()
            .find_map(|l| l.trim().strip_prefix(k))
            .unwrap()
            .trim()
            .to_string()
    };
    let server = field("server:");
    let ca = std::fs::read_to_string(field("certificate-authority:")).unwrap();

    bao.post(
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    bao.token_with_policy(
        "ksec-export",
        "path \"kv/data/ksec/*\" { capabilities = [\"create\", \"read\", \"update\"] }\npath \"kv/metadata/ksec/*\" { capabilities = [\"create\", \"read\", \"update\"] }\n",
    );
    bao.enable_auth("kubernetes", "kubernetes");
    bao.post(
        "auth/kubernetes/config",
        json!({"kubernetes_host": server, "kubernetes_ca_cert": ca, "disable_local_ca_jwt": true}),
    );
    bao.post(
        "auth/kubernetes/role/ksec-export",
        json!({"bound_service_account_names": ["ksec-export"], "bound_service_account_namespaces": [ns],
               "token_policies": ["ksec-export"], "audience": "https://kubernetes.default.svc"}),
    );
    let fx = Fixture::new(2);
    let env = vec![
        ("VAULT_K8S_ROLE", "ksec-export".to_string()),
        ("VAULT_K8S_TOKEN_PATH", jwt.display().to_string()),
    ];
    let to = format!("vault+http://127.0.0.1:{}/kv/ksec", bao.server.port);
    let (code, r, err) = fx.export(&["--to", &to], &env);
    assert_eq!(code, 0, "{err} {r}");
    assert!(!err.contains(&token), "the JWT leaked");
    assert_eq!(statuses(&r).get("exported"), Some(&fx.count()));
    let v = kv_get(&bao, "ksec/prod/prod-db/app-1").unwrap();
    assert_eq!(v["data"]["data"]["password"], "CANARY-prod-db-1-pw");

    // A token of another service account is refused by the role: exit 2, nothing written.
    std::fs::write(&jwt, token.replace('a', "b")).unwrap();
    let (code, _, err) = fx.export(&["--to", &to, "--force"], &env);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("kubernetes login"), "{err}");
}

/// Usage and input errors, before any server is contacted: exit 2 with the
/// reason; a plaintext Secret refuses the run (exit 1) naming the file.
#[test]
fn usage_errors_exit_2_and_bad_input_names_the_file() {
    let fx = Fixture::new(1);
    let env: Vec<(&str, String)> = vec![("VAULT_TOKEN", "unused".into())];
    let run = |args: &[&str]| {
        let o = support::bin::run(&mut fx.command(args, &env));
        (o.status.code(), support::bin::stderr(&o))
    };
    let (code, err) = run(&["--to", "s3://bucket/x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("expected vault://"), "{err}");
    let (code, err) = run(&["--to", "vault://h:1/kv", "--path-template", "{env}/{name}"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("{namespace}"), "{err}");
    let (code, err) = run(&[
        "--to",
        "vault://h:1/kv",
        "--path-template",
        "x/{namespace}/{name}/{nope}",
    ]);
    assert_eq!(code, Some(2), "{err}");
    // A plaintext Secret among the files: nothing is exported.
    let plain = fx.secrets_dir().join("prod-web/leak.yaml");
    std::fs::write(
        &plain,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\n  namespace: prod-web\nstringData:\n  k: CANARY-plain\n",
    )
    .unwrap();
    let (code, err) = run(&["--to", "vault+http://127.0.0.1:1/kv"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("leak.yaml") && err.contains("plaintext"),
        "{err}"
    );
    assert!(!err.contains("CANARY"), "{err}");
}
