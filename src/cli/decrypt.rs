//! `ksec decrypt`: MAC verified, `--extract` a subtree, stdout or in place.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::{self, GlobalArgs, IdentityArgs, NameArgs, OutputFileArgs, TypeArgs, usage};
use ksec::ops::{self, OpenOptions};
use ksec::sops::store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The encrypted file (none or '-': stdin, with --input-type or --filename-override)
    pub file: Option<PathBuf>,
    /// Replace the file with its plaintext (crash-safe)
    #[arg(short = 'i', long = "in-place", conflicts_with = "output")]
    pub in_place: bool,
    /// Print only this subtree, e.g. '["data"]["password"]'
    #[arg(long)]
    pub extract: Option<String>,
    /// Keep the sops metadata (key groups, MAC) in the plaintext output
    #[arg(short = 's', long = "show-master-keys", conflicts_with = "extract")]
    pub show_master_keys: bool,
    #[command(flatten)]
    pub out: OutputFileArgs,
    #[command(flatten)]
    pub name: NameArgs,
    /// Decrypt even if the MAC does not verify (dangerous; says so loudly)
    #[arg(long)]
    pub ignore_mac: bool,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    let file = a.file.clone().unwrap_or_else(|| PathBuf::from("-"));
    if a.in_place && common::is_stdin(&file) {
        return Err(usage("-i/--in-place needs a file, not stdin"));
    }
    let name = file.display().to_string();
    let bytes = ops::read(&file).with_context(|| format!("cannot read {name}"))?;
    let format = a.types.input(a.name.name_for(&file));
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
                "{name}: data key opened by {} (group {})",
                o.label(),
                o.group
            );
        }
    }
    let out_format = a.types.output(a.name.name_for(&file), format);
    let out = match &a.extract {
        Some(p) => store::extract(
            &f.docs,
            &common::parse_tree_path(p)?,
            out_format,
            a.types.indent,
        )?,
        None if a.show_master_keys => {
            store::emit_encrypted(out_format, &f.docs, &f.meta, a.types.indent)
                .map_err(ksec::ops::OpError::from)
                .with_context(|| name.clone())?
        }
        None => {
            store::emit_plain(out_format, &f.docs, a.types.indent).with_context(|| name.clone())?
        }
    };
    if a.in_place {
        ksec::fsio::write_atomic(&file, &out).with_context(|| format!("cannot write {name}"))?;
    } else {
        a.out.emit(&out, true)?;
    }
    Ok(0)
}
