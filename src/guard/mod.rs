//! The pre-commit guard: judges the bytes that are about to enter Git and
//! reports every plaintext secret it can prove, without keys.
//!
//! The judge is structural (YAML/JSON/dotenv parsed with the sops stores),
//! so key order, quoting, flow style, `List` items, anchors and merge keys
//! cannot hide a value. Only templates that are not valid YAML fall back to
//! a line scan; anything else that looks like a Secret but does not parse
//! fails closed. The spec is the case corpus (`precommit-cases.md`).
//!
//! Findings never carry a value: messages name the file, document, key path
//! and what is wrong, nothing more.

pub mod config;
pub mod detect;
#[cfg(feature = "git")]
pub mod git;
pub mod lines;
pub mod report;

use std::collections::HashMap;

use serde::Serialize;

use crate::keys::KeyRing;

pub use config::{GuardConfig, PathPolicy};

/// How bad a finding is. `Error` blocks the commit (exit 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Suppressed by an inline `ksec:allow` marker; listed so reviews see it.
    Allowed,
    Warning,
    Error,
}

/// The rule that produced a finding: a stable id for JSON, SARIF, markers and docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleId {
    PlaintextSecretValue,
    PlaintextInEncryptedScope,
    EncMalformed,
    SopsMetadataMissing,
    SopsMetadataNotFirst,
    SopsMetadataInvalid,
    SopsMetadataMismatch,
    SopsMacMissing,
    SopsNoRecipients,
    SopsVersionMissing,
    VerifyFailed,
    MacNotVerified,
    ProbableTampering,
    UnparseableSecret,
    KustomizeLiteral,
    GeneratorPlaintext,
    AgeIdentity,
    PrivateKeyInComment,
    HighEntropyComment,
    PathPolicy,
    ConfigmapSensitiveKey,
    PlaintextCredential,
    CrlfLineEndings,
    ByteOrderMark,
    Utf16,
    Symlink,
    AllowWithoutReason,
    NotJudged,
    SopsNothingEncrypted,
    UnencryptedCredential,
}

impl RuleId {
    pub const ALL: &[RuleId] = &[
        RuleId::PlaintextSecretValue,
        RuleId::PlaintextInEncryptedScope,
        RuleId::EncMalformed,
        RuleId::SopsMetadataMissing,
        RuleId::SopsMetadataNotFirst,
        RuleId::SopsMetadataInvalid,
        RuleId::SopsMetadataMismatch,
        RuleId::SopsMacMissing,
        RuleId::SopsNoRecipients,
        RuleId::SopsVersionMissing,
        RuleId::VerifyFailed,
        RuleId::MacNotVerified,
        RuleId::ProbableTampering,
        RuleId::UnparseableSecret,
        RuleId::KustomizeLiteral,
        RuleId::GeneratorPlaintext,
        RuleId::AgeIdentity,
        RuleId::PrivateKeyInComment,
        RuleId::HighEntropyComment,
        RuleId::PathPolicy,
        RuleId::ConfigmapSensitiveKey,
        RuleId::PlaintextCredential,
        RuleId::CrlfLineEndings,
        RuleId::ByteOrderMark,
        RuleId::Utf16,
        RuleId::Symlink,
        RuleId::AllowWithoutReason,
        RuleId::NotJudged,
        RuleId::SopsNothingEncrypted,
        RuleId::UnencryptedCredential,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::PlaintextSecretValue => "plaintext-secret-value",
            RuleId::PlaintextInEncryptedScope => "plaintext-in-encrypted-scope",
            RuleId::EncMalformed => "enc-malformed",
            RuleId::SopsMetadataMissing => "sops-metadata-missing",
            RuleId::SopsMetadataNotFirst => "sops-metadata-not-first",
            RuleId::SopsMetadataInvalid => "sops-metadata-invalid",
            RuleId::SopsMetadataMismatch => "sops-metadata-mismatch",
            RuleId::SopsMacMissing => "sops-mac-missing",
            RuleId::SopsNoRecipients => "sops-no-recipients",
            RuleId::SopsVersionMissing => "sops-version-missing",
            RuleId::VerifyFailed => "verify-failed",
            RuleId::MacNotVerified => "mac-not-verified",
            RuleId::ProbableTampering => "probable-tampering",
            RuleId::UnparseableSecret => "unparseable-secret",
            RuleId::KustomizeLiteral => "kustomize-literal",
            RuleId::GeneratorPlaintext => "generator-plaintext",
            RuleId::AgeIdentity => "age-identity",
            RuleId::PrivateKeyInComment => "private-key-in-comment",
            RuleId::HighEntropyComment => "high-entropy-comment",
            RuleId::PathPolicy => "path-policy",
            RuleId::ConfigmapSensitiveKey => "configmap-sensitive-key",
            RuleId::PlaintextCredential => "plaintext-credential",
            RuleId::CrlfLineEndings => "crlf-line-endings",
            RuleId::ByteOrderMark => "byte-order-mark",
            RuleId::Utf16 => "utf16",
            RuleId::Symlink => "symlink",
            RuleId::AllowWithoutReason => "allow-without-reason",
            RuleId::NotJudged => "not-judged",
            RuleId::SopsNothingEncrypted => "sops-nothing-encrypted",
            RuleId::UnencryptedCredential => "unencrypted-credential",
        }
    }

    pub fn from_str_id(s: &str) -> Option<RuleId> {
        RuleId::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// One line for `--help`-style listings and SARIF rule metadata.
    pub fn describe(self) -> &'static str {
        match self {
            RuleId::PlaintextSecretValue => {
                "a Secret data/stringData value is not ENC[...], empty or a whole-value placeholder"
            }
            RuleId::PlaintextInEncryptedScope => {
                "a value the file's own sops rule says is encrypted is plaintext"
            }
            RuleId::EncMalformed => "an ENC[...] value or comment does not follow the sops grammar",
            RuleId::SopsMetadataMissing => "ENC values without a sops metadata block",
            RuleId::SopsMetadataNotFirst => "sops reads metadata from document 0 only",
            RuleId::SopsMetadataInvalid => "the sops block cannot be read",
            RuleId::SopsMetadataMismatch => "documents carry different sops blocks",
            RuleId::SopsMacMissing => "the sops block has no MAC",
            RuleId::SopsNoRecipients => "nobody can decrypt the file",
            RuleId::SopsVersionMissing => "sops filestatus needs sops.version",
            RuleId::VerifyFailed => {
                "--verify: the MAC or a value does not verify with the data key"
            }
            RuleId::MacNotVerified => "--verify: no key was available to check the MAC",
            RuleId::ProbableTampering => {
                "--verify: readable fields were moved so the file now claims another environment or shape than its recipients and MAC vouch for"
            }
            RuleId::UnparseableSecret => "looks like a Secret but does not parse (fail closed)",
            RuleId::KustomizeLiteral => "a kustomize secretGenerator literal is plaintext",
            RuleId::GeneratorPlaintext => {
                "a kustomize secretGenerator env/file source is plaintext"
            }
            RuleId::AgeIdentity => "an age private key (AGE-SECRET-KEY-1...)",
            RuleId::PrivateKeyInComment => "a PEM private key in a comment of a secret file",
            RuleId::HighEntropyComment => "a high-entropy token in a comment of a secret file",
            RuleId::PathPolicy => {
                "a .sops.yaml rule or recipients/ path glob says the file must be encrypted"
            }
            RuleId::ConfigmapSensitiveKey => "a ConfigMap key named like a credential",
            RuleId::PlaintextCredential => {
                "a PEM private key or AWS key pair in a ConfigMap or plain env file"
            }
            RuleId::CrlfLineEndings => "CRLF line endings in a sops file",
            RuleId::ByteOrderMark => "a byte-order mark sops cannot read",
            RuleId::Utf16 => "UTF-16 text sops and kubectl cannot read",
            RuleId::Symlink => "a staged symlink: its content is a path, not checked",
            RuleId::AllowWithoutReason => "a ksec:allow marker without reason=",
            RuleId::NotJudged => {
                "the file is over a limit (size, YAML alias expansion) and was not judged (fail closed)"
            }
            RuleId::SopsNothingEncrypted => {
                "a sops file whose rules encrypted no value: everything sits in clear under a valid sops block"
            }
            RuleId::UnencryptedCredential => {
                "a value a sops file leaves unencrypted looks like a credential (private key, token, high-entropy string)"
            }
        }
    }
}

impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem at one place. `key_path` is dotted (`data.password`,
/// `items[0].data.x`); empty means the whole document or file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Finding {
    pub file: String,
    pub doc_index: usize,
    pub key_path: String,
    pub rule_id: RuleId,
    pub severity: Severity,
    /// 1-based line, when the rule works on lines (line scan, tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
    /// The commit that introduced the blob (`ksec scan --history`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Finding {
    pub fn new(
        file: &str,
        doc_index: usize,
        key_path: impl Into<String>,
        rule_id: RuleId,
        severity: Severity,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            file: file.to_string(),
            doc_index,
            key_path: key_path.into(),
            rule_id,
            severity,
            line: None,
            message: message.into(),
            commit: None,
        }
    }

    pub fn at_line(mut self, line: usize) -> Finding {
        self.line = Some(line);
        self
    }
}

/// One file to judge: its path (as given, or repository-relative with `/`)
/// and its bytes. A symlink's bytes are its target path.
#[derive(Clone, Debug)]
pub struct Blob {
    pub path: String,
    pub bytes: Vec<u8>,
    pub symlink: bool,
}

/// Other files the judge may need: the kustomization that references an env
/// file, or the env file a kustomization references. Staged mode reads the
/// index, path mode the file system, history mode a commit's tree.
pub trait Source {
    /// `path` uses `/` and is relative to the same root as [`Blob::path`].
    fn read(&self, path: &str) -> Option<Vec<u8>>;
}

/// A source with nothing in it (single-file checks, fuzzing).
pub struct NoSource;

impl Source for NoSource {
    fn read(&self, _: &str) -> Option<Vec<u8>> {
        None
    }
}

/// An in-memory source (tests, and staged blobs already read).
impl Source for HashMap<String, Vec<u8>> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.get(path).cloned()
    }
}

/// The largest file the guard judges by default (`--max-file-size`).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 << 20;

/// Everything a check needs besides the bytes.
pub struct Options<'a> {
    pub config: GuardConfig,
    /// Keys for `--verify` (MAC and every value). `None`: no verification.
    pub verify: Option<&'a KeyRing>,
    /// `.sops.yaml` / `recipients/` path rules; `None` disables path policy.
    pub policy: Option<&'a dyn PathPolicy>,
    /// Larger files are not judged, and say so with an error finding
    /// ([`not_judged`]): a file too big to read must not pass silently.
    pub max_file_size: u64,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            config: GuardConfig::default(),
            verify: None,
            policy: None,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// The finding for a file over the size limit: not judged, so it blocks
/// (fail closed) until the limit is raised or the path excluded.
pub fn not_judged(path: &str, size: u64, limit: u64) -> Finding {
    Finding::new(
        path,
        0,
        "",
        RuleId::NotJudged,
        Severity::Error,
        format!(
            "{size} bytes is over the guard's limit of {limit} bytes, so the file was not judged (fail closed); raise the limit with --max-file-size BYTES or exclude the path in .ksec.yaml"
        ),
    )
}

/// Tool errors (exit 2), as opposed to findings.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("guard configuration {file}: {msg}")]
    Config { file: String, msg: String },
    #[error(transparent)]
    Recipients(#[from] crate::recipients::ConfigError),
    #[error("git: {0}")]
    Git(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Judges a set of blobs and returns every finding in a stable order.
/// Excluded paths are skipped; blobs are judged in parallel.
pub fn check_blobs(blobs: &[Blob], src: &(dyn Source + Sync), opts: &Options) -> Vec<Finding> {
    use rayon::prelude::*;
    let staged: std::collections::HashSet<&str> = blobs.iter().map(|b| b.path.as_str()).collect();
    let mut out: Vec<Finding> = blobs
        .par_iter()
        .filter(|b| !opts.config.is_excluded(&b.path))
        .flat_map_iter(|b| {
            let mut f = detect::check_blob(b, src, opts);
            if b.symlink {
                f.push(symlink_finding(b, &staged));
            }
            f
        })
        .collect();
    finish(&mut out);
    out
}

fn symlink_finding(b: &Blob, staged: &std::collections::HashSet<&str>) -> Finding {
    let target = String::from_utf8_lossy(&b.bytes).into_owned();
    let resolved = config::join_rel(parent_of(&b.path), &target);
    let checked = resolved.as_deref().is_some_and(|r| staged.contains(r));
    Finding::new(
        &b.path,
        0,
        "",
        RuleId::Symlink,
        Severity::Warning,
        if checked {
            "a symlink: its content is a path; the target is staged and checked on its own"
                .to_string()
        } else {
            "a symlink: its content is a path, not checked; the target is not staged (check it with `ksec check TARGET`)".to_string()
        },
    )
}

/// The folder part of a `/`-separated path ("" for a top-level file).
pub fn parent_of(path: &str) -> &str {
    path.rfind('/').map(|i| &path[..i]).unwrap_or("")
}

/// Sorts (file, document, key path, rule, line, message) and drops duplicates.
pub fn finish(findings: &mut Vec<Finding>) {
    findings.sort_by(|a, b| {
        (
            &a.file,
            a.doc_index,
            &a.key_path,
            a.rule_id,
            a.line,
            &a.message,
            &a.commit,
        )
            .cmp(&(
                &b.file,
                b.doc_index,
                &b.key_path,
                b.rule_id,
                b.line,
                &b.message,
                &b.commit,
            ))
    });
    findings.dedup();
}

/// Exit code for a finished check: 1 when anything blocks, else 0.
pub fn exit_code(findings: &[Finding]) -> i32 {
    if findings.iter().any(|f| f.severity == Severity::Error) {
        1
    } else {
        0
    }
}
