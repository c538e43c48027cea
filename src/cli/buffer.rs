//! A private place for plaintext that must reach another program through
//! the file system (`ksec edit`'s editor buffer, `ksec exec-file`): a 0700
//! folder (tmpfs when available) holding one 0600 file or FIFO. It is
//! removed on every path out, including SIGINT/SIGTERM/SIGHUP (the child is
//! sent SIGTERM), and after a SIGKILL by the next run (the folder names
//! carry the owner's pid).

use std::ffi::CString;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use ksec::fsio::signals;

/// Folder prefixes of buffers (older runs' orphans are reaped by either).
const PREFIXES: &[&str] = &["ksec-edit-", "ksec-exec-"];

/// What the buffer holds: a regular file with this content, or a FIFO the
/// caller writes to (nothing is ever stored on disk).
pub enum Content<'a> {
    File(&'a [u8]),
    Fifo,
}

/// Owns the buffer; removes it (and its folder) when dropped.
pub struct Buffer {
    // Unregistered after `drop` has removed the files (fields drop in order).
    _guards: [signals::Guard; 2],
    dir: PathBuf,
    pub path: PathBuf,
}

impl Buffer {
    /// `kind` names the folder (`edit`, `exec`); `name` is the file's name
    /// in it; `base` is where (see `common::private_tmp_base`).
    pub fn new(kind: &str, name: &str, content: Content, base: &Path) -> Result<Buffer> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            bail!("invalid buffer file name {name:?}: a plain file name is needed");
        }
        reap_orphans(base);
        // Both paths are guarded before anything exists: a signal at any
        // point leaves neither the folder nor the plaintext behind.
        let dir = base.join(format!(
            "ksec-{kind}-{}-{}",
            std::process::id(),
            ksec::fsio::random_tag()
        ));
        let path = dir.join(name);
        let guards = [signals::guard_dir(&dir)?, signals::guard_file(&path)?];
        {
            use std::os::unix::fs::DirBuilderExt;
            // 0700 in one step (a later chmod would leave a window).
            std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        }
        let buf = Buffer {
            _guards: guards,
            dir,
            path,
        };
        match content {
            Content::File(bytes) => write_private(&buf.path, bytes)?,
            Content::Fifo => {
                let c = CString::new(buf.path.as_os_str().as_encoded_bytes())?;
                if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
            }
        }
        Ok(buf)
    }

    /// Hands the buffer (folder and file) to another user (`exec-file --user`).
    pub fn chown(&self, uid: u32, gid: u32) -> Result<()> {
        let dir = self.dir.as_path();
        for p in [dir, self.path.as_path()] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
        }
        Ok(())
    }
}

fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, content)?;
    f.sync_all()?;
    Ok(())
}

/// The child a signal must stop too (0: none).
pub fn set_child(pid: Option<u32>) {
    signals::set_child(pid.map_or(0, |p| p as i32));
}

/// Removes buffers of runs that were SIGKILLed (the one signal that cannot
/// be handled): their folder names carry the dead process's pid.
fn reap_orphans(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = PREFIXES.iter().find_map(|p| name.strip_prefix(p)) else {
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
        // Whole folder: an editor may leave its own files (swap, backup) in it.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
