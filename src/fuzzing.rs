//! Fuzz target bodies, shared by the cargo-fuzz crate (`fuzz/`) and the
//! regression test that replays every saved crash (`tests/it/fuzz_regressions.rs`).
//!
//! Each target takes untrusted bytes. Returning normally means "handled";
//! a panic is a bug: either the parser itself panicked, or one of the
//! invariants asserted here (round trips, and "decryption succeeds only when
//! the MAC verifies under the fixed key") does not hold. Assertion messages
//! name the invariant only, never the input.

use std::collections::HashMap;
use std::path::Path;

use crate::guard::{self, Blob, NoSource};
use crate::ops::{self, OpenOptions};
use crate::recipients::{env, sops_config::SopsConfig};
use crate::sops::cipher::{self, DataKey, EncValue};
use crate::sops::store::{self, Format};
use crate::sops::{KeyGroup, Metadata, Stanza, Value};

/// A target body: untrusted bytes in, a panic means a bug.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/regressions/<name>/` call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("store_yaml", store_yaml),
    ("store_json", store_json),
    ("store_dotenv", store_dotenv),
    ("store_ini", store_ini),
    ("store_binary", store_binary),
    ("enc_value", enc_value),
    ("metadata", metadata),
    ("recipients_env", recipients_env),
    ("sops_config", sops_config),
    ("guard_detect", guard_detect),
    ("decrypt_fixed_key", decrypt_fixed_key),
    ("yaml_aliases", yaml_aliases),
];

/// Looks a target up by name.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The data key of `decrypt_fixed_key`. Public on purpose: it protects
/// nothing but fuzz seeds.
pub const FIXED_KEY: [u8; 32] = *b"ksec-fuzz-fixed-data-key-32bytes";

/// Formats in the order the first byte of a `decrypt_fixed_key` input selects them.
const FORMATS: [Format; 5] = [
    Format::Yaml,
    Format::Json,
    Format::Dotenv,
    Format::Ini,
    Format::Binary,
];

pub fn store_yaml(data: &[u8]) {
    store(Format::Yaml, data)
}
pub fn store_json(data: &[u8]) {
    store(Format::Json, data)
}
pub fn store_dotenv(data: &[u8]) {
    store(Format::Dotenv, data)
}
pub fn store_ini(data: &[u8]) {
    store(Format::Ini, data)
}
pub fn store_binary(data: &[u8]) {
    store(Format::Binary, data)
}

/// Plain parse; whatever parses must emit to text that parses again and
/// emits identically (so `ksec decrypt` output can be re-encrypted). The
/// encrypted-file reader (metadata split) runs on the same bytes.
fn store(format: Format, data: &[u8]) {
    let _ = store::load_encrypted(format, data);
    let Ok(docs) = store::load_plain(format, data) else {
        return;
    };
    let Ok(first) = store::emit_plain(format, &docs, None) else {
        return;
    };
    let again = store::load_plain(format, &first)
        .unwrap_or_else(|e| panic!("{}: emitted text does not parse: {e}", format.name()));
    let second = store::emit_plain(format, &again, None)
        .unwrap_or_else(|e| panic!("{}: re-parsed document does not emit: {e}", format.name()));
    assert!(
        first == second,
        "{}: emit(parse(emit(x))) differs from emit(x)",
        format.name()
    );
}

/// The `ENC[...]` grammar: whatever parses renders back to the same value,
/// and decrypting it under a fixed key fails cleanly (a random tag cannot verify).
pub fn enc_value(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(v) = EncValue::parse(s) else {
        return;
    };
    let back = EncValue::parse(&v.render()).expect("ENC: rendered value does not parse");
    assert!(back == v, "ENC: render/parse round trip changed the value");
    let key = DataKey(zeroize::Zeroizing::new(FIXED_KEY));
    let _ = cipher::decrypt(&key, s, "fuzz:");
}

/// The `sops:` metadata block: whatever parses serializes back to a block
/// that parses to the same metadata.
pub fn metadata(data: &[u8]) {
    let Ok(docs) = store::load_plain(Format::Yaml, data) else {
        return;
    };
    let Some(first) = docs.0.first() else {
        return;
    };
    let v = first
        .get("sops")
        .cloned()
        .unwrap_or_else(|| Value::Map(first.clone()));
    let Ok(meta) = Metadata::from_value(&v) else {
        return;
    };
    let _ = meta.mac_aad();
    let again = Metadata::from_value(&meta.to_value())
        .unwrap_or_else(|e| panic!("metadata: serialized block does not parse: {e}"));
    assert!(
        again == meta,
        "metadata: to_value/from_value round trip changed it"
    );
}

/// One `recipients/<env>.yaml`: parse, then route a few namespaces and paths.
pub fn recipients_env(data: &[u8]) {
    let Ok(e) = env::parse_env(Path::new("recipients/fuzz.yaml"), data) else {
        return;
    };
    for ns in ["default", "prod", "", "kube-system"] {
        let _ = e.owns_namespace(ns);
    }
    let _ = e.owns_path(Path::new("apps/prod/secret.yaml"));
    let _ = e.recipient_ids();
}

/// A `.sops.yaml`: parse, then pick the rule for a few paths.
pub fn sops_config(data: &[u8]) {
    let Ok(c) = SopsConfig::parse(Path::new("/fuzz/.sops.yaml"), data) else {
        return;
    };
    for p in [
        "/fuzz/secret.yaml",
        "/fuzz/prod/a.enc.json",
        "/elsewhere/x.env",
    ] {
        let _ = c.rule_for(Path::new(p));
    }
}

/// Paths the guard judges differently; the first input byte picks one.
const GUARD_PATHS: [&str; 8] = [
    "k8s/secret.yaml",
    "k8s/secret.json",
    "kustomization.yaml",
    "app/.env",
    "chart/templates/secret.tpl",
    "conf/app.ini",
    "notes.txt",
    "k8s/secret.enc.yaml",
];

/// YAML anchors and aliases (billion laughs): whatever parses holds at most
/// 1000 nodes per document plus 100 per input byte (the alias-expansion
/// bound); the rest is refused. An expansion that allocates before it is
/// charged shows as libFuzzer's out-of-memory (`-rss_limit_mb`).
pub fn yaml_aliases(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = store::yaml::parse(text) else {
        return;
    };
    let nodes: usize = docs.0.iter().map(|d| map_nodes(d)).sum();
    assert!(
        nodes <= 1000 * docs.0.len() + 100 * data.len(),
        "yaml_aliases: alias expansion beyond the bound"
    );
}

fn map_nodes(m: &crate::sops::Map) -> usize {
    m.pairs().map(|(_, v)| 1 + value_nodes(v)).sum()
}

fn value_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Map(m) => map_nodes(m),
        Value::Seq(s) => s.elems().map(value_nodes).sum(),
        _ => 0,
    }
}

/// The guard's structural Secret detector, with the kustomization/env file
/// pair available through an in-memory source.
pub fn guard_detect(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let path = GUARD_PATHS[sel as usize % GUARD_PATHS.len()];
    let blob = Blob {
        path: path.to_string(),
        bytes: rest.to_vec(),
        symlink: sel & 0x80 != 0,
    };
    let mut src: HashMap<String, Vec<u8>> = HashMap::new();
    src.insert("app/.env".into(), rest.to_vec());
    src.insert("kustomization.yaml".into(), rest.to_vec());
    let _ = guard::check_blobs(std::slice::from_ref(&blob), &NoSource, &Default::default());
    let _ = guard::check_blobs(&[blob], &src, &Default::default());
}

/// Decryption of an arbitrary file with a fixed data key. The first byte
/// selects the format. Must never panic, and an `Ok` must be consistent:
/// re-encrypting the opened file with its own key opens again to the same
/// plaintext, and the MAC verifies under the fixed key.
pub fn decrypt_fixed_key(data: &[u8]) {
    let Some((format, mut opened)) = open_fixed(data) else {
        return;
    };
    let key = || DataKey(zeroize::Zeroizing::new(FIXED_KEY));
    assert!(
        !opened.meta.mac.is_empty(),
        "decrypt: accepted a file without a MAC"
    );
    let plain = store::emit_plain(format, &opened.docs, None);
    let resealed =
        ops::reseal(&mut opened, format, None).expect("decrypt: opened file does not reseal");
    let (docs2, meta2) = store::load_encrypted(format, &resealed)
        .unwrap_or_else(|e| panic!("decrypt: resealed file does not parse: {e}"));
    let again = ops::open_with_key(docs2, meta2, key(), vec![], OpenOptions::default())
        .unwrap_or_else(|e| panic!("decrypt: resealed file does not open: {e}"));
    assert!(
        store::emit_plain(format, &again.docs, None) == plain,
        "decrypt: plaintext changed across reseal"
    );
}

/// Whether a `decrypt_fixed_key` input opens (MAC verified) under [`FIXED_KEY`].
pub fn opens_with_fixed_key(data: &[u8]) -> bool {
    open_fixed(data).is_some()
}

/// The first byte picks the format, the rest is the file.
fn open_fixed(data: &[u8]) -> Option<(Format, ops::OpenedFile)> {
    let (&sel, rest) = data.split_first()?;
    let format = FORMATS[sel as usize % FORMATS.len()];
    let (docs, meta) = store::load_encrypted(format, rest).ok()?;
    let key = DataKey(zeroize::Zeroizing::new(FIXED_KEY));
    let opened = ops::open_with_key(docs, meta, key, vec![], OpenOptions::default()).ok()?;
    Some((format, opened))
}

/// Encrypts a plaintext file under [`FIXED_KEY`] and prefixes the format
/// byte: a seed input for `decrypt_fixed_key`.
pub fn fixed_key_seed(format: Format, plain: &[u8]) -> Option<Vec<u8>> {
    let mut docs = store::load_plain(format, plain).ok()?;
    let rule = ops::default_rule(format, &docs);
    let key = DataKey(zeroize::Zeroizing::new(FIXED_KEY));
    // A placeholder recipient: the key is known, no stanza is ever unwrapped.
    let group = KeyGroup(vec![Stanza::Age {
        recipient: "age1fuzz".into(),
        enc: "fixed key".into(),
    }]);
    let mut meta = Metadata::new(vec![group], 0, rule, false);
    ops::seal(&mut docs, &mut meta, &key, None).ok()?;
    let sel = FORMATS.iter().position(|f| *f == format)? as u8;
    let mut out = vec![sel];
    out.extend(store::emit_encrypted(format, &docs, &meta, None).ok()?);
    Some(out)
}
