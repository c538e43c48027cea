//! `ksec edit`: decrypt into a private 0600 buffer (tmpfs when available),
//! run $EDITOR, re-encrypt with the same data key. The buffer is removed on
//! every path out, including SIGINT/SIGTERM/SIGHUP.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::common::{self, GlobalArgs, IdentityArgs, KeyArgs, TypeArgs};
use ksec::fsio::signals;
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
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

/// Owns the buffer; removes it (and its folder) when dropped.
struct Buffer {
    // Unregistered after `drop` has removed the files.
    _guards: [signals::Guard; 2],
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Buffer {
    fn new(ext: &str, content: &[u8]) -> Result<Buffer> {
        use std::os::unix::fs::OpenOptionsExt;
        let base = common::private_tmp_base();
        reap_orphans(&base);
        // Created 0700 in one step (tempfile's default follows the umask).
        let dir = {
            use std::os::unix::fs::PermissionsExt;
            tempfile::Builder::new()
                .prefix(&format!("ksec-edit-{}-", std::process::id()))
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(&base)?
        };
        let path = dir.path().join(format!("secret{ext}"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        std::io::Write::write_all(&mut f, content)?;
        f.sync_all()?;
        let guards = [signals::guard_dir(dir.path())?, signals::guard_file(&path)?];
        Ok(Buffer {
            _guards: guards,
            dir: Some(dir),
            path,
        })
    }
}

/// Removes buffers of `ksec edit` runs that were SIGKILLed (the one signal
/// that cannot be handled): their folder names carry the dead process's pid.
fn reap_orphans(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("ksec-edit-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !ksec::fsio::alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
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
    signals::set_child(child.id() as i32);
    let status = child.wait()?;
    signals::set_child(0);
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
        Some(f) => store::emit_plain(format, &f.docs, a.types.indent)?,
        None => template(format).to_vec(),
    };
    let original = zeroize::Zeroizing::new(original);
    let buf = Buffer::new(&ext, &original)?;
    loop {
        run_editor(&buf.path)?;
        let edited = zeroize::Zeroizing::new(std::fs::read(&buf.path)?);
        if exists && edited.as_slice() == original.as_slice() {
            if !g.quiet {
                eprintln!("{name}: no changes");
            }
            return Ok(0);
        }
        let docs = match store::load_plain(format, &edited) {
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
