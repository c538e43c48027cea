//! One `EncryptedSecret` → one Secret: decrypt in memory, check the
//! namespace boundary, apply with the `ksec apply` engine (restart and verify
//! consumers), then report conditions, events and metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::{Value as J, json};

use super::crd::{Condition, DeletionPolicy, EncryptedSecret, EncryptedSecretStatus};
use super::metrics::{Managed, Metrics};
use crate::cluster::apply::{Action as ApplyAction, ApplyOptions, Subject};
use crate::cluster::source::{self, DesiredSecret, OneOptions, OpenRefusal};
use crate::cluster::verify::Outcome;
use crate::cluster::{self, Loaded};
use crate::keys::{KeyError, KeyRing};
use crate::manifest::IdentityError;
use crate::ops::OpError;
use crate::recipients::Boundary;

/// Label on every Secret the controller generates: the name of its EncryptedSecret.
pub const LABEL_SOURCE: &str = "ksec.io/encryptedsecret";

/// Condition reasons.
pub mod reason {
    pub const SYNCED: &str = "Synced";
    pub const PROGRESSING: &str = "Progressing";
    pub const DECRYPT_FAILED: &str = "DecryptFailed";
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    pub const MAC_MISMATCH: &str = "MacMismatch";
    pub const MISSING_KEY: &str = "MissingKey";
    pub const ROLLOUT_FAILED: &str = "RolloutFailed";
    pub const APPLY_FAILED: &str = "ApplyFailed";
    pub const INVALID: &str = "InvalidSpec";
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    pub const DRIFT_DETECTED: &str = "DriftDetected";
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Status(String),
}

/// The outcome of one sync, before it is written down.
enum SyncOutcome {
    Synced {
        secret: String,
        /// The generated Secret (its namespace is the object's).
        secret_name: String,
        /// sops `lastmodified` of the source (Unix seconds).
        lastmodified: Option<i64>,
        hash: String,
        keys: Vec<String>,
        action: ApplyAction,
        rollout_failed: Vec<String>,
        restarted: u64,
        verified: u64,
    },
    /// Will not work until the object (or the controller's keys/config) changes.
    Refused {
        reason: &'static str,
        message: String,
    },
    /// Worth retrying (API errors).
    Transient {
        reason: &'static str,
        message: String,
    },
    /// The live Secret was edited by hand and the drift mode says not to revert it.
    Drifted { summary: String, report: bool },
}

pub async fn reconcile(
    obj: Arc<EncryptedSecret>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // Cluster-wide, objects in namespaces another environment owns belong to
    // that environment's controller: leave them (and their status) alone.
    if ctx.scope.boundary.namespaces.is_empty() && ctx.scope.refuse(&ns).is_some() {
        tracing::debug!(namespace = %ns, name = %name, "not this environment's namespace; ignored");
        return Ok(Action::await_change());
    }
    let generation = obj.meta().generation;
    let mut prev = obj.status.clone().unwrap_or_default();
    let key = (ns.clone(), name.clone());
    if let Some(w) = ctx
        .written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        && w.observed_generation == generation
    {
        // Our own newer write for this generation (the store may lag behind it).
        prev = w.clone();
    }
    let api = Api::<EncryptedSecret>::namespaced(ctx.client.clone(), &ns);
    // A new generation: say so before a possibly long sync (rollout verification).
    // (A new object without status is in progress by definition: no extra write.)
    if prev.observed_generation != generation && obj.status.is_some() {
        let mut st = prev.clone();
        set(
            &mut st,
            "Reconciling",
            "True",
            reason::PROGRESSING,
            "decrypting and applying the new generation",
            generation,
        );
        if st != prev {
            let patch = json!({"status": st});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| ReconcileError::Status(format!("status of {ns}/{name}: {e}")))?;
            prev = st;
        }
    }
    let outcome = sync(&obj, &prev, &ns, &name, &ctx).await;
    let mut status = prev.clone();
    status.observed_generation = generation;
    let (action, event) =
        match outcome {
            SyncOutcome::Synced {
                secret,
                secret_name,
                lastmodified,
                hash,
                keys,
                action,
                rollout_failed,
                restarted,
                verified,
            } => {
                let managed = Managed {
                    namespace: ns.clone(),
                    secret: secret_name,
                    content_hash: hash.clone(),
                    lastmodified,
                };
                let mut rollout_failed = rollout_failed;
                // A later sync with nothing to restart does not make a failed
                // rollout good: stay RolloutFailed while consumers are behind.
                let failed_before = prev
                    .condition("Ready")
                    .is_some_and(|c| c.reason == reason::ROLLOUT_FAILED);
                if rollout_failed.is_empty() && restarted == 0 && failed_before {
                    let behind = ctx.metrics.stale_of(&managed);
                    if behind > 0 {
                        rollout_failed.push(format!(
                            "{behind} consumer(s) still not rolled out to the current content"
                        ));
                    }
                }
                ctx.metrics.track(&name, managed);
                ctx.metrics.restart("executed", restarted);
                ctx.metrics.restart("verified", verified);
                ctx.metrics.restart("failed", rollout_failed.len() as u64);
                let key_list = keys.join(", ");
                status.secret_name = Some(secret.clone());
                status.content_hash = Some(hash);
                status.keys = keys;
                if rollout_failed.is_empty() {
                    ctx.metrics.sync_ok();
                    let msg = format!("Secret {secret} applied (keys: {key_list})");
                    set(
                        &mut status,
                        "Ready",
                        "True",
                        reason::SYNCED,
                        &msg,
                        generation,
                    );
                    set(
                        &mut status,
                        "Reconciling",
                        "False",
                        reason::SYNCED,
                        "",
                        generation,
                    );
                    set(
                        &mut status,
                        "Stalled",
                        "False",
                        reason::SYNCED,
                        "",
                        generation,
                    );
                    status.conditions.retain(|c| c.type_ != "Drifted");
                    let ev = (action != ApplyAction::Unchanged).then(|| Event {
                    type_: EventType::Normal,
                    reason: reason::SYNCED.into(),
                    note: Some(format!(
                        "{} Secret {secret} (keys: {key_list}); {restarted} consumer(s) restarted",
                        if action == ApplyAction::Created { "created" } else { "updated" }
                    )),
                    action: "Apply".into(),
                    secondary: None,
                });
                    (Action::requeue(ctx.resync), ev)
                } else {
                    ctx.metrics.sync_error(reason::ROLLOUT_FAILED);
                    let msg = format!(
                        "Secret {secret} applied, but consumers did not roll out: {}",
                        rollout_failed.join("; ")
                    );
                    set(
                        &mut status,
                        "Ready",
                        "False",
                        reason::ROLLOUT_FAILED,
                        &msg,
                        generation,
                    );
                    set(
                        &mut status,
                        "Reconciling",
                        "False",
                        reason::ROLLOUT_FAILED,
                        "",
                        generation,
                    );
                    set(
                        &mut status,
                        "Stalled",
                        "True",
                        reason::ROLLOUT_FAILED,
                        &msg,
                        generation,
                    );
                    let ev = Event {
                        type_: EventType::Warning,
                        reason: reason::ROLLOUT_FAILED.into(),
                        note: Some(trim_note(&msg)),
                        action: "Restart".into(),
                        secondary: None,
                    };
                    // Re-checked each minute: the rollout may still complete.
                    (Action::requeue(Duration::from_secs(60)), Some(ev))
                }
            }
            SyncOutcome::Refused { reason, message } => {
                ctx.metrics.sync_error(reason);
                tracing::warn!(namespace = %ns, name = %name, reason, "refused: {message}");
                set(&mut status, "Ready", "False", reason, &message, generation);
                set(&mut status, "Reconciling", "False", reason, "", generation);
                set(&mut status, "Stalled", "True", reason, &message, generation);
                let ev = Event {
                    type_: EventType::Warning,
                    reason: reason.into(),
                    note: Some(trim_note(&message)),
                    action: "Decrypt".into(),
                    secondary: None,
                };
                // A missing key may be mounted later; the rest needs a new spec.
                let next = if reason == reason::MISSING_KEY {
                    Action::requeue(Duration::from_secs(300))
                } else {
                    Action::await_change()
                };
                (next, Some(ev))
            }
            SyncOutcome::Drifted { summary, report } => {
                let msg = format!(
                    "the live Secret differs from the source ({summary}); not reverted (drift: {})",
                    if report { "report" } else { "ignore" }
                );
                // Counted and announced once per new drift, not per reconcile.
                let known = prev
                    .condition("Drifted")
                    .is_some_and(|c| c.status == "True" && c.message == msg);
                if report {
                    if !known {
                        ctx.metrics.drift();
                    }
                    set(
                        &mut status,
                        "Drifted",
                        "True",
                        reason::DRIFT_DETECTED,
                        &msg,
                        generation,
                    );
                }
                let ev = (report && !known).then(|| Event {
                    type_: EventType::Warning,
                    reason: reason::DRIFT_DETECTED.into(),
                    note: Some(trim_note(&msg)),
                    action: "Compare".into(),
                    secondary: None,
                });
                (Action::requeue(ctx.resync), ev)
            }
            SyncOutcome::Transient { reason, message } => {
                ctx.metrics.sync_error(reason);
                tracing::warn!(namespace = %ns, name = %name, reason, "will retry: {message}");
                set(&mut status, "Ready", "False", reason, &message, generation);
                set(
                    &mut status,
                    "Reconciling",
                    "True",
                    reason,
                    &message,
                    generation,
                );
                set(&mut status, "Stalled", "False", reason, "", generation);
                let ev = Event {
                    type_: EventType::Warning,
                    reason: reason.into(),
                    note: Some(trim_note(&message)),
                    action: "Apply".into(),
                    secondary: None,
                };
                (Action::requeue(Duration::from_secs(15)), Some(ev))
            }
        };
    if let Some(ev) = event {
        let r = obj.object_ref(&());
        if let Err(e) = ctx.recorder.publish(&ev, &r).await {
            tracing::warn!(namespace = %ns, name = %name, error = %e, "cannot publish event");
        }
    }
    if status != prev {
        let patch = json!({"status": status});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ReconcileError::Status(format!("status of {ns}/{name}: {e}")))?;
    }
    ctx.written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, status);
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(action)
}

pub fn error_policy(
    _obj: Arc<EncryptedSecret>,
    err: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

/// The apply engine's future is not provably `Send` (rustc's higher-ranked
/// lifetime limits with borrowed stream closures), so it is driven on a
/// blocking-pool thread with the same runtime's handle. Both sources use it.
pub(crate) async fn apply_off_thread(
    client: kube::Client,
    loaded: Loaded,
    opts: ApplyOptions,
) -> Result<Result<cluster::Report, cluster::ClusterError>, tokio::task::JoinError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move { cluster::apply(&client, loaded, &opts).await })
    })
    .await
}

/// Events have a 1 KiB note limit.
pub(crate) fn trim_note(s: &str) -> String {
    if s.len() <= 1000 {
        return s.to_string();
    }
    let mut end = 1000;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Sets a condition; the transition time moves only when the status does.
fn set(
    st: &mut EncryptedSecretStatus,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    set_condition(
        &mut st.conditions,
        type_,
        status,
        reason,
        message,
        generation,
    );
}

/// [`set`] on a bare list (the Git source's status has no CR).
pub(crate) fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    // Never empty: the 1.20 API server reads "" in a custom resource as null.
    let message = if message.is_empty() { reason } else { message };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: now,
        }),
    }
}

/// With drift `report` / `ignore` and an unchanged spec (the source did not
/// move since the last sync), a live Secret whose data differs is left alone.
/// Key names only.
fn drift(
    obj: &EncryptedSecret,
    synced: &EncryptedSecretStatus,
    live: &Secret,
    desired: &DesiredSecret,
) -> Option<SyncOutcome> {
    use super::crd::DriftMode;
    use crate::cluster::diff;
    if obj.spec.drift == DriftMode::Enforce {
        return None;
    }
    if synced.observed_generation != obj.metadata.generation || synced.content_hash.is_none() {
        return None;
    }
    let keys = diff::key_diff(&desired.data, &diff::live_data(live));
    if keys.is_empty() {
        return None;
    }
    Some(SyncOutcome::Drifted {
        summary: keys.summary(),
        report: obj.spec.drift == DriftMode::Report,
    })
}

/// The common re-sync (the watch event of our own write, the periodic
/// resync): this generation was synced, the live Secret still holds exactly
/// the decrypted data with the recorded content hash, and no consumer is
/// behind it. Nothing to apply or restart: no further request.
///
/// `want` is the desired data in the form `live` holds it (digests for the
/// watch's copy).
fn in_sync(
    obj: &EncryptedSecret,
    st: &EncryptedSecretStatus,
    live: &Secret,
    want: &std::collections::BTreeMap<String, Vec<u8>>,
    desired: &DesiredSecret,
    lastmodified: Option<i64>,
    ctx: &Context,
) -> Option<SyncOutcome> {
    use crate::cluster::{ANN_CONTENT_HASH, LABEL_MANAGED_BY, MANAGED_BY_VALUE, diff};
    let hash = st.content_hash.as_deref()?;
    let ready = st
        .condition("Ready")
        .is_some_and(|c| c.status == "True" && c.observed_generation == obj.metadata.generation);
    let live_hash = live.annotations().get(ANN_CONTENT_HASH).map(String::as_str);
    let managed = live.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE);
    if st.observed_generation != obj.metadata.generation
        || !ready
        || live_hash != Some(hash)
        || !managed
        || diff::live_data(live) != *want
    {
        return None;
    }
    let m = Managed {
        namespace: desired.namespace.clone(),
        secret: desired.name.clone(),
        content_hash: hash.to_string(),
        lastmodified,
    };
    if ctx.metrics.stale_of(&m) > 0 {
        return None;
    }
    Some(SyncOutcome::Synced {
        secret: cluster::nsname(&desired.namespace, &desired.name),
        secret_name: desired.name.clone(),
        lastmodified,
        hash: hash.to_string(),
        keys: desired.data.keys().cloned().collect(),
        action: ApplyAction::Unchanged,
        rollout_failed: Vec::new(),
        restarted: 0,
        verified: 0,
    })
}

/// Maps a refusal of the source layer to a condition reason.
pub(crate) fn classify(r: &OpenRefusal) -> &'static str {
    match r {
        OpenRefusal::NotEncrypted(_) => reason::DECRYPT_FAILED,
        OpenRefusal::Namespace(_) => reason::NAMESPACE_NOT_ALLOWED,
        OpenRefusal::Identity(IdentityError::WrongNamespace { .. }) => {
            reason::NAMESPACE_NOT_ALLOWED
        }
        OpenRefusal::Identity(_) => reason::INVALID,
        OpenRefusal::Invalid(_) => reason::INVALID,
        OpenRefusal::Decrypt(e) => match e {
            OpError::MacMismatch | OpError::MacMissing | OpError::MacUndecryptable(_) => {
                reason::MAC_MISMATCH
            }
            OpError::Key(KeyError::NoKey { .. } | KeyError::NoIdentity) => reason::MISSING_KEY,
            _ => reason::DECRYPT_FAILED,
        },
    }
}

/// `known` is the object's status as this controller last wrote it (the
/// watch's copy may not show it yet).
async fn sync(
    obj: &EncryptedSecret,
    known: &EncryptedSecretStatus,
    ns: &str,
    name: &str,
    ctx: &Context,
) -> SyncOutcome {
    if let Some(why) = ctx.scope.refuse(ns) {
        return SyncOutcome::Refused {
            reason: reason::NAMESPACE_NOT_ALLOWED,
            message: why,
        };
    }
    // Decryption may call key services (blocking clients): off the async workers.
    let bytes = obj.spec.encrypted.clone().into_bytes();
    let ring = ctx.ring.clone();
    let scope = ctx.scope.clone();
    let label = PathBuf::from(format!("EncryptedSecret {ns}/{name}"));
    let ns_owned = ns.to_string();
    let opened = tokio::task::spawn_blocking(move || {
        source::open_one(
            &label,
            &bytes,
            &ring,
            OneOptions {
                namespace: &ns_owned,
                boundary: &scope.boundary,
                allow_mac_only: scope.allow_mac_only,
            },
        )
    })
    .await;
    let mut desired: DesiredSecret = match opened {
        Ok(Ok(d)) => d,
        Ok(Err(r)) => {
            let reason = classify(&r);
            if matches!(r, OpenRefusal::Decrypt(_) | OpenRefusal::NotEncrypted(_)) {
                ctx.metrics.decrypt_error(reason);
            }
            return SyncOutcome::Refused {
                reason,
                message: r.to_string(),
            };
        }
        Err(e) => {
            return SyncOutcome::Transient {
                reason: reason::DECRYPT_FAILED,
                message: format!("decryption task failed: {e}"),
            };
        }
    };
    let lastmodified = desired.lastmodified;
    // The watch's copy first: the common re-sync (the event of the
    // controller's own write, the periodic resync) then costs no request.
    // Anything short of "exactly in sync" is decided on a fresh GET below.
    if let Some(s) = ctx.own.get(&desired.namespace, &desired.name)
        && s.labels().get(LABEL_SOURCE).map(String::as_str) == Some(name)
    {
        let want = super::workloads::digests(&desired.data);
        if let Some(done) = in_sync(obj, known, &s, &want, &desired, lastmodified, ctx) {
            return done;
        }
    }
    // Never take over a Secret someone else made (a human, another operator,
    // another EncryptedSecret): creating an EncryptedSecret must not be a way
    // to overwrite Secrets one cannot write directly.
    let live = match Api::<Secret>::namespaced(ctx.client.clone(), &desired.namespace)
        .get_opt(&desired.name)
        .await
    {
        Ok(live) => live,
        Err(e) => {
            return SyncOutcome::Transient {
                reason: reason::APPLY_FAILED,
                message: cluster::ClusterError::from_kube(
                    format!("get secret {}/{}", desired.namespace, desired.name),
                    e,
                )
                .to_string(),
            };
        }
    };
    match &live {
        Some(s) => match s.labels().get(LABEL_SOURCE) {
            Some(owner) if owner == name => {
                if let Some(d) = drift(obj, known, s, &desired) {
                    return d;
                }
                if let Some(done) =
                    in_sync(obj, known, s, &desired.data, &desired, lastmodified, ctx)
                {
                    return done;
                }
            }
            Some(owner) => {
                return SyncOutcome::Refused {
                    reason: reason::SECRET_CONFLICT,
                    message: format!(
                        "Secret {}/{} belongs to EncryptedSecret {owner}",
                        desired.namespace, desired.name
                    ),
                };
            }
            None => {
                return SyncOutcome::Refused {
                    reason: reason::SECRET_CONFLICT,
                    message: format!(
                        "Secret {}/{} exists and was not created by this EncryptedSecret; \
                         delete it, or label it {LABEL_SOURCE}={name} to hand it over",
                        desired.namespace, desired.name
                    ),
                };
            }
        },
        None => {}
    }
    // Label (so the controller's Secret watch sees it) and, with policy Delete, owner.
    let meta = desired.object["metadata"]
        .as_object_mut()
        .expect("skeleton has metadata");
    let labels = meta
        .entry("labels")
        .or_insert_with(|| J::Object(Default::default()));
    labels[LABEL_SOURCE] = J::String(name.to_string());
    if obj.spec.deletion_policy == DeletionPolicy::Delete {
        let mut oref = obj.controller_owner_ref(&()).expect("object has a uid");
        oref.block_owner_deletion = Some(false);
        meta.insert(
            "ownerReferences".into(),
            serde_json::to_value(vec![oref]).expect("owner reference serializes"),
        );
    }
    let secret = cluster::nsname(&desired.namespace, &desired.name);
    let keys: Vec<String> = desired.data.keys().cloned().collect();
    let known_live = [((desired.namespace.clone(), desired.name.clone()), live)].into();
    let opts = ApplyOptions {
        restart: true,
        // The EncryptedSecret is the source of truth for a Secret it owns (the
        // label check above): take fields back from hand edits.
        force_conflicts: true,
        timeout: ctx.rollout_timeout,
        inventory_id: "controller".into(),
        record_inventory: false,
        workloads: ctx.workloads.clone(),
        report_fixed: false,
        known_live,
        concurrency: 4,
        ..Default::default()
    };
    let loaded = Loaded {
        secrets: vec![desired],
        ..Default::default()
    };
    let applied = apply_off_thread(ctx.client.clone(), loaded, opts).await;
    let report = match applied {
        Ok(Ok(r)) => r,
        Err(e) => {
            return SyncOutcome::Transient {
                reason: reason::APPLY_FAILED,
                message: format!("apply task failed: {e}"),
            };
        }
        Ok(Err(e)) => {
            return SyncOutcome::Transient {
                reason: reason::APPLY_FAILED,
                message: e.to_string(),
            };
        }
    };
    if let Some(r) = report.refused.first() {
        return SyncOutcome::Refused {
            reason: reason::INVALID,
            message: r.reason.clone(),
        };
    }
    let failures: Vec<&crate::cluster::apply::Note> = report
        .failures
        .iter()
        .filter(|f| matches!(f.subject, Subject::Secret { .. }))
        .collect();
    if !failures.is_empty() {
        return SyncOutcome::Transient {
            reason: reason::APPLY_FAILED,
            message: failures
                .iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        };
    }
    let Some(sr) = report.applied.iter().chain(report.unchanged.iter()).next() else {
        return SyncOutcome::Transient {
            reason: reason::APPLY_FAILED,
            message: "the apply engine reported nothing for the Secret".into(),
        };
    };
    let mut rollout_failed: Vec<String> = report
        .restarted
        .iter()
        .filter_map(|w| match &w.outcome {
            Some(Outcome::Failed(m)) | Some(Outcome::TimedOut(m)) => {
                Some(format!("{} {}/{}: {m}", w.kind, w.namespace, w.name))
            }
            _ => None,
        })
        .collect();
    rollout_failed.extend(
        report
            .failures
            .iter()
            .filter(|f| !matches!(f.subject, Subject::Secret { .. }))
            .map(|f| format!("{}: {}", f.subject, f.message)),
    );
    SyncOutcome::Synced {
        secret,
        secret_name: sr.name.clone(),
        lastmodified,
        hash: sr.content_hash.clone(),
        keys,
        action: sr.action,
        rollout_failed,
        restarted: report.restarted.len() as u64,
        verified: report.verified.len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipients::BoundaryRefusal;

    #[test]
    fn scope_refuses_namespaces_outside_the_list() {
        let s = Scope {
            boundary: Boundary {
                namespaces: ["a".to_string()].into_iter().collect(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(s.refuse("a").is_none());
        assert!(s.refuse("b").unwrap().contains("\"b\""));
    }

    #[test]
    fn mac_and_key_errors_get_their_own_reasons() {
        let r = |e| classify(&OpenRefusal::Decrypt(e));
        assert_eq!(r(OpError::MacMismatch), reason::MAC_MISMATCH);
        assert_eq!(r(OpError::MacMissing), reason::MAC_MISMATCH);
        assert_eq!(r(OpError::Key(KeyError::NoIdentity)), reason::MISSING_KEY);
        assert_eq!(r(OpError::Metadata("x".into())), reason::DECRYPT_FAILED);
        assert_eq!(
            classify(&OpenRefusal::NotEncrypted("plain".into())),
            reason::DECRYPT_FAILED
        );
        assert_eq!(
            classify(&OpenRefusal::Namespace(BoundaryRefusal::NotListed {
                namespace: "x".into()
            })),
            reason::NAMESPACE_NOT_ALLOWED
        );
    }

    #[test]
    fn conditions_move_their_transition_time_only_on_change() {
        let mut st = EncryptedSecretStatus::default();
        set(&mut st, "Ready", "False", reason::MAC_MISMATCH, "", Some(1));
        let c = st.condition("Ready").unwrap().clone();
        assert_eq!(c.message, reason::MAC_MISMATCH, "never empty");
        st.conditions[0].last_transition_time = "2000-01-01T00:00:00Z".into();
        set(
            &mut st,
            "Ready",
            "False",
            reason::DECRYPT_FAILED,
            "m",
            Some(2),
        );
        assert_eq!(
            st.conditions[0].last_transition_time,
            "2000-01-01T00:00:00Z"
        );
        assert_eq!(st.conditions[0].observed_generation, Some(2));
        set(&mut st, "Ready", "True", reason::SYNCED, "ok", Some(2));
        assert_ne!(
            st.conditions[0].last_transition_time,
            "2000-01-01T00:00:00Z"
        );
        assert_eq!(st.conditions.len(), 1);
    }
}
