//! `ksec filestatus`: `{"encrypted": true|false}`, like sops.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::{GlobalArgs, TypeArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    pub file: PathBuf,
    #[command(flatten)]
    pub types: TypeArgs,
}

pub fn run(a: &Args, _g: &GlobalArgs) -> Result<i32> {
    let bytes =
        ksec::ops::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let enc = ksec::ops::is_encrypted(&bytes, a.types.input(&a.file))
        .with_context(|| a.file.display().to_string())?;
    println!("{}", serde_json::json!({ "encrypted": enc }));
    Ok(0)
}
