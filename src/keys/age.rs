//! age recipients (X25519, ssh-ed25519, ssh-rsa) and identity discovery the
//! way sops does it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use age::armor::{ArmoredReader, ArmoredWriter, Format as ArmorFormat};
use zeroize::Zeroizing;

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
}

impl AgeSource {
    pub fn empty() -> AgeSource {
        AgeSource {
            identities: vec![],
            origins: vec![],
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
            src.load_identity_text(&k, "SOPS_AGE_KEY")?;
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
            let text = Zeroizing::new(String::from_utf8_lossy(&out.stdout).into_owned());
            src.load_identity_text(&text, "SOPS_AGE_KEY_CMD")?;
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

    /// Age identity file or OpenSSH private key, by content.
    pub fn load_file(&mut self, path: &Path, explicit: bool) -> Result<(), KeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            KeyError::Config(format!("cannot read identity file {}: {e}", path.display()))
        })?);
        if text
            .trim_start()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
            || text
                .trim_start()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----")
        {
            return self.load_ssh(path, explicit);
        }
        if text.trim_start().starts_with("age-encryption.org")
            || text.trim_start().starts_with("-----BEGIN AGE")
        {
            return Err(KeyError::Config(format!(
                "{}: passphrase-protected identity files are not supported; decrypt it with `age -d` into SOPS_AGE_KEY",
                path.display()
            )));
        }
        self.load_identity_text(&text, &path.display().to_string())
    }

    fn load_identity_text(&mut self, text: &str, origin: &str) -> Result<(), KeyError> {
        // sops accepts whitespace-separated identities; age's parser wants one per line.
        let normalized = Zeroizing::new(
            text.lines()
                .flat_map(|l| {
                    let t = l.trim();
                    if t.starts_with('#') || t.is_empty() {
                        vec![]
                    } else {
                        t.split_whitespace().collect::<Vec<_>>()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let file = age::IdentityFile::from_buffer(normalized.as_bytes())
            .map_err(|_| KeyError::Config(format!("{origin}: not a valid age identity file")))?;
        let ids = file.into_identities().map_err(|_| {
            KeyError::Config(format!(
                "{origin}: contains an identity ksec cannot use (plugins are not supported)"
            ))
        })?;
        for id in ids {
            self.identities.push(id);
            self.origins.push(origin.to_string());
        }
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
    s.parse::<age::x25519::Recipient>()
        .map(|r| Box::new(r) as Box<dyn age::Recipient + Send>)
        .map_err(|e| KeyError::Config(format!("invalid age recipient {s:?}: {e}")))
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
        if self.identities.is_empty() {
            return Err(KeyError::NoIdentity);
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
            Err(age::DecryptError::NoMatchingKeys) => return Err(KeyError::NoIdentity),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut out = Zeroizing::new(Vec::new());
        reader
            .read_to_end(&mut out)
            .map_err(|e| bad(e.to_string()))?;
        Ok(out)
    }
}
