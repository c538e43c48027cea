//! The ksec CLI end to end: Kubernetes-aware encryption, namespace routing,
//! sops-style commands, and clear errors with the documented exit codes.
use crate::support;

use std::path::{Path, PathBuf};

use ksec::sops::store;
use ksec::sops::{Format, Value};
use support::bin::{AgeKey, SECRET_YAML, age_key, ksec, run, stderr, stdout};

struct Repo {
    dir: tempfile::TempDir,
    dev: AgeKey,
    prod: AgeKey,
}

fn repo() -> Repo {
    let dir = support::bin::tempdir();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::create_dir(dir.path().join("recipients")).unwrap();
    let dev = age_key(dir.path(), "dev-key");
    let prod = age_key(dir.path(), "prod-key");
    std::fs::write(
        dir.path().join("recipients/dev.yaml"),
        format!(
            "namespaces: [dev, \"dev-*\"]\nowners: [\"@dev-team\"]\nage:\n  - {}\n",
            dev.recipient
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("recipients/prod.yaml"),
        format!("namespaces: [prod]\npaths: [\"clusters/prod/**\"]\nowners: [\"@platform\"]\nrotate_after: 90d\nage:\n  - {}\n", prod.recipient),
    )
    .unwrap();
    Repo { dir, dev, prod }
}

impl Repo {
    fn file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }
}

fn secret(ns: Option<&str>, name: &str) -> String {
    let ns = ns
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{ns}type: Opaque\nstringData:\n  password: CANARY-{name}\n"
    )
}

fn recipients_of(p: &Path) -> Vec<String> {
    let (_, meta) = store::load_encrypted(Format::Yaml, &std::fs::read(p).unwrap()).unwrap();
    meta.stanzas().map(|s| s.recipient()).collect()
}

#[test]
fn secret_metadata_stays_readable_and_every_value_is_encrypted() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    let o = run(ksec().args(["encrypt", "-i"]).arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    let (docs, meta) = store::load_encrypted(Format::Yaml, &std::fs::read(&f).unwrap()).unwrap();
    let original = store::load_plain(Format::Yaml, SECRET_YAML.as_bytes()).unwrap();
    let d = &docs.0[0];
    for key in ["apiVersion", "kind", "metadata", "type"] {
        assert_eq!(
            d.get(key),
            original.0[0].get(key),
            "{key} must stay readable"
        );
    }
    for section in ["data", "stringData"] {
        let m = d.get(section).and_then(Value::as_map).unwrap();
        assert!(m.pairs().count() >= 1);
        for (k, v) in m.pairs() {
            let s = v.as_str().unwrap_or_default();
            assert!(
                s.starts_with("ENC[AES256_GCM,"),
                "{section}.{k} is not encrypted"
            );
        }
    }
    assert_eq!(meta.rule.pattern(), Some("^(data|stringData)$"));
    assert!(!std::fs::read_to_string(&f).unwrap().contains("CANARY"));
}

#[test]
fn recipients_are_routed_by_namespace_and_prod_never_gets_dev_keys() {
    let r = repo();
    let prod = r.file("apps/prod-secret.yaml", &secret(Some("prod"), "db"));
    let dev = r.file("apps/dev-secret.yaml", &secret(Some("dev-feature-x"), "db"));
    let o = run(ksec().args(["encrypt", "-i", "-v"]).arg(&prod).arg(&dev));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("namespace prod"), "{}", stderr(&o));
    assert_eq!(recipients_of(&prod), vec![r.prod.recipient.clone()]);
    assert_eq!(recipients_of(&dev), vec![r.dev.recipient.clone()]);
    let d = run(ksec()
        .arg("decrypt")
        .arg(&prod)
        .env("SOPS_AGE_KEY_FILE", &r.dev.identity_file));
    assert_eq!(
        d.status.code(),
        Some(1),
        "a dev key must not open a prod Secret"
    );
    let d = run(ksec()
        .arg("decrypt")
        .arg(&prod)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file));
    assert!(d.status.success());
    assert!(stdout(&d).contains("CANARY-db"));
}

#[test]
fn namespace_conflicts_and_unclaimed_namespaces_are_config_errors() {
    let r = repo();
    r.file(
        "recipients/staging.yaml",
        &format!("namespaces: [\"prod\"]\nage: [{}]\n", r.dev.recipient),
    );
    let f = r.file("s.yaml", &secret(Some("prod"), "x"));
    let before = std::fs::read(&f).unwrap();
    let o = run(ksec().args(["encrypt", "-i"]).arg(&f));
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("\"prod\"") && e.contains("prod.yaml") && e.contains("staging.yaml"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&f).unwrap(),
        before,
        "the file must be untouched"
    );
    std::fs::remove_file(r.dir.path().join("recipients/staging.yaml")).unwrap();
    let g = r.file("t.yaml", &secret(Some("qa"), "x"));
    let o = run(ksec().args(["encrypt", "-i"]).arg(&g));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("\"qa\""), "{}", stderr(&o));
}

#[test]
fn secret_without_namespace_needs_a_path_rule_or_env() {
    let r = repo();
    let f = r.file("apps/s.yaml", &secret(None, "nons"));
    let o = run(ksec().args(["encrypt"]).arg(&f));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--env"), "{}", stderr(&o));
    let o = run(ksec().args(["encrypt", "--env", "dev"]).arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    let p = r.file("clusters/prod/s.yaml", &secret(None, "bypath"));
    let o = run(ksec().args(["encrypt", "-i"]).arg(&p));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(recipients_of(&p), vec![r.prod.recipient.clone()]);
    // --env that disagrees with the namespace is refused
    let q = r.file("apps/q.yaml", &secret(Some("prod"), "q"));
    let o = run(ksec().args(["encrypt", "--env", "dev"]).arg(&q));
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn sops_yaml_is_honoured_and_recipients_dir_wins_when_both_apply() {
    let dir = support::bin::tempdir();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let a = age_key(dir.path(), "a");
    std::fs::write(dir.path().join(".sops.yaml"), format!("creation_rules:\n  - path_regex: \\.yaml$\n    age: {}\n    encrypted_regex: ^password$\n", a.recipient)).unwrap();
    let f = dir.path().join("app.yaml");
    std::fs::write(&f, "user: bob\npassword: CANARY-pw\n").unwrap();
    let o = run(ksec()
        .current_dir(dir.path())
        .args(["encrypt", "-i", "-v", "app.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(".sops.yaml creation_rules[0]"),
        "{}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(text.contains("user: bob") && !text.contains("CANARY"));
    // add a recipients dir: it wins, and -v says so
    let r = age_key(dir.path(), "r");
    std::fs::create_dir(dir.path().join("recipients")).unwrap();
    std::fs::write(
        dir.path().join("recipients/prod.yaml"),
        format!("namespaces: [prod]\nage: [{}]\n", r.recipient),
    )
    .unwrap();
    std::fs::write(dir.path().join("s.yaml"), secret(Some("prod"), "s")).unwrap();
    let o = run(ksec()
        .current_dir(dir.path())
        .args(["encrypt", "-i", "-v", "s.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("won over .sops.yaml creation_rules[0]"),
        "{}",
        stderr(&o)
    );
    assert_eq!(recipients_of(&dir.path().join("s.yaml")), vec![r.recipient]);
}

#[test]
fn bad_input_gives_clear_errors_and_exit_codes() {
    let r = repo();
    let keys = &r.prod.identity_file;
    // plaintext passed to decrypt
    let p = r.file("plain.yaml", &secret(Some("prod"), "p"));
    let o = run(ksec().arg("decrypt").arg(&p).env("SOPS_AGE_KEY_FILE", keys));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("plain.yaml") && stderr(&o).contains("not encrypted"),
        "{}",
        stderr(&o)
    );
    // encrypt twice: refused like sops
    assert!(run(ksec().args(["encrypt", "-i"]).arg(&p)).status.success());
    let o = run(ksec().args(["encrypt", "-i"]).arg(&p));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already encrypted"), "{}", stderr(&o));
    let enc = std::fs::read_to_string(&p).unwrap();
    // tampered value: GCM failure names the key path
    let line = enc
        .lines()
        .find(|l| l.trim_start().starts_with("password: ENC["))
        .unwrap();
    let data_at = line.find("data:").unwrap() + 5;
    let mut bad = line.to_string();
    let c = bad.as_bytes()[data_at];
    bad.replace_range(data_at..data_at + 1, if c == b'A' { "B" } else { "A" });
    let t = r.file("tampered.yaml", &enc.replace(line, &bad));
    let o = run(ksec().arg("decrypt").arg(&t).env("SOPS_AGE_KEY_FILE", keys));
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("tampered.yaml")
            && e.contains("document 0")
            && e.contains("stringData.password"),
        "{e}"
    );
    // malformed ENC[]
    let m = r.file(
        "malformed.yaml",
        &enc.replace(
            line,
            "  password: ENC[AES256_GCM,data:zzz,iv:,tag:AA==,type:str]",
        ),
    );
    let o = run(ksec().arg("decrypt").arg(&m).env("SOPS_AGE_KEY_FILE", keys));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("malformed ENC[]") && stderr(&o).contains("stringData.password"),
        "{}",
        stderr(&o)
    );
    // invalid YAML names the line; the file is untouched
    let y = r.file("broken.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: x\nstringData:\n  password: CANARY-broken\n");
    let before = std::fs::read(&y).unwrap();
    let o = run(ksec()
        .args(["encrypt", "-i", "--age", &r.prod.recipient])
        .arg(&y));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("broken.yaml") && stderr(&o).contains("line"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&y).unwrap(), before);
    // BOM
    let b = r.file(
        "bom.yaml",
        &format!("\u{feff}{}", secret(Some("prod"), "bom")),
    );
    let o = run(ksec().args(["encrypt"]).arg(&b));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("byte-order mark"), "{}", stderr(&o));
    // several files without -i is a usage error
    let o = run(ksec().args(["encrypt"]).arg(&p).arg(&y));
    assert_eq!(o.status.code(), Some(2));
    // no identity at all
    let o = run(ksec().arg("decrypt").arg(&p));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&r.prod.recipient), "{}", stderr(&o));
    // no value ever appears in an error
    for f in [&t, &m, &y, &b] {
        for cmd in [vec!["decrypt"], vec!["encrypt"]] {
            let o = run(ksec().args(&cmd).arg(f).env("SOPS_AGE_KEY_FILE", keys));
            if !o.status.success() {
                assert!(
                    !stderr(&o).contains("CANARY"),
                    "value leaked in: {}",
                    stderr(&o)
                );
            }
        }
    }
}

#[test]
fn extract_set_unset_and_filestatus() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    assert!(run(ksec().args(["encrypt", "-i"]).arg(&f)).status.success());
    let env = ("SOPS_AGE_KEY_FILE", r.prod.identity_file.clone());
    let o = run(ksec()
        .args(["decrypt", "--extract", "[\"stringData\"][\"password\"]"])
        .arg(&f)
        .env(env.0, &env.1));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "CANARY-password-8c1f");
    let before = std::fs::read_to_string(&f).unwrap();
    let port_line = |t: &str| {
        t.lines()
            .find(|l| l.contains("port: ENC["))
            .unwrap()
            .to_string()
    };
    let o = run(ksec()
        .args(["set"])
        .arg(&f)
        .args(["[\"stringData\"][\"password\"]", "\"CANARY-new\""])
        .env(env.0, &env.1));
    assert!(o.status.success(), "{}", stderr(&o));
    let after = std::fs::read_to_string(&f).unwrap();
    assert_eq!(
        port_line(&before),
        port_line(&after),
        "unchanged values keep their ciphertext (IV reuse)"
    );
    let o = run(ksec()
        .args(["decrypt", "--extract", "[\"stringData\"][\"password\"]"])
        .arg(&f)
        .env(env.0, &env.1));
    assert_eq!(stdout(&o), "CANARY-new");
    let o = run(ksec()
        .args(["unset"])
        .arg(&f)
        .arg("[\"stringData\"][\"port\"]")
        .env(env.0, &env.1));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(ksec().args(["decrypt"]).arg(&f).env(env.0, &env.1));
    assert!(!stdout(&o).contains("port"));
    let o = run(ksec()
        .args(["unset"])
        .arg(&f)
        .arg("[\"stringData\"][\"port\"]")
        .env(env.0, &env.1));
    assert_eq!(o.status.code(), Some(1));
    let o = run(ksec().arg("filestatus").arg(&f));
    assert_eq!(stdout(&o).trim(), "{\"encrypted\":true}");
    let p = r.file("p.yaml", "a: b\n");
    assert_eq!(
        stdout(&run(ksec().arg("filestatus").arg(&p))).trim(),
        "{\"encrypted\":false}"
    );
}

#[test]
fn edit_reencrypts_with_the_same_key_and_leaves_no_buffer() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    assert!(run(ksec().args(["encrypt", "-i"]).arg(&f)).status.success());
    let before = std::fs::read_to_string(&f).unwrap();
    let runtime = support::bin::tempdir();
    let editor = r.file(
        "editor.sh",
        "#!/bin/sh\nsed -i 's/CANARY-password-8c1f/CANARY-edited/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = run(ksec()
        .arg("edit")
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file)
        .env("EDITOR", &editor)
        .env("XDG_RUNTIME_DIR", runtime.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let after = std::fs::read_to_string(&f).unwrap();
    let enc_of = |t: &str, k: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with(k))
            .unwrap()
            .to_string()
    };
    assert_eq!(enc_of(&before, "port:"), enc_of(&after, "port:"));
    assert_ne!(enc_of(&before, "password:"), enc_of(&after, "password:"));
    let o = run(ksec()
        .args(["decrypt", "--extract", "[\"stringData\"][\"password\"]"])
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file));
    assert_eq!(stdout(&o), "CANARY-edited");
    assert_eq!(
        std::fs::read_dir(runtime.path()).unwrap().count(),
        0,
        "edit buffer left behind"
    );
    // an editor that fails: nothing written, no buffer
    let fail = r.file("fail.sh", "#!/bin/sh\nexit 3\n");
    std::fs::set_permissions(&fail, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = run(ksec()
        .arg("edit")
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file)
        .env("EDITOR", &fail)
        .env("XDG_RUNTIME_DIR", runtime.path()));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), after);
    assert_eq!(std::fs::read_dir(runtime.path()).unwrap().count(), 0);
}

#[test]
fn edit_buffer_is_removed_on_sigterm() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    assert!(run(ksec().args(["encrypt", "-i"]).arg(&f)).status.success());
    let before = std::fs::read(&f).unwrap();
    let runtime = support::bin::tempdir();
    let editor = r.file("slow.sh", "#!/bin/sh\nsleep 30\n");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut child = ksec()
        .arg("edit")
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file)
        .env("EDITOR", &editor)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(runtime.path()).unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "edit never created its buffer"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(
        std::fs::read_dir(runtime.path()).unwrap().count(),
        0,
        "buffer left after SIGTERM"
    );
    assert_eq!(std::fs::read(&f).unwrap(), before);
}

#[test]
fn updatekeys_rewraps_without_touching_values_and_rotate_changes_the_key() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    assert!(run(ksec().args(["encrypt", "-i"]).arg(&f)).status.success());
    let before = std::fs::read_to_string(&f).unwrap();
    let extra = age_key(r.dir.path(), "extra");
    std::fs::write(
        r.dir.path().join("recipients/prod.yaml"),
        format!(
            "namespaces: [prod]\nage:\n  - {}\n  - {}\n",
            r.prod.recipient, extra.recipient
        ),
    )
    .unwrap();
    let o = run(ksec()
        .args(["updatekeys", "-y"])
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("+ {}", extra.recipient)),
        "{}",
        stderr(&o)
    );
    let after = std::fs::read_to_string(&f).unwrap();
    let values = |t: &str| {
        t.lines()
            .filter(|l| l.contains("ENC[") || l.contains("lastmodified"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        values(&before),
        values(&after),
        "updatekeys must not touch values, MAC or lastmodified"
    );
    let o = run(ksec()
        .arg("decrypt")
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &extra.identity_file));
    assert!(o.status.success(), "{}", stderr(&o));
    // second run: nothing to do
    let o = run(ksec()
        .args(["updatekeys", "-y"])
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file));
    assert!(stderr(&o).contains("already up to date"), "{}", stderr(&o));
    // rotate: new data key, old stanza no longer opens it, values the same
    let o = run(ksec()
        .args(["rotate", "-i", "--rm-age", &extra.recipient])
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file));
    assert!(o.status.success(), "{}", stderr(&o));
    let rotated = std::fs::read_to_string(&f).unwrap();
    assert_ne!(values(&after), values(&rotated));
    assert_eq!(
        run(ksec()
            .arg("decrypt")
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &extra.identity_file))
        .status
        .code(),
        Some(1)
    );
    let o = run(ksec()
        .arg("decrypt")
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file));
    assert!(stdout(&o).contains("CANARY-password-8c1f"));
}

#[test]
fn directories_are_walked_in_parallel_with_a_json_report() {
    let r = repo();
    for i in 0..20 {
        r.file(
            &format!("tree/app{i}/secret.yaml"),
            &secret(
                Some(if i % 2 == 0 { "prod" } else { "dev" }),
                &format!("s{i}"),
            ),
        );
        r.file(
            &format!("tree/app{i}/deploy.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n",
        );
    }
    r.file("tree/README.md", "not a manifest");
    let o = run(ksec()
        .args(["encrypt", "-i", "--report", "json"])
        .arg(r.dir.path().join("tree")));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let files = report["files"].as_array().unwrap();
    assert_eq!(
        files.iter().filter(|f| f["status"] == "encrypted").count(),
        20
    );
    assert_eq!(
        files.iter().filter(|f| f["status"] == "skipped").count(),
        20
    );
    assert_eq!(
        recipients_of(&r.dir.path().join("tree/app3/secret.yaml")),
        vec![r.dev.recipient.clone()]
    );
    assert_eq!(
        recipients_of(&r.dir.path().join("tree/app4/secret.yaml")),
        vec![r.prod.recipient.clone()]
    );
    // running again skips what is already encrypted
    let o = run(ksec()
        .args(["encrypt", "-i", "--report", "json"])
        .arg(r.dir.path().join("tree")));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["reason"] == "already encrypted")
            .count(),
        20
    );
}

#[test]
fn completions_and_man_pages_are_generated() {
    let o = run(ksec().args(["completions", "bash"]));
    assert!(o.status.success() && stdout(&o).contains("updatekeys"));
    let d = support::bin::tempdir();
    let o = run(ksec().args(["man", "--dir"]).arg(d.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.path().join("ksec.1").exists() && d.path().join("ksec-encrypt.1").exists());
}

#[test]
fn shipped_recipients_and_examples_route_as_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = ksec::recipients::RecipientsDir::load(&root.join("recipients"))
        .expect("recipients/ must load");
    assert_eq!(dir.envs.len(), 3);
    for (file, env) in [
        ("examples/registry-pull-secret.yaml", "prod"),
        ("examples/db-credentials.yaml", "dev"),
    ] {
        let p = root.join(file);
        let docs = store::load_plain(Format::Yaml, &std::fs::read(&p).unwrap()).unwrap();
        let plan = ksec::recipients::plan_for(&p, &docs, &Default::default()).unwrap();
        assert_eq!(plan.environment.as_deref(), Some(env), "{file}");
        assert_eq!(plan.groups[0], dir.env(env).unwrap().groups[0]);
    }
    for (ns, env) in [
        ("dev-feature", Some("dev")),
        ("prod-eu", Some("prod")),
        ("staging", Some("staging")),
        ("kube-system", None),
    ] {
        assert_eq!(
            dir.env_for_namespace(ns).unwrap().map(|e| e.name.as_str()),
            env,
            "{ns}"
        );
    }
}

// ---- issue 17: an attacker with Git write access and no key ----

/// The repo of `repo()` plus a dev path glob, so a file moved under
/// clusters/dev/ routes to dev by path.
fn repo_with_dev_paths() -> Repo {
    let r = repo();
    std::fs::write(
        r.dir.path().join("recipients/dev.yaml"),
        format!(
            "namespaces: [dev]\npaths: [\"clusters/dev/**\"]\nage:\n  - {}\n",
            r.dev.recipient
        ),
    )
    .unwrap();
    r
}

fn encrypted_prod_secret(r: &Repo) -> PathBuf {
    let f = r.file("clusters/prod/db.yaml", &secret(Some("prod"), "db"));
    let o = run(ksec().args(["encrypt", "-i"]).arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(recipients_of(&f), vec![r.prod.recipient.clone()]);
    f
}

fn as_prod(r: &Repo) -> std::process::Command {
    let mut c = ksec();
    c.current_dir(r.dir.path())
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file);
    c
}

#[test]
fn rekey_attack_edited_namespace_is_refused_at_every_step() {
    let r = repo_with_dev_paths();
    let f = encrypted_prod_secret(&r);
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, text.replace("namespace: prod", "namespace: dev")).unwrap();
    let before = std::fs::read(&f).unwrap();
    let o = run(as_prod(&r).args(["doctor", "."]));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("probable-tampering"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("updatekeys"), "{}", stdout(&o));
    let o = run(as_prod(&r).args(["updatekeys", "-y"]).arg(&f));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAC mismatch"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&f).unwrap(), before, "nothing may be written");
    let o = run(as_prod(&r).args(["check", "--verify"]).arg(&f));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
}

#[test]
fn rekey_attack_namespace_moved_under_labels_keeps_the_mac_but_is_refused() {
    let r = repo_with_dev_paths();
    let f = encrypted_prod_secret(&r);
    // Same values in the same order: the MAC still verifies.
    let text = std::fs::read_to_string(&f).unwrap().replace(
        "    namespace: prod\n",
        "    labels:\n        namespace: prod\n",
    );
    let moved = r.file("clusters/dev/db.yaml", &text);
    std::fs::remove_file(&f).unwrap();
    let o = run(as_prod(&r).args(["decrypt"]).arg(&moved));
    assert!(
        o.status.success(),
        "the move must keep the MAC valid: {}",
        stderr(&o)
    );
    let o = run(as_prod(&r).args(["updatekeys", "-y"]).arg(&moved));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--move-env prod:dev"), "{}", stderr(&o));
    assert_eq!(recipients_of(&moved), vec![r.prod.recipient.clone()]);
    let o = run(as_prod(&r)
        .args(["rotate", "-i", "--add-age", &r.dev.recipient])
        .arg(&moved));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(recipients_of(&moved), vec![r.prod.recipient.clone()]);
    let o = run(as_prod(&r).args(["check", "--verify", "clusters/dev/db.yaml"]));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("probable-tampering"), "{}", stdout(&o));
    let o = run(as_prod(&r).args(["doctor", "."]));
    assert!(!stdout(&o).contains("updatekeys -y"), "{}", stdout(&o));
    // A deliberate move, said as such, goes through.
    let o = run(as_prod(&r)
        .args(["updatekeys", "-y", "--move-env", "prod:dev"])
        .arg(&moved));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("rotate every value"), "{}", stderr(&o));
    assert_eq!(recipients_of(&moved), vec![r.dev.recipient.clone()]);
}

#[test]
fn an_added_empty_stringdata_value_that_overrides_data_is_tampering() {
    let r = repo();
    let f = r.file(
        "s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\ndata:\n  password: Q0FOQVJZ\n",
    );
    assert!(run(ksec().args(["encrypt", "-i"]).arg(&f)).status.success());
    let text = std::fs::read_to_string(&f).unwrap();
    let i = text.find("sops:").unwrap();
    let forged = format!(
        "{}stringData:\n    password: \"\"\n{}",
        &text[..i],
        &text[i..]
    );
    std::fs::write(&f, forged).unwrap();
    let o = run(as_prod(&r).args(["check", "--verify", "s.yaml"]));
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("probable-tampering"), "{}", stdout(&o));
}

#[test]
fn nested_lists_route_every_secret() {
    let r = repo();
    let f = r.file(
        "mixed.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: a, namespace: dev}\n  stringData: {p: CANARY-a}\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: v1\n    kind: Secret\n    metadata: {name: b, namespace: prod}\n    stringData: {p: CANARY-b}\n",
    );
    let o = run(ksec().args(["encrypt", "-i"]).arg(&f));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("split the file"), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&f).unwrap().contains("CANARY-a"));
}

#[test]
fn a_file_whose_secrets_belong_to_a_path_env_and_a_namespace_env_is_refused() {
    let r = repo();
    let f = r.file(
        "clusters/prod/x.yaml",
        &format!("{}---\n{}", secret(None, "a"), secret(Some("dev"), "b")),
    );
    let o = run(ksec().args(["encrypt", "-i"]).arg(&f));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("split the file"), "{}", stderr(&o));
}

#[test]
fn merge_keys_route_as_the_api_server_reads_them_and_are_not_encrypted() {
    let r = repo();
    let f = r.file(
        "m.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  <<: {namespace: prod}\nstringData: {p: CANARY}\n",
    );
    let o = run(ksec().args(["encrypt"]).arg(&f));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("merge key"), "{}", stderr(&o));
    // The router and the guard agree: a namespace from a merge key counts.
    let docs = store::load_plain(Format::Yaml, &std::fs::read(&f).unwrap()).unwrap();
    assert_eq!(
        ksec::manifest::secret_namespaces(&docs),
        vec![Some("prod".to_string())]
    );
}

/// Runs a command under a 4 GiB address-space and 60 s CPU limit, so code
/// that expands what it should refuse fails the test instead of the machine.
fn run_bounded(c: &mut std::process::Command) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe setrlimit calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            let mem = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            let cpu = libc::rlimit {
                rlim_cur: 60,
                rlim_max: 60,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &mem) != 0
                || libc::setrlimit(libc::RLIMIT_CPU, &cpu) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    run(c)
}

/// The issue's 540-byte billion-laughs Secret (10^9 leaves once expanded).
fn alias_bomb() -> String {
    let mut s = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData:\n  a0: &a0 x\n",
    );
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(",");
        s.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
    }
    s
}

#[test]
fn alias_bomb_is_refused_by_every_command() {
    let r = repo();
    r.file("lol.yaml", &alias_bomb());
    let cases: [&[&str]; 5] = [
        &["check", "lol.yaml"],
        &["encrypt", "-i", "lol.yaml"],
        &["decrypt", "lol.yaml"],
        &["filestatus", "lol.yaml"],
        &["doctor", "."],
    ];
    for args in cases {
        let o = run_bounded(ksec().current_dir(r.dir.path()).args(args));
        let said = format!("{}{}", stdout(&o), stderr(&o));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {:?} {said}", o.status);
        assert!(said.contains("excessive aliasing"), "{args:?}: {said}");
        assert!(said.contains("lol.yaml"), "{args:?}: {said}");
    }
}

#[test]
fn files_over_the_size_limit_block_unless_the_limit_is_raised() {
    let r = repo();
    let mut big = secret(None, "big");
    big.push_str(&"#".repeat((16 << 20) + 1));
    big.push('\n');
    let f = r.file("big/s.yaml", &big);
    // Named and walked alike: an unjudged file is an error naming the limit.
    for target in [f.clone(), r.dir.path().join("big")] {
        let o = run(ksec().args(["check", "--no-path-policy"]).arg(&target));
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
        assert!(out.contains("[not-judged]"), "{out}");
        assert!(out.contains("s.yaml"), "{out}");
        assert!(out.contains(&(16u64 << 20).to_string()), "{out}");
    }
    // Raised: the file is judged, and its plaintext value found.
    let o = run(ksec()
        .args(["check", "--no-path-policy", "--max-file-size", "40000000"])
        .arg(&f));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("plaintext-secret-value"), "{out}");
    assert!(!out.contains("not-judged"), "{out}");
}

/// `kubectl get secret -o yaml` output carries the whole Secret, values in
/// clear, in the last-applied annotation: encrypt drops it and says so
/// (file, document, key path; no value), and check then passes.
#[test]
fn encrypt_drops_the_last_applied_annotation_of_a_secret() {
    let r = repo();
    let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db","namespace":"prod"},"stringData":{"password":"CANARY-last-applied-77"}}"#;
    let text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {json}\n    team: db\nstringData:\n  password: CANARY-last-applied-77\n"
    );
    let f = r.file("s.yaml", &text);
    let o = run(ksec().args(["check"]).arg(&f));
    assert_eq!(o.status.code(), Some(1), "check must flag it before");
    let o = run(ksec().args(["encrypt", "-i"]).arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("s.yaml")
            && e.contains("document 0")
            && e.contains("metadata.annotations.kubectl.kubernetes.io/last-applied-configuration"),
        "{e}"
    );
    assert!(!e.contains("CANARY"));
    let out = std::fs::read_to_string(&f).unwrap();
    assert!(
        !out.contains("CANARY"),
        "plaintext left in the file:\n{out}"
    );
    assert!(!out.contains("last-applied-configuration"));
    assert!(out.contains("team: db"), "other annotations stay");
    let o = run(ksec().args(["check"]).arg(&f));
    assert!(o.status.success(), "{}", stdout(&o));
    let o = run(ksec()
        .args(["decrypt"])
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.prod.identity_file));
    assert!(stdout(&o).contains("CANARY-last-applied-77"));
}

#[test]
fn pgp_only_file_gets_a_pgp_hint_and_one_kind_label() {
    // A file whose only recipient is PGP and whose key is not in the
    // keyring: the error names it once (not "pgp pgp:FP") and suggests
    // importing the key, not age key variables.
    let c01 = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/guard/C01-full-enc.yaml"),
    )
    .unwrap();
    let start = c01.find("    age:\n").unwrap();
    let end = c01.find("    lastmodified:").unwrap();
    let pgp = "    pgp:\n        - created_at: \"2026-11-28T04:06:59Z\"\n          enc: |\n              -----BEGIN PGP MESSAGE-----\n              hQEMAyUpShfNkFB/AQf+\n              -----END PGP MESSAGE-----\n          fp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4\n";
    let text = format!("{}{pgp}{}", &c01[..start], &c01[end..]);
    let dir = support::bin::tempdir();
    let f = dir.path().join("pgp.enc.yaml");
    std::fs::write(&f, text).unwrap();
    let o = support::bin::run(support::bin::ksec().arg("decrypt").arg(&f));
    let err = support::bin::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4"),
        "{err}"
    );
    assert!(!err.contains("pgp pgp:"), "{err}");
    assert!(!err.contains("SOPS_AGE_KEY"), "{err}");
    assert!(err.contains("gpg --import"), "{err}");
}

/// Where Secrets are consumed (`ksec apply`, the controller's Git source:
/// `cluster::source::open_all`), a MAC-valid file whose readable structure
/// was moved is refused as a whole (issue 17).
#[test]
fn apply_and_the_controller_refuse_a_moved_namespace_or_an_empty_override() {
    use ksec::cluster::source::{FileOptions, open_all};
    use ksec::keys::KeyRing;
    use ksec::keys::age::{AgeSource, IdentityOptions};
    let r = repo();
    let ring = || {
        let mut k = KeyRing::new();
        k.add(Box::new(
            AgeSource::discover(&IdentityOptions {
                files: vec![r.prod.identity_file.clone()],
            })
            .unwrap(),
        ));
        k
    };
    let f = r.file(
        "s.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\ndata:\n  password: Q0FOQVJZ\n",
    );
    assert!(run(ksec().args(["encrypt", "-i"]).arg(&f)).status.success());
    let good = std::fs::read_to_string(&f).unwrap();
    let opts = FileOptions {
        policy: Default::default(),
        boundary: &Default::default(),
        allow_mac_only: false,
    };
    assert!(open_all(&f, good.as_bytes(), &ring(), opts).is_ok());
    let moved = good.replace("    namespace: prod\n", "    namespace:\n        x: prod\n");
    let i = good.find("sops:").unwrap();
    let overridden = format!(
        "{}stringData:\n    password: \"\"\n{}",
        &good[..i],
        &good[i..]
    );
    for (what, bytes) in [("moved", moved), ("override", overridden)] {
        let opts = FileOptions {
            policy: Default::default(),
            boundary: &Default::default(),
            allow_mac_only: false,
        };
        match open_all(&f, bytes.as_bytes(), &ring(), opts) {
            Err(e) => assert!(
                format!("{e:?}").contains("probable tampering"),
                "{what}: {e:?}"
            ),
            Ok(v) => panic!("{what}: accepted {} Secret(s)", v.len()),
        }
    }
}

/// `ksec … | head`: a closed standard output ends ksec quietly (exit 0, no
/// "internal error"), while SIGPIPE stays ignored so that a child process
/// that exits early gives an error instead of killing ksec (#19).
#[test]
fn a_closed_standard_output_ends_quietly() {
    for args in [&["completions", "bash"][..], &["man"]] {
        let mut child = ksec()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert!(
            !stderr(&o).contains("internal error"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
}
