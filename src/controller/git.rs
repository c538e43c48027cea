//! Fetching the controller's Git source with gix: one branch, shallow
//! (depth 1), into a bare cache repository. Files are read from the fetched
//! commit's tree in memory; nothing is checked out (they are ciphertext, but
//! a worktree would be one more copy to keep private).
//!
//! Credentials never reach a URL, a log line or an error: the token is handed
//! to gix through its credentials callback when the server asks for it, the
//! ssh deploy key through `core.sshCommand`, and every message is passed
//! through [`GitRemote::redact`].

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use gix::ObjectId;
use zeroize::Zeroizing;

/// Files larger than this are refused (an encrypted Secret is a few KiB).
pub const MAX_FILE_BYTES: usize = 4 << 20;

/// How to authenticate to the remote.
#[derive(Clone, Default)]
pub enum GitAuth {
    /// file://, git://, public https.
    #[default]
    None,
    /// https: Basic auth with this user name and token (GitHub: any user
    /// name, e.g. `x-access-token`; GitLab: `oauth2` or the token's user).
    Token {
        username: String,
        token: Zeroizing<String>,
    },
    /// ssh: a deploy key (mode 0600) and the known_hosts file to pin the host.
    Ssh { key: PathBuf, known_hosts: PathBuf },
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitAuth::None => f.write_str("None"),
            GitAuth::Token { username, .. } => write!(f, "Token {{ username: {username:?} }}"),
            GitAuth::Ssh { key, known_hosts } => f
                .debug_struct("Ssh")
                .field("key", key)
                .field("known_hosts", known_hosts)
                .finish(),
        }
    }
}

/// Where the Secrets live: a branch and a folder of a repository.
#[derive(Clone, Debug)]
pub struct GitRemote {
    pub url: String,
    pub branch: String,
    /// Folder inside the repository ("" = the whole tree).
    pub path: String,
    pub auth: GitAuth,
    /// The bare cache repository (created when missing).
    pub cache: PathBuf,
    /// Extra PEM CA certificates for https (a private Git server).
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{0}")]
    Config(String),
    #[error("fetch {url} (branch {branch}): {message}")]
    Fetch {
        url: String,
        branch: String,
        message: String,
    },
    #[error("read revision {revision} of {url}: {message}")]
    Read {
        url: String,
        revision: String,
        message: String,
    },
}

/// One file of the fetched tree.
#[derive(Clone, Debug)]
pub struct GitFile {
    /// Path from the repository root.
    pub path: String,
    /// Blob id: unchanged id, unchanged ciphertext.
    pub blob: String,
    pub bytes: Vec<u8>,
}

/// The files of one revision under [`GitRemote::path`].
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub revision: String,
    /// YAML / JSON files, sorted by path.
    pub files: Vec<GitFile>,
    /// Files refused before parsing (too large), with the reason.
    pub oversized: Vec<String>,
}

/// `scheme://user:password@host/...` → `scheme://user:***@host/...`; other
/// forms (scp-like `git@host:repo`) carry no password and are kept.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl GitRemote {
    /// Refuses configurations that would leak or weaken credentials.
    pub fn validate(&self) -> Result<(), GitError> {
        if let Ok(u) = url::Url::parse(&self.url)
            && u.password().is_some()
        {
            return Err(GitError::Config(format!(
                "--git-url {}: put the token in --git-token-file or $KSEC_GIT_TOKEN, not in the URL",
                redact_url(&self.url)
            )));
        }
        if self.branch.is_empty() || self.branch.starts_with('-') || self.branch.contains("..") {
            return Err(GitError::Config(format!(
                "--git-branch {:?}: not a branch name",
                self.branch
            )));
        }
        if let GitAuth::Ssh { key, known_hosts } = &self.auth {
            for p in [key, known_hosts] {
                let s = p.to_string_lossy();
                if !p.is_absolute() || s.contains(['\'', '"', '\\', '\n']) {
                    return Err(GitError::Config(format!(
                        "{}: ssh key and known_hosts need an absolute path without quotes",
                        p.display()
                    )));
                }
            }
            check_key_mode(key)?;
            if !known_hosts.is_file() {
                return Err(GitError::Config(format!(
                    "--git-known-hosts {}: not a file (the host key must be pinned)",
                    known_hosts.display()
                )));
            }
        }
        Ok(())
    }

    /// The URL without password, and any occurrence of the token removed.
    pub fn redact(&self, msg: &str) -> String {
        let mut m = msg.replace(&self.url, &redact_url(&self.url));
        if let GitAuth::Token { token, .. } = &self.auth
            && !token.is_empty()
        {
            m = m.replace(token.as_str(), "***");
        }
        m
    }

    fn fetch_err(&self, e: impl std::fmt::Display) -> GitError {
        GitError::Fetch {
            url: redact_url(&self.url),
            branch: self.branch.clone(),
            message: self.redact(&format!("{e:#}")),
        }
    }

    /// Opens the cache, creating it on first use. Isolated: no system or
    /// user git configuration (credential helpers, `url.insteadOf`) applies.
    fn open_cache(&self) -> Result<gix::Repository, GitError> {
        if !self.cache.join("HEAD").exists() {
            std::fs::create_dir_all(&self.cache).map_err(|e| {
                GitError::Config(format!("--git-cache {}: {e}", self.cache.display()))
            })?;
            gix::init_bare(&self.cache).map_err(|e| {
                GitError::Config(format!("--git-cache {}: {e}", self.cache.display()))
            })?;
        }
        let mut repo = gix::open_opts(&self.cache, gix::open::Options::isolated())
            .map_err(|e| GitError::Config(format!("--git-cache {}: {e}", self.cache.display())))?;
        repo.object_cache_size_if_unset(16 << 20);
        if let GitAuth::Ssh { key, known_hosts } = &self.auth {
            let cmd = format!(
                "ssh -i '{}' -o UserKnownHostsFile='{}' -o StrictHostKeyChecking=yes \
                 -o IdentitiesOnly=yes -o BatchMode=yes -o GlobalKnownHostsFile=/dev/null",
                key.display(),
                known_hosts.display()
            );
            let mut cfg = repo.config_snapshot_mut();
            cfg.set_raw_value(gix::config::tree::Core::SSH_COMMAND, cmd.as_str())
                .map_err(|e| GitError::Config(format!("core.sshCommand: {e}")))?;
            cfg.set_raw_value("ssh.variant", "ssh")
                .map_err(|e| GitError::Config(format!("ssh.variant: {e}")))?;
            cfg.commit()
                .map_err(|e| GitError::Config(format!("git configuration: {e}")))?;
        }
        Ok(repo)
    }

    /// Fetches the branch (blocking: network and pack indexing) and reads
    /// the files under `path` from its tip.
    pub fn fetch(&self) -> Result<Snapshot, GitError> {
        let repo = self.open_cache()?;
        let tracking = format!("refs/remotes/origin/{}", self.branch);
        let refspec = format!("+refs/heads/{}:{tracking}", self.branch);
        let remote = repo
            .remote_at(self.url.as_str())
            .map_err(|e| self.fetch_err(e))?
            .with_refspecs([refspec.as_str()], gix::remote::Direction::Fetch)
            .map_err(|e| self.fetch_err(e))?;
        let conn = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| self.fetch_err(e))?;
        // Our callback replaces git's credential helpers and prompts: the
        // token or nothing.
        let auth = self.auth.clone();
        let conn = conn.with_credentials(move |action| match (action, &auth) {
            (gix::credentials::helper::Action::Get(ctx), GitAuth::Token { username, token }) => {
                Ok(Some(gix::credentials::protocol::Outcome {
                    identity: gix::sec::identity::Account {
                        username: username.clone(),
                        password: token.to_string(),
                        oauth_refresh_token: None,
                    },
                    next: ctx.into(),
                }))
            }
            _ => Ok(None),
        });
        let conn = match &self.ca_file {
            Some(ca) => conn.with_transport_options(self.tls_options(&repo, ca)?),
            None => conn,
        };
        let shallow = gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN);
        conn.prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| self.fetch_err(e))?
            .with_shallow(shallow)
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| self.fetch_err(e))?;
        let id = repo
            .find_reference(tracking.as_str())
            .map_err(|e| {
                self.fetch_err(format!(
                    "branch {} not found on the remote: {e}",
                    self.branch
                ))
            })?
            .into_fully_peeled_id()
            .map_err(|e| self.fetch_err(e))?
            .detach();
        self.read(&repo, id)
    }

    /// http transport options trusting `ca` in addition to the system roots.
    fn tls_options(
        &self,
        repo: &gix::Repository,
        ca: &Path,
    ) -> Result<Box<dyn std::any::Any>, GitError> {
        use gix::protocol::transport::client::blocking_io::http;
        let cfg = |m: String| GitError::Config(format!("--git-ca-file {}: {m}", ca.display()));
        let pem = std::fs::read(ca).map_err(|e| cfg(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| cfg(e.to_string()))?;
        let mut opts = repo
            .transport_options(self.url.as_str(), None)
            .map_err(|e| self.fetch_err(e))?
            .ok_or_else(|| cfg("only https URLs use a CA file".into()))?;
        let o = opts
            .downcast_mut::<http::Options>()
            .ok_or_else(|| cfg("only https URLs use a CA file".into()))?;
        let backend = http::reqwest::Options {
            configure_client: Some(Box::new(move |b| {
                Ok(certs
                    .iter()
                    .cloned()
                    .fold(b, |b, c| b.add_root_certificate(c)))
            })),
            configure_request: None,
        };
        o.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(backend)));
        Ok(opts)
    }

    fn read(&self, repo: &gix::Repository, commit: ObjectId) -> Result<Snapshot, GitError> {
        let revision = commit.to_hex().to_string();
        let err = |m: String| GitError::Read {
            url: redact_url(&self.url),
            revision: revision.clone(),
            message: m,
        };
        let tree = repo
            .find_commit(commit)
            .and_then(|c| Ok(c.tree_id()?.detach()))
            .map_err(|e| err(e.to_string()))?;
        let path = self.path.trim_matches('/');
        let root = if path.is_empty() {
            tree
        } else {
            let t = repo.find_tree(tree).map_err(|e| err(e.to_string()))?;
            let entry = t
                .lookup_entry_by_path(path)
                .map_err(|e| err(e.to_string()))?
                .ok_or_else(|| err(format!("--git-path {path:?} does not exist")))?;
            if !entry.mode().is_tree() {
                return Err(err(format!("--git-path {path:?} is not a folder")));
            }
            entry.object_id()
        };
        let mut ids: HashMap<String, ObjectId> = HashMap::new();
        crate::guard::git::tree_map(repo, root, path, &mut ids).map_err(|e| err(e.to_string()))?;
        let mut files = Vec::new();
        let mut oversized = Vec::new();
        for (p, id) in ids {
            if !is_manifest(&p) {
                continue;
            }
            let header = repo.find_header(id).map_err(|e| err(e.to_string()))?;
            if header.size() as usize > MAX_FILE_BYTES {
                oversized.push(p);
                continue;
            }
            let mut b = repo.find_blob(id).map_err(|e| err(e.to_string()))?;
            files.push(GitFile {
                path: p,
                blob: id.to_hex().to_string(),
                bytes: b.take_data(),
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        oversized.sort();
        Ok(Snapshot {
            revision,
            files,
            oversized,
        })
    }
}

fn is_manifest(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    l.ends_with(".yaml") || l.ends_with(".yml") || l.ends_with(".json")
}

/// A deploy key readable by others is refused, as ssh itself would.
fn check_key_mode(key: &Path) -> Result<(), GitError> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(key)
        .map_err(|e| GitError::Config(format!("--git-ssh-key {}: {e}", key.display())))?;
    // A Kubernetes Secret volume shows files as symlinks to 0400/0600 (defaultMode).
    if md.mode() & 0o077 != 0 {
        return Err(GitError::Config(format!(
            "--git-ssh-key {}: mode {:o}; the deploy key must not be readable by group or others (0600 or 0400)",
            key.display(),
            md.mode() & 0o777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls_and_messages() {
        assert_eq!(
            redact_url("https://u:tok3n@example.com/r.git"),
            "https://u:***@example.com/r.git"
        );
        assert_eq!(redact_url("git@example.com:r.git"), "git@example.com:r.git");
        let r = GitRemote {
            url: "https://example.com/r.git".into(),
            branch: "main".into(),
            path: String::new(),
            auth: GitAuth::Token {
                username: "x".into(),
                token: Zeroizing::new("s3cr3t-token".into()),
            },
            cache: PathBuf::from("/nonexistent"),
            ca_file: None,
        };
        assert_eq!(r.redact("got s3cr3t-token back"), "got *** back");
        assert!(!format!("{:?}", r.auth).contains("s3cr3t"));
    }

    #[test]
    fn tokens_in_urls_and_loose_keys_are_refused() {
        let mut r = GitRemote {
            url: "https://u:tok@example.com/r.git".into(),
            branch: "main".into(),
            path: String::new(),
            auth: GitAuth::None,
            cache: PathBuf::from("/nonexistent"),
            ca_file: None,
        };
        let e = r.validate().unwrap_err().to_string();
        assert!(e.contains("--git-token-file") && !e.contains("tok@"), "{e}");
        r.url = "https://example.com/r.git".into();
        r.branch = "--upload-pack=x".into();
        assert!(r.validate().is_err());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "k").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let kh = dir.path().join("known_hosts");
        std::fs::write(&kh, "").unwrap();
        r.branch = "main".into();
        r.auth = GitAuth::Ssh {
            key: key.clone(),
            known_hosts: kh,
        };
        assert!(r.validate().unwrap_err().to_string().contains("mode 644"));
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        r.validate().unwrap();
    }
}
