//! The structural judge of one file's bytes.
//!
//! Order of work per file: age identities (every file), decoding (BOM,
//! UTF-16, CRLF), then by kind: manifests (YAML/JSON), kustomizations,
//! dotenv, templates, and other files that a kustomization feeds into a
//! Secret. Each returns all its findings; nothing stops at the first.

use base64::Engine;

use super::config::{Requirement, apply_markers, join_rel};
use super::lines;
use super::{Blob, Finding, Options, RuleId, Severity, Source, parent_of};
use crate::ops::{self, OpError, OpenOptions};
use crate::sops::cipher::EncValue;
use crate::sops::store::{self, dotenv, json, yaml};
use crate::sops::{Documents, Format, Map, MapItem, Metadata, Rule, SeqItem, Value};

/// Nesting limit for our own walks (the input is untrusted).
const MAX_DEPTH: usize = 200;
/// How deep a sops file may nest inside Secret data before we stop looking.
const MAX_NESTING: usize = 2;

const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Yaml,
    Json,
    Kustomization,
    Dotenv,
    Template,
    Ini,
    Other,
}

fn kind_of(path: &str) -> Kind {
    let name = path.rsplit('/').next().unwrap_or(path);
    if KUSTOMIZATION_NAMES.contains(&name) {
        return Kind::Kustomization;
    }
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "yaml" | "yml" => Kind::Yaml,
        "json" => Kind::Json,
        "env" => Kind::Dotenv,
        "ini" => Kind::Ini,
        "tpl" | "gotmpl" | "tmpl" | "j2" | "jinja" | "jinja2" => Kind::Template,
        _ if lower == ".env" || lower.starts_with(".env.") => Kind::Dotenv,
        _ => Kind::Other,
    }
}

/// The decoded text of a file and what was odd about its bytes.
struct Decoded {
    text: String,
    bom: bool,
    utf16: bool,
    crlf: bool,
    /// Not UTF-8 and not UTF-16: judged only if it still looks like a Secret.
    lossy: bool,
}

fn decode(bytes: &[u8]) -> Decoded {
    let utf16 = |le: bool, body: &[u8]| -> String {
        let units: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    let (text, bom, is16, lossy) = if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        match std::str::from_utf8(rest) {
            Ok(s) => (s.to_string(), true, false, false),
            Err(_) => (
                String::from_utf8_lossy(rest).into_owned(),
                true,
                false,
                true,
            ),
        }
    } else if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        (utf16(true, rest), true, true, false)
    } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        (utf16(false, rest), true, true, false)
    } else {
        match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), false, false, false),
            Err(_) => {
                // UTF-16 without a BOM: every other byte of ASCII text is NUL.
                let head = &bytes[..bytes.len().min(512)];
                let nul_odd = head.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
                let nul_even = head.iter().step_by(2).filter(|&&b| b == 0).count();
                let half = head.len() / 2;
                if half > 4 && nul_odd * 10 >= half * 9 {
                    (utf16(true, bytes), false, true, false)
                } else if half > 4 && nul_even * 10 >= half * 9 {
                    (utf16(false, bytes), false, true, false)
                } else {
                    (
                        String::from_utf8_lossy(bytes).into_owned(),
                        false,
                        false,
                        true,
                    )
                }
            }
        }
    };
    let crlf = text.contains("\r\n");
    Decoded {
        text,
        bom,
        utf16: is16,
        crlf,
        lossy,
    }
}

/// Judges one blob: every finding, markers applied.
pub fn check_blob(b: &Blob, src: &dyn Source, opts: &Options) -> Vec<Finding> {
    let mut out = lines::age_identities(&b.path, &b.bytes);
    if b.symlink {
        return out;
    }
    let text = check_bytes(&b.path, &b.bytes, src, opts, 0, &mut out);
    // Markers only matter where there is something to allow; a bare marker
    // in a clean file (or in source code that mentions the syntax) is noise.
    if let Some(t) = text.filter(|_| !out.is_empty()) {
        apply_markers(&b.path, &t, &mut out);
    }
    out
}

/// The judge proper; returns the decoded text (for markers) when it had one.
fn check_bytes(
    path: &str,
    bytes: &[u8],
    src: &dyn Source,
    opts: &Options,
    nesting: usize,
    out: &mut Vec<Finding>,
) -> Option<String> {
    if bytes.len() as u64 > opts.max_file_size {
        out.push(super::not_judged(
            path,
            bytes.len() as u64,
            opts.max_file_size,
        ));
        return None;
    }
    let dec = decode(bytes);
    if dec.utf16 {
        out.extend(lines::age_identities(path, dec.text.as_bytes()));
    }
    let kind = kind_of(path);
    let secretish = lines::looks_like_secret(&dec.text) || lines::looks_like_sops(&dec.text);
    if dec.lossy {
        if secretish && kind != Kind::Other {
            out.push(Finding::new(
                path,
                0,
                "",
                RuleId::UnparseableSecret,
                Severity::Error,
                "looks like a Secret or sops file but is not valid UTF-8 (fail closed)",
            ));
        }
        if kind == Kind::Other {
            judge_other(path, bytes, &dec, src, opts, out);
        }
        return Some(dec.text);
    }
    if dec.utf16 && (secretish || kind != Kind::Other) {
        out.push(Finding::new(
            path,
            0,
            "",
            RuleId::Utf16,
            if secretish {
                Severity::Error
            } else {
                Severity::Warning
            },
            "UTF-16 text: sops and kubectl read UTF-8 only; convert the file to UTF-8",
        ));
    }
    match kind {
        Kind::Yaml | Kind::Json | Kind::Template => {
            judge_manifest(path, bytes, &dec, kind, opts, nesting, out);
            if kind == Kind::Yaml && kustomization_by_content(&dec.text) {
                judge_kustomization(path, &dec.text, src, opts, out);
            }
        }
        Kind::Kustomization => {
            judge_manifest(path, bytes, &dec, Kind::Yaml, opts, nesting, out);
            judge_kustomization(path, &dec.text, src, opts, out);
        }
        Kind::Dotenv => {
            let referenced = referencing_kustomization(path, src);
            judge_env(path, bytes, &dec, referenced.as_deref(), opts, out);
        }
        Kind::Ini => judge_ini(path, bytes, &dec, opts, out),
        Kind::Other => judge_other(path, bytes, &dec, src, opts, out),
    }
    Some(dec.text)
}

// ------------------------------------------------------------ manifests

fn judge_manifest(
    path: &str,
    bytes: &[u8],
    dec: &Decoded,
    kind: Kind,
    opts: &Options,
    nesting: usize,
    out: &mut Vec<Finding>,
) {
    let parsed = match kind {
        Kind::Json => json::parse(&dec.text).map(|m| Documents(vec![m])),
        _ => yaml::parse(&dec.text),
    };
    let docs = match parsed {
        Ok(d) => d,
        Err(store::StoreError::Limit { doc, line, msg }) => {
            // Refused before it was built (an alias bomb): whatever it
            // holds was not judged, so it blocks whatever it looks like.
            out.push(
                Finding::new(
                    path,
                    doc,
                    "",
                    RuleId::NotJudged,
                    Severity::Error,
                    format!("{msg}: the file was not judged (fail closed)"),
                )
                .at_line(line),
            );
            return;
        }
        Err(e) => {
            let secretish =
                lines::looks_like_secret(&dec.text) || lines::looks_like_sops(&dec.text);
            let req = requirement(path, opts);
            if let Some(r) = &req {
                if !r.secrets_only || secretish {
                    out.push(Finding::new(
                        path,
                        0,
                        "",
                        RuleId::PathPolicy,
                        Severity::Error,
                        format!("must be encrypted ({}), and does not parse: {e}", r.why),
                    ));
                }
            }
            if !secretish {
                return;
            }
            if lines::is_template(&dec.text) {
                out.extend(lines::line_scan(
                    path,
                    &dec.text,
                    RuleId::PlaintextSecretValue,
                    "template (not valid YAML, line scan)",
                ));
            } else {
                out.push(Finding::new(
                    path,
                    0,
                    "",
                    RuleId::UnparseableSecret,
                    Severity::Error,
                    format!("looks like a Secret but does not parse (fail closed): {e}"),
                ));
                out.extend(lines::line_scan(
                    path,
                    &dec.text,
                    RuleId::PlaintextSecretValue,
                    "unparseable Secret (line scan)",
                ));
            }
            return;
        }
    };
    let fmt = if kind == Kind::Json {
        Format::Json
    } else {
        Format::Yaml
    };
    judge_docs(path, bytes, dec, fmt, &docs, opts, nesting, out);
}

/// Every structural rule over parsed documents.
#[allow(clippy::too_many_arguments)]
fn judge_docs(
    path: &str,
    bytes: &[u8],
    dec: &Decoded,
    fmt: Format,
    docs: &Documents,
    opts: &Options,
    nesting: usize,
    out: &mut Vec<Finding>,
) {
    let merged: Vec<Map> = docs.0.iter().map(crate::manifest::resolve_merges).collect();
    let mut secret_bearing = false;
    let mut secret_out = Vec::new();
    for (di, d) in merged.iter().enumerate() {
        for (prefix, obj) in objects(d, String::new(), 0) {
            // sops encrypts `kind` under most rules; data/stringData beside an
            // encrypted kind is treated as a Secret so a plaintext key left by
            // unencrypted_suffix/regex is still caught.
            let hidden_secret = obj
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.starts_with("ENC["))
                && (obj.contains_key("data") || obj.contains_key("stringData"));
            let k = if hidden_secret {
                Some("secret".to_string())
            } else {
                obj_kind(obj)
            };
            let is_secret = k.as_deref() == Some("secret");
            annotations(path, di, &prefix, obj, is_secret, &mut secret_out);
            match k.as_deref() {
                Some("secret") => {
                    secret_bearing = true;
                    for field in ["data", "stringData"] {
                        if let Some(v) = obj.get(field) {
                            let p = join_key(&prefix, field);
                            secret_values(
                                path,
                                di,
                                &p,
                                v,
                                field == "data",
                                nesting,
                                opts,
                                &mut secret_out,
                                0,
                            );
                        }
                    }
                }
                Some("sopssecret") => {
                    secret_bearing = true;
                    let tpls = obj
                        .get("spec")
                        .and_then(Value::as_map)
                        .and_then(|s| s.get("secretTemplates"));
                    if let Some(Value::Seq(s)) = tpls {
                        for (ti, t) in s.elems().enumerate() {
                            let Some(t) = t.as_map() else { continue };
                            for field in ["data", "stringData"] {
                                if let Some(v) = t.get(field) {
                                    let p = format!(
                                        "{}spec.secretTemplates[{ti}].{field}",
                                        dotted(&prefix)
                                    );
                                    secret_values(
                                        path,
                                        di,
                                        &p,
                                        v,
                                        field == "data",
                                        nesting,
                                        opts,
                                        &mut secret_out,
                                        0,
                                    );
                                }
                            }
                        }
                    }
                }
                Some("template") => template_defaults(path, di, &prefix, obj, &mut secret_out),
                Some("configmap") => {
                    configmap_keys(path, di, &prefix, obj, out);
                    configmap_credentials(path, di, &prefix, obj, out);
                }
                _ => {}
            }
        }
    }

    // The sops block: document 0, complete, identical everywhere.
    let blocks: Vec<Option<&Value>> = docs.0.iter().map(|d| d.get("sops")).collect();
    let has_enc = docs.0.iter().any(|d| map_has_enc(d, 0, true));
    let any_block = blocks.iter().any(Option::is_some);
    let mut meta: Option<Metadata> = None;
    if any_block || has_enc {
        match blocks.first().copied().flatten() {
            None => {
                if let Some(i) = blocks.iter().position(Option::is_some) {
                    out.push(Finding::new(
                        path,
                        i,
                        "sops",
                        RuleId::SopsMetadataNotFirst,
                        Severity::Error,
                        "sops metadata must be in document 0 (sops reads only the first document's block, so this file cannot be decrypted)",
                    ));
                } else {
                    out.push(Finding::new(
                        path,
                        0,
                        "",
                        RuleId::SopsMetadataMissing,
                        Severity::Error,
                        "ENC[...] values but no sops metadata block: the file cannot be decrypted (\"sops metadata not found\")",
                    ));
                }
            }
            Some(v) => meta = meta_checks(path, 0, "sops", v, out),
        }
        if let Some(Some(first)) = blocks.first() {
            let first_json = first.to_json();
            for (i, b) in blocks.iter().enumerate().skip(1) {
                match b {
                    Some(b) if b.to_json() != first_json => out.push(Finding::new(
                        path,
                        i,
                        "sops",
                        RuleId::SopsMetadataMismatch,
                        Severity::Error,
                        "this document's sops block differs from document 0's: sops uses only the first, so this document was encrypted separately and cannot be decrypted",
                    )),
                    None if !docs.0[i].0.is_empty() => out.push(Finding::new(
                        path,
                        i,
                        "",
                        RuleId::SopsMetadataMismatch,
                        Severity::Warning,
                        "this document has no sops block (sops repeats it in every document): was it appended after encryption?",
                    )),
                    _ => {}
                }
            }
        }
    }

    // ENC grammar everywhere, and the file's own scope.
    for (di, d) in docs.0.iter().enumerate() {
        let mut w = ScopeWalk {
            path: vec![],
            comments: vec![],
            rule: meta.as_ref().map(|m| &m.rule),
            file: path,
            doc: di,
            out: &mut *out,
            keypath: vec![],
        };
        w.map(d, 0, true);
    }
    // A plaintext Secret value is reported once, under the Secret rule.
    let reported: std::collections::HashSet<(usize, String)> = secret_out
        .iter()
        .map(|f: &Finding| (f.doc_index, f.key_path.clone()))
        .collect();
    out.retain(|f| {
        f.rule_id != RuleId::PlaintextInEncryptedScope
            || f.file != path
            || !reported.contains(&(f.doc_index, f.key_path.clone()))
    });
    if let Some(m) = &meta {
        if let Rule::UnencryptedSuffix(sfx) = &m.rule {
            for f in secret_out.iter_mut() {
                if f.key_path.ends_with(sfx.as_str()) {
                    f.message.push_str(&format!(
                        " (sops leaves keys ending in {sfx:?} plaintext by design; a Secret value still may not be: encrypt it, or add `# ksec:allow key={} reason=...`)",
                        f.key_path
                    ));
                }
            }
        }
    }
    out.append(&mut secret_out);

    // Comments of secret files stay plaintext unless sops encrypted them.
    if secret_bearing || meta.is_some() {
        let mut at = CommentCursor {
            text: &dec.text,
            pos: 0,
        };
        for (di, d) in docs.0.iter().enumerate() {
            comments(path, di, "", d, 0, &mut at, out);
        }
    }

    if let Some(m) = &meta {
        sops_clear_values(path, docs, &m.rule, has_enc, out);
    }

    // Encoding problems sops itself trips over.
    if meta.is_some() || any_block {
        if dec.bom {
            let json = fmt == Format::Json;
            out.push(Finding::new(
                path,
                0,
                "",
                RuleId::ByteOrderMark,
                if json { Severity::Error } else { Severity::Warning },
                if json {
                    "a byte-order mark before sops JSON: sops fails with \"invalid character 'ï'\"; save as UTF-8 without BOM"
                } else {
                    "a byte-order mark before sops YAML; save as UTF-8 without BOM"
                },
            ));
        }
        if dec.crlf {
            out.push(Finding::new(
                path,
                0,
                "",
                RuleId::CrlfLineEndings,
                Severity::Warning,
                "CRLF line endings in a sops file: sops copes here, but other tools do not; add `*.yaml text eol=lf` to .gitattributes",
            ));
        }
    }

    // Path policy.
    if meta.is_none() && !any_block {
        if let Some(req) = requirement(path, opts) {
            if !req.secrets_only || secret_bearing {
                let scope = req
                    .scope
                    .clone()
                    .unwrap_or_else(|| ops::default_rule(fmt, docs));
                if docs
                    .0
                    .iter()
                    .any(|d| selects_value(d, &scope, &mut vec![], 0))
                {
                    out.push(Finding::new(
                        path,
                        0,
                        "",
                        RuleId::PathPolicy,
                        Severity::Error,
                        format!(
                            "must be encrypted: {} (run `ksec encrypt -i {path}`)",
                            req.why
                        ),
                    ));
                }
            }
        }
    }

    if let Some(m) = &meta {
        verify(path, bytes, dec, fmt, m, opts, out);
    }
}

/// A sops block and MAC vouch for a file, but only the values its rule
/// selected are encrypted: the rest sits in clear. Judges those by content
/// ([`lines::credential_kind`]), and blocks a file whose rule encrypted no
/// value at all (`encrypted_regex: ^(data|stringData)$` on a file that is
/// not a Secret encrypts nothing, yet sops writes a valid block).
fn sops_clear_values(
    path: &str,
    docs: &Documents,
    rule: &Rule,
    has_enc: bool,
    out: &mut Vec<Finding>,
) {
    let mut clear = Vec::new();
    for (di, d) in docs.0.iter().enumerate() {
        for (k, v) in d.pairs().filter(|(k, _)| *k != "sops") {
            clear_strings(di, k.to_string(), v, 0, &mut clear);
        }
    }
    if !has_enc && !clear.is_empty() {
        out.push(Finding::new(
            path,
            0,
            "",
            RuleId::SopsNothingEncrypted,
            Severity::Error,
            format!(
                "a sops file with no encrypted value: its rule ({}) selects no key, so every value is in clear under a valid sops block and MAC{}; fix the rule, re-encrypt, and rotate any credential that was ever committed",
                rule_text(rule),
                if rule.pattern() == Some(crate::sops::rules::KUBERNETES_SECRET_REGEX) {
                    " (that regex fits Kubernetes Secrets only)"
                } else {
                    ""
                }
            ),
        ));
    }
    let reported: std::collections::HashSet<(usize, String)> = out
        .iter()
        .filter(|f| f.file == path && f.severity == Severity::Error)
        .map(|f| (f.doc_index, f.key_path.clone()))
        .collect();
    for (di, kp, s) in clear {
        let Some(what) = lines::credential_kind(s) else {
            continue;
        };
        if reported.contains(&(di, kp.clone())) {
            continue;
        }
        out.push(Finding::new(
            path,
            di,
            kp,
            RuleId::UnencryptedCredential,
            Severity::Error,
            format!(
                "{what} in a value this sops file leaves unencrypted (its rule, {}, does not select the key): widen the rule and re-encrypt; rotate the credential if it was ever committed",
                rule_text(rule)
            ),
        ));
    }
}

/// `encrypted_regex "^(data|stringData)$"`, for messages.
fn rule_text(rule: &Rule) -> String {
    match (rule.field(), rule.pattern()) {
        (Some(f), Some(p)) => format!("{f} {p:?}"),
        _ => "encrypt everything".to_string(),
    }
}

/// Every non-empty string leaf that is not `ENC[...]`, with its key path.
fn clear_strings<'v>(
    doc: usize,
    kp: String,
    v: &'v Value,
    depth: usize,
    out: &mut Vec<(usize, String, &'v str)>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Str(s) if !s.is_empty() && !s.starts_with("ENC[") => out.push((doc, kp, s)),
        Value::Map(m) => {
            for (k, c) in m.pairs() {
                clear_strings(doc, join_key(&kp, k), c, depth + 1, out);
            }
        }
        Value::Seq(sq) => {
            for (i, c) in sq.elems().enumerate() {
                clear_strings(doc, format!("{kp}[{i}]"), c, depth + 1, out);
            }
        }
        _ => {}
    }
}

fn requirement(path: &str, opts: &Options) -> Option<Requirement> {
    if !opts.config.path_policy {
        return None;
    }
    opts.policy.and_then(|p| p.requirement(path))
}

/// `--verify`: decrypt every value and check the MAC with the data key.
fn verify(
    path: &str,
    bytes: &[u8],
    dec: &Decoded,
    fmt: Format,
    _meta: &Metadata,
    opts: &Options,
    out: &mut Vec<Finding>,
) {
    let Some(ring) = opts.verify else { return };
    let owned;
    let input: &[u8] = if dec.bom || dec.utf16 {
        owned = dec.text.clone().into_bytes();
        &owned
    } else {
        bytes
    };
    match ops::open(input, fmt, ring, OpenOptions::default()) {
        Ok(f) => tampering(path, &f, out),
        Err(OpError::Key(e)) => out.push(Finding::new(
            path,
            0,
            "sops",
            RuleId::MacNotVerified,
            Severity::Warning,
            format!(
                "MAC not verified: no key opened the file ({})",
                one_line(&e.to_string())
            ),
        )),
        Err(e) => out.push(Finding::new(
            path,
            0,
            "",
            RuleId::VerifyFailed,
            Severity::Error,
            format!("does not verify: {e}"),
        )),
    }
}

/// After a MAC that verifies: readable fields moved where the MAC does not
/// look (structure), or a namespace/path that routes the file to another
/// environment than the one its recipients belong to.
fn tampering(path: &str, f: &ops::OpenedFile, out: &mut Vec<Finding>) {
    for p in crate::manifest::secret_shape(&f.docs) {
        out.push(Finding::new(
            path,
            p.doc,
            p.path.clone(),
            RuleId::ProbableTampering,
            Severity::Error,
            format!(
                "{}; restore the file from a trusted commit",
                p.kind.describe()
            ),
        ));
    }
    let file = std::path::Path::new(path);
    let Ok(Some(rdir)) = crate::recipients::RecipientsDir::find(file) else {
        return;
    };
    let Ok(Some((env, _))) = rdir.route(file, &f.docs, None) else {
        return;
    };
    let have = crate::recipients::boundary::file_recipients(&f.meta);
    let want = env.recipient_ids().into_iter().collect();
    if let Err(e) = rdir.admit_rekey(&have, &want, None) {
        out.push(Finding::new(
            path,
            0,
            "metadata.namespace",
            RuleId::ProbableTampering,
            Severity::Error,
            format!("it now routes to {}, but {e}", env.name),
        ));
    }
}

/// A multi-line error (the key ring lists every recipient it tried) as one
/// line, so a finding's message stays whole on one output line.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace(":; ", ": ")
}

/// Completeness of one sops block; returns the metadata when it is usable.
fn meta_checks(
    path: &str,
    doc: usize,
    key: &str,
    v: &Value,
    out: &mut Vec<Finding>,
) -> Option<Metadata> {
    if !matches!(v, Value::Map(_)) {
        out.push(Finding::new(
            path,
            doc,
            key,
            RuleId::SopsMetadataMissing,
            Severity::Error,
            "the sops block is empty: the file cannot be decrypted",
        ));
        return None;
    }
    let meta = match Metadata::from_value(v) {
        Ok(m) => m,
        Err(msg) => {
            let (rule, msg) = if msg.contains("no keys found") {
                (
                    RuleId::SopsNoRecipients,
                    "the sops block names no recipients: nobody can decrypt the file".to_string(),
                )
            } else {
                (
                    RuleId::SopsMetadataInvalid,
                    format!("invalid sops block: {msg}"),
                )
            };
            out.push(Finding::new(path, doc, key, rule, Severity::Error, msg));
            return None;
        }
    };
    if meta.mac.is_empty() {
        out.push(Finding::new(
            path,
            doc,
            format!("{key}.mac"),
            RuleId::SopsMacMissing,
            Severity::Error,
            "the sops block has no mac: sops refuses to decrypt and `sops filestatus` reports the file as not encrypted",
        ));
    } else if let Err(e) = EncValue::parse(&meta.mac) {
        out.push(Finding::new(
            path,
            doc,
            format!("{key}.mac"),
            RuleId::EncMalformed,
            Severity::Error,
            format!("the mac is not a well-formed ENC value: {e}"),
        ));
    }
    if meta.stanzas().all(|s| s.enc().trim().is_empty()) {
        out.push(Finding::new(
            path,
            doc,
            key,
            RuleId::SopsNoRecipients,
            Severity::Error,
            "no recipient carries a wrapped data key (empty enc): nobody can decrypt the file",
        ));
    }
    if meta.version.trim().is_empty() {
        out.push(Finding::new(
            path,
            doc,
            format!("{key}.version"),
            RuleId::SopsVersionMissing,
            Severity::Warning,
            "add version for sops tooling: without sops.version, `sops filestatus` reports the file as not encrypted",
        ));
    }
    Some(meta)
}

/// A document and, for `*List` kinds, its items, and for an OpenShift
/// `Template` its `objects` (recursively), with their key prefixes.
fn objects(d: &Map, prefix: String, depth: usize) -> Vec<(String, &Map)> {
    let mut v = vec![(prefix.clone(), d)];
    if depth > 16 {
        return v;
    }
    let kind = obj_kind(d);
    let field = match kind.as_deref() {
        Some(k) if k.ends_with("list") => "items",
        Some("template") => "objects",
        _ => return v,
    };
    if let Some(Value::Seq(items)) = d.get(field) {
        for (i, it) in items.elems().enumerate() {
            if let Some(m) = it.as_map() {
                v.extend(objects(
                    m,
                    format!("{}{field}[{i}]", dotted(&prefix)),
                    depth + 1,
                ));
            }
        }
    }
    v
}

/// An OpenShift Template parameter with a literal `value:` that a Secret of
/// the template uses as a whole value (`${NAME}`, `${{NAME}}`): the default
/// is the Secret's value whenever the parameter is not given, in clear.
fn template_defaults(file: &str, doc: usize, prefix: &str, obj: &Map, out: &mut Vec<Finding>) {
    let Some(Value::Seq(params)) = obj.get("parameters") else {
        return;
    };
    let Some(Value::Seq(objs)) = obj.get("objects") else {
        return;
    };
    let mut used = std::collections::HashSet::new();
    for o in objs.elems().filter_map(Value::as_map) {
        if obj_kind(o).as_deref() != Some("secret") {
            continue;
        }
        for f in ["data", "stringData"] {
            if let Some(v) = o.get(f) {
                whole_refs(v, 0, &mut used);
            }
        }
    }
    for (i, p) in params.elems().enumerate() {
        let Some(p) = p.as_map() else { continue };
        let (Some(name), Some(Value::Str(v))) = (p.str_of("name"), p.get("value")) else {
            continue;
        };
        if v.is_empty() || v.starts_with("ENC[") || !used.contains(name) {
            continue;
        }
        out.push(Finding::new(
            file,
            doc,
            format!("{}parameters[{i}].value", dotted(prefix)),
            RuleId::PlaintextSecretValue,
            Severity::Error,
            format!(
                "the default of Template parameter {name:?} is a Secret's value whenever the parameter is not given, in clear text: remove `value:` (or use `generate:`)"
            ),
        ));
    }
}

/// Parameter names a value refers to as a whole: `${NAME}` or `${{NAME}}`.
fn whole_refs(v: &Value, depth: usize, out: &mut std::collections::HashSet<String>) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Str(s) => {
            let t = s.trim();
            let inner = t
                .strip_prefix("${{")
                .and_then(|r| r.strip_suffix("}}"))
                .or_else(|| t.strip_prefix("${").and_then(|r| r.strip_suffix('}')));
            if let Some(n) = inner {
                out.insert(n.to_string());
            }
        }
        Value::Map(m) => m.pairs().for_each(|(_, c)| whole_refs(c, depth + 1, out)),
        Value::Seq(q) => q.elems().for_each(|c| whole_refs(c, depth + 1, out)),
        _ => {}
    }
}

/// kubectl's `last-applied-configuration` (the whole object as JSON), and any
/// annotation whose value is the JSON of a Secret: plaintext values that the
/// data/stringData rule never sees. On a Secret the annotation is a finding
/// unless its JSON is readable and holds no plaintext value.
fn annotations(
    file: &str,
    doc: usize,
    prefix: &str,
    obj: &Map,
    is_secret: bool,
    out: &mut Vec<Finding>,
) {
    let Some(Value::Map(ann)) = obj
        .get("metadata")
        .and_then(Value::as_map)
        .and_then(|m| m.get("annotations"))
    else {
        return;
    };
    for (k, v) in ann.pairs() {
        let Some(s) = v.as_str() else { continue };
        let t = s.trim();
        if t.is_empty() || t.starts_with("ENC[") {
            continue;
        }
        let last_applied = k == crate::ops::LAST_APPLIED;
        let leak = match serde_json::from_str::<serde_json::Value>(t) {
            Ok(j) => json_secret_plaintext(&j),
            Err(_) => is_secret && last_applied,
        };
        if !leak {
            continue;
        }
        let what = if last_applied {
            "kubectl's last-applied-configuration annotation holds the Secret's values in clear text (sops leaves annotations plaintext): remove it; `ksec encrypt` drops it"
        } else {
            "this annotation holds a Secret (JSON) with plaintext values: remove it"
        };
        out.push(Finding::new(
            file,
            doc,
            format!("{}metadata.annotations.{k}", dotted(prefix)),
            RuleId::PlaintextSecretValue,
            Severity::Error,
            what,
        ));
    }
}

/// Whether JSON is a Secret (or a List of them) with a plaintext value
/// under data/stringData.
fn json_secret_plaintext(j: &serde_json::Value) -> bool {
    let Some(o) = j.as_object() else { return false };
    let kind = o
        .get("kind")
        .and_then(|k| k.as_str())
        .map(|k| k.trim().to_ascii_lowercase());
    if kind.as_deref().is_some_and(|k| k.ends_with("list")) {
        return o
            .get("items")
            .and_then(|i| i.as_array())
            .is_some_and(|items| items.iter().any(json_secret_plaintext));
    }
    if kind.as_deref() != Some("secret") {
        return false;
    }
    ["data", "stringData"]
        .iter()
        .filter_map(|f| o.get(*f))
        .any(|v| json_plain_leaf(v, 0))
}

fn json_plain_leaf(v: &serde_json::Value, depth: usize) -> bool {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        J::Null => false,
        J::String(s) => !(s.is_empty() || s.starts_with("ENC[") || lines::is_placeholder(s)),
        J::Object(m) => m.values().any(|c| json_plain_leaf(c, depth + 1)),
        J::Array(a) => a.iter().any(|c| json_plain_leaf(c, depth + 1)),
        _ => true,
    }
}

/// `kind`, trimmed and lower-cased (kubectl would reject `secret`, but its value is leaked all the same).
fn obj_kind(m: &Map) -> Option<String> {
    m.str_of("kind").map(|k| k.trim().to_ascii_lowercase())
}

fn dotted(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}.")
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    format!("{}{key}", dotted(prefix))
}

/// Judges every leaf under a Secret's data/stringData.
#[allow(clippy::too_many_arguments)]
fn secret_values(
    file: &str,
    doc: usize,
    kp: &str,
    v: &Value,
    base64: bool,
    nesting: usize,
    opts: &Options,
    out: &mut Vec<Finding>,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let plain = |what: &str| {
        Finding::new(
            file,
            doc,
            kp,
            RuleId::PlaintextSecretValue,
            Severity::Error,
            format!(
                "{what} in a Secret: values must be ENC[...], empty, or a whole placeholder or reference (${{VAR}}, {{{{ … }}}}, op://…); run `ksec encrypt -i {file}`"
            ),
        )
    };
    match v {
        Value::Null => {}
        Value::Map(m) => {
            for (k, child) in m.pairs() {
                secret_values(
                    file,
                    doc,
                    &join_key(kp, k),
                    child,
                    base64,
                    nesting,
                    opts,
                    out,
                    depth + 1,
                );
            }
        }
        Value::Seq(s) => {
            for (i, child) in s.elems().enumerate() {
                secret_values(
                    file,
                    doc,
                    &format!("{kp}[{i}]"),
                    child,
                    base64,
                    nesting,
                    opts,
                    out,
                    depth + 1,
                );
            }
        }
        Value::Str(s) => {
            if s.is_empty()
                || s.starts_with("ENC[")
                || lines::is_placeholder(s)
                || lines::is_template_text(s)
            {
                // ENC grammar is checked for every string by the scope walk.
                return;
            }
            if base64 {
                if let Some(inner) = nested_sops(file, doc, kp, s, nesting, opts) {
                    out.extend(inner);
                    return;
                }
            }
            if let Some(why) = opts.policy.and_then(|p| p.template(file)) {
                out.extend(template_value(file, doc, kp, s, &why));
                return;
            }
            out.push(plain("a plaintext value"));
        }
        Value::Bytes(_) => out.push(plain("a plaintext binary value")),
        Value::Bool(_) => out.push(plain("a plaintext boolean")),
        Value::Int(_) => out.push(plain("a plaintext integer")),
        Value::Float(_) => out.push(plain("a plaintext number")),
        Value::Time(_) => out.push(plain("a plaintext timestamp")),
    }
}

/// A Secret value in a template folder ([`super::PathPolicy::template`]):
/// the file is rendered (envsubst) and only the rendered copy is encrypted,
/// so the template's literal text is the same for everyone who renders it.
/// A credential in that text blocks (by content, or a literal under a key
/// named like a credential); a fixed value under another key (`username:
/// admin`) is a warning; the literal skeleton around placeholders (`ipv4.${DOMAIN}`,
/// a JSON document of `${…}` fields) passes.
fn template_value(file: &str, doc: usize, kp: &str, s: &str, why: &str) -> Option<Finding> {
    let key = kp.rsplit('.').next().unwrap_or(kp);
    let literal = lines::template_literal_text(s);
    let text = literal.as_deref().unwrap_or(s);
    let (severity, what) = if let Some(what) = lines::credential_kind(text) {
        (Severity::Error, what)
    } else if literal.is_none() && lines::credential_key_name(key) {
        (Severity::Error, "a fixed value under a credential key")
    } else if literal.is_none() {
        (Severity::Warning, "a fixed value")
    } else {
        return None;
    };
    Some(Finding::new(
        file,
        doc,
        kp,
        RuleId::PlaintextSecretValue,
        severity,
        format!(
            "{what} in a Secret template ({why}): every rendered Secret holds it; make it a ${{…}} placeholder, or allow it with `# ksec:allow key={kp} reason=…` if it is not secret"
        ),
    ))
}

/// A base64 `data` value that is itself a sops file (kustomize `files:` of
/// an encrypted file, which Flux decrypts). `Some(findings)` when it is one
/// (findings re-homed under the outer key path); `None` when it is plaintext.
fn nested_sops(
    file: &str,
    doc: usize,
    kp: &str,
    s: &str,
    nesting: usize,
    opts: &Options,
) -> Option<Vec<Finding>> {
    if nesting >= MAX_NESTING {
        return None;
    }
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(clean.as_bytes())
        .ok()?;
    let has = |n: &[u8]| memchr::memmem::find(&bytes, n).is_some();
    if !has(b"ENC[AES256_GCM") || !has(b"sops") {
        return None;
    }
    let inner_name = if has(b"sops_mac=") {
        "payload.env"
    } else if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        "payload.json"
    } else {
        "payload.yaml"
    };
    let fmt = Format::from_path(std::path::Path::new(inner_name));
    // Only a loadable sops file counts; otherwise the outer value is plaintext.
    store::load_encrypted(fmt, &bytes).ok()?;
    let mut inner = Vec::new();
    let inner_opts = Options {
        config: Default::default(),
        verify: opts.verify,
        policy: None,
        max_file_size: opts.max_file_size,
    };
    check_bytes(
        inner_name,
        &bytes,
        &super::NoSource,
        &inner_opts,
        nesting + 1,
        &mut inner,
    );
    Some(
        inner
            .into_iter()
            .map(|mut f| {
                f.file = file.to_string();
                f.doc_index = doc;
                f.key_path = if f.key_path.is_empty() {
                    kp.to_string()
                } else {
                    format!("{kp}→{}", f.key_path)
                };
                f.message = format!("nested sops payload: {}", f.message);
                f
            })
            .collect(),
    )
}

/// Credentials recognisable by shape in a ConfigMap's data, whatever the key
/// is called (a PEM private key; an AWS key id with its secret key).
fn configmap_credentials(file: &str, doc: usize, prefix: &str, obj: &Map, out: &mut Vec<Finding>) {
    let Some(Value::Map(data)) = obj.get("data") else {
        return;
    };
    let context: String = data
        .pairs()
        .filter_map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for (k, v) in data.pairs() {
        let Some(what) = v
            .as_str()
            .and_then(|s| lines::known_credential(s, &context))
        else {
            continue;
        };
        out.push(Finding::new(
            file,
            doc,
            join_key(&join_key(prefix, "data"), k),
            RuleId::PlaintextCredential,
            Severity::Error,
            format!("{what} in a ConfigMap (ConfigMaps are never encrypted): move it to an encrypted Secret"),
        ));
    }
}

fn configmap_keys(file: &str, doc: usize, prefix: &str, obj: &Map, out: &mut Vec<Finding>) {
    const WORDS: [&str; 7] = [
        "password",
        "passwd",
        "token",
        "secret",
        "apikey",
        "api_key",
        "private_key",
    ];
    let Some(Value::Map(data)) = obj.get("data") else {
        return;
    };
    for (k, v) in data.pairs() {
        let lk = k.to_ascii_lowercase();
        if !WORDS.iter().any(|w| lk.contains(w)) {
            continue;
        }
        let plain = match v {
            Value::Str(s) => !s.is_empty() && !s.starts_with("ENC[") && !lines::is_placeholder(s),
            Value::Null => false,
            _ => true,
        };
        if plain {
            out.push(Finding::new(
                file,
                doc,
                join_key(&join_key(prefix, "data"), k),
                RuleId::ConfigmapSensitiveKey,
                Severity::Warning,
                "a ConfigMap key named like a credential holds a plaintext value: if it is secret, move it to an encrypted Secret",
            ));
        }
    }
}

fn map_has_enc(m: &Map, depth: usize, top: bool) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    m.0.iter().any(|i| match i {
        MapItem::Pair(k, _) if top && k == "sops" => false,
        MapItem::Pair(_, v) => value_has_enc(v, depth + 1),
        MapItem::Comment(c) => c.trim_start().starts_with("ENC["),
    })
}

fn value_has_enc(v: &Value, depth: usize) -> bool {
    match v {
        Value::Str(s) => s.starts_with("ENC["),
        Value::Map(m) => map_has_enc(m, depth, false),
        Value::Seq(s) => s.0.iter().any(|i| match i {
            SeqItem::Elem(e) => value_has_enc(e, depth + 1),
            SeqItem::Comment(c) => c.trim_start().starts_with("ENC["),
        }),
        _ => false,
    }
}

/// Whether `rule` selects at least one non-empty value (path policy).
fn selects_value(m: &Map, rule: &Rule, path: &mut Vec<String>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    m.pairs().any(|(k, v)| {
        path.push(k.to_string());
        let r = selects_in(v, rule, path, depth + 1);
        path.pop();
        r
    })
}

fn selects_in(v: &Value, rule: &Rule, path: &mut Vec<String>, depth: usize) -> bool {
    match v {
        Value::Map(m) => selects_value(m, rule, path, depth),
        Value::Seq(s) => s.elems().any(|e| selects_in(e, rule, path, depth + 1)),
        Value::Null => false,
        Value::Str(s) if s.is_empty() || lines::is_placeholder(s) => false,
        _ => rule.should_encrypt(path, &[], false),
    }
}

/// Walks one document like sops does (map keys as the path, comment runs
/// as the comment stack): malformed ENC anywhere, and plaintext where the
/// file's own rule says a value is encrypted.
struct ScopeWalk<'a, 'o> {
    path: Vec<String>,
    comments: Vec<Vec<String>>,
    rule: Option<&'a Rule>,
    file: &'a str,
    doc: usize,
    out: &'o mut Vec<Finding>,
    /// Display path, with sequence indexes.
    keypath: Vec<String>,
}

impl ScopeWalk<'_, '_> {
    fn kp(&self) -> String {
        let mut s = String::new();
        for p in &self.keypath {
            if !s.is_empty() && !p.starts_with('[') {
                s.push('.');
            }
            s.push_str(p);
        }
        s
    }

    fn map(&mut self, m: &Map, depth: usize, top: bool) {
        if depth > MAX_DEPTH {
            return;
        }
        self.comments.push(Vec::new());
        for item in &m.0 {
            match item {
                MapItem::Comment(c) => self.comment(c),
                MapItem::Pair(k, _) if top && k == "sops" => {}
                MapItem::Pair(k, v) => {
                    self.path.push(k.clone());
                    self.keypath.push(k.clone());
                    self.value(v, depth + 1);
                    self.keypath.pop();
                    self.path.pop();
                    if let Some(l) = self.comments.last_mut() {
                        l.clear();
                    }
                }
            }
        }
        self.comments.pop();
    }

    fn seq(&mut self, s: &crate::sops::Seq, depth: usize) {
        self.comments.push(Vec::new());
        let mut i = 0;
        for item in &s.0 {
            match item {
                SeqItem::Comment(c) => self.comment(c),
                SeqItem::Elem(v) => {
                    self.keypath.push(format!("[{i}]"));
                    self.value(v, depth + 1);
                    self.keypath.pop();
                    i += 1;
                    if let Some(l) = self.comments.last_mut() {
                        l.clear();
                    }
                }
            }
        }
        self.comments.pop();
    }

    fn comment(&mut self, c: &str) {
        if let Some(l) = self.comments.last_mut() {
            l.push(c.to_string());
        }
        let t = c.trim();
        if t.starts_with("ENC[") {
            if let Err(e) = EncValue::parse(t) {
                self.out.push(Finding::new(
                    self.file,
                    self.doc,
                    self.kp(),
                    RuleId::EncMalformed,
                    Severity::Error,
                    format!("malformed encrypted comment: {e}"),
                ));
            }
        } else if let Some(rule) = self.rule {
            if !t.is_empty() && rule.should_encrypt(&self.path, &self.comments, true) {
                self.out.push(Finding::new(
                    self.file,
                    self.doc,
                    self.kp(),
                    RuleId::PlaintextInEncryptedScope,
                    Severity::Warning,
                    "a plaintext comment inside the encrypted scope (sops would have encrypted it; added after encryption?)",
                ));
            }
        }
    }

    fn value(&mut self, v: &Value, depth: usize) {
        match v {
            Value::Map(m) => return self.map(m, depth, false),
            Value::Seq(s) => return self.seq(s, depth),
            Value::Null => return,
            _ => {}
        }
        if let Value::Str(s) = v {
            if s.starts_with("ENC[") {
                if let Err(e) = EncValue::parse(s) {
                    self.out.push(Finding::new(
                        self.file,
                        self.doc,
                        self.kp(),
                        RuleId::EncMalformed,
                        Severity::Error,
                        format!("malformed ENC value: {e}"),
                    ));
                }
                return;
            }
            if s.is_empty() {
                return;
            }
        }
        if let Some(rule) = self.rule {
            if rule.should_encrypt(&self.path, &self.comments, false) {
                self.out.push(Finding::new(
                    self.file,
                    self.doc,
                    self.kp(),
                    RuleId::PlaintextInEncryptedScope,
                    Severity::Error,
                    "a plaintext value inside the file's encrypted scope (added after encryption?); `sops filestatus` still says encrypted",
                ));
            }
        }
    }
}

/// Finds comments in the file's text, in document order, for line numbers
/// (the parsed tree keeps comments without positions).
struct CommentCursor<'t> {
    text: &'t str,
    pos: usize,
}

impl CommentCursor<'_> {
    /// Judges one comment and gives its findings the line it is on.
    fn judge(&mut self, file: &str, doc: usize, kp: &str, c: &str) -> Vec<Finding> {
        let found = lines::comment_findings(file, doc, kp, c);
        let needle = c.trim();
        if needle.is_empty() {
            return found;
        }
        let hit = self.text[self.pos..]
            .find(needle)
            .map(|p| p + self.pos)
            .or_else(|| self.text.find(needle));
        let Some(p) = hit else { return found };
        self.pos = p + needle.len();
        let line = lines::line_of(self.text, p);
        found.into_iter().map(|f| f.at_line(line)).collect()
    }
}

/// Private keys and high-entropy tokens in comments.
fn comments(
    file: &str,
    doc: usize,
    kp: &str,
    m: &Map,
    depth: usize,
    at: &mut CommentCursor,
    out: &mut Vec<Finding>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for item in &m.0 {
        match item {
            MapItem::Comment(c) => out.extend(at.judge(file, doc, kp, c)),
            MapItem::Pair(k, v) if !(depth == 0 && k == "sops") => {
                comments_in(file, doc, &join_key(kp, k), v, depth + 1, at, out)
            }
            MapItem::Pair(..) => {}
        }
    }
}

fn comments_in(
    file: &str,
    doc: usize,
    kp: &str,
    v: &Value,
    depth: usize,
    at: &mut CommentCursor,
    out: &mut Vec<Finding>,
) {
    match v {
        Value::Map(m) => comments(file, doc, kp, m, depth, at, out),
        Value::Seq(s) => {
            let mut i = 0;
            for item in &s.0 {
                match item {
                    SeqItem::Comment(c) => out.extend(at.judge(file, doc, kp, c)),
                    SeqItem::Elem(e) => {
                        comments_in(file, doc, &format!("{kp}[{i}]"), e, depth + 1, at, out);
                        i += 1;
                    }
                }
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------ dotenv / ini

fn judge_env(
    path: &str,
    bytes: &[u8],
    dec: &Decoded,
    referenced_by: Option<&str>,
    opts: &Options,
    out: &mut Vec<Finding>,
) {
    let is_sops = dec.text.lines().any(|l| l.starts_with("sops_"));
    let via = referenced_by
        .map(|k| format!(" (a secretGenerator source of {k})"))
        .unwrap_or_default();
    if !is_sops && referenced_by.is_none() {
        env_credentials(path, &dec.text, out);
    }
    let m = match dotenv::parse(&dec.text) {
        Ok(m) => m,
        Err(e) => {
            if is_sops || referenced_by.is_some() || lines::looks_like_sops(&dec.text) {
                out.push(Finding::new(
                    path,
                    0,
                    "",
                    RuleId::UnparseableSecret,
                    Severity::Error,
                    format!("does not parse as dotenv{via} (fail closed): {e}"),
                ));
            }
            return;
        }
    };
    if is_sops {
        if dec.crlf {
            out.push(Finding::new(
                path,
                0,
                "",
                RuleId::CrlfLineEndings,
                Severity::Error,
                "CRLF line endings in a sops dotenv file: sops fails with `parsing time \"…Z\\r\"`, so decryption breaks in the cluster; convert to LF and add `*.env text eol=lf` to .gitattributes",
            ));
        }
        let meta = match store::load_encrypted(Format::Dotenv, bytes) {
            Ok((_, meta)) => {
                let v = meta.to_value();
                // Re-check completeness on what sops would read.
                let mut v = v;
                if let Value::Map(mm) = &mut v {
                    if meta.mac.is_empty() {
                        mm.remove("mac");
                    }
                }
                meta_checks(path, 0, "sops", &v, out);
                Some(meta)
            }
            Err(e) => {
                let (rule, msg) = match &e {
                    store::StoreError::Metadata(m) if m.contains("no keys found") => (
                        RuleId::SopsNoRecipients,
                        "the sops metadata names no recipients: nobody can decrypt the file"
                            .to_string(),
                    ),
                    _ => (
                        RuleId::SopsMetadataInvalid,
                        format!("invalid sops dotenv metadata: {e}"),
                    ),
                };
                out.push(Finding::new(path, 0, "sops", rule, Severity::Error, msg));
                None
            }
        };
        for (k, v) in m.pairs() {
            if k.starts_with("sops_") {
                continue;
            }
            let s = v.as_str().unwrap_or("").trim_end_matches('\r');
            if s.starts_with("ENC[") {
                if let Err(e) = EncValue::parse(s) {
                    out.push(Finding::new(
                        path,
                        0,
                        k,
                        RuleId::EncMalformed,
                        Severity::Error,
                        format!("malformed ENC value: {e}"),
                    ));
                }
                continue;
            }
            if s.is_empty() || lines::is_placeholder(s) {
                continue;
            }
            let in_scope = meta
                .as_ref()
                .is_none_or(|m| m.rule.should_encrypt(&[k.to_string()], &[], false));
            if referenced_by.is_some() || in_scope {
                out.push(Finding::new(
                    path,
                    0,
                    k,
                    if referenced_by.is_some() {
                        RuleId::GeneratorPlaintext
                    } else {
                        RuleId::PlaintextInEncryptedScope
                    },
                    Severity::Error,
                    format!("a plaintext value in an encrypted dotenv file{via}"),
                ));
            }
        }
        if let Some(meta) = &meta {
            sops_env_clear_values(path, &m, &meta.rule, out);
            verify(path, bytes, dec, Format::Dotenv, meta, opts, out);
        }
        return;
    }
    if lines::looks_like_sops(&dec.text) {
        out.push(Finding::new(
            path,
            0,
            "",
            RuleId::SopsMetadataMissing,
            Severity::Error,
            "ENC[...] values but no sops_ metadata: the file cannot be decrypted",
        ));
    }
    let req = requirement(path, opts);
    if referenced_by.is_some() {
        for (k, v) in m.pairs() {
            let s = v.as_str().unwrap_or("").trim_end_matches('\r');
            if s.is_empty() || lines::is_placeholder(s) || s.starts_with("ENC[") {
                continue;
            }
            out.push(Finding::new(
                path,
                0,
                k,
                RuleId::GeneratorPlaintext,
                Severity::Error,
                format!("a plaintext value{via}: the generated Secret would hold it; encrypt the file (`ksec encrypt -i {path}`)"),
            ));
        }
    } else if let Some(req) = req {
        let any = m.pairs().any(|(_, v)| {
            let s = v.as_str().unwrap_or("");
            !s.is_empty() && !lines::is_placeholder(s)
        });
        if any {
            out.push(Finding::new(
                path,
                0,
                "",
                RuleId::PathPolicy,
                Severity::Error,
                format!("must be encrypted: {}", req.why),
            ));
        }
    }
}

/// A plain env file (no sops, not a generator source, which is judged
/// whole): credentials recognisable by shape, per `KEY=` line.
fn env_credentials(path: &str, text: &str, out: &mut Vec<Finding>) {
    if lines::known_credential(text, text).is_none() {
        return;
    }
    // Per key where the file parses; the whole file where it does not (a
    // multi-line PEM is not valid dotenv).
    let mut found = false;
    if let Ok(m) = dotenv::parse(text) {
        for (k, v) in m.pairs() {
            let Some(what) = v.as_str().and_then(|s| lines::known_credential(s, text)) else {
                continue;
            };
            found = true;
            out.push(Finding::new(
                path,
                0,
                k,
                RuleId::PlaintextCredential,
                Severity::Error,
                format!("{what} in a plaintext env file: encrypt it (`ksec encrypt -i {path}`)"),
            ));
        }
    }
    if !found {
        let what = lines::known_credential(text, text).unwrap_or("a credential");
        out.push(Finding::new(
            path,
            0,
            "",
            RuleId::PlaintextCredential,
            Severity::Error,
            format!("{what} in a plaintext env file: encrypt it (`ksec encrypt -i {path}`)"),
        ));
    }
}

/// [`sops_clear_values`] for a sops dotenv file (its `sops_*` lines are metadata).
fn sops_env_clear_values(path: &str, m: &Map, rule: &Rule, out: &mut Vec<Finding>) {
    let values = Map(m
        .0
        .iter()
        .filter(|i| !matches!(i, MapItem::Pair(k, _) if k.starts_with("sops_")))
        .cloned()
        .collect());
    let has_enc = map_has_enc(&values, 0, false);
    sops_clear_values(path, &Documents(vec![values]), rule, has_enc, out);
}

fn judge_ini(path: &str, bytes: &[u8], dec: &Decoded, opts: &Options, out: &mut Vec<Finding>) {
    let is_sops = dec.text.lines().any(|l| l.trim() == "[sops]");
    if is_sops {
        if dec.crlf {
            out.push(Finding::new(
                path,
                0,
                "",
                RuleId::CrlfLineEndings,
                Severity::Error,
                "CRLF line endings in a sops INI file: sops fails to parse the metadata times; convert to LF",
            ));
        }
        match store::load_encrypted(Format::Ini, bytes) {
            Ok((_, meta)) => verify(path, bytes, dec, Format::Ini, &meta, opts, out),
            Err(e) => out.push(Finding::new(
                path,
                0,
                "sops",
                RuleId::SopsMetadataInvalid,
                Severity::Error,
                format!("invalid sops INI file: {e}"),
            )),
        }
    } else if let Some(req) = requirement(path, opts) {
        if !req.secrets_only && dec.text.lines().any(|l| l.contains('=')) {
            out.push(Finding::new(
                path,
                0,
                "",
                RuleId::PathPolicy,
                Severity::Error,
                format!("must be encrypted: {}", req.why),
            ));
        }
    }
}

// ------------------------------------------------------------ kustomize

/// One source a secretGenerator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GenSource {
    Env(String),
    File(String),
}

/// Reads a kustomization's secretGenerators: literal findings, and the
/// sources (paths joined onto the kustomization's folder).
fn generators(kpath: &str, text: &str, out: Option<&mut Vec<Finding>>) -> Vec<GenSource> {
    let Ok(docs) = yaml::parse(text) else {
        return vec![];
    };
    let dir = parent_of(kpath);
    let mut srcs = Vec::new();
    let mut lits = Vec::new();
    let Some(doc) = docs.0.first() else {
        return srcs;
    };
    let Some(Value::Seq(gens)) = doc.get("secretGenerator") else {
        return srcs;
    };
    let list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::Seq(s)) => s
                .elems()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
            Some(Value::Str(s)) => vec![s.clone()],
            _ => vec![],
        }
    };
    for (gi, g) in gens.elems().enumerate() {
        let Some(g) = g.as_map() else { continue };
        for (li, lit) in list(g.get("literals")).iter().enumerate() {
            let (k, v) = lit.split_once('=').unwrap_or((lit.as_str(), ""));
            let v = v.trim_matches(|c| c == '"' || c == '\'');
            if !(v.is_empty() || lines::is_placeholder(v)) {
                lits.push(Finding::new(
                    kpath,
                    0,
                    format!("secretGenerator[{gi}].literals[{li}]"),
                    RuleId::KustomizeLiteral,
                    Severity::Error,
                    format!(
                        "the literal for key {:?} is plaintext (literals are never decrypted): move it to an encrypted env file or use a ${{VAR}} placeholder",
                        k.trim()
                    ),
                ));
            }
        }
        let mut envs = list(g.get("envs"));
        envs.extend(list(g.get("env")));
        for e in envs {
            if let Some(p) = join_rel(dir, &e) {
                srcs.push(GenSource::Env(p));
            }
        }
        for f in list(g.get("files")) {
            let rel = f.split_once('=').map(|(_, p)| p).unwrap_or(&f);
            if let Some(p) = join_rel(dir, rel) {
                srcs.push(GenSource::File(p));
            }
        }
    }
    if let Some(o) = out {
        o.extend(lits);
    }
    srcs
}

/// A kustomize `Kustomization` or `Component` under another file name
/// (`components/db.yaml`, `base.yaml`): recognised by its `kind`, so its
/// secretGenerator literals and sources are judged as in `kustomization.yaml`.
fn kustomization_by_content(text: &str) -> bool {
    if !text.contains("secretGenerator") {
        return false;
    }
    let Ok(docs) = yaml::parse(text) else {
        return false;
    };
    docs.0.first().is_some_and(|d| {
        matches!(
            obj_kind(d).as_deref(),
            Some("component") | Some("kustomization")
        ) && d.contains_key("secretGenerator")
    })
}

fn judge_kustomization(
    path: &str,
    text: &str,
    src: &dyn Source,
    opts: &Options,
    out: &mut Vec<Finding>,
) {
    for s in generators(path, text, Some(out)) {
        match &s {
            GenSource::Env(p) | GenSource::File(p) => {
                if opts.config.is_excluded(p) {
                    continue;
                }
                let Some(bytes) = src.read(p) else { continue };
                judge_source(p, &bytes, &s, path, opts, out);
            }
        }
    }
}

/// Judges a file a secretGenerator reads: it must be a sops file or empty.
fn judge_source(
    p: &str,
    bytes: &[u8],
    s: &GenSource,
    kpath: &str,
    opts: &Options,
    out: &mut Vec<Finding>,
) {
    let dec = decode(bytes);
    let mut found = Vec::new();
    match s {
        GenSource::Env(_) => judge_env(p, bytes, &dec, Some(kpath), opts, &mut found),
        GenSource::File(_) => {
            let fmt = Format::from_path(std::path::Path::new(p));
            if store::load_encrypted(fmt, bytes).is_ok() {
                let mut sub = Vec::new();
                check_bytes(p, bytes, &super::NoSource, opts, 1, &mut sub);
                found.extend(sub);
            } else if !dec.text.trim().is_empty() {
                let what = if lines::has_private_key(&dec.text) {
                    "a plaintext private key"
                } else {
                    "plaintext content"
                };
                found.push(Finding::new(
                    p,
                    0,
                    "",
                    RuleId::GeneratorPlaintext,
                    Severity::Error,
                    format!(
                        "{what} feeds a Secret through the secretGenerator files: of {kpath}; encrypt the file (`ksec encrypt -i {p}`)"
                    ),
                ));
            }
        }
    }
    if !found.is_empty() {
        apply_markers(p, &dec.text, &mut found);
    }
    out.extend(found);
}

/// The kustomization (in this folder or an ancestor, as kustomize's load
/// restrictor allows) whose secretGenerator reads `path`.
fn referencing_kustomization(path: &str, src: &dyn Source) -> Option<String> {
    let mut dir = parent_of(path).to_string();
    for _ in 0..32 {
        for name in KUSTOMIZATION_NAMES {
            let k = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            if let Some(b) = src.read(&k) {
                if let Ok(t) = std::str::from_utf8(&b) {
                    let hit = generators(&k, t, None).iter().any(|s| match s {
                        GenSource::Env(p) | GenSource::File(p) => {
                            p.trim_start_matches('/') == path.trim_start_matches('/')
                        }
                    });
                    if hit {
                        return Some(k);
                    }
                }
            }
        }
        if dir.is_empty() || dir == "/" {
            break;
        }
        dir = parent_of(&dir).to_string();
    }
    None
}

/// Names of documentation, which may show an example Secret (case G08).
const DOC_EXTENSIONS: [&str; 7] = ["md", "markdown", "rst", "adoc", "txt", "html", "org"];

/// A file whose name says nothing (`s.yaml.bak`, `.orig`, no extension) but
/// whose content is a Kubernetes or sops manifest is judged as one: a backup
/// copy of a plaintext Secret leaks just the same. Only content that parses
/// into objects with `apiVersion` and `kind` (or a sops block) counts, so
/// source code quoting a Secret does not. True when judged.
fn judge_by_content(
    path: &str,
    bytes: &[u8],
    dec: &Decoded,
    opts: &Options,
    out: &mut Vec<Finding>,
) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if DOC_EXTENSIONS.contains(&ext) {
        return false;
    }
    if !(dec.text.contains("kind") || lines::looks_like_sops(&dec.text)) {
        return false;
    }
    let (fmt, parsed) = if dec.text.trim_start().starts_with('{') {
        (
            Format::Json,
            json::parse(&dec.text).map(|m| Documents(vec![m])),
        )
    } else {
        (Format::Yaml, yaml::parse(&dec.text))
    };
    let Ok(docs) = parsed else { return false };
    let manifest = |d: &Map| {
        d.contains_key("sops") || (d.contains_key("kind") && d.contains_key("apiVersion"))
    };
    if !docs.0.iter().any(manifest) {
        return false;
    }
    let start = out.len();
    judge_docs(path, bytes, dec, fmt, &docs, opts, 0, out);
    for f in &mut out[start..] {
        f.message.push_str(
            " (judged by content: the name is not a manifest's; if this is a stray copy, delete it)",
        );
    }
    true
}

/// Files of no manifest type: judged only as secretGenerator `files:`
/// sources, or when path policy names them.
fn judge_other(
    path: &str,
    bytes: &[u8],
    dec: &Decoded,
    src: &dyn Source,
    opts: &Options,
    out: &mut Vec<Finding>,
) {
    if let Some(k) = referencing_kustomization(path, src) {
        judge_source(
            path,
            bytes,
            &GenSource::File(path.to_string()),
            &k,
            opts,
            out,
        );
        return;
    }
    if judge_by_content(path, bytes, dec, opts, out) {
        return;
    }
    if let Some(req) = requirement(path, opts) {
        if req.secrets_only {
            return;
        }
        let fmt = Format::from_path(std::path::Path::new(path));
        if store::load_encrypted(fmt, bytes).is_err() && !dec.text.trim().is_empty() {
            out.push(Finding::new(
                path,
                0,
                "",
                RuleId::PathPolicy,
                Severity::Error,
                format!("must be encrypted: {}", req.why),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(path: &str, text: &str) -> Vec<(String, RuleId)> {
        let b = Blob {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
            symlink: false,
        };
        let opts = Options::default();
        let f = check_blob(&b, &super::super::NoSource, &opts);
        for x in &f {
            assert!(!x.message.contains("hunter2"), "a value in a message");
        }
        f.into_iter().map(|f| (f.key_path, f.rule_id)).collect()
    }

    const LAST_APPLIED_JSON: &str = r#"{"apiVersion":"v1","data":{"password":"aHVudGVyMg=="},"kind":"Secret","metadata":{"annotations":{},"name":"db","namespace":"prod"},"type":"Opaque"}"#;

    /// `kubectl get secret -o yaml` after encryption by the k8s rule: data is
    /// ENC, the annotation still holds every value.
    #[test]
    fn last_applied_annotation_of_a_secret_is_a_finding() {
        let text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: |\n      {LAST_APPLIED_JSON}\ndata:\n  password: \"\"\n"
        );
        let f = judge("s.yaml", &text);
        assert!(
            f.contains(&(
                "metadata.annotations.kubectl.kubernetes.io/last-applied-configuration".into(),
                RuleId::PlaintextSecretValue
            )),
            "{f:?}"
        );
        // unreadable JSON on a Secret: fail closed
        let f = judge(
            "s.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"data\": {\"pass'\n",
        );
        assert_eq!(f.len(), 1, "{f:?}");
    }

    #[test]
    fn an_annotation_carrying_a_secret_in_any_object_is_a_finding() {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations:\n    backup: '{LAST_APPLIED_JSON}'\n    note: '{{\"kind\":\"Secret\",\"data\":{{\"a\":\"\"}}}}'\ndata:\n  k: v\n"
        );
        let f = judge("cm.yaml", &text);
        assert_eq!(
            f,
            vec![(
                "metadata.annotations.backup".to_string(),
                RuleId::PlaintextSecretValue
            )]
        );
        // A Deployment's own last-applied is not a Secret.
        let f = judge(
            "d.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"kind\":\"Deployment\"}'\n",
        );
        assert!(f.is_empty(), "{f:?}");
    }

    const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\n    MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n    -----END RSA PRIVATE KEY-----";
    const AWS_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn credentials_in_a_configmap_are_findings() {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  tls.pem: |\n    {PEM}\n  id: {AWS_ID}\n  key: {AWS_SECRET}\n  region: eu-west-1\n"
        );
        let f = judge("cm.yaml", &text);
        assert_eq!(
            f,
            vec![
                ("data.tls.pem".to_string(), RuleId::PlaintextCredential),
                ("data.key".to_string(), RuleId::PlaintextCredential),
            ]
        );
    }

    #[test]
    fn credentials_in_a_plain_env_file_are_findings() {
        let f = judge(
            "app.env",
            &format!("AWS_ACCESS_KEY_ID={AWS_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\nREGION=eu\n"),
        );
        assert_eq!(
            f,
            vec![(
                "AWS_SECRET_ACCESS_KEY".to_string(),
                RuleId::PlaintextCredential
            )]
        );
        let f = judge(
            ".env",
            &format!("KEY=\"{}\"\n", PEM.replace("\n    ", "\n")),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].1, RuleId::PlaintextCredential);
        assert!(judge(".env", "REGION=eu\nID=AKIAIOSFODNN7EXAMPLE\n").is_empty());
    }

    #[test]
    fn shell_defaults_holding_a_literal_are_findings() {
        let f = judge(
            "s.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  a: ${DB_PASSWORD:=hunter2}\n  b: ${API_TOKEN:-hunter2}\n  c: ${PLAIN}\n  d: ${REQUIRED:?set it}\n",
        );
        assert_eq!(
            f,
            vec![
                ("stringData.a".to_string(), RuleId::PlaintextSecretValue),
                ("stringData.b".to_string(), RuleId::PlaintextSecretValue),
            ]
        );
    }

    #[test]
    fn an_openshift_template_holding_a_plaintext_secret_is_a_finding() {
        let f = judge(
            "t.yaml",
            "apiVersion: template.openshift.io/v1\nkind: Template\nmetadata:\n  name: t\nobjects:\n  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: db\n    stringData:\n      password: hunter2\n      user: ${DB_USER}\n      token: ${{TOKEN}}\n  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: c\n    data:\n      region: ${REGION}\nparameters:\n  - name: DB_USER\n  - name: TOKEN\n    value: hunter2\n  - name: REGION\n    value: eu-west-1\n  - name: PASS\n    generate: expression\n    from: \"[a-z]{16}\"\n",
        );
        assert_eq!(
            f,
            vec![
                (
                    "parameters[1].value".to_string(),
                    RuleId::PlaintextSecretValue
                ),
                (
                    "objects[0].stringData.password".to_string(),
                    RuleId::PlaintextSecretValue
                ),
            ]
        );
    }

    #[test]
    fn backup_copies_are_judged_by_content() {
        let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  password: hunter2\n";
        for name in [
            "s.yaml.bak",
            "s.yaml.orig",
            "secret",
            "s.yaml~",
            "dir/s.old",
        ] {
            let f = judge(name, secret);
            assert_eq!(
                f,
                vec![(
                    "stringData.password".to_string(),
                    RuleId::PlaintextSecretValue
                )],
                "{name}"
            );
        }
        // Documentation and source code quoting a Secret stay unjudged.
        assert!(judge("README.md", secret).is_empty());
        assert!(judge("main.rs", &format!("const S: &str = \"\n{secret}\";\n")).is_empty());
        assert!(judge("notes", "kind of a note, not a manifest\n").is_empty());
    }
}
