//! `ksec groups add|delete --file FILE`, sops's syntax: add a key group
//! (the data key is split again across all groups) or delete one. The
//! MAC is verified first; values and MAC are untouched.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::common::{self, GlobalArgs, IdentityArgs, KeyArgs, TypeArgs, usage};
use ksec::ops::{self, OpenOptions, OpenedFile};
use ksec::sops::store;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum GroupsCommand {
    /// Add a key group made of the given keys
    Add(AddArgs),
    /// Delete the key group at INDEX (0-based)
    #[command(alias = "remove")]
    Delete(DeleteArgs),
}

/// What both share: the file, where the result goes, the threshold.
#[derive(clap::Args, Debug)]
pub struct FileArgs {
    /// The encrypted file
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Write the result back to the file instead of stdout
    #[arg(short = 'i', long = "in-place")]
    pub in_place: bool,
    /// Groups needed to recover the data key (default: unchanged)
    #[arg(long = "shamir-secret-sharing-threshold")]
    pub threshold: Option<usize>,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// age recipients of the new group (repeatable)
    #[arg(long)]
    pub age: Vec<String>,
    /// PGP fingerprints of the new group (repeatable)
    #[arg(long)]
    pub pgp: Vec<String>,
    /// KMS ARNs of the new group (repeatable)
    #[arg(long)]
    pub kms: Vec<String>,
    /// AWS profile for the KMS keys
    #[arg(long = "aws-profile")]
    pub aws_profile: Option<String>,
    /// KMS encryption context (`key:value,key2:value2`)
    #[arg(long = "encryption-context")]
    pub encryption_context: Option<String>,
    /// Vault transit key URIs of the new group (repeatable)
    #[arg(long = "hc-vault-transit")]
    pub hc_vault_transit: Vec<String>,
    /// Azure Key Vault key URLs of the new group (repeatable)
    #[arg(long = "azure-kv")]
    pub azure_kv: Vec<String>,
    /// Allow keys of another environment (FROM:TO, e.g. prod:dev)
    #[arg(long = "move-env", value_name = "FROM:TO")]
    pub move_env: Option<ksec::recipients::EnvMove>,
}

#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The group to delete (0-based, as `sops` numbers them)
    pub index: usize,
}

pub fn run(a: &Args, _g: &GlobalArgs) -> Result<i32> {
    match &a.command {
        GroupsCommand::Add(a) => add(a),
        GroupsCommand::Delete(a) => delete(a),
    }
}

/// The opened file and its still-encrypted documents (written back as they are).
struct Opened {
    name: String,
    file: OpenedFile,
    encrypted: ksec::sops::Documents,
}

fn open(a: &FileArgs) -> Result<Opened> {
    let name = a.file.display().to_string();
    let bytes = ops::read(&a.file).with_context(|| format!("cannot read {name}"))?;
    let ring = common::keyring(&a.ids, true)?;
    let (docs, meta) = store::load_encrypted(a.types.input(&a.file), &bytes)
        .map_err(ops::OpError::from)
        .with_context(|| name.clone())?;
    let file = ops::open_parsed(docs.clone(), meta, &ring, OpenOptions::default())
        .with_context(|| name.clone())?;
    Ok(Opened {
        name,
        file,
        encrypted: docs,
    })
}

fn add(a: &AddArgs) -> Result<i32> {
    if !a.pgp.is_empty() {
        bail!(usage("--pgp: this build of ksec cannot wrap for PGP keys"));
    }
    let group = KeyArgs {
        age: a.age.clone(),
        kms: a.kms.clone(),
        aws_profile: a.aws_profile.clone(),
        encryption_context: a.encryption_context.clone(),
        hc_vault_transit: a.hc_vault_transit.clone(),
        azure_kv: a.azure_kv.clone(),
        ..Default::default()
    }
    .recipients()?;
    if group.is_empty() {
        bail!(usage(
            "give the new group's keys: --age, --kms, --hc-vault-transit or --azure-kv"
        ));
    }
    let o = open(&a.file)?;
    let mut groups =
        super::rotate::file_groups(&o.name, &o.file.meta).context("cannot add a group")?;
    groups.push(group);
    super::rotate::admit(
        &a.file.file,
        &o.file.meta,
        &groups,
        None,
        a.move_env.as_ref(),
    )
    .with_context(|| o.name.clone())?;
    write(&a.file, o, &groups)
}

fn delete(a: &DeleteArgs) -> Result<i32> {
    let o = open(&a.file)?;
    let name = &o.name;
    let mut groups =
        super::rotate::file_groups(name, &o.file.meta).context("cannot delete a group")?;
    if a.index >= groups.len() {
        bail!(usage(format!(
            "{name}: no key group {} (the file has {})",
            a.index,
            groups.len()
        )));
    }
    groups.remove(a.index);
    if groups.is_empty() {
        bail!(usage(format!("{name}: cannot delete the last key group")));
    }
    write(&a.file, o, &groups)
}

/// Splits the data key afresh for `groups` and writes the file (or stdout).
fn write(a: &FileArgs, o: Opened, groups: &[Vec<ksec::keys::Recipient>]) -> Result<i32> {
    let name = &o.name;
    let mut meta = o.file.meta;
    let threshold = a.threshold.unwrap_or(meta.shamir_threshold);
    if threshold > groups.len() {
        bail!(usage(format!(
            "{name}: a Shamir threshold of {threshold} cannot be met by {} key groups (pass --shamir-secret-sharing-threshold)",
            groups.len()
        )));
    }
    let ring = common::keyring(&a.ids, false)?;
    let (kg, t) = ring
        .wrap(groups, threshold, &o.file.key)
        .map_err(ops::OpError::from)
        .with_context(|| name.clone())?;
    meta.key_groups = kg;
    meta.shamir_threshold = t;
    let out = store::emit_encrypted(a.types.input(&a.file), &o.encrypted, &meta, a.types.indent)
        .map_err(ops::OpError::from)
        .with_context(|| name.clone())?;
    if a.in_place {
        ksec::fsio::write_atomic(&a.file, &out).with_context(|| format!("cannot write {name}"))?;
    } else {
        std::io::Write::write_all(&mut std::io::stdout(), &out)?;
    }
    Ok(0)
}
