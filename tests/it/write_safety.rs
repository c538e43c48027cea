//! Where `-i` writes land (src/fsio): through symlinks, never over hard
//! links or read-only files, never as a file named `-`; temp files private
//! from creation and removed on SIGTERM or by the next run after SIGKILL;
//! directory walks that name what they pass over.
use crate::support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::bin::{AgeKey, SECRET_YAML, age_key, ksec, run, stderr};

struct Repo {
    dir: tempfile::TempDir,
    key: AgeKey,
}

/// A repo whose `prod` namespace is encrypted to one age key.
fn repo() -> Repo {
    let dir = support::bin::tempdir();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::create_dir(dir.path().join("recipients")).unwrap();
    let key = age_key(dir.path(), "prod-key");
    std::fs::write(
        dir.path().join("recipients/prod.yaml"),
        format!("namespaces: [prod]\nage:\n  - {}\n", key.recipient),
    )
    .unwrap();
    Repo { dir, key }
}

impl Repo {
    fn file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }
    fn encrypt(&self, f: &Path) {
        let o = run(ksec().args(["encrypt", "-i"]).arg(f));
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ksec-"))
        .collect()
}

#[test]
fn encrypt_in_place_writes_through_a_symlink() {
    let r = repo();
    let target = r.file("elsewhere/s.yaml", SECRET_YAML);
    let link = r.dir.path().join("l.yaml");
    std::os::unix::fs::symlink("elsewhere/s.yaml", &link).unwrap();
    r.encrypt(&link);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let t = std::fs::read_to_string(&target).unwrap();
    assert!(
        !t.contains("CANARY"),
        "the link's target is still plaintext"
    );
    assert!(t.contains("ENC[AES256_GCM"));
    assert!(temp_files(r.dir.path()).is_empty());
    assert!(temp_files(target.parent().unwrap()).is_empty());
}

#[test]
fn a_hard_linked_file_is_refused_and_left_as_it_was() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    let other = r.dir.path().join("other.yaml");
    std::fs::hard_link(&f, &other).unwrap();
    let o = run(ksec().args(["encrypt", "-i"]).arg(&f));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("hard links"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("CANARY"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), SECRET_YAML);
    assert_eq!(std::fs::metadata(&f).unwrap().nlink(), 2);
}

#[test]
fn a_read_only_file_is_refused_and_a_rewrite_keeps_the_mode() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o444)).unwrap();
    let o = run(ksec().args(["encrypt", "-i"]).arg(&f));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("read-only"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), SECRET_YAML);
    assert_eq!(mode(&f), 0o444);

    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    r.encrypt(&f);
    assert_eq!(mode(&f), 0o640, "encrypt -i changed the file's mode");
    let o = run(ksec()
        .args(["decrypt", "-i"])
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.key.identity_file));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&f), 0o640, "decrypt -i changed the file's mode");
    let out = r.dir.path().join("new-plain.yaml");
    r.encrypt(&f);
    let o = run(ksec()
        .arg("decrypt")
        .arg("--output-file")
        .arg(&out)
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &r.key.identity_file));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&out), 0o600, "a new plaintext file must be 0600");
}

#[test]
fn in_place_on_stdin_is_a_usage_error() {
    let r = repo();
    for cmd in [["encrypt", "-i"], ["decrypt", "-i"], ["rotate", "-i"]] {
        let o = run(ksec()
            .args(cmd)
            .arg("-")
            .args(["--input-type", "yaml"])
            .current_dir(r.dir.path())
            .env("SOPS_AGE_KEY_FILE", &r.key.identity_file)
            .stdin(std::process::Stdio::null()));
        assert_eq!(o.status.code(), Some(2), "{cmd:?}: {}", stderr(&o));
        assert!(
            !r.dir.path().join("-").exists(),
            "{cmd:?} created a file named -"
        );
    }
}

#[test]
fn a_directory_walk_names_the_hidden_files_and_symlinks_it_skips() {
    let r = repo();
    r.file("apps/s.yaml", SECRET_YAML);
    r.file("apps/.hidden.yaml", SECRET_YAML);
    r.file("apps/.private/s.yaml", SECRET_YAML);
    r.file("outside/t.yaml", SECRET_YAML);
    std::os::unix::fs::symlink("../outside/t.yaml", r.dir.path().join("apps/link.yaml")).unwrap();
    let apps = r.dir.path().join("apps");
    let o = run(ksec().args(["encrypt", "-i"]).arg(&apps));
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    for name in [".hidden.yaml", ".private", "link.yaml"] {
        assert!(
            e.lines()
                .any(|l| l.starts_with("skipped") && l.contains(name)),
            "{name} not reported as skipped:\n{e}"
        );
    }
    // and in the JSON report
    r.file("apps/s.yaml", SECRET_YAML);
    let o = run(ksec()
        .args(["encrypt", "-i", "--report", "json"])
        .arg(&apps));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let skipped: Vec<String> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "skipped")
        .map(|f| f["file"].as_str().unwrap().to_string())
        .collect();
    for name in [".hidden.yaml", ".private", "link.yaml"] {
        assert!(
            skipped.iter().any(|s| s.ends_with(name)),
            "{name} not in {skipped:?}"
        );
    }
}

/// SIGTERM while `decrypt -i` waits for its key command: the file is
/// untouched and no temp file is left.
#[test]
fn sigterm_during_decrypt_in_place_leaves_no_temp_file() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    r.encrypt(&f);
    let before = std::fs::read(&f).unwrap();
    let started = r.dir.path().join("started");
    let cmd = format!(
        "touch {}; sleep 30; cat {}",
        started.display(),
        r.key.identity_file.display()
    );
    let mut child = ksec()
        .args(["decrypt", "-i"])
        .arg(&f)
        .env("SOPS_AGE_KEY_CMD", &cmd)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the key command never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(!child.wait().unwrap().success());
    assert_eq!(std::fs::read(&f).unwrap(), before);
    assert!(temp_files(r.dir.path()).is_empty());
}

/// SIGTERM at spread-out points of `decrypt -i`'s run: whatever the
/// moment, no temp file (plaintext) survives, and the file is whole.
#[test]
fn sigterm_at_any_point_of_decrypt_in_place_removes_the_temp_file() {
    let r = repo();
    let f = r.dir.path().join("s.yaml");
    let mut encrypted = None;
    for i in 0..60u64 {
        match &encrypted {
            None => {
                std::fs::write(&f, SECRET_YAML).unwrap();
                r.encrypt(&f);
                encrypted = Some(std::fs::read(&f).unwrap());
            }
            Some(b) => std::fs::write(&f, b).unwrap(),
        }
        let mut child = ksec()
            .args(["decrypt", "-i"])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &r.key.identity_file)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros((i * 7919) % 30_000));
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let _ = child.wait();
        let left = temp_files(r.dir.path());
        assert!(left.is_empty(), "round {i}: temp files left: {left:?}");
        let now = std::fs::read(&f).unwrap();
        assert!(
            Some(&now) == encrypted.as_ref() || now == SECRET_YAML.as_bytes() || {
                let s = String::from_utf8_lossy(&now);
                s.contains("CANARY-password-8c1f")
            },
            "round {i}: neither the old nor a complete new file"
        );
    }
}

/// A temp file left by a SIGKILLed run (its pid is gone) is removed by the
/// next write in that folder; one of a live process, or not ours by name, stays.
#[test]
fn the_next_write_reaps_a_stale_temp_file_of_a_dead_run() {
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    // A pid that is surely gone: a child that has exited and been reaped.
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let id = c.id();
        c.wait().unwrap();
        id
    };
    let stale = r.dir.path().join(format!(".ksec-{dead}-AbC123.tmp"));
    std::fs::write(&stale, "CANARY plaintext of a killed run").unwrap();
    let live = r
        .dir
        .path()
        .join(format!(".ksec-{}-XyZ789.tmp", std::process::id()));
    std::fs::write(&live, "in use").unwrap();
    let foreign = r.dir.path().join(".ksec-notes.tmp");
    std::fs::write(&foreign, "not ours").unwrap();
    r.encrypt(&f);
    assert!(
        !stale.exists(),
        "the stale temp file of a dead run was kept"
    );
    assert!(live.exists(), "a live process's temp file was removed");
    assert!(foreign.exists(), "a file not named like ours was removed");
}

/// The temp file is 0600 while it holds content, whatever the target's mode.
#[test]
fn temp_files_are_private_while_written() {
    // Observed from outside: poll the folder during many writes of a 0644 file.
    let r = repo();
    let f = r.file("s.yaml", SECRET_YAML);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    r.encrypt(&f);
    let encrypted = std::fs::read(&f).unwrap();
    let dir = r.dir.path().to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for e in std::fs::read_dir(&dir).unwrap().flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if !n.starts_with(".ksec-") {
                        continue;
                    }
                    if let Ok(m) = e.metadata() {
                        if m.len() > 0 {
                            seen.push(m.permissions().mode() & 0o777);
                        }
                    }
                }
            }
            seen
        })
    };
    for _ in 0..15 {
        std::fs::write(&f, &encrypted).unwrap();
        let o = run(ksec()
            .args(["decrypt", "-i"])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &r.key.identity_file));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher.join().unwrap();
    let loose = seen.iter().filter(|m| **m != 0o600).count();
    eprintln!("temp files observed with content: {}", seen.len());
    assert_eq!(loose, 0, "temp files holding content that were not 0600");
    assert_eq!(mode(&f), 0o644);
}
