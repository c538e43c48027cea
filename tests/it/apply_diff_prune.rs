//! `ksec diff` / `--dry-run=server` mask values; `--prune` deletes only
//! Secrets ksec created (label + inventory + managedFields), against the real API server.
use crate::support;

use serde_json::json;
use support::cluster::{Repo, cluster, names};

#[test]
fn diff_and_server_dry_run_name_keys_and_never_show_values() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "diff");
    let id = &repo.prod.identity_file;
    let f = repo.secret(
        "p/db.yaml",
        &ns,
        "db",
        &[
            ("password", "CANARY-old-pw"),
            ("gone", "CANARY-gone"),
            ("same", "CANARY-same"),
        ],
    );
    // Before the first apply: the whole Secret is new.
    let o = repo.ksec("diff", id, &[f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("(new Secret)"));
    assert!(c.secret(&ns, "db").is_none(), "diff must not write");

    assert_eq!(repo.apply_json(id, &[f.to_str().unwrap()]).0, 0);
    let o = repo.ksec("diff", id, &[f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", support::bin::stderr(&o));

    repo.set(&f, "password", "CANARY-new-pw");
    repo.set(&f, "added", "CANARY-added");
    let o = support::bin::run(
        support::bin::ksec()
            .arg("unset")
            .arg(&f)
            .arg("[\"stringData\"][\"gone\"]")
            .env("SOPS_AGE_KEY_FILE", &repo.prod.identity_file),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));

    let o = repo.ksec("diff", id, &[f.to_str().unwrap()]);
    let out = format!("{}{}", support::bin::stdout(&o), support::bin::stderr(&o));
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("~ data.password"), "{out}");
    assert!(out.contains("+ data.added"), "{out}");
    assert!(out.contains("- data.gone"), "{out}");
    assert!(
        !out.contains("same"),
        "unchanged keys are not listed: {out}"
    );
    assert!(!out.contains("CANARY"), "a value leaked: {out}");

    let o = repo.ksec("diff", id, &["-o", "json", f.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["differs"], true);
    assert_eq!(v["secrets"][0]["changed"], json!(["password"]));
    assert_eq!(v["secrets"][0]["added"], json!(["added"]));
    assert_eq!(v["secrets"][0]["removed"], json!(["gone"]));
    assert!(!v.to_string().contains("CANARY"));

    // --dry-run=server: same answer, nothing persisted.
    let (code, r, err) = repo.apply_json(id, &["--dry-run=server", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["dryRun"], true);
    assert_eq!(
        r["applied"][0]["keys"]["changed"],
        json!(["password"]),
        "{r}"
    );
    assert!(!r.to_string().contains("CANARY"));
    let live = c.secret_data(&ns, "db");
    assert_eq!(live["password"], "CANARY-old-pw");
    assert!(live.contains_key("gone") && !live.contains_key("added"));
}

#[test]
fn prune_deletes_only_what_ksec_created() {
    let Some(c) = cluster() else { return };
    let repo = Repo::new(&c);
    let ns = c.namespace("prod", "prune");
    let id = &repo.prod.identity_file;
    // `adopted` existed before ksec applied it; `lookalike` only wears ksec's label.
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "adopted", "namespace": ns}, "stringData": {"k": "v0"}}));
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "lookalike", "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "ksec", "ksec.io/inventory": "default"}},
        "stringData": {"k": "v"}}));
    let keep = repo.secret("p/keep.yaml", &ns, "keep", &[("k", "CANARY-1")]);
    let drop = repo.secret("p/drop.yaml", &ns, "drop", &[("k", "CANARY-2")]);
    let adopted = repo.secret("p/adopted.yaml", &ns, "adopted", &[("k", "CANARY-3")]);
    let other = repo.secret("q/other.yaml", &ns, "other", &[("k", "CANARY-4")]);
    let all = [
        keep.to_str().unwrap(),
        drop.to_str().unwrap(),
        adopted.to_str().unwrap(),
    ];
    let (code, _, err) = repo.apply_json(id, &all);
    assert_eq!(code, 0, "{err}");
    // Another source tree (its own inventory id) in the same namespace.
    let (code, _, err) =
        repo.apply_json(id, &["--inventory-id", "team-b", other.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(c.secret_data(&ns, "adopted")["k"], "CANARY-3");

    // drop and adopted leave the source; prune.
    let (code, r, err) =
        repo.apply_json(id, &["--prune", "--dry-run=server", keep.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["pruned"], json!([format!("{ns}/drop")]), "{r}");
    assert!(c.secret(&ns, "drop").is_some(), "dry run deletes nothing");

    let (code, r, err) = repo.apply_json(id, &["--prune", keep.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["pruned"], json!([format!("{ns}/drop")]), "{r}");
    assert!(
        c.secret(&ns, "drop").is_none(),
        "ksec's own Secret is deleted"
    );
    for name in ["keep", "adopted", "lookalike", "other"] {
        assert!(c.secret(&ns, name).is_some(), "{name} must survive prune");
    }
    assert_eq!(names(&r, "unchanged"), vec![format!("{ns}/keep")]);

    // A Secret ksec created but someone relabelled is left alone.
    let again = repo.secret("p/again.yaml", &ns, "again", &[("k", "CANARY-5")]);
    assert_eq!(
        repo.apply_json(id, &[keep.to_str().unwrap(), again.to_str().unwrap()])
            .0,
        0
    );
    c.create(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "again", "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "someone-else"}}}));
    let (code, r, err) = repo.apply_json(id, &["--prune", keep.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["pruned"], json!([]), "{r}");
    assert!(c.secret(&ns, "again").is_some());
    assert!(
        r["pruneSkipped"][0]["message"]
            .as_str()
            .unwrap()
            .contains("label"),
        "{r}"
    );

    // With --env, prune also visits namespaces whose last Secret left the source.
    let inv = format!("solo-{}", support::cluster::suffix());
    let ns2 = c.namespace("prod", "prune2");
    let solo = repo.secret("p/solo.yaml", &ns2, "solo", &[("k", "CANARY-6")]);
    assert_eq!(
        repo.apply_json(id, &["--inventory-id", &inv, solo.to_str().unwrap()])
            .0,
        0
    );
    let (code, r, err) = repo.apply_json(
        id,
        &["--inventory-id", &inv, "--prune", keep.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        r["pruned"],
        json!([]),
        "without a scope prune stays in the run's namespaces: {r}"
    );
    let (code, r, err) = repo.apply_json(
        id,
        &[
            "--inventory-id",
            &inv,
            "--env",
            "prod",
            "--prune",
            keep.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(r["pruned"], json!([format!("{ns2}/solo")]), "{r}");
    assert!(c.secret(&ns2, "solo").is_none());
    assert!(c.secret(&ns, "keep").is_some());
}
