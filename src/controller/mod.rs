//! `ksec controller`: runs in the cluster, turns `EncryptedSecret` objects
//! into Secrets with the `ksec apply` engine (apply, restart, verify), and
//! reports status conditions, events and Prometheus metrics.
//!
//! It watches only its own objects: EncryptedSecrets in its namespaces (or
//! cluster-wide) and Secrets carrying [`ownership::LABEL_SOURCE`] — never a
//! cache of every Secret in the cluster.

pub mod context;
pub mod crd;
pub mod eso_health;
pub mod git;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod ownership;
pub mod sources;
pub mod status;
pub mod webhook;
pub mod workloads;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};

use context::{Context, Scope};
pub use crd::{EncryptedSecret, EncryptedSecretSpec, EncryptedSecretStatus};
use ownership::LABEL_SOURCE;
use sources::{encrypted_secret, git as gitsource, watched};

use crate::cluster::{ClusterError, ConnectOptions};
use crate::keys::KeyRing;
use crate::recipients::{Boundary, RecipientsDir, ScopeError};

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Config(String),
    #[error("lost leadership of lease {0}; stopping so that only one replica writes")]
    LostLease(String),
    #[error("metrics server on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Config {
    pub connect: ConnectOptions,
    /// Watch and write only these namespaces (empty: cluster-wide, limited by `env`).
    pub namespaces: Vec<String>,
    /// The environment this controller serves (its namespaces, from `recipients_dir`).
    pub env: Option<String>,
    pub recipients_dir: Option<PathBuf>,
    pub allow_mac_only: bool,
    pub metrics_addr: SocketAddr,
    pub rollout_timeout: Duration,
    pub resync: Duration,
    pub ring: KeyRing,
    /// Event reporter instance (pod name).
    pub instance: Option<String>,
    /// Run only while holding this Lease.
    pub leader_election: Option<leader::LeaseOptions>,
    /// Also follow a Git repository (`--git-url`).
    pub git: Option<gitsource::GitSourceConfig>,
    /// Export ExternalSecrets' sync health this often (`None`: off).
    pub eso_interval: Option<Duration>,
    /// Roll consumers of watched Secrets (`--watch-secrets`; `None`: off).
    pub watch: Option<watched::WatchConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("namespaces", &self.namespaces)
            .field("env", &self.env)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

/// Runs until SIGTERM / Ctrl-C.
pub async fn run(cfg: Config) -> Result<(), ControllerError> {
    let (scope, approval) = build_scope(&cfg)?;
    let scope = Arc::new(scope);
    let (client, _) = crate::cluster::connect(&cfg.connect).await?;
    let metrics = Arc::new(metrics::Metrics::new());
    let git_trigger = Arc::new(tokio::sync::Notify::new());
    let health = serve_health(&cfg, &metrics, &git_trigger).await?;
    if let Some(lo) = &cfg.leader_election {
        // A standby is healthy and ready (a rolling update must be able to proceed).
        health.ready.store(true, Ordering::Relaxed);
        tokio::select! {
            _ = leader::acquire(&client, lo) => {}
            _ = shutdown_signal() => {
                tracing::info!("shut down while standing by");
                return Ok(());
            }
        }
        health.ready.store(false, Ordering::Relaxed);
    }
    metrics.leader.set(1);
    // One watch scope per namespace (a namespaced install needs only Roles), or cluster-wide.
    let scopes: Vec<Option<String>> = if cfg.namespaces.is_empty() {
        vec![None]
    } else {
        cfg.namespaces.iter().cloned().map(Some).collect()
    };
    let others = cfg.git.is_some() || cfg.watch.is_some();
    let cr_source = crd_installed(&client, &scopes, others).await?;
    // Workloads in the watched namespaces (never Secrets): consumer lookups
    // without a LIST per sync, and the stale-consumer gauge.
    let cached = workloads::Workloads::start(&client, &scopes);
    let (own, controllers) = if cr_source {
        cr_controllers(&client, &scopes)
    } else {
        Default::default()
    };
    let reporter = Reporter {
        controller: "ksec-controller".into(),
        instance: cfg.instance.clone(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        ring: Arc::new(cfg.ring),
        scope,
        metrics,
        recorder: Recorder::new(client.clone(), reporter),
        rollout_timeout: cfg.rollout_timeout,
        resync: cfg.resync,
        workloads: Some(cached.source()),
        own,
        written: Default::default(),
        approval,
    });
    let stores: Vec<Store<EncryptedSecret>> = controllers.iter().map(|c| c.store()).collect();
    let mut runs: Vec<BoxFuture<'static, ()>> = controllers
        .into_iter()
        .map(|c| run_crd_source(c, ctx.clone(), cached.clone()))
        .collect();
    if let Some(g) = cfg.git {
        tracing::info!(source = ?g, "following the Git source");
        let (ctx, caches, trigger) = (ctx.clone(), cached.clone(), git_trigger.clone());
        runs.push(
            async move {
                caches.wait_until_ready().await;
                gitsource::run(Arc::new(g), ctx, trigger).await
            }
            .boxed(),
        );
    }
    if let Some(w) = cfg.watch {
        tracing::info!(selector = ?w.selector, "rolling the consumers of watched Secrets");
        let (ctx, caches, scopes) = (ctx.clone(), cached.clone(), scopes.clone());
        runs.push(
            async move {
                caches.wait_until_ready().await;
                watched::run(w, ctx, scopes).await
            }
            .boxed(),
        );
    }
    if let Some(every) = cfg.eso_interval {
        let (client, metrics) = (client.clone(), ctx.metrics.clone());
        tokio::spawn(eso_health::run(client, scopes.clone(), metrics, every));
    }
    wire_metrics(&ctx, &cached, &stores);
    tokio::spawn(ready_when_synced(cached, stores, health));
    run_to_the_end(runs, &client, cfg.leader_election.as_ref()).await?;
    tracing::info!("shut down");
    Ok(())
}

/// Where this controller may write: `--namespace` and/or `--env`, said
/// before anything connects; and which environments gate rotations.
fn build_scope(cfg: &Config) -> Result<(Scope, crate::cluster::approval::Gate), ControllerError> {
    let recipients = match &cfg.recipients_dir {
        Some(dir) => {
            Some(RecipientsDir::load(dir).map_err(|e| ControllerError::Config(e.to_string()))?)
        }
        None => None,
    };
    // Cluster-wide, the ClusterRole may read Namespaces (their gate label);
    // a namespaced install's Role cannot.
    let approval =
        crate::cluster::approval::Gate::new(recipients.as_ref(), cfg.namespaces.is_empty());
    let namespaces = cfg.namespaces.iter().cloned().collect::<BTreeSet<_>>();
    let boundary = Boundary::new(recipients, cfg.env.clone(), namespaces).map_err(|e| match e {
        ScopeError::EnvWithoutRecipients => ControllerError::Config(
            "--env needs --recipients-dir (the recipients/ directory, e.g. mounted from a ConfigMap)".into(),
        ),
        e => ControllerError::Config(e.to_string()),
    })?;
    if cfg.namespaces.is_empty() && cfg.env.is_none() {
        return Err(ControllerError::Config(
            "say where this controller may write: --namespace NS (repeatable) and/or --env ENV"
                .into(),
        ));
    }
    Ok((
        Scope {
            boundary,
            allow_mac_only: cfg.allow_mac_only,
        },
        approval,
    ))
}

/// `/metrics`, `/healthz`, `/readyz` and, with a webhook secret, `/hook`.
async fn serve_health(
    cfg: &Config,
    metrics: &Arc<metrics::Metrics>,
    git_trigger: &Arc<tokio::sync::Notify>,
) -> Result<Arc<http::Health>, ControllerError> {
    let hook = cfg.git.as_ref().and_then(|g| {
        let secret = g.webhook_secret.clone()?;
        let mut w = webhook::Webhook::new(secret, &g.remote.branch, git_trigger.clone());
        w.calls = metrics.git.webhooks.clone();
        Some(Arc::new(w))
    });
    let health = Arc::new(http::Health {
        metrics: metrics.clone(),
        ready: Default::default(),
        hook,
    });
    let bound = http::serve(cfg.metrics_addr, health.clone())
        .await
        .map_err(|source| ControllerError::Listen {
            addr: cfg.metrics_addr,
            source,
        })?;
    tracing::info!("metrics listening on http://{bound}/metrics");
    Ok(health)
}

/// Fails early and clearly when the CRD is missing or RBAC is short. With
/// a Git source or watched Secrets, a missing CRD only turns the
/// EncryptedSecret source off (`false`).
async fn crd_installed(
    client: &kube::Client,
    scopes: &[Option<String>],
    other_sources: bool,
) -> Result<bool, ControllerError> {
    for s in scopes {
        let api: Api<EncryptedSecret> = match s {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let Err(e) = api.list(&ListParams::default().limit(1)).await else {
            continue;
        };
        let what = match s {
            Some(ns) => format!("list encryptedsecrets.ksec.io in {ns}"),
            None => "list encryptedsecrets.ksec.io (all namespaces)".into(),
        };
        let err = ClusterError::from_kube(what, e);
        return match err.code() {
            Some(404) if other_sources => {
                tracing::info!(
                    "the EncryptedSecret CRD is not installed: following the other sources only"
                );
                Ok(false)
            }
            Some(404) => Err(ControllerError::Config(format!(
                "{err}\nthe EncryptedSecret CRD is not installed: ksec controller crd | kubectl apply -f -"
            ))),
            _ => Err(ControllerError::Cluster(err)),
        };
    }
    Ok(true)
}

/// Per scope: the EncryptedSecret watch, filtered to spec (generation) and
/// annotation changes, so the controller's own status writes do not wake
/// it; and its own Secrets, whose store the reconciles read before any GET.
fn cr_controllers(
    client: &kube::Client,
    scopes: &[Option<String>],
) -> (workloads::OwnSecrets, Vec<Controller<EncryptedSecret>>) {
    let mut own = workloads::OwnSecrets::default();
    let mut controllers = Vec::new();
    for s in scopes {
        let (crs, secrets): (Api<EncryptedSecret>, Api<Secret>) = match s {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        let (reader, writer) = reflector::store();
        let crs = watcher(crs, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .applied_objects()
            .predicate_filter(
                predicates::generation.combine(predicates::annotations),
                Default::default(),
            );
        let secrets = own.watch(secrets, LABEL_SOURCE);
        let controller = Controller::for_stream(crs, reader)
            // Each sync may hold a blocking-pool thread while it verifies a rollout;
            // 16 in flight keep the API server busy (benches/controller.sh).
            .with_config(kube::runtime::controller::Config::default().concurrency(16))
            .watches_stream(secrets, |s: Secret| {
                let owner = s.labels().get(LABEL_SOURCE).cloned()?;
                Some(ObjectRef::<EncryptedSecret>::new(&owner).within(&s.namespace()?))
            })
            .shutdown_on_signal();
        controllers.push(controller);
    }
    (own, controllers)
}

/// Consumers are looked up in the caches: reconcile only once they are filled.
fn run_crd_source(
    controller: Controller<EncryptedSecret>,
    ctx: Arc<Context>,
    caches: workloads::Workloads,
) -> BoxFuture<'static, ()> {
    async move {
        caches.wait_until_ready().await;
        controller
            .run(
                encrypted_secret::reconcile,
                encrypted_secret::error_policy,
                ctx,
            )
            .for_each(|res| async move {
                match res {
                    Ok((o, _)) => tracing::debug!(object = %o, "reconciled"),
                    Err(e) => tracing::warn!(error = %e, "controller"),
                }
            })
            .await
    }
    .boxed()
}

/// The stale-consumer gauge reads the workload caches; a tracked Secret
/// whose EncryptedSecret is gone stops being tracked.
fn wire_metrics(ctx: &Context, cached: &workloads::Workloads, stores: &[Store<EncryptedSecret>]) {
    let c = cached.clone();
    ctx.metrics
        .set_stale_counter(Box::new(move |managed| c.stale(managed)));
    let crs = stores.to_vec();
    ctx.metrics.set_alive(Box::new(move |ns, name| {
        let r = ObjectRef::<EncryptedSecret>::new(name).within(ns);
        crs.iter().any(|s| s.get(&r).is_some())
    }));
}

async fn ready_when_synced(
    cached: workloads::Workloads,
    stores: Vec<Store<EncryptedSecret>>,
    health: Arc<http::Health>,
) {
    cached.wait_until_ready().await;
    for st in stores {
        // Re-polled each second: a missed wake-up must not keep /readyz down.
        while tokio::time::timeout(Duration::from_secs(1), st.wait_until_ready())
            .await
            .is_err()
        {}
    }
    health.ready.store(true, Ordering::Relaxed);
    tracing::info!("watches synced; ready");
}

/// Runs the sources until shutdown; under leader election, stops when the lease is lost.
async fn run_to_the_end(
    runs: Vec<BoxFuture<'static, ()>>,
    client: &kube::Client,
    leader: Option<&leader::LeaseOptions>,
) -> Result<(), ControllerError> {
    let Some(lo) = leader else {
        futures_util::future::join_all(runs).await;
        return Ok(());
    };
    tokio::select! {
        _ = futures_util::future::join_all(runs) => {
            leader::release(client, lo).await;
            Ok(())
        }
        _ = leader::hold(client, lo) => {
            Err(ControllerError::LostLease(format!("{}/{}", lo.namespace, lo.name)))
        }
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
