//! `ksec controller`: the in-cluster controller (`ksec::controller`);
//! `ksec controller crd` prints its CustomResourceDefinition.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;

use ksec::controller::sources::watched::WatchConfig;

use super::apply::{parse_duration, runtime};
use super::common::{self, ConnectArgs, GlobalArgs, IdentityArgs, ScopeArgs, usage};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub sub: Option<Sub>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Print the CustomResourceDefinitions: EncryptedSecret and SecretApproval (YAML)
    Crd,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Watch and write only this namespace (repeatable or comma-separated; default: cluster-wide within --env)
    #[arg(short = 'n', long = "namespace", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Address of /metrics, /healthz and /readyz
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub metrics_addr: SocketAddr,
    /// How long to wait for restarted consumers to roll out
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub rollout_timeout: Duration,
    /// Re-check every synced EncryptedSecret this often
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub resync: Duration,
    /// Read External Secrets Operator's ExternalSecrets this often and export their
    /// sync health (age, stale, failing) as metrics; 0 turns it off
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub eso_interval: Duration,
    /// Also roll the consumers of Secrets ksec does not write when their content
    /// changes: those an ExternalSecret owns and those marked ksec.io/watch=true
    /// (annotation or label); with SELECTOR, every Secret matching that label
    /// selector instead, and no other Secret is sent to the controller
    #[arg(long, value_name = "SELECTOR", num_args = 0..=1, default_missing_value = "")]
    pub watch_secrets: Option<String>,
    /// Quiet time after a watched Secret changes before its consumers roll
    /// (a burst of related changes gives one rollout)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub watch_debounce: Duration,
    /// Undo a rollout after a rotation when it fails verification
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// How often a rotation held for approval looks for its SecretApproval
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub approval_poll: Duration,
    /// Reconcile only while holding a coordination.k8s.io Lease (run two replicas safely)
    #[arg(long)]
    pub leader_elect: bool,
    /// Name of the Lease
    #[arg(long, default_value = "ksec-controller")]
    pub lease_name: String,
    /// Namespace of the Lease (default: $POD_NAMESPACE, else the first --namespace)
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// How long a leader's Lease lasts without renewal
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub git: super::controller_git::GitArgs,
}

pub fn run(a: &Args, _g: &GlobalArgs) -> Result<i32> {
    if let Some(Sub::Crd) = a.sub {
        print!("{}", ksec::controller::crd::crd_yaml());
        return Ok(0);
    }
    let r = &a.run;
    let ring = common::keyring(&r.ids, true)?;
    let leader_election = if r.leader_elect {
        let namespace = r
            .lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| r.namespaces.first().cloned())
            .ok_or_else(|| usage("--leader-elect needs --lease-namespace (or $POD_NAMESPACE)"))?;
        if r.lease_duration < Duration::from_secs(3) {
            return Err(usage("--lease-duration: at least 3s"));
        }
        Some(ksec::controller::leader::LeaseOptions {
            namespace,
            name: r.lease_name.clone(),
            identity: identity(),
            duration: r.lease_duration,
        })
    } else {
        None
    };
    // Holds a default Git cache directory until the controller stops.
    let mut git_tmp = None;
    let git = r.git.config(&r.namespaces, &mut git_tmp)?;
    let cfg = ksec::controller::Config {
        connect: r.connect.options(),
        namespaces: r.namespaces.clone(),
        env: r.scope.env.env.clone(),
        recipients_dir: r.scope.recipients.recipients_dir.clone(),
        allow_mac_only: r.scope.allow_mac_only,
        metrics_addr: r.metrics_addr,
        rollout_timeout: r.rollout_timeout,
        resync: r.resync,
        ring,
        instance: std::env::var("POD_NAME").ok(),
        leader_election,
        git,
        eso_interval: (!r.eso_interval.is_zero()).then_some(r.eso_interval),
        watch: r.watch_secrets.as_ref().map(|sel| WatchConfig {
            selector: (!sel.is_empty()).then(|| sel.clone()),
            debounce: r.watch_debounce,
            rollback: r.rollback_on_failure,
            approval_poll: r.approval_poll.max(Duration::from_secs(1)),
        }),
    };
    let rt = runtime()?;
    let res = rt.block_on(ksec::controller::run(cfg));
    // A rollout check still running on the blocking pool is abandoned, not
    // awaited: the pod's grace period is shorter than a rollout timeout.
    rt.shutdown_timeout(Duration::from_secs(2));
    res.map_err(|e| match e {
        ksec::controller::ControllerError::Config(m) => usage(m),
        other => anyhow::Error::new(other),
    })?;
    Ok(0)
}

/// This replica's name: $POD_NAME, else host name and process id.
fn identity() -> String {
    if let Ok(p) = std::env::var("POD_NAME")
        && !p.is_empty()
    {
        return p;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "ksec".into());
    format!("{host}-{}", std::process::id())
}
