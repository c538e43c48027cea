//! Doctor output: grouped text with a fix per finding, JSON, and SARIF 2.1.0
//! for CI annotation.

use std::fmt::Write;

use serde_json::{Value as J, json};

use super::{Check, Finding, Severity};

pub fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        out.push_str("ksec doctor: no findings\n");
        return out;
    }
    let mut env = None;
    for f in findings_grouped(findings) {
        if env != Some(&f.environment) {
            let _ = writeln!(out, "\n== environment {} ==", f.environment);
            env = Some(&f.environment);
        }
        let sev = match f.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARN ",
            Severity::Info => "INFO ",
        };
        let _ = writeln!(
            out,
            "{sev} [{}] {} {}: {}",
            f.check.id(),
            f.namespace,
            f.object,
            f.message
        );
        if let Some(file) = &f.file {
            let _ = writeln!(out, "      file: {}", file.display());
        }
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "      fix:  {fix}");
        }
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "\n{} errors, {} warnings, {} info",
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info)
    );
    out
}

fn findings_grouped(findings: &[Finding]) -> Vec<&Finding> {
    let mut v: Vec<&Finding> = findings.iter().collect();
    v.sort_by(|a, b| {
        (
            &a.environment,
            std::cmp::Reverse(a.severity),
            a.check,
            &a.namespace,
            &a.object,
            &a.message,
        )
            .cmp(&(
                &b.environment,
                std::cmp::Reverse(b.severity),
                b.check,
                &b.namespace,
                &b.object,
                &b.message,
            ))
    });
    v
}

pub fn json(findings: &[Finding]) -> J {
    json!({ "findings": findings, "errors": findings.iter().filter(|f| f.severity == Severity::Error).count() })
}

pub fn sarif(findings: &[Finding]) -> J {
    let rules: Vec<J> = Check::ALL
        .iter()
        .map(|c| json!({"id": c.id(), "defaultConfiguration": {"level": level(c.default_severity())}}))
        .collect();
    let results: Vec<J> = findings
        .iter()
        .map(|f| {
            let mut r = json!({
                "ruleId": f.check.id(),
                "level": level(f.severity),
                "message": {"text": match &f.fix { Some(fix) => format!("{} {}: {} (fix: {fix})", f.namespace, f.object, f.message), None => format!("{} {}: {}", f.namespace, f.object, f.message) }},
            });
            if let Some(file) = &f.file {
                r["locations"] = json!([{"physicalLocation": {"artifactLocation": {"uri": file.display().to_string()}}}]);
            }
            r
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "ksec-doctor", "informationUri": "https://github.com/ksec", "rules": rules}}, "results": results}]
    })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}
