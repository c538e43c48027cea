//! Walks a document tree, encrypting or decrypting the selected leaves and
//! computing the MAC, exactly in sops's tree order.

use std::collections::HashMap;

use sha2::{Digest, Sha512};

use super::cipher::{self, DataKey, DecryptError, IV_LEN};
use super::rules::Rule;
use super::scalar;
use super::tree::{Map, MapItem, Seq, SeqItem, Value};

/// SHA-256("sops"): the MAC prefix for `mac_only_encrypted` files.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// Where in a file a problem is: document index and sops key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub doc: usize,
    pub path: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "document {}, key {}", self.doc, display_path(&self.path))
    }
}

fn display_path(aad: &str) -> String {
    let trimmed = aad.trim_end_matches(':');
    if trimmed.is_empty() {
        "(top level)".into()
    } else {
        trimmed.replace(':', ".")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WalkError {
    #[error("{at}: {source}")]
    Value { at: Location, source: DecryptError },
    #[error("{at}: expected an encrypted value (a string), found a {found}")]
    NotEncrypted { at: Location, found: &'static str },
    #[error("{at}: {msg}")]
    Type { at: Location, msg: String },
    #[error("{at}: encrypted comment text would match unencrypted_comment_regex")]
    CommentRegex { at: Location },
}

/// IVs of values seen while decrypting, keyed by (AAD, plaintext), so that
/// re-encrypting an unchanged value reproduces the same ciphertext.
#[derive(Default)]
pub struct Stash(HashMap<(String, Vec<u8>), [u8; IV_LEN]>);

impl Drop for Stash {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for ((_, mut pt), _) in self.0.drain() {
            pt.zeroize();
        }
    }
}

impl Stash {
    fn get(&self, aad: &str, pt: &[u8]) -> Option<[u8; IV_LEN]> {
        self.0.get(&(aad.to_string(), pt.to_vec())).copied()
    }
    fn put(&mut self, aad: &str, pt: &[u8], iv: &[u8]) {
        if let Ok(iv) = <[u8; IV_LEN]>::try_from(iv) {
            self.0.insert((aad.to_string(), pt.to_vec()), iv);
        }
    }
}

/// The MAC accumulator: uppercase hex SHA-512 over canonical leaf bytes.
struct Mac(Sha512);

impl Mac {
    fn new(mac_only_encrypted: bool) -> Mac {
        let mut h = Sha512::new();
        if mac_only_encrypted {
            h.update(MAC_ONLY_ENCRYPTED_INIT);
        }
        Mac(h)
    }
    fn finish(self) -> String {
        hex::encode_upper(self.0.finalize())
    }
}

enum Mode<'a> {
    Encrypt {
        stash: Option<&'a Stash>,
    },
    Decrypt {
        stash: Option<&'a mut Stash>,
        warnings: &'a mut Vec<String>,
    },
}

struct Walker<'a> {
    key: &'a DataKey,
    rule: &'a Rule,
    mac_only: bool,
    mac: Mac,
    mode: Mode<'a>,
    doc: usize,
    path: Vec<String>,
    comments: Vec<Vec<String>>,
}

impl Walker<'_> {
    fn aad(&self) -> String {
        let mut s = self.path.join(":");
        s.push(':');
        s
    }

    fn at(&self) -> Location {
        Location {
            doc: self.doc,
            path: self.aad(),
        }
    }

    fn map(&mut self, m: &mut Map) -> Result<(), WalkError> {
        self.comments.push(Vec::new());
        for item in m.0.iter_mut() {
            match item {
                MapItem::Comment(c) => {
                    self.comment(c)?;
                }
                MapItem::Pair(k, v) => {
                    self.path.push(k.clone());
                    self.value(v)?;
                    self.path.pop();
                    self.comments.last_mut().expect("level pushed").clear();
                }
            }
        }
        self.comments.pop();
        Ok(())
    }

    fn seq(&mut self, s: &mut Seq) -> Result<(), WalkError> {
        self.comments.push(Vec::new());
        for item in s.0.iter_mut() {
            if let Some(c) = self.list_comment_item(item) {
                *item = SeqItem::Comment(c);
            }
            match item {
                // When encrypting, a list comment that was encrypted becomes
                // a list item, as sops writes it; one left in clear stays.
                SeqItem::Comment(c) => {
                    if self.comment(c)? {
                        *item = SeqItem::Elem(Value::Str(std::mem::take(c)));
                    }
                }
                SeqItem::Elem(v) => {
                    self.value(v)?;
                    self.comments.last_mut().expect("level pushed").clear();
                }
            }
        }
        self.comments.pop();
        Ok(())
    }

    /// sops writes an encrypted comment of a list as a list item
    /// (`- ENC[…,type:comment]`), and reads it back as a comment that is not
    /// in the MAC. When decrypting, such an item is taken as a comment.
    fn list_comment_item(&self, item: &SeqItem) -> Option<String> {
        match (&self.mode, item) {
            (Mode::Decrypt { .. }, SeqItem::Elem(Value::Str(s)))
                if cipher::EncValue::parse(s).is_ok_and(|e| e.typ == "comment") =>
            {
                Some(s.clone())
            }
            _ => None,
        }
    }

    /// Encrypts or decrypts a comment in place; true if it was encrypted.
    fn comment(&mut self, c: &mut String) -> Result<bool, WalkError> {
        let aad = self.aad();
        let at = self.at();
        match &mut self.mode {
            Mode::Encrypt { stash } => {
                self.comments.last_mut().expect("level").push(c.clone());
                if self.rule.should_encrypt(&self.path, &self.comments, true) && !c.is_empty() {
                    let iv = stash.and_then(|s| s.get(&aad, c.as_bytes()));
                    let enc = cipher::encrypt(self.key, c.as_bytes(), "comment", &aad, iv);
                    if let super::rules::Rule::UnencryptedCommentRegex(r) = self.rule {
                        if r.is_match(&enc) {
                            return Err(WalkError::CommentRegex { at });
                        }
                    }
                    *c = enc;
                    return Ok(true);
                }
            }
            Mode::Decrypt { stash, warnings } => {
                let mut plain = None;
                if cipher::looks_encrypted(c) {
                    // sops attaches a comment to a container by yaml.v3's rules; try
                    // the innermost path first, then each ancestor.
                    for depth in (0..=self.path.len()).rev() {
                        let mut a = self.path[..depth].join(":");
                        a.push(':');
                        if let Ok((pt, _, iv)) = cipher::decrypt(self.key, c, &a) {
                            if let Some(s) = stash.as_deref_mut() {
                                s.put(&a, &pt, &iv);
                            }
                            plain = Some(String::from_utf8_lossy(&pt).into_owned());
                            break;
                        }
                    }
                }
                match plain {
                    Some(p) => *c = p,
                    None => {
                        if cipher::looks_encrypted(c) {
                            warnings.push(format!(
                                "{at}: a comment did not decrypt and was kept as is"
                            ));
                        }
                    }
                }
                self.comments.last_mut().expect("level").push(c.clone());
            }
        }
        Ok(false)
    }

    fn value(&mut self, v: &mut Value) -> Result<(), WalkError> {
        match v {
            Value::Map(m) => return self.map(m),
            Value::Seq(s) => return self.seq(s),
            Value::Null => return Ok(()),
            _ => {}
        }
        let selected = self.rule.should_encrypt(&self.path, &self.comments, false);
        let aad = self.aad();
        let at = self.at();
        match &mut self.mode {
            Mode::Encrypt { stash } => {
                let bytes = scalar::to_bytes(v).expect("leaf");
                if !self.mac_only || selected {
                    self.mac.0.update(&bytes);
                }
                if selected && !bytes.is_empty() {
                    let iv = stash.and_then(|s| s.get(&aad, &bytes));
                    let enc = cipher::encrypt(self.key, &bytes, scalar::type_tag(v), &aad, iv);
                    *v = Value::Str(enc);
                }
            }
            Mode::Decrypt { stash, .. } => {
                if selected {
                    let s = match v {
                        Value::Str(s) => s,
                        other => {
                            return Err(WalkError::NotEncrypted {
                                at,
                                found: kind_name(other),
                            });
                        }
                    };
                    if !s.is_empty() {
                        let (pt, typ, iv) =
                            cipher::decrypt(self.key, s, &aad).map_err(|source| {
                                WalkError::Value {
                                    at: at.clone(),
                                    source,
                                }
                            })?;
                        if let Some(st) = stash.as_deref_mut() {
                            st.put(&aad, &pt, &iv);
                        }
                        *v = scalar::from_typed_bytes(pt.to_vec(), &typ)
                            .map_err(|msg| WalkError::Type { at, msg })?;
                    }
                }
                if !self.mac_only || selected {
                    self.mac.0.update(scalar::to_bytes(v).expect("leaf"));
                }
            }
        }
        Ok(())
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Int(_) => "integer",
        Value::Float(_) => "float",
        Value::Str(_) | Value::Bytes(_) => "string",
        Value::Time(_) => "timestamp",
        Value::Map(_) => "map",
        Value::Seq(_) => "list",
    }
}

/// Encrypts every selected value of every document in place; returns the MAC (hex).
pub fn encrypt_docs(
    docs: &mut [Map],
    key: &DataKey,
    rule: &Rule,
    mac_only_encrypted: bool,
    stash: Option<&Stash>,
) -> Result<String, WalkError> {
    let mut w = Walker {
        key,
        rule,
        mac_only: mac_only_encrypted,
        mac: Mac::new(mac_only_encrypted),
        mode: Mode::Encrypt { stash },
        doc: 0,
        path: vec![],
        comments: vec![],
    };
    for (i, d) in docs.iter_mut().enumerate() {
        w.doc = i;
        w.map(d)?;
    }
    Ok(w.mac.finish())
}

/// Decrypts in place; returns the recomputed MAC (hex). Comment failures are
/// tolerated (as sops does) and reported through `warnings`.
pub fn decrypt_docs(
    docs: &mut [Map],
    key: &DataKey,
    rule: &Rule,
    mac_only_encrypted: bool,
    stash: Option<&mut Stash>,
    warnings: &mut Vec<String>,
) -> Result<String, WalkError> {
    let mut w = Walker {
        key,
        rule,
        mac_only: mac_only_encrypted,
        mac: Mac::new(mac_only_encrypted),
        mode: Mode::Decrypt { stash, warnings },
        doc: 0,
        path: vec![],
        comments: vec![],
    };
    for (i, d) in docs.iter_mut().enumerate() {
        w.doc = i;
        w.map(d)?;
    }
    Ok(w.mac.finish())
}
