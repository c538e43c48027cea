//! `ksec controller` against failures of the control plane, on a private
//! control plane (scripts/kube-up.sh; the shared test cluster is never
//! restarted or compacted). The API server runs with `--watch-cache=false`,
//! so a compacted resourceVersion reaches the controller's watches as 410 Gone
//! instead of being hidden by the watch cache.
//!
//! (a) The API server is killed while the controller rotates a batch of
//!     Secrets and restarted on the same port: the controller process keeps
//!     running (/healthz answers throughout), every EncryptedSecret ends
//!     Ready, every consumer runs the new hash, and no consumer was rolled
//!     more than once per change (Deployment generations count template changes).
//! (b) etcd compaction: the controller is paused (SIGSTOP) while its watches
//!     are cut (API server restart), objects are created and changed, etcd is
//!     compacted and defragmented (a watch from the old resourceVersion now
//!     gets 410 Gone); resumed, the controller re-lists and syncs everything
//!     that happened in the gap.
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use ksec::controller::EncryptedSecret;
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use serde_json::json;
use support::cluster::controller::{
    content_hash, install_crd, is_ready, put_cr, start_with, template_hash,
};
use support::cluster::{Cluster, FakeKubelet, Health, Repo};

/// A private control plane (etcd, kube-apiserver, kube-controller-manager); stopped on drop.
struct Plane {
    dir: PathBuf,
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

impl Plane {
    fn up() -> Plane {
        let dir = std::env::temp_dir().join(format!("ksec-res-{}", support::cluster::suffix()));
        let o = Command::new(script("kube-up.sh"))
            .arg(&dir)
            .env("KSEC_KUBE_APISERVER_ARGS", "--watch-cache=false")
            .output()
            .expect("run kube-up.sh");
        assert!(
            o.status.success(),
            "kube-up.sh: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Plane { dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn apiserver(&self, how: &str) {
        let o = Command::new(script("kube-up.sh"))
            .arg(how)
            .arg(&self.dir)
            .output()
            .expect("run kube-up.sh");
        assert!(
            o.status.success(),
            "kube-up.sh {how}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// `etcdctl --endpoints <this plane's etcd> ARGS` → stdout.
    fn etcdctl(&self, args: &[&str]) -> String {
        let url = std::fs::read_to_string(self.dir.join("etcd.url")).unwrap();
        let o = Command::new("etcdctl")
            .arg("--endpoints")
            .arg(url.trim())
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl (apt etcd-client, installed by scripts/kube-build.sh)");
        assert!(
            o.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        let _ = Command::new(script("kube-down.sh")).arg(&self.dir).status();
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the controller child this test started.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

#[test]
fn controller_survives_apiserver_restart_and_etcd_compaction() {
    let scenario =
        support::bin::Scenario::new("controller_survives_apiserver_restart_and_etcd_compaction");
    // Same gate as the other cluster tests: skip without the test infrastructure.
    if support::cluster::cluster().is_none() {
        return;
    }
    let plane = Plane::up();
    let c = Cluster::at(plane.kubeconfig());
    install_crd(&c);
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "res");
    const N: usize = 12;
    let mut files = Vec::new();
    for i in 0..N {
        let f = repo.secret(
            &format!("clusters/prod/s{i}.yaml"),
            &ns,
            &format!("s{i}"),
            &[("k", &format!("CANARY-res-{i}-v1"))],
        );
        c.deployment_using(&ns, &format!("d{i}"), &[(&format!("s{i}"), "k")], 1);
        files.push(f);
    }
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    let mut ctl = start_with(&c, &repo, &[&ns], "admin", &[], &[]);
    for (i, f) in files.iter().enumerate() {
        put_cr(&c, &ns, &format!("s{i}"), f, json!({}));
    }
    c.wait_for("the first batch to be Ready", 120, || {
        (0..N).all(|i| is_ready(&c, &ns, &format!("s{i}")))
    });
    for i in 0..N {
        c.wait_rolled_out(&ns, &format!("d{i}"));
    }

    scenario
        .step("(a) Rotate every value; kill the API server once the controller is applying them.");
    // (a) Rotate every value; kill the API server once the controller is applying them.
    for (i, f) in files.iter().enumerate() {
        repo.set(f, "k", &format!("CANARY-res-{i}-v2"));
        put_cr(&c, &ns, &format!("s{i}"), f, json!({}));
    }
    c.wait_for("the controller to start applying the rotation", 60, || {
        (0..N).any(|i| {
            c.secret_data(&ns, &format!("s{i}"))
                .get("k")
                .map(String::as_str)
                == Some(format!("CANARY-res-{i}-v2").as_str())
        })
    });
    plane.apiserver("--kill-apiserver");
    std::thread::sleep(Duration::from_secs(3));
    scenario.step("During the outage: alive, and (by design) still ready — restarting the");
    // During the outage: alive, and (by design) still ready — restarting the
    // pod would not bring the API server back; the watches back off and resume.
    assert!(ctl.alive(), "the controller exited:\n{}", ctl.logs());
    assert_eq!(ctl.get("/healthz").0, 200);
    assert_eq!(ctl.get("/readyz").0, 200);
    plane.apiserver("--start-apiserver");
    c.wait_for("every EncryptedSecret Ready after the restart", 180, || {
        (0..N).all(|i| is_ready(&c, &ns, &format!("s{i}")))
    });
    assert!(ctl.alive(), "the controller exited:\n{}", ctl.logs());
    for i in 0..N {
        let (s, d) = (format!("s{i}"), format!("d{i}"));
        assert_eq!(
            c.secret_data(&ns, &s)["k"],
            format!("CANARY-res-{i}-v2"),
            "{s}"
        );
        c.wait_rolled_out(&ns, &d);
        assert_eq!(
            template_hash(&c, &ns, &d, &s),
            Some(content_hash(&c, &ns, &s)),
            "{d} runs the current hash"
        );
        // Created (1), restarted for the first sync (2), for the rotation (3): no extra rollout.
        let dep = c.deployment(&ns, &d);
        assert_eq!(
            dep.metadata.generation,
            Some(3),
            "{d} rolled more than once per change"
        );
        let rs = c
            .block(
                Api::<ReplicaSet>::namespaced(c.admin.clone(), &ns)
                    .list(&ListParams::default().labels(&format!("app={d}"))),
            )
            .unwrap();
        assert_eq!(rs.items.len(), 3, "{d}: one ReplicaSet per template");
    }

    scenario
        .step("(b) Cut the watches while the controller is paused, change things, compact etcd.");
    // (b) Cut the watches while the controller is paused, change things, compact etcd.
    let crs = Api::<EncryptedSecret>::namespaced(c.admin.clone(), &ns);
    let rv0 = c
        .block(crs.list(&ListParams::default()))
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let pid = ctl.child.id();
    signal(pid, libc::SIGSTOP);
    plane.apiserver("--restart-apiserver");
    const M: usize = 10;
    for j in 0..M {
        let f = repo.secret(
            &format!("clusters/prod/g{j}.yaml"),
            &ns,
            &format!("g{j}"),
            &[("k", &format!("CANARY-gap-{j}"))],
        );
        put_cr(&c, &ns, &format!("g{j}"), &f, json!({}));
    }
    repo.set(&files[0], "k", "CANARY-res-0-v3");
    put_cr(&c, &ns, "s0", &files[0], json!({}));
    let status = plane.etcdctl(&["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&status).expect("etcdctl json");
    let rev = v[0]["Status"]["header"]["revision"]
        .as_i64()
        .expect("revision");
    plane.etcdctl(&["compact", &rev.to_string()]);
    plane.etcdctl(&["defrag"]);
    scenario.step("What the controller's watch will meet when it resumes: 410 Gone.");
    // What the controller's watch will meet when it resumes: 410 Gone.
    let gone = c.block(async {
        match crs.watch(&WatchParams::default().timeout(5), &rv0).await {
            Err(kube::Error::Api(s)) => s.code == 410,
            Err(_) => false,
            Ok(stream) => {
                let mut stream = Box::pin(stream);
                matches!(stream.next().await, Some(Ok(WatchEvent::Error(e))) if e.code == 410)
            }
        }
    });
    assert!(
        gone,
        "a watch from {rv0} after compaction at {rev} should get 410 Gone"
    );
    signal(pid, libc::SIGCONT);

    c.wait_for("every object created in the gap to be Ready", 180, || {
        (0..M).all(|j| is_ready(&c, &ns, &format!("g{j}")))
    });
    for j in 0..M {
        assert_eq!(
            c.secret_data(&ns, &format!("g{j}"))["k"],
            format!("CANARY-gap-{j}")
        );
    }
    c.wait_for("the change made in the gap to be applied", 120, || {
        c.secret_data(&ns, "s0").get("k").map(String::as_str) == Some("CANARY-res-0-v3")
            && is_ready(&c, &ns, "s0")
    });
    c.wait_rolled_out(&ns, "d0");
    assert_eq!(
        template_hash(&c, &ns, "d0", "s0"),
        Some(content_hash(&c, &ns, "s0"))
    );
    assert!(ctl.alive(), "the controller exited:\n{}", ctl.logs());
    let logs = ctl.logs();
    assert!(!logs.contains("CANARY"), "a value leaked into the logs");
}
