//! The pre-commit corpus (precommit-cases.md): every case is a fixture under
//! tests/fixtures/guard/ with its expected verdict in expected.txt. Each is
//! judged by the library (exact finding set) and by the `ksec check` binary
//! (exit code and JSON).
use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ksec::guard::{self, Blob, Options, Severity, Source};
use ksec::keys::KeyRing;
use ksec::keys::age::{AgeSource, IdentityOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guard")
}

#[derive(Debug)]
struct Case {
    id: String,
    target: String,
    verdict: String,
    findings: BTreeSet<String>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("expected.txt")).expect("expected.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 4, "bad expected.txt line: {l}");
            Case {
                id: f[0].into(),
                target: f[1].into(),
                verdict: f[2].into(),
                findings: if f[3] == "-" {
                    BTreeSet::new()
                } else {
                    f[3].split(';').map(str::to_string).collect()
                },
            }
        })
        .collect()
}

/// Reads the other files of a case (kustomizations, env files) from the fixture folder.
struct Dir(PathBuf);

impl Source for Dir {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        std::fs::read(self.0.join(path)).ok()
    }
}

/// The repository's .ksec.yaml excludes the corpus; CLI runs use an empty config.
fn neutral_config() -> PathBuf {
    let p = std::env::temp_dir().join(format!("ksec-guard-neutral-{}.yaml", std::process::id()));
    std::fs::write(&p, "guard: {}\n").unwrap();
    p
}

fn judge(target: &str, verify: Option<&KeyRing>) -> Vec<guard::Finding> {
    let bytes = std::fs::read(root().join(target)).expect("fixture");
    let blob = Blob {
        path: target.to_string(),
        bytes,
        symlink: false,
    };
    let opts = Options {
        verify,
        ..Default::default()
    };
    guard::check_blobs(&[blob], &Dir(root()), &opts)
}

fn set(findings: &[guard::Finding], sev: Severity) -> BTreeSet<String> {
    findings
        .iter()
        .filter(|f| f.severity == sev)
        .map(|f| format!("{}:{}:{}", f.doc_index, f.key_path, f.rule_id.as_str()))
        .collect()
}

fn test_ring() -> KeyRing {
    let src = AgeSource::discover(&IdentityOptions {
        files: vec![root().join("keys/test.agekey")],
    })
    .expect("test identity");
    let mut ring = KeyRing::new();
    ring.add(Box::new(src));
    ring
}

#[test]
fn every_case_has_its_verdict_in_the_library() {
    let ring = test_ring();
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 70, "expected.txt lost cases: {}", all.len());
    for c in &all {
        let f = judge(&c.target, None);
        let errors = set(&f, Severity::Error);
        let warnings = set(&f, Severity::Warning);
        let ok = match c.verdict.as_str() {
            "BLOCK" => errors == c.findings,
            "ALLOW" => errors.is_empty() && warnings.is_empty(),
            "WARN" => errors.is_empty() && warnings == c.findings,
            "VERIFY" => {
                let v = judge(&c.target, Some(&ring));
                errors.is_empty() && set(&v, Severity::Error) == c.findings
            }
            other => panic!("unknown verdict {other}"),
        };
        if !ok {
            failures.push(format!(
                "{} {}: want {} {:?}, got errors {:?} warnings {:?}",
                c.id, c.target, c.verdict, c.findings, errors, warnings
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_encrypted_cases_verify_with_keys() {
    // The ALLOW cases that carry sops metadata must also pass --verify: the
    // fixtures are real encryptions, and mac_only_encrypted (C16) verifies
    // after a plaintext label edit.
    let ring = test_ring();
    for t in [
        "B02-multidoc-sops-whole.yaml",
        "B08-secret.enc.json",
        "C01-full-enc.yaml",
        "C02-regex-enc.yaml",
        "C16-mac-only-encrypted.yaml",
        "C17-enc-comment.yaml",
        "C19-sops-block-not-last.yaml",
        "C20-nested-sops-payload.yaml",
        "D09-sops-env/db.sops.env",
        "E06-sopssecret-enc.yaml",
    ] {
        let f = judge(t, Some(&ring));
        assert!(
            f.iter().all(|f| f.severity != Severity::Error),
            "{t}: {f:?}"
        );
        assert!(
            f.iter().all(|f| f.rule_id.as_str() != "mac-not-verified"),
            "{t}: the key should open it: {f:?}"
        );
    }
}

#[test]
fn clear_values_block_although_the_mac_verifies() {
    // R04–R07 are real sops output: the key opens them and the MAC holds,
    // yet what the rule left in clear still blocks.
    let ring = test_ring();
    for t in [
        "R04-talenv.sops.yaml",
        "R05-clear-annotation.yaml",
        "R06-partial.sops.env",
        "R07-nothing.sops.env",
    ] {
        let f = judge(t, Some(&ring));
        let rules: BTreeSet<&str> = f.iter().map(|f| f.rule_id.as_str()).collect();
        assert!(
            !rules.contains("verify-failed") && !rules.contains("mac-not-verified"),
            "{t}: {f:?}"
        );
        assert!(rules.contains("unencrypted-credential"), "{t}: {f:?}");
        assert_eq!(guard::exit_code(&f), 1, "{t}");
    }
}

#[test]
fn comment_findings_carry_their_line() {
    for (t, needle) in [
        ("X02-private-key-comment.yaml", "# old key:"),
        ("X03-entropy-comment.yaml", "# temp token"),
    ] {
        let text = std::fs::read_to_string(root().join(t)).unwrap();
        let want = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let f = judge(t, None);
        let c: Vec<_> = f
            .iter()
            .filter(|f| f.rule_id.as_str().ends_with("-comment"))
            .collect();
        assert_eq!(c.len(), 1, "{t}: {f:?}");
        assert_eq!(c[0].line, Some(want), "{t}: {f:?}");
    }
}

#[test]
fn mac_not_verified_names_the_recipients_tried() {
    // The key ring's error spans lines; the warning keeps all of it.
    let f = judge("C01-full-enc.yaml", Some(&KeyRing::new()));
    let w = f
        .iter()
        .find(|f| f.rule_id.as_str() == "mac-not-verified")
        .expect("warning");
    assert!(!w.message.contains('\n'), "{}", w.message);
    assert!(!w.message.ends_with(":)"), "{}", w.message);
    assert!(w.message.contains("age age1"), "{}", w.message);
    assert!(w.message.contains("SOPS_AGE_KEY_FILE"), "{}", w.message);
}

#[test]
fn verify_without_keys_warns_mac_not_verified() {
    let empty = KeyRing::new();
    let f = judge("C14-tampered-mac.yaml", Some(&empty));
    assert_eq!(guard::exit_code(&f), 0);
    assert!(
        f.iter()
            .any(|f| f.rule_id.as_str() == "mac-not-verified" && f.severity == Severity::Warning),
        "{f:?}"
    );
}

#[test]
fn findings_never_carry_values() {
    for c in cases() {
        for f in judge(&c.target, None) {
            let key = std::fs::read_to_string(root().join("X01-age-identity.txt")).unwrap();
            let key = key.lines().find(|l| l.starts_with("AGE-")).unwrap()[16..].to_string();
            for needle in ["hunter2", "cGFzc3dvcmQxMjM", "YWRtaW4", key.as_str()] {
                assert!(
                    !f.message.contains(needle),
                    "{}: message leaks a value: {}",
                    c.id,
                    f.message
                );
            }
        }
    }
}

#[test]
fn corpus_ids_are_all_covered() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/precommit-cases.md");
    let Ok(text) = std::fs::read_to_string(&spec) else {
        eprintln!(
            "SKIP: {} is absent (the shared spec folder is not mounted)",
            spec.display()
        );
        return;
    };
    let have: BTreeSet<String> = cases().into_iter().map(|c| c.id).collect();
    let re = regex::Regex::new(r"(?m)^\| ([A-F]\d\d) \|").unwrap();
    let want: BTreeSet<String> = re.captures_iter(&text).map(|c| c[1].to_string()).collect();
    assert!(want.len() >= 55, "corpus parse found only {}", want.len());
    let missing: Vec<&String> = want.difference(&have).collect();
    assert!(
        missing.is_empty(),
        "corpus cases without a fixture: {missing:?}"
    );
    // G01–G10 are git mechanics: tests/it/guard_git.rs covers each one by name.
    let git_tests = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/guard_git.rs"),
    )
    .unwrap();
    for n in 1..=10 {
        let id = format!("g{n:02}_");
        assert!(git_tests.contains(&id), "no git test for G{n:02}");
    }
}

#[test]
fn cli_exit_codes_and_json_match_the_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let neutral = neutral_config();
    for c in cases() {
        let mut cmd = support::bin::ksec();
        cmd.current_dir(root())
            .args(["check", "--output", "json", "--guard-config"])
            .arg(&neutral)
            .arg(&c.target);
        let o = support::bin::run(&mut cmd);
        let want = if c.verdict == "BLOCK" { 1 } else { 0 };
        assert_eq!(
            o.status.code(),
            Some(want),
            "{} {}: {}{}",
            c.id,
            c.target,
            support::bin::stdout(&o),
            support::bin::stderr(&o)
        );
        let j: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{}: not JSON: {e}", c.id));
        let errors = j["errors"].as_u64().unwrap();
        assert_eq!(errors > 0, want == 1, "{}: {j}", c.id);
        if c.verdict == "BLOCK" {
            for f in j["findings"].as_array().unwrap() {
                assert!(
                    f["file"].is_string() && f["doc_index"].is_u64() && f["key_path"].is_string()
                );
            }
        }
    }
    // --verify with the test key blocks C14/C15 through the binary too.
    for t in ["C14-tampered-mac.yaml", "C15-tampered-value.yaml"] {
        let mut cmd = support::bin::ksec();
        cmd.current_dir(root())
            .arg("check")
            .arg("--guard-config")
            .arg(&neutral)
            .args(["--verify", "--identity", "keys/test.agekey", t]);
        let o = support::bin::run(&mut cmd);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{t}: {}",
            support::bin::stdout(&o)
        );
    }
    // Tool error: an unreadable configuration exits 2.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "guard: {exclude: 3}\n").unwrap();
    let mut cmd = support::bin::ksec();
    cmd.current_dir(root()).args([
        "check",
        "--guard-config",
        bad.to_str().unwrap(),
        "A01-plain-data.yaml",
    ]);
    let o = support::bin::run(&mut cmd);
    assert_eq!(o.status.code(), Some(2), "{}", support::bin::stderr(&o));
    // A missing path is a tool error too, not "clean".
    let mut cmd = support::bin::ksec();
    cmd.current_dir(root())
        .args(["check", "--guard-config"])
        .arg(&neutral)
        .arg("no-such-file.yaml");
    assert_eq!(support::bin::run(&mut cmd).status.code(), Some(2));
}

#[test]
fn directory_walk_reports_all_findings_in_stable_order() {
    let neutral = neutral_config();
    let mut cmd = support::bin::ksec();
    cmd.current_dir(root())
        .args(["check", "--output", "json", "--guard-config"])
        .arg(&neutral)
        .arg(".");
    let a = support::bin::run(&mut cmd);
    let mut cmd = support::bin::ksec();
    cmd.current_dir(root())
        .args(["check", "--output", "json", "--guard-config"])
        .arg(&neutral)
        .arg(".");
    let b = support::bin::run(&mut cmd);
    assert_eq!(a.status.code(), Some(1));
    assert_eq!(a.stdout, b.stdout, "output must be stable");
    let j: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let files: BTreeSet<&str> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    let blocking = cases().into_iter().filter(|c| c.verdict == "BLOCK").count();
    // The test key itself is an age identity, allowed by its marker.
    assert!(
        files.len() >= blocking - 1,
        "{} files with errors",
        files.len()
    );
}

#[test]
fn config_excludes_and_path_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("fixtures")).unwrap();
    std::fs::copy(
        root().join("A01-plain-data.yaml"),
        d.join("fixtures/a.yaml"),
    )
    .unwrap();
    std::fs::write(
        d.join(".ksec.yaml"),
        "guard:\n  exclude: [\"fixtures/**\"]\n",
    )
    .unwrap();
    std::fs::write(
        d.join(".sops.yaml"),
        "creation_rules:\n  - path_regex: .*\\.sops\\.ya?ml$\n    age: age1fsnqfjyttvhjvw2n7gg68da3zkcd779dj63amc2mu8jzqg8mqe0qds968c\n",
    )
    .unwrap();
    std::fs::write(
        d.join("app.sops.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  color: blue\n",
    )
    .unwrap();
    std::fs::write(
        d.join("plain.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  color: blue\n",
    )
    .unwrap();
    let mut cmd = support::bin::ksec();
    cmd.current_dir(d).args(["check", "--output", "json", "."]);
    let o = support::bin::run(&mut cmd);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = j["findings"].as_array().unwrap();
    assert_eq!(o.status.code(), Some(1), "{j}");
    assert_eq!(f.len(), 1, "{j}");
    assert_eq!(f[0]["file"], "app.sops.yaml");
    assert_eq!(f[0]["rule_id"], "path-policy");
    // --no-path-policy turns it off; the excluded fixture stays excluded.
    let mut cmd = support::bin::ksec();
    cmd.current_dir(d).args(["check", "--no-path-policy", "."]);
    assert_eq!(support::bin::run(&mut cmd).status.code(), Some(0));
}

#[test]
fn template_folder_with_a_templated_sops_config() {
    // R10 models a cluster template (flux-cluster-template's tmpl/): its
    // .sops.yaml names only ${…} recipients, so it sets no path policy and
    // its Secrets are templates: placeholders and the skeleton around them
    // pass, a fixed user name warns, a credential blocks.
    let neutral = neutral_config();
    let mut cmd = support::bin::ksec();
    cmd.current_dir(root().join("R10-template-folder"))
        .args(["check", "--output", "json", "--guard-config"])
        .arg(&neutral)
        .arg(".");
    let o = support::bin::run(&mut cmd);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let got = |sev: &str| -> BTreeSet<String> {
        j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == sev)
            .map(|f| {
                format!(
                    "{}:{}:{}",
                    f["file"].as_str().unwrap(),
                    f["key_path"].as_str().unwrap(),
                    f["rule_id"].as_str().unwrap()
                )
            })
            .collect()
    };
    let want = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(o.status.code(), Some(1), "{j}");
    assert_eq!(
        got("error"),
        want(&[
            "kubernetes/leaked-secret.sops.yaml:stringData.api-token:plaintext-secret-value",
            "kubernetes/leaked-secret.sops.yaml:stringData.webhook:plaintext-secret-value",
        ]),
        "{j}"
    );
    assert_eq!(
        got("warning"),
        want(&[
            "kubernetes/grafana-admin-secret.sops.yaml:stringData.admin-user:plaintext-secret-value"
        ]),
        "{j}"
    );
}
