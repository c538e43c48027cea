//! `ksec check [PATH…] | --staged`: the pre-commit guard. Exit 0 clean,
//! 1 findings, 2 tool error (ripgrep's convention), whatever the output format.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::common::{self, GlobalArgs, IdentityArgs, OutputFormat};
use ksec::guard::config::FsPolicy;
use ksec::guard::{self, Blob, Finding, GuardConfig, Options, Source, git, report};
use ksec::keys::KeyRing;

/// Other files a check reads (a kustomization's env file) stop at this size.
const WALK_MAX_BYTES: u64 = 16 << 20;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub report: super::common::ReportArgs,
    /// Files and directories to check (directories are walked; .git is skipped)
    #[arg(conflicts_with = "staged")]
    pub paths: Vec<PathBuf>,
    /// Check the staged index blobs (what `git commit` would record), not the working tree
    #[arg(long)]
    pub staged: bool,
    /// Also decrypt every value and check the MAC (needs keys; without them: warning "MAC not verified")
    #[arg(long)]
    pub verify: bool,
    /// Guard configuration (default: .ksec.yaml found upward from the current folder or in the repository root)
    #[arg(long = "guard-config", value_name = "FILE")]
    pub guard_config: Option<PathBuf>,
    /// Do not apply the .sops.yaml / recipients/ path policy
    #[arg(long)]
    pub no_path_policy: bool,
    /// Walk files that .gitignore / .git/info/exclude leave out too (named files are always checked)
    #[arg(long)]
    pub no_ignore: bool,
    /// Larger files are not judged and block with a `not-judged` finding (fail closed)
    #[arg(long, value_name = "BYTES", default_value_t = guard::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
    #[command(flatten)]
    pub ids: IdentityArgs,
}

/// Reads other files from the file system, by the path as given.
struct FsSource;

impl Source for FsSource {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let p = Path::new(path);
        let meta = std::fs::metadata(p).ok()?;
        if !meta.is_file() || meta.len() > WALK_MAX_BYTES {
            return None;
        }
        std::fs::read(p).ok()
    }
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    match run_inner(a, g) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("ksec: error: {e:#}");
            // CI parses stdout: a tool error is still a JSON document there.
            if g.output != OutputFormat::Text {
                common::print_json(&serde_json::json!({"error": format!("{e:#}"), "exit_code": 2}));
            }
            Ok(2)
        }
    }
}

fn run_inner(a: &Args, g: &GlobalArgs) -> Result<i32> {
    let ring = if a.verify {
        Some(match common::keyring(&a.ids, true) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ksec: warning: no keys for --verify ({e:#}); MACs will not be verified");
                KeyRing::new()
            }
        })
    } else {
        None
    };
    let (blobs, findings) = if a.staged {
        let cwd = std::env::current_dir().context("current folder")?;
        let repo = git::open(&cwd)?;
        let root = git::workdir(&repo).unwrap_or(cwd);
        let cfg = load_config(a, &root)?;
        let (blobs, src) = git::staged(&repo)?;
        let policy = build_policy(a, &cfg, &blobs, |p| root.join(p))?;
        let opts = Options {
            config: cfg,
            verify: ring.as_ref(),
            policy: policy.as_ref().map(|p| p as &dyn guard::PathPolicy),
            max_file_size: a.max_file_size,
        };
        let f = guard::check_blobs(&blobs, &src, &opts);
        (blobs.len(), f)
    } else {
        if a.paths.is_empty() {
            return Err(common::usage(
                "give files or directories to check, or --staged",
            ));
        }
        let cwd = std::env::current_dir().context("current folder")?;
        let cfg = load_config(a, &cwd)?;
        let (blobs, oversize) = read_paths(&a.paths, &cfg, a.no_ignore, a.max_file_size)?;
        let policy = build_policy(a, &cfg, &blobs, |p| PathBuf::from(p))?;
        let opts = Options {
            config: cfg,
            verify: ring.as_ref(),
            policy: policy.as_ref().map(|p| p as &dyn guard::PathPolicy),
            max_file_size: a.max_file_size,
        };
        let mut f = guard::check_blobs(&blobs, &FsSource, &opts);
        f.extend(
            oversize
                .iter()
                .filter(|(path, _)| !opts.config.is_excluded(path))
                .map(|(path, size)| guard::not_judged(path, *size, a.max_file_size)),
        );
        guard::finish(&mut f);
        (blobs.len() + oversize.len(), f)
    };
    print(&findings, blobs, g);
    Ok(guard::exit_code(&findings))
}

pub(super) fn load_config(a: &Args, start: &Path) -> Result<GuardConfig> {
    Ok(match &a.guard_config {
        Some(p) => GuardConfig::load(p)?,
        None => GuardConfig::discover(start)?,
    })
}

fn build_policy(
    a: &Args,
    cfg: &GuardConfig,
    blobs: &[Blob],
    fs_path: impl Fn(&str) -> PathBuf,
) -> Result<Option<FsPolicy>> {
    if a.no_path_policy || !cfg.path_policy {
        return Ok(None);
    }
    let files: Vec<(String, PathBuf)> = blobs
        .iter()
        .filter(|b| !cfg.is_excluded(&b.path))
        .map(|b| (b.path.clone(), fs_path(&b.path)))
        .collect();
    Ok(Some(FsPolicy::build(&files)?))
}

/// Expands the arguments: files as given, directories walked (no .git, no
/// symlinked folders, and — unless `no_ignore` — nothing git ignores: a
/// gitignored `*.dec.yaml` is the user's own decrypted output and can never
/// reach a commit, so flagging it is noise). Files over `max_size` are not
/// read: they come back apart, with their size, to be reported unjudged.
fn read_paths(
    paths: &[PathBuf],
    cfg: &GuardConfig,
    no_ignore: bool,
    max_size: u64,
) -> Result<(Vec<Blob>, Vec<(String, u64)>)> {
    let mut out = Vec::new();
    let mut oversize = Vec::new();
    let mut seen = HashMap::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        let mut files = Vec::new();
        if meta.is_dir() {
            let policy = ksec::fsio::walk::Policy::Everything {
                gitignore: !no_ignore,
            };
            let walked = ksec::fsio::walk::walk(std::slice::from_ref(p), policy)?;
            for f in walked.files {
                files.push((slash(&f.path), f.path, true));
            }
        } else {
            files.push((slash(p), p.clone(), false));
        }
        for (name, path, walked) in files {
            if (walked && cfg.is_excluded(&name)) || seen.insert(name.clone(), ()).is_some() {
                continue;
            }
            let size = std::fs::metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .len();
            if size > max_size {
                oversize.push((name, size));
                continue;
            }
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            out.push(Blob {
                path: name,
                bytes,
                symlink: false,
            });
        }
    }
    Ok((out, oversize))
}

fn slash(p: &Path) -> String {
    let s = p.to_string_lossy().replace('\\', "/");
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

pub(super) fn print(findings: &[Finding], files: usize, g: &GlobalArgs) {
    print_as("ksec check", "file(s)", findings, files, g)
}

/// [`print`] for another command's summary line (`ksec scan: N blob(s)`).
pub(super) fn print_as(
    command: &str,
    unit: &str,
    findings: &[Finding],
    files: usize,
    g: &GlobalArgs,
) {
    match g.output {
        OutputFormat::Json => common::print_json(&report::json(findings, files)),
        OutputFormat::Sarif => common::print_json(&report::sarif(findings)),
        OutputFormat::Text => {
            let t = report::text_as(command, unit, findings, files, g.verbose);
            if g.quiet {
                // Only the finding lines, no summary.
                let mut lines: Vec<&str> = t.lines().collect();
                lines.pop();
                for l in lines {
                    println!("{l}");
                }
            } else {
                print!("{t}");
            }
        }
    }
}
