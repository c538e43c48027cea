//! Replays every input the fuzzers ever crashed on (fuzz/regressions/<target>/)
//! and every committed seed (fuzz/seeds/<target>/) through the same target
//! bodies the cargo-fuzz crate runs (`ksec::fuzzing`), in a plain `cargo test`.
//! Also checks the fixed-key decryption seeds: each opens, and each with one
//! ciphertext byte changed does not.

use std::panic;
use std::path::{Path, PathBuf};

use ksec::fuzzing::{self, TARGETS};
use ksec::sops::Format;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => vec![],
    };
    v.retain(|p| p.is_file());
    v.sort();
    v
}

/// Runs every file of `kind` through its target; returns the failures by file name.
fn replay(kind: &str) -> (usize, Vec<String>) {
    let mut n = 0;
    let mut failed = Vec::new();
    for (name, f) in TARGETS {
        for p in inputs(kind, name) {
            let data = std::fs::read(&p).unwrap();
            n += 1;
            if panic::catch_unwind(|| f(&data)).is_err() {
                failed.push(format!(
                    "{kind}/{name}/{}",
                    p.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    (n, failed)
}

#[test]
fn every_fuzz_target_has_a_library_body() {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".rs")
                .map(String::from)
        })
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(
        files, names,
        "fuzz/fuzz_targets and ksec::fuzzing::TARGETS disagree"
    );
    for d in ["regressions", "seeds"] {
        if let Ok(rd) = std::fs::read_dir(fuzz_dir().join(d)) {
            for e in rd.filter_map(|e| e.ok()) {
                let n = e.file_name().to_string_lossy().into_owned();
                assert!(
                    fuzzing::target(&n).is_some(),
                    "fuzz/{d}/{n}: no such target"
                );
            }
        }
    }
}

#[test]
fn regressions_replay_without_panic() {
    let (n, failed) = replay("regressions");
    assert!(n > 0, "no regression inputs found under fuzz/regressions");
    assert!(failed.is_empty(), "targets panicked on: {failed:#?}");
}

#[test]
fn seeds_replay_without_panic() {
    let (n, failed) = replay("seeds");
    assert!(n > 0, "no seeds found under fuzz/seeds");
    assert!(failed.is_empty(), "targets panicked on: {failed:#?}");
}

/// Plaintexts the fixed-key seeds are made from (one per store).
const PLAINTEXTS: &[(Format, &str, &str)] = &[
    (
        Format::Yaml,
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\n  labels: {app: db}\ntype: Opaque\nstringData:\n  user: admin # who\n  port: \"5432\"\ndata:\n  password: c2VjcmV0\n---\nplain: [1, 2.5, true, null]\nwhen: 2026-01-01T00:00:00Z\n",
    ),
    (
        Format::Json,
        "config.json",
        "{\"a\": \"x\", \"n\": 42, \"f\": 1.5, \"b\": false, \"list\": [\"y\", {\"z\": null}], \"nested\": {\"k_unencrypted\": \"open\"}}",
    ),
    (
        Format::Dotenv,
        "app.env",
        "# comment\nDB_USER=admin\nDB_PASS=s3cr3t with spaces\nEMPTY=\n",
    ),
    (
        Format::Ini,
        "app.ini",
        "; top\n[db]\nuser = admin\npass = hunter2\n[cache]\nttl = 30\n",
    ),
    (Format::Binary, "blob.bin", "line one\nline two\n\u{1}\u{2}"),
];

#[test]
fn fixed_key_seeds_open_and_tampering_is_refused() {
    let dir = fuzz_dir().join("seeds/decrypt_fixed_key");
    if std::env::var_os("KSEC_WRITE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (format, name, plain) in PLAINTEXTS {
            let seed = fuzzing::fixed_key_seed(*format, plain.as_bytes()).expect("seed encrypts");
            std::fs::write(dir.join(name), seed).unwrap();
        }
    }
    let seeds = inputs("seeds", "decrypt_fixed_key");
    assert_eq!(
        seeds.len(),
        PLAINTEXTS.len(),
        "one seed per store in {dir:?}"
    );
    for p in seeds {
        let data = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            fuzzing::opens_with_fixed_key(&data),
            "{name}: seed does not open"
        );
        // Change one base64 character of the first encrypted value's data.
        let text = String::from_utf8(data.clone()).unwrap();
        // Not a comment (`type:comment`): sops does not authenticate comments.
        let at = text
            .match_indices("ENC[AES256_GCM,data:")
            .map(|(i, _)| i)
            .find(|&i| {
                !text[i..]
                    .split(']')
                    .next()
                    .unwrap()
                    .ends_with("type:comment")
            })
            .expect("seed has an ENC value")
            + 20;
        let mut forged = data.clone();
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        assert!(
            !fuzzing::opens_with_fixed_key(&forged),
            "{name}: forged value accepted"
        );
        fuzzing::decrypt_fixed_key(&data);
        fuzzing::decrypt_fixed_key(&forged);
    }
}
