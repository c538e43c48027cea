//! `ksec export --to azure-kv://…` against the Key Vault fake (TLS, challenge,
//! client-secret login), read back with Azure's own Python SDK
//! (azure-keyvault-secrets): values, tags, versions, the name mapping, a
//! foreign secret, and a service that fails halfway.
use crate::support;

use std::collections::BTreeMap;
use std::path::Path;

use support::export::{Fixture, outcome, statuses};
use support::kms::AzureFake;

fn name_of(env: &str, ns: &str, name: &str) -> String {
    ksec::export::azure_kv::secret_name(&format!("ksec/{env}/{ns}/{name}")).unwrap()
}

fn sdk(f: &AzureFake, args: &[&str]) -> serde_json::Value {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
    let ok = std::process::Command::new(&py)
        .args(["-c", "import azure.keyvault.secrets"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "azure-keyvault-secrets missing: run scripts/test-deps.sh"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/azure_secrets_check.py");
    let o = support::bin::run(
        std::process::Command::new(&py)
            .arg(script)
            .args([f.url(), &f.tenant, &f.client_id, &f.client_secret])
            .args(args)
            .env("REQUESTS_CA_BUNDLE", &f.ca)
            .env("SSL_CERT_FILE", &f.ca),
    );
    assert!(
        o.status.success(),
        "python SDK: {}",
        support::bin::stderr(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn fail_after(f: &AzureFake, puts: Option<usize>) {
    let q = puts.map(|n| format!("?puts={n}")).unwrap_or_default();
    let ca = std::fs::read(&f.ca).unwrap();
    let url = format!("{}/_fake/fail-after{q}", f.url());
    support::kms::rt().block_on(async move {
        let c = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
            .build()
            .unwrap();
        assert!(c.post(url).send().await.unwrap().status().is_success());
    });
}

#[test]
fn export_to_azure_key_vault_reads_back_with_the_azure_sdk() {
    let Some(f) = AzureFake::start() else { return };
    let fx = Fixture::new(10);
    let env = f.env();
    let to = format!("azure-kv://127.0.0.1:{}/ksec", f.server.port);
    let foreign = name_of("dev", "dev-app", "app-2");
    sdk(&f, &["set", &foreign, "{\"x\":\"theirs\"}"]);

    let (code, r, err) = fx.export(&["--to", &to], &env);
    assert_eq!(code, 1, "{err}");
    assert!(!r.to_string().contains("CANARY") && !err.contains("CANARY"));
    assert_eq!(outcome(&r, "dev-app/app-2")["status"], "skipped-foreign");
    assert_eq!(statuses(&r).get("exported"), Some(&(fx.count() - 1)), "{r}");
    assert_eq!(
        outcome(&r, "prod-web/registry-pull-secret")["entry"],
        format!(
            "{}/secrets/ksec--prod--prod-web--registry-pull-secret",
            f.url()
        )
    );

    let names: Vec<String> = fx
        .expected
        .keys()
        .map(|k| name_of(&k.0, &k.1, &k.2))
        .collect();
    let mut args = vec!["get"];
    args.extend(names.iter().map(String::as_str));
    let got = sdk(&f, &args);
    for (key, n) in fx.expected.keys().zip(&names) {
        let s = &got[n];
        if *n == foreign {
            assert_eq!(
                s["value"], "{\"x\":\"theirs\"}",
                "foreign secret overwritten"
            );
            continue;
        }
        let v: BTreeMap<String, String> =
            serde_json::from_str(s["value"].as_str().unwrap()).unwrap();
        assert_eq!(v, fx.stored(key), "{n}");
        assert_eq!(s["tags"]["managed-by"], "ksec");
        assert_eq!(s["content_type"], "application/json");
        assert_eq!(s["versions"], 1);
    }

    let (_, r, _) = fx.export(&["--to", &to], &env);
    assert_eq!(
        statuses(&r).get("unchanged"),
        Some(&(fx.count() - 1)),
        "{r}"
    );
    let again = sdk(&f, &args);
    for n in &names {
        assert_eq!(
            again[n]["versions"], got[n]["versions"],
            "{n}: new version on a no-op run"
        );
    }

    let (code, r, err) = fx.export(&["--to", &to, "--force"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(outcome(&r, "dev-app/app-2")["status"], "exported");
    let s = &sdk(&f, &["get", &foreign])[&foreign];
    assert_eq!(s["tags"]["managed-by"], "ksec");
    assert_eq!(s["versions"], 2);
}

#[test]
fn azure_failing_halfway_then_rerun_completes() {
    let Some(f) = AzureFake::start() else { return };
    let fx = Fixture::new(6);
    let env = f.env();
    let to = format!("azure-kv://127.0.0.1:{}", f.server.port);
    fail_after(&f, Some(7));
    let (code, r, err) = fx.export(&["--to", &to, "--concurrency", "2"], &env);
    assert_eq!(code, 1, "{err}");
    let st = statuses(&r);
    assert_eq!(st.get("exported"), Some(&7), "{r}");
    assert_eq!(st.get("failed"), Some(&(fx.count() - 7)), "{r}");
    for s in r["secrets"].as_array().unwrap() {
        if s["status"] == "failed" {
            assert_eq!(s["error_class"], "network", "{s}");
        }
    }
    fail_after(&f, None);
    let (code, r, err) = fx.export(&["--to", &to], &env);
    assert_eq!(code, 0, "{err} {r}");
    assert_eq!(statuses(&r).get("unchanged"), Some(&7), "{r}");
    assert_eq!(statuses(&r).get("exported"), Some(&(fx.count() - 7)), "{r}");
    let names: Vec<String> = fx
        .expected
        .keys()
        .map(|k| ksec::export::azure_kv::secret_name(&format!("{}/{}/{}", k.0, k.1, k.2)).unwrap())
        .collect();
    let mut args = vec!["get"];
    args.extend(names.iter().map(String::as_str));
    let got = sdk(&f, &args);
    for (key, n) in fx.expected.keys().zip(&names) {
        let v: BTreeMap<String, String> =
            serde_json::from_str(got[n]["value"].as_str().unwrap()).unwrap();
        assert_eq!(v, fx.stored(key), "{n}");
        assert_eq!(got[n]["versions"], 1, "{n}");
    }
}
