//! `ksec doctor`, `ksec rbac`, `ksec runbook`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::{self, GlobalArgs, OutputFormat, usage};
use ksec::doctor::{self, Check, Inventory, Severity, report};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub report: super::common::ReportArgs,
    /// Manifest files or directories ('-' reads rendered manifests, e.g. `helm template`, from stdin).
    /// A directory with a kustomization is rendered with kustomize/kubectl when installed.
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub env: common::EnvArg,
    #[command(flatten)]
    pub recipients: common::RecipientsDirArg,
    /// Namespace for manifests that name none
    #[arg(long, default_value = "default")]
    pub default_namespace: String,
    /// Exit 1 when a finding is at least this severe
    #[arg(long, value_parser = common::severity_parser(), default_value = "error")]
    pub fail_on: Severity,
    /// Change a check's severity: CHECK=error|warning|info (repeatable), e.g. rotation-age=error
    #[arg(long = "severity", value_name = "CHECK=LEVEL")]
    pub severity: Vec<String>,
    /// Check live namespaces through the kube API instead of manifests (read-only)
    #[arg(long)]
    pub cluster: bool,
    /// kubeconfig context (with --cluster)
    #[arg(long)]
    pub context: Option<String>,
    /// kubeconfig file (with --cluster; default KUBECONFIG or ~/.kube/config)
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces to inspect (with --cluster; default: every namespace a recipients environment owns)
    #[arg(short = 'n', long = "namespace")]
    pub namespaces: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RbacArgs {
    #[command(flatten)]
    pub report: super::common::ReportArgs,
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    #[arg(long, default_value = "default")]
    pub default_namespace: String,
    #[command(flatten)]
    pub recipients: common::RecipientsDirArg,
}

#[derive(clap::Args, Debug)]
pub struct RunbookArgs {
    #[command(flatten)]
    pub env: common::EnvArg,
    /// Manifests to list the environment's Secrets from
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub recipients: common::RecipientsDirArg,
    #[arg(long, default_value = "default")]
    pub default_namespace: String,
}

fn parse_overrides(v: &[String]) -> Result<Vec<(Check, Severity)>> {
    let mut out = Vec::new();
    for s in v {
        let (c, l) = s
            .split_once('=')
            .ok_or_else(|| usage(format!("--severity {s:?}: expected CHECK=LEVEL")))?;
        let check = Check::ALL
            .iter()
            .copied()
            .find(|x| x.id() == c)
            .ok_or_else(|| {
                usage(format!(
                    "--severity: unknown check {c:?} (checks: {})",
                    Check::ALL
                        .iter()
                        .map(|c| c.id())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        let level = match l {
            "error" => Severity::Error,
            "warning" => Severity::Warning,
            "info" => Severity::Info,
            _ => {
                return Err(usage(format!(
                    "--severity: level must be error, warning or info, not {l:?}"
                )));
            }
        };
        out.push((check, level));
    }
    Ok(out)
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    let overrides = parse_overrides(&a.severity)?;
    let dir = a.recipients.resolve(&a.paths[0])?;
    if let (Some(e), Some(d)) = (&a.env.env, &dir) {
        if d.env(e).is_none() {
            return Err(usage(format!(
                "--env {e}: no such environment in {}",
                d.dir.display()
            )));
        }
    }
    let mut findings = if a.cluster {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let (client, _) = ksec::cluster::connect(&ksec::cluster::ConnectOptions {
                kubeconfig: a.kubeconfig.clone(),
                context: a.context.clone(),
                in_cluster: false,
            })
            .await?;
            let nss = doctor::live::namespaces(
                &client,
                &a.namespaces,
                dir.as_ref(),
                a.env.env.as_deref(),
            )
            .await?;
            doctor::live::check(&client, &nss, dir.as_ref()).await
        })?
    } else {
        let inv = Inventory::load(&a.paths, &a.default_namespace).context("reading manifests")?;
        say_what_was_read(&inv, &a.paths);
        doctor::check(&inv, dir.as_ref(), &doctor::Options::default())
    };
    for f in findings.iter_mut() {
        if let Some((_, l)) = overrides.iter().find(|(c, _)| *c == f.check) {
            f.severity = *l;
        }
    }
    if let Some(e) = &a.env.env {
        findings.retain(|f| &f.environment == e);
    }
    match g.output {
        OutputFormat::Text => print!("{}", report::text(&findings)),
        OutputFormat::Json => common::print_json(&report::json(&findings)),
        OutputFormat::Sarif => common::print_json(&report::sarif(&findings)),
    }
    Ok(if findings.iter().any(|f| f.severity >= a.fail_on) {
        1
    } else {
        0
    })
}

/// Warnings, and a plain "nothing to check" instead of a silent "no findings".
fn say_what_was_read(inv: &Inventory, paths: &[PathBuf]) {
    for w in &inv.warnings {
        eprintln!("ksec doctor: warning: {w}");
    }
    if inv.modelled == 0 {
        let kinds: Vec<&str> = inv
            .other_kinds
            .iter()
            .map(String::as_str)
            .take(12)
            .collect();
        eprintln!(
            "ksec doctor: nothing to check in {}: {} object(s) read, none of them a Secret, a workload or a Secret provider{}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            inv.objects,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" (kinds: {})", kinds.join(", "))
            }
        );
    }
}

pub fn run_rbac(a: &RbacArgs, g: &GlobalArgs) -> Result<i32> {
    let inv = Inventory::load(&a.paths, &a.default_namespace).context("reading manifests")?;
    let mut objs = doctor::rbac::generate(&inv);
    // Who may approve rotations, where an environment requires approval.
    if let Some(dir) = a.recipients.resolve(&a.paths[0])? {
        objs.extend(doctor::rbac::approvers(&dir, &inv));
    }
    let wildcards: Vec<_> = inv
        .roles
        .iter()
        .filter_map(|r| doctor::rbac::wildcard_finding(r, None))
        .collect();
    for w in &wildcards {
        eprintln!(
            "WARN [{}] {} {}: {}",
            w.check.id(),
            w.namespace,
            w.object,
            w.message
        );
    }
    if g.output == OutputFormat::Json {
        common::print_json(&serde_json::json!({ "items": objs, "findings": wildcards }));
    } else {
        let docs: Vec<ksec::sops::Map> = objs
            .iter()
            .filter_map(|o| match ksec::sops::Value::from_json(o) {
                ksec::sops::Value::Map(m) => Some(m),
                _ => None,
            })
            .collect();
        print!(
            "{}",
            ksec::sops::store::yaml::emit(&ksec::sops::Documents(docs), 2)
        );
    }
    Ok(if wildcards.is_empty() { 0 } else { 1 })
}

pub fn run_runbook(a: &RunbookArgs, _g: &GlobalArgs) -> Result<i32> {
    let dir = a
        .recipients
        .resolve(&a.paths[0])?
        .ok_or_else(|| usage("no recipients/ directory found (use --recipients-dir)"))?;
    let name = a
        .env
        .env
        .as_deref()
        .ok_or_else(|| usage("which environment? pass --env ENV (a recipients/<env>.yaml)"))?;
    let env = dir.env(name).ok_or_else(|| {
        usage(format!(
            "--env {name}: no such environment in {}",
            dir.dir.display()
        ))
    })?;
    let inv = Inventory::load(&a.paths, &a.default_namespace).context("reading manifests")?;
    print!("{}", doctor::runbook::markdown(env, &inv));
    Ok(0)
}
