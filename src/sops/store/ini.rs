//! INI store: each section is a top-level map of string values.

use super::StoreError;
use crate::sops::tree::{Map, MapItem, Value};
use std::collections::{HashMap, HashSet};

pub const DEFAULT_SECTION: &str = "DEFAULT";

pub fn parse(src: &str) -> Result<Map, StoreError> {
    let mut root = Map::default();
    let mut current: Option<String> = None;
    let mut pending_comments: Vec<String> = Vec::new();
    let lines: Vec<&str> = src.split('\n').collect();
    let mut n = 0;
    // Section name → its position in `root` and the keys it holds: hash
    // lookups keep the duplicate checks linear in the file size.
    let mut index: HashMap<String, (usize, HashSet<String>)> = HashMap::new();
    let section_map = |root: &mut Map,
                       index: &mut HashMap<String, (usize, HashSet<String>)>,
                       name: &str|
     -> usize {
        if let Some((at, _)) = index.get(name) {
            return *at;
        }
        root.0
            .push(MapItem::Pair(name.to_string(), Value::Map(Map::default())));
        index.insert(name.to_string(), (root.0.len() - 1, HashSet::new()));
        root.0.len() - 1
    };
    while n < lines.len() {
        let raw = lines[n].trim_end_matches('\r');
        let line = raw.trim();
        n += 1;
        if line.is_empty() {
            continue;
        }
        // A byte-order mark after leading white space (e.g. a vertical tab)
        // would start a key, and an emitted file would then begin with it.
        if line.starts_with('\u{feff}') {
            return Err(StoreError::Syntax {
                format: "INI",
                line: n,
                col: 1,
                msg: "a byte-order mark inside the file; save it as UTF-8 without BOM".into(),
            });
        }
        if line.starts_with(';') || line.starts_with('#') {
            pending_comments.push(line.to_string());
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
            if index.contains_key(name) {
                return Err(StoreError::Syntax {
                    format: "INI",
                    line: n,
                    col: 1,
                    msg: format!("duplicate section [{name}]"),
                });
            }
            let at = section_map(&mut root, &mut index, name);
            current = Some(name.to_string());
            let MapItem::Pair(_, Value::Map(sec)) = &mut root.0[at] else {
                unreachable!()
            };
            // The comment lines above a header are the section's comment:
            // its first item, as sops's tree has it.
            sec.0.extend(joined_comment(&mut pending_comments));
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
        let at = section_map(&mut root, &mut index, &section);
        let MapItem::Pair(_, Value::Map(sec)) = &mut root.0[at] else {
            unreachable!()
        };
        let keys = &mut index.get_mut(&section).expect("indexed above").1;
        if !keys.insert(key.clone()) {
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
        // The comment lines above a key are its comment, which sops's tree
        // holds right after the key.
        sec.0.extend(joined_comment(&mut pending_comments));
    }
    // Comment lines after the last key belong to nothing: go-ini (so sops)
    // drops them.
    Ok(root)
}

/// go-ini's comment: consecutive comment lines (blank lines between them
/// too) are one comment, joined by line breaks; sops then strips the first
/// line's `;` or `#` and the spaces after it, and keeps the other lines as
/// they are.
fn joined_comment(lines: &mut Vec<String>) -> Option<MapItem> {
    if lines.is_empty() {
        return None;
    }
    let joined = lines.drain(..).collect::<Vec<_>>().join("\n");
    let stripped = match joined.as_bytes()[0] {
        b';' => joined.trim_start_matches([';', ' ']),
        _ => joined.trim_start_matches(['#', ' ']),
    };
    Some(MapItem::Comment(stripped.to_string()))
}

/// Writes what `parse` reads back unchanged, or says which entry INI cannot hold.
pub fn emit(m: &Map) -> Result<String, StoreError> {
    let mut out = String::new();
    let mut first = true;
    for item in &m.0 {
        match item {
            // Top-level comments have no place in INI (sops skips them too).
            MapItem::Comment(_) => {}
            MapItem::Pair(name, v) => {
                let leading = std::mem::replace(&mut first, false);
                if !leading {
                    out.push('\n');
                }
                if name.is_empty() || name.contains([']', '\n', '\r']) || name.trim() != name {
                    return Err(StoreError::Shape(format!(
                        "INI cannot hold section name {name:?}"
                    )));
                }
                let Value::Map(sec) = v else {
                    return Err(StoreError::Shape(format!(
                        "INI section [{name}] must be a map of values"
                    )));
                };
                // The comments ahead of the first key are the section's,
                // written above its header; a key's comments follow it in
                // the tree and are written above it (as go-ini does).
                let lead = sec
                    .0
                    .iter()
                    .take_while(|i| matches!(i, MapItem::Comment(_)))
                    .count();
                for c in sec.0[..lead].iter().filter_map(comment_text) {
                    comment(&mut out, c, false);
                }
                // go-ini writes the default section, first, without a
                // header; elsewhere its keys would join the section above.
                if name != DEFAULT_SECTION || !leading {
                    out.push_str(&format!("[{name}]\n"));
                }
                let width = sec.pairs().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (i, item) in sec.0.iter().enumerate().skip(lead) {
                    match item {
                        MapItem::Comment(_) => {}
                        MapItem::Pair(k, v) => {
                            let after = sec.0[i + 1..].iter().map_while(comment_text);
                            for c in after {
                                comment(&mut out, c, true);
                            }
                            if !key_ok(k) {
                                return Err(StoreError::Shape(format!(
                                    "INI cannot hold key {k:?} in section [{name}]"
                                )));
                            }
                            let Some(s) = crate::sops::scalar::flat_text(v) else {
                                return Err(StoreError::Shape(format!(
                                    "INI cannot hold nested values ([{name}] {k})"
                                )));
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

fn comment_text(i: &MapItem) -> Option<&String> {
    match i {
        MapItem::Comment(c) => Some(c),
        MapItem::Pair(..) => None,
    }
}

/// Writes a comment as go-ini does: a line that starts with `;` or `#`
/// keeps that character, then one space and the rest trimmed; any other
/// line gets `; ` (a key's comment lines are trimmed too). Except a first
/// line that starts with `;` or `#`: go-ini's form would lose that
/// character when read back, so it gets the other comment character.
fn comment(out: &mut String, c: &str, of_key: bool) {
    for (i, line) in c.split(['\n', '\r']).enumerate() {
        match line.chars().next() {
            Some('#') if i == 0 => {
                out.push_str("; ");
                out.push_str(line);
            }
            Some(';') if i == 0 => {
                out.push_str("# ");
                out.push_str(line);
            }
            Some(ch @ (';' | '#')) => {
                out.push(ch);
                out.push(' ');
                out.push_str(line[1..].trim());
            }
            _ => {
                out.push_str("; ");
                out.push_str(if of_key { line.trim() } else { line });
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `ksec decrypt` writes re-encrypts to the same text (the
    /// fuzz target's invariant), comments included.
    #[test]
    fn comments_are_a_fixed_point_after_one_round() {
        for src in [
            "; #x\n[s]\na = 1\n",
            "# ;x\n[s]\na = 1\n",
            ";\n[s]\na = 1\n",
            "; top\n\n;  two  \n[db]\n# after header\na = 1\n;k1\n#k2\nb = 2\n",
            "; c\na = 1\n[s]\n; d\nb = 2\n",
        ] {
            let first = emit(&parse(src).unwrap()).unwrap();
            let second = emit(&parse(&first).unwrap()).unwrap();
            assert_eq!(first, second, "{src:?}");
        }
    }

    #[test]
    fn duplicates_are_found_in_linear_time() {
        // 200k keys and 1000 sections: the checks were quadratic.
        let mut src = String::new();
        for s in 0..1000 {
            src.push_str(&format!("[s{s}]\n"));
            src.extend((0..200).map(|k| format!("k{k} = v\n")));
        }
        let m = parse(&src).unwrap();
        assert_eq!(m.pairs().count(), 1000);
        let e = parse(&format!("{src}[s7]\n")).unwrap_err();
        assert!(e.to_string().contains("duplicate section [s7]"), "{e}");
        let e = parse(&format!("{src}k5 = again\n")).unwrap_err();
        assert!(e.to_string().contains("duplicate key \"k5\""), "{e}");
    }
}
