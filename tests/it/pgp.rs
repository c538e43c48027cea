//! PGP recipients through GnuPG, both ways with the real sops and gpg:
//! a throw-away GNUPGHOME per test (short path under /tmp: gpg-agent's
//! socket path is limited), its agent killed at the end.
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::bin::{ksec, run, stderr, stdout};

const PLAIN: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  password: CANARY-pgp-4b1e\n";

/// A GnuPG home with one generated key (no passphrase); the agent is killed on drop.
struct Gpg {
    home: tempfile::TempDir,
    gpg: PathBuf,
    fp: String,
}

impl Gpg {
    fn new() -> Option<Gpg> {
        let gpg = support::bin::tool("gpg")?;
        let home = tempfile::Builder::new()
            .prefix("kg")
            .tempdir_in("/tmp")
            .unwrap();
        let cmd = || {
            let mut c = Command::new(&gpg);
            c.env("GNUPGHOME", home.path());
            c
        };
        let o = cmd()
            .args(["--batch", "--passphrase", "", "--quick-gen-key"])
            .args([
                "ksec test <ksec@example.com>",
                "futuredefault",
                "default",
                "never",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "gen-key: {}", stderr(&o));
        let o = cmd()
            .args(["--with-colons", "--list-keys"])
            .output()
            .unwrap();
        let fp = stdout(&o)
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .expect("a fingerprint");
        Some(Gpg { home, gpg, fp })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.gpg);
        c.env("GNUPGHOME", self.home.path());
        c
    }

    fn env(&self, c: &mut Command) {
        c.env("GNUPGHOME", self.home.path());
    }

    /// Drops the secret key, keeping the public one.
    fn forget_secret(&self) {
        let o = self
            .cmd()
            .args(["--batch", "--yes", "--delete-secret-keys", &self.fp])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.home.path())
            .output();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn pgp_fps(p: &Path) -> Vec<String> {
    let text = std::fs::read(p).unwrap();
    let (_, meta) = ksec::sops::store::load_encrypted(ksec::sops::Format::Yaml, &text).unwrap();
    meta.stanzas()
        .filter(|s| s.kind() == "pgp")
        .map(|s| s.recipient())
        .collect()
}

#[test]
fn sops_encrypts_with_pgp_and_ksec_decrypts() {
    let Some(g) = Gpg::new() else { return };
    let Some(mut sops) = support::bin::sops_cmd() else {
        return;
    };
    let dir = support::bin::tempdir();
    let f = write(dir.path(), "s.yaml", PLAIN);
    g.env(&mut sops);
    let o = run(sops
        .current_dir(dir.path())
        .args(["encrypt", "--pgp", &g.fp, "-i", "s.yaml"]));
    assert!(o.status.success(), "sops: {}", stderr(&o));
    assert_eq!(pgp_fps(&f), vec![format!("pgp:{}", g.fp)]);
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.args(["decrypt", "-v"]).arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("CANARY-pgp-4b1e"), "{}", stdout(&o));
    let want = format!("opened by pgp:{} (group 0)", g.fp);
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}

#[test]
fn ksec_encrypts_with_pgp_and_sops_decrypts() {
    let Some(g) = Gpg::new() else { return };
    let Some(mut sops) = support::bin::sops_cmd() else {
        return;
    };
    let dir = support::bin::tempdir();
    let f = write(dir.path(), "s.yaml", PLAIN);
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.args(["encrypt", "-i", "--pgp", &g.fp]).arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&f).unwrap();
    assert!(!text.contains("CANARY"), "{text}");
    assert!(text.contains("-----BEGIN PGP MESSAGE-----"), "{text}");
    g.env(&mut sops);
    let o = run(sops.args(["decrypt"]).arg(&f));
    assert!(o.status.success(), "sops: {}", stderr(&o));
    assert!(stdout(&o).contains("CANARY-pgp-4b1e"));
    // SOPS_PGP_FP is the flag's environment variable, as in sops.
    let f2 = write(dir.path(), "t.yaml", PLAIN);
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.args(["encrypt", "-i"]).arg(&f2).env("SOPS_PGP_FP", &g.fp));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pgp_fps(&f2), vec![format!("pgp:{}", g.fp)]);
}

#[test]
fn sops_yaml_and_recipients_files_name_pgp_keys() {
    let Some(g) = Gpg::new() else { return };
    let dir = support::bin::tempdir();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    write(
        dir.path(),
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - path_regex: ^grouped/\n    key_groups:\n      - pgp:\n          - {fp}\n  - pgp: '{fp}'\n",
            fp = g.fp
        ),
    );
    let f = write(dir.path(), "s.yaml", PLAIN);
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.current_dir(dir.path()).args(["encrypt", "-i", "s.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pgp_fps(&f), vec![format!("pgp:{}", g.fp)]);
    std::fs::create_dir(dir.path().join("grouped")).unwrap();
    let f = write(dir.path(), "grouped/s.yaml", PLAIN);
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k
        .current_dir(dir.path())
        .args(["encrypt", "-i", "grouped/s.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(pgp_fps(&f), vec![format!("pgp:{}", g.fp)]);
    // recipients/<env>.yaml: pgp as a list
    std::fs::create_dir(dir.path().join("recipients")).unwrap();
    write(
        dir.path(),
        "recipients/prod.yaml",
        &format!("namespaces: [prod]\npgp: [{}]\n", g.fp),
    );
    let f = write(dir.path(), "r.yaml", PLAIN);
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k
        .current_dir(dir.path())
        .args(["encrypt", "-i", "-v", "r.yaml"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("recipients/prod.yaml"),
        "{}",
        stderr(&o)
    );
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.arg("decrypt").arg(&f));
    assert!(stdout(&o).contains("CANARY-pgp-4b1e"), "{}", stderr(&o));
    // doctor loads the pgp environment and knows its recipient.
    let o = run(ksec()
        .current_dir(dir.path())
        .args(["doctor", "-o", "json", "r.yaml"]));
    let out = stdout(&o);
    assert_ne!(o.status.code(), Some(2), "{out}{}", stderr(&o));
    assert!(!out.contains("unknown-recipient"), "{out}");
}

#[test]
fn sops_gpg_exec_is_honoured() {
    let Some(g) = Gpg::new() else { return };
    let dir = support::bin::tempdir();
    let log = dir.path().join("calls.log");
    let wrapper = dir.path().join("gpg-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            g.gpg.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = write(dir.path(), "s.yaml", PLAIN);
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k
        .args(["encrypt", "-i", "--pgp", &g.fp])
        .arg(&f)
        .env("SOPS_GPG_EXEC", &wrapper));
    assert!(o.status.success(), "{}", stderr(&o));
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.arg("decrypt").arg(&f).env("SOPS_GPG_EXEC", &wrapper));
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.contains("--encrypt") && calls.contains(&g.fp),
        "{calls}"
    );
    assert!(calls.contains("--decrypt"), "{calls}");
    // A missing program: a clear error, exit 1, the file untouched.
    let before = std::fs::read(&f).unwrap();
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k
        .args(["rotate", "-i"])
        .arg(&f)
        .env("SOPS_GPG_EXEC", "/nonexistent/gpg"));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/gpg"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&f).unwrap(), before);
}

#[test]
fn missing_keys_are_named_with_the_fix() {
    let Some(g) = Gpg::new() else { return };
    let dir = support::bin::tempdir();
    // Encrypting to a key not in the keyring.
    let f = write(dir.path(), "s.yaml", PLAIN);
    let unknown = "0123456789ABCDEF0123456789ABCDEF01234567";
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.args(["encrypt", "-i", "--pgp", unknown]).arg(&f));
    let err = stderr(&o);
    assert!(matches!(o.status.code(), Some(1 | 2)), "{err}");
    assert!(
        err.contains(unknown) && err.contains("gpg --import"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), PLAIN);
    // Decrypting without the secret key: the hint speaks of GnuPG, not age.
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.args(["encrypt", "-i", "--pgp", &g.fp]).arg(&f));
    assert!(o.status.success(), "{}", stderr(&o));
    g.forget_secret();
    let mut k = ksec();
    g.env(&mut k);
    let o = run(k.arg("decrypt").arg(&f));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("pgp:{}", g.fp)), "{err}");
    assert!(!err.contains("pgp pgp:"), "{err}");
    assert!(err.contains("gpg --import"), "{err}");
    assert!(!err.contains("SOPS_AGE_KEY"), "{err}");
    assert!(!err.contains("CANARY"), "{err}");
}
