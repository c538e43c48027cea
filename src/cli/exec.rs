//! `ksec exec-env FILE CMD` and `ksec exec-file FILE CMD`, as in sops: run
//! `/bin/sh -c CMD` with the decrypted values in its environment, or with
//! `{}` naming the plaintext. exec-file streams it through a FIFO (nothing
//! on disk); `--no-fifo` uses a 0600 file in a private folder instead,
//! removed on every path out (see `buffer`). The exit code is the command's.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{Context, Result, anyhow};

use super::buffer::{self, Buffer, Content};
use super::common::{self, GlobalArgs, IdentityArgs, TypeArgs, usage};
use ksec::ops::{self, OpenOptions, OpenedFile};
use ksec::sops::store;

/// What both commands share.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// The encrypted file
    pub file: PathBuf,
    /// The command, run by /bin/sh -c
    pub command: String,
    /// Run the command as this user (needs the privilege to switch)
    #[arg(long)]
    pub user: Option<String>,
    /// Run even if the MAC does not verify (dangerous)
    #[arg(long)]
    pub ignore_mac: bool,
    #[command(flatten)]
    pub ids: IdentityArgs,
}

#[derive(clap::Args, Debug)]
pub struct EnvArgs {
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Only the decrypted values: do not pass on ksec's own environment
    #[arg(long)]
    pub pristine: bool,
    /// Replace ksec by the command instead of running it as a child
    #[arg(long)]
    pub same_process: bool,
    #[arg(long)]
    pub input_type: Option<ksec::sops::Format>,
}

#[derive(clap::Args, Debug)]
pub struct FileArgs {
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Use a regular 0600 file instead of a FIFO (for programs that seek or read twice)
    #[arg(long)]
    pub no_fifo: bool,
    /// The plaintext file's name (its extension may matter to the command)
    #[arg(long, default_value = "tmp-file")]
    pub filename: String,
    #[command(flatten)]
    pub types: TypeArgs,
}

fn open(a: &ExecArgs, types: &TypeArgs) -> Result<OpenedFile> {
    let name = a.file.display().to_string();
    let bytes = ops::read(&a.file).with_context(|| format!("cannot read {name}"))?;
    let ring = common::keyring(&a.ids, true)?;
    let opts = OpenOptions {
        ignore_mac: a.ignore_mac,
    };
    let f = ops::open(&bytes, types.input(&a.file), &ring, opts).with_context(|| name.clone())?;
    for w in &f.warnings {
        eprintln!("ksec: {name}: {w}");
    }
    Ok(f)
}

/// `/bin/sh -c CMD`, as the `--user` if one is given.
fn shell(command: &str, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(command);
    if let Some((uid, gid)) = user {
        c.gid(gid).uid(uid);
    }
    c
}

/// The uid and gid of a user name (or number).
fn lookup_user(name: &str) -> Result<(u32, u32)> {
    let c = std::ffi::CString::new(name).map_err(|_| usage("invalid --user"))?;
    // getpwnam is not thread-safe; the CLI calls it once, before any thread.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(usage(format!("--user {name}: no such user")));
    }
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// The command's exit code (128 + signal when it was killed).
fn code(s: ExitStatus) -> i32 {
    s.code().or(s.signal().map(|n| 128 + n)).unwrap_or(1)
}

pub fn run_env(a: &EnvArgs, _g: &GlobalArgs) -> Result<i32> {
    let types = TypeArgs {
        input_type: a.input_type,
        ..Default::default()
    };
    let f = open(&a.exec, &types)?;
    let first = f.docs.0.first().ok_or_else(|| anyhow!("empty file"))?;
    let vars = ops::exec::env_vars(first).with_context(|| a.exec.file.display().to_string())?;
    let user = a.exec.user.as_deref().map(lookup_user).transpose()?;
    let mut c = shell(&a.exec.command, user);
    if a.pristine {
        c.env_clear();
    }
    for (k, v) in &vars {
        c.env(
            k,
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(v),
        );
    }
    drop(f);
    if a.same_process {
        let e = c.exec();
        return Err(anyhow!("cannot run the command: {e}"));
    }
    let status = c.status().context("cannot run the command")?;
    Ok(code(status))
}

pub fn run_file(a: &FileArgs, _g: &GlobalArgs) -> Result<i32> {
    let f = open(&a.exec, &a.types)?;
    let format = a.types.input(&a.exec.file);
    let out_format = a.types.output(&a.exec.file, format);
    let plain = zeroize::Zeroizing::new(
        store::emit_plain(out_format, &f.docs, a.types.indent)
            .with_context(|| a.exec.file.display().to_string())?,
    );
    drop(f);
    let user = a.exec.user.as_deref().map(lookup_user).transpose()?;
    let content = if a.no_fifo {
        Content::File(&plain)
    } else {
        Content::Fifo
    };
    // Another user cannot enter the owner's $XDG_RUNTIME_DIR: use a shared tmpfs.
    let base = match user {
        Some(_) => common::shared_tmp_base(),
        None => common::private_tmp_base(),
    };
    let buf = Buffer::new("exec", &a.filename, content, &base)?;
    if let Some((uid, gid)) = user {
        buf.chown(uid, gid)?;
    }
    let path = buf.path.to_string_lossy().into_owned();
    let mut child = shell(&ops::exec::substitute(&a.exec.command, &path), user)
        .spawn()
        .context("cannot run the command")?;
    buffer::set_child(Some(child.id()));
    let writer = (!a.no_fifo).then(|| feed_fifo(buf.path.clone(), plain.clone()));
    let status = child.wait();
    buffer::set_child(None);
    if let Some(w) = writer {
        release_fifo(&buf.path, w);
    }
    drop(buf);
    Ok(code(status?))
}

/// Writes the plaintext into the FIFO once a reader opens it.
fn feed_fifo(path: PathBuf, plain: zeroize::Zeroizing<Vec<u8>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
            // EPIPE: the command stopped reading early; nothing to report.
            let _ = f.write_all(&plain);
        }
    })
}

/// A writer still waiting for (or blocked on) a reader after the command
/// exited is released by reading the FIFO ourselves, then joined.
fn release_fifo(path: &Path, writer: std::thread::JoinHandle<()>) {
    use std::os::unix::fs::OpenOptionsExt;
    if !writer.is_finished()
        && let Ok(mut r) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    {
        let mut sink = zeroize::Zeroizing::new(vec![0u8; 64 * 1024]);
        while !writer.is_finished() {
            match r.read(&mut sink) {
                Ok(n) if n > 0 => {}
                Ok(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
    }
    let _ = writer.join();
}
