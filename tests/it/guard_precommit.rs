//! The guard under the real pre-commit framework (PyPI `pre-commit`):
//! a `repo: local` hook in a temporary repository, and the repository's own
//! `.pre-commit-hooks.yaml` validated by pre-commit itself.
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/guard")
            .join(name),
    )
    .expect(name)
}

fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap()
}

fn ok(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

struct Env {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    home: PathBuf,
    pre_commit: PathBuf,
}

fn setup() -> Option<Env> {
    let pre_commit = support::bin::tool("pre-commit")?;
    support::bin::tool("git")?;
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let home = tmp.path().join("pc-home");
    std::fs::create_dir_all(&repo).unwrap();
    ok(git(&repo, &["init", "-q", "-b", "main"]), "git init");
    for (k, v) in [
        ("user.email", "t@example.com"),
        ("user.name", "t"),
        ("commit.gpgsign", "false"),
    ] {
        ok(git(&repo, &["config", k, v]), "git config");
    }
    let bin = env!("CARGO_BIN_EXE_ksec");
    std::fs::write(
        repo.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: local\n    hooks:\n      - id: ksec-check\n        name: ksec check\n        entry: {bin} check\n        language: system\n        types: [file]\n        require_serial: true\n"
        ),
    )
    .unwrap();
    std::fs::write(repo.join("README.md"), "x\n").unwrap();
    ok(git(&repo, &["add", "-A"]), "add");
    ok(git(&repo, &["commit", "-q", "-m", "init"]), "commit");
    Some(Env {
        _tmp: tmp,
        repo,
        home,
        pre_commit,
    })
}

impl Env {
    fn pc(&self, args: &[&str]) -> Output {
        Command::new(&self.pre_commit)
            .args(args)
            .current_dir(&self.repo)
            .env("PRE_COMMIT_HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap()
    }

    fn commit(&self, msg: &str) -> Output {
        Command::new("git")
            .args(["commit", "-q", "-m", msg])
            .current_dir(&self.repo)
            .env("PRE_COMMIT_HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap()
    }
}

fn said(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn local_repo_hook_blocks_plaintext_and_allows_encrypted() {
    let Some(e) = setup() else { return };
    ok(e.pc(&["install"]), "pre-commit install");
    std::fs::write(
        e.repo.join("secret.yaml"),
        fixture("A02-plain-stringdata.yaml"),
    )
    .unwrap();
    ok(git(&e.repo, &["add", "secret.yaml"]), "add");
    let o = e.commit("leak");
    assert!(!o.status.success(), "must block: {}", said(&o));
    let out = said(&o);
    assert!(out.contains("Failed"), "{out}");
    assert!(out.contains("stringData.password"), "{out}");

    std::fs::write(e.repo.join("secret.yaml"), fixture("C02-regex-enc.yaml")).unwrap();
    ok(git(&e.repo, &["add", "secret.yaml"]), "add");
    let o = e.commit("encrypted");
    assert!(o.status.success(), "must pass: {}", said(&o));
}

#[test]
fn local_repo_hook_judges_staged_content_when_the_tree_differs() {
    // G01 under the framework: pre-commit stashes unstaged changes, so the
    // staged plaintext is what ksec sees although the disk copy is encrypted.
    let Some(e) = setup() else { return };
    ok(e.pc(&["install"]), "pre-commit install");
    std::fs::write(
        e.repo.join("secret.yaml"),
        fixture("A02-plain-stringdata.yaml"),
    )
    .unwrap();
    ok(git(&e.repo, &["add", "secret.yaml"]), "add");
    std::fs::write(e.repo.join("secret.yaml"), fixture("C02-regex-enc.yaml")).unwrap();
    let o = e.commit("leak");
    assert!(!o.status.success(), "must block: {}", said(&o));
    // The unstaged encrypted copy is restored afterwards.
    let disk = std::fs::read(e.repo.join("secret.yaml")).unwrap();
    assert_eq!(disk, fixture("C02-regex-enc.yaml"));
}

#[test]
fn local_repo_hook_honours_exclude_and_markdown_is_allowed() {
    let Some(e) = setup() else { return };
    // G06 (the hook's own `exclude`) and G08 (README with an example Secret).
    std::fs::write(
        e.repo.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n  - repo: local\n    hooks:\n      - id: ksec-check\n        name: ksec check\n        entry: {} check\n        language: system\n        types: [file]\n        exclude: ^tests/fixtures/\n",
            env!("CARGO_BIN_EXE_ksec")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(e.repo.join("tests/fixtures")).unwrap();
    std::fs::write(
        e.repo.join("tests/fixtures/a01.yaml"),
        fixture("A01-plain-data.yaml"),
    )
    .unwrap();
    let mut md = b"```yaml\n".to_vec();
    md.extend(fixture("A01-plain-data.yaml"));
    md.extend_from_slice(b"```\n");
    std::fs::write(e.repo.join("README.md"), md).unwrap();
    ok(git(&e.repo, &["add", "-A"]), "add");
    let o = e.pc(&["run"]);
    assert!(o.status.success(), "{}", said(&o));
    let o = e.pc(&["run", "--files", "tests/fixtures/a01.yaml"]);
    assert!(o.status.success(), "excluded even when named: {}", said(&o));
    // Control: the same file outside the excluded folder is caught.
    std::fs::create_dir_all(e.repo.join("other")).unwrap();
    std::fs::write(
        e.repo.join("other/a01.yaml"),
        fixture("A01-plain-data.yaml"),
    )
    .unwrap();
    ok(git(&e.repo, &["add", "-A"]), "add");
    let o = e.pc(&["run", "--files", "other/a01.yaml"]);
    assert!(!o.status.success(), "{}", said(&o));
}

#[test]
fn repository_manifest_is_valid_for_pre_commit() {
    let Some(pc) = support::bin::tool("pre-commit") else {
        return;
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join(".pre-commit-hooks.yaml");
    let o = Command::new(pc)
        .args(["validate-manifest"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", said(&o));
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("language: rust") && text.contains("entry: ksec check"));
}
