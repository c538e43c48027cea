//! What changes in a Secret, by key name only: values are compared, never shown.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Added / removed / changed key names of one Secret's data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl KeyDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// `+a -b ~c`, the compact form of the human report.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        parts.extend(self.added.iter().map(|k| format!("+{k}")));
        parts.extend(self.removed.iter().map(|k| format!("-{k}")));
        parts.extend(self.changed.iter().map(|k| format!("~{k}")));
        parts.join(" ")
    }
}

/// Compares two data maps (decoded bytes).
pub fn key_diff(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> KeyDiff {
    let mut d = KeyDiff::default();
    for (k, v) in after {
        match before.get(k) {
            None => d.added.push(k.clone()),
            Some(old) if old != v => d.changed.push(k.clone()),
            Some(_) => {}
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            d.removed.push(k.clone());
        }
    }
    d
}

/// The data of a live Secret, decoded (k8s-openapi already base64-decodes `data`).
pub fn live_data(s: &k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .unwrap_or_default()
}

/// Data as the API wants it: base64 strings.
pub fn encode_data(data: &BTreeMap<String, Vec<u8>>) -> serde_json::Map<String, serde_json::Value> {
    let b64 = base64::engine::general_purpose::STANDARD;
    data.iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(b64.encode(v))))
        .collect()
}

/// Salted content hash. The salt is stored on the Secret (readable only by
/// those who can read the data anyway), so the hash copied onto pod
/// templates reveals nothing a Deployment reader could brute-force.
pub fn content_hash(salt: &str, data: &BTreeMap<String, Vec<u8>>) -> String {
    let mut h = Sha256::new();
    h.update(b"ksec-content-v1\0");
    h.update((salt.len() as u64).to_be_bytes());
    h.update(salt.as_bytes());
    for (k, v) in data {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    hex::encode(&h.finalize()[..16])
}

/// A fresh random salt (hex).
pub fn new_salt() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn diff_names_keys_only() {
        let d = key_diff(
            &m(&[("a", "1"), ("b", "2"), ("c", "3")]),
            &m(&[("a", "1"), ("b", "X"), ("d", "4")]),
        );
        assert_eq!(d.added, vec!["d"]);
        assert_eq!(d.removed, vec!["c"]);
        assert_eq!(d.changed, vec!["b"]);
        assert_eq!(d.summary(), "+d -c ~b");
        assert!(!format!("{d:?}").contains('X'));
    }

    #[test]
    fn hash_depends_on_salt_and_content_not_order() {
        let a = m(&[("a", "1"), ("b", "2")]);
        assert_eq!(content_hash("s", &a), content_hash("s", &a.clone()));
        assert_ne!(content_hash("s", &a), content_hash("t", &a));
        assert_ne!(
            content_hash("s", &a),
            content_hash("s", &m(&[("a", "1"), ("b", "3")]))
        );
        // Boundaries are length-prefixed: ("ab","") != ("a","b").
        assert_ne!(
            content_hash("s", &m(&[("ab", "")])),
            content_hash("s", &m(&[("a", "b")]))
        );
    }
}
