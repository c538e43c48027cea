//! Shell completions and man pages, generated from the clap definition.

use std::path::PathBuf;

use anyhow::Result;
use clap::CommandFactory;

#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Directory for ksec.1 and ksec-<command>.1
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

pub fn run_completions(a: &CompletionArgs) -> Result<i32> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "ksec", &mut std::io::stdout());
    Ok(0)
}

pub fn run_man(a: &ManArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir)?;
    clap_mangen::generate_to(super::Cli::command(), &a.dir)?;
    Ok(0)
}
