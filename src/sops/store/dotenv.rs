//! dotenv store: `KEY=VALUE` lines, `#` comments, `\n` escapes, all strings.

use super::StoreError;
use crate::sops::tree::{Map, MapItem, Value};

pub fn parse(src: &str) -> Result<Map, StoreError> {
    let mut m = Map::default();
    // Keys seen so far: a hash set keeps the duplicate check linear.
    let mut seen = std::collections::HashSet::new();
    for (n, line) in src.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            m.0.push(MapItem::Comment(c.to_string()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(StoreError::Syntax {
                format: "dotenv",
                line: n + 1,
                col: 1,
                msg: "expected KEY=VALUE".into(),
            });
        };
        if !seen.insert(k) {
            return Err(StoreError::Syntax {
                format: "dotenv",
                line: n + 1,
                col: 1,
                msg: format!("duplicate key {k:?}"),
            });
        }
        m.0.push(MapItem::Pair(
            k.to_string(),
            Value::Str(v.replace("\\n", "\n")),
        ));
    }
    Ok(m)
}

pub fn emit(m: &Map) -> Result<String, StoreError> {
    let mut out = String::new();
    for item in &m.0 {
        match item {
            MapItem::Comment(c) => {
                for line in c.split('\n') {
                    out.push('#');
                    out.push_str(line);
                    out.push('\n');
                }
            }
            MapItem::Pair(k, v) => {
                // What `parse` would split differently, or refuse as a BOM.
                if k.contains(['=', '\n']) || k.starts_with(['#', '\u{feff}']) {
                    return Err(StoreError::Shape(format!(
                        "dotenv cannot hold the key {k:?}"
                    )));
                }
                let Some(s) = crate::sops::scalar::flat_text(v) else {
                    return Err(StoreError::Shape(format!(
                        "dotenv cannot hold nested values (key {k:?})"
                    )));
                };
                out.push_str(k);
                out.push('=');
                out.push_str(&s.replace('\n', "\\n"));
                out.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_in_linear_time() {
        let src: String = (0..200_000).map(|i| format!("K{i}=v\n")).collect();
        assert_eq!(parse(&src).unwrap().pairs().count(), 200_000);
        let e = parse(&format!("{src}K9=again\n")).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"K9\""), "{e}");
    }
}
