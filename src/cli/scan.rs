//! `ksec scan --history [REV-RANGE]`: the guard's rules over every blob a
//! history ever held, so a team can find what leaked before the hook.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::{self, GlobalArgs};
use ksec::guard::{self, GuardConfig, Options, git};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub report: super::common::ReportArgs,
    /// Scan the commit history (the only mode; required so the intent is explicit)
    #[arg(long)]
    pub history: bool,
    /// Commits to scan: A..B, A...B, or one revision meaning all it reaches (default HEAD)
    pub range: Option<String>,
    /// Guard configuration (default: .ksec.yaml in the repository root); its excludes apply
    #[arg(long = "guard-config", value_name = "FILE")]
    pub guard_config: Option<PathBuf>,
    /// Larger blobs are not judged and block with a `not-judged` finding (fail closed)
    #[arg(long, value_name = "BYTES", default_value_t = guard::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    match run_inner(a, g) {
        Ok(c) => Ok(c),
        Err(e) => {
            eprintln!("ksec: error: {e:#}");
            Ok(2)
        }
    }
}

fn run_inner(a: &Args, g: &GlobalArgs) -> Result<i32> {
    if !a.history {
        return Err(common::usage("ksec scan needs --history [REV-RANGE]"));
    }
    let cwd = std::env::current_dir().context("current folder")?;
    let repo = git::open(&cwd)?;
    let root = git::workdir(&repo).unwrap_or(cwd);
    let cfg = match &a.guard_config {
        Some(p) => GuardConfig::load(p)?,
        None => GuardConfig::discover(&root)?,
    };
    // Path policy follows today's configuration, which need not hold for old
    // commits, so history scans judge content only.
    let opts = Options {
        config: cfg,
        verify: None,
        policy: None,
        max_file_size: a.max_file_size,
    };
    let scan = git::scan_history(&repo, a.range.as_deref(), &opts)?;
    print_warnings(&scan.warnings);
    if !g.quiet && g.output == common::OutputFormat::Text {
        eprintln!(
            "ksec scan: {} commit(s), {} distinct blob(s)",
            scan.commits, scan.blobs
        );
    }
    super::check::print_as("ksec scan", "blob(s)", &scan.findings, scan.blobs, g);
    Ok(guard::exit_code(&scan.findings))
}

/// Objects a partial clone lacks and clipped shallow ranges, on stderr
/// (a long list is cut: a filtered clone can lack thousands of blobs).
fn print_warnings(warnings: &[String]) {
    const MAX: usize = 50;
    for w in warnings.iter().take(MAX) {
        eprintln!("ksec: warning: {w}");
    }
    if warnings.len() > MAX {
        eprintln!(
            "ksec: warning: … and {} more object(s) not in this clone",
            warnings.len() - MAX
        );
    }
}
