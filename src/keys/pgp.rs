//! PGP recipients through GnuPG, the way sops does it: the `gpg` binary (or
//! `SOPS_GPG_EXEC`) does every operation, so GNUPGHOME, gpg-agent, pinentry
//! and smartcards work as they do for sops. The data key only ever travels
//! through pipes, never a file.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use super::{ErrorClass, KeyError, KeySource, Recipient};
use crate::sops::Stanza;

/// The GnuPG program, as sops picks it: `SOPS_GPG_EXEC` when set, else `gpg`.
pub fn gpg_program() -> OsString {
    std::env::var_os("SOPS_GPG_EXEC")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("gpg"))
}

pub struct PgpSource {
    program: OsString,
}

impl PgpSource {
    pub fn from_env() -> PgpSource {
        PgpSource {
            program: gpg_program(),
        }
    }

    /// Runs GnuPG with `input` on stdin; stdout comes back zeroized on drop,
    /// stderr only goes into an error (it never holds the data key: the key
    /// is stdin for encryption and stdout for decryption).
    fn run(&self, fp: &str, args: &[&str], input: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let prog = self.program.to_string_lossy().into_owned();
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                let fix = if e.kind() == std::io::ErrorKind::NotFound {
                    "install GnuPG (the `gpg` program) or point SOPS_GPG_EXEC at it"
                } else {
                    "check SOPS_GPG_EXEC / the gpg installation"
                };
                backend(
                    fp,
                    ErrorClass::Other,
                    format!("cannot run {prog}: {e}; {fix}"),
                )
            })?;
        let mut stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        // Three pipes at once: feed stdin and drain stderr on their own
        // threads so neither side can block on a full pipe.
        let (out, err) = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = stdin.write_all(input);
            });
            let err = s.spawn(move || {
                let mut e = Vec::new();
                let _ = stderr.read_to_end(&mut e);
                e
            });
            let mut out = Zeroizing::new(Vec::with_capacity(8192));
            let _ = stdout.read_to_end(&mut out);
            (out, err.join().unwrap_or_default())
        });
        let status = child
            .wait()
            .map_err(|e| backend(fp, ErrorClass::Other, format!("{prog}: {e}")))?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err);
            return Err(explain(fp, &prog, status, &stderr));
        }
        Ok(out)
    }
}

fn backend(fp: &str, class: ErrorClass, detail: String) -> KeyError {
    KeyError::Backend {
        backend: "pgp",
        key: fp.to_string(),
        class,
        detail,
    }
}

/// GnuPG's failure as a class and a fix. Its stderr is kept (trimmed to
/// its `gpg:` lines) because it is often the only clue (pinentry, card).
fn explain(fp: &str, prog: &str, status: std::process::ExitStatus, stderr: &str) -> KeyError {
    let lower = stderr.to_ascii_lowercase();
    let (class, fix) = if lower.contains("no secret key")
        || lower.contains("secret key not available")
    {
        (
            ErrorClass::NotFound,
            format!(
                "the secret key for {fp} is not in this GnuPG keyring (GNUPGHOME); import it with `gpg --import`, or insert its smartcard"
            ),
        )
    } else if lower.contains("no public key") || lower.contains("not found") {
        (
            ErrorClass::NotFound,
            format!(
                "the public key {fp} is not in this GnuPG keyring (GNUPGHOME); import it with `gpg --import KEY.asc` (or `gpg --recv-keys {fp}`)"
            ),
        )
    } else if lower.contains("unusable public key") || lower.contains("expired") {
        (
            ErrorClass::KeyDisabled,
            format!("the key {fp} is expired, revoked or cannot encrypt; use another key"),
        )
    } else if lower.contains("bad passphrase")
        || lower.contains("pinentry")
        || lower.contains("canceled")
    {
        (
            ErrorClass::AccessDenied,
            "the key could not be unlocked (passphrase or pinentry); check gpg-agent and GPG_TTY"
                .to_string(),
        )
    } else {
        (ErrorClass::Other, "see GnuPG's message".to_string())
    };
    let msg: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(8)
        .collect();
    backend(
        fp,
        class,
        format!("{prog} exited with {status}: {}; {fix}", msg.join(" | ")),
    )
}

/// `created_at`: RFC 3339, UTC, whole seconds, as sops writes it.
fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl KeySource for PgpSource {
    fn kind(&self) -> &'static str {
        "pgp"
    }

    /// sops's own invocation, with `--batch` and `--trust-model always`
    /// instead of `--trusted-key` so an unsigned imported key is usable
    /// without a prompt; the armored message is stored trimmed, as sops does.
    fn wrap(&self, recipient: &Recipient, data_key: &[u8]) -> Result<Stanza, KeyError> {
        let Recipient::Pgp(fp) = recipient else {
            return Err(KeyError::Config(format!(
                "pgp source asked to wrap for a {} recipient",
                recipient.kind()
            )));
        };
        let out = self.run(
            fp,
            &[
                "--batch",
                "--no-default-recipient",
                "--yes",
                "--trust-model",
                "always",
                "--no-encrypt-to",
                "--armor",
                "--encrypt",
                "-r",
                fp,
            ],
            data_key,
        )?;
        let enc = String::from_utf8_lossy(&out).trim().to_string();
        if !enc.starts_with("-----BEGIN PGP MESSAGE-----") {
            return Err(backend(
                fp,
                ErrorClass::Other,
                "GnuPG did not return an armored PGP message".into(),
            ));
        }
        Ok(Stanza::Pgp {
            fp: fp.clone(),
            created_at: now_rfc3339(),
            enc,
        })
    }

    fn unwrap(&self, stanza: &Stanza) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let Stanza::Pgp { fp, enc, .. } = stanza else {
            return Err(KeyError::NoIdentity);
        };
        let out = self.run(fp, &["--batch", "--decrypt"], enc.as_bytes())?;
        if out.is_empty() {
            // An old GnuPG drops AEAD packets it cannot read and succeeds with nothing.
            return Err(backend(
                fp,
                ErrorClass::InvalidCiphertext,
                "GnuPG returned no data (is it older than the one that encrypted?)".into(),
            ));
        }
        Ok(out)
    }
}
