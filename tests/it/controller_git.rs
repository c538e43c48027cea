//! The controller's Git source against the real kube-apiserver and real git:
//! a bare repository served over file://, `git daemon` (git://) and
//! `git http-backend` behind a small token-checking HTTP server on
//! 127.0.0.1. Commit a rotation → Secret updated → consumer rolled → status
//! Ready with the new revision; a file for a namespace outside the set →
//! NamespaceNotAllowed; a tampered file → MacMismatch with the applied
//! Secret untouched; hand edits reverted (enforce) or reported (report);
//! removed files orphaned or deleted; files holding several Secrets
//! (multi-document, `List`) handled per Secret; webhook signatures checked.
//! Latencies (commit → Secret updated) are printed.
use crate::support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::cluster::controller::{Running, free_port, start_with, template_hash};
use support::cluster::{Cluster, FakeKubelet, Health, Repo, cluster};

/// A work tree (the [`Repo`] folder: recipients/ and secrets/, never keys/)
/// pushing to a bare repository.
struct Git {
    bare: PathBuf,
    work: PathBuf,
    _dir: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

impl Git {
    fn new(repo: &Repo) -> Git {
        let dir = support::bin::tempdir();
        let bare = dir.path().join("origin.git");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--bare", "-b", "main"]);
        let work = repo.dir.path().to_path_buf();
        let _ = std::fs::remove_dir_all(work.join(".git"));
        git(&work, &["init", "-b", "main"]);
        std::fs::write(work.join(".gitignore"), "keys/\n").unwrap();
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Git {
            bare,
            work,
            _dir: dir,
        }
    }

    /// Commits everything (keys/ ignored) and pushes; returns the commit id.
    fn commit(&self, msg: &str) -> String {
        git(&self.work, &["add", "-A", "."]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        git(&self.work, &["push", "-q", "origin", "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

/// A plaintext Secret manifest with annotations (`ksec.io/drift`, …).
fn secret_yaml(ns: &str, name: &str, data: &[(&str, &str)], ann: &[(&str, &str)]) -> String {
    let mut y =
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n");
    if !ann.is_empty() {
        y.push_str("  annotations:\n");
        for (k, v) in ann {
            y.push_str(&format!("    {k}: \"{v}\"\n"));
        }
    }
    y.push_str("type: Opaque\nstringData:\n");
    for (k, v) in data {
        y.push_str(&format!("  {k}: \"{v}\"\n"));
    }
    y
}

/// A `kind: List` of manifests.
fn list_yaml(items: &[String]) -> String {
    let mut y = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for item in items {
        for (i, line) in item.lines().enumerate() {
            y.push_str(if i == 0 { "  - " } else { "    " });
            y.push_str(line);
            y.push('\n');
        }
    }
    y
}

/// Writes a manifest (one or several documents) and encrypts it in place.
fn encrypted_file(repo: &Repo, rel: &str, text: &str) -> PathBuf {
    encrypted_file_with(repo, rel, text, &[])
}

/// [`encrypted_file`] with more `ksec encrypt` arguments.
fn encrypted_file_with(repo: &Repo, rel: &str, text: &str, args: &[&str]) -> PathBuf {
    let p = repo.path(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    let o = support::bin::run(
        support::bin::ksec()
            .args(["encrypt", "-i"])
            .args(args)
            .arg(&p),
    );
    assert!(o.status.success(), "encrypt: {}", support::bin::stderr(&o));
    p
}

/// An encrypted Secret with annotations (`ksec.io/drift`, …).
fn secret_with(
    repo: &Repo,
    rel: &str,
    ns: &str,
    name: &str,
    data: &[(&str, &str)],
    ann: &[(&str, &str)],
) -> PathBuf {
    encrypted_file(repo, rel, &secret_yaml(ns, name, data, ann))
}

/// The status ConfigMap's status.json.
fn status(c: &Cluster, ns: &str) -> Option<serde_json::Value> {
    let cm = c
        .block(Api::<ConfigMap>::namespaced(c.admin.clone(), ns).get_opt("ksec-git-default"))
        .unwrap()?;
    let d = cm.data?;
    serde_json::from_str(d.get("status.json")?).ok()
}

fn cond(st: &serde_json::Value, t: &str) -> (String, String) {
    st["conditions"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == t))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default()
}

fn file_state(st: &serde_json::Value, path: &str) -> (String, String) {
    st["files"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["path"] == path))
        .map(|f| {
            (
                f["state"].as_str().unwrap_or("").to_string(),
                f["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default()
}

/// The status entries of a file: `namespace/name` → (state, reason); a
/// file-level entry (no Secret) is listed under "".
fn file_entries(
    st: &serde_json::Value,
    path: &str,
) -> std::collections::BTreeMap<String, (String, String)> {
    st["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["path"] == path)
        .map(|f| {
            (
                f["secret"].as_str().unwrap_or("").to_string(),
                (
                    f["state"].as_str().unwrap_or("").to_string(),
                    f["reason"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

/// Waits for Ready=`want` at revision `rev` (status.lastSyncedRevision).
fn wait_status(c: &Cluster, ns: &str, rev: &str, want: (&str, &str)) -> serde_json::Value {
    let mut last = None;
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        if let Some(st) = status(c, ns) {
            if st["lastSyncedRevision"] == rev
                && cond(&st, "Ready") == (want.0.into(), want.1.into())
            {
                return st;
            }
            last = Some(st);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("status never reached Ready={want:?} at {rev}; last: {last:#?}");
}

fn start_git(c: &Cluster, repo: &Repo, ns: &str, url: &str, extra: &[&str]) -> Running {
    let mut args = vec!["--git-url", url, "--git-path", "secrets"];
    args.extend_from_slice(extra);
    start_with(c, repo, &[ns], "admin", &args, &[])
}

fn hand_edit(c: &Cluster, ns: &str, name: &str, key: &str, value: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(value);
    c.block(Api::<Secret>::namespaced(c.admin.clone(), ns).patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {key: b64}})),
    ))
    .unwrap();
}

/// Everything the controller said, for leak checks.
fn all_output(c: &Cluster, r: &Running, ns: &str) -> String {
    let mut s = r.logs();
    s.push_str(&r.get("/metrics").1);
    s.push_str(&format!("{:?}", status(c, ns)));
    for e in c.events(ns) {
        s.push_str(&format!("{:?} {:?}", e.reason, e.message));
    }
    s
}

#[test]
fn file_url_rotation_refusals_drift_and_prune() {
    let scenario = support::bin::Scenario::new("file_url_rotation_refusals_drift_and_prune");
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "git");
    let outside = c.namespace("prod", "gitout");
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    let g = Git::new(&repo);
    let db = repo.secret(
        "secrets/db.yaml",
        &ns,
        "db",
        &[("password", "CANARY-git-v1")],
    );
    secret_with(
        &repo,
        "secrets/reported.yaml",
        &ns,
        "reported",
        &[("token", "CANARY-git-rep")],
        &[("ksec.io/drift", "report")],
    );
    secret_with(
        &repo,
        "secrets/temp.yaml",
        &ns,
        "temp",
        &[("k", "CANARY-git-temp")],
        &[("ksec.io/deletion-policy", "Delete")],
    );
    repo.secret(
        "secrets/kept.yaml",
        &ns,
        "kept",
        &[("k", "CANARY-git-kept")],
    );
    repo.secret(
        "secrets/outside.yaml",
        &outside,
        "x",
        &[("k", "CANARY-git-out")],
    );
    scenario.step("Another environment's file in the same repository: skipped, not refused.");
    // Another environment's file in the same repository: skipped, not refused.
    let dev = format!("t-dev-git-{}", support::cluster::suffix());
    repo.secret("secrets/dev.yaml", &dev, "d", &[("k", "CANARY-git-dev")]);
    c.deployment_using(&ns, "app", &[("db", "password")], 1);
    let rev1 = g.commit("first");

    let r = start_git(&c, &repo, &ns, &g.file_url(), &["--git-interval", "2s"]);
    let st = wait_status(&c, &ns, &rev1, ("False", "NamespaceNotAllowed"));
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-git-v1");
    assert_eq!(
        file_state(&st, "secrets/outside.yaml"),
        ("refused".into(), "NamespaceNotAllowed".into())
    );
    assert_eq!(file_state(&st, "secrets/dev.yaml").0, "skipped");
    assert!(c.secret(&outside, "x").is_none(), "refused Secret written");
    c.wait_for("a NamespaceNotAllowed event", 30, || {
        c.events(&ns)
            .iter()
            .any(|e| e.reason.as_deref() == Some("NamespaceNotAllowed"))
    });
    let s = c.secret(&ns, "db").unwrap();
    let ann = s.metadata.annotations.clone().unwrap();
    assert_eq!(ann["ksec.io/source-path"], "secrets/db.yaml");
    assert_eq!(ann["ksec.io/source-revision"], rev1);
    assert_eq!(s.metadata.labels.unwrap()["ksec.io/git-source"], "default");
    c.wait_rolled_out(&ns, "app");

    scenario.step("The refused file goes: Ready.");
    // The refused file goes: Ready.
    std::fs::remove_file(repo.path("secrets/outside.yaml")).unwrap();
    let rev2 = g.commit("drop outside");
    wait_status(&c, &ns, &rev2, ("True", "Synced"));

    scenario
        .step("Rotation via the interval: Secret updated, consumer rolled, status and metrics.");
    // Rotation via the interval: Secret updated, consumer rolled, status and metrics.
    let hash_before =
        c.secret(&ns, "db").unwrap().metadata.annotations.unwrap()["ksec.io/content-hash"].clone();
    repo.set(&db, "password", "CANARY-git-v2");
    let t0 = Instant::now();
    let rev3 = g.commit("rotate");
    c.wait_for("the rotated value", 60, || {
        c.secret_data(&ns, "db").get("password").map(String::as_str) == Some("CANARY-git-v2")
    });
    let interval_latency = t0.elapsed();
    wait_status(&c, &ns, &rev3, ("True", "Synced"));
    c.wait_for("the consumer to be rolled", 60, || {
        template_hash(&c, &ns, "app", "db").is_some_and(|h| h != hash_before)
    });
    c.wait_rolled_out(&ns, "app");
    let m = r.get("/metrics").1;
    assert!(
        m.contains(&format!(
            "ksec_controller_git_revision_info{{revision=\"{rev3}\"}} 1"
        )),
        "{m}"
    );
    assert!(
        r.metric("ksec_controller_git_last_sync_timestamp_seconds")
            .unwrap()
            > 1.0e9
    );
    assert!(
        r.metric("ksec_controller_restarts_total{outcome=\"verified\"}")
            .unwrap()
            >= 1.0
    );
    eprintln!("commit → Secret updated via interval (2s): {interval_latency:?}");

    scenario.step("Tampered (name kept, MAC broken): refused, the applied Secret untouched.");
    // Tampered (name kept, MAC broken): refused, the applied Secret untouched.
    let text = std::fs::read_to_string(&db).unwrap();
    assert!(text.contains("type: Opaque\n"));
    std::fs::write(&db, text.replace("type: Opaque\n", "type: Opaque2\n")).unwrap();
    let rev4 = g.commit("tamper");
    let st = wait_status(&c, &ns, &rev4, ("False", "MacMismatch"));
    assert_eq!(
        file_state(&st, "secrets/db.yaml"),
        ("refused".into(), "MacMismatch".into())
    );
    let s = c
        .secret(&ns, "db")
        .expect("a refused file keeps its Secret");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(c.secret_data(&ns, "db")["password"], "CANARY-git-v2");
    assert!(
        r.metric("ksec_controller_sync_errors_total{reason=\"MacMismatch\"}")
            .unwrap()
            >= 1.0
    );
    std::fs::write(&db, text).unwrap();
    let rev5 = g.commit("untamper");
    wait_status(&c, &ns, &rev5, ("True", "Synced"));

    scenario.step("Drift: enforce reverts, report keeps and reports.");
    // Drift: enforce reverts, report keeps and reports.
    hand_edit(&c, &ns, "db", "password", "hand-edit");
    hand_edit(&c, &ns, "reported", "token", "hand-edit");
    c.wait_for("the hand edit of db to be reverted", 30, || {
        c.secret_data(&ns, "db").get("password").map(String::as_str) == Some("CANARY-git-v2")
    });
    c.wait_for("the drift of reported to be reported", 30, || {
        status(&c, &ns).is_some_and(|st| {
            file_state(&st, "secrets/reported.yaml").0 == "drifted"
                && cond(&st, "Drifted").0 == "True"
        })
    });
    assert_eq!(c.secret_data(&ns, "reported")["token"], "hand-edit");
    c.wait_for("a DriftDetected event", 30, || {
        c.events(&ns).iter().any(|e| {
            e.reason.as_deref() == Some("DriftDetected")
                && e.message.as_deref().is_some_and(|m| m.contains("~token"))
        })
    });
    assert!(r.metric("ksec_controller_drift_detected_total").unwrap() >= 1.0);

    scenario.step("Removed files: Delete deletes, Orphan keeps (marked).");
    // Removed files: Delete deletes, Orphan keeps (marked).
    std::fs::remove_file(repo.path("secrets/temp.yaml")).unwrap();
    std::fs::remove_file(repo.path("secrets/kept.yaml")).unwrap();
    let rev6 = g.commit("remove");
    wait_status(&c, &ns, &rev6, ("True", "Synced"));
    c.wait_for("temp to be deleted", 30, || c.secret(&ns, "temp").is_none());
    let kept = c.secret(&ns, "kept").expect("orphaned Secret kept");
    assert_eq!(kept.metadata.annotations.unwrap()["ksec.io/orphaned"], rev6);
    scenario.step("The file comes back: taken up again, the mark cleared.");
    // The file comes back: taken up again, the mark cleared.
    git(&g.work, &["checkout", &rev5, "--", "secrets/kept.yaml"]);
    let rev7 = g.commit("restore kept");
    wait_status(&c, &ns, &rev7, ("True", "Synced"));
    c.wait_for("the orphan mark to be cleared", 30, || {
        c.secret(&ns, "kept").is_some_and(|s| {
            let a = s.metadata.annotations.unwrap_or_default();
            !a.contains_key("ksec.io/orphaned") && a["ksec.io/source-revision"] == rev7
        })
    });

    let out = all_output(&c, &r, &ns);
    for canary in [
        "CANARY-git-v1",
        "CANARY-git-v2",
        "CANARY-git-rep",
        "CANARY-git-temp",
        "CANARY-git-out",
    ] {
        assert!(!out.contains(canary), "{canary} leaked");
    }
}

/// Files holding several Secrets, as `ksec apply` takes them: a
/// multi-document file and a `List`, one status entry per Secret. A rotation
/// of one document rewrites that Secret only; a removed document is pruned
/// by its policy; the namespace boundary is per Secret; a tampered file
/// refuses all of its Secrets.
#[test]
fn files_with_several_secrets() {
    let scenario = support::bin::Scenario::new("files_with_several_secrets");
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "gitmulti");
    let outside = c.namespace("prod", "gitmout");
    let g = Git::new(&repo);
    let doc = |name: &str, v: &str, ann: &[(&str, &str)]| secret_yaml(&ns, name, &[("k", v)], ann);
    let delete = [("ksec.io/deletion-policy", "Delete")];
    let multi = encrypted_file(
        &repo,
        "secrets/multi.yaml",
        &[
            doc("m1", "CANARY-multi-1", &[]),
            doc("m2", "CANARY-multi-2", &delete),
        ]
        .join("---\n"),
    );
    encrypted_file(
        &repo,
        "secrets/list.yaml",
        &list_yaml(&[
            doc("l1", "CANARY-list-1", &[]),
            doc("l2", "CANARY-list-2", &[]),
        ]),
    );
    scenario.step("One document for a namespace outside the controller's.");
    // One document for a namespace outside the controller's.
    encrypted_file(
        &repo,
        "secrets/mixed.yaml",
        &[
            doc("x1", "CANARY-mixed-in", &[]),
            secret_yaml(&outside, "x2", &[("k", "CANARY-mixed-out")], &[]),
        ]
        .join("---\n"),
    );
    scenario.step("A document without a namespace: the controller's only one.");
    // A document without a namespace: the controller's only one.
    encrypted_file_with(
        &repo,
        "secrets/defaulted.yaml",
        &[
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: d1\ntype: Opaque\nstringData:\n  k: \"CANARY-default-1\"\n".to_string(),
            doc("d2", "CANARY-default-2", &[]),
        ]
        .join("---\n"),
        &["--env", "prod"],
    );
    let rev1 = g.commit("several per file");
    let r = start_git(&c, &repo, &ns, &g.file_url(), &["--git-interval", "2s"]);
    let st = wait_status(&c, &ns, &rev1, ("False", "NamespaceNotAllowed"));
    for (name, v) in [
        ("m1", "CANARY-multi-1"),
        ("m2", "CANARY-multi-2"),
        ("l1", "CANARY-list-1"),
        ("l2", "CANARY-list-2"),
        ("x1", "CANARY-mixed-in"),
        ("d1", "CANARY-default-1"),
        ("d2", "CANARY-default-2"),
    ] {
        assert_eq!(c.secret_data(&ns, name)["k"], v, "{name}");
    }
    assert!(c.secret(&outside, "x2").is_none(), "refused Secret written");
    let ok = |e: &(String, String)| (e.0 == "applied" || e.0 == "unchanged") && e.1.is_empty();
    let id = |name: &str| format!("{ns}/{name}");
    let m = file_entries(&st, "secrets/multi.yaml");
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(ok(&m[&id("m1")]) && ok(&m[&id("m2")]), "{m:?}");
    let l = file_entries(&st, "secrets/list.yaml");
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(ok(&l[&id("l1")]) && ok(&l[&id("l2")]), "{l:?}");
    let x = file_entries(&st, "secrets/mixed.yaml");
    assert_eq!(x.len(), 2, "{x:?}");
    assert!(ok(&x[&id("x1")]), "{x:?}");
    assert_eq!(
        x[&format!("{outside}/x2")],
        ("refused".into(), "NamespaceNotAllowed".into())
    );
    let d = file_entries(&st, "secrets/defaulted.yaml");
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(ok(&d[&id("d1")]) && ok(&d[&id("d2")]), "{d:?}");
    let s = c.secret(&ns, "l2").unwrap();
    let ann = s.metadata.annotations.unwrap();
    assert_eq!(ann["ksec.io/source-path"], "secrets/list.yaml");
    assert_eq!(ann["ksec.io/source-revision"], rev1);
    assert!(ann.contains_key("ksec.io/source-digest"));
    scenario.step("The outside document goes: Ready.");
    // The outside document goes: Ready.
    encrypted_file(
        &repo,
        "secrets/mixed.yaml",
        &doc("x1", "CANARY-mixed-in", &[]),
    );
    let rev2 = g.commit("drop the outside document");
    let st = wait_status(&c, &ns, &rev2, ("True", "Synced"));
    assert_eq!(file_entries(&st, "secrets/mixed.yaml").len(), 1);
    assert_eq!(c.secret_data(&ns, "x1")["k"], "CANARY-mixed-in");
    assert!(c.secret(&outside, "x2").is_none());

    scenario.step("One value of the multi-document file changes (`ksec set` rewrites");
    // One value of the multi-document file changes (`ksec set` rewrites
    // the first document only): that Secret is updated, the others are
    // not written at all.
    let rv = |name: &str| c.secret(&ns, name).unwrap().metadata.resource_version;
    let (m2_rv, l1_rv, l2_rv) = (rv("m2"), rv("l1"), rv("l2"));
    repo.set(&multi, "k", "CANARY-multi-1b");
    let rev3 = g.commit("rotate m1");
    c.wait_for("m1 rotated", 60, || {
        c.secret_data(&ns, "m1").get("k").map(String::as_str) == Some("CANARY-multi-1b")
    });
    let st = wait_status(&c, &ns, &rev3, ("True", "Synced"));
    scenario.step("A few more intervals and re-checks: still nothing written.");
    // A few more intervals and re-checks: still nothing written.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(rv("m2"), m2_rv, "m2 was written");
    assert_eq!((rv("l1"), rv("l2")), (l1_rv, l2_rv), "the List was written");
    assert_eq!(c.secret_data(&ns, "m2")["k"], "CANARY-multi-2");
    let m = file_entries(&st, "secrets/multi.yaml");
    assert!(ok(&m[&id("m1")]) && ok(&m[&id("m2")]), "{m:?}");
    let a = c.secret(&ns, "m1").unwrap().metadata.annotations.unwrap();
    assert_eq!(a["ksec.io/source-revision"], rev3);
    let a = c.secret(&ns, "m2").unwrap().metadata.annotations.unwrap();
    assert_eq!(
        a["ksec.io/source-revision"], rev1,
        "m2's document did not change"
    );

    scenario.step("Removed documents: Delete deletes, Orphan (the default) keeps, marked.");
    // Removed documents: Delete deletes, Orphan (the default) keeps, marked.
    encrypted_file(
        &repo,
        "secrets/multi.yaml",
        &doc("m1", "CANARY-multi-1b", &[]),
    );
    encrypted_file(
        &repo,
        "secrets/list.yaml",
        &list_yaml(&[doc("l1", "CANARY-list-1", &[])]),
    );
    let rev4 = g.commit("remove m2 and l2");
    let st = wait_status(&c, &ns, &rev4, ("True", "Synced"));
    c.wait_for("m2 to be deleted", 30, || c.secret(&ns, "m2").is_none());
    let l2 = c.secret(&ns, "l2").expect("orphaned Secret kept");
    assert_eq!(l2.metadata.annotations.unwrap()["ksec.io/orphaned"], rev4);
    assert_eq!(c.secret_data(&ns, "l2")["k"], "CANARY-list-2");
    assert_eq!(c.secret_data(&ns, "m1")["k"], "CANARY-multi-1b");
    assert_eq!(c.secret_data(&ns, "l1")["k"], "CANARY-list-1");
    let m = file_entries(&st, "secrets/multi.yaml");
    assert_eq!(m.keys().collect::<Vec<_>>(), [&id("m1")]);
    assert!(
        !c.secret(&ns, "m1")
            .unwrap()
            .metadata
            .annotations
            .unwrap()
            .contains_key("ksec.io/orphaned")
    );

    scenario.step("A tampered multi-document file (one document's ciphertext replaced by");
    // A tampered multi-document file (one document's ciphertext replaced by
    // the other's, valid on its own): the MAC fails, none of it is applied.
    let t = encrypted_file(
        &repo,
        "secrets/tampered.yaml",
        &[
            doc("t1", "CANARY-tamper-1", &[]),
            doc("t2", "CANARY-tamper-2", &[]),
        ]
        .join("---\n"),
    );
    let text = std::fs::read_to_string(&t).unwrap();
    let enc_k = |d: &str| {
        d.lines()
            .find(|l| l.trim_start().starts_with("k: ENC["))
            .unwrap_or_else(|| panic!("no encrypted k in {d}"))
            .to_string()
    };
    let docs: Vec<&str> = text.split("\n---\n").collect();
    assert_eq!(docs.len(), 2, "{text}");
    let (k1, k2) = (enc_k(docs[0]), enc_k(docs[1]));
    assert_ne!(k1, k2);
    let tampered = format!("{}\n---\n{}", docs[0], docs[1].replace(&k2, &k1));
    std::fs::write(&t, tampered).unwrap();
    let rev5 = g.commit("tampered");
    let st = wait_status(&c, &ns, &rev5, ("False", "MacMismatch"));
    let tf = file_entries(&st, "secrets/tampered.yaml");
    assert_eq!(tf.len(), 2, "{tf:?}");
    for name in ["t1", "t2"] {
        assert_eq!(
            tf[&id(name)],
            ("refused".into(), "MacMismatch".into()),
            "{tf:?}"
        );
        assert!(c.secret(&ns, name).is_none(), "{name} applied");
    }
    assert_eq!(c.secret_data(&ns, "m1")["k"], "CANARY-multi-1b");

    let out = all_output(&c, &r, &ns);
    for canary in [
        "CANARY-multi-",
        "CANARY-list-",
        "CANARY-mixed-",
        "CANARY-tamper-",
        "CANARY-default-",
    ] {
        assert!(!out.contains(canary), "{canary} leaked");
    }
}

/// A test CA and a server certificate for 127.0.0.1 (openssl) → (ca, cert, key).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ksec test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&a);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&a);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

/// A tiny HTTPS server in front of `git http-backend` that wants Basic auth
/// with the token (as GitHub and GitLab do).
const HTTP_GIT: &str = r#"
import base64, http.server, os, ssl, subprocess, sys
root, port, token, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
want = "Basic " + base64.b64encode(("x-access-token:" + token).encode()).decode()
class H(http.server.BaseHTTPRequestHandler):
    def handle_one(self, method):
        if self.headers.get("Authorization") != want:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                   QUERY_STRING=query, REQUEST_METHOD=method, REMOTE_USER="ci",
                   CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)),
                   HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""),
                   GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        status = 200
        hdrs = []
        for line in head.split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                hdrs.append((k, v.strip()))
        self.send_response(status)
        for k, v in hdrs:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)
    def do_GET(self): self.handle_one("GET")
    def do_POST(self): self.handle_one("POST")
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "server on {port} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn https_token_and_git_daemon_transports() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let g = Git::new(&repo);
    let ns = c.namespace("prod", "gith");
    repo.secret(
        "secrets/api.yaml",
        &ns,
        "api",
        &[("key", "CANARY-git-http")],
    );
    let rev = g.commit("first");
    let base = g.bare.parent().unwrap().to_path_buf();

    // https (private CA), token over Basic auth.
    let (ca, cert, key) = tls_files(&base);
    let script = base.join("http_git.py");
    std::fs::write(&script, HTTP_GIT).unwrap();
    let port = free_port();
    let token = "tok-CANARY-0123456789";
    let _http = Server(
        Command::new("python3")
            .arg(&script)
            .arg(&base)
            .arg(port.to_string())
            .arg(token)
            .arg(&cert)
            .arg(&key)
            .spawn()
            .expect("python3"),
    );
    wait_port(port);
    let url = format!("https://127.0.0.1:{port}/origin.git");
    let ca = ca.to_str().unwrap();
    let bad = base.join("bad-token");
    std::fs::write(&bad, "wrong-token-CANARY\n").unwrap();
    let r = start_git(
        &c,
        &repo,
        &ns,
        &url,
        &[
            "--git-token-file",
            bad.to_str().unwrap(),
            "--git-ca-file",
            ca,
        ],
    );
    c.wait_for("a FetchFailed status", 30, || {
        status(&c, &ns)
            .is_some_and(|st| cond(&st, "Ready") == ("False".into(), "FetchFailed".into()))
    });
    let st = status(&c, &ns).unwrap();
    let msg = st["conditions"].to_string();
    eprintln!("wrong token: {msg}");
    assert!(
        msg.contains("127.0.0.1") && !msg.contains("wrong-token"),
        "{msg}"
    );
    assert!(c.secret(&ns, "api").is_none());
    let out = all_output(&c, &r, &ns);
    assert!(!out.contains("wrong-token-CANARY"), "token leaked");
    drop(r);

    let good = base.join("token");
    std::fs::write(&good, format!("{token}\n")).unwrap();
    let t0 = Instant::now();
    let r = start_git(
        &c,
        &repo,
        &ns,
        &url,
        &[
            "--git-token-file",
            good.to_str().unwrap(),
            "--git-ca-file",
            ca,
        ],
    );
    wait_status(&c, &ns, &rev, ("True", "Synced"));
    eprintln!("http+token: start → synced {:?}", t0.elapsed());
    assert_eq!(c.secret_data(&ns, "api")["key"], "CANARY-git-http");
    let out = all_output(&c, &r, &ns);
    assert!(!out.contains(token), "token leaked");
    drop(r);

    // git:// (git daemon), a second namespace.
    let ns2 = c.namespace("prod", "gitd");
    repo.secret(
        "secrets/api.yaml",
        &ns2,
        "api",
        &[("key", "CANARY-git-daemon")],
    );
    let rev2 = g.commit("move to ns2");
    let dport = free_port();
    // git-daemon itself: `git daemon` would run it as a child that killing
    // `git` leaves behind (holding the test's output pipe open).
    let exec_path = git(&base, &["--exec-path"]);
    let _daemon = Server(
        Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={dport}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(&base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon"),
    );
    wait_port(dport);
    let r = start_git(
        &c,
        &repo,
        &ns2,
        &format!("git://127.0.0.1:{dport}/origin.git"),
        &[],
    );
    wait_status(&c, &ns2, &rev2, ("True", "Synced"));
    assert_eq!(c.secret_data(&ns2, "api")["key"], "CANARY-git-daemon");
    let fetch = r
        .metric("ksec_controller_git_fetch_duration_seconds_sum")
        .unwrap();
    let n = r
        .metric("ksec_controller_git_fetch_duration_seconds_count")
        .unwrap();
    eprintln!(
        "git:// fetch time: {:.1} ms average over {n}",
        fetch / n * 1000.0
    );
}

fn post_hook(r: &Running, headers: &[(&str, String)], body: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(&r.metrics).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = format!(
        "POST /hook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn github_sig(secret: &[u8], body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    m.update(body.as_bytes());
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

#[test]
fn webhook_triggers_an_immediate_sync_only_when_signed() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let g = Git::new(&repo);
    let ns = c.namespace("prod", "gitw");
    let f = repo.secret("secrets/w.yaml", &ns, "w", &[("k", "CANARY-hook-v1")]);
    let rev = g.commit("first");
    let secret_file = g.bare.parent().unwrap().join("hook-secret");
    std::fs::write(&secret_file, "hook-CANARY-secret\n").unwrap();
    // An interval far beyond the test: only the webhook can sync again.
    let r = start_git(
        &c,
        &repo,
        &ns,
        &g.file_url(),
        &[
            "--git-interval",
            "1h",
            "--webhook-secret-file",
            secret_file.to_str().unwrap(),
        ],
    );
    wait_status(&c, &ns, &rev, ("True", "Synced"));
    repo.set(&f, "k", "CANARY-hook-v2");
    let rev2 = g.commit("rotate");
    let body = r#"{"ref":"refs/heads/main"}"#;
    assert_eq!(post_hook(&r, &[], body), 401);
    assert_eq!(
        post_hook(
            &r,
            &[("X-Hub-Signature-256", github_sig(b"wrong", body))],
            body
        ),
        401
    );
    assert_eq!(
        post_hook(&r, &[("X-Gitlab-Token", "nope".into())], body),
        401
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.secret_data(&ns, "w")["k"],
        "CANARY-hook-v1",
        "an unauthenticated hook synced"
    );
    // Another branch: acknowledged, ignored.
    let other = r#"{"ref":"refs/heads/feature"}"#;
    assert_eq!(
        post_hook(
            &r,
            &[(
                "X-Hub-Signature-256",
                github_sig(b"hook-CANARY-secret", other)
            )],
            other
        ),
        202
    );
    let t0 = Instant::now();
    assert_eq!(
        post_hook(
            &r,
            &[(
                "X-Hub-Signature-256",
                github_sig(b"hook-CANARY-secret", body)
            )],
            body
        ),
        202
    );
    c.wait_for("the webhook-triggered rotation", 10, || {
        c.secret_data(&ns, "w").get("k").map(String::as_str) == Some("CANARY-hook-v2")
    });
    let latency = t0.elapsed();
    eprintln!("webhook → Secret updated: {latency:?}");
    assert!(
        latency < Duration::from_secs(3),
        "webhook sync took {latency:?}"
    );
    wait_status(&c, &ns, &rev2, ("True", "Synced"));
    // GitLab's token header works too.
    repo.set(&f, "k", "CANARY-hook-v3");
    g.commit("rotate again");
    assert_eq!(
        post_hook(&r, &[("X-Gitlab-Token", "hook-CANARY-secret".into())], body),
        202
    );
    c.wait_for("the GitLab-triggered rotation", 10, || {
        c.secret_data(&ns, "w").get("k").map(String::as_str) == Some("CANARY-hook-v3")
    });
    assert_eq!(
        r.metric("ksec_controller_git_webhook_requests_total{result=\"unauthorized\"}"),
        Some(3.0)
    );
    // No fetch is due for an hour: a hand edit is reverted through the Secret watch.
    let t0 = Instant::now();
    hand_edit(&c, &ns, "w", "k", "hand-edit");
    c.wait_for("the watch-triggered revert", 10, || {
        c.secret_data(&ns, "w").get("k").map(String::as_str) == Some("CANARY-hook-v3")
    });
    eprintln!(
        "hand edit → reverted (enforce, Secret watch): {:?}",
        t0.elapsed()
    );
    let out = all_output(&c, &r, &ns);
    assert!(
        !out.contains("hook-CANARY-secret") && !out.contains("CANARY-hook-v"),
        "leak"
    );
}

#[test]
fn ssh_deploy_key() {
    let Some(c) = cluster() else { return };
    let Some(sshd) = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        eprintln!("SKIP: sshd not installed (scripts/test-deps.sh installs openssh-server)");
        return;
    };
    let repo = Repo::new(&c);
    let g = Git::new(&repo);
    let ns = c.namespace("prod", "gits");
    repo.secret("secrets/s.yaml", &ns, "s", &[("k", "CANARY-git-ssh")]);
    let rev = g.commit("first");
    let d = g.bare.parent().unwrap().to_path_buf();
    let keygen = |name: &str| {
        let p = d.join(name);
        let o = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(o.status.success());
        p
    };
    let host = keygen("host_key");
    let client = keygen("deploy_key");
    std::fs::copy(client.with_extension("pub"), d.join("authorized_keys")).unwrap();
    let port = free_port();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let cfg = d.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nAllowUsers {}\n",
            host.display(),
            d.join("authorized_keys").display(),
            d.join("sshd.pid").display(),
            user.trim()
        ),
    )
    .unwrap();
    // sshd (as root) insists on its privilege separation directory.
    if !Path::new("/run/sshd").exists() {
        let _ = std::fs::create_dir_all("/run/sshd");
    }
    let log = std::fs::File::create(d.join("sshd.log")).unwrap();
    let _sshd = Server(
        Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stderr(log)
            .spawn()
            .expect("sshd"),
    );
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > end {
            let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
            eprintln!("SKIP: sshd did not start on 127.0.0.1:{port}: {log}");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let pubkey = std::fs::read_to_string(host.with_extension("pub")).unwrap();
    let kh = d.join("known_hosts");
    std::fs::write(&kh, format!("[127.0.0.1]:{port} {}", pubkey.trim())).unwrap();
    let url = format!("ssh://{}@127.0.0.1:{port}{}", user.trim(), g.bare.display());
    let r = start_git(
        &c,
        &repo,
        &ns,
        &url,
        &[
            "--git-ssh-key",
            client.to_str().unwrap(),
            "--git-known-hosts",
            kh.to_str().unwrap(),
        ],
    );
    wait_status(&c, &ns, &rev, ("True", "Synced"));
    assert_eq!(c.secret_data(&ns, "s")["k"], "CANARY-git-ssh");
    drop(r);
    // A known_hosts that pins another key: refused, nothing written.
    let ns2 = c.namespace("prod", "gits2");
    repo.secret("secrets/s.yaml", &ns2, "s", &[("k", "CANARY-git-ssh2")]);
    g.commit("ns2");
    let other = keygen("other_host");
    std::fs::write(
        &kh,
        format!(
            "[127.0.0.1]:{port} {}",
            std::fs::read_to_string(other.with_extension("pub"))
                .unwrap()
                .trim()
        ),
    )
    .unwrap();
    let _r = start_git(
        &c,
        &repo,
        &ns2,
        &url,
        &[
            "--git-ssh-key",
            client.to_str().unwrap(),
            "--git-known-hosts",
            kh.to_str().unwrap(),
        ],
    );
    c.wait_for("FetchFailed with a wrong host key", 30, || {
        status(&c, &ns2).is_some_and(|st| cond(&st, "Ready").1 == "FetchFailed")
    });
    assert!(c.secret(&ns2, "s").is_none());
}

/// The Role shipped in examples/deploy is enough for the Git source: status
/// ConfigMap, events, apply, consumer restart and deletion policy Delete.
#[test]
fn shipped_role_is_enough_for_the_git_source() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let g = Git::new(&repo);
    let ns = c.namespace("prod", "gitrbac");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/role.yaml"),
    )
    .unwrap();
    for d in ksec::sops::store::yaml::parse(&text).unwrap().0 {
        let mut j = ksec::sops::Value::Map(d).to_json();
        j["metadata"]["namespace"] = json!(ns);
        if j["kind"] == "RoleBinding" {
            j["metadata"]["name"] = json!("ksec-controller-git");
            j["subjects"] = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "limited"}]);
        }
        c.create(j);
    }
    let f = repo.secret(
        "secrets/api.yaml",
        &ns,
        "api",
        &[("token", "CANARY-gitrbac-1")],
    );
    secret_with(
        &repo,
        "secrets/tmp.yaml",
        &ns,
        "tmp",
        &[("k", "CANARY-gitrbac-t")],
        &[("ksec.io/deletion-policy", "Delete")],
    );
    c.deployment_using(&ns, "api", &[("api", "token")], 1);
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    c.wait_rolled_out(&ns, "api");
    let rev = g.commit("first");
    let url = g.file_url();
    let r = start_with(
        &c,
        &repo,
        &[&ns],
        "limited",
        &[
            "--git-url",
            &url,
            "--git-path",
            "secrets",
            "--git-interval",
            "1s",
        ],
        &[],
    );
    wait_status(&c, &ns, &rev, ("True", "Synced"));
    repo.set(&f, "token", "CANARY-gitrbac-2");
    std::fs::remove_file(repo.path("secrets/tmp.yaml")).unwrap();
    let rev2 = g.commit("rotate and remove");
    wait_status(&c, &ns, &rev2, ("True", "Synced"));
    assert_eq!(c.secret_data(&ns, "api")["token"], "CANARY-gitrbac-2");
    assert!(c.secret(&ns, "tmp").is_none(), "Delete policy");
    c.wait_rolled_out(&ns, "api");
    c.wait_for("a Synced event on the Secret", 30, || {
        c.events(&ns).iter().any(|e| {
            e.reason.as_deref() == Some("Synced")
                && e.involved_object.name.as_deref() == Some("api")
        })
    });
    let logs = r.logs();
    assert!(!logs.contains("orbidden"), "{logs}");
    assert!(!logs.contains("CANARY"), "{logs}");
}

/// Scale (run with `--ignored`; KSEC_GIT_SCALE files, default 200): first
/// sync of N Secrets, then one rotation among them via the webhook, with a
/// consumer: commit → Secret updated → rollout triggered.
#[test]
#[ignore]
fn scale_many_files() {
    let Some(c) = cluster() else { return };
    let n: usize = std::env::var("KSEC_GIT_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let repo = Repo::new(&c);
    let g = Git::new(&repo);
    let ns = c.namespace("prod", "gitscale");
    let _kubelet = FakeKubelet::start(&c.kubeconfig, &ns, |_| Health::Ready);
    let mut files = Vec::new();
    for i in 0..n {
        files.push(repo.secret(
            &format!("secrets/s{i:04}.yaml"),
            &ns,
            &format!("s{i:04}"),
            &[("k", &format!("CANARY-scale-{i}"))],
        ));
    }
    c.deployment_using(&ns, "app", &[("s0000", "k")], 1);
    c.wait_rolled_out(&ns, "app");
    let rev = g.commit("many");
    let hook = g.bare.parent().unwrap().join("hook");
    std::fs::write(&hook, "s").unwrap();
    let t0 = Instant::now();
    let r = start_git(
        &c,
        &repo,
        &ns,
        &g.file_url(),
        &[
            "--git-interval",
            "1h",
            "--webhook-secret-file",
            hook.to_str().unwrap(),
        ],
    );
    wait_status(&c, &ns, &rev, ("True", "Synced"));
    eprintln!("{n} files: start → all applied {:?}", t0.elapsed());
    let before = c.deployment(&ns, "app").metadata.generation;
    repo.set(&files[0], "k", "CANARY-scale-rotated");
    g.commit("rotate one");
    let t0 = Instant::now();
    assert_eq!(post_hook(&r, &[("X-Gitlab-Token", "s".into())], "{}"), 202);
    c.wait_for("the rotated Secret", 60, || {
        c.secret_data(&ns, "s0000").get("k").map(String::as_str) == Some("CANARY-scale-rotated")
    });
    let updated = t0.elapsed();
    c.wait_for("the rollout to be triggered", 60, || {
        c.deployment(&ns, "app").metadata.generation != before
    });
    eprintln!(
        "{n} files: webhook → Secret updated {updated:?}, → rollout triggered {:?}",
        t0.elapsed()
    );
    let logs = r.logs();
    for l in logs.lines().filter(|l| l.contains("git source")) {
        eprintln!("{l}");
    }
}
