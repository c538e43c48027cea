//! `ksec hook install`: a plain `.git/hooks/pre-commit` running
//! `ksec check --staged`. A hook ksec did not write is never replaced
//! silently: `--force` moves it aside to `pre-commit.ksec-backup`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::common::{self, GlobalArgs};
use ksec::guard::git;

/// Marks a hook as ksec's own, so re-installing updates it.
const MARKER: &str = "ksec-guard-hook";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write .git/hooks/pre-commit (refuses to replace a foreign hook without --force)
    Install {
        /// Replace an existing hook ksec did not write (it is kept as pre-commit.ksec-backup)
        #[arg(long)]
        force: bool,
        /// The ksec binary the hook runs (default: this one, falling back to `ksec` on PATH)
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
    },
}

pub fn hook_script(binary: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # {MARKER}: written by `ksec hook install`; blocks plaintext Kubernetes Secrets.\n\
         # Checks the staged blobs (not the working tree). Escape hatches: docs/guard.md.\n\
         KSEC='{bin}'\n\
         if [ ! -x \"$KSEC\" ]; then KSEC=ksec; fi\n\
         exec \"$KSEC\" check --staged\n",
        bin = binary.replace('\'', "")
    )
}

/// Where git runs hooks from: `core.hooksPath` when set (husky, lefthook and
/// shared hook folders set it; a hook in .git/hooks would then never run),
/// relative to the working tree like git resolves it, else `.git/hooks`.
fn hooks_dir(repo: &gix::Repository) -> PathBuf {
    let configured = repo
        .config_snapshot()
        .string("core.hooksPath")
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty());
    match configured {
        Some(v) => {
            let v = match v.strip_prefix("~/") {
                Some(rest) => std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(rest))
                    .unwrap_or_else(|| PathBuf::from(&v)),
                None => PathBuf::from(&v),
            };
            if v.is_absolute() {
                v
            } else {
                let base = git::workdir(repo).unwrap_or_else(|| repo.common_dir().to_path_buf());
                base.join(v)
            }
        }
        None => repo.common_dir().join("hooks"),
    }
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    match &a.action {
        Action::Install { force, binary } => {
            let cwd = std::env::current_dir().context("current folder")?;
            let repo = git::open(&cwd)?;
            let hooks = hooks_dir(&repo);
            std::fs::create_dir_all(&hooks)
                .with_context(|| format!("cannot create {}", hooks.display()))?;
            let path = hooks.join("pre-commit");
            let bin = match binary {
                Some(b) => b.clone(),
                None => std::env::current_exe().unwrap_or_else(|_| PathBuf::from("ksec")),
            };
            let mut status = "installed";
            if let Ok(existing) = std::fs::read(&path) {
                let ours = String::from_utf8_lossy(&existing).contains(MARKER);
                if ours {
                    status = "updated";
                } else if *force {
                    let backup = hooks.join("pre-commit.ksec-backup");
                    std::fs::rename(&path, &backup).with_context(|| {
                        format!("cannot move the old hook to {}", backup.display())
                    })?;
                    eprintln!("ksec: the previous hook was moved to {}", backup.display());
                    status = "installed (previous hook backed up)";
                } else {
                    return Err(common::usage(format!(
                        "{} exists and was not written by ksec; add `ksec check --staged` to it, or use --force (it is kept as pre-commit.ksec-backup)",
                        path.display()
                    )));
                }
            }
            let script = hook_script(&bin.to_string_lossy());
            ksec::fsio::write_atomic(&path, script.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("cannot make {} executable", path.display()))?;
            }
            if !path.is_file() {
                bail!("{} was not written", path.display());
            }
            if !g.quiet {
                println!("ksec: pre-commit hook {status}: {}", path.display());
            }
            Ok(0)
        }
    }
}
