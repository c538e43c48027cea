//! The `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` value codec.

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use zeroize::Zeroizing;

/// AES-256-GCM with sops's 32-byte nonce.
type Gcm32 = AesGcm<Aes256, U32>;
/// AES-256-GCM with the standard 12-byte nonce, for files whose IV is 12 bytes.
type Gcm12 = AesGcm<Aes256, aes_gcm::aead::consts::U12>;

pub const TAG_LEN: usize = 16;
pub const IV_LEN: usize = 32;
const TYPES: [&str; 7] = ["str", "int", "float", "bool", "time", "comment", "bytes"];

/// The 32-byte per-file data key. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct DataKey(pub Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    pub fn generate() -> DataKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        DataKey(k)
    }

    pub fn from_slice(b: &[u8]) -> Option<DataKey> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(DataKey(Zeroizing::new(arr)))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A parsed `ENC[...]` string. Parsing checks the grammar and base64; it does
/// not need the key, so the pre-commit guard uses it too.
#[derive(Clone, PartialEq, Eq)]
pub struct EncValue {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub typ: String,
}

impl std::fmt::Debug for EncValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncValue(type:{}, {} bytes)", self.typ, self.data.len())
    }
}

/// Why an `ENC[...]` string is malformed. Never carries the string itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncGrammarError {
    #[error("does not start with ENC[AES256_GCM,")]
    Prefix,
    #[error("missing ']' at the end")]
    Unterminated,
    #[error("missing or misplaced field {0:?}")]
    Field(&'static str),
    #[error("field {0:?} is not valid standard base64")]
    Base64(&'static str),
    #[error("empty iv")]
    EmptyIv,
    #[error("tag is {0} bytes, expected 16")]
    TagLen(usize),
    #[error("unknown type {0:?}")]
    Type(String),
}

pub fn looks_encrypted(s: &str) -> bool {
    s.starts_with("ENC[")
}

impl EncValue {
    /// Parses with sops's grammar: `^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]`.
    /// Stricter than sops in one way: the value must end at the `]`.
    pub fn parse(s: &str) -> Result<EncValue, EncGrammarError> {
        let body = s
            .strip_prefix("ENC[AES256_GCM,")
            .ok_or(EncGrammarError::Prefix)?;
        let body = body
            .strip_suffix(']')
            .ok_or(EncGrammarError::Unterminated)?;
        let rest = body
            .strip_prefix("data:")
            .ok_or(EncGrammarError::Field("data"))?;
        let (data, rest) = rest
            .split_once(",iv:")
            .ok_or(EncGrammarError::Field("iv"))?;
        let (iv, rest) = rest
            .split_once(",tag:")
            .ok_or(EncGrammarError::Field("tag"))?;
        let (tag, typ) = rest
            .split_once(",type:")
            .ok_or(EncGrammarError::Field("type"))?;
        if !TYPES.contains(&typ) {
            return Err(EncGrammarError::Type(typ.chars().take(16).collect()));
        }
        let dec = |f: &'static str, v: &str| B64.decode(v).map_err(|_| EncGrammarError::Base64(f));
        let iv = dec("iv", iv)?;
        if iv.is_empty() {
            return Err(EncGrammarError::EmptyIv);
        }
        let tag = dec("tag", tag)?;
        if tag.len() != TAG_LEN {
            return Err(EncGrammarError::TagLen(tag.len()));
        }
        Ok(EncValue {
            data: dec("data", data)?,
            iv,
            tag,
            typ: typ.to_string(),
        })
    }

    pub fn render(&self) -> String {
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
            B64.encode(&self.data),
            B64.encode(&self.iv),
            B64.encode(&self.tag),
            self.typ
        )
    }
}

/// Encrypts one value. `iv` is reused from the stash when re-encrypting an
/// unchanged value, so unchanged lines stay byte-identical in git diffs.
pub fn encrypt(
    key: &DataKey,
    plaintext: &[u8],
    typ: &str,
    aad: &str,
    iv: Option<[u8; IV_LEN]>,
) -> String {
    let iv = iv.unwrap_or_else(|| {
        let mut iv = [0u8; IV_LEN];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        iv
    });
    let cipher = Gcm32::new_from_slice(key.bytes()).expect("32-byte key");
    let mut out = cipher
        .encrypt(
            aes_gcm::Nonce::<U32>::from_slice(&iv),
            Payload {
                msg: plaintext,
                aad: aad.as_bytes(),
            },
        )
        .expect("AES-GCM encryption cannot fail for in-memory buffers");
    let tag = out.split_off(out.len() - TAG_LEN);
    EncValue {
        data: out,
        iv: iv.to_vec(),
        tag,
        typ: typ.to_string(),
    }
    .render()
}

/// Why a value did not decrypt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("malformed ENC[] value: {0}")]
    Grammar(#[from] EncGrammarError),
    #[error(
        "authentication failed (tampered ciphertext, value moved to another key path, or wrong data key)"
    )]
    Auth,
    #[error("unsupported IV length {0} (expected 32 or 12)")]
    IvLen(usize),
}

/// Decrypts one `ENC[...]` string. Returns the plaintext bytes, type tag and IV.
pub fn decrypt(
    key: &DataKey,
    s: &str,
    aad: &str,
) -> Result<(Zeroizing<Vec<u8>>, String, Vec<u8>), DecryptError> {
    let v = EncValue::parse(s)?;
    let mut ct = Vec::with_capacity(v.data.len() + TAG_LEN);
    ct.extend_from_slice(&v.data);
    ct.extend_from_slice(&v.tag);
    let payload = Payload {
        msg: &ct,
        aad: aad.as_bytes(),
    };
    let pt = match v.iv.len() {
        32 => Gcm32::new_from_slice(key.bytes())
            .expect("32-byte key")
            .decrypt(aes_gcm::Nonce::<U32>::from_slice(&v.iv), payload),
        12 => Gcm12::new_from_slice(key.bytes())
            .expect("32-byte key")
            .decrypt(
                aes_gcm::Nonce::<aes_gcm::aead::consts::U12>::from_slice(&v.iv),
                payload,
            ),
        n => return Err(DecryptError::IvLen(n)),
    }
    .map_err(|_| DecryptError::Auth)?;
    Ok((Zeroizing::new(pt), v.typ, v.iv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binding() {
        let k = DataKey::generate();
        let e = encrypt(&k, b"hunter2", "str", "data:password:", None);
        let (pt, typ, iv) = decrypt(&k, &e, "data:password:").unwrap();
        assert_eq!(&pt[..], b"hunter2");
        assert_eq!(typ, "str");
        assert_eq!(iv.len(), 32);
        assert_eq!(
            decrypt(&k, &e, "data:other:").unwrap_err(),
            DecryptError::Auth
        );
    }

    #[test]
    fn grammar_errors_are_specific() {
        assert_eq!(
            EncValue::parse("ENC[AES256_GCM,data:AA==,iv:,tag:AA==,type:str]").unwrap_err(),
            EncGrammarError::EmptyIv
        );
        assert_eq!(
            EncValue::parse("ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:nope]").unwrap_err(),
            EncGrammarError::Type("nope".into())
        );
        assert_eq!(
            EncValue::parse("ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str").unwrap_err(),
            EncGrammarError::Unterminated
        );
        assert!(matches!(
            EncValue::parse(
                "ENC[AES256_GCM,data:!!,iv:AA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]"
            ),
            Err(EncGrammarError::Base64("data"))
        ));
    }
}
