//! Applying encrypted Secrets to a cluster and closing the "sync gap": a
//! Secret is only done when every workload that uses it runs the new value.
//!
//! Shared by `ksec apply` / `ksec diff` and the in-cluster controller:
//! - [`source`]: decrypt files in memory and enforce the namespace boundary (no cluster);
//! - [`apply`]: server-side apply (field manager `ksec`), restart, verify, prune;
//! - [`consumers`], [`restart`], [`verify`], [`diff`], [`inventory`]: the steps.
//!
//! Values never leave memory: reports, errors and logs carry key names and
//! salted hashes only.

pub mod apply;
pub mod approval;
pub mod consumers;
pub mod diff;
pub mod inventory;
pub mod restart;
/// Moved out of `cluster` (export needs it without a cluster); kept here for its callers.
pub use crate::source;
pub mod verify;

use std::path::PathBuf;

pub use apply::{ApplyOptions, Report, apply};
pub use source::{Loaded, SourceOptions, load};

/// The field manager of every write ksec makes.
pub const FIELD_MANAGER: &str = "ksec";
/// Set on every Secret ksec applies.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "ksec";
/// Which inventory (source tree) a Secret belongs to; prune stays inside one.
pub const LABEL_INVENTORY: &str = "ksec.io/inventory";
/// Salted hash of the decrypted data (the salt lives on the Secret only, so
/// the hash copied onto pod templates cannot be brute-forced by readers of Deployments).
pub const ANN_CONTENT_HASH: &str = "ksec.io/content-hash";
pub const ANN_HASH_SALT: &str = "ksec.io/hash-salt";
/// Pod-template annotation prefix: `secret.ksec.io/<secret name>: <content hash>`.
pub const ANN_TEMPLATE_PREFIX: &str = "secret.ksec.io/";
/// Workload annotation: `"false"` opts the workload out of restarts.
pub const ANN_RESTART: &str = "ksec.io/restart";

/// Errors talking to the cluster. Messages carry names, never values.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("kubeconfig: {0}")]
    Config(String),
    #[error("forbidden: {0}\n(the credentials in use lack RBAC permission; nothing was applied)")]
    Forbidden(String),
    #[error("{what}: {message} ({code} {reason})")]
    Api {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{what}: cannot reach the API server: {message}")]
    Transport { what: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl ClusterError {
    /// Wraps a kube error with what was being done; keeps status code and reason.
    pub fn from_kube(what: impl Into<String>, e: kube::Error) -> ClusterError {
        let what = what.into();
        match e {
            kube::Error::Api(s) if s.code == 403 => {
                ClusterError::Forbidden(if s.message.is_empty() {
                    what
                } else {
                    s.message.clone()
                })
            }
            kube::Error::Api(s) => ClusterError::Api {
                what,
                code: s.code,
                reason: s.reason.clone(),
                message: s.message.clone(),
            },
            other => ClusterError::Transport {
                what,
                message: other.to_string(),
            },
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self {
            ClusterError::Api { code, .. } => Some(*code),
            ClusterError::Forbidden(_) => Some(403),
            _ => None,
        }
    }
}

/// How to reach the cluster: kubeconfig (file, `--context`) or in-cluster.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub in_cluster: bool,
}

/// A client and the namespace objects without one go to (the context's, or `default`).
pub async fn connect(opts: &ConnectOptions) -> Result<(kube::Client, String), ClusterError> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let kopts = KubeConfigOptions {
        context: opts.context.clone(),
        ..Default::default()
    };
    let cfg = if opts.in_cluster {
        Config::incluster().map_err(|e| ClusterError::Config(e.to_string()))?
    } else if let Some(p) = &opts.kubeconfig {
        let kc = Kubeconfig::read_from(p)
            .map_err(|e| ClusterError::Config(format!("{}: {e}", p.display())))?;
        Config::from_custom_kubeconfig(kc, &kopts)
            .await
            .map_err(|e| ClusterError::Config(format!("{}: {e}", p.display())))?
    } else {
        match Config::from_kubeconfig(&kopts).await {
            Ok(c) => c,
            Err(e) if opts.context.is_none() => Config::incluster().map_err(|_| {
                ClusterError::Config(format!(
                    "no kubeconfig ({e}) and not running in a cluster; set KUBECONFIG or --kubeconfig"
                ))
            })?,
            Err(e) => return Err(ClusterError::Config(e.to_string())),
        }
    };
    let ns = cfg.default_namespace.clone();
    let client = kube::Client::try_from(cfg).map_err(|e| ClusterError::Config(e.to_string()))?;
    Ok((client, ns))
}

/// `ns/name`, the way kubectl users read it.
pub fn nsname(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}
