//! `ksec rotate`: new data key, every value re-encrypted (IVs reused so the
//! diff shows which values changed: none), recipients added or removed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::{self, GlobalArgs, IdentityArgs, KeyArgs, OutputFormat, TypeArgs, usage};
use ksec::keys::Recipient;
use ksec::ops::{self, OpenOptions};
use ksec::sops::DataKey;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(short = 'i', long = "in-place")]
    pub in_place: bool,
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
    /// Another recipients/ folder than the one found above the file
    #[arg(
        long = "recipients-dir",
        env = "KSEC_RECIPIENTS_DIR",
        value_name = "DIR"
    )]
    pub recipients_dir: Option<PathBuf>,
}

pub fn run(a: &Args, g: &GlobalArgs) -> Result<i32> {
    if a.files.len() > 1 && !a.in_place {
        return Err(usage("several files: pass -i/--in-place"));
    }
    let ring = common::keyring(&a.ids, true)?;
    let add = KeyArgs {
        age: a.add_age.clone(),
        pgp: a.add_pgp.clone(),
        kms: a.add_kms.clone(),
        hc_vault_transit: a.add_vault.clone(),
        azure_kv: a.add_azure.clone(),
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
        let mut groups: Vec<Vec<Recipient>> = Vec::new();
        for grp in &f.meta.key_groups {
            let mut rs = Vec::new();
            for st in &grp.0 {
                let r = Recipient::from_stanza(st).ok_or_else(|| {
                    anyhow::anyhow!(
                        "{name}: cannot rotate: the file has a {} recipient ksec cannot wrap for",
                        st.kind()
                    )
                })?;
                if !rm.contains(&r.id()) {
                    rs.push(r);
                }
            }
            groups.push(rs);
        }
        for r in &add {
            if !groups[0].iter().any(|x| x.id() == r.id()) {
                groups[0].push(r.clone());
            }
        }
        admit(file, &f.meta, &groups, a).with_context(|| name.clone())?;
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
            std::io::stdout().write_all(&out)?;
        }
    }
    Ok(0)
}

/// Refuses added recipients that belong to another environment than the file's.
fn admit(
    file: &std::path::Path,
    meta: &ksec::sops::Metadata,
    groups: &[Vec<Recipient>],
    a: &Args,
) -> Result<()> {
    let ov = ksec::recipients::Overrides {
        recipients_dir: a.recipients_dir.clone(),
        ..Default::default()
    };
    let Some(rdir) = ksec::recipients::recipients_dir_for(file, &ov)? else {
        return Ok(());
    };
    let old = ksec::recipients::boundary::file_recipients(meta);
    let new = groups.iter().flatten().map(Recipient::id).collect();
    rdir.admit_rekey(&old, &new, a.move_env.as_ref())?;
    Ok(())
}
