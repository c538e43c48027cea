//! Crash-safe file writes: a temp file in the same folder, 0600, fsync, rename.
//! A reader (or a crash) only ever sees the old or the new complete file.

use std::io::Write;
use std::path::Path;

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, true)
}

/// Like [`write_atomic`], but the result is 0600 even if the file it
/// replaces was readable by others: for plaintext (`decrypt --output`).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, false)
}

fn write(path: &Path, bytes: &[u8], keep_mode: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ksec-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // tempfile creates 0600; keep a looser existing mode only if the target had one.
    if let Some(meta) = std::fs::metadata(path).ok().filter(|_| keep_mode) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode & 0o666))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
