//! Guard output: one line per finding (grep-able, stable order), JSON for
//! CI, SARIF 2.1.0 for code annotations. Messages never hold values.

use std::fmt::Write;

use serde_json::{Value as J, json};

use super::{Finding, RuleId, Severity};

fn sev(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Allowed => "allowed",
    }
}

/// `file:doc N:key: [rule] severity: message`, then a summary line.
pub fn text(findings: &[Finding], files_checked: usize, verbose: bool) -> String {
    text_as("ksec check", "file(s)", findings, files_checked, verbose)
}

/// [`text`] with the summary naming the command and what it counted
/// (`ksec scan: 120 blob(s), …`).
pub fn text_as(
    command: &str,
    unit: &str,
    findings: &[Finding],
    files_checked: usize,
    verbose: bool,
) -> String {
    let mut out = String::new();
    for f in findings {
        if f.severity == Severity::Allowed && !verbose {
            continue;
        }
        let commit = f
            .commit
            .as_deref()
            .map(|c| format!("{}:", &c[..c.len().min(12)]))
            .unwrap_or_default();
        let line = f.line.map(|l| format!(" line {l}")).unwrap_or_default();
        let key = if f.key_path.is_empty() {
            String::new()
        } else {
            format!(" key {}", f.key_path)
        };
        let _ = writeln!(
            out,
            "{commit}{}: document {}{key}{line}: {} [{}]: {}",
            f.file,
            f.doc_index,
            sev(f.severity),
            f.rule_id.as_str(),
            f.message
        );
    }
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "{command}: {} {unit}, {} error(s), {} warning(s), {} allowed",
        files_checked,
        n(Severity::Error),
        n(Severity::Warning),
        n(Severity::Allowed)
    );
    out
}

pub fn json(findings: &[Finding], files_checked: usize) -> J {
    let n = |s| findings.iter().filter(|f| f.severity == s).count();
    json!({
        "files_checked": files_checked,
        "errors": n(Severity::Error),
        "warnings": n(Severity::Warning),
        "allowed": n(Severity::Allowed),
        "findings": findings,
    })
}

pub fn sarif(findings: &[Finding]) -> J {
    let rules: Vec<J> = RuleId::ALL
        .iter()
        .map(|r| json!({"id": r.as_str(), "shortDescription": {"text": r.describe()}}))
        .collect();
    let results: Vec<J> = findings
        .iter()
        .filter(|f| f.severity != Severity::Allowed)
        .map(|f| {
            let mut loc = json!({"physicalLocation": {"artifactLocation": {"uri": f.file}}});
            if let Some(l) = f.line {
                loc["physicalLocation"]["region"] = json!({"startLine": l});
            }
            json!({
                "ruleId": f.rule_id.as_str(),
                "level": if f.severity == Severity::Error { "error" } else { "warning" },
                "message": {"text": format!("document {}, key {}: {}", f.doc_index, if f.key_path.is_empty() { "(document)" } else { &f.key_path }, f.message)},
                "locations": [loc],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "ksec-check", "rules": rules}}, "results": results}]
    })
}
