//! Forgery suite: flip, drop, swap, reorder or duplicate bytes, values, keys
//! or metadata of a valid encrypted file. Decryption must fail with a clear
//! error, or — for a change outside the MAC's scope (comments, key names of
//! unencrypted values, metadata that is not authenticated) — return exactly
//! the original values. A forged value is never accepted.

use ksec::ops::{self, OpenOptions};
use ksec::sops::store;
use ksec::sops::{DataKey, Documents, Format, KeyGroup, Metadata, Rule, Stanza, Value};
use proptest::prelude::*;

const DOC: &str = "\
# leading comment
apiVersion: v1
kind: Secret
metadata:
    name: db
    namespace: prod
stringData:
    # the password
    password: CANARY-forgery-1
    user: admin
    port: 5432
    enabled: true
    ratio: 0.5
";

fn leaves(d: &Documents) -> Vec<Vec<u8>> {
    fn walk(v: &Value, out: &mut Vec<Vec<u8>>) {
        match v {
            Value::Map(m) => m.pairs().for_each(|(_, x)| walk(x, out)),
            Value::Seq(s) => s.elems().for_each(|x| walk(x, out)),
            other => {
                if let Some(b) = ksec::sops::scalar::to_bytes(other) {
                    out.push(b.into_owned())
                }
            }
        }
    }
    let mut out = Vec::new();
    for m in &d.0 {
        walk(&Value::Map(m.clone()), &mut out);
    }
    out
}

fn fixture(mac_only: bool) -> (String, DataKey, Documents) {
    let key = DataKey::generate();
    let mut docs = store::load_plain(Format::Yaml, DOC.as_bytes()).unwrap();
    let plain = docs.clone();
    let rule = Rule::EncryptedRegex(regex::Regex::new("^(data|stringData)$").unwrap());
    let mut meta = Metadata::new(
        vec![KeyGroup(vec![Stanza::Age {
            recipient: "age1test".into(),
            enc: "x".into(),
        }])],
        0,
        rule,
        mac_only,
    );
    ops::seal(&mut docs, &mut meta, &key, None).unwrap();
    let text = String::from_utf8(store::emit_encrypted(Format::Yaml, &docs, &meta, None).unwrap())
        .unwrap();
    (text, key, plain)
}

/// Ok(values) when it decrypts, Err(message) otherwise.
fn open(text: &[u8], key: &DataKey) -> Result<Vec<Vec<u8>>, String> {
    let (docs, meta) = store::load_encrypted(Format::Yaml, text).map_err(|e| e.to_string())?;
    let f = ops::open_with_key(docs, meta, key.clone(), vec![], OpenOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(leaves(&f.docs))
}

fn check(
    mutated: &[u8],
    key: &DataKey,
    plain: &Documents,
    mac_only: bool,
) -> Result<(), TestCaseError> {
    match open(mutated, key) {
        Err(msg) => {
            prop_assert!(!msg.contains("CANARY"), "error leaked a value: {msg}");
            prop_assert!(!msg.is_empty());
        }
        Ok(vals) => {
            if mac_only {
                // Only encrypted values are authenticated; they must be intact.
                let orig = leaves(plain);
                for v in [
                    b"CANARY-forgery-1".as_slice(),
                    b"admin",
                    b"5432",
                    b"True",
                    b"0.5",
                ] {
                    prop_assert!(vals.iter().any(|x| x == v), "encrypted value changed");
                    prop_assert!(orig.iter().any(|x| x == v));
                }
            } else {
                prop_assert_eq!(
                    vals,
                    leaves(plain),
                    "a forged file decrypted to different values"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, .. ProptestConfig::default() })]

    #[test]
    fn flipped_bytes_never_forge_a_value(pos in any::<prop::sample::Index>(), bit in 0u8..8, mac_only in any::<bool>()) {
        let (text, key, plain) = fixture(mac_only);
        let mut b = text.into_bytes();
        let i = pos.index(b.len());
        b[i] ^= 1 << bit;
        check(&b, &key, &plain, mac_only)?;
    }

    #[test]
    fn dropped_duplicated_or_swapped_lines_never_forge_a_value(a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>(), op in 0u8..3, mac_only in any::<bool>()) {
        let (text, key, plain) = fixture(mac_only);
        let mut lines: Vec<&str> = text.lines().collect();
        let (i, j) = (a.index(lines.len()), b.index(lines.len()));
        match op {
            0 => { lines.remove(i); }
            1 => { let l = lines[i]; lines.insert(j, l); }
            _ => lines.swap(i, j),
        }
        let out = lines.join("\n") + "\n";
        check(out.as_bytes(), &key, &plain, mac_only)?;
    }

    #[test]
    fn swapped_values_between_keys_never_decrypt(a in 0usize..5, b in 0usize..5) {
        prop_assume!(a != b);
        let (text, key, _) = fixture(false);
        let keys = ["password", "user", "port", "enabled", "ratio"];
        let val = |k: &str| text.lines().find(|l| l.trim_start().starts_with(&format!("{k}: "))).unwrap().split_once(": ").unwrap().1.to_string();
        let (va, vb) = (val(keys[a]), val(keys[b]));
        let swapped = text
            .replace(&format!("{}: {va}", keys[a]), "@@A@@")
            .replace(&format!("{}: {vb}", keys[b]), &format!("{}: {va}", keys[b]))
            .replace("@@A@@", &format!("{}: {vb}", keys[a]));
        prop_assert!(open(swapped.as_bytes(), &key).is_err());
    }
}

#[test]
fn metadata_tampering_is_refused() {
    let (text, key, _) = fixture(false);
    for (from, to) in [
        (
            "encrypted_regex: ^(data|stringData)$",
            "encrypted_regex: ^(data)$",
        ),
        ("namespace: prod", "namespace: dev"),
        ("name: db", "name: db2"),
    ] {
        assert!(text.contains(from), "{from}");
        let t = text.replace(from, to);
        assert!(
            open(t.as_bytes(), &key).is_err(),
            "{from} -> {to} was accepted"
        );
    }
    let lm = text.lines().find(|l| l.contains("lastmodified")).unwrap();
    let t = text.replace(lm, "    lastmodified: \"2001-01-01T00:00:00Z\"");
    assert!(
        open(t.as_bytes(), &key).unwrap_err().contains("MAC"),
        "lastmodified is the MAC's AAD"
    );
}
