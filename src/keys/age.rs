//! age recipients (X25519, ssh-ed25519, ssh-rsa, plugins) and identity
//! discovery the way sops does it, passphrase-protected identity files included.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format as ArmorFormat};
use zeroize::Zeroizing;

use std::sync::Mutex;

use age_core::format::{FileKey, Stanza as AgeStanza};

use super::passphrase::{self, TerminalUi};
use super::{ErrorClass, KeyError, KeySource, Recipient};
use crate::sops::Stanza;

type BoxedIdentity = Box<dyn age::Identity + Send + Sync>;

/// Where identities come from, in sops's order plus ksec's `--identity`.
#[derive(Clone, Debug, Default)]
pub struct IdentityOptions {
    /// `--identity FILE` (age identity files or OpenSSH private keys).
    pub files: Vec<PathBuf>,
}

pub struct AgeSource {
    identities: Vec<BoxedIdentity>,
    /// Where each identity came from (for `--verbose` and error hints); never key material.
    pub origins: Vec<String>,
    /// Plugin identities whose plugin is not on PATH (named when nothing else decrypts).
    missing_plugins: Vec<String>,
}

impl AgeSource {
    pub fn empty() -> AgeSource {
        AgeSource {
            identities: vec![],
            origins: vec![],
            missing_plugins: vec![],
        }
    }

    /// Loads identities from `--identity`, `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`,
    /// `SOPS_AGE_KEY_CMD`, the default key file, and SSH keys
    /// (`SOPS_AGE_SSH_PRIVATE_KEY_FILE`, `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`).
    /// Explicit sources that fail to load are errors; default paths that are absent are skipped.
    pub fn discover(opts: &IdentityOptions) -> Result<AgeSource, KeyError> {
        let mut src = AgeSource::empty();
        for f in &opts.files {
            src.load_file(f, true)?;
        }
        if let Ok(k) = std::env::var("SOPS_AGE_KEY") {
            let k = Zeroizing::new(k);
            src.load_identity_bytes(k.as_bytes(), "SOPS_AGE_KEY")?;
        }
        if let Some(f) = std::env::var_os("SOPS_AGE_KEY_FILE") {
            src.load_file(Path::new(&f), true)?;
        }
        if let Ok(cmd) = std::env::var("SOPS_AGE_KEY_CMD") {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&cmd)
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| KeyError::Config(format!("SOPS_AGE_KEY_CMD could not run: {e}")))?;
            if !out.status.success() {
                return Err(KeyError::Config(format!(
                    "SOPS_AGE_KEY_CMD exited with {}",
                    out.status
                )));
            }
            let stdout = Zeroizing::new(out.stdout);
            src.load_identity_bytes(&stdout, "SOPS_AGE_KEY_CMD")?;
        }
        if let Some(p) = default_key_file() {
            if p.exists() {
                src.load_file(&p, false)?;
            }
        }
        if let Some(f) = std::env::var_os("SOPS_AGE_SSH_PRIVATE_KEY_FILE") {
            src.load_ssh(Path::new(&f), true)?;
        } else if let Some(home) = std::env::var_os("HOME") {
            for name in ["id_ed25519", "id_rsa"] {
                let p = Path::new(&home).join(".ssh").join(name);
                if p.exists() {
                    // A passphrase-protected or unsupported default key is skipped, not fatal.
                    let _ = src.load_ssh(&p, false);
                }
            }
        }
        Ok(src)
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Age identity file, passphrase-protected age identity file (`age -p`,
    /// armored or binary) or OpenSSH private key, by content.
    pub fn load_file(&mut self, path: &Path, explicit: bool) -> Result<(), KeyError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
            KeyError::Config(format!("cannot read identity file {}: {e}", path.display()))
        })?);
        let head = bytes.trim_ascii_start();
        if head.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----")
            || head.starts_with(b"-----BEGIN RSA PRIVATE KEY-----")
        {
            return self.load_ssh(path, explicit);
        }
        self.load_identity_bytes(&bytes, &path.display().to_string())
    }

    /// Identities from text, or one encrypted identity when the bytes are an
    /// age file (sops checks every identity source for this, environment
    /// variable and command output included).
    fn load_identity_bytes(&mut self, bytes: &[u8], origin: &str) -> Result<(), KeyError> {
        let head = bytes.trim_ascii_start();
        if head.starts_with(b"age-encryption") || head.starts_with(b"-----BEGIN AGE") {
            let id = EncryptedIdentityFile::new(head, origin)?;
            self.identities.push(Box::new(id));
            self.origins.push(origin.to_string());
            return Ok(());
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| KeyError::Config(format!("{origin}: not a valid age identity file")))?;
        self.load_identity_text(text, origin)
    }

    fn load_identity_text(&mut self, text: &str, origin: &str) -> Result<(), KeyError> {
        let (ids, missing) = parse_identities(text, origin)?;
        for id in ids {
            self.identities.push(id);
            self.origins.push(origin.to_string());
        }
        self.missing_plugins
            .extend(missing.into_iter().map(|m| format!("{origin}: {m}")));
        Ok(())
    }

    fn load_ssh(&mut self, path: &Path, explicit: bool) -> Result<(), KeyError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
            KeyError::Config(format!("cannot read SSH key {}: {e}", path.display()))
        })?);
        let id = age::ssh::Identity::from_buffer(&bytes[..], Some(path.display().to_string()))
            .map_err(|_| {
                KeyError::Config(format!("{}: not an OpenSSH private key", path.display()))
            })?;
        match id {
            age::ssh::Identity::Unencrypted(_) => {
                self.identities.push(Box::new(id));
                self.origins.push(path.display().to_string());
                Ok(())
            }
            _ if explicit => Err(KeyError::Config(format!(
                "{}: passphrase-protected or unsupported SSH keys cannot be used non-interactively",
                path.display()
            ))),
            _ => Ok(()),
        }
    }
}

/// Parses identities (X25519 and plugin `AGE-PLUGIN-…`), whitespace-separated
/// or one per line; `#` lines are comments. A plugin identity whose
/// `age-plugin-<name>` is not on PATH is reported in the second list instead
/// of failing the load: like sops, ksec only needs it if no other identity
/// opens the file.
fn parse_identities(
    text: &str,
    origin: &str,
) -> Result<(Vec<BoxedIdentity>, Vec<String>), KeyError> {
    let mut ids = Vec::new();
    let mut missing = Vec::new();
    let tokens = text
        .lines()
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.starts_with('#'))
        .flat_map(str::split_whitespace);
    for token in tokens {
        let file = age::IdentityFile::from_buffer(token.as_bytes())
            .map_err(|_| KeyError::Config(format!("{origin}: not a valid age identity file")))?;
        match file.with_callbacks(TerminalUi).into_identities() {
            Ok(found) => ids.extend(found),
            Err(e) if token.starts_with("AGE-PLUGIN-") => missing.push(plain_message(&e)),
            Err(e) => {
                return Err(KeyError::Config(format!(
                    "{origin}: cannot use its identities: {}",
                    plain_message(&e)
                )));
            }
        }
    }
    Ok((ids, missing))
}

/// An age error message without the Unicode isolation marks its
/// localisation puts around arguments, on one line.
fn plain_message(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .replace(['\u{2068}', '\u{2069}'], "")
        .replace('\n', " ")
}

/// Upper bound on an encrypted identity file, as sops has.
const ENCRYPTED_IDENTITY_LIMIT: usize = 1 << 24;

/// A passphrase-protected identity file (`age -p` output). The passphrase is
/// asked for (gpg-agent, else terminal) only when a stanza needs it, once per
/// run; the decrypted identities, or the failure, are then kept.
struct EncryptedIdentityFile {
    /// The binary age file (de-armored).
    contents: Vec<u8>,
    origin: String,
    state: Mutex<Option<Result<Vec<BoxedIdentity>, String>>>,
}

impl EncryptedIdentityFile {
    fn new(bytes: &[u8], origin: &str) -> Result<Self, KeyError> {
        let mut contents = Vec::new();
        ArmoredReader::new(bytes)
            .take(ENCRYPTED_IDENTITY_LIMIT as u64)
            .read_to_end(&mut contents)
            .map_err(|e| KeyError::Config(format!("failed to read '{origin}': {e}")))?;
        if contents.len() == ENCRYPTED_IDENTITY_LIMIT {
            return Err(KeyError::Config(format!(
                "failed to read '{origin}': file too long"
            )));
        }
        Ok(EncryptedIdentityFile {
            contents,
            origin: origin.to_string(),
            state: Mutex::new(None),
        })
    }

    fn decrypt(&self) -> Result<Vec<BoxedIdentity>, String> {
        let origin = &self.origin;
        let dec = age::Decryptor::new_buffered(&self.contents[..])
            .map_err(|e| format!("failed to decrypt identity file '{origin}': {e}"))?;
        if !dec.is_scrypt() {
            return Err(format!(
                "identity file '{origin}' is age-encrypted but not to a passphrase"
            ));
        }
        let key = passphrase::cache_key(&self.contents);
        let pass = passphrase::identity_passphrase(&key, origin)
            .map_err(|e| format!("could not read passphrase for '{origin}': {e}"))?;
        let id = age::scrypt::Identity::new(age::secrecy::SecretString::from(pass.to_string()));
        drop(pass);
        let mut reader = match dec.decrypt(std::iter::once(&id as &dyn age::Identity)) {
            Ok(r) => r,
            Err(age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed) => {
                passphrase::forget_passphrase(&key);
                return Err(format!("incorrect passphrase for identity file '{origin}'"));
            }
            Err(e) => return Err(format!("failed to decrypt identity file '{origin}': {e}")),
        };
        let mut plain = Zeroizing::new(Vec::new());
        reader
            .read_to_end(&mut plain)
            .map_err(|e| format!("failed to decrypt identity file '{origin}': {e}"))?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| format!("'{origin}' does not contain age identities"))?;
        match parse_identities(text, origin).map_err(|e| e.to_string())? {
            (ids, missing) if missing.is_empty() => Ok(ids),
            (_, missing) => Err(format!("{origin}: {}", missing.join("; "))),
        }
    }

    /// Runs `f` over the decrypted identities, decrypting on first use.
    fn with_identities(
        &self,
        f: impl Fn(&BoxedIdentity) -> Option<Result<FileKey, age::DecryptError>>,
    ) -> Option<Result<FileKey, age::DecryptError>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ids = state.get_or_insert_with(|| self.decrypt());
        match ids {
            Ok(ids) => {
                let found = ids.iter().find_map(f);
                if found.is_none() {
                    tracing::warn!(
                        "encrypted identity '{}' didn't match file's recipients",
                        self.origin
                    );
                }
                found
            }
            Err(msg) => Some(Err(age::DecryptError::Io(std::io::Error::other(
                msg.clone(),
            )))),
        }
    }
}

impl age::Identity for EncryptedIdentityFile {
    fn unwrap_stanza(&self, stanza: &AgeStanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.with_identities(|i| i.unwrap_stanza(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[AgeStanza]) -> Option<Result<FileKey, age::DecryptError>> {
        self.with_identities(|i| i.unwrap_stanzas(stanzas))
    }
}

/// `<UserConfigDir>/sops/age/keys.txt`, as Go's `os.UserConfigDir` finds it.
pub fn default_key_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME")?).join(if cfg!(target_os = "macos") {
            "Library/Application Support"
        } else {
            ".config"
        }),
    };
    Some(base.join("sops").join("age").join("keys.txt"))
}

/// Parses an age recipient string (X25519 `age1…`, `ssh-ed25519 …`, `ssh-rsa …`).
pub fn parse_recipient(s: &str) -> Result<Box<dyn age::Recipient + Send>, KeyError> {
    let s = s.trim();
    if s.starts_with("ssh-") {
        return s
            .parse::<age::ssh::Recipient>()
            .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
            .map_err(|_| KeyError::Config(format!("invalid SSH recipient {s:?}")));
    }
    if s.starts_with("age1pq1") {
        return Err(KeyError::Config(format!(
            "post-quantum age recipients are not supported yet: {s}"
        )));
    }
    if is_plugin_recipient(s) {
        return plugin_recipient(s);
    }
    s.parse::<age::x25519::Recipient>()
        .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
        .map_err(|e| KeyError::Config(format!("invalid age recipient {s:?}: {e}")))
}

/// `age1<plugin>1…`: sops's test is an `age1` prefix and more than one `1`.
fn is_plugin_recipient(s: &str) -> bool {
    s.starts_with("age1") && s.matches('1').count() > 1
}

/// A recipient served by `age-plugin-<name>` on PATH.
fn plugin_recipient(s: &str) -> Result<Box<dyn age::Recipient + Send>, KeyError> {
    let r = s.parse::<age::plugin::Recipient>().map_err(|e| {
        KeyError::Config(format!(
            "failed to parse {s:?} as age key from age plugin: {e}"
        ))
    })?;
    let name = r.plugin().to_string();
    age::plugin::RecipientPluginV1::new(&name, &[r], &[], TerminalUi)
        .map(|p| Box::new(p) as Box<dyn age::Recipient + Send>)
        .map_err(|e| KeyError::Config(format!("age plugin for {s:?}: {}", plain_message(&e))))
}

/// Encrypts bytes to the recipient as an armored age file, as sops stores it.
pub fn encrypt_armored(recipient: &str, plaintext: &[u8]) -> Result<String, KeyError> {
    let r = parse_recipient(recipient)?;
    let enc = age::Encryptor::with_recipients(std::iter::once(r.as_ref() as &dyn age::Recipient))
        .map_err(|e| KeyError::Config(format!("age: {e}")))?;
    let mut out = Vec::new();
    let io_err = |e: std::io::Error| KeyError::Backend {
        backend: "age",
        key: recipient.to_string(),
        class: ErrorClass::Other,
        detail: e.to_string(),
    };
    let armor = ArmoredWriter::wrap_output(&mut out, ArmorFormat::AsciiArmor).map_err(io_err)?;
    let mut w = enc.wrap_output(armor).map_err(io_err)?;
    w.write_all(plaintext).map_err(io_err)?;
    w.finish().and_then(|a| a.finish()).map_err(io_err)?;
    Ok(String::from_utf8(out).expect("armor is ASCII"))
}

impl KeySource for AgeSource {
    fn kind(&self) -> &'static str {
        "age"
    }

    fn wrap(&self, recipient: &Recipient, data_key: &[u8]) -> Result<Stanza, KeyError> {
        let Recipient::Age(r) = recipient else {
            return Err(KeyError::Config("not an age recipient".into()));
        };
        Ok(Stanza::Age {
            recipient: r.trim().to_string(),
            enc: encrypt_armored(r, data_key)?,
        })
    }

    fn unwrap(&self, stanza: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let Stanza::Age { enc, recipient } = stanza else {
            return Err(KeyError::NoIdentity);
        };
        let no_identity = || match self.missing_plugins.is_empty() {
            true => KeyError::NoIdentity,
            false => KeyError::Backend {
                backend: "age",
                key: recipient.clone(),
                class: ErrorClass::Other,
                detail: self.missing_plugins.join("; "),
            },
        };
        if self.identities.is_empty() {
            return Err(no_identity());
        }
        let bad = |detail: String| KeyError::Backend {
            backend: "age",
            key: recipient.clone(),
            class: ErrorClass::InvalidCiphertext,
            detail,
        };
        let dec = age::Decryptor::new_buffered(ArmoredReader::new(enc.as_bytes()))
            .map_err(|e| bad(format!("malformed age stanza: {e}")))?;
        let mut reader = match dec.decrypt(
            self.identities
                .iter()
                .map(|i| i.as_ref() as &dyn age::Identity),
        ) {
            Ok(r) => r,
            Err(age::DecryptError::NoMatchingKeys) => return Err(no_identity()),
            // An identity that could not be used (passphrase, plugin): not the file's fault.
            Err(e @ (age::DecryptError::Io(_) | age::DecryptError::Plugin(_))) => {
                return Err(KeyError::Backend {
                    backend: "age",
                    key: recipient.clone(),
                    class: ErrorClass::Other,
                    detail: plain_message(&e),
                });
            }
            Err(e) => return Err(bad(plain_message(&e))),
        };
        let mut out = Zeroizing::new(Vec::new());
        reader
            .read_to_end(&mut out)
            .map_err(|e| bad(e.to_string()))?;
        Ok(out)
    }
}
