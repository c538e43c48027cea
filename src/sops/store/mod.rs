//! Stores: how each file format maps to the document tree and where the
//! `sops` metadata lives in it.

pub mod dotenv;
pub mod flatten;
pub mod ini;
pub mod json;
pub mod yaml;

use std::path::Path;

use super::metadata::Metadata;
use super::tree::{Documents, Map, MapItem, PathSeg, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Ini,
    Binary,
}

impl Format {
    /// sops's choice by file suffix; anything unknown is binary.
    pub fn from_path(p: &Path) -> Format {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "yaml" | "yml" => Format::Yaml,
            "json" => Format::Json,
            "env" => Format::Dotenv,
            "ini" => Format::Ini,
            _ if name == ".env" => Format::Dotenv,
            _ => Format::Binary,
        }
    }

    /// Every format, by the name sops's `--input-type`/`--output-type` take.
    pub const ALL: [Format; 5] = [
        Format::Yaml,
        Format::Json,
        Format::Dotenv,
        Format::Ini,
        Format::Binary,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Ini => "ini",
            Format::Binary => "binary",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown format {s:?} (yaml, json, dotenv, ini, binary)"))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("invalid {format} at line {line}, column {col}: {msg}")]
    Syntax {
        format: &'static str,
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("{0}")]
    Shape(String),
    /// A resource bound (alias expansion) refused the file before it was
    /// built in memory; `doc` is the 0-based document index.
    #[error("document {doc}, line {line}: {msg}")]
    Limit {
        doc: usize,
        line: usize,
        msg: String,
    },
    #[error("the file starts with a byte-order mark; save it as UTF-8 without BOM")]
    Bom,
    #[error("the file is not valid UTF-8 (UTF-16 files must be converted to UTF-8 first)")]
    NotUtf8,
    #[error("the file is already encrypted (it has a sops metadata block)")]
    AlreadyEncrypted,
    #[error("the file is not encrypted: it has no sops metadata block")]
    NotEncrypted,
    #[error("invalid sops metadata: {0}")]
    Metadata(String),
    /// `--extract` named a path the document does not have.
    #[error("--extract: {0} not found")]
    NoSuchPath(String),
}

fn text(bytes: &[u8]) -> Result<&str, StoreError> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(StoreError::Bom);
    }
    std::str::from_utf8(bytes).map_err(|_| StoreError::NotUtf8)
}

/// Parses a plaintext file. A file that already carries sops metadata is refused.
pub fn load_plain(format: Format, bytes: &[u8]) -> Result<Documents, StoreError> {
    if format == Format::Binary {
        if let Ok((_, Some(_))) = split_binary(bytes) {
            return Err(StoreError::AlreadyEncrypted);
        }
        let v = match String::from_utf8(bytes.to_vec()) {
            Ok(s) => Value::Str(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        };
        return Ok(Documents(vec![Map(vec![MapItem::Pair("data".into(), v)])]));
    }
    let docs = parse_text(format, bytes)?;
    if has_metadata(format, &docs) {
        return Err(StoreError::AlreadyEncrypted);
    }
    Ok(docs)
}

fn parse_text(format: Format, bytes: &[u8]) -> Result<Documents, StoreError> {
    let src = text(bytes)?;
    match format {
        Format::Yaml => yaml::parse(src),
        Format::Json => json::parse(src).map(|m| Documents(vec![m])),
        Format::Dotenv => dotenv::parse(src).map(|m| Documents(vec![m])),
        Format::Ini => ini::parse(src).map(|m| Documents(vec![m])),
        Format::Binary => unreachable!(),
    }
}

fn has_metadata(format: Format, docs: &Documents) -> bool {
    let Some(first) = docs.0.first() else {
        return false;
    };
    match format {
        Format::Dotenv => first.pairs().any(|(k, _)| k.starts_with("sops_")),
        _ => first.contains_key("sops"),
    }
}

fn split_binary(bytes: &[u8]) -> Result<(Map, Option<Value>), StoreError> {
    let mut m = json::parse(text(bytes)?)?;
    let meta = m.remove("sops");
    Ok((m, meta))
}

/// Parses an encrypted file into its documents (without `sops`) and metadata.
pub fn load_encrypted(format: Format, bytes: &[u8]) -> Result<(Documents, Metadata), StoreError> {
    let (mut docs, meta_value) = match format {
        Format::Binary => {
            let (m, meta) = split_binary(bytes).map_err(|_| StoreError::NotEncrypted)?;
            (Documents(vec![m]), meta)
        }
        Format::Dotenv => {
            let mut docs = parse_text(format, bytes)?;
            let flat: Vec<(String, String)> = docs.0[0]
                .pairs()
                .filter_map(|(k, v)| {
                    k.strip_prefix("sops_")
                        .map(|k| (k.to_string(), v.as_str().unwrap_or("").to_string()))
                })
                .collect();
            docs.0[0]
                .0
                .retain(|i| !matches!(i, MapItem::Pair(k, _) if k.starts_with("sops_")));
            let meta = (!flat.is_empty()).then(|| flatten::unflatten(&flat));
            (docs, meta)
        }
        Format::Ini => {
            let mut docs = parse_text(format, bytes)?;
            let meta = docs.0[0].remove("sops").map(|v| match v {
                Value::Map(m) => flatten::unflatten(
                    &m.pairs()
                        .map(|(k, v)| (k.to_string(), v.as_str().unwrap_or("").to_string()))
                        .collect::<Vec<_>>(),
                ),
                other => other,
            });
            (docs, meta)
        }
        _ => {
            let mut docs = parse_text(format, bytes)?;
            let meta = docs.0.first_mut().and_then(|d| d.remove("sops"));
            for d in docs.0.iter_mut().skip(1) {
                d.remove("sops");
            }
            (docs, meta)
        }
    };
    let meta_value = meta_value.ok_or(StoreError::NotEncrypted)?;
    let meta = Metadata::from_value(&meta_value).map_err(StoreError::Metadata)?;
    if docs.0.is_empty() {
        docs.0.push(Map::default());
    }
    Ok((docs, meta))
}

/// Writes an encrypted file: the documents plus the metadata block.
pub fn emit_encrypted(
    format: Format,
    docs: &Documents,
    meta: &Metadata,
    indent: Option<usize>,
) -> Result<Vec<u8>, StoreError> {
    let mv = meta.to_value();
    Ok(match format {
        Format::Yaml => {
            let mut d = docs.clone();
            for m in d.0.iter_mut() {
                m.0.push(MapItem::Pair("sops".into(), mv.clone()));
            }
            yaml::emit(&d, indent.unwrap_or(yaml::INDENT)).into_bytes()
        }
        Format::Json | Format::Binary => {
            let mut m = docs.0[0].clone();
            m.0.push(MapItem::Pair("sops".into(), mv));
            json::emit(&m, indent).into_bytes()
        }
        Format::Dotenv => {
            let mut m = docs.0[0].clone();
            let mut flat = flatten::flatten(&mv);
            flat.sort();
            for (k, v) in flat {
                m.0.push(MapItem::Pair(format!("sops_{k}"), Value::Str(v)));
            }
            dotenv::emit(&m)?.into_bytes()
        }
        Format::Ini => {
            let mut m = docs.0[0].clone();
            let flat = flatten::flatten(&mv);
            let section = Map(flat
                .into_iter()
                .map(|(k, v)| MapItem::Pair(k, Value::Str(v)))
                .collect());
            m.0.push(MapItem::Pair("sops".into(), Value::Map(section)));
            ini::emit(&m)?.into_bytes()
        }
    })
}

/// Writes decrypted documents in their own format (binary: the raw payload).
pub fn emit_plain(
    format: Format,
    docs: &Documents,
    indent: Option<usize>,
) -> Result<Vec<u8>, StoreError> {
    Ok(match format {
        Format::Yaml => yaml::emit(docs, indent.unwrap_or(yaml::INDENT)).into_bytes(),
        Format::Json => json::emit(&docs.0[0], indent).into_bytes(),
        Format::Dotenv => dotenv::emit(&docs.0[0])?.into_bytes(),
        Format::Ini => ini::emit(&docs.0[0])?.into_bytes(),
        Format::Binary => match docs.0[0].get("data") {
            Some(Value::Str(s)) => s.clone().into_bytes(),
            Some(Value::Bytes(b)) => b.clone(),
            _ => {
                return Err(StoreError::Shape(
                    "binary file has no string `data` value".into(),
                ));
            }
        },
    })
}

/// sops's `--extract`: a string leaf raw, a map through the file's store,
/// any other value as the YAML store writes it.
pub fn extract(
    docs: &Documents,
    path: &[PathSeg],
    format: Format,
    indent: Option<usize>,
) -> Result<Vec<u8>, StoreError> {
    let first = docs
        .0
        .first()
        .ok_or(StoreError::Shape("empty file".into()))?;
    let cur = Value::Map(first.clone())
        .get_path(path)
        .cloned()
        .ok_or_else(|| StoreError::NoSuchPath(path.iter().map(ToString::to_string).collect()))?;
    Ok(match cur {
        Value::Str(s) => s.into_bytes(),
        Value::Bytes(b) => b,
        Value::Map(m) => emit_plain(format, &Documents(vec![m]), indent)?,
        other => {
            let mut m = Map::default();
            m.insert("v", other);
            let text = yaml::emit(&Documents(vec![m]), indent.unwrap_or(yaml::INDENT));
            match text.strip_prefix("v:") {
                Some(rest) => rest.trim().to_string().into_bytes(),
                None => return Err(StoreError::Shape("cannot print that value".into())),
            }
        }
    })
}
