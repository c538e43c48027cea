//! `ksec approve`: approve one content hash of one Secret in an environment
//! with `rotation: {approval: required}` (a SecretApproval, created as you:
//! RBAC decides whether you may).

use anyhow::Result;

use super::apply::runtime;
use super::common::{ConnectArgs, GlobalArgs, usage};
use ksec::cluster;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Namespace of the Secret
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The Secret's name
    pub secret: String,
    /// The content hash `ksec apply` or the controller printed as awaiting approval
    #[arg(long)]
    pub hash: String,
    /// Why (ticket, change number); recorded on the approval
    #[arg(long)]
    pub reason: Option<String>,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    let rt = runtime()?;
    let (client, default_ns) = rt
        .block_on(cluster::connect(&a.connect.options()))
        .map_err(|e| usage(e.to_string()))?;
    let ns = a.namespace.clone().unwrap_or(default_ns);
    let name = rt.block_on(cluster::approval::approve(
        &client,
        &ns,
        &a.secret,
        &a.hash,
        a.reason.clone(),
    ))?;
    if !g.quiet {
        println!(
            "secretapproval.ksec.io/{name} created (Secret {ns}/{}, content hash {})",
            a.secret, a.hash
        );
    }
    Ok(0)
}
