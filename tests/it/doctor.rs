//! `ksec doctor` on fixture repositories that reproduce the field guide's
//! incident and its cousins; each finding is checked exactly, and so are the
//! cases that must produce none.
use crate::support;

use std::path::{Path, PathBuf};

use serde_json::Value as J;
use support::bin::{AgeKey, age_key, ksec, run, stderr, stdout};

struct Repo {
    dir: tempfile::TempDir,
    dev: AgeKey,
    prod: AgeKey,
}

fn repo() -> Repo {
    let dir = support::bin::tempdir();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let dev = age_key(dir.path(), "dev-key");
    let prod = age_key(dir.path(), "prod-key");
    write(
        dir.path(),
        "recipients/dev.yaml",
        &format!(
            "namespaces: [dev]\nowners: [\"@dev\"]\nage: [{}]\n",
            dev.recipient
        ),
    );
    write(
        dir.path(),
        "recipients/prod.yaml",
        &format!(
            "namespaces: [prod]\nowners: [\"@platform\", \"oncall@example.com\"]\nrotate_after: 30d\nage: [{}]\n",
            prod.recipient
        ),
    );
    Repo { dir, dev, prod }
}

fn write(root: &Path, rel: &str, content: &str) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    p
}

impl Repo {
    fn secret(&self, rel: &str, ns: &str, name: &str, keys: &[&str]) -> PathBuf {
        let data: String = keys
            .iter()
            .map(|k| format!("  {k}: CANARY-{k}\n"))
            .collect();
        let p = write(
            self.dir.path(),
            rel,
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\ntype: Opaque\nstringData:\n{data}"
            ),
        );
        let o = run(ksec().args(["encrypt", "-i"]).arg(&p));
        assert!(o.status.success(), "{}", stderr(&o));
        p
    }
    fn deployment(&self, rel: &str, ns: &str, name: &str, pod_spec: &str) {
        write(
            self.dir.path(),
            rel,
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n{pod_spec}"
            ),
        );
    }
    fn doctor(&self, extra: &[&str]) -> (i32, Vec<J>) {
        let o = run(ksec()
            .current_dir(self.dir.path())
            .args(["doctor", "-o", "json"])
            .args(extra)
            .arg("."));
        let code = o.status.code().unwrap();
        assert!(code == 0 || code == 1, "{}", stderr(&o));
        let v: J =
            serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)));
        (code, v["findings"].as_array().unwrap().clone())
    }
}

const PULL: &str = "      imagePullSecrets:\n        - name: registry-pull-secret\n      containers:\n        - name: app\n          image: registry.example.com/shop:1\n";

fn summary(f: &[J]) -> Vec<(String, String, String, String)> {
    f.iter()
        .map(|x| {
            (
                x["check"].as_str().unwrap().into(),
                x["environment"].as_str().unwrap().into(),
                x["namespace"].as_str().unwrap().into(),
                x["object"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn the_field_guide_incident_pull_secret_only_in_dev() {
    let r = repo();
    r.secret(
        "dev/pull.yaml",
        "dev",
        "registry-pull-secret",
        &[".dockerconfigjson"],
    );
    r.deployment("dev/shop.yaml", "dev", "shop", PULL);
    r.deployment("prod/shop.yaml", "prod", "shop", PULL);
    let (code, f) = r.doctor(&[]);
    assert_eq!(code, 1);
    assert_eq!(
        summary(&f),
        vec![
            (
                "broken-reference".into(),
                "prod".into(),
                "prod".into(),
                "Deployment/shop".into()
            ),
            (
                "parity".into(),
                "prod".into(),
                "prod".into(),
                "Deployment/shop".into()
            ),
        ]
    );
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap()
            .contains("ImagePullBackOff")
    );
    assert!(
        f[1]["message"]
            .as_str()
            .unwrap()
            .contains("exists in dev (namespace dev) but not in prod")
    );
    assert!(f[1]["fix"].as_str().unwrap().contains("ksec encrypt -i"));
    // fixing it clears every finding
    r.secret(
        "prod/pull.yaml",
        "prod",
        "registry-pull-secret",
        &[".dockerconfigjson"],
    );
    let (code, f) = r.doctor(&[]);
    assert_eq!((code, summary(&f)), (0, vec![]));
}

#[test]
fn a_missing_key_inside_an_existing_secret() {
    let r = repo();
    r.secret("prod/db.yaml", "prod", "db", &["password"]);
    r.deployment("prod/api.yaml", "prod", "api", "      containers:\n        - name: api\n          image: x\n          env:\n            - name: DB_USER\n              valueFrom: {secretKeyRef: {name: db, key: username}}\n            - name: DB_PASSWORD\n              valueFrom: {secretKeyRef: {name: db, key: password}}\n");
    let (code, f) = r.doctor(&[]);
    assert_eq!(code, 1);
    assert_eq!(
        summary(&f),
        vec![(
            "broken-reference".into(),
            "prod".into(),
            "prod".into(),
            "Deployment/api".into()
        )]
    );
    let m = f[0]["message"].as_str().unwrap();
    assert!(
        m.contains("\"username\"") && m.contains("it has: password"),
        "{m}"
    );
    assert!(!serde_json::to_string(&f).unwrap().contains("CANARY"));
}

#[test]
fn optional_references_produce_no_finding() {
    let r = repo();
    r.deployment("prod/api.yaml", "prod", "api", "      containers:\n        - name: api\n          image: x\n          envFrom:\n            - secretRef: {name: maybe, optional: true}\n      volumes:\n        - name: v\n          secret: {secretName: maybe-too, optional: true}\n");
    let (code, f) = r.doctor(&[]);
    assert_eq!((code, summary(&f)), (0, vec![]));
}

#[test]
fn a_secret_referenced_only_by_a_cronjob() {
    let r = repo();
    let cron = |secret: &str| {
        format!(
            "apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: backup\n  namespace: prod\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n            - name: b\n              image: x\n              volumeMounts: [{{name: creds, mountPath: /creds}}]\n          volumes:\n            - name: creds\n              secret: {{secretName: {secret}}}\n"
        )
    };
    write(r.dir.path(), "prod/backup.yaml", &cron("backup-creds"));
    r.secret("prod/backup-creds.yaml", "prod", "backup-creds", &["token"]);
    let (code, f) = r.doctor(&[]);
    assert_eq!((code, summary(&f)), (0, vec![]));
    write(r.dir.path(), "prod/backup.yaml", &cron("backup-creds-v2"));
    // Provided nowhere in the repository: a warning (it may be made at run
    // time); `--fail-on warning` makes it fail.
    let (code, _) = r.doctor(&[]);
    assert_eq!(code, 0);
    let (code, f) = r.doctor(&["--fail-on", "warning"]);
    assert_eq!(code, 1);
    assert_eq!(
        summary(&f),
        vec![(
            "no-provider".into(),
            "prod".into(),
            "prod".into(),
            "CronJob/backup".into()
        )]
    );
}

#[test]
fn a_prod_secret_encrypted_to_a_dev_key() {
    let r = repo();
    let p = write(
        r.dir.path(),
        "prod/db.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: CANARY\n",
    );
    let o = run(ksec()
        .args(["encrypt", "-i", "--age", &r.dev.recipient])
        .arg(&p));
    assert!(o.status.success());
    let (code, f) = r.doctor(&[]);
    assert_eq!(code, 1);
    let mut got = summary(&f);
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "cross-environment-recipient".into(),
                "prod".into(),
                "prod".into(),
                "Secret/db".into()
            ),
            (
                "probable-tampering".into(),
                "prod".into(),
                "prod".into(),
                "Secret/db".into()
            ),
        ]
    );
    // Never "updatekeys": that would hand a dev-keyed file to prod's keys
    // on the word of a namespace anyone can edit (issue 17).
    assert!(!serde_json::to_string(&f).unwrap().contains("updatekeys"));
    let cross = f
        .iter()
        .find(|x| x["check"] == "cross-environment-recipient")
        .unwrap();
    assert!(
        cross["message"]
            .as_str()
            .unwrap()
            .contains(&r.dev.recipient)
    );
    assert!(
        cross["fix"]
            .as_str()
            .unwrap()
            .starts_with("ksec rotate -i --rm-age")
    );
}

#[test]
fn a_stale_recipient_needs_updatekeys_and_rotation_age_is_reported() {
    let r = repo();
    let p = r.secret("prod/db.yaml", "prod", "db", &["password"]);
    let newer = age_key(r.dir.path(), "newer");
    write(
        r.dir.path(),
        "recipients/prod.yaml",
        &format!(
            "namespaces: [prod]\nrotate_after: 30d\nage: [{}, {}]\n",
            r.prod.recipient, newer.recipient
        ),
    );
    let (code, f) = r.doctor(&[]);
    assert_eq!(code, 0, "stale recipients are a warning by default");
    assert_eq!(
        summary(&f),
        vec![(
            "stale-recipients".into(),
            "prod".into(),
            "prod".into(),
            "Secret/db".into()
        )]
    );
    assert_eq!(
        f[0]["fix"].as_str().unwrap(),
        format!(
            "ksec updatekeys -y {}",
            p.strip_prefix(r.dir.path())
                .map(|x| Path::new(".").join(x))
                .unwrap()
                .display()
        )
    );
    let (code, _) = r.doctor(&["--severity", "stale-recipients=error"]);
    assert_eq!(code, 1);
    assert!(
        run(ksec()
            .args(["updatekeys", "-y"])
            .arg(&p)
            .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file))
        .status
        .success()
    );
    assert_eq!(r.doctor(&[]).1.len(), 0);
    // an old lastmodified (doctor reads metadata, it does not verify the MAC)
    let text = std::fs::read_to_string(&p).unwrap();
    let lm = text
        .lines()
        .find(|l| l.trim_start().starts_with("lastmodified:"))
        .unwrap()
        .to_string();
    std::fs::write(
        &p,
        text.replace(&lm, "    lastmodified: \"2020-01-01T00:00:00Z\""),
    )
    .unwrap();
    let (_, f) = r.doctor(&[]);
    assert_eq!(
        summary(&f),
        vec![(
            "rotation-age".into(),
            "prod".into(),
            "prod".into(),
            "Secret/db".into()
        )]
    );
    assert!(
        f[0]["message"]
            .as_str()
            .unwrap()
            .contains("rotates every 30 days")
    );
}

#[test]
fn plaintext_secrets_and_sarif_output() {
    let r = repo();
    write(
        r.dir.path(),
        "prod/leak.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\n  namespace: prod\nstringData:\n  password: CANARY-leak\n",
    );
    let o = run(ksec()
        .current_dir(r.dir.path())
        .args(["doctor", "-o", "sarif", "."]));
    assert_eq!(o.status.code(), Some(1));
    let s: J = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let results = s["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "plaintext");
    assert_eq!(results[0]["level"], "error");
    assert!(!stdout(&o).contains("CANARY"));
    let o = run(ksec().current_dir(r.dir.path()).args(["doctor", "."]));
    let text = stdout(&o);
    assert!(
        text.contains("== environment prod ==") && text.contains("fix:  ksec encrypt -i"),
        "{text}"
    );
}

#[test]
fn rbac_is_scoped_to_named_secrets_and_wildcards_are_flagged() {
    let r = repo();
    r.deployment("prod/shop.yaml", "prod", "shop", "      serviceAccountName: shop-sa\n      imagePullSecrets: [{name: registry-pull-secret}]\n      containers:\n        - name: app\n          image: x\n          envFrom: [{secretRef: {name: shop-env}}]\n");
    let o = run(ksec()
        .current_dir(r.dir.path())
        .args(["rbac", "-o", "json", "."]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: J = serde_json::from_str(&stdout(&o)).unwrap();
    let role = &v["items"][0];
    assert_eq!(role["kind"], "Role");
    assert_eq!(role["metadata"]["namespace"], "prod");
    assert_eq!(
        role["rules"][0]["resourceNames"],
        serde_json::json!(["registry-pull-secret", "shop-env"])
    );
    assert_eq!(role["rules"][0]["verbs"], serde_json::json!(["get"]));
    assert_eq!(v["items"][1]["subjects"][0]["name"], "shop-sa");
    write(
        r.dir.path(),
        "prod/wild.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: too-much, namespace: prod}\nrules:\n  - apiGroups: [\"\"]\n    resources: [secrets]\n    verbs: [get, list]\n",
    );
    let o = run(ksec().current_dir(r.dir.path()).args(["rbac", "."]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wildcard-secret-access") && stderr(&o).contains("Role/too-much"));
    assert!(stdout(&o).contains("resourceNames:"));
    let (_, f) = r.doctor(&[]);
    assert!(summary(&f).contains(&(
        "wildcard-secret-access".into(),
        "prod".into(),
        "prod".into(),
        "Role/too-much".into()
    )));
}

#[test]
fn runbook_names_owners_and_commands() {
    let r = repo();
    r.secret("prod/db.yaml", "prod", "db", &["password"]);
    let o = run(ksec()
        .current_dir(r.dir.path())
        .args(["runbook", "--env", "prod", "."]));
    assert!(o.status.success(), "{}", stderr(&o));
    let md = stdout(&o);
    for needle in [
        "# Rotation runbook: prod",
        "@platform",
        "oncall@example.com",
        "every 30 days",
        "`prod/db`",
        "ksec apply --env prod",
        "rollout undo",
        &r.prod.recipient,
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
    assert!(!md.contains(&r.dev.recipient));
    let o = run(ksec()
        .current_dir(r.dir.path())
        .args(["runbook", "--env", "qa", "."]));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn kustomize_overlays_are_rendered_before_checking() {
    if support::bin::tool("kubectl").is_none() {
        return;
    }
    let r = repo();
    let root = r.dir.path();
    write(
        root,
        "base/kustomization.yaml",
        "resources: [deploy.yaml]\n",
    );
    write(
        root,
        "base/deploy.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n  selector: {{matchLabels: {{app: shop}}}}\n  template:\n    metadata: {{labels: {{app: shop}}}}\n    spec:\n{PULL}"
        ),
    );
    write(
        root,
        "overlays/dev/kustomization.yaml",
        "namespace: dev\nresources: [../../base, pull.yaml]\n",
    );
    r.secret(
        "overlays/dev/pull.yaml",
        "dev",
        "registry-pull-secret",
        &[".dockerconfigjson"],
    );
    write(
        root,
        "overlays/prod/kustomization.yaml",
        "namespace: prod\nresources: [../../base]\n",
    );
    let o = run(ksec().current_dir(root).args([
        "doctor",
        "-o",
        "json",
        "overlays/dev",
        "overlays/prod",
    ]));
    let v: J = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&o), stderr(&o)));
    let f = v["findings"].as_array().unwrap();
    assert_eq!(
        summary(f),
        vec![
            (
                "broken-reference".into(),
                "prod".into(),
                "prod".into(),
                "Deployment/shop".into()
            ),
            (
                "parity".into(),
                "prod".into(),
                "prod".into(),
                "Deployment/shop".into()
            ),
        ]
    );
}

#[test]
fn anything_the_guard_blocks_is_a_plaintext_finding() {
    let r = repo();
    let id = std::fs::read_to_string(&r.dev.identity_file).unwrap();
    let key_line = id
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_string();
    write(
        r.dir.path(),
        "prod/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: oops\n  namespace: prod\ndata:\n  key: {key_line}\n"
        ),
    );
    let (code, f) = r.doctor(&[]);
    assert_eq!(code, 1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["check"], "plaintext");
    assert!(
        f[0]["message"].as_str().unwrap().contains("age"),
        "{}",
        f[0]["message"]
    );
    assert!(
        !serde_json::to_string(&f).unwrap().contains(&key_line),
        "the identity leaked into the report"
    );
}

/// A Flux repository as people write them (issue 16): Kustomizations with
/// targetNamespace and substitutions, HelmReleases, ExternalSecrets, a
/// kustomize secretGenerator and an operator-made Secret.
fn flux_repo() -> Repo {
    let r = repo();
    let w = |rel: &str, c: &str| {
        write(r.dir.path(), rel, c);
    };
    w(
        "clusters/prod/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: apps, namespace: flux-system}\nspec:\n  path: ./apps/prod\n  targetNamespace: prod\n  decryption: {provider: sops, secretRef: {name: sops-age}}\n  postBuild:\n    substitute: {APP: shop}\n    substituteFrom: [{kind: ConfigMap, name: cluster-vars}]\n",
    );
    w(
        "clusters/prod/flux-system/sops-age.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n  annotations: {ksec.io/external-secrets: sops-age}\n",
    );
    // No namespace in any of these files: Flux puts them in prod.
    w(
        "apps/prod/db.yaml",
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: db}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: vault}\n  target: {name: db-credentials}\n",
    );
    w(
        "apps/prod/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [db.yaml, deploy.yaml, helm.yaml]\nsecretGenerator:\n  - name: \"${APP}-config\"\n    envs: [config.env]\n",
    );
    w(
        "apps/prod/deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: \"${APP}\"\n  annotations: {ksec.io/external-secrets: rook-ceph-mon}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: shop\n          envFrom:\n            - secretRef:\n                name: db-credentials\n            - secretRef:\n                name: \"${APP}-config\"\n            - secretRef:\n                name: rook-ceph-mon\n            - secretRef:\n                name: \"${CLUSTER_NAME}-token\"\n",
    );
    w(
        "apps/prod/helm.yaml",
        "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: grafana}\nspec:\n  valuesFrom:\n    - {kind: Secret, name: grafana-values}\n  values:\n    admin: {existingSecret: grafana-admin}\n",
    );
    r
}

#[test]
fn flux_layouts_are_modelled_providers_count_and_unknowns_are_not_errors() {
    let r = flux_repo();
    let (code, f) = r.doctor(&[]);
    let s: Vec<(String, String)> = f
        .iter()
        .map(|x| {
            (
                x["check"].as_str().unwrap().to_string(),
                x["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // ExternalSecret, secretGenerator (after ${APP} substitution) and the
    // annotated operator Secret provide; Flux's decryption Secret is declared.
    for provided in ["db-credentials", "shop-config", "rook-ceph-mon", "sops-age"] {
        assert!(
            !s.iter().any(|(_, m)| m.contains(&format!("{provided:?}"))),
            "{provided}: {s:?}"
        );
    }
    let checks: Vec<&str> = s.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        checks,
        vec!["unresolved-name", "no-provider", "no-provider"],
        "{s:?}"
    );
    assert!(s[1].1.contains("grafana-admin"), "{s:?}");
    assert!(s[2].1.contains("grafana-values"), "{s:?}");
    assert!(s[0].1.contains("${CLUSTER_NAME}-token"), "{s:?}");
    // Warnings and info only: a run-time Secret does not fail CI by default.
    assert_eq!(code, 0, "{s:?}");
    assert!(f.iter().all(|x| x["namespace"] == "prod"), "{f:?}");
}

#[test]
fn the_incident_still_fails_in_a_flux_repository() {
    let r = flux_repo();
    r.secret(
        "apps/dev/pull.yaml",
        "dev",
        "registry-pull-secret",
        &[".dockerconfigjson"],
    );
    r.deployment("apps/dev/shop.yaml", "dev", "shop", PULL);
    r.deployment("apps/prod/shop.yaml", "prod", "shop", PULL);
    let (code, f) = r.doctor(&[]);
    assert_eq!(code, 1);
    let s = summary(&f);
    assert!(
        s.contains(&(
            "broken-reference".into(),
            "prod".into(),
            "prod".into(),
            "Deployment/shop".into()
        )),
        "{s:?}"
    );
    assert!(
        s.contains(&(
            "parity".into(),
            "prod".into(),
            "prod".into(),
            "Deployment/shop".into()
        )),
        "{s:?}"
    );
}

#[test]
fn a_failing_kustomize_build_falls_back_to_the_files_and_patches_are_not_unreadable() {
    let r = repo();
    // A generator that needs a file that is not there: kustomize fails.
    write(
        r.dir.path(),
        "app/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deploy.yaml]\nconfigMapGenerator:\n  - name: x\n    files: [missing-SECRETVALUE.txt]\npatches:\n  - path: patch.yaml\n    target: {kind: Deployment}\n",
    );
    write(
        r.dir.path(),
        "app/patch.yaml",
        "- op: add\n  path: /metadata/labels/x\n  value: y\n",
    );
    r.deployment("app/deploy.yaml", "prod", "shop", PULL);
    let o = run(ksec()
        .current_dir(r.dir.path())
        .args(["doctor", "-o", "json", "app"]));
    let err = stderr(&o);
    if support::bin::tool("kubectl").is_some() {
        assert!(err.contains("reading the files instead"), "{err}");
    }
    assert!(!err.contains("SECRETVALUE"), "{err}");
    let v: J = serde_json::from_str(&stdout(&o)).unwrap();
    let checks: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, vec!["no-provider"], "{v}");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn a_folder_with_nothing_doctor_models_says_so() {
    let r = repo();
    write(
        r.dir.path(),
        "infra/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: prod}\ndata: {a: b}\n",
    );
    let o = run(ksec().current_dir(r.dir.path()).args(["doctor", "infra"]));
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("nothing to check"), "{}", stderr(&o));
    assert!(stderr(&o).contains("ConfigMap"), "{}", stderr(&o));
}
