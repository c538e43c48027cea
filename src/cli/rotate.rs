//! `ksec rotate`: new data key, every value re-encrypted (IVs reused so the
//! diff shows which values changed: none), recipients added or removed.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::{
    self, GlobalArgs, IdentityArgs, KeyArgs, OutputFileArgs, OutputFormat, TypeArgs, usage,
};
use ksec::keys::Recipient;
use ksec::ops::{self, OpenOptions};
use ksec::sops::DataKey;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(short = 'i', long = "in-place", conflicts_with = "output")]
    pub in_place: bool,
    #[command(flatten)]
    pub out: OutputFileArgs,
    /// KMS encryption context for the added KMS keys (`key:value,key2:value2`)
    #[arg(long = "encryption-context")]
    pub encryption_context: Option<String>,
    /// age recipients to add to the first key group
    #[arg(long = "add-age", value_delimiter = ',')]
    pub add_age: Vec<String>,
    /// PGP fingerprints to add
    #[arg(long = "add-pgp", value_delimiter = ',')]
    pub add_pgp: Vec<String>,
    /// KMS ARNs (`arn` or `arn+roleArn`) to add
    #[arg(long = "add-kms", value_delimiter = ',')]
    pub add_kms: Vec<String>,
    /// Vault transit URIs to add
    #[arg(long = "add-hc-vault-transit", value_delimiter = ',')]
    pub add_vault: Vec<String>,
    /// Azure Key Vault key URLs to add
    #[arg(long = "add-azure-kv", value_delimiter = ',')]
    pub add_azure: Vec<String>,
    /// GCP KMS key resource IDs to add
    #[arg(long = "add-gcp-kms", value_delimiter = ',')]
    pub add_gcp: Vec<String>,
    /// age recipients to remove from every group
    #[arg(long = "rm-age", value_delimiter = ',')]
    pub rm_age: Vec<String>,
    /// PGP fingerprints to remove
    #[arg(long = "rm-pgp", value_delimiter = ',')]
    pub rm_pgp: Vec<String>,
    /// KMS ARNs to remove
    #[arg(long = "rm-kms", value_delimiter = ',')]
    pub rm_kms: Vec<String>,
    /// Vault transit URIs to remove
    #[arg(long = "rm-hc-vault-transit", value_delimiter = ',')]
    pub rm_vault: Vec<String>,
    /// Azure Key Vault key URLs to remove
    #[arg(long = "rm-azure-kv", value_delimiter = ',')]
    pub rm_azure: Vec<String>,
    /// GCP KMS key resource IDs to remove
    #[arg(long = "rm-gcp-kms", value_delimiter = ',')]
    pub rm_gcp: Vec<String>,
    #[command(flatten)]
    pub ids: IdentityArgs,
    #[command(flatten)]
    pub types: TypeArgs,
    /// Allow adding recipients of another environment (FROM:TO, e.g. prod:dev)
    #[arg(long = "move-env", value_name = "FROM:TO")]
    pub move_env: Option<ksec::recipients::EnvMove>,
    #[command(flatten)]
    pub recipients: common::RecipientsDirArg,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    if a.files.len() > 1 && !a.in_place {
        return Err(usage("several files: pass -i/--in-place"));
    }
    for f in &a.files {
        common::refuse_in_place_stdin(a.in_place, f)?;
    }
    let ring = common::keyring(&a.ids, true)?;
    let add = KeyArgs {
        age: a.add_age.clone(),
        pgp: a.add_pgp.clone(),
        kms: a.add_kms.clone(),
        hc_vault_transit: a.add_vault.clone(),
        azure_kv: a.add_azure.clone(),
        encryption_context: a.encryption_context.clone(),
        gcp_kms: a.add_gcp.clone(),
        ..Default::default()
    }
    .recipients()?;
    let mut rm: Vec<String> = a.rm_age.iter().map(|s| s.trim().to_string()).collect();
    rm.extend(a.rm_kms.iter().map(|s| s.trim().to_string()));
    rm.extend(
        a.rm_pgp
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Recipient::pgp(s).id()),
    );
    for u in &a.rm_vault {
        rm.push(
            Recipient::vault_from_uri(u)
                .map_err(|e| usage(e.to_string()))?
                .id(),
        );
    }
    for u in &a.rm_azure {
        rm.push(
            Recipient::azure_from_url(u)
                .map_err(|e| usage(e.to_string()))?
                .id(),
        );
    }
    for id in a.rm_gcp.iter().filter(|s| !s.trim().is_empty()) {
        rm.push(
            Recipient::gcp_from_str(id)
                .map_err(|e| usage(e.to_string()))?
                .id(),
        );
    }
    for file in &a.files {
        let name = file.display().to_string();
        let format = a.types.input(file);
        let bytes = ops::read(file).with_context(|| format!("cannot read {name}"))?;
        let mut f = ops::open(&bytes, format, &ring, OpenOptions::default())
            .with_context(|| name.clone())?;
        let mut groups = file_groups(&name, &f.meta).context("cannot rotate")?;
        for g in &mut groups {
            g.retain(|r| !rm.contains(&r.id()));
        }
        for r in &add {
            if !groups[0].iter().any(|x| x.id() == r.id()) {
                groups[0].push(r.clone());
            }
        }
        admit(
            file,
            &f.meta,
            &groups,
            a.recipients.recipients_dir.clone(),
            a.move_env.as_ref(),
        )
        .with_context(|| name.clone())?;
        let key = DataKey::generate();
        let (kg, threshold) = ring
            .wrap(&groups, f.meta.shamir_threshold, &key)
            .map_err(ops::OpError::from)
            .with_context(|| name.clone())?;
        f.meta.key_groups = kg;
        f.meta.shamir_threshold = threshold;
        f.key = key;
        let out = ops::reseal(&mut f, format, a.types.indent).with_context(|| name.clone())?;
        if a.in_place {
            ksec::fsio::write_atomic(file, &out).with_context(|| format!("cannot write {name}"))?;
            if g.output == OutputFormat::Text && !g.quiet {
                eprintln!("rotated {name}");
            }
        } else {
            a.out.emit(&out, false)?;
        }
    }
    Ok(0)
}

/// Refuses added recipients that belong to another environment than the
/// file's (rotate, groups add).
pub(super) fn admit(
    file: &std::path::Path,
    meta: &ksec::sops::Metadata,
    groups: &[Vec<Recipient>],
    recipients_dir: Option<PathBuf>,
    move_env: Option<&ksec::recipients::EnvMove>,
) -> Result<()> {
    let ov = ksec::recipients::Overrides {
        recipients_dir,
        ..Default::default()
    };
    let Some(rdir) = ksec::recipients::recipients_dir_for(file, &ov)? else {
        return Ok(());
    };
    let old = ksec::recipients::boundary::file_recipients(meta);
    let new = groups.iter().flatten().map(Recipient::id).collect();
    rdir.admit_rekey(&old, &new, move_env)?;
    Ok(())
}

/// The recipients of a file's key groups, for re-wrapping; a stanza ksec
/// cannot wrap for is an error naming the file.
pub(super) fn file_groups(name: &str, meta: &ksec::sops::Metadata) -> Result<Vec<Vec<Recipient>>> {
    meta.key_groups
        .iter()
        .map(|grp| {
            grp.0
                .iter()
                .map(|st| {
                    Recipient::from_stanza(st).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{name}: the file has a {} recipient ksec cannot wrap for",
                            st.kind()
                        )
                    })
                })
                .collect()
        })
        .collect()
}
