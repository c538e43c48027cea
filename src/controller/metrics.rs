//! Prometheus metrics of the controller. Labels are reasons, outcomes,
//! namespaces and Secret names; never names of keys and never values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use std::collections::BTreeMap;

use super::status::Reason;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, OnceLock};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `success` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// A condition reason (DecryptFailed, NamespaceNotAllowed, MacMismatch, …).
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `executed`, `verified` or `failed`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SecretLabels {
    pub namespace: String,
    /// The generated Secret's name (not a key, not a value).
    pub secret: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RotationLabels {
    pub namespace: String,
    /// `verified`, `failed` or `rolled_back`.
    pub result: String,
}

impl SecretLabels {
    pub fn of(m: &Managed) -> SecretLabels {
        SecretLabels {
            namespace: m.namespace.clone(),
            secret: m.secret.clone(),
        }
    }
}

/// A Secret the controller manages, as of its last successful sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Managed {
    pub namespace: String,
    pub secret: String,
    /// The salted content hash stamped on consumers' pod templates.
    pub content_hash: String,
    /// sops `lastmodified` of the source document (Unix seconds; MAC-covered).
    pub lastmodified: Option<i64>,
}

/// Counts consumers still on an old content hash, from the controller's caches.
pub type StaleCounter = Box<dyn Fn(&[Managed]) -> BTreeMap<SecretLabels, i64> + Send + Sync>;
/// Does the EncryptedSecret `(namespace, name)` still exist?
pub type Alive = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    /// `ksec_controller_git_*` (the Git source).
    pub git: GitMetrics,
    pub eso: EsoMetrics,
    /// Workloads referencing a managed Secret whose pod template carries
    /// another content hash, or whose rollout to the current one is not complete.
    pub stale_consumers: Family<SecretLabels, Gauge>,
    /// Now minus the source document's sops `lastmodified`.
    pub ciphertext_age: Family<SecretLabels, Gauge<f64, AtomicU64>>,
    /// (namespace, EncryptedSecret name) → what it manages.
    managed: Mutex<BTreeMap<(String, String), Managed>>,
    stale_counter: OnceLock<StaleCounter>,
    alive: OnceLock<Alive>,
    pub syncs: Family<ResultLabels, Counter>,
    pub sync_errors: Family<ReasonLabels, Counter>,
    pub decrypt_errors: Family<ReasonLabels, Counter>,
    pub restarts: Family<OutcomeLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub drift_detected: Counter,
    /// 1 while this replica holds the lease (or runs without leader election).
    pub leader: Gauge,
    /// Watched Secrets (ESO-owned, opted in), by (namespace, name): their
    /// consumers count in `stale_consumers` too.
    watched: Mutex<BTreeMap<(String, String), Managed>>,
    pub watched_secrets: Gauge,
    /// Workload rollouts after a watched Secret's rotation, by result.
    pub rotation_rollouts: Family<RotationLabels, Counter>,
    /// 1 while a rotation waits for its SecretApproval.
    pub awaiting_approval: Family<SecretLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ksec_controller");
        let syncs = Family::<ResultLabels, Counter>::default();
        let sync_errors = Family::<ReasonLabels, Counter>::default();
        let decrypt_errors = Family::<ReasonLabels, Counter>::default();
        let restarts = Family::<OutcomeLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register("syncs", "EncryptedSecret syncs by result", syncs.clone());
        registry.register(
            "sync_errors",
            "Failed syncs by condition reason",
            sync_errors.clone(),
        );
        registry.register(
            "decrypt_errors",
            "Documents that did not decrypt, by reason",
            decrypt_errors.clone(),
        );
        registry.register(
            "restarts",
            "Consumer restarts by outcome (executed, verified, failed)",
            restarts.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile one EncryptedSecret",
            reconcile_duration.clone(),
        );
        let drift_detected = Counter::default();
        registry.register(
            "drift_detected",
            "Hand edits found and left in place (drift: report)",
            drift_detected.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 when this replica is the leader",
            leader.clone(),
        );
        let stale_consumers = Family::<SecretLabels, Gauge>::default();
        registry.register(
            "stale_consumers",
            "Workloads using a managed Secret whose pods may still run an old content hash",
            stale_consumers.clone(),
        );
        let ciphertext_age = Family::<SecretLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "ciphertext_age_seconds",
            "Seconds since the source document was last modified (sops lastmodified)",
            ciphertext_age.clone(),
        );
        let watched_secrets = Gauge::default();
        registry.register(
            "watched_secrets",
            "Secrets the rotation handler watches (ESO-owned or opted in)",
            watched_secrets.clone(),
        );
        let rotation_rollouts = Family::<RotationLabels, Counter>::default();
        registry.register(
            "rotation_rollouts",
            "Workload rollouts after a watched Secret rotated, by result (verified, failed, rolled_back)",
            rotation_rollouts.clone(),
        );
        let awaiting_approval = Family::<SecretLabels, Gauge>::default();
        registry.register(
            "rotation_awaiting_approval",
            "1 while a rotated Secret's rollout waits for a SecretApproval of its content hash",
            awaiting_approval.clone(),
        );
        let git = GitMetrics::register(&mut registry);
        let eso = EsoMetrics::register(&mut registry);
        Metrics {
            registry,
            git,
            eso,
            stale_consumers,
            ciphertext_age,
            managed: Default::default(),
            stale_counter: OnceLock::new(),
            alive: OnceLock::new(),
            leader,
            drift_detected,
            syncs,
            sync_errors,
            decrypt_errors,
            restarts,
            reconcile_duration,
            watched: Default::default(),
            watched_secrets,
            rotation_rollouts,
            awaiting_approval,
        }
    }

    /// A watched Secret's current content hash (its consumers are then
    /// counted in `stale_consumers`).
    pub fn watch_track(&self, m: Managed) {
        let mut map = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        map.insert((m.namespace.clone(), m.secret.clone()), m);
        self.watched_secrets.set(map.len() as i64);
    }

    /// A watched Secret is gone (or no longer watched): its series go.
    pub fn watch_untrack(&self, namespace: &str, secret: &str) {
        let mut map = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.remove(&(namespace.to_string(), secret.to_string())) {
            self.remove_series(&m);
            self.awaiting_approval.remove(&SecretLabels::of(&m));
        }
        self.watched_secrets.set(map.len() as i64);
    }

    pub fn rotation_rollout(&self, namespace: &str, result: &str) {
        self.rotation_rollouts
            .get_or_create(&RotationLabels {
                namespace: namespace.into(),
                result: result.into(),
            })
            .inc();
    }

    pub fn set_awaiting(&self, namespace: &str, secret: &str, waiting: bool) {
        let l = SecretLabels {
            namespace: namespace.into(),
            secret: secret.into(),
        };
        if waiting {
            self.awaiting_approval.get_or_create(&l).set(1);
        } else {
            self.awaiting_approval.remove(&l);
        }
    }

    pub fn sync_ok(&self) {
        self.syncs
            .get_or_create(&ResultLabels {
                result: "success".into(),
            })
            .inc();
    }

    pub fn sync_error(&self, reason: Reason) {
        self.syncs
            .get_or_create(&ResultLabels {
                result: "error".into(),
            })
            .inc();
        self.sync_errors
            .get_or_create(&ReasonLabels {
                reason: reason.as_str().into(),
            })
            .inc();
    }

    pub fn decrypt_error(&self, reason: Reason) {
        self.decrypt_errors
            .get_or_create(&ReasonLabels {
                reason: reason.as_str().into(),
            })
            .inc();
    }

    pub fn restart(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.restarts
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.into(),
                })
                .inc_by(n);
        }
    }

    pub fn drift(&self) {
        self.drift_detected.inc();
    }

    /// Records what an EncryptedSecret manages after a successful sync.
    pub fn track(&self, cr_name: &str, m: Managed) {
        let mut map = self.managed.lock().unwrap_or_else(|e| e.into_inner());
        let key = (m.namespace.clone(), cr_name.to_string());
        if let Some(old) = map.insert(key, m.clone())
            && old.secret != m.secret
        {
            self.remove_series(&old);
        }
    }

    fn remove_series(&self, m: &Managed) {
        let l = SecretLabels::of(m);
        self.stale_consumers.remove(&l);
        self.ciphertext_age.remove(&l);
    }

    /// How to count stale consumers (set once the workload caches exist).
    pub fn set_stale_counter(&self, f: StaleCounter) {
        let _ = self.stale_counter.set(f);
    }

    /// Consumers of `m`'s Secret not (yet) running its content hash (0 without caches).
    pub fn stale_of(&self, m: &Managed) -> i64 {
        let l = SecretLabels::of(m);
        self.stale_counter
            .get()
            .and_then(|count| count(std::slice::from_ref(m)).get(&l).copied())
            .unwrap_or(0)
    }

    /// How to tell whether an EncryptedSecret still exists (its series go with it).
    pub fn set_alive(&self, f: Alive) {
        let _ = self.alive.set(f);
    }

    /// Drops what deleted EncryptedSecrets managed, then sets the per-Secret
    /// gauges from the current state (called before every scrape).
    pub fn refresh(&self) {
        let managed: Vec<Managed> = {
            let mut map = self.managed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(alive) = self.alive.get() {
                let gone: Vec<(String, String)> = map
                    .keys()
                    .filter(|(ns, name)| !alive(ns, name))
                    .cloned()
                    .collect();
                for k in gone {
                    if let Some(m) = map.remove(&k) {
                        self.remove_series(&m);
                    }
                }
            }
            let mut all: Vec<Managed> = map.values().cloned().collect();
            let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            all.extend(watched.values().cloned());
            all
        };
        let now = chrono::Utc::now().timestamp();
        for m in &managed {
            let l = SecretLabels::of(m);
            match m.lastmodified {
                Some(t) => {
                    self.ciphertext_age.get_or_create(&l).set((now - t) as f64);
                }
                None => {
                    self.ciphertext_age.remove(&l);
                }
            }
        }
        if let Some(count) = self.stale_counter.get() {
            let counts = count(&managed);
            for m in &managed {
                let l = SecretLabels::of(m);
                let n = counts.get(&l).copied().unwrap_or(0);
                self.stale_consumers.get_or_create(&l).set(n);
            }
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        self.refresh();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabels {
    pub revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// applied, unchanged, drifted, refused, skipped.
    pub state: String,
}

/// The Git source's own series (`ksec_controller_git_*`).
#[derive(Clone)]
pub struct GitMetrics {
    pub fetches: Family<ResultLabels, Counter>,
    pub fetch_duration: Histogram,
    pub last_sync: Gauge<f64, AtomicU64>,
    pub revision: Family<RevisionLabels, Gauge>,
    pub files: Family<StateLabels, Gauge>,
    pub webhooks: Family<super::webhook::HookLabels, Counter>,
}

impl GitMetrics {
    pub fn register(reg: &mut Registry) -> GitMetrics {
        let m = GitMetrics {
            fetches: Default::default(),
            fetch_duration: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            last_sync: Default::default(),
            revision: Default::default(),
            files: Default::default(),
            webhooks: Default::default(),
        };
        reg.register(
            "git_fetches",
            "Fetches of the Git source by result",
            m.fetches.clone(),
        );
        reg.register(
            "git_fetch_duration_seconds",
            "Time to fetch the branch and read its tree",
            m.fetch_duration.clone(),
        );
        reg.register(
            "git_last_sync_timestamp_seconds",
            "When the Git source last completed a sync (fetched and applied)",
            m.last_sync.clone(),
        );
        reg.register(
            "git_revision_info",
            "The revision last synced (value 1)",
            m.revision.clone(),
        );
        reg.register(
            "git_files",
            "Files of the last sync by state",
            m.files.clone(),
        );
        reg.register(
            "git_webhook_requests",
            "POST /hook by result (accepted, ignored, unauthorized)",
            m.webhooks.clone(),
        );
        m
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EsoLabels {
    pub namespace: String,
    pub name: String,
    pub store: String,
}

/// External Secrets Operator's sync health (`ksec_controller_eso_*`).
#[derive(Clone, Default)]
pub struct EsoMetrics {
    pub age: Family<EsoLabels, Gauge<f64, AtomicU64>>,
    pub stale: Family<EsoLabels, Gauge>,
    pub failing: Family<EsoLabels, Gauge>,
    /// The series last set (to remove those whose ExternalSecret went).
    known: std::sync::Arc<Mutex<std::collections::HashSet<EsoLabels>>>,
}

impl EsoMetrics {
    pub fn register(reg: &mut Registry) -> EsoMetrics {
        let m = EsoMetrics::default();
        reg.register(
            "eso_sync_age_seconds",
            "Seconds since an ExternalSecret last synced from its store (status.refreshTime)",
            m.age.clone(),
        );
        reg.register(
            "eso_sync_stale",
            "1 when an ExternalSecret has not synced within twice its refreshInterval",
            m.stale.clone(),
        );
        reg.register(
            "eso_sync_failing",
            "1 when an ExternalSecret's Ready condition is False",
            m.failing.clone(),
        );
        m
    }

    /// Sets this round's series, then drops those of ExternalSecrets no
    /// longer there. Never clears first: a scrape in between would see the
    /// series missing and reset an alert's `for:` timer.
    pub fn set(&self, all: &[crate::eso::Health]) {
        let mut now = std::collections::HashSet::new();
        for h in all {
            let l = EsoLabels {
                namespace: h.namespace.clone(),
                name: h.name.clone(),
                store: h.store.clone(),
            };
            match h.age {
                Some(a) => {
                    self.age.get_or_create(&l).set(a.as_secs_f64());
                }
                None => {
                    self.age.remove(&l);
                }
            }
            self.stale.get_or_create(&l).set(i64::from(h.stale));
            self.failing.get_or_create(&l).set(i64::from(h.failing));
            now.insert(l);
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        for gone in known.difference(&now) {
            self.age.remove(gone);
            self.stale.remove(gone);
            self.failing.remove(gone);
        }
        *known = now;
    }
}
