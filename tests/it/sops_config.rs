//! `.sops.yaml` as sops reads it: only the creation rule that applies to a
//! file counts, and the file is found from the working folder.
use crate::support;

use std::path::Path;
use std::process::Command;

use support::bin::{age_key, ksec, run, stderr, stdout};

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
}

/// Rules ksec cannot use, ahead of the one that applies to `*.yaml` files
/// under `apps/`; the `hk/` rule (HuaweiCloud KMS only) applies to `hk/`.
fn mixed_config(age: &str) -> String {
    format!(
        "creation_rules:
  - path_regex: ^legacy/
    pgp: 85D77543B3D624B63CEA9E6DBC17301B491B3F21
  - path_regex: ^hk/
    hckms: tr-west-1:unusable
  - path_regex: ^empty/
    key_groups:
      - {{}}
  - path_regex: ^hw/
    hckms: [{{key_id: 'tr-west-1:abc'}}]
    shamir_threshold: not-a-number
  - path_regex: ^apps/.*\\.yaml$
    age: {age}
    encrypted_regex: ^password$
"
    )
}

#[test]
fn rules_that_do_not_apply_never_stop_encrypt_updatekeys_or_check() {
    let dir = support::bin::tempdir();
    let a = age_key(dir.path(), "a");
    std::fs::write(dir.path().join(".sops.yaml"), mixed_config(&a.recipient)).unwrap();
    std::fs::create_dir_all(dir.path().join("apps")).unwrap();
    let f = dir.path().join("apps/app.yaml");
    std::fs::write(&f, "user: bob\npassword: CANARY-pw\n").unwrap();
    let o = run(ksec()
        .current_dir(dir.path())
        .args(["encrypt", "-i", "apps/app.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(
        text.contains("user: bob") && !text.contains("CANARY"),
        "{text}"
    );
    let o = run(ksec()
        .current_dir(dir.path())
        .args(["updatekeys", "-y", "apps/app.yaml"])
        .env("SOPS_AGE_KEY_FILE", &a.identity_file));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(ksec().current_dir(dir.path()).args(["check", "apps"]));
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn the_applying_rule_is_named_with_its_problem_and_fix() {
    let dir = support::bin::tempdir();
    let a = age_key(dir.path(), "a");
    std::fs::write(dir.path().join(".sops.yaml"), mixed_config(&a.recipient)).unwrap();
    for (sub, needle) in [
        ("hk", "creation_rules[1] (path_regex \"^hk/\")"),
        ("empty", "creation_rules[2]"),
        ("hw", "creation_rules[3] (path_regex \"^hw/\")"),
    ] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        let rel = format!("{sub}/s.yaml");
        std::fs::write(dir.path().join(&rel), "password: CANARY-pw\n").unwrap();
        // An empty key group fails in sops's own words (scripts match
        // them); --verbose names the rule.
        let empty = sub == "empty";
        let mut c = ksec();
        c.current_dir(dir.path()).args(["encrypt", "-i", &rel]);
        if empty {
            c.arg("--verbose");
        }
        let o = run(&mut c);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{sub}: {err}");
        assert!(err.contains(needle), "{sub}: {err}");
        if empty {
            assert!(
                err.contains("Could not generate data key: [empty key group provided]"),
                "{err}"
            );
        } else {
            assert!(err.contains("fix:"), "{sub}: {err}");
        }
        assert!(!err.contains("CANARY"), "{err}");
        let after = std::fs::read_to_string(dir.path().join(&rel)).unwrap();
        assert_eq!(after, "password: CANARY-pw\n", "{sub}: file untouched");
    }
}

#[test]
fn check_judges_paths_even_when_the_applying_rule_is_unusable() {
    let dir = support::bin::tempdir();
    let a = age_key(dir.path(), "a");
    std::fs::write(dir.path().join(".sops.yaml"), mixed_config(&a.recipient)).unwrap();
    std::fs::create_dir_all(dir.path().join("hk")).unwrap();
    std::fs::write(dir.path().join("hk/s.yaml"), "password: CANARY-pw\n").unwrap();
    // The hckms rule applies and cannot encrypt, but it still says the file must be encrypted.
    let o = run(ksec().current_dir(dir.path()).args(["check", "hk/s.yaml"]));
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(out.contains("creation_rules[1]"), "{out}");
    let o = run(ksec()
        .current_dir(dir.path())
        .args(["check", "-o", "json", "hk/s.yaml"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert!(v.is_object(), "{v}");
}

#[test]
fn a_config_error_is_said_once_and_json_is_still_printed() {
    let dir = support::bin::tempdir();
    std::fs::write(dir.path().join(".sops.yaml"), "creation_rules: 7\n").unwrap();
    std::fs::write(dir.path().join("a.yaml"), "a: 1\n").unwrap();
    let o = run(ksec().current_dir(dir.path()).args(["check", "a.yaml"]));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(
        err.matches("creation_rules must be a list").count(),
        1,
        "{err}"
    );
    let o = run(ksec()
        .current_dir(dir.path())
        .args(["check", "-o", "json", "a.yaml"]));
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("creation_rules")),
        "{v}"
    );
}

#[test]
fn staged_check_passes_commits_in_a_repo_with_pgp_and_hckms_rules() {
    if support::bin::tool("git").is_none() {
        return;
    }
    let dir = support::bin::tempdir();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    let a = age_key(repo, "a");
    std::fs::write(repo.join(".sops.yaml"), mixed_config(&a.recipient)).unwrap();
    std::fs::create_dir_all(repo.join("apps")).unwrap();
    std::fs::write(
        repo.join("apps/app.yaml"),
        "user: bob\npassword: CANARY-pw\n",
    )
    .unwrap();
    let o = run(ksec()
        .current_dir(repo)
        .args(["encrypt", "-i", "apps/app.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(repo.join("README"), "hello\n").unwrap();
    git(repo, &["add", ".sops.yaml", "apps/app.yaml", "README"]);
    let o = run(ksec().current_dir(repo).args(["check", "--staged"]));
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

/// Which age recipients a ksec-encrypted YAML file names.
fn age_recipients(p: &Path) -> Vec<String> {
    let text = std::fs::read(p).unwrap();
    let (_, meta) = ksec::sops::store::load_encrypted(ksec::sops::Format::Yaml, &text).unwrap();
    meta.stanzas().map(|s| s.recipient()).collect()
}

#[test]
fn sops_yaml_is_found_from_the_working_folder_like_sops() {
    let dir = support::bin::tempdir();
    let root = dir.path().join("p");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let top = age_key(dir.path(), "top");
    let near = age_key(dir.path(), "near");
    let other = age_key(dir.path(), "other");
    // path_regex sees the path relative to the config's folder: sub/s.yaml.
    std::fs::write(
        root.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: ^sub/s\\.yaml$\n    age: {}\n  - age: {}\n",
            top.recipient, other.recipient
        ),
    )
    .unwrap();
    let plain = "a: 1\n";
    std::fs::write(root.join("sub/s.yaml"), plain).unwrap();
    // The repro: a bare file name in a sub-folder of the config's folder.
    let o = run(ksec()
        .current_dir(root.join("sub"))
        .args(["encrypt", "-i", "s.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        age_recipients(&root.join("sub/s.yaml")),
        vec![top.recipient.clone()]
    );
    // A .sops.yaml beside the file but below the working folder is not
    // seen (sops looks upward from where it runs); `../` forms are cleaned.
    std::fs::write(root.join("sub/s.yaml"), plain).unwrap();
    std::fs::write(
        root.join("sub/.sops.yaml"),
        format!("creation_rules:\n  - age: {}\n", near.recipient),
    )
    .unwrap();
    let o = run(ksec()
        .current_dir(&root)
        .args(["encrypt", "-i", "sub/../sub/s.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        age_recipients(&root.join("sub/s.yaml")),
        vec![top.recipient.clone()]
    );
    // SOPS_CONFIG and --config override the search.
    std::fs::write(root.join("sub/s.yaml"), plain).unwrap();
    let o = run(ksec()
        .current_dir(&root)
        .args(["encrypt", "-i", "sub/s.yaml"])
        .env("SOPS_CONFIG", root.join("sub/.sops.yaml")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        age_recipients(&root.join("sub/s.yaml")),
        vec![near.recipient.clone()]
    );
    // The real sops picks the same rules from the same folders.
    let Some(mut sops) = support::bin::sops_cmd() else {
        return;
    };
    std::fs::write(root.join("sub/t.yaml"), plain).unwrap();
    let o = run(sops
        .current_dir(&root)
        .args(["encrypt", "-i", "sub/t.yaml"]));
    assert!(o.status.success(), "sops: {}", stderr(&o));
    assert_eq!(
        age_recipients(&root.join("sub/t.yaml")),
        vec![other.recipient.clone()]
    );
    std::fs::write(root.join("sub/t.yaml"), plain).unwrap();
    let o = run(ksec()
        .current_dir(&root)
        .args(["encrypt", "-i", "sub/t.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        age_recipients(&root.join("sub/t.yaml")),
        vec![other.recipient]
    );
    let mut sops = support::bin::sops_cmd().unwrap();
    std::fs::write(root.join("sub/s.yaml"), plain).unwrap();
    let o = run(sops
        .current_dir(root.join("sub"))
        .args(["encrypt", "-i", "s.yaml"]));
    assert!(o.status.success(), "sops: {}", stderr(&o));
    assert_eq!(
        age_recipients(&root.join("sub/s.yaml")),
        vec![near.recipient]
    );
}

fn piped(mut c: Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn stdin_with_filename_override_picks_the_rule_and_the_format() {
    let dir = support::bin::tempdir();
    let json_key = age_key(dir.path(), "json");
    let other = age_key(dir.path(), "other");
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: \\.json$\n    age: {}\n  - age: {}\n",
            json_key.recipient, other.recipient
        ),
    )
    .unwrap();
    let plain = br#"{"password": "CANARY-stdin"}"#;
    let mut c = ksec();
    c.current_dir(dir.path())
        .args(["encrypt", "--filename-override", "x.json"]);
    let o = piped(c, plain);
    assert!(o.status.success(), "{}", stderr(&o));
    let enc = o.stdout.clone();
    let (_, meta) = ksec::sops::store::load_encrypted(ksec::sops::Format::Json, &enc).unwrap();
    let rs: Vec<String> = meta.stanzas().map(|s| s.recipient()).collect();
    assert_eq!(rs, vec![json_key.recipient.clone()]);
    // '-' is standard input too; the override gives the format back.
    let mut c = ksec();
    c.current_dir(dir.path())
        .args(["decrypt", "--filename-override", "x.json", "-"])
        .env("SOPS_AGE_KEY_FILE", &json_key.identity_file);
    let o = piped(c, &enc);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["password"], "CANARY-stdin");
    // No file, no override: refused (sops refuses too), nothing printed.
    let mut c = ksec();
    c.current_dir(dir.path()).arg("encrypt");
    let o = piped(c, plain);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--filename-override"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    // A named file with an override: the override's rule and format apply.
    std::fs::write(dir.path().join("data.txt"), plain).unwrap();
    let o = run(ksec().current_dir(dir.path()).args([
        "encrypt",
        "--filename-override",
        "y.json",
        "data.txt",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).trim_start().starts_with('{'), "{}", stdout(&o));
    // The real sops reads ksec's stdin output the same way.
    let Some(mut sops) = support::bin::sops_cmd() else {
        return;
    };
    sops.current_dir(dir.path())
        .args(["decrypt", "--filename-override", "x.json"])
        .env("SOPS_AGE_KEY_FILE", &json_key.identity_file);
    let o = piped(sops, &enc);
    assert!(o.status.success(), "sops: {}", stderr(&o));
    assert!(stdout(&o).contains("CANARY-stdin"));
}

#[test]
fn hckms_recipients_load_and_only_encrypting_to_them_fails() {
    let dir = support::bin::tempdir();
    std::fs::create_dir_all(dir.path().join(".git")).unwrap();
    std::fs::create_dir_all(dir.path().join("recipients")).unwrap();
    std::fs::write(
        dir.path().join("recipients/prod.yaml"),
        "namespaces: [prod]\nhckms:\n  - key_id: tr-west-1:abc\n",
    )
    .unwrap();
    let plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: prod\nstringData:\n  password: CANARY-gcp\n";
    std::fs::write(dir.path().join("s.yaml"), plain).unwrap();
    let o = run(ksec().current_dir(dir.path()).args(["doctor", "s.yaml"]));
    assert_ne!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let o = run(ksec()
        .current_dir(dir.path())
        .args(["encrypt", "-i", "s.yaml"]));
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("hckms keys are not supported by ksec yet"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("s.yaml")).unwrap(),
        plain
    );
}
