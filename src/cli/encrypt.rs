//! `ksec encrypt`: recipients chosen per file (flags, recipients/ by
//! namespace, .sops.yaml), directories walked and encrypted in parallel.

use std::path::PathBuf;

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde_json::json;

use super::common::{
    self, BulkReportArgs, GlobalArgs, IdentityArgs, KeyArgs, NameArgs, OutputFileArgs,
    OutputFormat, TypeArgs, usage,
};
use ksec::ops::{self, OpError};
use ksec::recipients;
use ksec::sops::store::{self, StoreError};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories (directories: every Secret manifest below, in place); none or '-': stdin
    pub files: Vec<PathBuf>,
    /// Write the result back to the file (crash-safe) instead of stdout
    #[arg(short = 'i', long = "in-place", conflicts_with = "output")]
    pub in_place: bool,
    #[command(flatten)]
    pub out: OutputFileArgs,
    #[command(flatten)]
    pub name: NameArgs,
    #[command(flatten)]
    pub report: BulkReportArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

enum Outcome {
    Encrypted {
        source: String,
        environment: Option<String>,
        notes: Vec<String>,
        /// Last-applied annotations dropped (they hold the values in clear).
        removed: Vec<String>,
        out: Option<Vec<u8>>,
    },
    Skipped(&'static str),
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    for f in &a.files {
        common::refuse_in_place_stdin(a.in_place, f)?;
    }
    let walk = common::expand_walk(&a.name.inputs(&a.files))?;
    let files = walk.files;
    let multi = files.len() > 1 || files.iter().any(|(_, from_dir)| *from_dir);
    if multi && !a.in_place {
        return Err(usage(
            "several files or a directory: pass -i/--in-place (output would be ambiguous on stdout)",
        ));
    }
    let stdin = common::is_stdin(&files[0].0);
    if stdin && a.name.filename_override.is_none() {
        return Err(usage(
            "must specify --filename-override when reading from stdin",
        ));
    }
    if stdin && a.in_place {
        return Err(usage("-i/--in-place needs a file, not stdin"));
    }
    let ov = a.keys.overrides()?;
    let ring = common::keyring(&a.ids, false)?;
    let results: Vec<(PathBuf, Result<Outcome>)> = files
        .par_iter()
        .map(|(path, from_dir)| {
            let r = (|| -> Result<Outcome> {
                let bytes =
                    ops::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                let named = a.name.name_for(path);
                let format = a.types.input(named);
                let docs = match store::load_plain(format, &bytes) {
                    Ok(d) => d,
                    Err(StoreError::AlreadyEncrypted) if *from_dir => {
                        return Ok(Outcome::Skipped("already encrypted"));
                    }
                    Err(_) if *from_dir => return Ok(Outcome::Skipped("not a parseable manifest")),
                    Err(e) => return Err(OpError::from(e).into()),
                };
                if *from_dir && !ksec::manifest::has_secret(&docs) {
                    return Ok(Outcome::Skipped("no Secret in it"));
                }
                let mut plan = recipients::plan_for(named, &docs, &ov)?;
                if let Some(i) = a.types.indent {
                    plan.yaml_indent = Some(i);
                }
                let out_format = a.types.output(named, format);
                let sealed = ops::encrypt_to(&bytes, format, out_format, &plan, &ring)?;
                let removed = sealed
                    .dropped
                    .iter()
                    .map(|(doc, kp)| format!("document {doc}: removed {kp}"))
                    .collect();
                let out = sealed.bytes;
                if a.in_place {
                    ksec::fsio::write_atomic(path, &out)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                Ok(Outcome::Encrypted {
                    source: plan.source,
                    environment: plan.environment,
                    notes: plan.notes,
                    removed,
                    out: (!a.in_place).then_some(out),
                })
            })();
            (path.clone(), r.with_context(|| path.display().to_string()))
        })
        .collect();

    let mut failed = 0;
    let mut worst = 0;
    let mut report = Vec::new();
    for (path, why) in &walk.skipped {
        if !g.quiet && g.output == OutputFormat::Text {
            eprintln!("skipped {} ({why})", path.display());
        }
        report.push(json!({"file": path, "status": "skipped", "reason": why}));
    }
    for (path, r) in results {
        match r {
            Ok(Outcome::Encrypted {
                source,
                environment,
                notes,
                removed,
                out,
            }) => {
                if !g.quiet && g.output == OutputFormat::Text {
                    for r in &removed {
                        eprintln!(
                            "ksec: {}: {r} (it holds the Secret's values in clear text; kubectl writes it again on apply)",
                            path.display()
                        );
                    }
                }
                if let Some(out) = out {
                    a.out.emit(&out, false)?;
                }
                if g.verbose {
                    eprintln!("{}: recipients from {source}", path.display());
                    for n in &notes {
                        eprintln!("{}: note: {n}", path.display());
                    }
                } else if a.in_place && !g.quiet && g.output == OutputFormat::Text {
                    eprintln!("encrypted {}", path.display());
                }
                report.push(json!({"file": path, "status": "encrypted", "recipients_from": source, "environment": environment, "notes": notes, "removed": removed}));
            }
            Ok(Outcome::Skipped(why)) => {
                if g.verbose {
                    eprintln!("skipped {} ({why})", path.display());
                }
                report.push(json!({"file": path, "status": "skipped", "reason": why}));
            }
            Err(e) => {
                failed += 1;
                worst = worst.max(common::exit_code(&e));
                if g.output == OutputFormat::Text {
                    common::print_error(&e, g.verbose);
                }
                report.push(json!({"file": path, "status": "error", "error": format!("{e:#}")}));
            }
        }
    }
    if g.output == OutputFormat::Json {
        common::print_json(&json!({"files": report, "failed": failed}));
    }
    Ok(if failed > 0 { worst.max(1) } else { 0 })
}
