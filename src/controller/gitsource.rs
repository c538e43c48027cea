//! The Git source: the controller follows a branch and folder of a Git
//! repository (on an interval and on webhook) and applies every encrypted
//! Secret in it with the same checks and engine as the `EncryptedSecret`
//! source — namespace boundary, environment, MAC, `mac_only` — then reports
//! in a status ConfigMap, events and metrics.
//!
//! There is no custom resource to own the Secrets, so ownership is a label
//! (`ksec.io/git-source=<source name>`): the controller never takes over a
//! Secret without it, and only prunes Secrets carrying it. Per-object drift
//! and deletion policies are annotations of the encrypted manifest
//! (`ksec.io/drift`, `ksec.io/deletion-policy`; metadata stays readable in
//! sops files and is MAC-covered), with controller-wide defaults.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value as J, json};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::crd::{Condition, DeletionPolicy, DriftMode};
use super::git::{GitFile, GitRemote, Snapshot};
use super::metrics::ResultLabels;
use super::reconcile::{
    Context, LABEL_SOURCE, Scope, apply_off_thread, classify, reason, set_condition, trim_note,
};
use crate::cluster::apply::{Action as ApplyAction, ApplyOptions, Subject};
use crate::cluster::source::{self, DesiredSecret, FileOptions, OpenRefusal};
use crate::cluster::verify::Outcome;
use crate::cluster::{self, ClusterError, Loaded, diff};
use crate::keys::KeyRing;
use crate::manifest::NamespacePolicy;
use crate::sops::store::{self, StoreError};
use crate::sops::{Format, Value};

/// On every Secret the Git source generates: the source's name.
pub const LABEL_GIT_SOURCE: &str = "ksec.io/git-source";
/// The file (from the repository root) the Secret was applied from.
pub const ANN_SOURCE_PATH: &str = "ksec.io/source-path";
/// The commit at which the Secret's current content was applied.
pub const ANN_SOURCE_REVISION: &str = "ksec.io/source-revision";
/// The blob id of that file at that commit.
pub const ANN_SOURCE_BLOB: &str = "ksec.io/source-blob";
/// SHA-256 of the Secret's encrypted document (its ciphertext, not the
/// whole file's): same digest, same source (drift detection, no decryption).
pub const ANN_SOURCE_DIGEST: &str = "ksec.io/source-digest";
/// Set (to the revision) instead of deleting when the file is removed and the policy is Orphan.
pub const ANN_ORPHANED: &str = "ksec.io/orphaned";
/// Per-object policies, in the encrypted manifest's metadata.annotations.
pub const ANN_DRIFT: &str = "ksec.io/drift";
pub const ANN_DELETION_POLICY: &str = "ksec.io/deletion-policy";
/// The fetch failed (network, authentication, missing branch or path).
pub const FETCH_FAILED: &str = "FetchFailed";
/// Field manager of the status ConfigMap and of orphan marks.
const STATUS_MANAGER: &str = "ksec-git-status";

/// `ksec controller --git-*`.
pub struct GitSourceConfig {
    pub remote: GitRemote,
    /// Label value and status ConfigMap suffix (`ksec-git-<name>`).
    pub name: String,
    pub interval: Duration,
    /// Defaults for objects without the annotations.
    pub drift: DriftMode,
    pub deletion: DeletionPolicy,
    /// Where the status ConfigMap and source-level events go.
    pub status_namespace: String,
    pub webhook_secret: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for GitSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitSourceConfig")
            .field("remote", &self.remote)
            .field("name", &self.name)
            .field("interval", &self.interval)
            .field("status_namespace", &self.status_namespace)
            .field("webhook", &self.webhook_secret.is_some())
            .finish_non_exhaustive()
    }
}

impl GitSourceConfig {
    pub fn status_name(&self) -> String {
        format!("ksec-git-{}", self.name)
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

/// What happened to one file, as the status lists it (no values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStatus {
    pub path: String,
    /// `namespace/name`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Key names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(skip)]
    blob: String,
}

impl FileStatus {
    fn new(f: &GitFile, state: &str) -> FileStatus {
        FileStatus {
            path: f.path.clone(),
            secret: None,
            state: state.into(),
            reason: None,
            message: String::new(),
            keys: vec![],
            blob: f.blob.clone(),
        }
    }

    fn refused(&mut self, reason: &str, message: String) {
        self.state = "refused".into();
        self.reason = Some(reason.into());
        self.message = message;
    }
}

/// The status ConfigMap's `status.json`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitStatus {
    pub url: String,
    pub branch: String,
    pub path: String,
    pub conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_synced_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_fetched_revision: Option<String>,
    pub files: Vec<FileStatus>,
    /// In-sync files left out of `files` (a ConfigMap holds at most 1 MiB).
    #[serde(skip_serializing_if = "is_zero")]
    pub files_omitted: usize,
}

/// (blob, state, reason) of a status entry.
type Announced = (String, String, Option<String>);

/// Memory between syncs: what was already announced (events and counters
/// fire on change, not on every interval).
#[derive(Default)]
struct Memory {
    status: GitStatus,
    /// (path, `namespace/name`) → (blob, state, reason) of the last sync:
    /// one entry per Secret of a file, or per file when no Secret is concerned.
    outcomes: HashMap<(String, Option<String>), Announced>,
    /// Secret → drift summary already reported.
    drift: HashMap<String, String>,
    fetch_error: Option<String>,
    status_ref: Option<ObjectReference>,
    /// The last fetched tree (ciphertext), re-checked when a Secret changes.
    snapshot: Option<Snapshot>,
}

/// Fetches and syncs on start, every `interval`, and whenever `trigger`
/// fires (webhook); re-checks the last fetched tree without fetching when
/// one of its Secrets changes (a hand edit is reverted at once under
/// `enforce`). Returns on SIGTERM / Ctrl-C.
pub async fn run(cfg: Arc<GitSourceConfig>, ctx: Arc<Context>, trigger: Arc<Notify>) {
    let mut mem = Memory {
        status: GitStatus {
            url: super::git::redact_url(&cfg.remote.url),
            branch: cfg.remote.branch.clone(),
            path: cfg.remote.path.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let changed = Arc::new(Notify::new());
    let watch = tokio::spawn(watch_secrets(
        ctx.clone(),
        cfg.name.clone(),
        changed.clone(),
    ));
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    let mut fetch = true;
    let mut next_fetch = tokio::time::Instant::now();
    loop {
        if fetch {
            next_fetch = tokio::time::Instant::now() + cfg.interval;
        }
        tokio::select! {
            _ = sync_once(&cfg, &ctx, &mut mem, fetch) => {}
            _ = &mut shutdown => break,
        }
        fetch = tokio::select! {
            _ = tokio::time::sleep_until(next_fetch) => true,
            _ = trigger.notified() => {
                tracing::debug!("git source: webhook");
                true
            }
            _ = changed.notified() => {
                // Let a burst of Secret events (our own apply) settle into one check.
                tokio::time::sleep(Duration::from_millis(200)).await;
                false
            }
            _ = &mut shutdown => break,
        };
    }
    watch.abort();
}

/// Wakes `changed` on every change of a Secret labelled with this source
/// (not on the initial listing).
async fn watch_secrets(ctx: Arc<Context>, source: String, changed: Arc<Notify>) {
    use futures_util::StreamExt;
    use kube::runtime::watcher;
    let wc = watcher::Config::default().labels(&format!("{LABEL_GIT_SOURCE}={source}"));
    let apis: Vec<Api<Secret>> = if ctx.scope.boundary.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        ctx.scope
            .boundary
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    let streams = apis
        .into_iter()
        .map(|api| watcher::watcher(api, wc.clone()).boxed());
    let mut all = futures_util::stream::select_all(streams);
    while let Some(ev) = all.next().await {
        match ev {
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => changed.notify_one(),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "git source: Secret watch");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn sync_once(cfg: &GitSourceConfig, ctx: &Context, mem: &mut Memory, fetch: bool) {
    if !fetch && let Some(snap) = mem.snapshot.clone() {
        let t = Instant::now();
        let complete = sync_snapshot(cfg, ctx, mem, &snap).await;
        tracing::debug!(revision = %snap.revision, complete, ms = t.elapsed().as_millis() as u64, "git source re-checked after a Secret change");
        return;
    }
    let gm = &ctx.metrics.git;
    let started = Instant::now();
    let remote = cfg.remote.clone();
    let fetched = tokio::task::spawn_blocking(move || remote.fetch()).await;
    gm.fetch_duration.observe(started.elapsed().as_secs_f64());
    let snap = match fetched {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fetch_failed(cfg, ctx, mem, e.to_string()).await,
        Err(e) => return fetch_failed(cfg, ctx, mem, format!("fetch task: {e}")).await,
    };
    gm.fetches
        .get_or_create(&ResultLabels {
            result: "success".into(),
        })
        .inc();
    mem.fetch_error = None;
    mem.status.last_fetched_revision = Some(snap.revision.clone());
    tracing::debug!(revision = %snap.revision, files = snap.files.len(), fetch_ms = started.elapsed().as_millis() as u64, "git source fetched");
    let synced = sync_snapshot(cfg, ctx, mem, &snap).await;
    mem.snapshot = Some(snap.clone());
    tracing::info!(
        revision = %snap.revision,
        complete = synced,
        ms = started.elapsed().as_millis() as u64,
        "git source synced"
    );
}

async fn fetch_failed(cfg: &GitSourceConfig, ctx: &Context, mem: &mut Memory, message: String) {
    let message = cfg.remote.redact(&message);
    ctx.metrics
        .git
        .fetches
        .get_or_create(&ResultLabels {
            result: "error".into(),
        })
        .inc();
    ctx.metrics.sync_error(FETCH_FAILED);
    tracing::warn!(reason = FETCH_FAILED, "git source: {message}");
    let conds = &mut mem.status.conditions;
    set_condition(conds, "Ready", "False", FETCH_FAILED, &message, None);
    set_condition(conds, "Reconciling", "True", FETCH_FAILED, &message, None);
    set_condition(conds, "Stalled", "False", FETCH_FAILED, "", None);
    let new = mem.fetch_error.as_deref() != Some(message.as_str());
    mem.fetch_error = Some(message.clone());
    write_status(cfg, ctx, mem).await;
    if new {
        source_event(ctx, mem, EventType::Warning, FETCH_FAILED, &message).await;
    }
}

/// Readable facts of one Secret of an encrypted file (no decryption).
#[derive(Debug, PartialEq, Eq)]
struct PlainSecret {
    namespace: Option<String>,
    name: Option<String>,
    /// SHA-256 of the Secret's encrypted form (ciphertext and readable
    /// metadata, without the file's sops metadata): it changes when the
    /// Secret's own content changes, not when another Secret of the file does.
    digest: String,
}

/// The Secrets of an encrypted file, in document order (the order in which
/// [`source::open_all`] returns them).
fn plain_id(docs: &crate::sops::Documents) -> Vec<PlainSecret> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::new();
    for d in &docs.0 {
        for obj in crate::manifest::objects(d) {
            if crate::manifest::is_secret(&obj) {
                let meta = obj.get("metadata").and_then(Value::as_map);
                let get = |k| {
                    meta.and_then(|m| m.str_of(k))
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                };
                let text = serde_json::to_string(&Value::Map(obj.clone()).to_json())
                    .expect("JSON serializes");
                out.push(PlainSecret {
                    namespace: get("namespace"),
                    name: get("name"),
                    digest: hex::encode(Sha256::digest(text.as_bytes())),
                });
            }
        }
    }
    out
}

/// A live Secret of this source that may stand for its document without
/// decrypting it again: not orphaned, not edited since it was applied.
struct Reusable {
    path: String,
    digest: Option<String>,
    keys: Vec<String>,
}

/// What the last sync left live, for [`open_file`].
#[derive(Default)]
struct LiveIndex {
    reusable: HashMap<(String, String), Reusable>,
    /// path → the (not orphaned) Secrets applied from it.
    by_path: HashMap<String, BTreeSet<(String, String)>>,
}

/// One entry of a file: a Secret, or the whole file.
enum Entry {
    /// Applied from this very document and not edited since: not decrypted.
    Intact(FileStatus),
    /// Decrypted and checked, with its document's digest; to compare with the live Secret.
    Open(FileStatus, Box<DesiredSecret>, String),
    /// Skipped or refused.
    Done(FileStatus),
}

/// One Secret of a file before decryption: (namespace, name) and the
/// digest of its document, or why it is refused already.
type Slot = Result<((String, String), String), Box<FileStatus>>;

/// What one file yields.
struct Opened {
    entries: Vec<Entry>,
    /// Its Secrets are authenticated (decrypted with the MAC verified, or
    /// all intact): a live Secret it no longer defines may be pruned.
    verified: bool,
    /// Why decryption failed (the metric counts it once per file).
    decrypt_error: Option<&'static str>,
}

impl Opened {
    fn done(st: FileStatus) -> Opened {
        Opened {
            entries: vec![Entry::Done(st)],
            verified: false,
            decrypt_error: None,
        }
    }
}

/// One file → one entry per Secret (decrypted once for all of them), or one
/// entry for the whole file. Runs on the blocking pool.
fn open_file(f: &GitFile, ring: &KeyRing, scope: &Scope, live: &LiveIndex) -> Opened {
    let mut st = FileStatus::new(f, "skipped");
    let format = if f.path.to_ascii_lowercase().ends_with(".json") {
        Format::Json
    } else {
        Format::Yaml
    };
    let (docs, meta) = match store::load_encrypted(format, &f.bytes) {
        Ok(x) => x,
        Err(StoreError::NotEncrypted) => {
            let plain_secret = store::load_plain(format, &f.bytes)
                .map(|d| crate::manifest::has_secret(&d))
                .unwrap_or(false);
            if plain_secret {
                st.refused(
                    reason::DECRYPT_FAILED,
                    "holds a plaintext Secret; only SOPS-encrypted Secrets are applied".into(),
                );
            } else {
                st.message = "not an encrypted manifest".into();
            }
            return Opened::done(st);
        }
        Err(e) => {
            st.refused(reason::INVALID, e.to_string());
            return Opened::done(st);
        }
    };
    if let Some(p) = crate::manifest::secret_shape(&docs).first() {
        st.refused(reason::INVALID, format!("probable tampering: {p}"));
        return Opened::done(st);
    }
    let ids = plain_id(&docs);
    if ids.is_empty() {
        st.message = "no Secret in it".into();
        return Opened::done(st);
    }
    // Files of other environments share the repository: not ours, not an error.
    if let Err(why) = scope
        .boundary
        .file_in_env(&scope.boundary.encrypted_for(&meta))
    {
        st.message = why;
        return Opened::done(st);
    }
    drop(docs);
    // Per Secret, from the readable metadata: name, namespace, boundary.
    // Secrets refused here are not decrypted.
    let default_ns = if scope.boundary.namespaces.len() == 1 {
        scope.boundary.namespaces.iter().next().cloned()
    } else {
        None
    };
    let slots: Vec<Slot> = ids
        .into_iter()
        .map(|p| {
            let mut e = FileStatus::new(f, "refused");
            let Some(name) = p.name else {
                e.refused(reason::INVALID, "a Secret has no metadata.name".into());
                return Err(Box::new(e));
            };
            let Some(ns) = p.namespace.or_else(|| default_ns.clone()) else {
                e.refused(
                    reason::INVALID,
                    format!("the Secret {name} names no metadata.namespace"),
                );
                return Err(Box::new(e));
            };
            e.secret = Some(cluster::nsname(&ns, &name));
            if let Some(why) = scope.refuse(&ns) {
                e.refused(reason::NAMESPACE_NOT_ALLOWED, why);
                return Err(Box::new(e));
            }
            Ok(((ns, name), p.digest))
        })
        .collect();
    let wanted: BTreeSet<(String, String)> = slots
        .iter()
        .filter_map(|s| s.as_ref().ok().map(|(k, _)| k.clone()))
        .collect();
    let allowed = slots.iter().filter(|s| s.is_ok()).count();
    if allowed == 0 {
        return Opened {
            entries: slots
                .into_iter()
                .filter_map(|s| s.err().map(|e| Entry::Done(*e)))
                .collect(),
            verified: false,
            decrypt_error: None,
        };
    }
    // Not decrypted again when every Secret of the file is live, from this
    // path and this very document, unedited, and the file defines exactly
    // the Secrets live from it (none removed, none added, none twice).
    let intact = wanted.len() == allowed
        && live.by_path.get(&f.path) == Some(&wanted)
        && slots.iter().all(|s| match s {
            Ok((k, digest)) => live
                .reusable
                .get(k)
                .is_some_and(|r| r.path == f.path && r.digest.as_deref() == Some(digest.as_str())),
            Err(_) => true,
        });
    if intact {
        return Opened {
            entries: slots
                .into_iter()
                .map(|s| match s {
                    Ok((k, _)) => {
                        let mut e = FileStatus::new(f, "unchanged");
                        e.secret = Some(cluster::nsname(&k.0, &k.1));
                        e.keys = live.reusable[&k].keys.clone();
                        Entry::Intact(e)
                    }
                    Err(e) => Entry::Done(*e),
                })
                .collect(),
            verified: true,
            decrypt_error: None,
        };
    }
    let opened = source::open_all(
        Path::new(&f.path),
        &f.bytes,
        ring,
        FileOptions {
            policy: NamespacePolicy {
                default: default_ns.as_deref(),
                only: None,
            },
            boundary: &scope.boundary,
            allow_mac_only: scope.allow_mac_only,
        },
    );
    match opened {
        // The whole file (the MAC covers it): every Secret in it is refused.
        Err(r) => {
            let why = classify(&r);
            let decrypt = matches!(r, OpenRefusal::Decrypt(_) | OpenRefusal::NotEncrypted(_));
            let msg = r.to_string();
            Opened {
                entries: slots
                    .into_iter()
                    .map(|s| match s {
                        Ok(((ns, name), _)) => {
                            let mut e = FileStatus::new(f, "refused");
                            e.secret = Some(cluster::nsname(&ns, &name));
                            e.refused(why, msg.clone());
                            Entry::Done(e)
                        }
                        Err(e) => Entry::Done(*e),
                    })
                    .collect(),
                verified: false,
                decrypt_error: decrypt.then_some(why),
            }
        }
        Ok(all) if all.len() != slots.len() => {
            st.refused(
                reason::INVALID,
                "the decrypted file does not hold the Secrets its metadata lists".into(),
            );
            Opened::done(st)
        }
        Ok(all) => Opened {
            entries: slots
                .into_iter()
                .zip(all)
                .map(|(slot, res)| match (slot, res) {
                    (Err(e), _) => Entry::Done(*e),
                    (Ok(_), Err(r)) => {
                        let mut e = FileStatus::new(f, "refused");
                        e.secret = r.secret;
                        e.refused(classify(&r.refusal), r.refusal.to_string());
                        Entry::Done(e)
                    }
                    (Ok((_, digest)), Ok(d)) => {
                        let mut e = FileStatus::new(f, "pending");
                        e.secret = Some(cluster::nsname(&d.namespace, &d.name));
                        if let Some(why) = scope.refuse(&d.namespace) {
                            e.refused(reason::NAMESPACE_NOT_ALLOWED, why);
                            return Entry::Done(e);
                        }
                        e.keys = d.data.keys().cloned().collect();
                        Entry::Open(e, Box::new(d), digest)
                    }
                })
                .collect(),
            verified: true,
            decrypt_error: None,
        },
    }
}

fn parse_drift(v: &str) -> Option<DriftMode> {
    match v.to_ascii_lowercase().as_str() {
        "enforce" => Some(DriftMode::Enforce),
        "report" => Some(DriftMode::Report),
        "ignore" => Some(DriftMode::Ignore),
        _ => None,
    }
}

fn parse_deletion(v: &str) -> Option<DeletionPolicy> {
    match v.to_ascii_lowercase().as_str() {
        "orphan" => Some(DeletionPolicy::Orphan),
        "delete" => Some(DeletionPolicy::Delete),
        _ => None,
    }
}

fn annotation<'a>(obj: &'a J, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(J::as_str)
}

/// The live data is what ksec applied (the salted content hash it stamped matches).
fn untouched(l: &Secret) -> bool {
    let a = l.annotations();
    match (
        a.get(cluster::ANN_HASH_SALT),
        a.get(cluster::ANN_CONTENT_HASH),
    ) {
        (Some(salt), Some(h)) => &diff::content_hash(salt, &diff::live_data(l)) == h,
        _ => false,
    }
}

fn live_annotation<'a>(s: &'a Secret, key: &str) -> Option<&'a str> {
    s.annotations().get(key).map(String::as_str)
}

/// Lists the Secrets this source generated, in the controller's namespaces
/// (with data: one request instead of one per file to detect drift).
async fn list_owned(
    ctx: &Context,
    source: &str,
) -> Result<BTreeMap<(String, String), Secret>, ClusterError> {
    let lp = ListParams::default().labels(&format!("{LABEL_GIT_SOURCE}={source}"));
    let apis: Vec<(String, Api<Secret>)> = if ctx.scope.boundary.namespaces.is_empty() {
        vec![("all namespaces".into(), Api::all(ctx.client.clone()))]
    } else {
        ctx.scope
            .boundary
            .namespaces
            .iter()
            .map(|ns| (ns.clone(), Api::namespaced(ctx.client.clone(), ns)))
            .collect()
    };
    let mut out = BTreeMap::new();
    for (what, api) in apis {
        let list = api
            .list(&lp)
            .await
            .map_err(|e| ClusterError::from_kube(format!("list secrets in {what}"), e))?;
        for s in list.items {
            out.insert((s.namespace().unwrap_or_default(), s.name_any()), s);
        }
    }
    Ok(out)
}

/// Per-file plan after comparing with the live Secret.
struct Planned {
    file: usize,
    desired: DesiredSecret,
    unorphan: bool,
}

/// Decrypts, checks, applies and prunes one snapshot. True when the
/// revision is synced (no transient failure).
async fn sync_snapshot(
    cfg: &GitSourceConfig,
    ctx: &Context,
    mem: &mut Memory,
    snap: &Snapshot,
) -> bool {
    let rev = snap.revision.clone();
    let short = &rev[..rev.len().min(12)];
    let t = Instant::now();
    // 1. What is live.
    let live = match list_owned(ctx, &cfg.name).await {
        Ok(l) => l,
        Err(e) => {
            let files = mem.status.files.clone();
            transient(cfg, ctx, mem, files, &e.to_string()).await;
            return false;
        }
    };
    // A Secret applied from the same document and not edited since needs no
    // decryption: the document was checked when it was applied.
    let mut index = LiveIndex::default();
    for ((ns, name), l) in &live {
        let Some(path) = live_annotation(l, ANN_SOURCE_PATH) else {
            continue;
        };
        if live_annotation(l, ANN_ORPHANED).is_some() {
            continue;
        }
        index
            .by_path
            .entry(path.to_string())
            .or_default()
            .insert((ns.clone(), name.clone()));
        if untouched(l) && ctx.scope.refuse(ns).is_none() {
            index.reusable.insert(
                (ns.clone(), name.clone()),
                Reusable {
                    path: path.to_string(),
                    digest: live_annotation(l, ANN_SOURCE_DIGEST).map(str::to_string),
                    keys: diff::live_data(l).into_keys().collect(),
                },
            );
        }
    }
    let listed_ms = t.elapsed().as_millis() as u64;
    // 2. Decrypt and check the other files (parallel, off the async workers).
    let files = Arc::new(snap.files.clone());
    let (ring, scope) = (ctx.ring.clone(), ctx.scope.clone());
    let fs = files.clone();
    let opened = tokio::task::spawn_blocking(move || {
        fs.par_iter()
            .map(|f| open_file(f, &ring, &scope, &index))
            .collect::<Vec<_>>()
    })
    .await;
    let opened = match opened {
        Ok(o) => o,
        Err(e) => {
            // Never go on with an empty list: everything would be pruned.
            let files = mem.status.files.clone();
            transient(cfg, ctx, mem, files, &format!("decryption task: {e}")).await;
            return false;
        }
    };
    let mut statuses: Vec<FileStatus> = Vec::with_capacity(files.len());
    let mut desired: Vec<(usize, DesiredSecret, String)> = Vec::new();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    // Intact Secrets first: as applied, they win over a second definition elsewhere.
    for o in &opened {
        for e in &o.entries {
            if let Entry::Intact(st) = e
                && let Some((ns, name)) = st.secret.as_deref().and_then(|x| x.split_once('/'))
            {
                seen.insert((ns.to_string(), name.to_string()), st.path.clone());
            }
        }
    }
    let mut verified: BTreeSet<String> = BTreeSet::new();
    let mut decrypt_errors = Vec::new();
    for (i, o) in opened.into_iter().enumerate() {
        if o.verified {
            verified.insert(files[i].path.clone());
        }
        if let Some(r) = o.decrypt_error {
            decrypt_errors.push((files[i].path.clone(), files[i].blob.clone(), r));
        }
        for e in o.entries {
            let (mut st, d, digest) = match e {
                Entry::Intact(st) | Entry::Done(st) => {
                    statuses.push(st);
                    continue;
                }
                Entry::Open(st, d, digest) => (st, *d, digest),
            };
            let key = (d.namespace.clone(), d.name.clone());
            if let Some(prev) = seen.get(&key) {
                st.refused(
                    reason::INVALID,
                    format!("the same Secret is defined in {prev}"),
                );
            } else if let Some(bad) =
                annotation(&d.object, ANN_DRIFT).filter(|v| parse_drift(v).is_none())
            {
                st.refused(
                    reason::INVALID,
                    format!("{ANN_DRIFT}: {bad:?} is not enforce, report or ignore"),
                );
            } else if let Some(bad) =
                annotation(&d.object, ANN_DELETION_POLICY).filter(|v| parse_deletion(v).is_none())
            {
                st.refused(
                    reason::INVALID,
                    format!("{ANN_DELETION_POLICY}: {bad:?} is not Orphan or Delete"),
                );
            } else {
                seen.insert(key, files[i].path.clone());
                desired.push((statuses.len(), d, digest));
            }
            statuses.push(st);
        }
    }
    for p in &snap.oversized {
        statuses.push(FileStatus {
            path: p.clone(),
            secret: None,
            state: "refused".into(),
            reason: Some(reason::INVALID.into()),
            message: format!("larger than {} bytes", super::git::MAX_FILE_BYTES),
            keys: vec![],
            blob: String::new(),
        });
    }

    let decrypted_ms = t.elapsed().as_millis() as u64;
    // 3. Compare with what is live.
    let mut plans: Vec<Planned> = Vec::new();
    let mut drifted: Vec<(usize, String, String, bool)> = Vec::new();
    let mut transient_msgs: Vec<String> = Vec::new();
    for (si, mut d, digest) in desired {
        let st = &mut statuses[si];
        let key = (d.namespace.clone(), d.name.clone());
        let drift_mode = annotation(&d.object, ANN_DRIFT)
            .and_then(parse_drift)
            .unwrap_or(cfg.drift);
        let mut unorphan = false;
        match live.get(&key) {
            Some(l) => {
                let orphaned = live_annotation(l, ANN_ORPHANED).is_some();
                unorphan = orphaned;
                // Applied from this very document at this path (Secrets
                // applied before the digest existed: from this very file).
                let live_digest = live_annotation(l, ANN_SOURCE_DIGEST);
                let same_doc = live_digest == Some(digest.as_str())
                    && live_annotation(l, ANN_SOURCE_PATH) == Some(st.path.as_str());
                let same_source = !orphaned
                    && (same_doc
                        || (live_digest.is_none()
                            && live_annotation(l, ANN_SOURCE_BLOB) == Some(st.blob.as_str())));
                if same_source {
                    let keys = diff::key_diff(&d.data, &diff::live_data(l));
                    // Unchanged: not written again, even when another
                    // Secret of the same file changed. Without a digest yet,
                    // it is applied once to get one.
                    if keys.is_empty() && same_doc {
                        st.state = "unchanged".into();
                        continue;
                    }
                    match drift_mode {
                        _ if keys.is_empty() => {}
                        DriftMode::Enforce => {}
                        DriftMode::Report | DriftMode::Ignore => {
                            let report = drift_mode == DriftMode::Report;
                            st.state = "drifted".into();
                            st.reason = Some(reason::DRIFT_DETECTED.into());
                            st.message = format!(
                                "the live Secret differs ({}); not reverted (drift: {})",
                                keys.summary(),
                                if report { "report" } else { "ignore" }
                            );
                            drifted.push((
                                si,
                                st.secret.clone().unwrap_or_default(),
                                keys.summary(),
                                report,
                            ));
                            continue;
                        }
                    }
                }
            }
            None => {
                // Never take over a Secret this source did not create.
                match Api::<Secret>::namespaced(ctx.client.clone(), &d.namespace)
                    .get_metadata_opt(&d.name)
                    .await
                {
                    Ok(None) => {}
                    Ok(Some(other)) => {
                        let owner = other
                            .labels()
                            .get(LABEL_GIT_SOURCE)
                            .map(|s| format!("Git source {s}"))
                            .or_else(|| {
                                other
                                    .labels()
                                    .get(LABEL_SOURCE)
                                    .map(|s| format!("EncryptedSecret {s}"))
                            });
                        let msg = match owner {
                            Some(o) => format!("Secret {}/{} belongs to {o}", d.namespace, d.name),
                            None => format!(
                                "Secret {}/{} exists and was not created by this Git source; delete it, or label it {LABEL_GIT_SOURCE}={} to hand it over",
                                d.namespace, d.name, cfg.name
                            ),
                        };
                        st.refused(reason::SECRET_CONFLICT, msg);
                        continue;
                    }
                    Err(e) => {
                        let m = ClusterError::from_kube(
                            format!("get secret {}/{}", d.namespace, d.name),
                            e,
                        )
                        .to_string();
                        st.refused(reason::APPLY_FAILED, m.clone());
                        st.state = "failed".into();
                        transient_msgs.push(m);
                        continue;
                    }
                }
            }
        }
        let meta = d.object["metadata"]
            .as_object_mut()
            .expect("skeleton has metadata");
        let labels = meta
            .entry("labels")
            .or_insert_with(|| J::Object(Default::default()));
        labels[LABEL_GIT_SOURCE] = J::String(cfg.name.clone());
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| J::Object(Default::default()));
        ann[ANN_SOURCE_PATH] = J::String(st.path.clone());
        ann[ANN_SOURCE_REVISION] = J::String(rev.clone());
        ann[ANN_SOURCE_BLOB] = J::String(st.blob.clone());
        ann[ANN_SOURCE_DIGEST] = J::String(digest);
        plans.push(Planned {
            file: si,
            desired: d,
            unorphan,
        });
    }

    // 4. Apply through the `ksec apply` engine (restart + verify).
    let mut rollout_failed: Vec<String> = Vec::new();
    let mut applied_events: Vec<(String, String, String)> = Vec::new();
    if !plans.is_empty() {
        let index: HashMap<String, usize> = plans
            .iter()
            .map(|p| {
                (
                    cluster::nsname(&p.desired.namespace, &p.desired.name),
                    p.file,
                )
            })
            .collect();
        let unorphan: Vec<(String, String)> = plans
            .iter()
            .filter(|p| p.unorphan)
            .map(|p| (p.desired.namespace.clone(), p.desired.name.clone()))
            .collect();
        let loaded = Loaded {
            secrets: plans.into_iter().map(|p| p.desired).collect(),
            ..Default::default()
        };
        let opts = ApplyOptions {
            restart: true,
            // The repository is the source of truth for Secrets carrying its label.
            force_conflicts: true,
            timeout: ctx.rollout_timeout,
            inventory_id: format!("git-{}", cfg.name),
            record_inventory: false,
            concurrency: 8,
            ..Default::default()
        };
        let applied = apply_off_thread(ctx.client.clone(), loaded, opts).await;
        let report = match applied {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                transient(cfg, ctx, mem, statuses, &e.to_string()).await;
                return false;
            }
            Err(e) => {
                transient(cfg, ctx, mem, statuses, &format!("apply task: {e}")).await;
                return false;
            }
        };
        for f in &report.failures {
            if let Subject::Secret { namespace, name } = &f.subject
                && let Some(&si) = index.get(&cluster::nsname(namespace, name))
            {
                statuses[si].refused(reason::APPLY_FAILED, f.message.clone());
                statuses[si].state = "failed".into();
                transient_msgs.push(format!("{}: {}", statuses[si].path, f.message));
            } else {
                rollout_failed.push(format!("{}: {}", f.subject, f.message));
            }
        }
        for sr in report.applied.iter().chain(report.unchanged.iter()) {
            let id = cluster::nsname(&sr.namespace, &sr.name);
            if let Some(&si) = index.get(&id) {
                statuses[si].state = if sr.action == ApplyAction::Unchanged {
                    "unchanged".into()
                } else {
                    "applied".into()
                };
                if sr.action != ApplyAction::Unchanged {
                    let restarted: Vec<String> = report
                        .restarted
                        .iter()
                        .filter(|w| w.namespace == sr.namespace && w.secrets.contains(&sr.name))
                        .map(|w| format!("{} {}", w.kind, w.name))
                        .collect();
                    applied_events.push((
                        sr.namespace.clone(),
                        sr.name.clone(),
                        format!(
                            "{} from {} at {short} (keys: {}); consumers restarted: {}",
                            if sr.action == ApplyAction::Created {
                                "created"
                            } else {
                                "updated"
                            },
                            statuses[si].path,
                            statuses[si].keys.join(", "),
                            if restarted.is_empty() {
                                "none".into()
                            } else {
                                restarted.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        rollout_failed.extend(report.restarted.iter().filter_map(|w| match &w.outcome {
            Some(Outcome::Failed(m)) | Some(Outcome::TimedOut(m)) => {
                Some(format!("{} {}/{}: {m}", w.kind, w.namespace, w.name))
            }
            _ => None,
        }));
        ctx.metrics
            .restart("executed", report.restarted.len() as u64);
        ctx.metrics
            .restart("verified", report.verified.len() as u64);
        ctx.metrics.restart("failed", rollout_failed.len() as u64);
        for (ns, name) in unorphan {
            let patch = json!({"metadata": {"annotations": {ANN_ORPHANED: null}}});
            if let Err(e) = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::warn!(namespace = %ns, name = %name, error = %e, "cannot clear {ANN_ORPHANED}");
            }
        }
    }

    let applied_ms = t.elapsed().as_millis() as u64;
    // 5. Prune: Secrets whose file is gone, or whose file, decrypted, no
    // longer defines them (document removed, Secret renamed).
    let desired_ids: BTreeSet<String> = statuses
        .iter()
        .filter(|s| s.state != "refused" && s.state != "skipped")
        .filter_map(|s| s.secret.clone())
        .collect();
    let present: BTreeSet<&str> = statuses.iter().map(|s| s.path.as_str()).collect();
    // Entries that keep their Secret: refused, skipped or failed (per Secret,
    // or for the whole file when `None`).
    let held: BTreeSet<(&str, Option<&str>)> = statuses
        .iter()
        .filter(|s| matches!(s.state.as_str(), "refused" | "skipped" | "failed"))
        .map(|s| (s.path.as_str(), s.secret.as_deref()))
        .collect();
    let mut pruned: Vec<(String, String, DeletionPolicy, String)> = Vec::new();
    for ((ns, name), l) in &live {
        let id = cluster::nsname(ns, name);
        if desired_ids.contains(&id) || live_annotation(l, ANN_ORPHANED).is_some() {
            continue;
        }
        let path = live_annotation(l, ANN_SOURCE_PATH).unwrap_or("");
        // A file still there keeps its Secret unless it was decrypted (MAC
        // verified) and no longer defines it: a refused file (bad MAC,
        // missing key…) or Secret never causes a deletion.
        if present.contains(path)
            && (!verified.contains(path)
                || held.contains(&(path, Some(id.as_str())))
                || held.contains(&(path, None)))
        {
            continue;
        }
        let policy = live_annotation(l, ANN_DELETION_POLICY)
            .and_then(parse_deletion)
            .unwrap_or(cfg.deletion);
        let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
        let res = match policy {
            DeletionPolicy::Delete => api.delete(name, &DeleteParams::default()).await.map(|_| ()),
            DeletionPolicy::Orphan => {
                let patch = json!({"metadata": {"annotations": {ANN_ORPHANED: rev}}});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map(|_| ())
            }
        };
        match res {
            Ok(()) => pruned.push((ns.clone(), name.clone(), policy, path.to_string())),
            Err(e) => transient_msgs
                .push(ClusterError::from_kube(format!("prune secret {id}"), e).to_string()),
        }
    }

    // 6. Status, metrics, events.
    let complete = transient_msgs.is_empty();
    let refused: Vec<&FileStatus> = statuses.iter().filter(|s| s.state == "refused").collect();
    let total = statuses.iter().filter(|s| s.state != "skipped").count();
    let conds = &mut mem.status.conditions;
    mem.fetch_error = None;
    if !rollout_failed.is_empty() {
        let msg = format!(
            "revision {short} applied, but consumers did not roll out: {}",
            rollout_failed.join("; ")
        );
        set_condition(conds, "Ready", "False", reason::ROLLOUT_FAILED, &msg, None);
        set_condition(
            conds,
            "Reconciling",
            "False",
            reason::ROLLOUT_FAILED,
            "",
            None,
        );
        set_condition(conds, "Stalled", "True", reason::ROLLOUT_FAILED, &msg, None);
        ctx.metrics.sync_error(reason::ROLLOUT_FAILED);
    } else if !complete {
        let msg = format!(
            "revision {short}: will retry: {}",
            transient_msgs.join("; ")
        );
        set_condition(conds, "Ready", "False", reason::APPLY_FAILED, &msg, None);
        set_condition(
            conds,
            "Reconciling",
            "True",
            reason::APPLY_FAILED,
            &msg,
            None,
        );
        set_condition(conds, "Stalled", "False", reason::APPLY_FAILED, "", None);
        ctx.metrics.sync_error(reason::APPLY_FAILED);
    } else if let Some(first) = refused.first() {
        let r = first.reason.clone().unwrap_or_default();
        let msg = format!(
            "revision {short}: {} of {total} Secret(s) or file(s) refused: {}",
            refused.len(),
            refused
                .iter()
                .map(|s| format!(
                    "{}{} ({}): {}",
                    s.path,
                    s.secret
                        .as_deref()
                        .map(|x| format!(" [{x}]"))
                        .unwrap_or_default(),
                    s.reason.as_deref().unwrap_or(""),
                    s.message
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        set_condition(conds, "Ready", "False", &r, &trim_note(&msg), None);
        set_condition(conds, "Reconciling", "False", &r, "", None);
        set_condition(conds, "Stalled", "True", &r, &trim_note(&msg), None);
    } else {
        let msg = format!("revision {short}: {total} Secret(s) in sync");
        set_condition(conds, "Ready", "True", reason::SYNCED, &msg, None);
        set_condition(conds, "Reconciling", "False", reason::SYNCED, "", None);
        set_condition(conds, "Stalled", "False", reason::SYNCED, "", None);
    }
    if drifted.iter().any(|d| d.3) {
        let msg = drifted
            .iter()
            .filter(|d| d.3)
            .map(|d| format!("{}: {}", d.1, d.2))
            .collect::<Vec<_>>()
            .join("; ");
        set_condition(
            conds,
            "Drifted",
            "True",
            reason::DRIFT_DETECTED,
            &trim_note(&msg),
            None,
        );
    } else {
        conds.retain(|c| c.type_ != "Drifted");
    }
    if complete {
        mem.status.last_synced_revision = Some(rev.clone());
        mem.status.last_sync_time =
            Some(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string());
        ctx.metrics
            .git
            .last_sync
            .set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        ctx.metrics.git.revision.clear();
        ctx.metrics
            .git
            .revision
            .get_or_create(&RevisionLabels {
                revision: rev.clone(),
            })
            .set(1);
    }
    // Counters and events fire when an entry's (file, Secret) outcome changes.
    let mut new_refusals = Vec::new();
    let mut outcomes = HashMap::new();
    for s in &statuses {
        let now = (s.blob.clone(), s.state.clone(), s.reason.clone());
        let key = (s.path.clone(), s.secret.clone());
        let changed = mem.outcomes.get(&key) != Some(&now);
        if changed {
            match s.state.as_str() {
                "applied" => ctx.metrics.sync_ok(),
                "refused" => {
                    ctx.metrics
                        .sync_error(s.reason.as_deref().unwrap_or(reason::INVALID));
                    new_refusals.push(s.clone());
                }
                _ => {}
            }
        }
        outcomes.insert(key, now);
    }
    // Once per file and blob.
    let known: BTreeSet<(&str, &str)> = mem
        .outcomes
        .iter()
        .map(|((p, _), o)| (p.as_str(), o.0.as_str()))
        .collect();
    for (path, blob, r) in &decrypt_errors {
        if !known.contains(&(path.as_str(), blob.as_str())) {
            ctx.metrics.decrypt_error(r);
        }
    }
    mem.outcomes = outcomes;
    let mut counts: BTreeMap<&str, i64> = [
        "applied",
        "unchanged",
        "drifted",
        "refused",
        "skipped",
        "failed",
    ]
    .into_iter()
    .map(|k| (k, 0))
    .collect();
    for s in &statuses {
        *counts.entry(s.state.as_str()).or_default() += 1;
    }
    for (k, v) in counts {
        ctx.metrics
            .git
            .files
            .get_or_create(&StateLabels { state: k.into() })
            .set(v);
    }
    statuses.sort_by(|a, b| (&a.path, &a.secret).cmp(&(&b.path, &b.secret)));
    let (files, omitted) = cap_files(statuses);
    mem.status.files = files;
    mem.status.files_omitted = omitted;
    write_status(cfg, ctx, mem).await;
    tracing::debug!(
        listed_ms,
        decrypted_ms,
        applied_ms,
        status_ms = t.elapsed().as_millis() as u64,
        "git source sync phases"
    );

    // Concurrently: a first sync of a large repository has one per Secret.
    {
        use futures_util::StreamExt;
        futures_util::stream::iter(applied_events)
            .for_each_concurrent(16, |(ns, name, note)| async move {
                secret_event(
                    ctx,
                    &ns,
                    &name,
                    EventType::Normal,
                    reason::SYNCED,
                    "Apply",
                    &note,
                )
                .await
            })
            .await;
    }
    let mut still_drifted = HashMap::new();
    for (_, id, summary, report) in &drifted {
        if *report && mem.drift.get(id) != Some(summary) {
            ctx.metrics.drift();
            let (ns, name) = id.split_once('/').unwrap_or(("", id));
            let note = format!(
                "the live Secret differs from the Git source ({summary}); not reverted (drift: report)"
            );
            secret_event(
                ctx,
                ns,
                name,
                EventType::Warning,
                reason::DRIFT_DETECTED,
                "Compare",
                &note,
            )
            .await;
        }
        still_drifted.insert(id.clone(), summary.clone());
    }
    mem.drift = still_drifted;
    for s in new_refusals {
        let r = s.reason.clone().unwrap_or_default();
        let note = format!(
            "{}{}: {}",
            s.path,
            s.secret
                .as_deref()
                .map(|x| format!(" (Secret {x})"))
                .unwrap_or_default(),
            s.message
        );
        tracing::warn!(path = %s.path, reason = %r, "git source refused: {}", s.message);
        source_event(ctx, mem, EventType::Warning, &r, &note).await;
    }
    for (ns, name, policy, path) in pruned {
        let note = match policy {
            DeletionPolicy::Delete => format!(
                "deleted Secret {ns}/{name}: {path} is gone at {short} (deletion policy Delete)"
            ),
            DeletionPolicy::Orphan => format!(
                "orphaned Secret {ns}/{name}: {path} is gone at {short}; kept, marked {ANN_ORPHANED} (deletion policy Orphan)"
            ),
        };
        tracing::info!("git source: {note}");
        source_event(ctx, mem, EventType::Normal, "Pruned", &note).await;
    }
    complete
}

/// Most files listed in the status, problems first.
const MAX_LISTED: usize = 1000;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Keeps every file that needs attention and as many in-sync ones as fit
/// under [`MAX_LISTED`], in path order.
fn cap_files(files: Vec<FileStatus>) -> (Vec<FileStatus>, usize) {
    if files.len() <= MAX_LISTED {
        return (files, 0);
    }
    let ok = |f: &FileStatus| matches!(f.state.as_str(), "applied" | "unchanged" | "skipped");
    let problems = files.iter().filter(|f| !ok(f)).count();
    let mut room = MAX_LISTED.saturating_sub(problems);
    let total = files.len();
    let kept: Vec<FileStatus> = files
        .into_iter()
        .filter(|f| {
            if !ok(f) {
                return true;
            }
            let keep = room > 0;
            room = room.saturating_sub(1);
            keep
        })
        .collect();
    let omitted = total - kept.len();
    (kept, omitted)
}

/// An API error before or during apply: retried at the next interval.
async fn transient(
    cfg: &GitSourceConfig,
    ctx: &Context,
    mem: &mut Memory,
    files: Vec<FileStatus>,
    message: &str,
) {
    ctx.metrics.sync_error(reason::APPLY_FAILED);
    tracing::warn!(
        reason = reason::APPLY_FAILED,
        "git source, will retry: {message}"
    );
    let conds = &mut mem.status.conditions;
    set_condition(conds, "Ready", "False", reason::APPLY_FAILED, message, None);
    set_condition(
        conds,
        "Reconciling",
        "True",
        reason::APPLY_FAILED,
        message,
        None,
    );
    set_condition(conds, "Stalled", "False", reason::APPLY_FAILED, "", None);
    mem.status.files = files;
    write_status(cfg, ctx, mem).await;
}

/// Server-side applies the status ConfigMap (`ksec-git-<name>`).
async fn write_status(cfg: &GitSourceConfig, ctx: &Context, mem: &mut Memory) {
    let st = &mem.status;
    let ready = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
        .unwrap_or(("Unknown".into(), String::new()));
    let name = cfg.status_name();
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": cfg.status_namespace,
            "labels": {
                cluster::LABEL_MANAGED_BY: cluster::MANAGED_BY_VALUE,
                LABEL_GIT_SOURCE: cfg.name,
            },
        },
        "data": {
            "ready": ready.0,
            "reason": ready.1,
            "revision": st.last_synced_revision.clone().unwrap_or_default(),
            "status.json": serde_json::to_string_pretty(st).expect("status serializes"),
        },
    });
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &cfg.status_namespace);
    match api
        .patch(
            &name,
            &PatchParams::apply(STATUS_MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await
    {
        Ok(o) => {
            mem.status_ref = Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
                name: o.metadata.name.clone(),
                namespace: o.metadata.namespace.clone(),
                uid: o.metadata.uid.clone(),
                ..Default::default()
            })
        }
        Err(e) => tracing::warn!(
            error = %ClusterError::from_kube(format!("status configmap {}/{name}", cfg.status_namespace), e),
            "cannot write the Git source status"
        ),
    }
}

/// An event on the status ConfigMap (refusals, fetch errors, prunes).
async fn source_event(ctx: &Context, mem: &Memory, t: EventType, reason: &str, note: &str) {
    let Some(r) = &mem.status_ref else { return };
    publish(ctx, r, t, reason, "Sync", note).await;
}

/// An event on a generated Secret.
async fn secret_event(
    ctx: &Context,
    ns: &str,
    name: &str,
    t: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let r = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    };
    publish(ctx, &r, t, reason, action, note).await;
}

async fn publish(
    ctx: &Context,
    r: &ObjectReference,
    t: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let ev = Event {
        type_: t,
        reason: reason.into(),
        note: Some(trim_note(note)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, r).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_case_insensitively_and_refuse_unknown_values() {
        assert_eq!(parse_drift("Report"), Some(DriftMode::Report));
        assert_eq!(parse_drift("revert"), None);
        assert_eq!(parse_deletion("delete"), Some(DeletionPolicy::Delete));
        assert_eq!(parse_deletion("Orphan"), Some(DeletionPolicy::Orphan));
        assert_eq!(parse_deletion("keep"), None);
    }

    #[test]
    fn large_status_lists_keep_every_problem() {
        let f = |i: usize, state: &str| FileStatus {
            path: format!("f{i:05}"),
            secret: None,
            state: state.into(),
            reason: None,
            message: String::new(),
            keys: vec![],
            blob: String::new(),
        };
        let mut files: Vec<FileStatus> = (0..MAX_LISTED + 10).map(|i| f(i, "unchanged")).collect();
        files.push(f(99_999, "refused"));
        let (kept, omitted) = cap_files(files);
        assert_eq!(kept.len(), MAX_LISTED);
        assert_eq!(omitted, 11);
        assert_eq!(kept.last().unwrap().state, "refused");
        assert_eq!(cap_files(vec![f(1, "unchanged")]).1, 0);
    }

    #[test]
    fn plain_ids_come_from_readable_metadata() {
        let y =
            b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: apps\ndata: {}\n";
        let docs = store::load_plain(Format::Yaml, y).unwrap();
        let ids = plain_id(&docs);
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].namespace.as_deref(), Some("apps"));
        assert_eq!(ids[0].name.as_deref(), Some("db"));
    }

    #[test]
    fn every_secret_of_a_file_has_its_own_digest() {
        let y = concat!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  k: \"ENC[x]\"\n",
            "---\napiVersion: v1\nkind: List\nitems:\n",
            "  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: b\n      namespace: n\n    data:\n      k: \"ENC[y]\"\n",
            "  - apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: c\n",
            "  - apiVersion: v1\n    kind: Secret\n    metadata:\n      name: c\n      namespace: n\n    data:\n      k: \"ENC[x]\"\n",
        )
        .as_bytes();
        let ids = plain_id(&store::load_plain(Format::Yaml, y).unwrap());
        let names: Vec<_> = ids.iter().map(|p| p.name.as_deref().unwrap()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(ids[0].namespace, None);
        assert_eq!(ids[1].namespace.as_deref(), Some("n"));
        assert_ne!(ids[0].digest, ids[1].digest);
        assert_ne!(ids[1].digest, ids[2].digest);
        // The digest is the document's: the same document elsewhere, the same digest.
        let again = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  k: \"ENC[x]\"\n";
        assert_eq!(
            plain_id(&store::load_plain(Format::Yaml, again).unwrap())[0].digest,
            ids[0].digest
        );
    }
}
