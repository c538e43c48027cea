//! `ksec updatekeys`: re-wrap the existing data key for the recipients the
//! configuration names now. Values, MAC and lastmodified are untouched.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;

use super::common::{self, GlobalArgs, IdentityArgs, KeyArgs, OutputFormat, TypeArgs};
use ksec::keys::Recipient;
use ksec::recipients;
use ksec::sops::store;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub report: super::common::ReportArgs,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
    /// Allow moving files from one environment's recipients to another's
    /// (FROM:TO, e.g. prod:dev); rotate every value afterwards
    #[arg(long = "move-env", value_name = "FROM:TO")]
    pub move_env: Option<recipients::EnvMove>,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    let ring = common::keyring(&a.ids, true)?;
    let ov = a.keys.overrides()?;
    let mut report = Vec::new();
    for (file, _) in common::expand(&a.files)? {
        let name = file.display().to_string();
        let format = a.types.input(&file);
        let bytes = ksec::ops::read(&file).with_context(|| format!("cannot read {name}"))?;
        // The MAC is verified before any field of the file is trusted.
        let opened = ksec::ops::open(&bytes, format, &ring, Default::default())
            .with_context(|| name.clone())?;
        let (docs, meta) = store::load_encrypted(format, &bytes)
            .map_err(ksec::ops::OpError::from)
            .with_context(|| name.clone())?;
        let plan = recipients::plan_for(&file, &docs, &ov).with_context(|| name.clone())?;
        admit(&file, &meta, &plan, &ov, a.move_env.as_ref()).with_context(|| name.clone())?;
        let old: Vec<String> = meta.stanzas().map(|s| s.recipient()).collect();
        let new: Vec<String> = plan.groups.iter().flatten().map(Recipient::id).collect();
        let added: Vec<&String> = new.iter().filter(|r| !old.contains(r)).collect();
        let removed: Vec<&String> = old.iter().filter(|r| !new.contains(r)).collect();
        // With key groups, sops records threshold 0 as "all groups".
        let wanted_threshold = if plan.threshold == 0 {
            plan.groups.len()
        } else {
            plan.threshold
        };
        let same_layout = meta.key_groups.len() == plan.groups.len()
            && (plan.groups.len() < 2 || meta.shamir_threshold == wanted_threshold);
        if added.is_empty() && removed.is_empty() && same_layout {
            if g.output == OutputFormat::Text && !g.quiet {
                eprintln!("{name}: recipients already up to date ({})", plan.source);
            }
            report.push(json!({"file": file, "status": "unchanged"}));
            continue;
        }
        if g.output == OutputFormat::Text {
            eprintln!("{name}: recipients from {}", plan.source);
            for r in &added {
                eprintln!("  + {r}");
            }
            for r in &removed {
                eprintln!("  - {r}");
            }
        }
        if !a.yes && std::io::stdin().is_terminal() {
            eprint!("Apply these changes to {name}? [y/N] ");
            let mut s = String::new();
            std::io::stdin().read_line(&mut s)?;
            if !matches!(s.trim(), "y" | "Y" | "yes") {
                report.push(json!({"file": file, "status": "declined"}));
                continue;
            }
        }
        let key = opened.key;
        let (groups, threshold) = ring
            .rewrap(&meta, &plan.groups, plan.threshold, &key)
            .map_err(ksec::ops::OpError::from)
            .with_context(|| name.clone())?;
        let mut meta = meta;
        meta.key_groups = groups;
        meta.shamir_threshold = threshold;
        let out = store::emit_encrypted(format, &docs, &meta, plan.yaml_indent.or(a.types.indent))
            .map_err(ksec::ops::OpError::from)
            .with_context(|| name.clone())?;
        ksec::fsio::write_atomic(&file, &out).with_context(|| format!("cannot write {name}"))?;
        if let Some(m) = &a.move_env {
            eprintln!(
                "{name}: moved from {} to {}: rotate every value in it now ({} could read them)",
                m.from, m.to, m.from
            );
        }
        report.push(json!({"file": file, "status": "updated", "added": added, "removed": removed}));
    }
    if g.output == OutputFormat::Json {
        common::print_json(&json!({ "files": report }));
    }
    Ok(0)
}

/// Refuses a plan that would hand the file to another environment's recipients.
fn admit(
    file: &std::path::Path,
    meta: &ksec::sops::Metadata,
    plan: &recipients::Plan,
    ov: &recipients::Overrides,
    allow: Option<&recipients::EnvMove>,
) -> Result<()> {
    let Some(rdir) = recipients::recipients_dir_for(file, ov)? else {
        return Ok(());
    };
    let old = recipients::boundary::file_recipients(meta);
    let new = plan.groups.iter().flatten().map(Recipient::id).collect();
    rdir.admit_rekey(&old, &new, allow)?;
    Ok(())
}
