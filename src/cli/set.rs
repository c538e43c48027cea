//! `ksec set` / `ksec unset`, as in sops: change one value, same data key,
//! new MAC. The tree logic is `Value::set_path`/`unset_path` in the library.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};

use super::common::{self, GlobalArgs, IdentityArgs, TypeArgs, usage};
use ksec::ops::{self, OpenOptions};
use ksec::sops::Value;

/// What `set` and `unset` share: the file, keys, formats and MAC override.
#[derive(clap::Args, Debug)]
pub struct ChangeArgs {
    /// Change the file even if its MAC does not verify (dangerous)
    #[arg(long)]
    pub ignore_mac: bool,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    pub file: PathBuf,
    /// Path like '["data"]["password"]'
    pub path: String,
    /// The new value as JSON ('"text"', 5, true, {"a": 1}); with --value-file, a file holding it
    pub value: Option<String>,
    /// Read the JSON value from stdin (keeps it out of the process list)
    #[arg(long, conflicts_with_all = ["value", "value_file"])]
    pub value_stdin: bool,
    /// VALUE names a file holding the JSON value (keeps it out of the process list)
    #[arg(long)]
    pub value_file: bool,
    /// Do not rewrite the file when the value is already set
    #[arg(long)]
    pub idempotent: bool,
    #[command(flatten)]
    pub change: ChangeArgs,
}

#[derive(clap::Args, Debug)]
pub struct UnsetArgs {
    pub file: PathBuf,
    pub path: String,
    /// Succeed without change when the path does not exist
    #[arg(long)]
    pub idempotent: bool,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// Opens the file, lets `f` change its first document (false: nothing to
/// write) and writes it back, in `--output-type` if given.
fn change(
    file: &PathBuf,
    a: &ChangeArgs,
    f: impl FnOnce(&mut Value) -> Result<bool>,
) -> Result<i32> {
    let name = file.display().to_string();
    let format = a.types.input(file);
    let bytes = ops::read(file).with_context(|| format!("cannot read {name}"))?;
    let ring = common::keyring(&a.ids, true)?;
    let opts = OpenOptions {
        ignore_mac: a.ignore_mac,
    };
    let mut opened = ops::open(&bytes, format, &ring, opts).with_context(|| name.clone())?;
    for w in &opened.warnings {
        eprintln!("ksec: {name}: {w}");
    }
    let mut root = Value::Map(opened.docs.0[0].clone());
    if !f(&mut root).with_context(|| name.clone())? {
        return Ok(0);
    }
    let Value::Map(m) = root else {
        return Err(anyhow!("{name}: the document root must stay a map"));
    };
    opened.docs.0[0] = m;
    let out_format = a.types.output(file, format);
    let out = ops::reseal(&mut opened, out_format, a.types.indent).with_context(|| name.clone())?;
    ksec::fsio::write_atomic(file, &out).with_context(|| format!("cannot write {name}"))?;
    Ok(0)
}

/// The JSON text of the new value: argument, `--value-file` or stdin.
fn raw_value(a: &SetArgs) -> Result<zeroize::Zeroizing<String>> {
    let given = || {
        a.value
            .clone()
            .ok_or_else(|| usage("give a VALUE, --value-stdin or --value-file FILE"))
    };
    Ok(zeroize::Zeroizing::new(if a.value_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else if a.value_file {
        let f = given()?;
        std::fs::read_to_string(&f).with_context(|| format!("cannot read {f}"))?
    } else {
        given()?
    }))
}

pub fn run_set(a: &SetArgs, _g: &GlobalArgs) -> Result<i32> {
    let path = common::parse_tree_path(&a.path)?;
    let raw = raw_value(a)?;
    let json: serde_json::Value = serde_json::from_str(raw.trim())
        .map_err(|_| usage("the value is not valid JSON (a string needs quotes: '\"text\"')"))?;
    let new = Value::from_json(&json);
    change(&a.file, &a.change, |root| {
        if a.idempotent && root.get_path(&path) == Some(&new) {
            return Ok(false);
        }
        root.set_path(&path, new)?;
        Ok(true)
    })
}

pub fn run_unset(a: &UnsetArgs, _g: &GlobalArgs) -> Result<i32> {
    let path = common::parse_tree_path(&a.path)?;
    change(&a.file, &a.change, |root| {
        if root.unset_path(&path) {
            Ok(true)
        } else if a.idempotent {
            Ok(false)
        } else {
            Err(anyhow!("path {} not found", a.path))
        }
    })
}
