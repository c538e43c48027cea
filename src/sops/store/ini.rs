//! INI store: each section is a top-level map of string values.

use super::StoreError;
use crate::sops::tree::{Map, MapItem, Value};

pub const DEFAULT_SECTION: &str = "DEFAULT";

pub fn parse(src: &str) -> Result<Map, StoreError> {
    let mut root = Map::default();
    let mut current: Option<String> = None;
    let mut pending_comments: Vec<String> = Vec::new();
    let lines: Vec<&str> = src.split('\n').collect();
    let mut n = 0;
    let section_map = |root: &mut Map, name: &str| -> () {
        if !root.contains_key(name) {
            root.0
                .push(MapItem::Pair(name.to_string(), Value::Map(Map::default())));
        }
    };
    while n < lines.len() {
        let raw = lines[n].trim_end_matches('\r');
        let line = raw.trim();
        n += 1;
        if line.is_empty() {
            continue;
        }
        if line.starts_with(';') || line.starts_with('#') {
            pending_comments.push(line.trim_start_matches([';', '#', ' ']).to_string());
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name.strip_suffix(']').ok_or_else(|| StoreError::Syntax {
                format: "INI",
                line: n,
                col: 1,
                msg: "unterminated section header".into(),
            })?;
            // Like duplicate keys: which one would a reader take?
            if root.contains_key(name) {
                return Err(StoreError::Syntax {
                    format: "INI",
                    line: n,
                    col: 1,
                    msg: format!("duplicate section [{name}]"),
                });
            }
            // Comments right under a section that has no keys stay in it
            // (that is where `emit` writes them); otherwise they lead the
            // next section.
            if let Some(Value::Map(prev)) = current.as_deref().and_then(|c| root.get_mut(c))
                && prev.pairs().next().is_none()
            {
                prev.0
                    .extend(pending_comments.drain(..).map(MapItem::Comment));
            }
            section_map(&mut root, name);
            current = Some(name.to_string());
            let Some(Value::Map(sec)) = root.get_mut(name) else {
                unreachable!()
            };
            sec.0
                .extend(pending_comments.drain(..).map(MapItem::Comment));
            continue;
        }
        let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return Err(StoreError::Syntax {
                format: "INI",
                line: n,
                col: 1,
                msg: "expected key = value".into(),
            });
        };
        let key = k.trim().to_string();
        let mut val = v.trim().to_string();
        if let Some(rest) = val.strip_prefix("\"\"\"") {
            // ini.v1 multi-line value
            let mut acc = rest.to_string();
            while !acc.ends_with("\"\"\"") {
                let Some(next) = lines.get(n) else {
                    return Err(StoreError::Syntax {
                        format: "INI",
                        line: n,
                        col: 1,
                        msg: "unterminated \"\"\" value".into(),
                    });
                };
                acc.push('\n');
                acc.push_str(next.trim_end_matches('\r'));
                n += 1;
            }
            // Exactly one closing `"""`: a value may itself end in quotes.
            acc.truncate(acc.len() - 3);
            val = acc;
        } else if val.len() >= 2
            && ((val.starts_with('"') && val.ends_with('"'))
                || (val.starts_with('`') && val.ends_with('`')))
        {
            val = val[1..val.len() - 1].to_string();
        }
        let section = current
            .clone()
            .unwrap_or_else(|| DEFAULT_SECTION.to_string());
        section_map(&mut root, &section);
        let Some(Value::Map(sec)) = root.get_mut(&section) else {
            unreachable!()
        };
        sec.0
            .extend(pending_comments.drain(..).map(MapItem::Comment));
        if sec.contains_key(&key) {
            return Err(StoreError::Syntax {
                format: "INI",
                line: n,
                col: 1,
                msg: format!("duplicate key {key:?}"),
            });
        }
        let val = if section == "sops" {
            val.replace("\\n", "\n")
        } else {
            val
        };
        sec.0.push(MapItem::Pair(key, Value::Str(val)));
    }
    if !pending_comments.is_empty() {
        if let Some(MapItem::Pair(_, Value::Map(sec))) = root.0.last_mut() {
            sec.0
                .extend(pending_comments.drain(..).map(MapItem::Comment));
        }
    }
    Ok(root)
}

/// Writes what `parse` reads back unchanged, or says which entry INI cannot hold.
pub fn emit(m: &Map) -> Result<String, StoreError> {
    let mut out = String::new();
    let mut first = true;
    for item in &m.0 {
        match item {
            MapItem::Comment(c) => comment(&mut out, c),
            MapItem::Pair(name, v) => {
                if !first {
                    out.push('\n');
                }
                first = false;
                if name.is_empty() || name.contains([']', '\n', '\r']) || name.trim() != name {
                    return Err(StoreError::Shape(format!(
                        "INI cannot hold section name {name:?}"
                    )));
                }
                out.push_str(&format!("[{name}]\n"));
                let Value::Map(sec) = v else {
                    return Err(StoreError::Shape(format!(
                        "INI section [{name}] must be a map of values"
                    )));
                };
                let width = sec.pairs().map(|(k, _)| k.len()).max().unwrap_or(0);
                for item in &sec.0 {
                    match item {
                        MapItem::Comment(c) => comment(&mut out, c),
                        MapItem::Pair(k, v) => {
                            if !key_ok(k) {
                                return Err(StoreError::Shape(format!(
                                    "INI cannot hold key {k:?} in section [{name}]"
                                )));
                            }
                            let s = match v {
                                Value::Str(s) => s.clone(),
                                Value::Map(_) | Value::Seq(_) => {
                                    return Err(StoreError::Shape(format!(
                                        "INI cannot hold nested values ([{name}] {k})"
                                    )));
                                }
                                other => String::from_utf8_lossy(
                                    &crate::sops::scalar::to_text(other).unwrap_or_default(),
                                )
                                .into_owned(),
                            };
                            let s = if name == "sops" {
                                s.replace('\n', "\\n")
                            } else {
                                quote(&s).ok_or_else(|| {
                                    StoreError::Shape(format!(
                                        "INI cannot hold the value of [{name}] {k} \
                                         (a multi-line value whose lines end in spaces, \\r or \"\"\")"
                                    ))
                                })?
                            };
                            out.push_str(&format!("{k:<width$} = {s}\n"));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// One `; ` line per line of `c`, in the form `parse` reads back unchanged.
fn comment(out: &mut String, c: &str) {
    for line in c.split(['\n', '\r']) {
        out.push_str("; ");
        out.push_str(line.trim_start_matches([';', '#', ' ']).trim_end());
        out.push('\n');
    }
}

/// A key `parse` splits off intact: it ends at the first `=`.
fn key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.trim() == k
        && !k.contains(['=', '\n', '\r'])
        && !k.starts_with(['[', ';', '#'])
}

/// The written form of a value (go-ini's quoting forms): bare when `parse`
/// would read it back as is, backquoted when it has edge whitespace or
/// leading quotes, `"""` around multi-line values. `None` when no form
/// reads back exactly.
fn quote(s: &str) -> Option<String> {
    if !s.contains('\n') {
        let bare = s.trim() == s && !s.starts_with(['"', '`']) && !s.contains('\r');
        return Some(if bare {
            s.to_string()
        } else {
            format!("`{s}`")
        });
    }
    let lines: Vec<&str> = s.split('\n').collect();
    let last = lines.len() - 1;
    let fits = lines.iter().enumerate().all(|(i, l)| {
        !l.ends_with('\r') && (i == last || !l.ends_with("\"\"\"")) && (i > 0 || l.trim_end() == *l)
    });
    fits.then(|| format!("\"\"\"{s}\"\"\""))
}
