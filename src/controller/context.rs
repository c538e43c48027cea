//! What both sources share: the controller's context (client, keys,
//! scope, metrics, recorder), and the steps of the sync pipeline that do
//! not depend on where a Secret comes from — running the `ksec apply`
//! engine, classifying refusals, collecting rollout failures.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::Recorder;

use super::crd::EncryptedSecretStatus;
use super::metrics::Metrics;
use super::status::Reason;
use crate::cluster::apply::ApplyOptions;
use crate::cluster::source::OpenRefusal;
use crate::cluster::verify::Outcome;
use crate::cluster::{self, Loaded};
use crate::keys::{KeyError, KeyRing};
use crate::manifest::IdentityError;
use crate::ops::OpError;
use crate::recipients::Boundary;

/// Which namespaces this controller may write to.
#[derive(Debug, Default)]
pub struct Scope {
    /// `--namespace` (empty: any namespace the environment owns), `--env`, `recipients/`.
    pub boundary: Boundary,
    pub allow_mac_only: bool,
}

impl Scope {
    /// `None` when allowed, else why not ([`Boundary::check_namespace`]).
    pub fn refuse(&self, ns: &str) -> Option<String> {
        self.boundary
            .check_namespace(ns)
            .err()
            .map(|e| e.to_string())
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: kube::Client,
    pub ring: Arc<KeyRing>,
    pub scope: Arc<Scope>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// How long to wait for restarted consumers to roll out.
    pub rollout_timeout: Duration,
    /// Re-check a Ready object this often.
    pub resync: Duration,
    /// Workloads from the controller's caches (no LIST per sync).
    pub workloads: Option<crate::cluster::consumers::WorkloadSource>,
    /// The generated Secrets as last seen by the watch (values as digests).
    pub own: super::workloads::OwnSecrets,
    /// The status this controller last wrote per object: the watch cache
    /// the next reconcile reads may not show it yet.
    pub written:
        std::sync::Mutex<std::collections::HashMap<(String, String), EncryptedSecretStatus>>,
    /// Which rotations wait for approval (`--recipients-dir`, namespace labels).
    pub approval: crate::cluster::approval::Gate,
}

/// The apply engine's future is not provably `Send` (rustc's higher-ranked
/// lifetime limits with borrowed stream closures), so it is driven on a
/// blocking-pool thread with the same runtime's handle; `make` builds it there.
pub async fn off_thread<F, Fut, T>(make: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(make())).await
}

/// [`cluster::apply`] on [`off_thread`]. Both sources use it.
pub async fn apply_off_thread(
    client: kube::Client,
    loaded: Loaded,
    opts: ApplyOptions,
) -> Result<Result<cluster::Report, cluster::ClusterError>, tokio::task::JoinError> {
    off_thread(move || async move { cluster::apply(&client, loaded, &opts).await }).await
}

/// Maps a refusal of the source layer to a condition reason.
pub fn classify(r: &OpenRefusal) -> Reason {
    match r {
        OpenRefusal::NotEncrypted(_) => Reason::DecryptFailed,
        OpenRefusal::Namespace(_) => Reason::NamespaceNotAllowed,
        OpenRefusal::Identity(IdentityError::WrongNamespace { .. }) => Reason::NamespaceNotAllowed,
        OpenRefusal::Identity(_) => Reason::InvalidSpec,
        OpenRefusal::Invalid(_) => Reason::InvalidSpec,
        OpenRefusal::Decrypt(e) => match e {
            OpError::MacMismatch | OpError::MacMissing | OpError::MacUndecryptable(_) => {
                Reason::MacMismatch
            }
            OpError::Key(KeyError::NoKey { .. } | KeyError::NoIdentity) => Reason::MissingKey,
            _ => Reason::DecryptFailed,
        },
    }
}

/// Workloads that did not roll out, by kind and name (shared with the CRD source).
pub fn rollout_failures(report: &cluster::Report) -> Vec<String> {
    report
        .restarted
        .iter()
        .filter_map(|w| match &w.outcome {
            Some(Outcome::Failed(m)) | Some(Outcome::TimedOut(m)) => {
                Some(format!("{} {}/{}: {m}", w.kind, w.namespace, w.name))
            }
            _ => None,
        })
        .collect()
}
