//! `ksec export`: decrypt in memory, write one entry per Secret to Vault KV v2,
//! AWS Secrets Manager or Azure Key Vault, read it back, and optionally write
//! ESO manifests and policies. The work is `ksec::export`; this file is flags
//! and printing. Exit 0 all in place, 1 any Secret not exported (failed,
//! foreign entry, verify mismatch, refused file), 2 usage/configuration.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;

use super::apply::runtime;
use super::common::{self, GlobalArgs, IdentityArgs, OutputFormat, SourceArgs, usage};
use ksec::export::eso::{CreationPolicy, EsoOptions};
use ksec::export::{self, Backend, ExportError, Item, Options, Outcome, Status, Summary, Target};
use ksec::source::SourceError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// ESO owns the Secret: deleting the ExternalSecret deletes the Secret
    Owner,
    /// ESO writes keys into the existing Secret, never creates or deletes it (cut-over)
    Merge,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub report: super::common::ReportArgs,
    #[command(flatten)]
    pub input: super::common::ManifestPaths,
    /// vault://HOST:PORT/MOUNT[/PREFIX] (vault+http:// for plain HTTP), aws-sm://REGION[/PREFIX], azure-kv://VAULT[/PREFIX], gcp-sm://PROJECT[/PREFIX]
    #[arg(long, value_name = "TARGET")]
    pub to: String,
    /// Entry path below the prefix; placeholders {env}, {namespace}, {name}
    #[arg(long, default_value = export::DEFAULT_TEMPLATE)]
    pub path_template: String,
    /// List what would be written (path and key names only); write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite (and claim) entries that ksec did not write
    #[arg(long)]
    pub force: bool,
    /// Secrets written at once
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    #[command(flatten)]
    pub source: SourceArgs,
    /// AWS profile for Secrets Manager (default: the standard chain)
    #[arg(long)]
    pub aws_profile: Option<String>,
    /// IAM role to assume for Secrets Manager, on top of the chain
    #[arg(long, value_name = "ARN")]
    pub aws_role: Option<String>,
    /// Write ESO SecretStores, ExternalSecrets and read policies to DIR
    #[arg(long, value_name = "DIR")]
    pub eso_out: Option<PathBuf>,
    /// ExternalSecret refreshInterval
    #[arg(long, default_value = "1h")]
    pub refresh_interval: String,
    /// ExternalSecret target.creationPolicy (the YAML explains the deletion consequences)
    #[arg(long, value_enum, default_value = "owner")]
    pub creation_policy: Policy,
    /// SecretStore name ({env}, {namespace})
    #[arg(long, default_value = "{env}-secretstore")]
    pub eso_store_name: String,
    /// Service account the SecretStore authenticates as ({env}, {namespace})
    #[arg(long, default_value = "{env}-workload-sa")]
    pub eso_service_account: String,
    /// Vault Kubernetes auth role for ESO ({env})
    #[arg(long, default_value = "{env}-secret-reader")]
    pub eso_vault_role: String,
    /// Google service account ESO acts as via GKE Workload Identity ({env}, {project})
    #[arg(
        long,
        default_value = "{env}-external-secrets@{project}.iam.gserviceaccount.com"
    )]
    pub eso_gcp_service_account: String,
    /// Kubernetes Secret NAME[/KEY] with a GCP service-account key file, instead of Workload Identity
    #[arg(long, value_name = "NAME[/KEY]")]
    pub eso_gcp_key_secret: Option<String>,
    /// Vault Kubernetes auth mount for ESO
    #[arg(long, default_value = "kubernetes")]
    pub eso_vault_k8s_mount: String,
    /// AWS account id for the IAM policy's ARNs (else the placeholder ACCOUNT_ID)
    #[arg(long)]
    pub aws_account_id: Option<String>,
    #[command(flatten)]
    pub ids: IdentityArgs,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    let target = Target::parse(&a.to).map_err(|e| usage(e.to_string()))?;
    export::check_template(&a.path_template).map_err(|e| usage(e.to_string()))?;
    let files: Vec<PathBuf> = common::expand(&a.input.paths)?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let ring = common::keyring(&a.ids, true)?;
    let default_ns = a
        .source
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let opts = a.source.options(default_ns, false);
    let loaded = ksec::source::load(&files, &ring, &opts).map_err(|e| match e {
        SourceError::Config(c) => anyhow::Error::new(c),
        other => usage(other.to_string()),
    })?;
    if !loaded.refused.is_empty() {
        for r in &loaded.refused {
            let what = r
                .secret
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            eprintln!("refused    {}{what}: {}", r.file.display(), r.reason);
        }
        eprintln!(
            "ksec: nothing was exported: {} refusal(s)",
            loaded.refused.len()
        );
        if g.output == OutputFormat::Json {
            common::print_json(&json!({"ok": false, "refused": loaded.refused}));
        }
        return Ok(1);
    }
    let items = export::plan(&loaded.secrets, &target, &a.path_template).map_err(|e| match e {
        ExportError::Plan { .. } => usage(e.to_string()),
        other => anyhow::Error::new(other),
    })?;
    let run_opts = Options {
        dry_run: a.dry_run,
        force: a.force,
        concurrency: a.concurrency as usize,
        progress: progress(g, items.len()),
    };
    let rt = runtime()?;
    let outcomes = rt
        .block_on(async {
            match &target {
                Target::Vault { addr, mount, .. } => {
                    let auth = ksec::keys::vault::VaultAuth::from_env();
                    let vopts = ksec::keys::vault::VaultOptions::from_env();
                    let b = export::vault::VaultStore::connect(addr, mount, &auth, &vopts).await?;
                    Ok(go(b, &items, &run_opts).await)
                }
                Target::AwsSm { region, .. } => {
                    let b = export::aws_sm::AwsSmStore::connect(
                        &Default::default(),
                        region,
                        a.aws_profile.as_deref().unwrap_or(""),
                        a.aws_role.as_deref().unwrap_or(""),
                    )
                    .await;
                    Ok(go(b, &items, &run_opts).await)
                }
                Target::AzureKv { url, .. } => {
                    let azopts = ksec::keys::azure_kv::AzureKvOptions::from_env();
                    let b = export::azure_kv::AzureKvStore::connect(url, &azopts)?;
                    Ok(go(b, &items, &run_opts).await)
                }
                Target::GcpSm { project, .. } => {
                    let b = export::gcp_sm::GcpSmStore::connect(project)?;
                    Ok(go(b, &items, &run_opts).await)
                }
            }
        })
        .map_err(|e: export::BackendError| {
            usage(format!(
                "{}: cannot connect: {e}; nothing was exported",
                a.to
            ))
        })?;
    let summary = Summary::of(&outcomes);
    let eso_files = match &a.eso_out {
        Some(dir) if !a.dry_run => {
            // Only entries ksec holds: a foreign entry's values are not the Secret's.
            let keep: Vec<Arc<Item>> = items
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.status != Status::SkippedForeign)
                .map(|(i, _)| i.clone())
                .collect();
            let eso = EsoOptions {
                refresh_interval: a.refresh_interval.clone(),
                creation_policy: match a.creation_policy {
                    Policy::Owner => CreationPolicy::Owner,
                    Policy::Merge => CreationPolicy::Merge,
                },
                store_name: a.eso_store_name.clone(),
                service_account: a.eso_service_account.clone(),
                vault_k8s_mount: a.eso_vault_k8s_mount.clone(),
                vault_role: a.eso_vault_role.clone(),
                gcp_service_account: a.eso_gcp_service_account.clone(),
                gcp_key_secret: a.eso_gcp_key_secret.clone(),
            };
            export::eso::write_all(dir, &target, &keep, &eso, a.aws_account_id.as_deref())?
        }
        _ => Vec::new(),
    };
    match g.output {
        OutputFormat::Json | OutputFormat::Sarif => common::print_json(&json!({
            "target": a.to,
            "dry_run": a.dry_run,
            "ok": summary.ok(),
            "summary": summary,
            "secrets": outcomes,
            "skipped_files": loaded.skipped,
            "eso_files": eso_files,
        })),
        OutputFormat::Text => print_text(&outcomes, &summary, &eso_files, a.dry_run, g.quiet),
    }
    Ok(if summary.ok() { 0 } else { 1 })
}

async fn go<B: Backend>(b: B, items: &[Arc<Item>], opts: &Options) -> Vec<Outcome> {
    export::run(Arc::new(b), items, opts).await
}

/// `ksec export: 40/120 Secrets` on stderr every tenth of a long run.
fn progress(g: &GlobalArgs, total: usize) -> Option<export::Progress> {
    if g.quiet || total < 20 {
        return None;
    }
    let step = (total / 10).max(1);
    Some(Arc::new(move |done, total| {
        if done % step == 0 || done == total {
            eprintln!("ksec export: {done}/{total} Secrets");
        }
    }))
}

fn print_text(outcomes: &[Outcome], s: &Summary, eso: &[PathBuf], dry: bool, quiet: bool) {
    for o in outcomes {
        let keys = o.keys.join(", ");
        let line = |verb: &str| format!("{verb:<12} {} -> {} (keys: {keys})", o.secret, o.entry);
        match o.status {
            Status::Failed => eprintln!(
                "FAILED       {} -> {}: {}: {}",
                o.secret,
                o.entry,
                o.error_class.map(|c| c.to_string()).unwrap_or_default(),
                o.error.as_deref().unwrap_or("")
            ),
            Status::SkippedForeign => eprintln!(
                "{} (an entry ksec did not write is there; --force overwrites it)",
                line("foreign")
            ),
            Status::Exported if !quiet => println!("{}", line("exported")),
            Status::Unchanged if !quiet => println!("{}", line("unchanged")),
            Status::WouldCreate if !quiet => println!("{}", line("would create")),
            Status::WouldUpdate if !quiet => println!("{}", line("would update")),
            _ => {}
        }
    }
    if !quiet {
        for f in eso {
            println!("wrote        {}", f.display());
        }
    }
    let not: Vec<&str> = outcomes
        .iter()
        .filter(|o| matches!(o.status, Status::Failed | Status::SkippedForeign))
        .map(|o| o.secret.as_str())
        .collect();
    if !not.is_empty() && !dry {
        eprintln!(
            "ksec: NOT exported ({}): {}; re-run to finish (entries already in place are not written again)",
            not.len(),
            not.join(", ")
        );
    }
    if !quiet {
        let dry = if dry { " (dry run)" } else { "" };
        println!(
            "{} exported, {} unchanged, {} would be written, {} foreign (skipped), {} failed{dry}",
            s.exported, s.unchanged, s.would_write, s.skipped_foreign, s.failed
        );
    }
}
