//! `ksec decrypt`: MAC verified, `--extract` a subtree, stdout or in place.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::common::{self, GlobalArgs, IdentityArgs, PathSeg, TypeArgs, usage};
use ksec::ops::{self, OpenOptions};
use ksec::sops::store;
use ksec::sops::{Documents, Format, Map, Value};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The encrypted file ('-' for stdin, with --input-type)
    pub file: PathBuf,
    /// Replace the file with its plaintext (crash-safe)
    #[arg(short = 'i', long = "in-place", conflicts_with = "output_file")]
    pub in_place: bool,
    /// Print only this subtree, e.g. '["data"]["password"]'
    #[arg(long)]
    pub extract: Option<String>,
    /// Write the plaintext to this file (0600) instead of stdout
    #[arg(long = "output-file", value_name = "FILE")]
    pub output_file: Option<PathBuf>,
    /// Decrypt even if the MAC does not verify (dangerous; says so loudly)
    #[arg(long)]
    pub ignore_mac: bool,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    common::refuse_in_place_stdin(a.in_place, &a.file)?;
    let name = a.file.display().to_string();
    let bytes = ops::read(&a.file).with_context(|| format!("cannot read {name}"))?;
    let format = a.types.input(&a.file);
    let ring = common::keyring(&a.ids, true)?;
    let f = ops::open(
        &bytes,
        format,
        &ring,
        OpenOptions {
            ignore_mac: a.ignore_mac,
        },
    )
    .with_context(|| name.clone())?;
    for w in &f.warnings {
        eprintln!("ksec: {name}: {w}");
    }
    if g.verbose {
        for o in &f.opened {
            eprintln!(
                "{name}: data key opened by {} {} (group {})",
                o.kind, o.recipient, o.group
            );
        }
    }
    let out_format = a.types.output_type.unwrap_or(format);
    let out = match &a.extract {
        Some(p) => extract(
            &f.docs,
            &common::parse_tree_path(p)?,
            out_format,
            a.types.indent,
        )?,
        None => {
            store::emit_plain(out_format, &f.docs, a.types.indent).with_context(|| name.clone())?
        }
    };
    if a.in_place {
        ksec::fsio::write_atomic(&a.file, &out).with_context(|| format!("cannot write {name}"))?;
    } else if let Some(o) = &a.output_file {
        ksec::fsio::write_atomic(o, &out)
            .with_context(|| format!("cannot write {}", o.display()))?;
    } else {
        std::io::stdout().write_all(&out)?;
    }
    Ok(0)
}

/// sops's `--extract`: string leaves raw, maps through the store, other values as the store writes them.
fn extract(
    docs: &Documents,
    path: &[PathSeg],
    format: Format,
    indent: Option<usize>,
) -> Result<Vec<u8>> {
    let root = docs.0.first().ok_or_else(|| usage("empty file"))?;
    let mut cur = Value::Map(root.clone());
    for seg in path {
        cur = match (seg, &cur) {
            (PathSeg::Key(k), Value::Map(m)) => m.get(k).cloned(),
            (PathSeg::Index(i), Value::Seq(s)) => s.elems().nth(*i).cloned(),
            _ => None,
        }
        .ok_or_else(|| anyhow::anyhow!("--extract: component {seg:?} not found"))?;
    }
    Ok(match cur {
        Value::Str(s) => s.into_bytes(),
        Value::Bytes(b) => b,
        Value::Map(m) => store::emit_plain(format, &Documents(vec![m]), indent)?,
        other => {
            let mut m = Map::default();
            m.insert("v", other);
            let text = String::from_utf8(store::emit_plain(
                Format::Yaml,
                &Documents(vec![m]),
                indent,
            )?)?;
            match text.strip_prefix("v:") {
                Some(rest) => rest.trim().to_string().into_bytes(),
                None => bail!("cannot print that value"),
            }
        }
    })
}
