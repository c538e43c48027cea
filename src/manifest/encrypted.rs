//! Opening a manifest file: its format decided once, its documents parsed,
//! and the Secrets it holds named from their readable metadata before any
//! decryption. Apply, export and the controller's sources all start here,
//! so a file is the same file to each of them.

use std::path::Path;

use serde_json::Value as J;
use sha2::{Digest, Sha256};

use super::{ShapeProblem, is_secret, objects, secret_shape};
use crate::sops::store::{self, StoreError};
use crate::sops::{Documents, Format, Map, Metadata, Value};

/// The format of a manifest file, by extension (`.yaml`/`.yml`/`.json`).
/// `None`: a dotenv, ini or binary file, not a manifest.
pub fn manifest_format(path: &Path) -> Option<Format> {
    match Format::from_path(path) {
        f @ (Format::Yaml | Format::Json) => Some(f),
        _ => None,
    }
}

/// The format of an in-memory document with no file name (the
/// controller's `EncryptedSecret`): JSON when it starts with `{`.
pub fn document_format(bytes: &[u8]) -> Format {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        Format::Json
    } else {
        Format::Yaml
    }
}

/// A manifest file, parsed.
pub enum Manifest {
    Encrypted(EncryptedManifest),
    /// No sops metadata: plaintext.
    Plain(PlainManifest),
}

/// Why a manifest could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not a YAML or JSON manifest")]
    NotAManifest,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Manifest {
    /// Parses a file's bytes (nothing is decrypted); its name decides the
    /// format ([`manifest_format`]).
    pub fn open(path: &Path, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let format = manifest_format(path).ok_or(ManifestError::NotAManifest)?;
        Manifest::parse(format, bytes)
    }

    /// Parses an in-memory document ([`document_format`]).
    pub fn open_document(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        Manifest::parse(document_format(bytes), bytes)
    }

    fn parse(format: Format, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        match store::load_encrypted(format, bytes) {
            Ok((docs, meta)) => Ok(Manifest::Encrypted(EncryptedManifest::new(docs, meta))),
            Err(StoreError::NotEncrypted) => Ok(Manifest::Plain(PlainManifest {
                docs: store::load_plain(format, bytes)?,
            })),
            Err(e) => Err(e.into()),
        }
    }
}

/// A plaintext manifest.
pub struct PlainManifest {
    pub docs: Documents,
}

impl PlainManifest {
    pub fn has_secret(&self) -> bool {
        super::has_secret(&self.docs)
    }
}

/// An encrypted manifest, not decrypted: its sops metadata and the
/// readable identity of each Secret in it.
pub struct EncryptedManifest {
    pub docs: Documents,
    pub meta: Metadata,
    secrets: Vec<SecretId>,
}

/// One Secret of an encrypted manifest as its readable metadata names it.
/// The MAC binds values, not where they sit: trust these only once
/// [`EncryptedManifest::shape_problem`] found nothing and the file decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretId {
    /// Document index in the file.
    pub doc: usize,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// SHA-256 of the Secret's encrypted form (ciphertext and readable
    /// metadata, without the file's sops metadata): it changes when this
    /// Secret changes, not when another Secret of the file does.
    pub digest: String,
}

impl EncryptedManifest {
    fn new(docs: Documents, meta: Metadata) -> EncryptedManifest {
        let secrets = secret_ids(&docs);
        EncryptedManifest {
            docs,
            meta,
            secrets,
        }
    }

    /// Its Secrets, nested `*List`s and merge keys included, in document
    /// order: the order of [`DecryptedObjects::secrets`] once decrypted.
    pub fn secrets(&self) -> &[SecretId] {
        &self.secrets
    }

    /// The first place its readable structure differs from what ksec writes
    /// ([`secret_shape`]): probable tampering.
    pub fn shape_problem(&self) -> Option<ShapeProblem> {
        secret_shape(&self.docs).into_iter().next()
    }

    /// sops `lastmodified` (Unix seconds; the MAC covers it).
    pub fn lastmodified(&self) -> Option<i64> {
        crate::sops::scalar::parse_rfc3339(&self.meta.lastmodified).map(|t| t.timestamp())
    }

    pub fn into_parts(self) -> (Documents, Metadata) {
        (self.docs, self.meta)
    }
}

/// Every Secret of the documents, nested Lists and merge keys included, in order.
fn secret_ids(docs: &Documents) -> Vec<SecretId> {
    docs.0
        .iter()
        .enumerate()
        .flat_map(|(i, d)| {
            objects(d)
                .into_iter()
                .filter(is_secret)
                .map(move |m| (i, m))
        })
        .map(|(doc, m)| secret_id(doc, &m))
        .collect()
}

fn secret_id(doc: usize, obj: &Map) -> SecretId {
    let meta = obj.get("metadata").and_then(Value::as_map);
    let get = |k| {
        meta.and_then(|m| m.str_of(k))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let text = serde_json::to_string(&Value::Map(obj.clone()).to_json()).unwrap_or_default();
    SecretId {
        doc,
        namespace: get("namespace"),
        name: get("name"),
        digest: hex::encode(Sha256::digest(text.as_bytes())),
    }
}

/// The Kubernetes objects of (decrypted or plain) documents, as JSON.
/// Decrypted Secrets hold values: memory only.
#[derive(Default)]
pub struct DecryptedObjects {
    /// In the order of [`EncryptedManifest::secrets`].
    pub secrets: Vec<J>,
    /// Every other object (not a `*List`, not empty).
    pub others: Vec<J>,
}

impl DecryptedObjects {
    pub fn of(docs: &Documents) -> DecryptedObjects {
        let mut out = DecryptedObjects::default();
        for d in &docs.0 {
            for obj in objects(d) {
                if obj.str_of("kind").is_some_and(|k| k.ends_with("List")) || obj.0.is_empty() {
                    continue;
                }
                let j = Value::Map(obj.clone()).to_json();
                if is_secret(&obj) {
                    out.secrets.push(j);
                } else {
                    out.others.push(j);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOPS: &str = "sops:\n    age:\n        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n          enc: |\n            -----BEGIN AGE ENCRYPTED FILE-----\n            x\n            -----END AGE ENCRYPTED FILE-----\n    lastmodified: \"2024-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:x,iv:x,tag:x,type:str]\n    version: 3.9.0\n";

    #[test]
    fn every_secret_of_a_file_has_its_own_digest() {
        let ids = |y: &str| secret_ids(&store::load_plain(Format::Yaml, y.as_bytes()).unwrap());
        let y = concat!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  k: \"ENC[x]\"\n",
            "---\napiVersion: v1\nkind: List\nitems:\n",
            "  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: b\n      namespace: n\n    data:\n      k: \"ENC[y]\"\n",
            "  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: c\n",
            "  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: c\n      namespace: n\n    data:\n      k: \"ENC[x]\"\n",
        );
        let all = ids(y);
        let names: Vec<_> = all.iter().map(|p| p.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(all[0].namespace, None);
        assert_ne!(all[0].digest, all[1].digest);
        assert_ne!(all[1].digest, all[2].digest);
        // The digest is the document's: the same document elsewhere, the same digest.
        let again = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  k: \"ENC[x]\"\n";
        assert_eq!(ids(again)[0].digest, all[0].digest);
    }

    #[test]
    fn secrets_are_named_in_nested_lists_and_through_merge_keys() {
        let yaml = format!(
            "apiVersion: v1\nkind: List\nbase: &b\n  namespace: dev\nitems:\n  - kind: SecretList\n    items:\n      - kind: Secret\n        metadata: {{name: inner, namespace: prod}}\n  - kind: ConfigMap\n    metadata: {{name: cm}}\n  - kind: Secret\n    metadata:\n      <<: *b\n      name: merged\n{SOPS}"
        );
        let Manifest::Encrypted(m) = Manifest::open(Path::new("x.yaml"), yaml.as_bytes()).unwrap()
        else {
            panic!("not encrypted");
        };
        let ids: Vec<(usize, Option<&str>, Option<&str>)> = m
            .secrets()
            .iter()
            .map(|s| (s.doc, s.namespace.as_deref(), s.name.as_deref()))
            .collect();
        assert_eq!(
            ids,
            [
                (0, Some("prod"), Some("inner")),
                (0, Some("dev"), Some("merged"))
            ]
        );
        assert_ne!(m.secrets()[0].digest, m.secrets()[1].digest);
        assert_eq!(m.lastmodified(), Some(1704067200));
    }

    #[test]
    fn the_format_is_decided_by_the_name_or_the_first_byte() {
        assert!(matches!(
            Manifest::open(Path::new("x.env"), b"A=1\n"),
            Err(ManifestError::NotAManifest)
        ));
        assert!(matches!(
            Manifest::open(Path::new("x.yml"), b"kind: ConfigMap\n"),
            Ok(Manifest::Plain(_))
        ));
        assert_eq!(document_format(b"  {\"kind\": \"Secret\"}"), Format::Json);
        assert_eq!(document_format(b"kind: Secret"), Format::Yaml);
    }
}
