//! JSON store: one object per file, key order kept, Go-style tab indentation.

use super::StoreError;
use crate::sops::tree::{Map, Value};

pub fn parse(src: &str) -> Result<Map, StoreError> {
    let v: serde_json::Value = serde_json::from_str(src).map_err(|e| StoreError::Syntax {
        format: "JSON",
        line: e.line(),
        col: e.column(),
        // serde_json messages describe the grammar, never echo values.
        msg: e
            .to_string()
            .split(" at line")
            .next()
            .unwrap_or("syntax error")
            .to_string(),
    })?;
    match Value::from_json(&v) {
        Value::Map(m) => Ok(m),
        _ => Err(StoreError::Shape(
            "a JSON file must hold an object at the top level".into(),
        )),
    }
}

/// `indent`: `None` = one tab per level (sops's default), `Some(n)` = n spaces.
pub fn emit(m: &Map, indent: Option<usize>) -> String {
    let unit = match indent {
        None => "\t".to_string(),
        Some(n) => " ".repeat(n),
    };
    let mut out = String::new();
    value(&mut out, &Value::Map(m.clone()), &unit, 0);
    out.push('\n');
    out
}

fn value(out: &mut String, v: &Value, unit: &str, depth: usize) {
    match v {
        Value::Map(m) => {
            let pairs: Vec<_> = m.pairs().collect();
            if pairs.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            for (i, (k, v)) in pairs.iter().enumerate() {
                out.push_str(&unit.repeat(depth + 1));
                string(out, k);
                out.push_str(": ");
                value(out, v, unit, depth + 1);
                if i + 1 < pairs.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&unit.repeat(depth));
            out.push('}');
        }
        Value::Seq(s) => {
            let elems: Vec<_> = s.elems().collect();
            if elems.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (i, v) in elems.iter().enumerate() {
                out.push_str(&unit.repeat(depth + 1));
                value(out, v, unit, depth + 1);
                if i + 1 < elems.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            out.push_str(&unit.repeat(depth));
            out.push(']');
        }
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        // Go's encoding/json: 'f' digits, exponent only for very large/small magnitudes.
        Value::Float(f) if f.is_finite() && (*f == 0.0 || (f.abs() >= 1e-6 && f.abs() < 1e21)) => {
            out.push_str(&crate::sops::scalar::format_float_f(*f))
        }
        // Go's encoding/json: `1e+21`, `1e-7` (sign always, no zero padding).
        Value::Float(f) if f.is_finite() => {
            out.push_str(&format!("{f:e}").replacen("e", "e+", 1).replace("e+-", "e-"))
        }
        Value::Float(f) => string(out, &crate::sops::scalar::format_float_f(*f)),
        Value::Str(s) => string(out, s),
        Value::Bytes(b) => string(out, &String::from_utf8_lossy(b)),
        Value::Time(t) => string(out, &crate::sops::scalar::format_time(t)),
    }
}

/// Go's `json.Marshal` string escaping (HTML-safe).
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
