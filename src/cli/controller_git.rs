//! `ksec controller --git-*`: the Git source's flags, turned into
//! [`ksec::controller::sources::git::GitSourceConfig`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use zeroize::Zeroizing;

use super::apply::parse_duration;
use super::common::usage;
use ksec::controller::crd::{DeletionPolicy, DriftMode};
use ksec::controller::git::{GitAuth, GitRemote};
use ksec::controller::sources::git::GitSourceConfig;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Prune {
    Orphan,
    Delete,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Drift {
    Enforce,
    Report,
    Ignore,
}

#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Git source")]
pub struct GitArgs {
    /// Follow this repository (https://, ssh://, git@host:path, git://, file://)
    #[arg(long, value_name = "URL", env = "KSEC_GIT_URL")]
    pub git_url: Option<String>,
    /// Branch to follow
    #[arg(long, default_value = "main", requires = "git_url")]
    pub git_branch: String,
    /// Folder of the repository holding the encrypted Secrets (default: all of it)
    #[arg(long, default_value = "", requires = "git_url")]
    pub git_path: String,
    /// Fetch this often (a webhook fetches at once)
    #[arg(long, default_value = "1m", value_parser = parse_duration, requires = "git_url")]
    pub git_interval: Duration,
    /// Name of this source: label ksec.io/git-source=NAME and status ConfigMap ksec-git-NAME
    #[arg(long, default_value = "default", requires = "git_url")]
    pub git_name: String,
    /// https token file (or $KSEC_GIT_TOKEN); sent as Basic auth when the server asks
    #[arg(long, value_name = "FILE", requires = "git_url")]
    pub git_token_file: Option<PathBuf>,
    /// User name sent with the token (GitHub: any; GitLab: oauth2 or the token's user)
    #[arg(long, default_value = "x-access-token", requires = "git_url")]
    pub git_username: String,
    /// Extra CA certificates (PEM) for an https server with a private CA
    #[arg(long, value_name = "FILE", requires = "git_url")]
    pub git_ca_file: Option<PathBuf>,
    /// ssh deploy key (mode 0600/0400)
    #[arg(long, value_name = "FILE", requires_all = ["git_url", "git_known_hosts"])]
    pub git_ssh_key: Option<PathBuf>,
    /// known_hosts pinning the ssh host key (StrictHostKeyChecking=yes)
    #[arg(long, value_name = "FILE", requires = "git_ssh_key")]
    pub git_known_hosts: Option<PathBuf>,
    /// Cache directory for the bare clone (default: a private temporary directory)
    #[arg(long, value_name = "DIR", requires = "git_url")]
    pub git_cache: Option<PathBuf>,
    /// What happens to a Secret whose file is removed (per object: annotation ksec.io/deletion-policy)
    #[arg(long, value_enum, default_value = "orphan", requires = "git_url")]
    pub git_prune: Prune,
    /// Drift default for Git-sourced Secrets (per object: annotation ksec.io/drift)
    #[arg(long, value_enum, default_value = "enforce", requires = "git_url")]
    pub git_drift: Drift,
    /// Namespace of the status ConfigMap and source events (default: $POD_NAMESPACE, else the first --namespace)
    #[arg(long, requires = "git_url")]
    pub git_status_namespace: Option<String>,
    /// Shared secret of POST /hook (GitHub X-Hub-Signature-256 or GitLab X-Gitlab-Token)
    #[arg(long, value_name = "FILE", requires = "git_url")]
    pub webhook_secret_file: Option<PathBuf>,
}

fn read_secret(p: &PathBuf, what: &str) -> Result<Zeroizing<String>> {
    let s = Zeroizing::new(
        std::fs::read_to_string(p).with_context(|| format!("{what} {}", p.display()))?,
    );
    let t = Zeroizing::new(s.trim().to_string());
    if t.is_empty() {
        return Err(usage(format!("{what} {}: empty", p.display())));
    }
    Ok(t)
}

impl GitArgs {
    /// `None` without `--git-url`. `tmp` keeps a default cache directory
    /// alive (and removed) with the caller.
    pub fn config(
        &self,
        namespaces: &[String],
        tmp: &mut Option<tempfile::TempDir>,
    ) -> Result<Option<GitSourceConfig>> {
        let Some(url) = &self.git_url else {
            return Ok(None);
        };
        let env_token = std::env::var("KSEC_GIT_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let auth = match (&self.git_ssh_key, &self.git_token_file, env_token) {
            (Some(_), Some(_), _) => {
                return Err(usage("--git-ssh-key and --git-token-file: choose one"));
            }
            (Some(key), None, _) => GitAuth::Ssh {
                key: std::path::absolute(key)?,
                known_hosts: std::path::absolute(
                    self.git_known_hosts
                        .as_ref()
                        .ok_or_else(|| usage("--git-ssh-key needs --git-known-hosts"))?,
                )?,
            },
            (None, Some(f), _) => GitAuth::Token {
                username: self.git_username.clone(),
                token: read_secret(f, "--git-token-file")?,
            },
            (None, None, Some(t)) => GitAuth::Token {
                username: self.git_username.clone(),
                token: Zeroizing::new(t.trim().to_string()),
            },
            (None, None, None) => GitAuth::None,
        };
        let cache = match &self.git_cache {
            Some(d) => d.clone(),
            None => {
                let d = tempfile::Builder::new()
                    .prefix("ksec-git-")
                    .tempdir()
                    .context("git cache directory")?;
                let p = d.path().join("repo");
                *tmp = Some(d);
                p
            }
        };
        let remote = GitRemote {
            url: url.clone(),
            branch: self.git_branch.clone(),
            path: self.git_path.trim_matches('/').to_string(),
            auth,
            cache,
            ca_file: self.git_ca_file.clone(),
        };
        remote.validate().map_err(|e| usage(e.to_string()))?;
        let status_namespace = self
            .git_status_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| namespaces.first().cloned())
            .ok_or_else(|| {
                usage("--git-url needs --git-status-namespace (or $POD_NAMESPACE, or --namespace)")
            })?;
        if self.git_name.is_empty()
            || self.git_name.len() > 53
            || !self
                .git_name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(usage(
                "--git-name: lowercase letters, digits and '-', at most 53 characters",
            ));
        }
        if self.git_interval < Duration::from_secs(1) {
            return Err(usage("--git-interval: at least 1s"));
        }
        let webhook_secret = match &self.webhook_secret_file {
            Some(f) => Some(Zeroizing::new(
                read_secret(f, "--webhook-secret-file")?.as_bytes().to_vec(),
            )),
            None => None,
        };
        Ok(Some(GitSourceConfig {
            remote,
            name: self.git_name.clone(),
            interval: self.git_interval,
            drift: match self.git_drift {
                Drift::Enforce => DriftMode::Enforce,
                Drift::Report => DriftMode::Report,
                Drift::Ignore => DriftMode::Ignore,
            },
            deletion: match self.git_prune {
                Prune::Orphan => DeletionPolicy::Orphan,
                Prune::Delete => DeletionPolicy::Delete,
            },
            status_namespace,
            webhook_secret,
        }))
    }
}
