//! `ksec diff`: what `ksec apply` would change, by key name (values masked),
//! computed by a server-side dry run. Exit 0: no differences, 1: differences,
//! 2: usage/configuration, 3: failure — kubectl diff's convention, with errors kept apart.

use anyhow::Result;

use super::apply::{ClusterArgs, prepare, runtime};
use super::common::{self, GlobalArgs, OutputFormat};
use ksec::cluster::apply::Action;
use ksec::cluster::{self, ApplyOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub report: super::common::ReportArgs,
    #[command(flatten)]
    pub input: super::common::ManifestPaths,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Also list the workloads that would be restarted
    #[arg(long)]
    pub restarts: bool,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    match inner(a, g) {
        Ok(c) => Ok(c),
        Err(e) => {
            eprintln!("ksec: error: {e:#}");
            Ok(if common::exit_code(&e) == 2 { 2 } else { 3 })
        }
    }
}

fn inner(a: &Args, g: &GlobalArgs) -> Result<i32> {
    let rt = runtime()?;
    let (client, loaded, _) = prepare(&rt, &a.input.paths, &a.cluster)?;
    let report = rt.block_on(async {
        let opts = ApplyOptions {
            dry_run: true,
            restart: a.restarts,
            concurrency: a.cluster.concurrency as usize,
            ..Default::default()
        };
        cluster::apply(&client, loaded, &opts)
            .await
            .map_err(anyhow::Error::new)
    })?;
    if !report.refused.is_empty() || !report.failures.is_empty() {
        for x in &report.refused {
            let what = x
                .secret
                .as_deref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            eprintln!("refused    {}{what}: {}", x.file.display(), x.reason);
        }
        for f in &report.failures {
            eprintln!("FAILED     {}: {}", f.subject, f.message);
        }
        if g.output == OutputFormat::Json {
            common::print_json(&serde_json::to_value(&report)?);
        }
        return Ok(3);
    }
    let differs = report
        .applied
        .iter()
        .any(|s| s.action == Action::Created || !s.keys.is_empty())
        || !report.restarted.is_empty();
    match g.output {
        OutputFormat::Json | OutputFormat::Sarif => {
            let secrets: Vec<serde_json::Value> = report
                .applied
                .iter()
                .chain(report.unchanged.iter())
                .map(|s| {
                    serde_json::json!({
                        "namespace": s.namespace, "name": s.name, "file": s.file,
                        "action": s.action, "added": s.keys.added,
                        "removed": s.keys.removed, "changed": s.keys.changed,
                    })
                })
                .collect();
            common::print_json(&serde_json::json!({
                "differs": differs,
                "secrets": secrets,
                "restarts": report.restarted,
                "skipped": report.skipped,
            }));
        }
        OutputFormat::Text => {
            for s in &report.applied {
                let head = match s.action {
                    Action::Created => "(new Secret)",
                    _ => "",
                };
                if s.keys.is_empty() && s.action != Action::Created {
                    continue;
                }
                println!("--- secret {}/{} {head}", s.namespace, s.name);
                for k in &s.keys.added {
                    println!("+ data.{k}: (value hidden)");
                }
                for k in &s.keys.removed {
                    println!("- data.{k}: (value hidden)");
                }
                for k in &s.keys.changed {
                    println!("~ data.{k}: (value changed, hidden)");
                }
            }
            for w in &report.restarted {
                println!(
                    "would restart {} {}/{} (uses {})",
                    w.kind,
                    w.namespace,
                    w.name,
                    w.secrets.join(", ")
                );
            }
            if !g.quiet && !differs {
                eprintln!("no differences");
            }
        }
    }
    Ok(if differs { 1 } else { 0 })
}
