//! The guard is fed untrusted bytes: it must never panic, and a plaintext
//! value must stay blocked whatever surrounds it.

use std::path::Path;

use ksec::guard::{self, Blob, NoSource, Options};
use proptest::prelude::*;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/guard");
    walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path()
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn judge(path: &str, bytes: Vec<u8>) -> Vec<guard::Finding> {
    guard::check_blobs(
        &[Blob {
            path: path.into(),
            bytes,
            symlink: false,
        }],
        &NoSource,
        &Options::default(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                ext in prop::sample::select(vec!["yaml", "json", "env", "ini", "j2", "key", "txt"])) {
        let _ = judge(&format!("f.{ext}"), bytes);
    }

    #[test]
    fn mutated_fixtures_never_panic(idx in 0usize..200, pos in any::<prop::sample::Index>(),
                                    cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let all = fixtures();
        let (name, mut bytes) = all[idx % all.len()].clone();
        if !bytes.is_empty() {
            let p = pos.index(bytes.len());
            bytes[p] = byte;
            let c = cut.index(bytes.len() + 1);
            bytes.truncate(c.max(p));
        }
        let _ = judge(&name, bytes);
    }

    #[test]
    fn plaintext_stays_blocked_under_any_key_name(key in "[a-zA-Z_][a-zA-Z0-9_.-]{0,20}",
                                                 value in "[a-zA-Z0-9+/]{1,40}") {
        let doc = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: x}}\nstringData:\n  \"{key}\": \"{value}\"\n");
        let f = judge("s.yaml", doc.into_bytes());
        prop_assert_eq!(guard::exit_code(&f), 1, "{:?}", f);
        prop_assert!(f.iter().all(|f| !f.message.contains(&value) || value.len() < 4));
    }
}

#[test]
fn deep_nesting_does_not_overflow() {
    let mut s = String::from("apiVersion: v1\nkind: Secret\nstringData:\n  a: ");
    s.push_str(&"[".repeat(5000));
    let _ = judge("deep.yaml", s.into_bytes());
    let mut j = String::from("{\"kind\":\"Secret\",\"data\":");
    j.push_str(&"[".repeat(5000));
    let _ = judge("deep.json", j.into_bytes());
    // Closed nesting parses: the walks must stay within the stack too.
    let mut c = String::from("apiVersion: v1\nkind: Secret\nstringData:\n  a: ");
    c.push_str(&"[".repeat(400));
    c.push_str(&"]".repeat(400));
    c.push('\n');
    let f = judge("closed.yaml", c.into_bytes());
    // Either judged clean (no leaves) or refused by the parser: fail closed.
    let refused = f.iter().any(|f| f.rule_id.as_str() == "unparseable-secret");
    assert!(refused || guard::exit_code(&f) == 0, "{f:?}");
}

/// 200k keys merged into a Secret (`<<: *base`): merging is linear (a
/// quadratic key check took minutes), explicit keys win, and the one
/// plaintext value among the empty ones is still found.
#[test]
fn a_200k_key_merge_is_judged() {
    let n = 200_000;
    let mut s = String::from("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nbase: &b\n");
    for i in 0..n {
        s.push_str(&format!("  k{i}: \"\"\n"));
    }
    s.push_str("stringData:\n  <<: *b\n  k7: hunter2hunter2\n");
    let f = judge("big.yaml", s.into_bytes());
    let errors: Vec<_> = f
        .iter()
        .filter(|f| f.severity == guard::Severity::Error)
        .map(|f| (f.key_path.as_str(), f.rule_id.as_str()))
        .collect();
    assert_eq!(
        errors,
        vec![("stringData.k7", "plaintext-secret-value")],
        "{f:?}"
    );
}
