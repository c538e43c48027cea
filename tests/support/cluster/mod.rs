//! Support for the `ksec apply` tests: the real kube-apiserver started by
//! `scripts/kube-up.sh` (via scripts/test.sh, which exports
//! KSEC_TEST_KUBECONFIG), a fresh namespace per test, a repo with
//! `recipients/` for the environments `prod` (namespaces `t-prod-*`) and
//! `dev` (`t-dev-*`), and [`FakeKubelet`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::bin::{self, AgeKey};

pub mod controller;
pub mod eso;

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub rt: tokio::runtime::Runtime,
    pub admin: kube::Client,
}

/// The test cluster, or `None` (skip) when it is not running. With
/// KSEC_REQUIRE_ORACLES=1 (scripts/test.sh) a missing cluster fails the test.
pub fn cluster() -> Option<Cluster> {
    let Some(kc) = std::env::var_os("KSEC_TEST_KUBECONFIG").map(PathBuf::from) else {
        let msg = "KSEC_TEST_KUBECONFIG is not set: these tests need the real kube-apiserver \
                   (scripts/test.sh starts it with scripts/kube-up.sh)";
        if std::env::var("KSEC_REQUIRE_ORACLES").is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        eprintln!("SKIP: {msg}");
        return None;
    };
    Some(Cluster::at(kc))
}

impl Cluster {
    /// A cluster reached through `kc` (context `admin`), e.g. a private control plane.
    pub fn at(kc: PathBuf) -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let admin = rt.block_on(async {
            let kcfg = kube::config::Kubeconfig::read_from(&kc).expect("read kubeconfig");
            let cfg = kube::Config::from_custom_kubeconfig(
                kcfg,
                &kube::config::KubeConfigOptions {
                    context: Some("admin".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("kubeconfig");
            kube::Client::try_from(cfg).expect("client")
        });
        Cluster {
            kubeconfig: kc,
            rt,
            admin,
        }
    }
}

/// A short random suffix so parallel tests and reruns never share a namespace.
pub fn suffix() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..6)
        .map(|_| (b'a' + r.gen_range(0..26)) as char)
        .collect()
}

impl Cluster {
    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Creates a fresh namespace `t-<env>-<test>-<random>`.
    pub fn namespace(&self, env: &str, test: &str) -> String {
        let name = format!("t-{env}-{test}-{}", suffix());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        self.block(Api::<Namespace>::all(self.admin.clone()).create(&PostParams::default(), &ns))
            .expect("create namespace");
        name
    }

    pub fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        self.block(Api::<Secret>::namespaced(self.admin.clone(), ns).get_opt(name))
            .expect("get secret")
    }

    pub fn secret_data(&self, ns: &str, name: &str) -> BTreeMap<String, String> {
        self.secret(ns, name)
            .and_then(|s| s.data)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect()
    }

    pub fn deployment(&self, ns: &str, name: &str) -> Deployment {
        self.block(Api::<Deployment>::namespaced(self.admin.clone(), ns).get(name))
            .expect("get deployment")
    }

    pub fn pods(&self, ns: &str) -> Vec<Pod> {
        self.block(Api::<Pod>::namespaced(self.admin.clone(), ns).list(&ListParams::default()))
            .expect("list pods")
            .items
    }

    /// Creates any object from JSON (server-side apply as the `test-setup` manager).
    pub fn create(&self, obj: serde_json::Value) {
        let ar = api_resource(&obj);
        let ns = obj["metadata"]["namespace"].as_str().map(str::to_string);
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let api: Api<kube::api::DynamicObject> = match &ns {
            Some(ns) => Api::namespaced_with(self.admin.clone(), ns, &ar),
            None => Api::all_with(self.admin.clone(), &ar),
        };
        self.block(api.patch(
            &name,
            &PatchParams::apply("test-setup").force(),
            &Patch::Apply(&obj),
        ))
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    }

    /// A Deployment of `replicas` pods whose containers use `env_secret` (secretKeyRef `key`).
    pub fn deployment_using(&self, ns: &str, name: &str, secrets: &[(&str, &str)], replicas: i32) {
        let env: Vec<serde_json::Value> = secrets
            .iter()
            .enumerate()
            .map(|(i, (s, k))| {
                json!({"name": format!("V{i}"), "valueFrom": {"secretKeyRef": {"name": s, "key": k}}})
            })
            .collect();
        self.create(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1", "env": env}]}
                }
            }
        }));
    }

    /// A one-hour token of ServiceAccount `ns/name` (TokenRequest API).
    pub fn service_account_token(&self, ns: &str, name: &str) -> String {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        use k8s_openapi::api::core::v1::ServiceAccount;
        let req = TokenRequest {
            spec: TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        self.block(
            Api::<ServiceAccount>::namespaced(self.admin.clone(), ns).create_token_request(
                name,
                &Default::default(),
                &req,
            ),
        )
        .expect("token request")
        .status
        .expect("token")
        .token
    }

    /// Writes a kubeconfig whose context `sa` authenticates as ServiceAccount
    /// `ns/name` (TokenRequest), for tests of what the real authorizer allows.
    pub fn kubeconfig_as(&self, ns: &str, name: &str, path: &Path) -> PathBuf {
        let token = self.service_account_token(ns, name);
        let kc = std::fs::read_to_string(&self.kubeconfig)
            .unwrap()
            .replacen(
                "users:\n",
                &format!("users:\n- name: sa\n  user: {{token: {token}}}\n"),
                1,
            )
            .replacen(
                "contexts:\n",
                "contexts:\n- name: sa\n  context: {cluster: ksec-test, user: sa, namespace: default}\n",
                1,
            );
        std::fs::write(path, kc).unwrap();
        path.to_path_buf()
    }

    /// The namespace's events (core/v1: what `kubectl get events` shows).
    pub fn events(&self, ns: &str) -> Vec<k8s_openapi::api::core::v1::Event> {
        self.block(
            Api::<k8s_openapi::api::core::v1::Event>::namespaced(self.admin.clone(), ns)
                .list(&ListParams::default()),
        )
        .expect("list events")
        .items
    }

    /// Waits until `f` holds (polling), or panics with `what`.
    pub fn wait_for(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let end = std::time::Instant::now() + Duration::from_secs(secs);
        while std::time::Instant::now() < end {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out waiting for {what}");
    }

    /// Waits until the deployment's rollout is complete (needs a FakeKubelet marking pods ready).
    pub fn wait_rolled_out(&self, ns: &str, name: &str) {
        self.wait_for(
            &format!("deployment {ns}/{name} to be available"),
            60,
            || {
                let d = self.deployment(ns, name);
                let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let st = d.status.unwrap_or_default();
                st.observed_generation == d.metadata.generation
                    && st.updated_replicas == Some(want)
                    && st.available_replicas == Some(want)
                    && st.replicas == Some(want)
            },
        );
    }
}

fn api_resource(obj: &serde_json::Value) -> kube::api::ApiResource {
    let av = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let (g, v) = av.split_once('/').unwrap_or(("", av));
    let gvk = kube::api::GroupVersionKind::gvk(g, v, kind);
    let plural = match kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        "Pod" => "pods",
        "Secret" => "secrets",
        "ConfigMap" => "configmaps",
        "ServiceAccount" => "serviceaccounts",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "Job" => "jobs",
        "Namespace" => "namespaces",
        "CustomResourceDefinition" => "customresourcedefinitions",
        "ExternalSecret" => "externalsecrets",
        other => panic!("add a plural for {other}"),
    };
    kube::api::ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// How the fake kubelet treats a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ready,
    CrashLoop,
}

impl Health {
    /// Pods started by a ksec rollout for `secret` (their template carries
    /// its content hash) crash; the others run: a bad new value.
    pub fn crash_when_rolled_for(secret: &str) -> impl Fn(&Pod) -> Health + Send + 'static {
        let key = format!("secret.ksec.io/{secret}");
        move |p: &Pod| {
            let rolled = p
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(&key));
            if rolled {
                Health::CrashLoop
            } else {
                Health::Ready
            }
        }
    }
}

/// FAKE: plays the kubelet, which this test cluster does not run. Every
/// 100 ms it patches the status of the namespace's pods — Running and Ready,
/// or a container stuck in CrashLoopBackOff — as `health` decides. It writes
/// only pod status; everything else the tests observe (ReplicaSets, rollouts,
/// availability) is computed by the real kube-controller-manager and API server.
pub struct FakeKubelet {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKubelet {
    pub fn start(
        kubeconfig: &Path,
        ns: &str,
        health: impl Fn(&Pod) -> Health + Send + 'static,
    ) -> FakeKubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let (kc, ns, st) = (kubeconfig.to_path_buf(), ns.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let kcfg = kube::config::Kubeconfig::read_from(&kc).unwrap();
                let cfg = kube::Config::from_custom_kubeconfig(kcfg, &Default::default())
                    .await
                    .unwrap();
                let client = kube::Client::try_from(cfg).unwrap();
                let pods = Api::<Pod>::namespaced(client, &ns);
                while !st.load(Ordering::Relaxed) {
                    if let Ok(list) = pods.list(&ListParams::default()).await {
                        for p in list.items {
                            if p.metadata.deletion_timestamp.is_some() {
                                continue;
                            }
                            let want = health(&p);
                            let cur = p.status.clone().unwrap_or_default();
                            let ready_now = cur
                                .conditions
                                .iter()
                                .flatten()
                                .any(|c| c.type_ == "Ready" && c.status == "True");
                            let crashing_now = cur.container_statuses.iter().flatten().any(|c| {
                                c.state.as_ref().and_then(|s| s.waiting.as_ref()).is_some()
                            });
                            if (want == Health::Ready && ready_now)
                                || (want == Health::CrashLoop && crashing_now)
                            {
                                continue;
                            }
                            let _ = pods
                                .patch_status(
                                    p.metadata.name.as_deref().unwrap(),
                                    &PatchParams::default(),
                                    &Patch::Merge(&status_for(&p, want)),
                                )
                                .await;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        });
        FakeKubelet {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn status_for(p: &Pod, h: Health) -> serde_json::Value {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let names: Vec<String> = p
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let ready = h == Health::Ready;
    let containers: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            let state = if ready {
                json!({"running": {"startedAt": now}})
            } else {
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container (fake kubelet)"}})
            };
            json!({"name": n, "ready": ready, "restartCount": if ready {0} else {3},
                   "image": "example.invalid/app:1", "imageID": "", "state": state})
        })
        .collect();
    let t = if ready { "True" } else { "False" };
    json!({"status": {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": t, "lastTransitionTime": now},
            {"type": "Ready", "status": t, "lastTransitionTime": now},
        ],
        "containerStatuses": containers,
        "startTime": now,
    }})
}

/// A throwaway repository: `recipients/` (prod owns `t-prod-*`, dev owns
/// `t-dev-*`), age keys for both, and helpers to write encrypted Secrets.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub prod: AgeKey,
    pub dev: AgeKey,
    pub kubeconfig: PathBuf,
}

impl Repo {
    pub fn new(c: &Cluster) -> Repo {
        let dir = bin::tempdir();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::create_dir_all(dir.path().join("recipients")).unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let prod = bin::age_key(&dir.path().join("keys"), "prod");
        let dev = bin::age_key(&dir.path().join("keys"), "dev");
        std::fs::write(
            dir.path().join("recipients/prod.yaml"),
            format!("namespaces: [\"t-prod-*\"]\nage:\n  - {}\n", prod.recipient),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("recipients/dev.yaml"),
            format!("namespaces: [\"t-dev-*\"]\nage:\n  - {}\n", dev.recipient),
        )
        .unwrap();
        Repo {
            dir,
            prod,
            dev,
            kubeconfig: c.kubeconfig.clone(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a Secret with `stringData` and encrypts it in place (recipients by namespace).
    pub fn secret(&self, rel: &str, ns: &str, name: &str, data: &[(&str, &str)]) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut y = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: Opaque\nstringData:\n"
        );
        for (k, v) in data {
            y.push_str(&format!("  {k}: \"{v}\"\n"));
        }
        std::fs::write(&p, y).unwrap();
        let o = bin::run(bin::ksec().args(["encrypt", "-i"]).arg(&p));
        assert!(o.status.success(), "encrypt: {}", bin::stderr(&o));
        p
    }

    /// `ksec set` one stringData value (keeps the data key).
    pub fn set(&self, file: &Path, key: &str, value: &str) {
        let o = bin::run(
            bin::ksec()
                .arg("set")
                .arg(file)
                .arg(format!("[\"stringData\"][\"{key}\"]"))
                .arg(format!("\"{value}\""))
                .env("SOPS_AGE_KEY_FILE", self.keys_file()),
        );
        assert!(o.status.success(), "set: {}", bin::stderr(&o));
    }

    /// Both identities in one file.
    pub fn keys_file(&self) -> PathBuf {
        let p = self.path("keys/all.txt");
        if !p.exists() {
            let mut s = std::fs::read_to_string(&self.prod.identity_file).unwrap();
            s.push_str(&std::fs::read_to_string(&self.dev.identity_file).unwrap());
            std::fs::write(&p, s).unwrap();
        }
        p
    }

    /// `ksec apply|diff ARGS --kubeconfig … -o json` with the given identity file.
    pub fn ksec(&self, cmd: &str, identity: &Path, args: &[&str]) -> Output {
        bin::run(
            bin::ksec()
                .arg(cmd)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("--identity")
                .arg(identity)
                .args(args),
        )
    }

    /// `ksec apply -o json …` → (exit code, JSON report, stderr).
    pub fn apply_json(&self, identity: &Path, args: &[&str]) -> (i32, serde_json::Value, String) {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let o = self.ksec("apply", identity, &all);
        let out = bin::stdout(&o);
        let v = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
        (o.status.code().unwrap_or(-1), v, bin::stderr(&o))
    }
}

/// Names in a report list (`applied`, `unchanged`, …) as `ns/name`.
pub fn names(report: &serde_json::Value, list: &str) -> Vec<String> {
    report[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{}/{}",
                        x["namespace"].as_str().unwrap_or(""),
                        x["name"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
