//! One `EncryptedSecret` → one Secret: decrypt in memory, check the
//! namespace boundary, apply with the `ksec apply` engine (restart and verify
//! consumers), then report conditions, events and metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::cluster::apply::{Action as ApplyAction, ApplyOptions, Subject};
use crate::cluster::source::{self, DesiredSecret, OneOptions, OpenRefusal};
use crate::cluster::{self, Loaded};
use crate::controller::context::{Context, apply_off_thread, classify, rollout_failures};
use crate::controller::crd::{DeletionPolicy, EncryptedSecret, EncryptedSecretStatus};
use crate::controller::metrics::Managed;
use crate::controller::ownership::{LABEL_SOURCE, Writer, may_write, stamp};
use crate::controller::status::{Health, Reason, set_condition, set_health, trim_note};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Writing the object's status failed (retried by the error policy).
    #[error("status of {namespace}/{name}: {source}")]
    WriteStatus {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The outcome of one sync, before it is written down.
enum SyncOutcome {
    Synced(Synced),
    /// Will not work until the object (or the controller's keys/config) changes.
    Refused {
        reason: Reason,
        message: String,
    },
    /// Worth retrying (API errors).
    Transient {
        reason: Reason,
        message: String,
    },
    /// The live Secret was edited by hand and the drift mode says not to revert it.
    Drifted {
        summary: String,
        report: bool,
    },
}

/// A sync that applied (or found unchanged) the Secret.
struct Synced {
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
}

/// What one reconcile decided: the status to write, when to come back, what to announce.
struct Decision {
    status: EncryptedSecretStatus,
    action: Action,
    event: Option<Event>,
}

/// The object a reconcile is about.
struct Object<'a> {
    obj: &'a EncryptedSecret,
    ns: String,
    name: String,
    generation: Option<i64>,
}

impl Object<'_> {
    async fn write_status(
        &self,
        api: &Api<EncryptedSecret>,
        st: &EncryptedSecretStatus,
    ) -> Result<(), ReconcileError> {
        let patch = json!({"status": st});
        api.patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|source| ReconcileError::WriteStatus {
                namespace: self.ns.clone(),
                name: self.name.clone(),
                source,
            })
    }
}

pub async fn reconcile(
    obj: Arc<EncryptedSecret>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let o = Object {
        obj: &obj,
        ns: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
        generation: obj.meta().generation,
    };
    if obj.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // Cluster-wide, objects in namespaces another environment owns belong to
    // that environment's controller: leave them (and their status) alone.
    if ctx.scope.boundary.namespaces.is_empty() && ctx.scope.refuse(&o.ns).is_some() {
        tracing::debug!(namespace = %o.ns, name = %o.name, "not this environment's namespace; ignored");
        return Ok(Action::await_change());
    }
    let api = Api::<EncryptedSecret>::namespaced(ctx.client.clone(), &o.ns);
    let prev = announce_progress(&o, &api, &ctx).await?;
    let outcome = sync(&obj, &prev, &o.ns, &o.name, &ctx).await;
    let d = decide(&o, &prev, outcome, &ctx);
    if let Some(ev) = &d.event {
        let r = obj.object_ref(&());
        if let Err(e) = ctx.recorder.publish(ev, &r).await {
            tracing::warn!(namespace = %o.ns, name = %o.name, error = %e, "cannot publish event");
        }
    }
    if d.status != prev {
        o.write_status(&api, &d.status).await?;
    }
    ctx.written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((o.ns.clone(), o.name.clone()), d.status);
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    Ok(d.action)
}

/// The status to start from. A new generation says Reconciling before a
/// possibly long sync (rollout verification); a new object without status
/// is in progress by definition (no extra write).
async fn announce_progress(
    o: &Object<'_>,
    api: &Api<EncryptedSecret>,
    ctx: &Context,
) -> Result<EncryptedSecretStatus, ReconcileError> {
    let mut prev = o.obj.status.clone().unwrap_or_default();
    let key = (o.ns.clone(), o.name.clone());
    if let Some(w) = ctx
        .written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        && w.observed_generation == o.generation
    {
        // Our own newer write for this generation (the store may lag behind it).
        prev = w.clone();
    }
    if prev.observed_generation != o.generation && o.obj.status.is_some() {
        let mut st = prev.clone();
        set_condition(
            &mut st.conditions,
            "Reconciling",
            "True",
            Reason::Progressing,
            "decrypting and applying the new generation",
            o.generation,
        );
        if st != prev {
            o.write_status(api, &st).await?;
            prev = st;
        }
    }
    Ok(prev)
}

fn decide(
    o: &Object<'_>,
    prev: &EncryptedSecretStatus,
    outcome: SyncOutcome,
    ctx: &Context,
) -> Decision {
    let mut status = prev.clone();
    status.observed_generation = o.generation;
    let (action, event) = match outcome {
        SyncOutcome::Synced(s) => synced(o, prev, s, &mut status, ctx),
        SyncOutcome::Refused { reason, message } => {
            ctx.metrics.sync_error(reason);
            tracing::warn!(namespace = %o.ns, name = %o.name, reason = reason.as_str(), "refused: {message}");
            set_health(
                &mut status.conditions,
                Health::Stalled,
                reason,
                &message,
                o.generation,
            );
            // A missing key may be mounted later; the rest needs a new spec.
            let next = reason
                .requeue()
                .map_or_else(Action::await_change, Action::requeue);
            (next, Some(warning(reason, &message, "Decrypt")))
        }
        SyncOutcome::Drifted { summary, report } => {
            drifted(o, prev, &summary, report, &mut status, ctx)
        }
        SyncOutcome::Transient { reason, message } => {
            ctx.metrics.sync_error(reason);
            tracing::warn!(namespace = %o.ns, name = %o.name, reason = reason.as_str(), "will retry: {message}");
            set_health(
                &mut status.conditions,
                Health::Retrying,
                reason,
                &message,
                o.generation,
            );
            let next = Action::requeue(Duration::from_secs(15));
            (next, Some(warning(reason, &message, "Apply")))
        }
    };
    Decision {
        status,
        action,
        event,
    }
}

fn warning(reason: Reason, message: &str, action: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.as_str().into(),
        note: Some(trim_note(message)),
        action: action.into(),
        secondary: None,
    }
}

fn synced(
    o: &Object<'_>,
    prev: &EncryptedSecretStatus,
    s: Synced,
    status: &mut EncryptedSecretStatus,
    ctx: &Context,
) -> (Action, Option<Event>) {
    let managed = Managed {
        namespace: o.ns.clone(),
        secret: s.secret_name.clone(),
        content_hash: s.hash.clone(),
        lastmodified: s.lastmodified,
    };
    let mut rollout_failed = s.rollout_failed;
    // A later sync with nothing to restart does not make a failed
    // rollout good: stay RolloutFailed while consumers are behind.
    let failed_before = prev
        .condition("Ready")
        .is_some_and(|c| c.reason == Reason::RolloutFailed.as_str());
    if rollout_failed.is_empty() && s.restarted == 0 && failed_before {
        let behind = ctx.metrics.stale_of(&managed);
        if behind > 0 {
            rollout_failed.push(format!(
                "{behind} consumer(s) still not rolled out to the current content"
            ));
        }
    }
    ctx.metrics.track(&o.name, managed);
    ctx.metrics.restart("executed", s.restarted);
    ctx.metrics.restart("verified", s.verified);
    ctx.metrics.restart("failed", rollout_failed.len() as u64);
    let key_list = s.keys.join(", ");
    status.secret_name = Some(s.secret.clone());
    status.content_hash = Some(s.hash);
    status.keys = s.keys;
    if !rollout_failed.is_empty() {
        let reason = Reason::RolloutFailed;
        ctx.metrics.sync_error(reason);
        let msg = format!(
            "Secret {} applied, but consumers did not roll out: {}",
            s.secret,
            rollout_failed.join("; ")
        );
        set_health(
            &mut status.conditions,
            Health::Stalled,
            reason,
            &msg,
            o.generation,
        );
        // Re-checked: the rollout may still complete.
        let next = reason.requeue().unwrap_or(ctx.resync);
        return (
            Action::requeue(next),
            Some(warning(reason, &msg, "Restart")),
        );
    }
    ctx.metrics.sync_ok();
    let msg = format!("Secret {} applied (keys: {key_list})", s.secret);
    set_health(
        &mut status.conditions,
        Health::InSync,
        Reason::Synced,
        &msg,
        o.generation,
    );
    status.conditions.retain(|c| c.type_ != "Drifted");
    let ev = (s.action != ApplyAction::Unchanged).then(|| Event {
        type_: EventType::Normal,
        reason: Reason::Synced.as_str().into(),
        note: Some(format!(
            "{} Secret {} (keys: {key_list}); {} consumer(s) restarted",
            if s.action == ApplyAction::Created {
                "created"
            } else {
                "updated"
            },
            s.secret,
            s.restarted
        )),
        action: "Apply".into(),
        secondary: None,
    });
    (Action::requeue(ctx.resync), ev)
}

/// Counted and announced once per new drift, not per reconcile.
fn drifted(
    o: &Object<'_>,
    prev: &EncryptedSecretStatus,
    summary: &str,
    report: bool,
    status: &mut EncryptedSecretStatus,
    ctx: &Context,
) -> (Action, Option<Event>) {
    let msg = format!(
        "the live Secret differs from the source ({summary}); not reverted (drift: {})",
        if report { "report" } else { "ignore" }
    );
    let known = prev
        .condition("Drifted")
        .is_some_and(|c| c.status == "True" && c.message == msg);
    if report {
        if !known {
            ctx.metrics.drift();
        }
        set_condition(
            &mut status.conditions,
            "Drifted",
            "True",
            Reason::DriftDetected,
            &msg,
            o.generation,
        );
    }
    let ev = (report && !known).then(|| warning(Reason::DriftDetected, &msg, "Compare"));
    (Action::requeue(ctx.resync), ev)
}

pub fn error_policy(
    _obj: Arc<EncryptedSecret>,
    err: &ReconcileError,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
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
    use crate::cluster::diff;
    use crate::controller::crd::DriftMode;
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
    Some(SyncOutcome::Synced(Synced {
        secret: cluster::nsname(&desired.namespace, &desired.name),
        secret_name: desired.name.clone(),
        lastmodified,
        hash: hash.to_string(),
        keys: desired.data.keys().cloned().collect(),
        action: ApplyAction::Unchanged,
        rollout_failed: Vec::new(),
        restarted: 0,
        verified: 0,
    }))
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
            reason: Reason::NamespaceNotAllowed,
            message: why,
        };
    }
    let mut desired = match open(obj, ns, name, ctx).await {
        Ok(d) => d,
        Err(outcome) => return outcome,
    };
    let lastmodified = desired.lastmodified;
    // The watch's copy first: the common re-sync (the event of the
    // controller's own write, the periodic resync) then costs no request.
    // Anything short of "exactly in sync" is decided on a fresh GET below.
    if let Some(s) = ctx.own.get(&desired.namespace, &desired.name)
        && s.labels().get(LABEL_SOURCE).map(String::as_str) == Some(name)
    {
        let want = crate::controller::workloads::digests(&desired.data);
        if let Some(done) = in_sync(obj, known, &s, &want, &desired, lastmodified, ctx) {
            return done;
        }
    }
    let live = match read_live(obj, known, &desired, name, ctx).await {
        Ok(live) => live,
        Err(outcome) => return outcome,
    };
    stamp_owner(obj, &mut desired, name);
    apply_secret(desired, live, ctx).await
}

/// Decrypts the spec (MAC verified) and checks the boundary. Decryption may
/// call key services (blocking clients): off the async workers.
async fn open(
    obj: &EncryptedSecret,
    ns: &str,
    name: &str,
    ctx: &Context,
) -> Result<DesiredSecret, SyncOutcome> {
    let bytes = obj.spec.encrypted.clone().into_bytes();
    let (ring, scope) = (ctx.ring.clone(), ctx.scope.clone());
    let label = PathBuf::from(format!("EncryptedSecret {ns}/{name}"));
    let ns_owned = ns.to_string();
    let opened = tokio::task::spawn_blocking(move || {
        let opts = OneOptions {
            namespace: &ns_owned,
            boundary: &scope.boundary,
            allow_mac_only: scope.allow_mac_only,
        };
        source::open_one(&label, &bytes, &ring, opts)
    })
    .await;
    match opened {
        Ok(Ok(d)) => Ok(d),
        Ok(Err(r)) => {
            let reason = classify(&r);
            if matches!(r, OpenRefusal::Decrypt(_) | OpenRefusal::NotEncrypted(_)) {
                ctx.metrics.decrypt_error(reason);
            }
            Err(SyncOutcome::Refused {
                reason,
                message: r.to_string(),
            })
        }
        Err(e) => Err(SyncOutcome::Transient {
            reason: Reason::DecryptFailed,
            message: format!("decryption task failed: {e}"),
        }),
    }
}

/// The live Secret, when this object may write it. `Err`: the outcome
/// already decided (someone else's Secret, drift left alone, in sync, or
/// the read failed).
async fn read_live(
    obj: &EncryptedSecret,
    known: &EncryptedSecretStatus,
    desired: &DesiredSecret,
    name: &str,
    ctx: &Context,
) -> Result<Option<Secret>, SyncOutcome> {
    let got = Api::<Secret>::namespaced(ctx.client.clone(), &desired.namespace)
        .get_opt(&desired.name)
        .await;
    let live = got.map_err(|e| SyncOutcome::Transient {
        reason: Reason::ApplyFailed,
        message: cluster::ClusterError::from_kube(
            format!("get secret {}/{}", desired.namespace, desired.name),
            e,
        )
        .to_string(),
    })?;
    let Some(s) = &live else { return Ok(None) };
    let me = Writer::EncryptedSecret(name);
    if let Err(message) = may_write(me, &desired.namespace, &desired.name, Some(s.labels())) {
        return Err(SyncOutcome::Refused {
            reason: Reason::SecretConflict,
            message,
        });
    }
    if let Some(d) = drift(obj, known, s, desired) {
        return Err(d);
    }
    let lastmodified = desired.lastmodified;
    match in_sync(obj, known, s, &desired.data, desired, lastmodified, ctx) {
        Some(done) => Err(done),
        None => Ok(live),
    }
}

/// Label (so the controller's Secret watch sees it) and, with policy Delete, owner.
fn stamp_owner(obj: &EncryptedSecret, desired: &mut DesiredSecret, name: &str) {
    let Some(meta) = stamp(&mut desired.object, Writer::EncryptedSecret(name)) else {
        return;
    };
    if obj.spec.deletion_policy == DeletionPolicy::Delete {
        let mut oref = obj.controller_owner_ref(&()).expect("object has a uid");
        oref.block_owner_deletion = Some(false);
        meta.insert(
            "ownerReferences".into(),
            serde_json::to_value(vec![oref]).expect("owner reference serializes"),
        );
    }
}

/// Applies through the `ksec apply` engine (restart and verify).
async fn apply_secret(desired: DesiredSecret, live: Option<Secret>, ctx: &Context) -> SyncOutcome {
    let secret = cluster::nsname(&desired.namespace, &desired.name);
    let keys: Vec<String> = desired.data.keys().cloned().collect();
    let lastmodified = desired.lastmodified;
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
        approval: Some(ctx.approval.clone()),
        ..Default::default()
    };
    let loaded = Loaded {
        secrets: vec![desired],
        ..Default::default()
    };
    let report = match apply_off_thread(ctx.client.clone(), loaded, opts).await {
        Ok(Ok(r)) => r,
        Err(e) => return transient(format!("apply task failed: {e}")),
        Ok(Err(e)) => return transient(e.to_string()),
    };
    if let Some(r) = report.refused.first() {
        return SyncOutcome::Refused {
            reason: Reason::InvalidSpec,
            message: r.reason.clone(),
        };
    }
    if let Some(a) = report.awaiting.first() {
        return SyncOutcome::Refused {
            reason: Reason::AwaitingApproval,
            message: a.to_string(),
        };
    }
    let (secret_failures, others): (Vec<_>, Vec<_>) = report
        .failures
        .iter()
        .partition(|f| matches!(f.subject, Subject::Secret { .. }));
    if !secret_failures.is_empty() {
        let m: Vec<&str> = secret_failures.iter().map(|f| f.message.as_str()).collect();
        return transient(m.join("; "));
    }
    let Some(sr) = report.applied.iter().chain(report.unchanged.iter()).next() else {
        return transient("the apply engine reported nothing for the Secret".into());
    };
    let mut rollout_failed = rollout_failures(&report);
    rollout_failed.extend(
        others
            .iter()
            .map(|f| format!("{}: {}", f.subject, f.message)),
    );
    SyncOutcome::Synced(Synced {
        secret,
        secret_name: sr.name.clone(),
        lastmodified,
        hash: sr.content_hash.clone(),
        keys,
        action: sr.action,
        rollout_failed,
        restarted: report.restarted.len() as u64,
        verified: report.verified.len() as u64,
    })
}

fn transient(message: String) -> SyncOutcome {
    SyncOutcome::Transient {
        reason: Reason::ApplyFailed,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::context::Scope;
    use crate::keys::KeyError;
    use crate::ops::OpError;
    use crate::recipients::Boundary;
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
        assert_eq!(r(OpError::MacMismatch), Reason::MacMismatch);
        assert_eq!(r(OpError::MacMissing), Reason::MacMismatch);
        assert_eq!(r(OpError::Key(KeyError::NoIdentity)), Reason::MissingKey);
        assert_eq!(r(OpError::Metadata("x".into())), Reason::DecryptFailed);
        assert_eq!(
            classify(&OpenRefusal::NotEncrypted("plain".into())),
            Reason::DecryptFailed
        );
        assert_eq!(
            classify(&OpenRefusal::Namespace(BoundaryRefusal::NotListed {
                namespace: "x".into()
            })),
            Reason::NamespaceNotAllowed
        );
    }

    #[test]
    fn conditions_move_their_transition_time_only_on_change() {
        let mut st = EncryptedSecretStatus::default();
        set_condition(
            &mut st.conditions,
            "Ready",
            "False",
            Reason::MacMismatch,
            "",
            Some(1),
        );
        let c = st.condition("Ready").unwrap().clone();
        assert_eq!(c.message, Reason::MacMismatch.as_str(), "never empty");
        st.conditions[0].last_transition_time = "2000-01-01T00:00:00Z".into();
        set_condition(
            &mut st.conditions,
            "Ready",
            "False",
            Reason::DecryptFailed,
            "m",
            Some(2),
        );
        assert_eq!(
            st.conditions[0].last_transition_time,
            "2000-01-01T00:00:00Z"
        );
        assert_eq!(st.conditions[0].observed_generation, Some(2));
        set_condition(
            &mut st.conditions,
            "Ready",
            "True",
            Reason::Synced,
            "ok",
            Some(2),
        );
        assert_ne!(
            st.conditions[0].last_transition_time,
            "2000-01-01T00:00:00Z"
        );
        assert_eq!(st.conditions.len(), 1);
    }
}
