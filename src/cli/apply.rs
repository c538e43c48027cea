//! `ksec apply`: decrypt in memory, server-side apply, restart what changed,
//! verify the rollout. The work is `ksec::cluster`; this file is flags and printing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::common::{self, ConnectArgs, GlobalArgs, IdentityArgs, OutputFormat, SourceArgs, usage};
use ksec::cluster::verify::Outcome;
use ksec::cluster::{self, ApplyOptions, Loaded, Report};
use ksec::recipients::Boundary;
use ksec::source::SourceError;

/// Where the cluster is and which Secrets this run may touch (shared with `ksec diff`).
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Apply non-Secret manifests too (plain or encrypted)
    #[arg(long)]
    pub all: bool,
    /// Requests in flight at once
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    #[command(flatten)]
    pub ids: IdentityArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DryRun {
    /// Apply for real
    None,
    /// The API server validates and computes the result, persists nothing
    Server,
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub report: super::common::ReportArgs,
    #[command(flatten)]
    pub input: super::common::ManifestPaths,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// --dry-run=server: show what would change (values masked), change nothing
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "server", require_equals = true)]
    pub dry_run: Option<DryRun>,
    /// How long to wait for restarted workloads to roll out (e.g. 90s, 5m)
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Undo the rollout of a workload that fails verification
    #[arg(long)]
    pub rollback_on_failure: bool,
    /// Delete Secrets ksec created earlier that are gone from PATHs (same --inventory-id)
    #[arg(long)]
    pub prune: bool,
    /// Names the source tree for --prune; runs with different ids never prune each other
    #[arg(long, default_value = "default")]
    pub inventory_id: String,
    /// Take over fields another field manager owns (SSA force)
    #[arg(long)]
    pub force_conflicts: bool,
    /// Apply only: do not restart or verify consumers
    #[arg(long)]
    pub no_restart: bool,
    /// In an environment with `rotation: {approval: required}`, wait this long
    /// (default 30m) for the SecretApprovals instead of exiting 3
    #[arg(long, value_name = "TIMEOUT", num_args = 0..=1, default_missing_value = "30m", require_equals = true, value_parser = parse_duration)]
    pub wait_approval: Option<Duration>,
}

/// Exit code of a run that changed nothing gated: some content change
/// waits for an approval (distinct from 1, a failure).
pub const EXIT_AWAITING_APPROVAL: i32 = 3;

/// `90s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s or 5m"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unit must be s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connects, reads and decrypts: everything up to the first request.
pub fn prepare(
    rt: &tokio::runtime::Runtime,
    paths: &[PathBuf],
    c: &ClusterArgs,
) -> Result<(
    kube::Client,
    Loaded,
    Option<ksec::cluster::apply::NamespaceFilter>,
)> {
    let files: Vec<PathBuf> = common::expand(paths)?.into_iter().map(|(p, _)| p).collect();
    let ring = common::keyring(&c.ids, true)?;
    let (client, default_ns) = rt
        .block_on(cluster::connect(&c.connect.options()))
        .map_err(|e| usage(e.to_string()))?;
    let opts = c.source.options(default_ns, c.all);
    let loaded = cluster::load(&files, &ring, &opts).map_err(|e| match e {
        SourceError::Config(c) => anyhow::Error::new(c),
        other => usage(other.to_string()),
    })?;
    let scope = prune_scope(&files, c)?;
    Ok((client, loaded, scope))
}

/// Prune stays inside --env and --namespace (unset: the run's namespaces).
fn prune_scope(
    files: &[PathBuf],
    c: &ClusterArgs,
) -> Result<Option<ksec::cluster::apply::NamespaceFilter>> {
    let (namespace, env) = (&c.source.namespace, &c.source.scope.env.env);
    if namespace.is_none() && env.is_none() {
        return Ok(None);
    }
    let dir = match (env, files.first()) {
        (Some(_), Some(first)) => c.source.scope.recipients.resolve(first)?,
        (Some(_), None) => c.source.scope.recipients.resolve(Path::new("."))?,
        (None, _) => None,
    };
    let boundary = Boundary::new(dir, env.clone(), namespace.iter().cloned().collect())
        .map_err(|e| usage(e.to_string()))?;
    Ok(Some(Arc::new(move |n: &str| boundary.contains(n))))
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    if !ksec::cluster::inventory::valid_id(&a.inventory_id) {
        return Err(usage(format!(
            "--inventory-id {:?}: use lowercase letters, digits and '-', at most 40",
            a.inventory_id
        )));
    }
    let rt = runtime()?;
    let (client, loaded, scope) = prepare(&rt, &a.input.paths, &a.cluster)?;
    let approval = approval_gate(&a.input.paths, &a.cluster)?;
    let mut report = rt.block_on(async {
        let opts = ApplyOptions {
            dry_run: a.dry_run == Some(DryRun::Server),
            force_conflicts: a.force_conflicts,
            restart: !a.no_restart,
            timeout: a.timeout,
            rollback_on_failure: a.rollback_on_failure,
            prune: a.prune,
            inventory_id: a.inventory_id.clone(),
            prune_scope: scope,
            concurrency: a.cluster.concurrency as usize,
            approval: Some(approval.clone()),
            ..Default::default()
        };
        cluster::apply(&client, loaded, &opts)
            .await
            .map_err(anyhow::Error::new)
    })?;
    if let (Some(limit), false) = (a.wait_approval, report.awaiting.is_empty()) {
        print_awaiting(&report, g.quiet);
        if rt.block_on(wait_for_approvals(&client, &report.awaiting, limit))? {
            // Approved: the same run again (it decrypts anew; nothing else changed).
            return run(
                &Args {
                    wait_approval: None,
                    ..a.clone()
                },
                g,
            );
        }
        eprintln!("ksec: no approval within {}s", limit.as_secs());
        report.warnings.push("approval wait timed out".into());
    }
    match g.output {
        OutputFormat::Json | OutputFormat::Sarif => {
            let mut v = serde_json::to_value(&report)?;
            v["ok"] = serde_json::Value::Bool(report.ok());
            common::print_json(&v);
        }
        OutputFormat::Text => print_text(&report, g.quiet),
    }
    Ok(if report.ok() {
        0
    } else if report.ok_apart_from_approvals() {
        EXIT_AWAITING_APPROVAL
    } else {
        1
    })
}

/// What gates rotations: `--recipients-dir` (else the `recipients/` found
/// above the first path) and the namespaces' `ksec.io/rotation-approval` label.
fn approval_gate(paths: &[PathBuf], c: &ClusterArgs) -> Result<cluster::approval::Gate> {
    let first = paths.first().map_or(Path::new("."), PathBuf::as_path);
    let dir = c.source.scope.recipients.resolve(first)?;
    Ok(cluster::approval::Gate::new(dir.as_ref(), true))
}

/// Polls until every awaited (Secret, hash) is approved (`true`) or `limit` passes.
async fn wait_for_approvals(
    client: &kube::Client,
    awaiting: &[cluster::approval::Awaiting],
    limit: Duration,
) -> Result<bool> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let namespaces = awaiting.iter().map(|a| a.namespace.as_str());
        let approved = cluster::approval::approved_in(client, namespaces).await?;
        let all = awaiting
            .iter()
            .all(|a| approved.covers(&a.namespace, &a.name, &a.content_hash));
        if all {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn print_awaiting(r: &Report, quiet: bool) {
    for w in &r.awaiting {
        eprintln!("awaiting   {w}");
    }
    if !quiet && !r.awaiting.is_empty() {
        eprintln!(
            "ksec: {} content change(s) held until approved; nothing of them was written",
            r.awaiting.len()
        );
    }
}

fn print_text(r: &Report, quiet: bool) {
    let dry = if r.dry_run { " (dry run)" } else { "" };
    for x in &r.refused {
        let what = x
            .secret
            .as_deref()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        eprintln!("refused    {}{what}: {}", x.file.display(), x.reason);
    }
    if !r.refused.is_empty() {
        eprintln!("ksec: nothing was applied: {} refusal(s)", r.refused.len());
        return;
    }
    for f in &r.failures {
        eprintln!("FAILED     {}: {}", f.subject, f.message);
    }
    if !quiet {
        for s in &r.applied {
            let verb = match s.action {
                cluster::apply::Action::Created => "created",
                _ => "updated",
            };
            let keys = if s.keys.is_empty() {
                "metadata only".to_string()
            } else {
                s.keys.summary()
            };
            println!("{verb:<10} secret {}/{} ({keys})", s.namespace, s.name);
        }
        for s in &r.unchanged {
            println!("unchanged  secret {}/{}", s.namespace, s.name);
        }
        for o in &r.others {
            println!(
                "applied    {} {}{}",
                o.kind,
                o.namespace
                    .as_deref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                o.name
            );
        }
        for s in &r.skipped {
            println!("skipped    {}: {}", s.file.display(), s.reason);
        }
    }
    for w in &r.restarted {
        let state = match &w.outcome {
            None if r.dry_run => "would restart".to_string(),
            None => "restarted".to_string(),
            Some(Outcome::Verified) => "verified".to_string(),
            Some(Outcome::Failed(m)) => format!("FAILED: {m}"),
            Some(Outcome::TimedOut(m)) => format!("TIMED OUT: {m}"),
        };
        let rb = if w.rolled_back {
            " (rolled back)".to_string()
        } else if let Some(e) = &w.rollback_error {
            format!(" (rollback failed: {e})")
        } else {
            String::new()
        };
        let line = format!(
            "restart    {} {}/{} for {}: {state}{rb}",
            w.kind,
            w.namespace,
            w.name,
            w.secrets.join(", ")
        );
        if matches!(
            w.outcome,
            Some(Outcome::Failed(_)) | Some(Outcome::TimedOut(_))
        ) {
            eprintln!("{line}");
        } else if !quiet {
            println!("{line}");
        }
    }
    for s in &r.stale {
        eprintln!(
            "stale      {} {}/{} ({}): {}",
            s.kind,
            s.namespace,
            s.name,
            s.secrets.join(", "),
            s.reason
        );
    }
    if !quiet {
        for n in &r.refreshed_in_place {
            println!("in place   {}: {}", n.subject, n.message);
        }
        for p in &r.pruned {
            println!("pruned     secret {p}");
        }
    }
    for n in &r.prune_skipped {
        eprintln!("kept       {}: {}", n.subject, n.message);
    }
    print_awaiting(r, quiet);
    for w in &r.warnings {
        eprintln!("ksec: warning: {w}");
    }
    if !quiet {
        println!(
            "{} applied, {} unchanged, {} restarted ({} verified), {} stale, {} pruned{dry}",
            r.applied.len(),
            r.unchanged.len(),
            r.restarted.len(),
            r.verified.len(),
            r.stale.len(),
            r.pruned.len()
        );
    }
}
