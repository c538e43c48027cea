//! Decrypt every sops-written vector in ../shared/vectors/sops: with the
//! published data key for each (MAC verified), and through the CLI with the
//! published age X25519 and ssh-ed25519 identities.
use crate::support;

use std::path::Path;

use ksec::ops::{self, OpError, OpenOptions};
use ksec::sops::store;
use ksec::sops::{DataKey, Format, Value};

/// (file, data key hex) rows from the vectors README table.
fn rows(dir: &Path) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut out = Vec::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 6 {
            continue;
        }
        let file = cols[1].trim_matches('`');
        let key = cols[5].trim_matches('`');
        if key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push((file.to_string(), key.to_string()));
        }
    }
    out
}

fn open_with(
    dir: &Path,
    file: &str,
    key_hex: &str,
    ignore_mac: bool,
) -> Result<ops::OpenedFile, OpError> {
    let bytes = std::fs::read(dir.join(file)).unwrap();
    let format = Format::from_path(Path::new(file));
    let (docs, meta) = store::load_encrypted(format, &bytes)?;
    let key = DataKey::from_slice(&hex::decode(key_hex).unwrap()).unwrap();
    ops::open_with_key(docs, meta, key, vec![], OpenOptions { ignore_mac })
}

#[test]
fn every_vector_decrypts_with_its_data_key_and_mac() {
    let Some(dir) = support::bin::vectors() else {
        return;
    };
    let rows = rows(&dir);
    assert!(
        rows.len() >= 20,
        "expected the README's 21 vectors, found {}",
        rows.len()
    );
    for (file, key) in &rows {
        let res = open_with(&dir, file, key, false);
        if file.ends_with("no_mac.yaml") {
            assert!(
                matches!(res, Err(OpError::MacMissing)),
                "{file}: a file without MAC must be refused"
            );
            let f = open_with(&dir, file, key, true).expect("--ignore-mac opens it");
            assert_eq!(f.docs.0[0].str_of("myapp1"), Some("t00m4nys3cr3tzupdated"));
            continue;
        }
        let f = res.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(f.warnings.is_empty(), "{file}: {:?}", f.warnings);
    }
}

#[test]
fn vector_plaintexts_match_the_readme() {
    let Some(dir) = support::bin::vectors() else {
        return;
    };
    let keys: std::collections::HashMap<String, String> = rows(&dir).into_iter().collect();
    let open = |f: &str| open_with(&dir, f, &keys[f], false).unwrap();
    let s = |f: &ops::OpenedFile, path: &[&str]| -> Value {
        let mut cur = Value::Map(f.docs.0[0].clone());
        for p in path {
            cur = cur
                .as_map()
                .unwrap()
                .get(p)
                .unwrap_or_else(|| panic!("{p}"))
                .clone();
        }
        cur
    };
    let f = open("getsops/functional-tests/format.enc.yaml");
    assert_eq!(s(&f, &["foo"]), Value::Str("bar".into()));
    let f = open("getsops/functional-tests/format.enc.env");
    assert_eq!(s(&f, &["foo "]), Value::Str(" bar".into()));
    for ini in [
        "getsops/functional-tests/format.enc.ini",
        "getsops/functional-tests/format-2.enc.ini",
    ] {
        assert_eq!(s(&open(ini), &["foo", "bar"]), Value::Str("baz".into()));
    }
    let f = open("getsops/examples/example.yaml");
    assert_eq!(
        s(&f, &["app2", "db", "password"]),
        Value::Str("c4r1b0u".into())
    );
    assert_eq!(s(&f, &["number"]), Value::Float(1234568000.0));
    assert!(
        matches!(s(&f, &["app2", "key"]), Value::Str(k) if k.starts_with("-----BEGIN RSA PRIVATE KEY-----"))
    );
    let f = open("getsops/examples/example.json");
    assert_eq!(s(&f, &["age"]), Value::Float(25.4));
    assert_eq!(s(&f, &["anEmptyValue"]), Value::Str(String::new()));
    let f = open("getsops/examples/example.txt");
    assert!(matches!(s(&f, &["data"]), Value::Str(t) if t.starts_with("Welcome to SOPS!")));
    let f = open("sops-nix/secrets.bin");
    assert_eq!(s(&f, &["data"]), Value::Str("binary_value\n".into()));
    let f = open("sops-nix/secrets.env");
    assert_eq!(
        s(&f, &["example_multiline"]),
        Value::Str("foo\nbar\nbaz".into())
    );
    let f = open("getsops/functional-tests/comments.enc.yaml");
    let comments: Vec<&str> = f.docs.0[0]
        .0
        .iter()
        .filter_map(|i| match i {
            ksec::sops::MapItem::Comment(c) => Some(c.as_str()),
            _ => None,
        })
        .collect();
    assert!(comments.contains(&" first comment in file"), "{comments:?}");
}

#[test]
fn age_x25519_vector_opens_through_the_cli() {
    let Some(dir) = support::bin::vectors() else {
        return;
    };
    let o = support::bin::run(
        support::bin::ksec()
            .args(["decrypt"])
            .arg(dir.join("sops-nix/secrets.yaml"))
            .env("SOPS_AGE_KEY_FILE", dir.join("sops-nix/age-keys.txt")),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let out = support::bin::stdout(&o);
    assert!(out.contains("test_key: test_value"), "{out}");
    assert!(out.contains("file: another value"), "{out}");
}

#[test]
fn age_ssh_ed25519_vector_opens_with_identity_flag() {
    let Some(dir) = support::bin::vectors() else {
        return;
    };
    let o = support::bin::run(
        support::bin::ksec()
            .args(["decrypt", "--identity"])
            .arg(dir.join("sops-nix/ssh-ed25519-key"))
            .arg(dir.join("sops-nix/secrets-native-ssh.yaml")),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("test_key: test_value"));
    // and through SOPS_AGE_SSH_PRIVATE_KEY_FILE
    let o = support::bin::run(
        support::bin::ksec()
            .arg("decrypt")
            .arg(dir.join("sops-nix/secrets-native-ssh.yaml"))
            .env(
                "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
                dir.join("sops-nix/ssh-ed25519-key"),
            ),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
}

#[test]
fn wrong_identity_is_a_clear_error_naming_the_recipients() {
    let Some(dir) = support::bin::vectors() else {
        return;
    };
    let o = support::bin::run(
        support::bin::ksec()
            .arg("decrypt")
            .arg(dir.join("sops-nix/secrets.yaml"))
            .env(
                "SOPS_AGE_KEY_FILE",
                dir.join("getsops/age-keysource-test/x25519-other-identity.txt"),
            ),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = support::bin::stderr(&o);
    assert!(err.contains("secrets.yaml"), "{err}");
    assert!(
        err.contains("age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"),
        "{err}"
    );
    assert!(err.contains("SOPS_AGE_KEY_FILE"), "{err}");
}

#[test]
fn age_level_vectors_unwrap() {
    let Some(dir) = support::bin::vectors() else {
        return;
    };
    let d = dir.join("getsops/age-keysource-test");
    for (id, file) in [
        ("x25519-identity.txt", "encrypted-key.x25519.age.armored"),
        (
            "ssh-ed25519-identity",
            "encrypted-key.ssh-ed25519.age.armored",
        ),
    ] {
        let mut src = ksec::keys::age::AgeSource::empty();
        src.load_file(&d.join(id), true).unwrap();
        let st = ksec::sops::Stanza::Age {
            recipient: "x".into(),
            enc: std::fs::read_to_string(d.join(file)).unwrap(),
        };
        let pt = ksec::keys::KeySource::unwrap(&src, &st).unwrap();
        assert_eq!(
            pt.as_slice(),
            std::fs::read(d.join("encrypted-key.plaintext"))
                .unwrap()
                .as_slice()
        );
    }
    let mut other = ksec::keys::age::AgeSource::empty();
    other
        .load_file(&d.join("x25519-other-identity.txt"), true)
        .unwrap();
    let st = ksec::sops::Stanza::Age {
        recipient: "x".into(),
        enc: std::fs::read_to_string(d.join("encrypted-key.x25519.age.armored")).unwrap(),
    };
    assert!(matches!(
        ksec::keys::KeySource::unwrap(&other, &st),
        Err(ksec::keys::KeyError::NoIdentity)
    ));
}
