//! A repository of a few dozen encrypted Secrets for the `ksec export` tests:
//! three namespaces in two environments, a `kubernetes.io/dockerconfigjson`
//! pull secret, a non-UTF-8 value and keys with dots. The plaintext is kept
//! so each backend's own client can be compared with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

use crate::support::bin;

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub ids: Vec<PathBuf>,
    /// (env, namespace, name) → key → bytes
    pub expected: BTreeMap<(String, String, String), BTreeMap<String, Vec<u8>>>,
}

pub const PULL: &str = r#"{"auths":{"registry.internal:5000":{"username":"bot","password":"CANARY-reg-pw-71","auth":"Ym90OkNBTkFSWS1yZWctcHctNzE="}}}"#;
pub const BINARY: &[u8] = &[0xff, 0xfe, 0x00, 0x01, 0x80, 0x43];

impl Fixture {
    /// `per_ns` Opaque Secrets in each of prod-web, prod-db (env prod) and
    /// dev-app (env dev), plus prod-web/registry-pull-secret and dev-app/blob.
    pub fn new(per_ns: usize) -> Fixture {
        let dir = bin::tempdir();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("recipients")).unwrap();
        let prod = bin::age_key(root, "prod-key");
        let dev = bin::age_key(root, "dev-key");
        std::fs::write(
            root.join("recipients/prod.yaml"),
            format!("namespaces: [\"prod-*\"]\nage:\n  - {}\n", prod.recipient),
        )
        .unwrap();
        std::fs::write(
            root.join("recipients/dev.yaml"),
            format!("namespaces: [\"dev-*\"]\nage:\n  - {}\n", dev.recipient),
        )
        .unwrap();
        let mut expected = BTreeMap::new();
        for (env, ns) in [
            ("prod", "prod-web"),
            ("prod", "prod-db"),
            ("dev", "dev-app"),
        ] {
            for i in 0..per_ns {
                let name = format!("app-{i}");
                let pw = format!("CANARY-{ns}-{i}-pw");
                let cfg = format!("url: postgres://db-{i}\nmode: \"strict\"\n");
                let y = format!(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: Opaque\nstringData:\n  username: app{i}\n  password: {pw}\n  config.yaml: {}\n",
                    serde_json::to_string(&cfg).unwrap()
                );
                write(root, &format!("secrets/{ns}/{name}.yaml"), &y);
                let mut m = BTreeMap::new();
                m.insert("username".to_string(), format!("app{i}").into_bytes());
                m.insert("password".to_string(), pw.into_bytes());
                m.insert("config.yaml".to_string(), cfg.into_bytes());
                expected.insert((env.into(), ns.into(), name), m);
            }
        }
        let pull = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry-pull-secret\n  namespace: prod-web\n  labels:\n    app: web\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: {}\n",
            serde_json::to_string(PULL).unwrap()
        );
        write(root, "secrets/prod-web/registry-pull-secret.yaml", &pull);
        expected.insert(
            (
                "prod".into(),
                "prod-web".into(),
                "registry-pull-secret".into(),
            ),
            BTreeMap::from([(".dockerconfigjson".to_string(), PULL.as_bytes().to_vec())]),
        );
        let blob = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: blob\n  namespace: dev-app\ndata:\n  keystore.p12: {}\n  note: {}\n",
            B64.encode(BINARY),
            B64.encode("CANARY-blob-note")
        );
        write(root, "secrets/dev-app/blob.yaml", &blob);
        expected.insert(
            ("dev".into(), "dev-app".into(), "blob".into()),
            BTreeMap::from([
                ("keystore.p12".to_string(), BINARY.to_vec()),
                ("note".to_string(), b"CANARY-blob-note".to_vec()),
            ]),
        );
        let o = bin::run(
            bin::ksec()
                .args(["encrypt", "-i"])
                .arg(root.join("secrets")),
        );
        assert!(o.status.success(), "encrypt: {}", bin::stderr(&o));
        Fixture {
            dir,
            ids: vec![prod.identity_file, dev.identity_file],
            expected,
        }
    }

    pub fn secrets_dir(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    /// `ksec export -o json … secrets/` with `env`; returns (exit code, report, stderr).
    pub fn export(
        &self,
        args: &[&str],
        env: &[(&str, String)],
    ) -> (i32, serde_json::Value, String) {
        let mut c = self.command(args, env);
        c.args(["-o", "json"]);
        let o = bin::run(&mut c);
        let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        (o.status.code().unwrap_or(-1), v, bin::stderr(&o))
    }

    pub fn command(&self, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut c = bin::ksec();
        c.arg("export");
        for id in &self.ids {
            c.arg("--identity").arg(id);
        }
        c.args(args).arg(self.secrets_dir());
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// What ksec should have stored for a Secret: strings, binary as base64.
    pub fn stored(&self, key: &(String, String, String)) -> BTreeMap<String, String> {
        self.expected[key]
            .iter()
            .map(|(k, v)| {
                let s = match std::str::from_utf8(v) {
                    Ok(s) => s.to_string(),
                    Err(_) => B64.encode(v),
                };
                (k.clone(), s)
            })
            .collect()
    }

    pub fn count(&self) -> usize {
        self.expected.len()
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// status → number of Secrets with it, from a JSON report.
pub fn statuses(report: &serde_json::Value) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in report["secrets"].as_array().into_iter().flatten() {
        *m.entry(s["status"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    m
}

/// The outcome of one Secret (`namespace/name`).
pub fn outcome<'a>(report: &'a serde_json::Value, secret: &str) -> &'a serde_json::Value {
    report["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["secret"] == secret)
        .unwrap_or_else(|| panic!("{secret} not in the report: {report}"))
}

/// Runs ESO's validators over `objs`; None (skip) without node or the package.
pub fn eso_validate(objs: &[serde_json::Value]) -> Option<Vec<serde_json::Value>> {
    let node = bin::tool("node")?;
    let nm = Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/node/node_modules");
    if !nm.join("@kubernetes-models/external-secrets").is_dir() {
        if std::env::var("KSEC_REQUIRE_ORACLES").is_ok_and(|v| v == "1") {
            panic!("@kubernetes-models/external-secrets missing; run scripts/test-deps.sh");
        }
        eprintln!("SKIP: @kubernetes-models/external-secrets not installed (scripts/test-deps.sh)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/eso_validate.mjs");
    let mut child = std::process::Command::new(node)
        .arg(script)
        .arg(&nm)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(objs).unwrap().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    Some(serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap())
}
