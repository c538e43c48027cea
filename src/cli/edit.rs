//! `ksec edit`: decrypt into a private 0600 buffer (tmpfs when available,
//! see `buffer`), run $EDITOR, re-encrypt with the same data key.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::buffer::{self, Buffer, Content};
use super::common::{self, GlobalArgs, IdentityArgs, KeyArgs, TypeArgs};
use ksec::ops::{self, OpenOptions};
use ksec::recipients;
use ksec::sops::Format;
use ksec::sops::store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The encrypted file (created if it does not exist)
    pub file: PathBuf,
    #[arg(long)]
    pub ignore_mac: bool,
    /// Show the sops metadata (key groups, MAC) in the editor; changes to it are ignored
    #[arg(short = 's', long = "show-master-keys")]
    pub show_master_keys: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

fn run_editor(path: &Path) -> Result<()> {
    let editor = std::env::var("SOPS_EDITOR")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("ksec-editor")
        .arg(path)
        .spawn()
        .with_context(|| format!("cannot start the editor {editor:?}"))?;
    buffer::set_child(Some(child.id()));
    let status = child.wait()?;
    buffer::set_child(None);
    if !status.success() {
        bail!("the editor exited with {status}; the file was not changed");
    }
    Ok(())
}

fn template(format: Format) -> &'static [u8] {
    match format {
        Format::Yaml => b"apiVersion: v1\nkind: Secret\nmetadata:\n    name: example\n    namespace: default\ntype: Opaque\nstringData:\n    key: value\n",
        Format::Json => b"{\n\t\"key\": \"value\"\n}\n",
        Format::Dotenv => b"KEY=value\n",
        Format::Ini => b"[section]\nkey = value\n",
        Format::Binary => b"",
    }
}

/// The edited documents; with `--show-master-keys` the metadata shown is
/// dropped (the file's own is kept), as sops does.
fn load_edited(
    format: Format,
    edited: &[u8],
    with_meta: bool,
) -> Result<ksec::sops::Documents, store::StoreError> {
    if with_meta && let Ok((docs, _)) = store::load_encrypted(format, edited) {
        return Ok(docs);
    }
    store::load_plain(format, edited)
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    let name = a.file.display().to_string();
    let format = a.types.input(&a.file);
    let ext = a
        .file
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let exists = a.file.exists();
    let ring = common::keyring(&a.ids, exists)?;
    let mut opened = if exists {
        let bytes = ops::read(&a.file).with_context(|| format!("cannot read {name}"))?;
        Some(
            ops::open(
                &bytes,
                format,
                &ring,
                OpenOptions {
                    ignore_mac: a.ignore_mac,
                },
            )
            .with_context(|| name.clone())?,
        )
    } else {
        None
    };
    let original = match &opened {
        Some(f) if a.show_master_keys => {
            store::emit_encrypted(format, &f.docs, &f.meta, a.types.indent)?
        }
        Some(f) => store::emit_plain(format, &f.docs, a.types.indent)?,
        None => template(format).to_vec(),
    };
    let original = zeroize::Zeroizing::new(original);
    let buf = Buffer::new(
        "edit",
        &format!("secret{ext}"),
        Content::File(&original),
        &common::private_tmp_base(),
    )?;
    loop {
        run_editor(&buf.path)?;
        let edited = zeroize::Zeroizing::new(std::fs::read(&buf.path)?);
        if exists && edited.as_slice() == original.as_slice() {
            if !g.quiet {
                eprintln!("{name}: no changes");
            }
            return Ok(0);
        }
        let docs = match load_edited(format, &edited, a.show_master_keys) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("ksec: {name}: {e}");
                if std::io::stdin().is_terminal() {
                    eprint!(
                        "Press Enter to return to the editor, or Ctrl-C to abandon the change: "
                    );
                    let mut s = String::new();
                    std::io::stdin().read_line(&mut s)?;
                    continue;
                }
                bail!("{name}: the edited file is invalid; nothing was written");
            }
        };
        let out = match opened.as_mut() {
            Some(f) => {
                f.docs = docs;
                ops::reseal(f, format, a.types.indent)?
            }
            None => {
                let plan = recipients::plan_for(&a.file, &docs, &a.keys.overrides()?)?;
                let sealed = ops::encrypt(&edited, format, &plan, &ring)?;
                for (doc, kp) in &sealed.dropped {
                    eprintln!(
                        "ksec: {name}: document {doc}: removed {kp} (it holds the Secret's values in clear text)"
                    );
                }
                sealed.bytes
            }
        };
        drop(buf);
        ksec::fsio::write_atomic(&a.file, &out).with_context(|| format!("cannot write {name}"))?;
        return Ok(0);
    }
}
