//! Git mechanics of the guard (corpus cases G01–G10) in temporary
//! repositories with the real `git`, plus `ksec hook install` as a plain git
//! hook and `ksec scan --history`.
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

struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn git_available() -> bool {
    support::bin::tool("git").is_some()
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let r = Repo { _dir: dir, path };
        r.git(&["init", "-q", "-b", "main"]);
        r.git(&["config", "user.email", "t@example.com"]);
        r.git(&["config", "user.name", "t"]);
        r.git(&["config", "commit.gpgsign", "false"]);
        r.git(&["config", "core.autocrlf", "false"]);
        r
    }

    fn git(&self, args: &[&str]) -> Output {
        let o = Command::new("git")
            .args(args)
            .current_dir(&self.path)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    fn write(&self, rel: &str, bytes: &[u8]) {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    fn commit_all(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--no-verify", "-m", msg]);
    }

    fn ksec(&self, args: &[&str]) -> Output {
        let mut c = support::bin::ksec();
        c.current_dir(&self.path).args(args);
        support::bin::run(&mut c)
    }

    fn staged_json(&self) -> (i32, serde_json::Value) {
        let o = self.ksec(&["check", "--staged", "--output", "json"]);
        let j = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}{}",
                support::bin::stdout(&o),
                support::bin::stderr(&o)
            )
        });
        (o.status.code().unwrap(), j)
    }
}

fn errors(j: &serde_json::Value) -> Vec<(String, String, String)> {
    j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["key_path"].as_str().unwrap().to_string(),
                f["rule_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn g01_staged_plaintext_then_encrypted_on_disk_blocks() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write("README", b"x\n");
    r.commit_all("init");
    r.write("secret.yaml", &fixture("A02-plain-stringdata.yaml"));
    r.git(&["add", "secret.yaml"]);
    // Encrypted only in the working tree, not re-staged.
    r.write("secret.yaml", &fixture("C02-regex-enc.yaml"));
    let (code, j) = r.staged_json();
    assert_eq!(code, 1, "{j}");
    assert_eq!(
        errors(&j),
        vec![(
            "secret.yaml".into(),
            "stringData.password".into(),
            "plaintext-secret-value".into()
        )]
    );
    // The same file on disk is clean: the staged check really read the index.
    let o = r.ksec(&["check", "secret.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", support::bin::stdout(&o));
}

#[test]
fn g02_staged_encrypted_then_decrypted_on_disk_allows() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write("secret.yaml", &fixture("C02-regex-enc.yaml"));
    r.git(&["add", "secret.yaml"]);
    r.write("secret.yaml", &fixture("A01-plain-data.yaml"));
    let (code, j) = r.staged_json();
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["files_checked"], 1);
}

#[test]
fn g03_partial_staging_of_a_plaintext_entry_blocks() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write("db.yaml", &fixture("C02-regex-enc.yaml"));
    r.commit_all("encrypted");
    // Stage only the new plaintext entry (what `git add -p` does), leaving
    // another working-tree edit unstaged.
    r.write("db.yaml", &fixture("C03-edited-after-enc.yaml"));
    r.git(&["add", "db.yaml"]);
    let mut wt = fixture("C03-edited-after-enc.yaml");
    wt.extend_from_slice(b"# unstaged note\n");
    r.write("db.yaml", &wt);
    let (code, j) = r.staged_json();
    assert_eq!(code, 1, "{j}");
    assert_eq!(
        errors(&j),
        vec![(
            "db.yaml".into(),
            "data.newkey".into(),
            "plaintext-secret-value".into()
        )]
    );
}

#[test]
fn g04_value_replaced_by_plaintext_blocks_without_kind_in_the_diff() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    let enc = String::from_utf8(fixture("C02-regex-enc.yaml")).unwrap();
    r.write("db.yaml", enc.as_bytes());
    r.commit_all("encrypted");
    let line = enc
        .lines()
        .find(|l| l.trim_start().starts_with("password:"))
        .unwrap();
    let edited = enc.replace(line, "    password: cGFzc3dvcmQxMjM=");
    r.write("db.yaml", edited.as_bytes());
    r.git(&["add", "db.yaml"]);
    let diff = String::from_utf8(r.git(&["diff", "--cached", "-U0"]).stdout).unwrap();
    assert!(
        !diff.contains("+kind"),
        "kind must be outside the diff: {diff}"
    );
    let (code, j) = r.staged_json();
    assert_eq!(code, 1, "{j}");
    assert_eq!(
        errors(&j),
        vec![(
            "db.yaml".into(),
            "data.password".into(),
            "plaintext-secret-value".into()
        )]
    );
}

#[test]
fn g05_staged_deletion_allows() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write("old.yaml", &fixture("A01-plain-data.yaml"));
    r.commit_all("leak");
    r.git(&["rm", "-q", "old.yaml"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["files_checked"], 0);
}

#[test]
fn g06_escape_hatches_exclude_and_marker() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write("tests/fixtures/a01.yaml", &fixture("A01-plain-data.yaml"));
    r.write(
        ".ksec.yaml",
        b"guard:\n  exclude: [\"tests/fixtures/**\"]\n",
    );
    r.git(&["add", "-A"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 0, "{j}");
    // A file-level marker with a reason allows; without one it blocks.
    let mut marked = b"# ksec:allow reason=fixture\n".to_vec();
    marked.extend(fixture("A01-plain-data.yaml"));
    r.write("other/a01.yaml", &marked);
    r.git(&["add", "-A"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["allowed"], 1, "the allowed finding stays visible: {j}");
    let mut bare = b"# ksec:allow\n".to_vec();
    bare.extend(fixture("A01-plain-data.yaml"));
    r.write("other/a01.yaml", &bare);
    r.git(&["add", "-A"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 1, "{j}");
    assert!(
        errors(&j).iter().any(|e| e.2 == "allow-without-reason"),
        "{j}"
    );
}

#[test]
fn g07_sops_yaml_path_rule_requires_encryption() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write(
        ".sops.yaml",
        b"creation_rules:\n  - path_regex: .*\\.sops\\.ya?ml$\n    age: age1fsnqfjyttvhjvw2n7gg68da3zkcd779dj63amc2mu8jzqg8mqe0qds968c\n",
    );
    r.write(
        "app.sops.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  color: blue\n",
    );
    r.write(
        "plain.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata:\n  color: blue\n",
    );
    r.git(&["add", "-A"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 1, "{j}");
    assert_eq!(
        errors(&j),
        vec![("app.sops.yaml".into(), "".into(), "path-policy".into())]
    );
}

#[test]
fn g08_markdown_with_an_example_secret_is_not_selected() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    let mut md = b"# Example\n\n```yaml\n".to_vec();
    md.extend(fixture("A01-plain-data.yaml"));
    md.extend_from_slice(b"```\n");
    r.write("README.md", &md);
    r.git(&["add", "-A"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 0, "{j}");
}

#[test]
fn g09_staged_symlink_warns() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    std::os::unix::fs::symlink("../shared/secret.yaml", r.path.join("secret.yaml")).unwrap();
    r.git(&["add", "secret.yaml"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 0, "{j}");
    let f = j["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{j}");
    assert_eq!(f[0]["rule_id"], "symlink");
    assert_eq!(f[0]["severity"], "warning");
}

#[test]
fn g10_fifty_staged_files_report_all_in_stable_order() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    for i in 0..49 {
        r.write(
            &format!("apps/app{i:02}/deploy.yaml"),
            format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app{i}}}\nspec: {{replicas: 1}}\n").as_bytes(),
        );
    }
    r.write(
        "apps/app25/secret.yaml",
        &fixture("A02-plain-stringdata.yaml"),
    );
    r.write("apps/app07/secret.yaml", &fixture("A01-plain-data.yaml"));
    r.git(&["add", "-A"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 1, "{j}");
    assert_eq!(j["files_checked"], 51);
    assert_eq!(
        errors(&j),
        vec![
            (
                "apps/app07/secret.yaml".into(),
                "data.password".into(),
                "plaintext-secret-value".into()
            ),
            (
                "apps/app25/secret.yaml".into(),
                "stringData.password".into(),
                "plaintext-secret-value".into()
            ),
        ],
        "every finding, sorted by file"
    );
    let again = r.ksec(&["check", "--staged", "--output", "json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&again.stdout).unwrap(),
        j
    );
}

#[test]
fn plain_git_hook_blocks_commits() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    let bin = env!("CARGO_BIN_EXE_ksec");
    let o = r.ksec(&["hook", "install", "--binary", bin]);
    assert_eq!(o.status.code(), Some(0), "{}", support::bin::stderr(&o));
    let hook = std::fs::read_to_string(r.path.join(".git/hooks/pre-commit")).unwrap();
    assert!(hook.contains("check --staged"));
    r.write("secret.yaml", &fixture("A02-plain-stringdata.yaml"));
    r.git(&["add", "secret.yaml"]);
    let c = Command::new("git")
        .args(["commit", "-q", "-m", "leak"])
        .current_dir(&r.path)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(!c.status.success(), "the hook must block the commit");
    // git sends a hook's stdout to stderr.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&c.stdout),
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(said.contains("stringData.password"), "{said}");
    r.write("secret.yaml", &fixture("C02-regex-enc.yaml"));
    r.git(&["add", "secret.yaml"]);
    r.git(&["commit", "-q", "-m", "encrypted"]);
    // Re-installing updates ksec's own hook; a foreign hook needs --force.
    assert_eq!(
        r.ksec(&["hook", "install", "--binary", bin]).status.code(),
        Some(0)
    );
    std::fs::write(
        r.path.join(".git/hooks/pre-commit"),
        "#!/bin/sh\necho mine\n",
    )
    .unwrap();
    let o = r.ksec(&["hook", "install", "--binary", bin]);
    assert_eq!(o.status.code(), Some(2), "{}", support::bin::stderr(&o));
    assert!(
        std::fs::read_to_string(r.path.join(".git/hooks/pre-commit"))
            .unwrap()
            .contains("mine")
    );
    let o = r.ksec(&["hook", "install", "--force", "--binary", bin]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        std::fs::read_to_string(r.path.join(".git/hooks/pre-commit.ksec-backup"))
            .unwrap()
            .contains("mine")
    );
}

/// A directory walk skips what git ignores (the user's own decrypted
/// output), `--no-ignore` does not, and a file named on the command line is
/// always checked.
#[test]
fn directory_walk_respects_gitignore() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write(".gitignore", b"*.dec.yaml\n");
    r.write("app/db.dec.yaml", &fixture("A02-plain-stringdata.yaml"));
    let o = r.ksec(&["check", "."]);
    assert_eq!(o.status.code(), Some(0), "{}", support::bin::stdout(&o));
    let o = r.ksec(&["check", "--no-ignore", "."]);
    assert_eq!(o.status.code(), Some(1), "{}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("db.dec.yaml"));
    let o = r.ksec(&["check", "app/db.dec.yaml"]);
    assert_eq!(o.status.code(), Some(1), "{}", support::bin::stderr(&o));
}

/// Regression: with `core.hooksPath` set (husky, lefthook, shared hook
/// folders) git never runs .git/hooks, so the hook must go where git looks.
#[test]
fn hook_install_follows_core_hooks_path() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.git(&["config", "core.hooksPath", ".githooks"]);
    let bin = env!("CARGO_BIN_EXE_ksec");
    let o = r.ksec(&["hook", "install", "--binary", bin]);
    assert_eq!(o.status.code(), Some(0), "{}", support::bin::stderr(&o));
    assert!(r.path.join(".githooks/pre-commit").is_file());
    assert!(!r.path.join(".git/hooks/pre-commit").exists());
    r.write("secret.yaml", &fixture("A02-plain-stringdata.yaml"));
    r.git(&["add", "secret.yaml"]);
    let c = Command::new("git")
        .args(["commit", "-q", "-m", "leak"])
        .current_dir(&r.path)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        !c.status.success(),
        "git must run the hook from core.hooksPath"
    );
}

#[test]
fn scan_history_finds_what_was_deleted() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write(
        "a.yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    r.commit_all("one");
    r.write("old/secret.yaml", &fixture("A01-plain-data.yaml"));
    r.commit_all("leak");
    let leak = String::from_utf8(r.git(&["rev-parse", "HEAD"]).stdout)
        .unwrap()
        .trim()
        .to_string();
    r.git(&["rm", "-q", "-r", "old"]);
    r.commit_all("cleanup");
    let o = r.ksec(&["scan", "--history", "--output", "json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        support::bin::stdout(&o),
        support::bin::stderr(&o)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f: Vec<&serde_json::Value> = j["findings"].as_array().unwrap().iter().collect();
    assert_eq!(f.len(), 1, "{j}");
    assert_eq!(f[0]["commit"], leak.as_str());
    assert_eq!(f[0]["file"], "old/secret.yaml");
    assert_eq!(f[0]["key_path"], "data.password");
    // A range that excludes the leak is clean; the summary names the scan.
    let o = r.ksec(&["scan", "--history", &format!("{leak}..HEAD")]);
    assert_eq!(o.status.code(), Some(0), "{}", support::bin::stdout(&o));
    let out = support::bin::stdout(&o);
    assert!(out.starts_with("ksec scan: "), "{out}");
    assert!(!out.contains("ksec check"), "{out}");
    // Not a repository: tool error.
    let d = tempfile::tempdir().unwrap();
    let mut c = support::bin::ksec();
    c.current_dir(d.path()).args(["check", "--staged"]);
    assert_eq!(support::bin::run(&mut c).status.code(), Some(2));
}

/// A plaintext Secret padded past 16 MiB: too big to judge, so it blocks
/// (fail closed) in the staged check and the history scan alike, and passes
/// judgment once `--max-file-size` lets it in.
#[test]
fn oversized_staged_and_historic_files_block_unless_the_limit_is_raised() {
    if !git_available() {
        return;
    }
    let r = Repo::new();
    r.write("README", b"x\n");
    r.commit_all("init");
    let mut big = fixture("A02-plain-stringdata.yaml");
    big.push(b'\n');
    big.extend(std::iter::repeat_n(b'#', (16 << 20) + 1));
    big.push(b'\n');
    r.write("big.yaml", &big);
    r.git(&["add", "big.yaml"]);
    let (code, j) = r.staged_json();
    assert_eq!(code, 1, "{j}");
    assert_eq!(
        errors(&j),
        vec![("big.yaml".into(), "".into(), "not-judged".into())]
    );
    let msg = j["findings"][0]["message"].as_str().unwrap();
    assert!(msg.contains(&(16u64 << 20).to_string()), "{msg}");
    let o = r.ksec(&[
        "check",
        "--staged",
        "--max-file-size",
        "40000000",
        "--output",
        "json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        errors(&j),
        vec![(
            "big.yaml".into(),
            "stringData.password".into(),
            "plaintext-secret-value".into()
        )]
    );
    r.git(&["commit", "-q", "--no-verify", "-m", "big"]);
    let o = r.ksec(&["scan", "--history", "--output", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", support::bin::stdout(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        errors(&j),
        vec![("big.yaml".into(), "".into(), "not-judged".into())]
    );
    let o = r.ksec(&["scan", "--history", "--max-file-size", "40000000"]);
    assert!(
        support::bin::stdout(&o).contains("plaintext-secret-value"),
        "{}",
        support::bin::stdout(&o)
    );
}

/// A clone of `src` made with the real git over file:// (so --filter and
/// --depth apply as they do against a server).
fn clone_of(src: &Repo, args: &[&str]) -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clone");
    let url = format!("file://{}", src.path.display());
    let o = Command::new("git")
        .args(["-c", "protocol.file.allow=always", "clone", "-q"])
        .args(args)
        .arg(&url)
        .arg(&path)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Repo { _dir: dir, path }
}

fn head_id(r: &Repo, rev: &str) -> String {
    String::from_utf8(r.git(&["rev-parse", rev]).stdout)
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn scan_history_survives_partial_and_shallow_clones() {
    if !git_available() {
        return;
    }
    let src = Repo::new();
    src.git(&["config", "uploadpack.allowFilter", "true"]);
    src.write("a.txt", b"one\n");
    src.commit_all("one");
    // A plaintext Secret over 1 KiB, deleted again: a blob:limit=1k clone
    // never fetches it (HEAD's checkout does not need it).
    let mut big = String::from_utf8(fixture("A02-plain-stringdata.yaml")).unwrap();
    big.push_str(&format!("  padding: \"{}\"\n", "x".repeat(2000)));
    src.write("big/secret.yaml", big.as_bytes());
    src.write("leak.yaml", &fixture("A01-plain-data.yaml"));
    src.commit_all("leak");
    let leak = head_id(&src, "HEAD");
    src.git(&["rm", "-q", "-r", "big"]);
    src.commit_all("drop big");
    for n in 0..3 {
        src.write("a.txt", format!("{n}\n").as_bytes());
        src.commit_all("more");
    }

    // Partial clone: the missing blob is a warning naming commit and path.
    let partial = clone_of(&src, &["--filter=blob:limit=1k"]);
    let o = partial.ksec(&["scan", "--history", "--output", "json"]);
    let err = support::bin::stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{err}{}",
        support::bin::stdout(&o)
    );
    assert!(
        err.contains(&format!("commit {}: big/secret.yaml", &leak[..12])),
        "{err}"
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = j["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{j}");
    assert_eq!(f[0]["file"], "leak.yaml");
    // Already leaked: the fix is rotation, not encryption.
    let msg = f[0]["message"].as_str().unwrap();
    assert!(msg.contains("rotate"), "{msg}");
    assert!(!msg.contains("ksec encrypt -i"), "{msg}");

    // Shallow clone: a range reaching past the boundary is clipped (and
    // leak.yaml, still in HEAD, is found within the clone).
    let shallow = clone_of(&src, &["--depth", "2"]);
    let o = shallow.ksec(&["scan", "--history", "HEAD~4..HEAD"]);
    let err = support::bin::stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{err}{}",
        support::bin::stdout(&o)
    );
    assert!(err.contains("shallow clone's boundary"), "{err}");
    // The whole (shallow) history says where it stops; a typo stays an error.
    let o = shallow.ksec(&["scan", "--history"]);
    assert_eq!(o.status.code(), Some(1), "{}", support::bin::stderr(&o));
    assert!(
        support::bin::stderr(&o).contains("boundary commit"),
        "{}",
        support::bin::stderr(&o)
    );
    let o = shallow.ksec(&["scan", "--history", "no-such-branch..HEAD"]);
    assert_eq!(o.status.code(), Some(2), "{}", support::bin::stderr(&o));
}

#[test]
fn scan_history_judges_template_folders_as_check_does() {
    // R10 (a cluster template whose .sops.yaml names ${…} recipients),
    // committed under tmpl/: history has no path policy, but the commit's
    // own .sops.yaml still makes its Secrets templates.
    if !git_available() {
        return;
    }
    let r = Repo::new();
    for f in [
        ".sops.yaml",
        "kubernetes/grafana-admin-secret.sops.yaml",
        "kubernetes/tunnel-secret.sops.yaml",
        "kubernetes/leaked-secret.sops.yaml",
    ] {
        r.write(
            &format!("tmpl/{f}"),
            &fixture(&format!("R10-template-folder/{f}")),
        );
    }
    r.commit_all("template");
    let o = r.ksec(&["scan", "--history", "--output", "json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut e: Vec<String> = errors(&j)
        .into_iter()
        .map(|(f, k, _)| format!("{f}:{k}"))
        .collect();
    e.sort();
    assert_eq!(
        e,
        vec![
            "tmpl/kubernetes/leaked-secret.sops.yaml:stringData.api-token",
            "tmpl/kubernetes/leaked-secret.sops.yaml:stringData.webhook",
        ],
        "{j}"
    );
    let warned = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["severity"] == "warning" && f["key_path"] == "stringData.admin-user");
    assert!(warned, "{j}");
}
