//! The rotation handler: Secrets ksec does not write (those an
//! ExternalSecret owns, those opted in with `ksec.io/watch: "true"` or
//! selected by `--watch-secrets SELECTOR`) have their consumers rolled by
//! the `ksec apply` engine when their *content* changes, and verified.
//!
//! Content hashes decide, never events: a re-list after an API server
//! restart or a 410, a label edit, or a resync sees the same hash and does
//! nothing. A Secret seen for the first time (controller start, re-creation)
//! rolls only consumers whose pod template names another hash, so a restart
//! of the controller is no restart of the fleet. Changes are debounced: a
//! burst across related Secrets gives each workload one rollout.
//!
//! Nothing is cached but, per watched Secret, its content hash and one
//! digest per key (for key-name diffs); unrelated Secrets pass through the
//! watch stream and are dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::Api;
use kube::runtime::events::{Event, EventType};
use kube::runtime::{WatchStreamExt, watcher};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::cluster::apply::{ApplyOptions, SecretResult};
use crate::cluster::diff::{self, KeyDiff};
use crate::cluster::verify::Outcome;
use crate::cluster::{self, LABEL_MANAGED_BY, MANAGED_BY_VALUE};
use crate::controller::context::{Context, off_thread};
use crate::controller::metrics::Managed;
use crate::controller::ownership::LABEL_SOURCE;

/// Opt-in marker (annotation or label).
pub const WATCH_MARK: &str = "ksec.io/watch";

/// `--watch-secrets[=SELECTOR]`, `--watch-debounce`, `--rollback-on-failure`.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Server-side label selector: every Secret it matches is watched, and
    /// no other Secret is sent to the controller at all (large clusters).
    pub selector: Option<String>,
    /// Quiet time after the last change before consumers roll.
    pub debounce: Duration,
    /// Undo a rollout that fails verification.
    pub rollback: bool,
    /// How often held rotations look for their approval.
    pub approval_poll: Duration,
}

/// Why a Secret is watched; `None`: it is not.
pub fn watched_because(s: &Secret, selected: bool) -> Option<&'static str> {
    let meta = &s.metadata;
    let ours = meta.labels.as_ref().is_some_and(|l| {
        l.contains_key(LABEL_SOURCE)
            || l.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
    });
    if ours {
        return None; // ksec's own Secrets roll their consumers when ksec writes them
    }
    if selected {
        return Some("selector");
    }
    let eso =
        meta.owner_references.iter().flatten().any(|o| {
            o.kind == "ExternalSecret" && o.api_version.starts_with("external-secrets.io/")
        });
    if eso {
        return Some("ExternalSecret");
    }
    let marked = |m: Option<&BTreeMap<String, String>>| {
        m.and_then(|m| m.get(WATCH_MARK))
            .is_some_and(|v| v == "true")
    };
    (marked(meta.annotations.as_ref()) || marked(meta.labels.as_ref())).then_some(WATCH_MARK)
}

/// What the handler remembers of one watched Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// Of the last write seen: events name it, so kube's event cache does
    /// not fold a later rotation's event into an earlier one's.
    resource_version: Option<String>,
    hash: String,
    digests: BTreeMap<String, [u8; 32]>,
}

/// A change not yet rolled out: its newest hash and every key it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub hash: String,
    pub keys: KeyDiff,
}

type Key = (String, String);

/// Seen hashes and pending changes; the decisions, without a cluster.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<Key, Seen>,
    pending: BTreeMap<Key, Pending>,
    /// Per watch scope (a namespace, or `None`: cluster-wide), the keys
    /// seen since its re-list started (to drop the vanished). Scopes list
    /// at once at start-up, so each keeps its own.
    relisted: HashMap<Option<String>, HashSet<Key>>,
    /// The hash each held Secret's AwaitingApproval event named.
    announced: HashMap<Key, String>,
}

impl Tracker {
    /// Records the Secret's content; queues it when the content is new to
    /// this process. Returns whether anything was queued.
    pub fn observe(&mut self, s: &Secret) -> bool {
        let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) else {
            return false;
        };
        let key = (ns.clone(), name.clone());
        let scope = Some(ns.clone());
        let scope = if self.relisted.contains_key(&scope) {
            scope
        } else {
            None
        };
        if let Some(l) = self.relisted.get_mut(&scope) {
            l.insert(key.clone());
        }
        // The hash stamped on consumers' templates. The salt is the Secret's
        // uid: readable only with the Secret (ksec's events leave it out), so
        // readers of Deployments cannot test guesses of a low-entropy value.
        let uid = s.metadata.uid.clone().unwrap_or_default();
        let data = diff::live_data(s);
        let hash = diff::content_hash(&uid, &data);
        let digests: BTreeMap<String, [u8; 32]> = data
            .iter()
            .map(|(k, v)| (k.clone(), Sha256::digest(v).into()))
            .collect();
        drop(data);
        let rv = s.metadata.resource_version.clone();
        if let Some(b) = self.seen.get_mut(&key)
            && b.hash == hash
        {
            b.resource_version = rv;
            return false; // metadata-only change, resync or re-list
        }
        let before = self.seen.get(&key);
        let keys = before.map(|b| digest_diff(&b.digests, &digests));
        self.seen.insert(
            key.clone(),
            Seen {
                resource_version: rv,
                hash: hash.clone(),
                digests,
            },
        );
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            hash: hash.clone(),
            keys: KeyDiff::default(),
        });
        p.hash = hash;
        if let Some(k) = keys {
            merge(&mut p.keys, k);
        }
        true
    }

    /// A deleted Secret: forgotten (a re-created one is seen anew).
    /// Returns whether it was known (most Secrets passing by never are).
    pub fn forget(&mut self, ns: &str, name: &str) -> bool {
        let key = (ns.to_string(), name.to_string());
        self.pending.remove(&key);
        self.announced.remove(&key);
        self.seen.remove(&key).is_some()
    }

    /// Whether a held change of `hash` still needs its AwaitingApproval
    /// event (the first hold, or newer content held again).
    pub fn announce(&mut self, key: &Key, hash: &str) -> bool {
        if self.announced.get(key).map(String::as_str) == Some(hash) {
            return false;
        }
        self.announced.insert(key.clone(), hash.to_string());
        true
    }

    /// A held change went ahead (or is no longer held).
    pub fn released(&mut self, key: &Key) -> bool {
        self.announced.remove(key).is_some()
    }

    /// A re-list of `scope` begins (watch start or restart, 410): what it
    /// does not list is gone.
    pub fn relist_start(&mut self, scope: Option<&str>) {
        self.relisted
            .insert(scope.map(str::to_string), HashSet::new());
    }

    /// The re-list of `scope` is complete: returns the keys that vanished meanwhile.
    pub fn relist_done(&mut self, scope: Option<&str>) -> Vec<Key> {
        let Some(listed) = self.relisted.remove(&scope.map(str::to_string)) else {
            return Vec::new();
        };
        let gone: Vec<Key> = self
            .seen
            .keys()
            .filter(|k| scope.is_none_or(|ns| k.0 == ns) && !listed.contains(*k))
            .cloned()
            .collect();
        for k in &gone {
            self.forget(&k.0, &k.1);
        }
        gone
    }

    /// Takes every pending change.
    pub fn take(&mut self) -> BTreeMap<Key, Pending> {
        std::mem::take(&mut self.pending)
    }

    /// Puts held changes back unless a newer content replaced them.
    pub fn hold(&mut self, held: BTreeMap<Key, Pending>) {
        for (k, p) in held {
            let current = self.seen.get(&k).is_some_and(|s| s.hash == p.hash);
            if current {
                self.pending.entry(k).or_insert(p);
            }
        }
    }

    /// The watched Secret as an event's `regarding`: its resourceVersion,
    /// never its uid (the hash salt: events are readable by many who may not
    /// read Secrets).
    pub fn reference(&self, ns: &str, name: &str) -> ObjectReference {
        let seen = self.seen.get(&(ns.to_string(), name.to_string()));
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            namespace: Some(ns.into()),
            name: Some(name.into()),
            resource_version: seen.and_then(|s| s.resource_version.clone()),
            ..Default::default()
        }
    }
}

fn digest_diff(a: &BTreeMap<String, [u8; 32]>, b: &BTreeMap<String, [u8; 32]>) -> KeyDiff {
    let widen = |m: &BTreeMap<String, [u8; 32]>| -> BTreeMap<String, Vec<u8>> {
        m.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect()
    };
    diff::key_diff(&widen(a), &widen(b))
}

fn merge(into: &mut KeyDiff, more: KeyDiff) {
    for (to, from) in [
        (&mut into.added, more.added),
        (&mut into.removed, more.removed),
        (&mut into.changed, more.changed),
    ] {
        for k in from {
            if !to.contains(&k) {
                to.push(k);
            }
        }
    }
}

/// Watches every scope and rolls consumers of changed watched Secrets until
/// SIGTERM (a rollout being verified is left to the workload's controller).
pub async fn run(cfg: WatchConfig, ctx: Arc<Context>, scopes: Vec<Option<String>>) {
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let wake = Arc::new(Notify::new());
    for s in scopes {
        let api: Api<Secret> = match &s {
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            None => Api::all(ctx.client.clone()),
        };
        let w = watch_scope(
            api,
            s,
            cfg.clone(),
            tracker.clone(),
            wake.clone(),
            ctx.clone(),
        );
        tokio::spawn(w);
    }
    let shutdown = crate::controller::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = async { wake.notified().await; settle(&wake, cfg.debounce).await } => {}
            _ = &mut shutdown => break,
        }
        let batch = lock(&tracker).take();
        if batch.is_empty() {
            continue;
        }
        let held = tokio::select! {
            held = roll_batch(&cfg, &ctx, &tracker, batch) => held,
            _ = &mut shutdown => break,
        };
        if !held.is_empty() {
            lock(&tracker).hold(held);
            let wake = wake.clone();
            let poll = cfg.approval_poll;
            tokio::spawn(async move {
                tokio::time::sleep(poll).await;
                wake.notify_one();
            });
        }
    }
}

fn lock(t: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Debounce: returns once no change arrived for `quiet` (at most 10× `quiet`).
async fn settle(wake: &Notify, quiet: Duration) {
    let cap = tokio::time::Instant::now() + quiet * 10;
    while tokio::time::Instant::now() < cap {
        if tokio::time::timeout(quiet, wake.notified()).await.is_err() {
            return;
        }
    }
}

/// One scope's Secret watch, feeding the tracker.
async fn watch_scope(
    api: Api<Secret>,
    scope: Option<String>,
    cfg: WatchConfig,
    tracker: Arc<Mutex<Tracker>>,
    wake: Arc<Notify>,
    ctx: Arc<Context>,
) {
    let selected = cfg.selector.is_some();
    let mut wc = watcher::Config::default();
    if let Some(sel) = &cfg.selector {
        wc = wc.labels(sel);
    }
    let mut stream = watcher(api, wc).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "watched Secrets: watch");
                continue;
            }
        };
        let mut t = lock(&tracker);
        let queued = match ev {
            watcher::Event::Init => {
                t.relist_start(scope.as_deref());
                false
            }
            watcher::Event::InitApply(s) | watcher::Event::Apply(s) => {
                observe(&mut t, &s, selected, &ctx)
            }
            watcher::Event::Delete(s) => {
                let (ns, name) = (
                    s.metadata.namespace.unwrap_or_default(),
                    s.metadata.name.unwrap_or_default(),
                );
                if t.forget(&ns, &name) {
                    ctx.metrics.watch_untrack(&ns, &name);
                }
                false
            }
            watcher::Event::InitDone => {
                for (ns, name) in t.relist_done(scope.as_deref()) {
                    ctx.metrics.watch_untrack(&ns, &name);
                }
                false
            }
        };
        drop(t);
        if queued {
            wake.notify_one();
        }
    }
}

/// A watched Secret (outside another environment's namespaces) is tracked;
/// one that stopped being watched is forgotten.
fn observe(t: &mut Tracker, s: &Secret, selected: bool, ctx: &Context) -> bool {
    let ns = s.metadata.namespace.clone().unwrap_or_default();
    let name = s.metadata.name.clone().unwrap_or_default();
    if watched_because(s, selected).is_none() || ctx.scope.refuse(&ns).is_some() {
        if t.forget(&ns, &name) {
            ctx.metrics.watch_untrack(&ns, &name);
        }
        return false;
    }
    let queued = t.observe(s);
    if queued {
        let hash = t
            .pending
            .get(&(ns.clone(), name.clone()))
            .map(|p| p.hash.clone());
        ctx.metrics.watch_track(Managed {
            namespace: ns,
            secret: name,
            content_hash: hash.unwrap_or_default(),
            lastmodified: None,
        });
    }
    queued
}

/// Rolls one batch with the apply engine; returns the changes held for approval.
async fn roll_batch(
    cfg: &WatchConfig,
    ctx: &Arc<Context>,
    tracker: &Arc<Mutex<Tracker>>,
    batch: BTreeMap<Key, Pending>,
) -> BTreeMap<Key, Pending> {
    let changed: Vec<SecretResult> = batch
        .iter()
        .map(|((ns, name), p)| SecretResult {
            namespace: ns.clone(),
            name: name.clone(),
            file: Default::default(),
            env: String::new(),
            action: cluster::apply::Action::Updated,
            keys: p.keys.clone(),
            content_hash: p.hash.clone(),
        })
        .collect();
    let opts = ApplyOptions {
        restart: true,
        timeout: ctx.rollout_timeout,
        rollback_on_failure: cfg.rollback,
        record_inventory: false,
        report_fixed: false,
        workloads: ctx.workloads.clone(),
        approval: Some(ctx.approval.clone()),
        concurrency: 16,
        ..Default::default()
    };
    let client = ctx.client.clone();
    let started = std::time::Instant::now();
    let report =
        off_thread(move || async move { cluster::apply::roll(&client, changed, &opts).await })
            .await;
    let report = match report {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "watched Secrets: rollout; retrying");
            return batch; // approvals unreadable: retried on the next poll
        }
        Err(e) => {
            tracing::warn!(error = %e, "watched Secrets: rollout task");
            return batch;
        }
    };
    tracing::info!(
        secrets = batch.len(),
        rolled = report.restarted.len(),
        verified = report.verified.len(),
        held = report.awaiting.len(),
        seconds = started.elapsed().as_secs_f64(),
        "watched Secrets: batch done"
    );
    let held = record(ctx, tracker, &batch, &report).await;
    batch
        .into_iter()
        .filter(|(k, _)| held.contains(k))
        .collect()
}

/// Events and metrics of one batch; returns the keys held for approval.
async fn record(
    ctx: &Context,
    tracker: &Mutex<Tracker>,
    batch: &BTreeMap<Key, Pending>,
    report: &cluster::Report,
) -> Vec<Key> {
    let held: Vec<Key> = report
        .awaiting
        .iter()
        .map(|a| (a.namespace.clone(), a.name.clone()))
        .collect();
    for a in &report.awaiting {
        let key = (a.namespace.clone(), a.name.clone());
        let first = lock(tracker).announce(&key, &a.content_hash);
        ctx.metrics.set_awaiting(&a.namespace, &a.name, true);
        if first {
            tracing::info!(namespace = %a.namespace, secret = %a.name, hash = %a.content_hash, "rotation awaits approval");
            let ev = event(EventType::Normal, "AwaitingApproval", a.to_string());
            publish(ctx, tracker, &a.namespace, &a.name, ev).await;
        }
    }
    for ((ns, name), p) in batch {
        if held.contains(&(ns.clone(), name.clone())) {
            continue;
        }
        let was_held = lock(tracker).released(&(ns.clone(), name.clone()));
        ctx.metrics.set_awaiting(ns, name, false);
        if let Some(ev) = rollout_event(report, ns, name, p, was_held, ctx) {
            publish(ctx, tracker, ns, name, ev).await;
        }
    }
    held
}

/// The event for one Secret's rollouts (none when nothing was rolled).
fn rollout_event(
    report: &cluster::Report,
    ns: &str,
    name: &str,
    p: &Pending,
    approved: bool,
    ctx: &Context,
) -> Option<Event> {
    let mine: Vec<&cluster::apply::WorkloadResult> = report
        .restarted
        .iter()
        .filter(|w| w.namespace == ns && w.secrets.iter().any(|s| s == name))
        .collect();
    if mine.is_empty() {
        return None;
    }
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for w in &mine {
        let id = format!("{} {}", w.kind, w.name);
        match &w.outcome {
            Some(Outcome::Verified) | None => {
                ctx.metrics.rotation_rollout(ns, "verified");
                ok.push(id);
            }
            Some(Outcome::Failed(m) | Outcome::TimedOut(m)) => {
                let result = if w.rolled_back {
                    "rolled_back"
                } else {
                    "failed"
                };
                ctx.metrics.rotation_rollout(ns, result);
                bad.push(format!(
                    "{id}: {m}{}",
                    if w.rolled_back { " (rolled back)" } else { "" }
                ));
            }
        }
    }
    ctx.metrics.restart("executed", mine.len() as u64);
    ctx.metrics.restart("verified", ok.len() as u64);
    ctx.metrics.restart("failed", bad.len() as u64);
    let keys = if p.keys.is_empty() {
        "rollout to the current content".to_string()
    } else {
        format!("keys {}", p.keys.summary())
    };
    let approved = if approved { "approved; " } else { "" };
    Some(if bad.is_empty() {
        event(
            EventType::Normal,
            "Rotated",
            format!(
                "{approved}{keys}; rolled out and verified: {}",
                ok.join(", ")
            ),
        )
    } else {
        event(
            EventType::Warning,
            "RolloutFailed",
            format!(
                "{approved}{keys}; still on the old content: {}; verified: {}",
                bad.join("; "),
                if ok.is_empty() {
                    "none".into()
                } else {
                    ok.join(", ")
                }
            ),
        )
    })
}

fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(crate::controller::status::trim_note(&note)),
        action: "Rollout".into(),
        secondary: None,
    }
}

/// Publishes an event about the watched Secret.
async fn publish(ctx: &Context, tracker: &Mutex<Tracker>, ns: &str, name: &str, ev: Event) {
    let r = lock(tracker).reference(ns, name);
    if let Err(e) = ctx.recorder.publish(&ev, &r).await {
        tracing::warn!(namespace = ns, name, error = %e, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn secret(uid: &str, data: &[(&str, &str)], labels: &[(&str, &str)]) -> Secret {
        let mut s = Secret::default();
        s.metadata.namespace = Some("prod".into());
        s.metadata.name = Some("db".into());
        s.metadata.uid = Some(uid.into());
        s.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        s
    }

    #[test]
    fn hashes_decide_not_events() {
        let mut t = Tracker::default();
        assert!(
            t.observe(&secret("u1", &[("password", "a")], &[])),
            "first sight is queued"
        );
        assert!(
            t.take()[&("prod".into(), "db".into())].keys.is_empty(),
            "first sight: no key diff"
        );
        // a label edit, a resync, a re-list: same content, nothing queued
        assert!(!t.observe(&secret("u1", &[("password", "a")], &[("team", "x")])));
        t.relist_start(None);
        assert!(!t.observe(&secret("u1", &[("password", "a")], &[])));
        assert!(t.relist_done(None).is_empty());
        // a rotation: queued with the key name, never the value
        assert!(t.observe(&secret("u1", &[("password", "b"), ("user", "u")], &[])));
        let p = &t.take()[&("prod".into(), "db".into())];
        assert_eq!(p.keys.changed, vec!["password".to_string()]);
        assert_eq!(p.keys.added, vec!["user".to_string()]);
    }

    #[test]
    fn a_burst_is_one_pending_change_with_every_key() {
        let mut t = Tracker::default();
        t.observe(&secret("u1", &[("a", "1"), ("b", "1")], &[]));
        t.take();
        t.observe(&secret("u1", &[("a", "2"), ("b", "1")], &[]));
        t.observe(&secret("u1", &[("a", "2"), ("b", "2")], &[]));
        let all = t.take();
        assert_eq!(all.len(), 1);
        let p = all.values().next().unwrap();
        assert_eq!(p.keys.changed, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn vanished_during_a_relist_is_forgotten_and_a_held_change_superseded_is_dropped() {
        let mut t = Tracker::default();
        t.observe(&secret("u1", &[("a", "1")], &[]));
        let held = t.take();
        t.relist_start(Some("prod"));
        assert_eq!(
            t.relist_done(Some("prod")),
            vec![("prod".to_string(), "db".to_string())]
        );
        t.hold(held.clone());
        assert!(
            t.take().is_empty(),
            "a forgotten Secret's held change is dropped"
        );
        t.observe(&secret("u1", &[("a", "1")], &[]));
        let again = t.take();
        t.observe(&secret("u1", &[("a", "2")], &[]));
        t.take();
        t.hold(again);
        assert!(t.take().is_empty(), "superseded by newer content");
    }

    /// Regression: at start-up every namespace lists at once; one scope's
    /// re-list must not drop what another scope listed.
    #[test]
    fn scopes_relisting_at_once_keep_each_others_secrets() {
        let mut t = Tracker::default();
        let in_ns = |ns: &str| {
            let mut s = secret("u", &[("a", "1")], &[]);
            s.metadata.namespace = Some(ns.into());
            s
        };
        t.relist_start(Some("prod"));
        t.observe(&in_ns("prod"));
        t.relist_start(Some("prod-b"));
        t.observe(&in_ns("prod-b"));
        assert!(t.relist_done(Some("prod")).is_empty());
        assert!(t.relist_done(Some("prod-b")).is_empty());
        assert_eq!(t.seen.len(), 2);
    }

    #[test]
    fn a_held_change_is_announced_once_per_hash() {
        let mut t = Tracker::default();
        let k = ("prod".to_string(), "db".to_string());
        assert!(t.announce(&k, "h1"));
        assert!(!t.announce(&k, "h1"), "polling again says nothing new");
        assert!(t.announce(&k, "h2"), "newer content needs its own approval");
        assert!(t.released(&k));
        assert!(!t.released(&k));
        assert!(
            t.announce(&k, "h2"),
            "held again after a release: announced again"
        );
    }

    #[test]
    fn what_is_watched() {
        let plain = secret("u", &[], &[]);
        assert_eq!(watched_because(&plain, false), None);
        assert_eq!(watched_because(&plain, true), Some("selector"));
        let mut eso = plain.clone();
        eso.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "external-secrets.io/v1".into(),
            kind: "ExternalSecret".into(),
            name: "db".into(),
            uid: "x".into(),
            ..Default::default()
        }]);
        assert_eq!(watched_because(&eso, false), Some("ExternalSecret"));
        let mut other = eso.clone();
        other.metadata.owner_references.as_mut().unwrap()[0].kind = "Unknown".into();
        assert_eq!(
            watched_because(&other, false),
            None,
            "an unknown owner kind is not watched"
        );
        let marked = secret("u", &[], &[(WATCH_MARK, "true")]);
        assert_eq!(watched_because(&marked, false), Some(WATCH_MARK));
        let ours = secret(
            "u",
            &[],
            &[(WATCH_MARK, "true"), (LABEL_MANAGED_BY, "ksec")],
        );
        assert_eq!(
            watched_because(&ours, true),
            None,
            "ksec's own Secrets have their own path"
        );
    }
}
