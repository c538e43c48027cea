//! Text-level scanners: committed age identities anywhere, private keys and
//! high-entropy tokens in comments, and the line scan used for templates
//! that are not valid YAML (and as the fail-closed evidence for broken files).

use std::str::FromStr;

use regex::Regex;

use super::{Finding, RuleId, Severity};

fn re(cell: &'static std::sync::OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("static regex"))
}

/// Whole-value placeholders filled at apply or render time: `${VAR}`
/// (Flux post-build substitution, with `:=`/`:-` defaults), one `{{ … }}`
/// expression (Helm, Jinja, gomplate), and references to a secret kept
/// elsewhere ([`is_reference`]).
pub fn is_placeholder(s: &str) -> bool {
    static SUBST: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let t = s.trim();
    if is_reference(t) {
        return true;
    }
    // `${X}`, `${X:?message}`, OpenShift's `${{X}}`, and a default that is
    // empty: `${X:-}`. A non-empty default (`${X:-hunter2}`, `${X:=…}`,
    // `${X:+…}`) is the value whenever X is unset: a literal, not a placeholder.
    if let Some(c) = re(
        &SUBST,
        r"^\$\{(\{)?[A-Za-z_][A-Za-z0-9_]*(?:(:?[-=?+])([^{}$]*))?\}(\})?$",
    )
    .captures(t)
    {
        if c.get(1).is_some() != c.get(4).is_some() {
            return false;
        }
        let op = c.get(2).map_or("", |m| m.as_str());
        let default = c.get(3).map_or("", |m| m.as_str());
        return op.ends_with('?') || default.is_empty();
    }
    if let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        return !inner.contains("}}") && !inner.contains("{{") && !inner.trim().is_empty();
    }
    // makejinja's delimiters (onedr0p's cluster-template): `#{ expr }#`.
    if let Some(inner) = t.strip_prefix("#{").and_then(|r| r.strip_suffix("}#")) {
        return !inner.contains("}#") && !inner.contains("#{") && !inner.trim().is_empty();
    }
    false
}

/// A credential recognisable by its shape, wherever it sits: a PEM private
/// key, or an AWS secret access key in text that also holds an access key
/// id (`AKIA…`/`ASIA…`; the id alone is not secret). `context` is all the
/// text the pair may be spread over (a ConfigMap's values, an env file).
pub fn known_credential(value: &str, context: &str) -> Option<&'static str> {
    if has_private_key(value) {
        return Some("a PEM private key");
    }
    if has_aws_secret(value) && has_aws_key_id(context) {
        return Some("an AWS secret access key (with its access key id)");
    }
    None
}

fn has_aws_key_id(s: &str) -> bool {
    static ID: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    re(
        &ID,
        r"(?:^|[^A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?:[^A-Z0-9]|$)",
    )
    .is_match(s)
}

/// 40 characters of base64 alphabet with both cases and a digit, on its own.
fn has_aws_secret(s: &str) -> bool {
    static SECRET: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    re(
        &SECRET,
        r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
    )
    .captures_iter(s)
    .any(|c| {
        let t = &c[1];
        t.chars().any(|c| c.is_ascii_uppercase())
            && t.chars().any(|c| c.is_ascii_lowercase())
            && t.chars().any(|c| c.is_ascii_digit())
    })
}

/// A multi-line value whose every non-blank line is only template syntax
/// (a block scalar that a template fills: `#% filter indent %#` /
/// `#{ key() }#` / `#% endfilter %#`). It holds no literal text.
pub fn is_template_text(s: &str) -> bool {
    s.contains('\n')
        && s.lines().any(|l| !l.trim().is_empty())
        && s.lines().all(|l| l.trim().is_empty() || only_template(l))
}

/// A whole value (after trimming, so a block scalar holding one line counts)
/// that names a secret stored elsewhere and resolved at deploy time, so the
/// file holds no secret: 1Password `op://vault/item/[section/]field`, vals
/// `ref+<backend>://…`, argocd-vault-plugin `<path:…#key>`, bank-vaults
/// `vault:path#key[#version]`. vals' `ref+echo://` is excluded: its "path" is
/// the value itself. Anything around the reference makes it an ordinary value.
pub fn is_reference(s: &str) -> bool {
    static REF: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let t = s.trim();
    if t.starts_with("ref+echo:") {
        return false;
    }
    re(
        &REF,
        r"^(?:op://[^\s/]+/[^\s/]+(?:/[^\s/]+){1,2}(?:\?[^\s]*)?|ref\+[a-z0-9]+://\S+|<path:[^<>\s]+#[^<>\n]+>|(?:>>)?vault:[^\s#]+#[^\s#]+(?:#[0-9]+)?)$",
    )
    .is_match(t)
}

/// `s` with every `${VAR}` and `{{ … }}` removed: the literal text a
/// template value keeps whatever is rendered into it. `None` when `s` holds
/// no placeholder at all.
pub fn template_literal_text(s: &str) -> Option<String> {
    static ANY: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let r = re(
        &ANY,
        r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-=?+][^{}$]*)?\}|\{\{[^{}]*\}\}",
    );
    r.is_match(s).then(|| r.replace_all(s, "").into_owned())
}

/// A key named like a credential (`admin-password`, `api_token`,
/// `clientSecret`), as opposed to a user name or a setting.
pub fn credential_key_name(key: &str) -> bool {
    const WORDS: [&str; 9] = [
        "password",
        "passwd",
        "secret",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "private",
        "credential",
    ];
    let k = key.to_ascii_lowercase();
    WORDS.iter().any(|w| k.contains(w))
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/// Finds age identities. A checksum-valid key blocks; a key-shaped string
/// with a bad checksum (docs, placeholders) only warns.
pub fn age_identities(file: &str, bytes: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    for needle in [&b"AGE-SECRET-KEY-"[..], &b"age-secret-key-"[..]] {
        for pos in memchr::memmem::find_iter(bytes, needle) {
            let end = bytes[pos..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-'))
                .map(|n| pos + n)
                .unwrap_or(bytes.len());
            let tok = String::from_utf8_lossy(&bytes[pos..end]).to_ascii_uppercase();
            let line = bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
            let valid = age::x25519::Identity::from_str(&tok).is_ok();
            let shaped = tok.strip_prefix("AGE-SECRET-KEY-1").is_some_and(|d| {
                d.len() == 58 && d.chars().all(|c| BECH32.contains(c.to_ascii_lowercase()))
            });
            if valid {
                out.push(
                    Finding::new(
                        file,
                        0,
                        "",
                        RuleId::AgeIdentity,
                        Severity::Error,
                        "an age private key (AGE-SECRET-KEY-1…) is committed; remove it and rotate every file encrypted to its recipient",
                    )
                    .at_line(line),
                );
            } else if shaped
                || tok.strip_prefix("AGE-SECRET-KEY-PQ-1").is_some_and(|d| {
                    d.len() >= 58 && d.chars().all(|c| BECH32.contains(c.to_ascii_lowercase()))
                })
            {
                out.push(
                    Finding::new(
                        file,
                        0,
                        "",
                        RuleId::AgeIdentity,
                        if shaped {
                            Severity::Warning
                        } else {
                            Severity::Error
                        },
                        if shaped {
                            "an age private key with an invalid checksum (a placeholder?)"
                        } else {
                            "an age post-quantum private key is committed"
                        },
                    )
                    .at_line(line),
                );
            }
        }
    }
    out
}

/// PEM private key headers (RSA, EC, OPENSSH, ENCRYPTED, PGP, plain PKCS#8).
pub fn has_private_key(s: &str) -> bool {
    static PK: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    re(
        &PK,
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    )
    .is_match(s)
}

fn shannon(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// A token that looks like a credential: long, base64/url-safe alphabet,
/// mixed case with digits, high Shannon entropy. Hex strings (digests,
/// fingerprints) and age recipients are common in comments and skipped.
pub fn high_entropy_token(comment: &str) -> bool {
    comment
        .split(|c: char| c.is_whitespace() || "\"'`,;:()[]{}<>|".contains(c))
        .any(|t| {
            let t = t.trim_matches(|c| c == '.' || c == '=');
            if t.len() < 24 || t.len() > 4096 || t.starts_with("age1") || t.contains("://") {
                return false;
            }
            if !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=_-".contains(c))
            {
                return false;
            }
            let upper = t.chars().any(|c| c.is_ascii_uppercase());
            let lower = t.chars().any(|c| c.is_ascii_lowercase());
            let digit = t.chars().any(|c| c.is_ascii_digit());
            upper && lower && digit && shannon(t) >= 4.2
        })
}

/// What a plaintext value is, when it is a credential by its content alone
/// (no key name needed): a PEM private key, plain or base64-encoded (Talos
/// and kubeconfig files keep keys as base64 PEM), a Kubernetes bootstrap
/// token (`[a-z0-9]{6}.[a-z0-9]{16}`, Talos machine tokens), a token with a
/// vendor prefix, or a high-entropy string. Public material (certificates,
/// public keys, SSH public keys, base64 of either) is not a credential and
/// is skipped before the entropy test, which it would pass.
pub fn credential_kind(v: &str) -> Option<&'static str> {
    static BOOTSTRAP: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static VENDOR: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let t = v.trim();
    if t.len() < 16 || is_placeholder(t) {
        return None;
    }
    if has_private_key(t) {
        return Some("a private key");
    }
    if t.contains("-----BEGIN ") {
        return None; // a certificate or public key
    }
    if let Some(pem) = base64_pem(t) {
        return has_private_key(&pem).then_some("a base64-encoded private key");
    }
    if re(&BOOTSTRAP, r"^[a-z0-9]{6}\.[a-z0-9]{16}$").is_match(t) {
        return Some("a bootstrap token");
    }
    if re(
        &VENDOR,
        r"(?:^|[^A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,}|glpat-[A-Za-z0-9_-]{20}|xox[abprs]-[A-Za-z0-9-]{10,})",
    )
    .is_match(t)
    {
        return Some("a vendor access token");
    }
    let public = ["ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-"];
    if public.iter().any(|p| t.starts_with(p)) {
        return None;
    }
    high_entropy_token(t).then_some("a high-entropy token")
}

/// The PEM text a base64 value decodes to, if it is base64 of PEM.
fn base64_pem(t: &str) -> Option<String> {
    use base64::Engine;
    // PEM text starts with "-----BEGIN", which base64 spells "LS0tLS1".
    if !t.starts_with("LS0tLS1") {
        return None;
    }
    let clean: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(clean.as_bytes())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.contains("-----BEGIN ").then_some(text)
}

/// Checks one comment of a secret-bearing file.
pub fn comment_findings(file: &str, doc: usize, key_path: &str, text: &str) -> Vec<Finding> {
    let t = text.trim();
    if t.starts_with("ENC[") {
        return vec![];
    }
    let mut out = Vec::new();
    if has_private_key(t) {
        out.push(Finding::new(
            file,
            doc,
            key_path,
            RuleId::PrivateKeyInComment,
            Severity::Error,
            "a private key in a comment (comments outside the encrypted scope stay plaintext)",
        ));
    } else if high_entropy_token(t) {
        out.push(Finding::new(
            file,
            doc,
            key_path,
            RuleId::HighEntropyComment,
            Severity::Error,
            "a high-entropy token in a comment of a secret file (comments outside the encrypted scope stay plaintext)",
        ));
    }
    out
}

/// A Secret signal on a line: `kind: Secret` (any case, quoted, commented),
/// or the JSON spelling. Also SopsSecret.
pub fn looks_like_secret(text: &str) -> bool {
    static KIND: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    re(
        &KIND,
        r#"(?im)^[\s-]*["']?kind["']?\s*:\s*["']?(?:sops)?secret["']?\s*(?:[,}#].*)?$|"kind"\s*:\s*"(?i:(?:sops)?secret)""#,
    )
    .is_match(text)
}

/// Whether a file that failed to parse looks like sops output.
pub fn looks_like_sops(text: &str) -> bool {
    text.contains("ENC[AES256_GCM") || text.contains("sops_mac=")
}

/// Template syntax that makes a file invalid YAML on purpose.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// The line scan: finds `data:`/`stringData:` blocks by indentation and
/// judges each entry's value like the structural rule does. Template control
/// lines are skipped; a literal among template values blocks.
pub fn line_scan(file: &str, text: &str, rule: RuleId, why: &str) -> Vec<Finding> {
    static HEAD: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    static ENTRY: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let head = re(
        &HEAD,
        r#"^([ \t]*)(?:-[ \t]+)?["']?(data|stringData)["']?[ \t]*:[ \t]*(.*?)[ \t]*$"#,
    );
    let entry = re(
        &ENTRY,
        r#"^([ \t]*)("[^"]*"|'[^']*'|[^\s:#][^:#]*?)[ \t]*:(?:[ \t]+(.*?))?[ \t]*$"#,
    );
    let mut out = Vec::new();
    let mut doc = 0usize;
    // A leading `---` starts document 0; later ones start the next document.
    let mut seen_content = false;
    let mut block: Option<(usize, String)> = None; // (indent of the data: key, its name)
    let mut scalar: Option<BlockScalar> = None; // a multi-line value being read
    let width = |s: &str| {
        s.chars()
            .map(|c| if c == '\t' { 8 } else { 1 })
            .sum::<usize>()
    };
    let plain = |doc: usize, key: String, lineno: usize, what: &str| {
        Finding::new(
            file,
            doc,
            key,
            rule,
            Severity::Error,
            format!("{why}: {what}"),
        )
        .at_line(lineno)
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let lineno = n + 1;
        let trimmed = line.trim();
        let indent = width(&line[..line.len() - line.trim_start().len()]);
        // A block scalar's body: every deeper (or blank) line is content,
        // `#` lines included; it is judged whole when the scalar ends.
        if let Some(sc) = &mut scalar {
            if trimmed.is_empty() || (indent > sc.indent && !line.starts_with("---")) {
                sc.body.push(trimmed.to_string());
                continue;
            }
            let sc = scalar.take().expect("scalar");
            if !sc.body_ok() {
                out.push(plain(doc, sc.key, sc.line, "a plaintext block scalar"));
            }
        }
        if line.starts_with("---") {
            if seen_content {
                doc += 1;
            }
            seen_content = false;
            block = None;
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        seen_content = true;
        // Template control lines ({{- if }}, {% for %}) carry no values.
        if is_template_line(trimmed) {
            continue;
        }
        if let Some(c) = head.captures(line) {
            let ind = width(&c[1]);
            let name = c[2].to_string();
            let rest = c.get(3).map(|m| m.as_str()).unwrap_or("");
            if rest.starts_with("{{") && only_template(rest) {
                // The whole mapping is rendered: `data: {{ toYaml .x | nindent 2 }}`.
            } else if rest.starts_with('{') {
                // Flow style: `data: {a: b, c: d}`; values may be `{{ … }}`.
                for (k, v) in flow_pairs(rest) {
                    if !value_ok(&v) {
                        out.push(plain(
                            doc,
                            format!("{name}.{}", unquote(k.trim())),
                            lineno,
                            "a plaintext value",
                        ));
                    }
                }
                block = None;
            } else {
                block = Some((ind, name));
            }
            continue;
        }
        let Some((bi, name)) = &block else { continue };
        if indent <= *bi {
            block = None;
            continue;
        }
        let Some(c) = entry.captures(line) else {
            continue;
        };
        let key = unquote(c[2].trim());
        let v = c.get(3).map(|m| m.as_str()).unwrap_or("");
        let v = strip_comment(v);
        if v.starts_with('|') || v.starts_with('>') {
            scalar = Some(BlockScalar {
                indent,
                key: format!("{name}.{key}"),
                line: lineno,
                body: vec![],
            });
            continue;
        }
        if !value_ok(v) {
            out.push(plain(
                doc,
                format!("{name}.{key}"),
                lineno,
                "a plaintext value",
            ));
        }
    }
    if let Some(sc) = scalar {
        if !sc.body_ok() {
            out.push(plain(doc, sc.key, sc.line, "a plaintext block scalar"));
        }
    }
    out
}

/// A `|`/`>` value met by the line scan: where it starts and its lines.
struct BlockScalar {
    /// Indent of the key that holds it; deeper lines are its body.
    indent: usize,
    key: String,
    line: usize,
    body: Vec<String>,
}

impl BlockScalar {
    /// The body passes when it is empty or, trimmed, one whole placeholder
    /// or reference (a block scalar holding only `op://…`).
    /// Lines that are only template syntax pass too: `{{ ENV.B | indent(4) }}`
    /// is filled when the template is rendered.
    fn body_ok(&self) -> bool {
        let text = self.body.join("\n");
        let t = text.trim();
        t.is_empty()
            || is_placeholder(t)
            || self.body.iter().all(|l| l.is_empty() || only_template(l))
    }
}

/// A line that is only template syntax: control tags and comments
/// (`{%- if %}`, `{{/* */}}`, `{# #}`) or whole `{{ … }}` expressions.
fn is_template_line(trimmed: &str) -> bool {
    only_template(trimmed) || trimmed.starts_with("{%") || trimmed.starts_with("{{/*")
}

/// Whether `s` is nothing but `{{ … }}`, `{% … %}` and `{# … #}` tags
/// separated by blanks (at least one tag).
fn only_template(s: &str) -> bool {
    let mut rest = s.trim();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        // Jinja/Helm tags, and makejinja's `#{ }#`, `#% %#`, `#| #|`.
        let close = match rest.get(..2) {
            Some("{{") => "}}",
            Some("{%") => "%}",
            Some("{#") => "#}",
            Some("#{") => "}#",
            Some("#%") => "%#",
            Some("#|") => "#|",
            _ => return false,
        };
        let Some(end) = rest[2..].find(close) else {
            return false;
        };
        rest = rest[2 + end + 2..].trim_start();
    }
    true
}

/// The `key: value` pairs of a one-line flow mapping `{a: b, c: {{ x }}}`:
/// the outer braces are stripped once, and commas and colons inside
/// `{{ … }}`, nested brackets or quotes do not split.
fn flow_pairs(rest: &str) -> Vec<(String, String)> {
    let t = rest.trim();
    let inner = t.strip_prefix('{').unwrap_or(t);
    let inner = inner.strip_suffix('}').unwrap_or(inner);
    let mut parts = Vec::new();
    let (mut depth, mut quote) = (0i32, None::<char>);
    let mut cur = String::new();
    for c in inner.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(std::mem::take(&mut cur));
                    continue;
                }
                _ => {}
            },
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .into_iter()
        .filter_map(|p| {
            let (k, v) = split_flow_pair(&p)?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Splits `key: value` at the first colon outside quotes and `{…}`.
fn split_flow_pair(p: &str) -> Option<(&str, &str)> {
    let (mut depth, mut quote) = (0i32, None::<char>);
    for (i, c) in p.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                ':' if depth == 0 => return Some((&p[..i], &p[i + 1..])),
                _ => {}
            },
        }
    }
    None
}

fn unquote(s: &str) -> String {
    s.trim_matches(|c| c == '"' || c == '\'').to_string()
}

fn strip_comment(v: &str) -> &str {
    let v = v.trim();
    if v.starts_with('"') || v.starts_with('\'') {
        return v;
    }
    match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    }
}

/// A value the line scan accepts: empty, null, ENC, or a whole placeholder.
fn value_ok(v: &str) -> bool {
    let v = strip_comment(v);
    let u = unquote(v);
    u.is_empty()
        || matches!(v, "~" | "null" | "Null" | "NULL")
        || u.starts_with("ENC[AES256_GCM,")
        || is_placeholder(&u)
        || is_placeholder(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert!(is_placeholder("${DB_PASSWORD}"));
        assert!(is_placeholder("${X:-}"));
        assert!(is_placeholder("${X:?set X}"));
        assert!(is_placeholder("${{REPLICAS}}"));
        // A non-empty default is the value whenever X is unset: a literal.
        assert!(!is_placeholder("${X:=hunter2}"));
        assert!(!is_placeholder("${DB_PASSWORD:-s3cr3t-Pa55}"));
        assert!(!is_placeholder("${X-default}"));
        assert!(!is_placeholder("${{X}"));
        assert!(is_placeholder("{{ .Values.pw | b64enc | quote }}"));
        assert!(!is_placeholder("{{ a }}{{ b }}"));
        assert!(!is_placeholder("pre-${X}"));
        assert!(!is_placeholder("hunter2"));
        assert!(is_placeholder("#{ cloudflare_token }#"));
        assert!(!is_placeholder("#{ a }# #{ b }#"));
        assert!(is_template_text(
            "#% filter indent(width=4) %#\n#{ deploy_key() }#\n#% endfilter %#\n"
        ));
        assert!(!is_template_text(
            "#{ deploy_key() }#\nexport PASSWORD=hunter2\n"
        ));
        assert!(!is_template_text("{{ one_line }}"));
    }

    #[test]
    fn references_are_whole_values_only() {
        for r in [
            "op://operations/1password/OP_SERVICE_ACCOUNT_TOKEN",
            "op://Personal/52okh3ubjh/section/credentials-json",
            "  op://kubernetes/cloudflare/TUNNEL_ID\n",
            "ref+vault://secret/app#/password",
            "ref+awssm://prod/db?region=eu-west-1#/pw",
            "<path:secret/data/app#password>",
            "<path:kv/data/app#pw | base64encode>",
            "vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY",
            "vault:secret/data/app#pw#2",
        ] {
            assert!(is_reference(r), "{r}");
            assert!(is_placeholder(r), "{r}");
        }
        for r in [
            "op://vault/item/field hunter2",
            "hunter2 op://vault/item/field",
            "op://only-vault",
            "ref+echo://hunter2",
            "prefix-ref+vault://secret/app#/pw",
            "<path:secret/data/app>",
            "vault:hunter2",
            "https://vault.example.com/v1/secret",
        ] {
            assert!(!is_reference(r), "{r}");
        }
    }

    #[test]
    fn credentials_by_shape() {
        let id = "AKIAIOSFODNN7EXAMPLE";
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert!(known_credential(secret, &format!("{id} {secret}")).is_some());
        assert!(known_credential(secret, secret).is_none(), "no id, no pair");
        assert!(
            known_credential(id, id).is_none(),
            "the id alone is not secret"
        );
        assert!(known_credential("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n", "").is_some());
        assert!(known_credential("-----BEGIN CERTIFICATE-----", "").is_none());
    }

    #[test]
    fn entropy() {
        assert!(high_entropy_token(
            "token: ghp_Z3x9Qk2LmN8pR4sT6vW1yB5cD7fH0jKa"
        ));
        assert!(!high_entropy_token(
            "managed by the platform team, see the runbook"
        ));
        assert!(!high_entropy_token(
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        ));
    }

    #[test]
    fn credentials_by_content() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let key =
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIFakeFakeFake\n-----END EC PRIVATE KEY-----\n";
        let crt = "-----BEGIN CERTIFICATE-----\nMIIBiDCCAS+gAwIBAgIRAKx3Yq9Z\n-----END CERTIFICATE-----\n";
        assert_eq!(credential_kind(key), Some("a private key"));
        assert_eq!(
            credential_kind(&b64(key)),
            Some("a base64-encoded private key")
        );
        assert_eq!(credential_kind(crt), None);
        assert_eq!(credential_kind(&b64(crt)), None);
        assert_eq!(
            credential_kind("q7x2k9.0a1b2c3d4e5f6a7b"),
            Some("a bootstrap token")
        );
        assert_eq!(
            credential_kind("ghp_Z3x9Qk2LmN8pR4sT6vW1yB5cD7fH0jKaBcDe"),
            Some("a vendor access token")
        );
        assert_eq!(
            credential_kind("Wm9vQmFyQmF6UXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo="),
            Some("a high-entropy token")
        );
        for clear in [
            "home-cluster",
            "https://10.0.0.10:6443",
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyFakeKey0123456789abcdefGHIJ user@host",
            "${CLUSTER_SECRET}",
        ] {
            assert_eq!(credential_kind(clear), None, "{clear}");
        }
    }

    #[test]
    fn secret_signal() {
        assert!(looks_like_secret("kind: \"Secret\"  # db\n"));
        assert!(looks_like_secret("  - kind:\tsecret   \n"));
        assert!(!looks_like_secret("kind: SecretStore\n"));
        assert!(!looks_like_secret("kind: ExternalSecret\n"));
    }

    #[test]
    fn age_key_shapes() {
        let k = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        let s = k.to_string();
        let f = age_identities("f", format!("x\n# {}\n", s.expose_secret()).as_bytes());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Error);
        assert_eq!(f[0].line, Some(2));
        assert!(age_identities("f", b"AGE-SECRET-KEY-1XXXX").is_empty());
    }
}
