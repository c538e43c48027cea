//! Master keys: one trait for every backend that wraps the data key, and the
//! key ring that wraps for recipients and recovers the key from a file.

pub mod age;
#[cfg(feature = "kms")]
pub mod aws_kms;
#[cfg(feature = "kms")]
pub mod azure_kv;
#[cfg(feature = "kms")]
pub(crate) mod gcp_auth;
#[cfg(feature = "kms")]
pub mod gcp_kms;
pub mod passphrase;
pub mod pgp;
#[cfg(feature = "kms")]
pub(crate) mod service;
pub mod shamir;
#[cfg(feature = "kms")]
pub mod vault;

use indexmap::IndexMap;
use zeroize::Zeroizing;

use crate::sops::{DataKey, KeyGroup, Metadata, Stanza};

/// Who a data key is wrapped for, as configured (recipients file, `.sops.yaml`, flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    Age(String),
    Kms {
        arn: String,
        role: String,
        context: IndexMap<String, String>,
        aws_profile: String,
    },
    HcVault {
        address: String,
        engine_path: String,
        key_name: String,
    },
    AzureKv {
        vault_url: String,
        name: String,
        version: String,
    },
    /// A PGP key by fingerprint (GnuPG does the work, as in sops).
    Pgp(String),
    /// A Google Cloud KMS CryptoKey (`projects/…/cryptoKeys/K`).
    GcpKms {
        resource_id: String,
    },
    /// HuaweiCloud KMS: parsed and kept, but ksec cannot wrap for it (yet).
    HcKms {
        key_id: String,
    },
}

impl Recipient {
    pub fn kind(&self) -> &'static str {
        match self {
            Recipient::Age(_) => "age",
            Recipient::Kms { .. } => "kms",
            Recipient::HcVault { .. } => "hc_vault",
            Recipient::AzureKv { .. } => "azure_kv",
            Recipient::Pgp(_) => "pgp",
            Recipient::GcpKms { .. } => "gcp_kms",
            Recipient::HcKms { .. } => "hckms",
        }
    }

    /// `pgp:FP` from a fingerprint as sops takes it (spaces dropped).
    pub fn pgp(fp: &str) -> Recipient {
        Recipient::Pgp(fp.chars().filter(|c| !c.is_whitespace()).collect())
    }

    /// Whether ksec can wrap a data key for this recipient.
    pub fn is_supported(&self) -> bool {
        !matches!(self, Recipient::HcKms { .. })
    }

    /// The same string [`Stanza::recipient`] yields, so configured and stored
    /// recipients compare directly (updatekeys diffs, doctor checks).
    pub fn id(&self) -> String {
        match self {
            Recipient::Age(r) => r.clone(),
            Recipient::Kms { arn, role, .. } if !role.is_empty() => format!("{arn}+{role}"),
            Recipient::Kms { arn, .. } => arn.clone(),
            Recipient::HcVault {
                address,
                engine_path,
                key_name,
            } => format!("{address}/v1/{engine_path}/keys/{key_name}"),
            Recipient::AzureKv {
                vault_url,
                name,
                version,
            } => format!("{vault_url}/keys/{name}/{version}"),
            Recipient::Pgp(fp) => format!("pgp:{fp}"),
            Recipient::GcpKms { resource_id } => format!("gcp_kms:{resource_id}"),
            Recipient::HcKms { key_id } => format!("hckms:{key_id}"),
        }
    }

    /// The recipient a stored stanza was wrapped for (rotate re-wraps for it).
    pub fn from_stanza(st: &Stanza) -> Option<Recipient> {
        Some(match st {
            Stanza::Age { recipient, .. } => Recipient::Age(recipient.clone()),
            Stanza::Kms {
                arn,
                role,
                context,
                aws_profile,
                ..
            } => Recipient::Kms {
                arn: arn.clone(),
                role: role.clone(),
                context: context.clone(),
                aws_profile: aws_profile.clone(),
            },
            Stanza::HcVault {
                vault_address,
                engine_path,
                key_name,
                ..
            } => Recipient::HcVault {
                address: vault_address.clone(),
                engine_path: engine_path.clone(),
                key_name: key_name.clone(),
            },
            Stanza::AzureKv {
                vault_url,
                name,
                version,
                ..
            } => Recipient::AzureKv {
                vault_url: vault_url.clone(),
                name: name.clone(),
                version: version.clone(),
            },
            Stanza::Pgp { fp, .. } => Recipient::Pgp(fp.clone()),
            Stanza::Other { kind, fields } => {
                let field = |k: &str| fields.str_of(k).map(str::to_string);
                match kind.as_str() {
                    "gcp_kms" => Recipient::GcpKms {
                        resource_id: field("resource_id")?,
                    },
                    "hckms" => Recipient::HcKms {
                        key_id: field("key_id")?,
                    },
                    _ => return None,
                }
            }
        })
    }

    /// `arn` or `arn+roleArn`, as in `.sops.yaml` `kms:` and `--kms`.
    pub fn kms_from_str(
        s: &str,
        context: IndexMap<String, String>,
        aws_profile: &str,
    ) -> Recipient {
        let (arn, role) = s.trim().split_once('+').unwrap_or((s.trim(), ""));
        Recipient::Kms {
            arn: arn.to_string(),
            role: role.to_string(),
            context,
            aws_profile: aws_profile.to_string(),
        }
    }

    /// `https://host:8200/v1/<engine path>/keys/<name>` (sops's `hc_vault_transit_uri`).
    pub fn vault_from_uri(uri: &str) -> Result<Recipient, KeyError> {
        let bad = || {
            KeyError::Config(format!(
                "invalid Vault transit URI {uri:?}: expected SCHEME://HOST[:PORT]/v1/ENGINE/keys/NAME"
            ))
        };
        let u = url::Url::parse(uri.trim()).map_err(|_| bad())?;
        let path = u.path().trim_matches('/');
        let rest = path.strip_prefix("v1/").ok_or_else(bad)?;
        let (engine, name) = rest.rsplit_once("/keys/").ok_or_else(bad)?;
        if engine.is_empty() || name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        let mut address = format!("{}://{}", u.scheme(), u.host_str().ok_or_else(bad)?);
        if let Some(p) = u.port() {
            address.push_str(&format!(":{p}"));
        }
        Ok(Recipient::HcVault {
            address,
            engine_path: engine.to_string(),
            key_name: name.to_string(),
        })
    }

    /// `projects/P/locations/L/keyRings/R/cryptoKeys/K` (sops's `gcp_kms`).
    pub fn gcp_from_str(s: &str) -> Result<Recipient, KeyError> {
        let resource_id = s.trim().to_string();
        validate_gcp_resource_id(&resource_id)?;
        Ok(Recipient::GcpKms { resource_id })
    }

    /// `https://NAME.vault.azure.net/keys/KEY[/VERSION]` (sops's `azure_keyvault`).
    pub fn azure_from_url(s: &str) -> Result<Recipient, KeyError> {
        let bad = || {
            KeyError::Config(format!(
                "invalid Azure Key Vault key URL {s:?}: expected https://VAULT/keys/NAME[/VERSION]"
            ))
        };
        let u = url::Url::parse(s.trim()).map_err(|_| bad())?;
        let segs: Vec<&str> = u.path().trim_matches('/').split('/').collect();
        let (name, version) = match segs.as_slice() {
            ["keys", n] => (n.to_string(), String::new()),
            ["keys", n, v] => (n.to_string(), v.to_string()),
            _ => return Err(bad()),
        };
        let mut vault_url = format!("{}://{}", u.scheme(), u.host_str().ok_or_else(bad)?);
        if let Some(p) = u.port() {
            vault_url.push_str(&format!(":{p}"));
        }
        Ok(Recipient::AzureKv {
            vault_url,
            name,
            version,
        })
    }
}

/// sops's check: a CryptoKey name, not a key ring or a version.
pub fn validate_gcp_resource_id(id: &str) -> Result<(), KeyError> {
    let segs: Vec<&str> = id.split('/').collect();
    let ok = segs.len() == 8
        && segs[0] == "projects"
        && segs[2] == "locations"
        && segs[4] == "keyRings"
        && segs[6] == "cryptoKeys"
        && segs.iter().all(|s| !s.is_empty());
    if ok {
        Ok(())
    } else {
        Err(KeyError::Config(format!(
            "invalid GCP KMS resource ID {id:?}: expected projects/P/locations/L/keyRings/R/cryptoKeys/K"
        )))
    }
}

/// The service's own failure class, so users can tell "no access" from "no network".
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    AccessDenied,
    KeyDisabled,
    NotFound,
    Throttled,
    Network,
    InvalidCiphertext,
    Other,
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorClass::AccessDenied => "access denied",
            ErrorClass::KeyDisabled => "key disabled",
            ErrorClass::NotFound => "not found",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Network => "network error",
            ErrorClass::InvalidCiphertext => "invalid ciphertext",
            ErrorClass::Other => "error",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// This source has no identity for the stanza; try the next one.
    #[error("no matching identity")]
    NoIdentity,
    #[error("{backend} key {key}: {class}: {detail}")]
    Backend {
        backend: &'static str,
        key: String,
        class: ErrorClass,
        detail: String,
    },
    #[error("{0}")]
    Config(String),
    #[error(
        "{0} keys are not supported by ksec yet: their stanzas are kept, but ksec cannot encrypt or decrypt with them"
    )]
    Unsupported(String),
    #[error("could not decrypt the data key with any recipient in the file:\n{}\n  hint: {hint}", attempts.join("\n"))]
    NoKey { attempts: Vec<String>, hint: String },
    #[error("Shamir: {0}")]
    Shamir(#[from] shamir::ShamirError),
}

/// Builds the key ring from the environment: age identities (only when
/// decrypting) and the cloud key services, whose clients are created lazily
/// so a file with only age recipients never needs cloud credentials.
pub fn keyring_from_env(
    opts: &age::IdentityOptions,
    need_identities: bool,
) -> Result<KeyRing, KeyError> {
    let mut ring = KeyRing::new();
    ring.add(Box::new(if need_identities {
        age::AgeSource::discover(opts)?
    } else {
        age::AgeSource::empty()
    }));
    // Cloud sources only read settings here; clients, credentials and logins
    // are created on the first wrap/unwrap that needs them.
    #[cfg(feature = "kms")]
    {
        ring.add(Box::new(aws_kms::AwsKmsSource::default()));
        ring.add(Box::new(vault::VaultSource::from_env()));
        ring.add(Box::new(azure_kv::AzureKvSource::from_env()));
        ring.add(Box::new(gcp_kms::GcpKmsSource::from_env()));
    }
    #[cfg(not(feature = "kms"))]
    for kind in ["kms", "hc_vault", "azure_kv", "gcp_kms"] {
        ring.add(Box::new(NotBuilt(kind)));
    }
    ring.add(Box::new(pgp::PgpSource::from_env()));
    ring.add(Box::new(Unsupported("hckms")));
    Ok(ring)
}

/// Key services ksec parses and keeps but cannot use (yet): wrapping and
/// unwrapping fail with [`KeyError::Unsupported`], so only encrypting to
/// them (or having nothing else to decrypt with) is an error.
struct Unsupported(&'static str);

impl KeySource for Unsupported {
    fn kind(&self) -> &'static str {
        self.0
    }
    fn wrap(&self, _: &Recipient, _: &[u8]) -> Result<Stanza, KeyError> {
        Err(KeyError::Unsupported(self.0.to_string()))
    }
    fn unwrap(&self, _: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Err(KeyError::Unsupported(self.0.to_string()))
    }
}

/// Stands in for a cloud key service in a build without the `kms` feature:
/// its stanzas are still parsed and preserved, only wrapping and unwrapping
/// fail, with an error that says why.
#[cfg(not(feature = "kms"))]
struct NotBuilt(&'static str);

#[cfg(not(feature = "kms"))]
impl NotBuilt {
    fn error(&self) -> KeyError {
        KeyError::Config(format!(
            "{} keys: ksec was built without kms support (enable the `kms` feature)",
            self.0
        ))
    }
}

#[cfg(not(feature = "kms"))]
impl KeySource for NotBuilt {
    fn kind(&self) -> &'static str {
        self.0
    }
    fn wrap(&self, _: &Recipient, _: &[u8]) -> Result<Stanza, KeyError> {
        Err(self.error())
    }
    fn unwrap(&self, _: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Err(self.error())
    }
}

/// A backend that can wrap for its recipients and unwrap its stanzas.
pub trait KeySource: Send + Sync {
    /// The metadata list this source handles (`age`, `kms`, `hc_vault`, `azure_kv`).
    fn kind(&self) -> &'static str;
    fn wrap(&self, recipient: &Recipient, data_key: &[u8]) -> Result<Stanza, KeyError>;
    /// `Err(KeyError::NoIdentity)` when this source simply has no matching identity.
    fn unwrap(&self, stanza: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError>;
}

/// All configured key sources. Decryption tries local age identities first,
/// then the cloud keys in stored order, so one slow service does not block
/// a file another recipient can open.
#[derive(Default)]
pub struct KeyRing {
    sources: Vec<Box<dyn KeySource>>,
    /// sops's `--decryption-order`: key kinds tried first, in this order.
    order: Vec<String>,
}

/// The key kinds `--decryption-order` may name (sops's identifiers).
pub const DECRYPTION_KINDS: &[&str] = &[
    "age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms",
];

/// A group's stanzas in the order they are tried: the kinds of `order`
/// first, in that order, then age, then the rest as stored.
fn try_order<'a>(stanzas: &'a [Stanza], order: &[String]) -> Vec<&'a Stanza> {
    let rank = |s: &Stanza| {
        order
            .iter()
            .position(|k| k == s.kind())
            .unwrap_or(order.len() + usize::from(s.kind() != "age"))
    };
    let mut out: Vec<&Stanza> = stanzas.iter().collect();
    out.sort_by_key(|s| rank(s));
    out
}

/// Which stanza opened the file (`--verbose`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Opened {
    pub group: usize,
    pub kind: String,
    pub recipient: String,
}

impl Opened {
    /// `age age1…`, but `pgp:FP` (as attempt lines print recipients).
    pub fn label(&self) -> String {
        if self.recipient.starts_with(&format!("{}:", self.kind)) {
            self.recipient.clone()
        } else {
            format!("{} {}", self.kind, self.recipient)
        }
    }
}

impl KeyRing {
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    pub fn add(&mut self, s: Box<dyn KeySource>) {
        self.sources.push(s);
    }

    /// Tries these key kinds first when recovering a data key (sops's
    /// `--decryption-order`); an unknown kind is a configuration error.
    pub fn set_decryption_order(&mut self, kinds: &[String]) -> Result<(), KeyError> {
        if let Some(k) = kinds
            .iter()
            .find(|k| !DECRYPTION_KINDS.contains(&k.as_str()))
        {
            return Err(KeyError::Config(format!(
                "--decryption-order: unknown key type {k:?} (known: {})",
                DECRYPTION_KINDS.join(", ")
            )));
        }
        self.order = kinds.to_vec();
        Ok(())
    }

    fn source(&self, kind: &str) -> Option<&dyn KeySource> {
        self.sources
            .iter()
            .find(|s| s.kind() == kind)
            .map(|b| b.as_ref())
    }

    /// Wraps `key` for every group. Two or more groups split the key with
    /// Shamir (`threshold` 0 means all groups), share i to group i.
    pub fn wrap(
        &self,
        groups: &[Vec<Recipient>],
        threshold: usize,
        key: &DataKey,
    ) -> Result<(Vec<KeyGroup>, usize), KeyError> {
        if groups.is_empty() || groups.iter().all(|g| g.is_empty()) {
            return Err(KeyError::Config(
                "no recipients: nothing could decrypt the file".into(),
            ));
        }
        if let Some(i) = groups.iter().position(|g| g.is_empty()) {
            return Err(KeyError::Config(format!("key group {i} is empty")));
        }
        let (parts, threshold): (Vec<Zeroizing<Vec<u8>>>, usize) = if groups.len() == 1 {
            (vec![Zeroizing::new(key.bytes().to_vec())], threshold)
        } else {
            let t = if threshold == 0 {
                groups.len()
            } else {
                threshold
            };
            (shamir::split(key.bytes(), groups.len(), t)?, t)
        };
        let mut out = Vec::with_capacity(groups.len());
        for (g, part) in groups.iter().zip(parts.iter()) {
            let mut stanzas = Vec::with_capacity(g.len());
            for r in g {
                let src = self.source(r.kind()).ok_or_else(|| {
                    KeyError::Config(format!("no {} key service is configured", r.kind()))
                })?;
                stanzas.push(src.wrap(r, part)?);
            }
            out.push(KeyGroup(stanzas));
        }
        Ok((out, threshold))
    }

    /// Re-wraps an existing data key: stanzas for recipients already present
    /// are kept as they are (no key-service call), new ones are wrapped.
    pub fn rewrap(
        &self,
        old: &Metadata,
        groups: &[Vec<Recipient>],
        threshold: usize,
        key: &DataKey,
    ) -> Result<(Vec<KeyGroup>, usize), KeyError> {
        if groups.len() == 1 && old.key_groups.len() == 1 {
            let mut stanzas = Vec::new();
            for r in &groups[0] {
                match old.key_groups[0]
                    .0
                    .iter()
                    .find(|s| s.kind() == r.kind() && s.recipient() == r.id())
                {
                    Some(s) => stanzas.push(s.clone()),
                    None => {
                        let src = self.source(r.kind()).ok_or_else(|| {
                            KeyError::Config(format!("no {} key service is configured", r.kind()))
                        })?;
                        stanzas.push(src.wrap(r, key.bytes())?);
                    }
                }
            }
            return Ok((vec![KeyGroup(stanzas)], threshold));
        }
        // Shares change with the group layout: wrap everything afresh.
        self.wrap(groups, threshold, key)
    }

    /// Recovers the data key from the metadata's groups.
    pub fn recover(&self, meta: &Metadata) -> Result<(DataKey, Vec<Opened>), KeyError> {
        let mut attempts = Vec::new();
        let mut parts: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut opened = Vec::new();
        let needed = if meta.key_groups.len() > 1 {
            if meta.shamir_threshold == 0 {
                meta.key_groups.len()
            } else {
                meta.shamir_threshold
            }
        } else {
            1
        };
        for (gi, g) in meta.key_groups.iter().enumerate() {
            if parts.len() >= needed {
                break;
            }
            for st in try_order(&g.0, &self.order) {
                let res = match self.source(st.kind()) {
                    Some(src) => src.unwrap(st),
                    None => Err(KeyError::Unsupported(st.kind().to_string())),
                };
                match res {
                    Ok(part) => {
                        opened.push(Opened {
                            group: gi,
                            kind: st.kind().to_string(),
                            recipient: st.recipient(),
                        });
                        parts.push(part);
                        break;
                    }
                    Err(e) => attempts.push(format!("  - group {gi}, {}: {e}", label(st))),
                }
            }
        }
        let hint = hint_for(meta);
        if meta.key_groups.len() == 1 {
            let part = parts.pop().ok_or(KeyError::NoKey { attempts, hint })?;
            let key = DataKey::from_slice(&part).ok_or_else(|| {
                KeyError::Config(format!(
                    "the unwrapped data key is {} bytes, expected 32",
                    part.len()
                ))
            })?;
            return Ok((key, opened));
        }
        if parts.len() < needed {
            attempts.push(format!(
                "  - only {} of the {needed} key groups needed (shamir_threshold) could be opened",
                parts.len()
            ));
            return Err(KeyError::NoKey { attempts, hint });
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        let secret = shamir::combine(&refs)?;
        let key = DataKey::from_slice(&secret).ok_or_else(|| {
            KeyError::Config(format!(
                "the combined data key is {} bytes, expected 32",
                secret.len()
            ))
        })?;
        Ok((key, opened))
    }
}

/// `age age1…`, `kms arn:…`, but `pgp:FP` (the id already says its kind).
fn label(st: &Stanza) -> String {
    let r = st.recipient();
    if r.starts_with(&format!("{}:", st.kind())) {
        r
    } else {
        format!("{} {r}", st.kind())
    }
}

/// What to do when nothing opened the file, for the kinds of keys it has
/// (a PGP-only file gets no advice about age variables).
fn hint_for(meta: &Metadata) -> String {
    let has = |k: &str| meta.stanzas().any(|s| s.kind() == k);
    let mut out = Vec::new();
    if has("age") {
        out.push("set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY), or pass --identity FILE");
    }
    if has("pgp") {
        out.push("import the PGP secret key into GnuPG with `gpg --import` (GNUPGHOME selects the keyring; SOPS_GPG_EXEC the program)");
    }
    if has("gcp_kms") {
        out.push("check the Google credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, or Workload Identity) and roles/cloudkms.cryptoKeyDecrypter on the key");
    }
    if has("kms") || has("hc_vault") || has("azure_kv") {
        out.push("check the cloud credentials of the KMS recipients");
    }
    if out.is_empty() {
        out.push(
            "the file has no recipient ksec can use; decrypt it where its key service is available",
        );
    }
    out.join("; or ")
}

#[cfg(test)]
mod order_tests {
    use super::*;

    fn st(kind: &str, r: &str) -> Stanza {
        match kind {
            "age" => Stanza::Age {
                recipient: r.into(),
                enc: String::new(),
            },
            k => Stanza::Other {
                kind: k.into(),
                fields: Default::default(),
            },
        }
    }

    fn kinds(order: &[&str]) -> Vec<String> {
        let g = [
            st("pgp", "p"),
            st("kms", "k"),
            st("age", "a1"),
            st("age", "a2"),
        ];
        let order: Vec<String> = order.iter().map(|s| s.to_string()).collect();
        try_order(&g, &order)
            .into_iter()
            .map(|s| format!("{}:{}", s.kind(), s.recipient()))
            .collect()
    }

    #[test]
    fn age_first_by_default_then_the_decryption_order() {
        let by_kind = |v: Vec<String>| -> Vec<String> {
            v.into_iter()
                .map(|s| s.split(':').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(by_kind(kinds(&[])), ["age", "age", "pgp", "kms"]);
        assert_eq!(
            by_kind(kinds(&["kms", "pgp"])),
            ["kms", "pgp", "age", "age"]
        );
        assert_eq!(by_kind(kinds(&["pgp"])), ["pgp", "age", "age", "kms"]);
        let mut ring = KeyRing::new();
        assert!(ring.set_decryption_order(&["gpg".to_string()]).is_err());
        assert!(
            ring.set_decryption_order(&["age".to_string(), "hc_vault".to_string()])
                .is_ok()
        );
    }
}
