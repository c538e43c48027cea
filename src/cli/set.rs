//! `ksec set` / `ksec unset`: change one value, same data key, new MAC.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};

use super::common::{self, GlobalArgs, IdentityArgs, PathSeg, TypeArgs, usage};
use ksec::ops::{self, OpenOptions};
use ksec::sops::{Map, MapItem, Seq, SeqItem, Value};

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    pub file: PathBuf,
    /// Path like '["data"]["password"]'
    pub path: String,
    /// The new value as JSON ('"text"', 5, true, {"a": 1}); see also --value-stdin/--value-file
    pub value: Option<String>,
    /// Read the JSON value from stdin (keeps it out of shell history)
    #[arg(long, conflicts_with_all = ["value", "value_file"])]
    pub value_stdin: bool,
    /// Read the JSON value from a file
    #[arg(long, conflicts_with = "value")]
    pub value_file: Option<PathBuf>,
    /// Do not rewrite the file when the value is already set
    #[arg(long)]
    pub idempotent: bool,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

#[derive(clap::Args, Debug)]
pub struct UnsetArgs {
    pub file: PathBuf,
    pub path: String,
    /// Succeed without change when the path does not exist
    #[arg(long)]
    pub idempotent: bool,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

fn set_in(v: &mut Value, path: &[PathSeg], new: Value) -> Result<()> {
    let Some((first, rest)) = path.split_first() else {
        *v = new;
        return Ok(());
    };
    match first {
        PathSeg::Key(k) => {
            if !matches!(v, Value::Map(_)) {
                if matches!(v, Value::Null) {
                    *v = Value::Map(Map::default());
                } else {
                    return Err(usage(format!(
                        "cannot set key {k:?}: the parent is not a map"
                    )));
                }
            }
            let Value::Map(m) = v else { unreachable!() };
            if m.get(k).is_none() {
                m.0.push(MapItem::Pair(k.clone(), Value::Null));
            }
            set_in(m.get_mut(k).expect("present"), rest, new)
        }
        PathSeg::Index(i) => {
            if matches!(v, Value::Null) {
                *v = Value::Seq(Seq::default());
            }
            let Value::Seq(s) = v else {
                return Err(usage("cannot index: the parent is not a list"));
            };
            let positions: Vec<usize> =
                s.0.iter()
                    .enumerate()
                    .filter(|(_, x)| matches!(x, SeqItem::Elem(_)))
                    .map(|(p, _)| p)
                    .collect();
            match positions.get(*i) {
                Some(&p) => {
                    let SeqItem::Elem(x) = &mut s.0[p] else {
                        unreachable!()
                    };
                    set_in(x, rest, new)
                }
                None => {
                    s.0.push(SeqItem::Elem(Value::Null));
                    let SeqItem::Elem(x) = s.0.last_mut().expect("pushed") else {
                        unreachable!()
                    };
                    set_in(x, rest, new)
                }
            }
        }
    }
}

fn unset_in(v: &mut Value, path: &[PathSeg]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match (first, v) {
        (PathSeg::Key(k), Value::Map(m)) => {
            if rest.is_empty() {
                m.remove(k).is_some()
            } else {
                m.get_mut(k).is_some_and(|c| unset_in(c, rest))
            }
        }
        (PathSeg::Index(i), Value::Seq(s)) => {
            let positions: Vec<usize> =
                s.0.iter()
                    .enumerate()
                    .filter(|(_, x)| matches!(x, SeqItem::Elem(_)))
                    .map(|(p, _)| p)
                    .collect();
            let Some(&p) = positions.get(*i) else {
                return false;
            };
            if rest.is_empty() {
                s.0.remove(p);
                true
            } else {
                let SeqItem::Elem(x) = &mut s.0[p] else {
                    return false;
                };
                unset_in(x, rest)
            }
        }
        _ => false,
    }
}

fn change(
    cmd: &str,
    file: &PathBuf,
    ids: &IdentityArgs,
    types: &TypeArgs,
    f: impl FnOnce(&mut Value) -> Result<bool>,
) -> Result<i32> {
    let name = file.display().to_string();
    let format = types.in_place(file, cmd)?;
    let bytes = ops::read(file).with_context(|| format!("cannot read {name}"))?;
    let ring = common::keyring(ids, true)?;
    let mut opened =
        ops::open(&bytes, format, &ring, OpenOptions::default()).with_context(|| name.clone())?;
    let mut root = Value::Map(opened.docs.0[0].clone());
    if !f(&mut root)? {
        return Ok(0);
    }
    let Value::Map(m) = root else { unreachable!() };
    opened.docs.0[0] = m;
    let out = ops::reseal(&mut opened, format, types.indent).with_context(|| name.clone())?;
    ksec::fsio::write_atomic(file, &out).with_context(|| format!("cannot write {name}"))?;
    Ok(0)
}

pub fn run_set(a: &SetArgs, _g: &GlobalArgs) -> Result<i32> {
    let path = common::parse_tree_path(&a.path)?;
    let raw = zeroize::Zeroizing::new(if a.value_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else if let Some(f) = &a.value_file {
        std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
    } else {
        a.value
            .clone()
            .ok_or_else(|| usage("give a VALUE, --value-stdin or --value-file"))?
    });
    let json: serde_json::Value = serde_json::from_str(raw.trim())
        .map_err(|_| usage("the value is not valid JSON (a string needs quotes: '\"text\"')"))?;
    let new = Value::from_json(&json);
    change("set", &a.file, &a.ids, &a.types, |root| {
        if a.idempotent && get(root, &path) == Some(&new) {
            return Ok(false);
        }
        set_in(root, &path, new)?;
        Ok(true)
    })
}

fn get<'a>(v: &'a Value, path: &[PathSeg]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match (seg, cur) {
            (PathSeg::Key(k), Value::Map(m)) => m.get(k)?,
            (PathSeg::Index(i), Value::Seq(s)) => s.elems().nth(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

pub fn run_unset(a: &UnsetArgs, _g: &GlobalArgs) -> Result<i32> {
    let path = common::parse_tree_path(&a.path)?;
    change("unset", &a.file, &a.ids, &a.types, |root| {
        if unset_in(root, &path) {
            Ok(true)
        } else if a.idempotent {
            Ok(false)
        } else {
            Err(anyhow!("{}: path {} not found", a.file.display(), a.path))
        }
    })
}
