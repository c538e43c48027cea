//! Running `ksec controller` as a child process against a test cluster, and
//! reading EncryptedSecrets, conditions and /metrics (shared by the
//! controller_* tests).

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use ksec::controller::EncryptedSecret;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use super::{Cluster, Repo};
use crate::support::bin;

/// The controller process; killed on drop. Its stdout+stderr are collected.
pub struct Running {
    pub child: Child,
    pub logs: Arc<Mutex<String>>,
    pub metrics: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test shows what the controller said (its last lines).
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(40).collect();
            eprintln!("--- controller log (last lines) ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Running {
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// `GET path` on the metrics address → (status code, body).
    pub fn get(&self, path: &str) -> (u16, String) {
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

    /// The value of one series (`name` including its `{labels}`), if exported.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    /// Still running (not exited)?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn install_crd(c: &Cluster) {
    use ksec::cluster::approval::SecretApproval;
    let api = Api::<CustomResourceDefinition>::all(c.admin.clone());
    let crds = [
        (
            "encryptedsecrets.ksec.io",
            <EncryptedSecret as kube::CustomResourceExt>::crd(),
        ),
        (
            "secretapprovals.ksec.io",
            <SecretApproval as kube::CustomResourceExt>::crd(),
        ),
    ];
    for (name, crd) in crds {
        c.block(api.patch(
            name,
            &PatchParams::apply("test-setup").force(),
            &Patch::Apply(&serde_json::to_value(crd).unwrap()),
        ))
        .expect("install CRD");
    }
    c.wait_for("the CRDs to be served", 30, || {
        c.block(Api::<EncryptedSecret>::all(c.admin.clone()).list(&ListParams::default()))
            .is_ok()
            && c.block(Api::<SecretApproval>::all(c.admin.clone()).list(&ListParams::default()))
                .is_ok()
    });
}

pub fn start(c: &Cluster, repo: &Repo, namespaces: &[&str]) -> Running {
    start_with(c, repo, namespaces, "admin", &[], &[])
}

/// Starts `ksec controller --env prod` as `context`, for `namespaces` (none:
/// cluster-wide within the environment), and waits for /readyz.
pub fn start_with(
    c: &Cluster,
    repo: &Repo,
    namespaces: &[&str],
    context: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Running {
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut cmd = bin::ksec();
    cmd.args(["controller", "-v", "--kubeconfig"])
        .arg(&c.kubeconfig)
        .args(["--context", context, "--env", "prod", "--recipients-dir"])
        .arg(repo.path("recipients"))
        .arg("--identity")
        .arg(repo.keys_file())
        .args(["--metrics-addr", &metrics]);
    if !extra.contains(&"--rollout-timeout") {
        cmd.args(["--rollout-timeout", "60s"]);
    }
    if !namespaces.is_empty() {
        cmd.arg("--namespace").arg(namespaces.join(","));
    }
    cmd.args(extra)
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
pub fn put_cr(c: &Cluster, ns: &str, name: &str, file: &Path, extra: serde_json::Value) {
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

pub fn cr(c: &Cluster, ns: &str, name: &str) -> EncryptedSecret {
    c.block(Api::<EncryptedSecret>::namespaced(c.admin.clone(), ns).get(name))
        .expect("get EncryptedSecret")
}

/// (status, reason) of a condition, once the controller has observed the current generation.
pub fn condition(c: &Cluster, ns: &str, name: &str, type_: &str) -> Option<(String, String)> {
    let o = cr(c, ns, name);
    let st = o.status?;
    if st.observed_generation != o.metadata.generation {
        return None;
    }
    st.condition(type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn wait_condition(c: &Cluster, ns: &str, name: &str, type_: &str, want: (&str, &str)) {
    let end = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = condition(c, ns, name, type_);
        if seen
            .as_ref()
            .is_some_and(|(s, r)| s == want.0 && r == want.1)
        {
            return;
        }
        if std::time::Instant::now() > end {
            let status = cr(c, ns, name).status;
            panic!(
                "timed out waiting for {ns}/{name} {type_}={} ({}); status: {status:?}",
                want.0, want.1
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Is the EncryptedSecret Ready=True for its current generation?
pub fn is_ready(c: &Cluster, ns: &str, name: &str) -> bool {
    condition(c, ns, name, "Ready").is_some_and(|(s, _)| s == "True")
}

/// The `secret.ksec.io/<secret>` annotation on a Deployment's pod template.
pub fn template_hash(c: &Cluster, ns: &str, dep: &str, secret: &str) -> Option<String> {
    c.deployment(ns, dep)
        .spec?
        .template
        .metadata?
        .annotations?
        .get(&format!("secret.ksec.io/{secret}"))
        .cloned()
}

/// The EncryptedSecret's `status.contentHash` ("" before its first sync).
pub fn content_hash(c: &Cluster, ns: &str, name: &str) -> String {
    cr(c, ns, name)
        .status
        .and_then(|s| s.content_hash)
        .unwrap_or_default()
}

/// Sets `key` to `value` in `file`, re-applies the EncryptedSecret `ns/name`,
/// and waits until the Secret holds the value and the object is Ready again.
pub fn rotate(c: &Cluster, repo: &Repo, ns: &str, name: &str, file: &Path, key: &str, value: &str) {
    repo.set(file, key, value);
    put_cr(c, ns, name, file, json!({}));
    c.wait_for(&format!("the rotated value of {ns}/{name}"), 60, || {
        c.secret_data(ns, name).get(key).map(String::as_str) == Some(value)
    });
    wait_condition(c, ns, name, "Ready", ("True", "Synced"));
}
