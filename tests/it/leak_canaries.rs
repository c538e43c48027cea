//! Leak canaries: every fixture value is a canary string; every command,
//! on success and failure paths, with `RUST_LOG=trace` and `--verbose`, must
//! never print one where it does not belong (only a decrypt's own stdout may).
use crate::support;

use std::path::Path;
use std::process::Command;

use support::bin::{age_key, ksec, run};

const CANARIES: [&str; 4] = [
    "CANARY-alpha-7f3a",
    "CANARY-beta-91c2",
    "CANARY-gamma-04de",
    "CANARY-delta-55aa",
];

fn fixture() -> String {
    format!(
        // A top-level comment stays readable under encrypted_regex, as in sops
        // (README "What gets encrypted"); comments inside stringData are encrypted.
        "# header comment\napiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: prod\nstringData:\n  password: {c0}\n  token: {c1}\n  # note {c2}\n  url: \"postgres://u:{c2}@db\"\n",
        c0 = CANARIES[0],
        c1 = CANARIES[1],
        c2 = CANARIES[2],
    )
}

struct Checked {
    runs: usize,
}

impl Checked {
    fn check(&mut self, label: &str, c: &mut Command, stdout_may_hold_plaintext: bool) {
        let o = run(c.env("RUST_LOG", "trace").env("RUST_BACKTRACE", "1"));
        self.runs += 1;
        let err = support::bin::stderr(&o);
        let out = support::bin::stdout(&o);
        for can in CANARIES {
            assert!(!err.contains(can), "{label}: canary in stderr:\n{err}");
            if !stdout_may_hold_plaintext {
                assert!(!out.contains(can), "{label}: canary in stdout:\n{out}");
            }
        }
    }
}

fn write(dir: &Path, name: &str, s: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

#[test]
fn no_command_prints_a_value_it_should_not() {
    let d = support::bin::tempdir();
    std::fs::create_dir(d.path().join(".git")).unwrap();
    let k = age_key(d.path(), "k");
    let other = age_key(d.path(), "other");
    std::fs::create_dir(d.path().join("recipients")).unwrap();
    write(
        &d.path().join("recipients"),
        "prod.yaml",
        &format!("namespaces: [prod]\nage: [{}]\n", k.recipient),
    );
    let mut c = Checked { runs: 0 };
    let plain = write(d.path(), "plain.yaml", &fixture());
    let f = write(d.path(), "s.yaml", &fixture());
    c.check(
        "encrypt to stdout",
        ksec().args(["encrypt", "-v"]).arg(&plain),
        false,
    );
    c.check(
        "encrypt -i",
        ksec().args(["encrypt", "-i", "-v", "-o", "json"]).arg(&f),
        false,
    );
    c.check(
        "encrypt again (already encrypted)",
        ksec().args(["encrypt", "-i", "-v"]).arg(&f),
        false,
    );
    c.check(
        "decrypt",
        ksec()
            .args(["decrypt", "-v"])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        true,
    );
    c.check(
        "decrypt wrong key",
        ksec()
            .args(["decrypt", "-v"])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &other.identity_file),
        false,
    );
    let enc = std::fs::read_to_string(&f).unwrap();
    let line = enc.lines().find(|l| l.contains("password: ENC[")).unwrap();
    let t = write(
        d.path(),
        "tampered.yaml",
        &enc.replace(line, &line.replacen("data:", "data:AA", 1)),
    );
    c.check(
        "decrypt tampered",
        ksec()
            .args(["decrypt", "-v"])
            .arg(&t)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        false,
    );
    let m = write(
        d.path(),
        "mac.yaml",
        &enc.replace("namespace: prod", "namespace: prod2"),
    );
    c.check(
        "decrypt MAC mismatch",
        ksec()
            .args(["decrypt", "-v"])
            .arg(&m)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        false,
    );
    c.check(
        "decrypt --ignore-mac",
        ksec()
            .args(["decrypt", "-v", "--ignore-mac"])
            .arg(&m)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        true,
    );
    c.check(
        "decrypt plaintext",
        ksec()
            .args(["decrypt", "-v"])
            .arg(&plain)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        false,
    );
    let bad = write(
        d.path(),
        "bad.yaml",
        &format!("stringData:\n  password: {}\n  x: [\n", CANARIES[0]),
    );
    c.check(
        "encrypt invalid YAML",
        ksec().args(["encrypt", "--age", &k.recipient]).arg(&bad),
        false,
    );
    c.check(
        "set bad json",
        ksec()
            .args(["set", "-v"])
            .arg(&f)
            .args(["[\"stringData\"][\"password\"]", CANARIES[3]])
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        false,
    );
    c.check(
        "set",
        ksec()
            .args(["set", "-v"])
            .arg(&f)
            .args([
                "[\"stringData\"][\"password\"]",
                &format!("\"{}\"", CANARIES[3]),
            ])
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        false,
    );
    c.check(
        "unset",
        ksec()
            .args(["unset", "-v"])
            .arg(&f)
            .arg("[\"stringData\"][\"token\"]")
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        false,
    );
    c.check(
        "updatekeys",
        ksec()
            .args(["updatekeys", "-y", "-v", "-o", "json"])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        false,
    );
    c.check(
        "rotate -i",
        ksec()
            .args(["rotate", "-i", "-v", "--add-age", &other.recipient])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file),
        false,
    );
    c.check("filestatus", ksec().args(["filestatus"]).arg(&f), false);
    c.check(
        "doctor",
        ksec().current_dir(d.path()).args(["doctor", "-v", "."]),
        false,
    );
    c.check(
        "doctor json",
        ksec()
            .current_dir(d.path())
            .args(["doctor", "-o", "json", "."]),
        false,
    );
    c.check(
        "doctor sarif",
        ksec()
            .current_dir(d.path())
            .args(["doctor", "-o", "sarif", "."]),
        false,
    );
    c.check(
        "rbac",
        ksec().current_dir(d.path()).args(["rbac", "."]),
        false,
    );
    c.check(
        "runbook",
        ksec()
            .current_dir(d.path())
            .args(["runbook", "--env", "prod", "."]),
        false,
    );
    let fail = write(d.path(), "fail.sh", "#!/bin/sh\nexit 1\n");
    std::fs::set_permissions(&fail, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    c.check(
        "edit, failing editor",
        ksec()
            .args(["edit", "-v"])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file)
            .env("EDITOR", &fail),
        false,
    );
    let garble = write(
        d.path(),
        "garble.sh",
        "#!/bin/sh\necho 'stringData: [' >> \"$1\"\n",
    );
    std::fs::set_permissions(&garble, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    c.check(
        "edit, invalid result",
        ksec()
            .args(["edit", "-v"])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &k.identity_file)
            .env("EDITOR", &garble),
        false,
    );
    eprintln!(
        "canaries checked: {} commands x {} canaries",
        c.runs,
        CANARIES.len()
    );
}
