//! `ksec export --eso-out`: the generated SecretStores and ExternalSecrets
//! are validated with ESO's own schema validators (npm
//! `@kubernetes-models/external-secrets`, generated from ESO's CRDs; a broken
//! object must be rejected), they resolve — like ESO would — to exactly the
//! Secret's keys and bytes, and the Vault policy grants exactly the
//! environment's entries (checked by OpenBao itself).
use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Value as J, json};
use support::export::{B64, Fixture};
use support::kms::{AzureFake, Bao, Moto};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

fn load(p: &Path) -> J {
    let bytes = std::fs::read(p).unwrap();
    let docs = ksec::sops::store::load_plain(ksec::sops::Format::Yaml, &bytes).unwrap();
    assert_eq!(docs.0.len(), 1, "{}", p.display());
    ksec::sops::Value::Map(docs.0[0].clone()).to_json()
}

/// Runs ESO's validators over `objs`; None (skip) without node or the package.
fn validate(objs: &[J]) -> Option<Vec<J>> {
    support::export::eso_validate(objs)
}

fn assert_valid(objs: &[J]) {
    let Some(res) = validate(objs) else { return };
    for r in &res {
        assert_eq!(r["ok"], true, "ESO schema rejects {r}");
    }
    // The validator can fail: a wrong enum and a missing required field are rejected.
    let es = objs.iter().find(|o| o["kind"] == "ExternalSecret").unwrap();
    let mut bad1 = es.clone();
    bad1["spec"]["target"]["creationPolicy"] = json!("Owns");
    let mut bad2 = es.clone();
    bad2["spec"]["data"][0]["remoteRef"]
        .as_object_mut()
        .unwrap()
        .remove("key");
    let mut bad3 = objs
        .iter()
        .find(|o| o["kind"] == "SecretStore")
        .unwrap()
        .clone();
    bad3["spec"]["provider"] = json!({"vault": {"server": "x", "version": "v3"}});
    for r in validate(&[bad1, bad2, bad3]).unwrap() {
        assert_eq!(r["ok"], false, "a broken object passed: {r}");
    }
}

/// Undoes the gjson escaping of a property.
fn unescape(p: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in p.chars() {
        if c == '\\' && !esc {
            esc = true;
            continue;
        }
        esc = false;
        out.push(c);
    }
    out
}

/// What ESO would put in the Secret: each data item's property from the
/// remote entry (`fetch`), Base64-decoded where asked, then the template.
fn resolve(es: &J, fetch: &dyn Fn(&str) -> BTreeMap<String, String>) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for d in es["spec"]["data"].as_array().unwrap() {
        let r = &d["remoteRef"];
        let entry = fetch(r["key"].as_str().unwrap());
        let v = entry[&unescape(r["property"].as_str().unwrap())].clone();
        let bytes = if r["decodingStrategy"] == "Base64" {
            B64.decode(v).unwrap()
        } else {
            v.into_bytes()
        };
        out.insert(d["secretKey"].as_str().unwrap().to_string(), bytes);
    }
    if let Some(t) = es["spec"]["target"]["template"]["data"].as_object() {
        let mut templated = BTreeMap::new();
        for (k, v) in t {
            // Only the pass-through form ksec writes.
            let inner = v
                .as_str()
                .unwrap()
                .trim_start_matches("{{ index . \"")
                .trim_end_matches("\" }}");
            templated.insert(k.clone(), out[inner].clone());
        }
        return templated;
    }
    out
}

fn check_manifests(
    fx: &Fixture,
    dir: &Path,
    fetch: &dyn Fn(&str) -> BTreeMap<String, String>,
) -> Vec<J> {
    let files = yaml_files(dir);
    let objs: Vec<J> = files.iter().map(|p| load(p)).collect();
    let stores: Vec<&J> = objs.iter().filter(|o| o["kind"] == "SecretStore").collect();
    let ess: Vec<&J> = objs
        .iter()
        .filter(|o| o["kind"] == "ExternalSecret")
        .collect();
    assert_eq!(stores.len(), 3, "one SecretStore per namespace");
    assert_eq!(ess.len(), fx.count(), "one ExternalSecret per Secret");
    for es in &ess {
        let ns = es["metadata"]["namespace"].as_str().unwrap();
        let name = es["metadata"]["name"].as_str().unwrap();
        let env = if ns.starts_with("prod") {
            "prod"
        } else {
            "dev"
        };
        assert_eq!(es["spec"]["target"]["name"], name);
        assert_eq!(
            es["spec"]["secretStoreRef"]["name"],
            format!("{env}-secretstore")
        );
        let got = resolve(es, fetch);
        assert_eq!(
            got,
            fx.expected[&(env.into(), ns.into(), name.into())],
            "{ns}/{name}"
        );
    }
    let pull = ess
        .iter()
        .find(|e| e["metadata"]["name"] == "registry-pull-secret")
        .unwrap();
    assert_eq!(
        pull["spec"]["target"]["template"]["type"],
        "kubernetes.io/dockerconfigjson"
    );
    assert_eq!(
        pull["spec"]["target"]["template"]["metadata"]["labels"]["app"],
        "web"
    );
    assert_eq!(
        pull["spec"]["data"][0]["remoteRef"]["property"],
        "\\.dockerconfigjson"
    );
    let blob = ess
        .iter()
        .find(|e| e["metadata"]["name"] == "blob")
        .unwrap();
    let strategies: Vec<(&str, &J)> = blob["spec"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["secretKey"].as_str().unwrap(),
                &d["remoteRef"]["decodingStrategy"],
            )
        })
        .collect();
    assert_eq!(
        strategies,
        vec![("keystore.p12", &json!("Base64")), ("note", &J::Null)]
    );
    for p in &files {
        assert!(
            !std::fs::read_to_string(p).unwrap().contains("CANARY"),
            "{}",
            p.display()
        );
    }
    objs
}

#[test]
fn vault_eso_manifests_validate_rebuild_the_secrets_and_the_policy_is_exact() {
    let Some(bao) = Bao::start() else { return };
    let fx = Fixture::new(4);
    let out = support::bin::tempdir();
    bao.post(
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    let env = vec![("VAULT_TOKEN", bao.root.clone())];
    let to = format!("vault+http://127.0.0.1:{}/kv/ksec", bao.server.port);
    let eso = out.path().join("eso");
    let (code, _, err) = fx.export(
        &[
            "--to",
            &to,
            "--eso-out",
            eso.to_str().unwrap(),
            "--refresh-interval",
            "15m",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let fetch = |key: &str| -> BTreeMap<String, String> {
        serde_json::from_value(bao.get(&format!("kv/data/{key}"))["data"]["data"].clone()).unwrap()
    };
    let objs = check_manifests(&fx, &eso, &fetch);
    assert_valid(&objs);
    let store = objs
        .iter()
        .find(|o| o["kind"] == "SecretStore" && o["metadata"]["namespace"] == "prod-db")
        .unwrap();
    assert_eq!(store["spec"]["provider"]["vault"]["path"], "kv");
    assert_eq!(store["spec"]["provider"]["vault"]["version"], "v2");
    assert_eq!(
        store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"],
        "prod-secret-reader"
    );
    let es_text = std::fs::read_to_string(eso.join("prod-db/app-0.externalsecret.yaml")).unwrap();
    assert!(es_text.contains("DELETES the Secret"), "{es_text}");
    assert!(es_text.contains("refreshInterval: 15m"), "{es_text}");

    // The prod policy: exact paths, no wildcard; OpenBao enforces it as written.
    let hcl = std::fs::read_to_string(eso.join("policies/vault-prod.hcl")).unwrap();
    assert!(!hcl.contains('*'), "{hcl}");
    assert_eq!(hcl.matches("path \"").count(), 4 * 2 + 1, "{hcl}");
    let tok = bao.token_with_policy("prod-read", &hcl);
    let (st, _) = bao.api("GET", "kv/data/ksec/prod/prod-db/app-1", None, Some(&tok));
    assert_eq!(st, 200);
    let (st, _) = bao.api("GET", "kv/data/ksec/dev/dev-app/app-1", None, Some(&tok));
    assert_eq!(st, 403, "prod policy reads dev");
    let (st, _) = bao.api(
        "PUT",
        "kv/data/ksec/prod/prod-db/app-1",
        Some(json!({"data": {}})),
        Some(&tok),
    );
    assert_eq!(st, 403, "the read policy can write");
}

#[test]
fn aws_and_azure_eso_manifests_validate_and_rebuild_the_secrets() {
    let Some(moto) = Moto::start() else { return };
    let Some(az) = AzureFake::start() else { return };
    let fx = Fixture::new(3);
    let out = support::bin::tempdir();

    let eso = out.path().join("aws");
    let (code, _, err) = fx.export(
        &[
            "--to",
            "aws-sm://us-east-1/ksec",
            "--eso-out",
            eso.to_str().unwrap(),
            "--creation-policy",
            "merge",
            "--aws-account-id",
            "123456789012",
        ],
        &moto.env(),
    );
    assert_eq!(code, 0, "{err}");
    // Secrets Manager values fetched with boto3 (not ksec).
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
    let url = moto.url().to_string();
    let fetch = move |key: &str| -> BTreeMap<String, String> {
        let o = std::process::Command::new(&py)
            .args([
                "-c",
                "import boto3,sys;print(boto3.client('secretsmanager',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id='t',aws_secret_access_key='t').get_secret_value(SecretId=sys.argv[2])['SecretString'])",
                &url,
                key,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let objs = check_manifests(&fx, &eso, &fetch);
    assert_valid(&objs);
    let store = objs.iter().find(|o| o["kind"] == "SecretStore").unwrap();
    assert_eq!(
        store["spec"]["provider"]["aws"]["service"],
        "SecretsManager"
    );
    assert!(
        store["spec"]["provider"]["aws"]["auth"]["jwt"]["serviceAccountRef"]["name"].is_string()
    );
    let text = std::fs::read_to_string(eso.join("dev-app/blob.externalsecret.yaml")).unwrap();
    assert!(
        text.contains("creationPolicy: Merge") && text.contains("never creates or deletes"),
        "{text}"
    );
    let iam: J =
        serde_json::from_slice(&std::fs::read(eso.join("policies/aws-iam-dev.json")).unwrap())
            .unwrap();
    let res = iam["Statement"][0]["Resource"].as_array().unwrap();
    assert_eq!(res.len(), 3 + 1);
    assert!(
        res.iter().all(|r| {
            let r = r.as_str().unwrap();
            r.starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:ksec/dev/dev-app/")
                && r.ends_with("-??????")
                && !r.contains('*')
        }),
        "{iam}"
    );

    let eso = out.path().join("azure");
    let to = format!("azure-kv://127.0.0.1:{}", az.server.port);
    let (code, _, err) = fx.export(
        &["--to", &to, "--eso-out", eso.to_str().unwrap()],
        &az.env(),
    );
    assert_eq!(code, 0, "{err}");
    // Values fetched over the Key Vault REST API with a token from the fake's endpoint.
    let fetch = |key: &str| -> BTreeMap<String, String> {
        let ca = std::fs::read(&az.ca).unwrap();
        let (base, tenant, cid, sec) = (
            az.url().to_string(),
            az.tenant.clone(),
            az.client_id.clone(),
            az.client_secret.clone(),
        );
        let key = key.to_string();
        let v: J = support::kms::rt().block_on(async move {
            let c = reqwest::Client::builder()
                .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
                .build()
                .unwrap();
            let tok: J = c
                .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("grant_type=client_credentials&client_id={cid}&client_secret={sec}&scope=https%3A%2F%2Fvault.azure.net%2F.default"))
                .send().await.unwrap().json().await.unwrap();
            c.get(format!("{base}/secrets/{key}?api-version=7.5"))
                .bearer_auth(tok["access_token"].as_str().unwrap())
                .send().await.unwrap().json().await.unwrap()
        });
        serde_json::from_str(v["value"].as_str().unwrap()).unwrap()
    };
    let objs = check_manifests(&fx, &eso, &fetch);
    assert_valid(&objs);
    let store = objs.iter().find(|o| o["kind"] == "SecretStore").unwrap();
    assert_eq!(
        store["spec"]["provider"]["azurekv"]["authType"],
        "WorkloadIdentity"
    );
    assert_eq!(store["spec"]["provider"]["azurekv"]["vaultUrl"], az.url());
}
