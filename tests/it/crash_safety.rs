//! Crash-safe writes: SIGKILL `encrypt -i`, `rotate -i`, `updatekeys`, `set`
//! and `edit` at random points; the file must always be the old or a complete
//! new version, never truncated, never plaintext where ciphertext was.
use crate::support;

use std::path::Path;
use std::time::Duration;

use ksec::sops::{Format, store};
use support::bin::{SECRET_YAML, age_key, ksec, run};

fn state(bytes: &[u8], key: &Path, old: &[u8]) -> &'static str {
    if bytes == old {
        return "old";
    }
    let s = std::str::from_utf8(bytes).expect("utf-8");
    assert!(
        !s.contains("CANARY"),
        "plaintext where ciphertext should be"
    );
    store::load_encrypted(Format::Yaml, bytes).expect("a complete encrypted file");
    let o = run(ksec()
        .arg("decrypt")
        .arg("--input-type")
        .arg("yaml")
        .arg("-")
        .env("SOPS_AGE_KEY_FILE", key)
        .stdin(std::fs::File::open(write_tmp(bytes).path()).unwrap()));
    assert!(
        o.status.success(),
        "new version does not decrypt: {}",
        support::bin::stderr(&o)
    );
    "new"
}

fn write_tmp(b: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), b).unwrap();
    f
}

fn kill_loop(
    label: &str,
    rounds: u32,
    setup: impl Fn(&Path) -> Vec<u8>,
    cmd: impl Fn(&Path) -> std::process::Command,
    key: &Path,
    allow_plain_old: bool,
) -> (u32, u32, u32) {
    let dir = support::bin::tempdir();
    let f = dir.path().join("s.yaml");
    let (mut olds, mut news, mut leftovers) = (0, 0, 0);
    for i in 0..rounds {
        let old = setup(&f);
        let mut c = cmd(&f);
        let mut child = c.spawn().unwrap();
        // Spread kill points over the command's run time (a few ms in debug builds).
        std::thread::sleep(Duration::from_micros((i as u64 * 7919) % 20_000));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let bytes = std::fs::read(&f).unwrap();
        if bytes == old {
            olds += 1;
            if !allow_plain_old {
                assert!(!String::from_utf8_lossy(&bytes).contains("CANARY"));
            }
        } else {
            assert_eq!(state(&bytes, key, &old), "new", "{label} round {i}");
            news += 1;
        }
        for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with(".ksec-") {
                leftovers += 1;
                let t = std::fs::read(e.path()).unwrap();
                assert!(
                    !String::from_utf8_lossy(&t).contains("CANARY"),
                    "{label}: plaintext temp file left behind"
                );
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    eprintln!(
        "{label}: {rounds} kills, {olds} old, {news} new, {leftovers} orphaned temp files (ciphertext only)"
    );
    assert_eq!(olds + news, rounds);
    (olds, news, leftovers)
}

#[test]
fn sigkill_never_leaves_a_broken_or_plaintext_file() {
    let keys = support::bin::tempdir();
    let k = age_key(keys.path(), "k");
    let k2 = age_key(keys.path(), "k2");
    let rec = k.recipient.clone();
    let encrypted = {
        let d = support::bin::tempdir();
        let p = d.path().join("s.yaml");
        std::fs::write(&p, SECRET_YAML).unwrap();
        assert!(
            run(ksec().args(["encrypt", "-i", "--age", &rec]).arg(&p))
                .status
                .success()
        );
        std::fs::read(&p).unwrap()
    };
    let put = |bytes: Vec<u8>| {
        move |f: &Path| {
            std::fs::write(f, &bytes).unwrap();
            bytes.clone()
        }
    };
    let id = k.identity_file.clone();
    let mut total = 0;
    let r = kill_loop(
        "encrypt -i",
        60,
        put(SECRET_YAML.as_bytes().to_vec()),
        |f| {
            let mut c = ksec();
            c.args(["encrypt", "-i", "--age", &rec]).arg(f);
            c
        },
        &id,
        true,
    );
    total += r.0 + r.1;
    let r = kill_loop(
        "rotate -i",
        60,
        put(encrypted.clone()),
        |f| {
            let mut c = ksec();
            c.args(["rotate", "-i"])
                .arg(f)
                .env("SOPS_AGE_KEY_FILE", &id);
            c
        },
        &id,
        false,
    );
    total += r.0 + r.1;
    let r = kill_loop(
        "rotate -i --add-age",
        40,
        put(encrypted.clone()),
        |f| {
            let mut c = ksec();
            c.args(["rotate", "-i", "--add-age", &k2.recipient])
                .arg(f)
                .env("SOPS_AGE_KEY_FILE", &id);
            c
        },
        &id,
        false,
    );
    total += r.0 + r.1;
    let r = kill_loop(
        "set",
        40,
        put(encrypted.clone()),
        |f| {
            let mut c = ksec();
            c.arg("set")
                .arg(f)
                .args(["[\"stringData\"][\"password\"]", "\"CANARY-new\""])
                .env("SOPS_AGE_KEY_FILE", &id);
            c
        },
        &id,
        false,
    );
    total += r.0 + r.1;
    let editor = keys.path().join("ed.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/CANARY-password-8c1f/CANARY-edited/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let runtime = support::bin::tempdir();
    let r = kill_loop(
        "edit",
        40,
        put(encrypted.clone()),
        |f| {
            let mut c = ksec();
            c.arg("edit")
                .arg(f)
                .env("SOPS_AGE_KEY_FILE", &id)
                .env("EDITOR", &editor)
                .env("XDG_RUNTIME_DIR", runtime.path());
            c
        },
        &id,
        false,
    );
    total += r.0 + r.1;
    // SIGKILL cannot be caught: an edit killed while the editor runs may leave
    // its buffer (on tmpfs, in a 0700 folder). SIGTERM/SIGINT/SIGHUP are
    // handled (tests/it/cli.rs); the next `ksec edit` removes a dead run's buffer.
    let left: Vec<_> = std::fs::read_dir(runtime.path())
        .unwrap()
        .flatten()
        .collect();
    eprintln!("edit: {} buffers left by SIGKILL", left.len());
    for e in &left {
        let m = std::fs::metadata(e.path()).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o077,
            0,
            "buffer dir must be private"
        );
    }
    let noop = keys.path().join("noop.sh");
    std::fs::write(&noop, "#!/bin/sh\ntrue\n").unwrap();
    std::fs::set_permissions(&noop, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let f = keys.path().join("reap.yaml");
    std::fs::write(&f, &encrypted).unwrap();
    let o = run(ksec()
        .arg("edit")
        .arg(&f)
        .env("SOPS_AGE_KEY_FILE", &id)
        .env("EDITOR", &noop)
        .env("XDG_RUNTIME_DIR", runtime.path()));
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert_eq!(
        std::fs::read_dir(runtime.path()).unwrap().count(),
        0,
        "the next edit must remove buffers of killed runs"
    );
    eprintln!("total kill points tried: {total}");
}
