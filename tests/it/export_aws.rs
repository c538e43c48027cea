//! `ksec export --to aws-sm://…` against moto's Secrets Manager; boto3 (AWS's
//! own SDK) reads every secret back. Idempotence, foreign secrets, and a
//! server lost halfway, as for Vault.
use crate::support;

use std::collections::BTreeMap;
use std::process::Command;

use support::export::{Fixture, outcome, statuses};
use support::kms::{Moto, proxy};

/// boto3: name → {value, tags, versions} for every secret in moto.
fn boto3_dump(endpoint: &str) -> serde_json::Value {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
    let script = r#"
import boto3, json, sys
c = boto3.client("secretsmanager", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
out = {}
for page in c.get_paginator("list_secrets").paginate():
    for s in page["SecretList"]:
        n = s["Name"]
        d = c.describe_secret(SecretId=n)
        v = c.get_secret_value(SecretId=n)
        ids = c.list_secret_version_ids(SecretId=n)["Versions"]
        out[n] = {"value": v.get("SecretString"), "tags": {t["Key"]: t["Value"] for t in d.get("Tags", [])}, "versions": len(ids)}
print(json.dumps(out))
"#;
    let o = Command::new(py)
        .args(["-c", script, endpoint])
        .output()
        .expect("python");
    assert!(
        o.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn boto3_create(endpoint: &str, name: &str, value: &str) {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
    let script = r#"
import boto3, sys
c = boto3.client("secretsmanager", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="test", aws_secret_access_key="test")
c.create_secret(Name=sys.argv[2], SecretString=sys.argv[3])
"#;
    let o = Command::new(py)
        .args(["-c", script, endpoint, name, value])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn values(v: &serde_json::Value) -> BTreeMap<String, String> {
    serde_json::from_str(v["value"].as_str().unwrap()).unwrap()
}

#[test]
fn export_to_secrets_manager_reads_back_with_boto3() {
    let Some(moto) = Moto::start() else { return };
    let fx = Fixture::new(10);
    let env = moto.env();
    boto3_create(moto.url(), "ksec/prod/prod-db/app-1", r#"{"dba":"theirs"}"#);

    let (code, r, err) = fx.export(&["--to", "aws-sm://us-east-1/ksec"], &env);
    assert_eq!(code, 1, "{err}");
    assert!(!r.to_string().contains("CANARY") && !err.contains("CANARY"));
    assert_eq!(
        outcome(&r, "prod-db/app-1")["status"],
        "skipped-foreign",
        "{r}"
    );
    assert_eq!(statuses(&r).get("exported"), Some(&(fx.count() - 1)), "{r}");

    let dump = boto3_dump(moto.url());
    for key in fx.expected.keys() {
        let name = format!("ksec/{}/{}/{}", key.0, key.1, key.2);
        let s = &dump[&name];
        if name == "ksec/prod/prod-db/app-1" {
            assert_eq!(values(s)["dba"], "theirs", "foreign secret overwritten");
            assert!(s["tags"].get("managed-by").is_none());
            continue;
        }
        assert_eq!(values(s), fx.stored(key), "{name}");
        assert_eq!(s["tags"]["managed-by"], "ksec", "{name}");
        assert_eq!(s["tags"]["ksec-secret"], format!("{}/{}", key.1, key.2));
        assert_eq!(s["versions"], 1, "{name}");
    }

    // Second run: nothing written.
    let (_, r, _) = fx.export(&["--to", "aws-sm://us-east-1/ksec"], &env);
    assert_eq!(
        statuses(&r).get("unchanged"),
        Some(&(fx.count() - 1)),
        "{r}"
    );
    let dump2 = boto3_dump(moto.url());
    for (n, s) in dump2.as_object().unwrap() {
        assert_eq!(s["versions"], dump[n]["versions"], "{n} got a new version");
    }

    // --force takes it over (tags + new version).
    let (code, r, err) = fx.export(&["--to", "aws-sm://us-east-1/ksec", "--force"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(outcome(&r, "prod-db/app-1")["status"], "exported");
    let s = &boto3_dump(moto.url())["ksec/prod/prod-db/app-1"];
    assert_eq!(values(s)["password"], "CANARY-prod-db-1-pw");
    assert_eq!(s["tags"]["managed-by"], "ksec");
}

#[test]
fn secrets_manager_lost_halfway_then_rerun_completes() {
    let Some(moto) = Moto::start() else { return };
    let fx = Fixture::new(6);
    let p = proxy::Proxy::http(&format!("127.0.0.1:{}", moto.server.port));
    p.set(proxy::rule(|i| {
        if i < 25 {
            proxy::Action::Pass
        } else {
            proxy::Action::Reset
        }
    }));
    let mut env = moto.env();
    env.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL", p.url()));
    let (code, r, err) = fx.export(
        &["--to", "aws-sm://us-east-1/ksec", "--concurrency", "3"],
        &env,
    );
    assert_eq!(code, 1, "{err}");
    let st = statuses(&r);
    let exported = st.get("exported").copied().unwrap_or(0);
    assert!(
        exported > 0 && st.get("failed").copied().unwrap_or(0) > 0,
        "{r}"
    );
    let dump = boto3_dump(moto.url());
    for s in r["secrets"].as_array().unwrap() {
        if s["status"] == "exported" {
            let (ns, name) = s["secret"].as_str().unwrap().split_once('/').unwrap();
            let env_ = if ns.starts_with("prod") {
                "prod"
            } else {
                "dev"
            };
            let got = &dump[format!("ksec/{env_}/{ns}/{name}")];
            assert_eq!(
                values(got),
                fx.stored(&(env_.into(), ns.into(), name.into()))
            );
        } else {
            assert_eq!(s["error_class"], "network", "{s}");
        }
    }
    p.set(proxy::rule(|_| proxy::Action::Pass));
    let (code, r, err) = fx.export(&["--to", "aws-sm://us-east-1/ksec"], &env);
    assert_eq!(code, 0, "{err} {r}");
    assert_eq!(statuses(&r).get("failed"), None);
    let dump = boto3_dump(moto.url());
    for key in fx.expected.keys() {
        let name = format!("ksec/{}/{}/{}", key.0, key.1, key.2);
        assert_eq!(values(&dump[&name]), fx.stored(key), "{name}");
        assert_eq!(dump[&name]["versions"], 1, "{name}: written twice");
    }
}

/// IRSA as EKS sets it up: no keys, only AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE;
/// the chain calls STS AssumeRoleWithWebIdentity (moto's STS) and exports with
/// the role's credentials.
#[test]
fn irsa_web_identity_credentials_are_used() {
    let Some(moto) = Moto::start() else { return };
    let fx = Fixture::new(1);
    let dir = support::bin::tempdir();
    let token = dir.path().join("token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cHJvZDpla3MifQ.c2ln",
    )
    .unwrap();
    let mut env: Vec<(&str, String)> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| {
            !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET_ACCESS_KEY")
        })
        .collect();
    env.push((
        "AWS_ROLE_ARN",
        "arn:aws:iam::123456789012:role/ksec-export".into(),
    ));
    env.push(("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()));
    env.push(("AWS_ROLE_SESSION_NAME", "ksec-test".into()));
    let mut c = fx.command(&["--to", "aws-sm://us-east-1/irsa", "-o", "json"], &env);
    c.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let o = support::bin::run(&mut c);
    assert_eq!(o.status.code(), Some(0), "{}", support::bin::stderr(&o));
    let dump = boto3_dump(moto.url());
    let s = &dump["irsa/prod/prod-web/app-0"];
    assert_eq!(values(s)["password"], "CANARY-prod-web-0-pw");
}
