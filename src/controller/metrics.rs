//! Prometheus metrics of the controller. Labels are reasons, outcomes and
//! namespaces; never names of keys and never values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

pub struct Metrics {
    registry: Registry,
    pub syncs: Family<ResultLabels, Counter>,
    pub sync_errors: Family<ReasonLabels, Counter>,
    pub decrypt_errors: Family<ReasonLabels, Counter>,
    pub restarts: Family<OutcomeLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub drift_detected: Counter,
    /// 1 while this replica holds the lease (or runs without leader election).
    pub leader: Gauge,
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
        Metrics {
            registry,
            leader,
            drift_detected,
            syncs,
            sync_errors,
            decrypt_errors,
            restarts,
            reconcile_duration,
        }
    }

    pub fn sync_ok(&self) {
        self.syncs
            .get_or_create(&ResultLabels {
                result: "success".into(),
            })
            .inc();
    }

    pub fn sync_error(&self, reason: &str) {
        self.syncs
            .get_or_create(&ResultLabels {
                result: "error".into(),
            })
            .inc();
        self.sync_errors
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
            })
            .inc();
    }

    pub fn decrypt_error(&self, reason: &str) {
        self.decrypt_errors
            .get_or_create(&ReasonLabels {
                reason: reason.into(),
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

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
