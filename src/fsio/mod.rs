//! Crash-safe file writes: a temp file in the target's folder, 0600 while
//! it is written, fsync, rename, then the target's old mode. A reader (or a
//! crash) only ever sees the old or the new complete file.
//!
//! Through a symlink the link's target is rewritten (as sops does), never
//! the link replaced. Refused: a file with other hard links (a rename would
//! leave the other names with the old content) and a file the user may not
//! write (no write bit at all counts too, also for root: it says "do not
//! rewrite me", and sops refuses it). The temp file is removed on
//! SIGINT/SIGTERM/SIGHUP (`signals`); one left by SIGKILL is removed by the
//! next write in that folder (its name carries the dead writer's pid).

pub mod signals;
pub mod walk;

use std::io::{Error, ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

const TMP_PREFIX: &str = ".ksec-";
const TMP_SUFFIX: &str = ".tmp";
/// Symlink hops before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Writes `bytes` to `path` (or the file its symlinks lead to) atomically;
/// an existing file keeps its mode.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, true)
}

/// Like [`write_atomic`], but the result is 0600 even if the file it
/// replaces was readable by others: for plaintext (`decrypt --output`).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, false)
}

fn write(path: &Path, bytes: &[u8], keep_mode: bool) -> std::io::Result<()> {
    let target = resolve_links(path)?;
    let mode = check_target(&target)?.filter(|_| keep_mode);
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    reap_stale(&dir);
    let mut tmp = TempFile::create(&dir)?;
    tmp.file.write_all(bytes)?;
    tmp.file.sync_all()?;
    std::fs::rename(&tmp.path, &target)?;
    // Renamed: from here on the path is the target's, never to be removed.
    tmp.disarm();
    // The mode after the rename: a temp file is never looser than 0600, and
    // a crash here leaves the target 0600, the safe way round.
    if let Some(m) = mode {
        tmp.file
            .set_permissions(std::fs::Permissions::from_mode(m))?;
    }
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `.ksec-<pid>-<random>.tmp`, created 0600 with O_EXCL; guarded against
/// signals from before it exists, removed on drop unless disarmed.
struct TempFile {
    path: PathBuf,
    file: std::fs::File,
    guard: Option<signals::Guard>,
    armed: bool,
}

impl TempFile {
    fn create(dir: &Path) -> std::io::Result<TempFile> {
        use std::os::unix::fs::OpenOptionsExt;
        for _ in 0..16 {
            let path = dir.join(format!(
                "{TMP_PREFIX}{}-{}{TMP_SUFFIX}",
                std::process::id(),
                random_tag()
            ));
            // Registered first: a signal between open and register would leave it.
            let guard = signals::guard_file(&path)?;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        guard: Some(guard),
                        armed: true,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::other("cannot create a unique temporary file"))
    }

    /// Renamed into place: no longer ours to remove.
    fn disarm(&mut self) {
        self.guard.take();
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub fn random_tag() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..10)
        .map(|_| {
            let n = r.gen_range(0..36u32);
            char::from_digit(n, 36).unwrap_or('x')
        })
        .collect()
}

/// The file a path finally names: symlinks followed (relative ones from
/// their own folder), a dangling link's target included.
fn resolve_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let t = std::fs::read_link(&p)?;
                p = match p.parent() {
                    Some(d) if t.is_relative() => d.join(t),
                    _ => t,
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e),
        }
    }
    Err(Error::other(format!(
        "more than {MAX_LINKS} symbolic links to follow"
    )))
}

/// Refuses what a rename cannot rewrite faithfully; the mode to keep.
fn check_target(target: &Path) -> std::io::Result<Option<u32>> {
    let m = match std::fs::metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !m.is_file() {
        return Err(Error::other("not a regular file"));
    }
    if m.nlink() > 1 {
        return Err(Error::other(format!(
            "{} has {} hard links: replacing it would leave the other names with the old content; \
             break the link (cp it to a new file) first",
            target.display(),
            m.nlink()
        )));
    }
    let mode = m.permissions().mode() & 0o7777;
    if mode & 0o222 == 0 || !writable(target) {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} is read-only (mode {:04o}); make it writable (chmod u+w) to rewrite it",
                target.display(),
                mode
            ),
        ));
    }
    Ok(Some(mode & 0o777))
}

fn writable(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Removes our temp files in `dir` whose writer is gone (SIGKILL, power
/// loss): name `.ksec-<pid>-*.tmp`, owned by us, and no such process.
fn reap_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let uid = unsafe { libc::geteuid() };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = stale_pid(&name.to_string_lossy()) else {
            continue;
        };
        let ours = e.metadata().is_ok_and(|m| m.is_file() && m.uid() == uid);
        if ours && !alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The pid in a temp file name of ours, `.ksec-<pid>-<random>.tmp`.
fn stale_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(TMP_PREFIX)?.strip_suffix(TMP_SUFFIX)?;
    let (pid, random) = rest.split_once('-')?;
    if random.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

/// kill(pid, 0) fails with ESRCH only when no such process exists.
pub fn alive(pid: i32) -> bool {
    let ok = unsafe { libc::kill(pid, 0) } == 0;
    ok || Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_pid_named_temp_files_are_stale_candidates() {
        assert_eq!(stale_pid(".ksec-123-abcdef.tmp"), Some(123));
        assert_eq!(stale_pid(".ksec-abcdef.tmp"), None);
        assert_eq!(stale_pid(".ksec-12x-abc.tmp"), None);
        assert_eq!(stale_pid(".ksec-123-abc.yaml"), None);
        assert_eq!(stale_pid("ksec-123-abc.tmp"), None);
    }
}
