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
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value as J, json};
use tokio::sync::Notify;
use zeroize::Zeroizing;

use crate::cluster::apply::{Action as ApplyAction, ApplyOptions, Subject};
use crate::cluster::source::{self, DesiredSecret, FileOptions, OpenRefusal};
use crate::cluster::{self, ClusterError, Loaded, diff};
use crate::controller::context::{Context, Scope, apply_off_thread, classify, rollout_failures};
use crate::controller::crd::{Condition, DeletionPolicy, DriftMode};
use crate::controller::git::{GitFile, GitRemote, Snapshot};
use crate::controller::metrics::{ResultLabels, RevisionLabels, StateLabels};
use crate::controller::ownership::{LABEL_GIT_SOURCE, Writer, may_write, stamp};
use crate::controller::status::{FileState, Health, Reason, set_condition, set_health, trim_note};
use crate::keys::KeyRing;
use crate::manifest::{EncryptedManifest, Manifest, ManifestError, NamespacePolicy, SecretId};

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

/// What happened to one file, as the status lists it (no values).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileStatus {
    pub path: String,
    /// `namespace/name`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub state: FileState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Key names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    #[serde(skip)]
    blob: String,
}

impl FileStatus {
    fn new(f: &GitFile, state: FileState) -> FileStatus {
        FileStatus {
            path: f.path.clone(),
            secret: None,
            state,
            reason: None,
            message: String::new(),
            keys: vec![],
            blob: f.blob.clone(),
        }
    }

    fn refused(&mut self, reason: Reason, message: String) {
        self.state = FileState::Refused;
        self.reason = Some(reason);
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
type Announced = (String, FileState, Option<Reason>);

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
            url: crate::controller::git::redact_url(&cfg.remote.url),
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
    let shutdown = crate::controller::shutdown_signal();
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
    ctx.metrics.sync_error(Reason::FetchFailed);
    tracing::warn!(
        reason = Reason::FetchFailed.as_str(),
        "git source: {message}"
    );
    let conds = &mut mem.status.conditions;
    set_health(conds, Health::Retrying, Reason::FetchFailed, &message, None);
    let new = mem.fetch_error.as_deref() != Some(message.as_str());
    mem.fetch_error = Some(message.clone());
    write_status(cfg, ctx, mem).await;
    if new {
        source_event(
            ctx,
            mem,
            EventType::Warning,
            Reason::FetchFailed.as_str(),
            &message,
        )
        .await;
    }
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
    decrypt_error: Option<Reason>,
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
    let m = match read_encrypted(f, scope) {
        Ok(m) => m,
        Err(st) => return Opened::done(*st),
    };
    // Per Secret, from the readable metadata: name, namespace, boundary.
    // Secrets refused here are not decrypted.
    let default_ns = if scope.boundary.namespaces.len() == 1 {
        scope.boundary.namespaces.iter().next().cloned()
    } else {
        None
    };
    let slots: Vec<Slot> = m
        .secrets()
        .iter()
        .map(|p| slot(f, p, default_ns.as_deref(), scope))
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
    if intact(f, &slots, allowed, live) {
        return Opened {
            entries: slots
                .into_iter()
                .map(|s| intact_entry(f, s, live))
                .collect(),
            verified: true,
            decrypt_error: None,
        };
    }
    decrypt_entries(f, m, ring, scope, default_ns.as_deref(), slots)
}

/// Parses a file and keeps it only if it is an encrypted manifest with
/// Secrets, of this environment. `Err`: the file's one status entry.
fn read_encrypted(f: &GitFile, scope: &Scope) -> Result<EncryptedManifest, Box<FileStatus>> {
    let mut st = FileStatus::new(f, FileState::Skipped);
    let m = match Manifest::open(Path::new(&f.path), &f.bytes) {
        Ok(Manifest::Encrypted(m)) => m,
        Ok(Manifest::Plain(p)) => {
            if p.has_secret() {
                st.refused(
                    Reason::DecryptFailed,
                    "holds a plaintext Secret; only SOPS-encrypted Secrets are applied".into(),
                );
            } else {
                st.message = "not an encrypted manifest".into();
            }
            return Err(Box::new(st));
        }
        Err(ManifestError::NotAManifest) => {
            st.message = "not an encrypted manifest".into();
            return Err(Box::new(st));
        }
        Err(e) => {
            st.refused(Reason::InvalidSpec, e.to_string());
            return Err(Box::new(st));
        }
    };
    if let Some(p) = m.shape_problem() {
        st.refused(Reason::InvalidSpec, format!("probable tampering: {p}"));
        return Err(Box::new(st));
    }
    if m.secrets().is_empty() {
        st.message = "no Secret in it".into();
        return Err(Box::new(st));
    }
    // Files of other environments share the repository: not ours, not an error.
    if let Err(why) = scope
        .boundary
        .file_in_env(&scope.boundary.encrypted_for(&m.meta))
    {
        st.message = why;
        return Err(Box::new(st));
    }
    Ok(m)
}

/// One Secret before decryption: its identity and the controller's
/// namespace scope, from the readable metadata.
fn slot(f: &GitFile, p: &SecretId, default_ns: Option<&str>, scope: &Scope) -> Slot {
    let mut e = FileStatus::new(f, FileState::Refused);
    let Some(name) = p.name.clone() else {
        e.refused(Reason::InvalidSpec, "a Secret has no metadata.name".into());
        return Err(Box::new(e));
    };
    let Some(ns) = p.namespace.clone().or(default_ns.map(str::to_string)) else {
        e.refused(
            Reason::InvalidSpec,
            format!("the Secret {name} names no metadata.namespace"),
        );
        return Err(Box::new(e));
    };
    e.secret = Some(cluster::nsname(&ns, &name));
    if let Some(why) = scope.refuse(&ns) {
        e.refused(Reason::NamespaceNotAllowed, why);
        return Err(Box::new(e));
    }
    Ok(((ns, name), p.digest.clone()))
}

/// Not decrypted again when every Secret of the file is live, from this
/// path and this very document, unedited, and the file defines exactly
/// the Secrets live from it (none removed, none added, none twice).
fn intact(f: &GitFile, slots: &[Slot], allowed: usize, live: &LiveIndex) -> bool {
    let wanted: BTreeSet<(String, String)> = slots
        .iter()
        .filter_map(|s| s.as_ref().ok().map(|(k, _)| k.clone()))
        .collect();
    wanted.len() == allowed
        && live.by_path.get(&f.path) == Some(&wanted)
        && slots.iter().all(|s| match s {
            Ok((k, digest)) => live
                .reusable
                .get(k)
                .is_some_and(|r| r.path == f.path && r.digest.as_deref() == Some(digest.as_str())),
            Err(_) => true,
        })
}

fn intact_entry(f: &GitFile, s: Slot, live: &LiveIndex) -> Entry {
    match s {
        Ok((k, _)) => {
            let mut e = FileStatus::new(f, FileState::Unchanged);
            e.secret = Some(cluster::nsname(&k.0, &k.1));
            e.keys = live.reusable[&k].keys.clone();
            Entry::Intact(e)
        }
        Err(e) => Entry::Done(*e),
    }
}

/// Decrypts the file once (MAC verified) and pairs each Secret with its slot.
fn decrypt_entries(
    f: &GitFile,
    m: EncryptedManifest,
    ring: &KeyRing,
    scope: &Scope,
    default_ns: Option<&str>,
    slots: Vec<Slot>,
) -> Opened {
    let opened = source::open_manifest(
        Path::new(&f.path),
        Manifest::Encrypted(m),
        ring,
        FileOptions {
            policy: NamespacePolicy {
                default: default_ns,
                only: None,
            },
            boundary: &scope.boundary,
            allow_mac_only: scope.allow_mac_only,
        },
    );
    match opened {
        // The whole file (the MAC covers it): every Secret in it is refused.
        Err(r) => refuse_all(f, slots, &r),
        Ok(all) if all.len() != slots.len() => {
            let mut st = FileStatus::new(f, FileState::Skipped);
            st.refused(
                Reason::InvalidSpec,
                "the decrypted file does not hold the Secrets its metadata lists".into(),
            );
            Opened::done(st)
        }
        Ok(all) => Opened {
            entries: slots
                .into_iter()
                .zip(all)
                .map(|(slot, res)| decrypted_entry(f, slot, res, scope))
                .collect(),
            verified: true,
            decrypt_error: None,
        },
    }
}

fn refuse_all(f: &GitFile, slots: Vec<Slot>, r: &OpenRefusal) -> Opened {
    let why = classify(r);
    let decrypt = matches!(r, OpenRefusal::Decrypt(_) | OpenRefusal::NotEncrypted(_));
    let msg = r.to_string();
    let entries = slots
        .into_iter()
        .map(|s| match s {
            Ok(((ns, name), _)) => {
                let mut e = FileStatus::new(f, FileState::Refused);
                e.secret = Some(cluster::nsname(&ns, &name));
                e.refused(why, msg.clone());
                Entry::Done(e)
            }
            Err(e) => Entry::Done(*e),
        })
        .collect();
    Opened {
        entries,
        verified: false,
        decrypt_error: decrypt.then_some(why),
    }
}

fn decrypted_entry(
    f: &GitFile,
    slot: Slot,
    res: Result<DesiredSecret, source::SecretRefusal>,
    scope: &Scope,
) -> Entry {
    match (slot, res) {
        (Err(e), _) => Entry::Done(*e),
        (Ok(_), Err(r)) => {
            let mut e = FileStatus::new(f, FileState::Refused);
            e.secret = r.secret;
            e.refused(classify(&r.refusal), r.refusal.to_string());
            Entry::Done(e)
        }
        (Ok((_, digest)), Ok(d)) => {
            let mut e = FileStatus::new(f, FileState::Pending);
            e.secret = Some(cluster::nsname(&d.namespace, &d.name));
            if let Some(why) = scope.refuse(&d.namespace) {
                e.refused(Reason::NamespaceNotAllowed, why);
                return Entry::Done(e);
            }
            e.keys = d.data.keys().cloned().collect();
            Entry::Open(e, Box::new(d), digest)
        }
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

/// A Secret to write, with the status entry it reports to.
struct Planned {
    file: usize,
    desired: DesiredSecret,
    unorphan: bool,
}

/// A Secret edited by hand that the drift mode says not to revert.
struct Drift {
    namespace: String,
    name: String,
    summary: String,
    /// `report` (counted, announced) rather than `ignore`.
    report: bool,
}

impl Drift {
    /// `namespace/name`, as the status and the drift memory name it.
    fn id(&self) -> String {
        cluster::nsname(&self.namespace, &self.name)
    }
}

/// Step 2's result: one status entry per file or Secret, and the Secrets to compare.
#[derive(Default)]
struct Sorted {
    statuses: Vec<FileStatus>,
    /// (status index, Secret, document digest).
    desired: Vec<(usize, DesiredSecret, String)>,
    /// Files whose Secrets are authenticated (a Secret they no longer define may be pruned).
    verified: BTreeSet<String>,
    /// (path, blob, reason) of files that did not decrypt.
    decrypt_errors: Vec<(String, String, Reason)>,
}

/// Step 3's result.
#[derive(Default)]
struct Compared {
    plans: Vec<Planned>,
    drifted: Vec<Drift>,
}

/// Step 4's result.
#[derive(Default)]
struct Written {
    rollout_failed: Vec<String>,
    /// (namespace, name, note) of each created or updated Secret.
    events: Vec<(String, String, String)>,
}

/// A Secret pruned in step 5.
struct Pruned {
    namespace: String,
    name: String,
    policy: DeletionPolicy,
    path: String,
}

/// Decrypts, checks, applies and prunes one snapshot. True when the
/// revision is synced (no transient failure).
async fn sync_snapshot(
    cfg: &GitSourceConfig,
    ctx: &Context,
    mem: &mut Memory,
    snap: &Snapshot,
) -> bool {
    let rev = snap.revision.as_str();
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
    let index = live_index(&live, &ctx.scope);
    let listed_ms = t.elapsed().as_millis() as u64;
    // 2. Decrypt and check the other files (parallel, off the async workers).
    let mut sorted = match open_snapshot(ctx, snap, index).await {
        Ok(s) => s,
        Err(e) => {
            // Never go on with an empty list: everything would be pruned.
            let files = mem.status.files.clone();
            transient(cfg, ctx, mem, files, &format!("decryption task: {e}")).await;
            return false;
        }
    };
    let decrypted_ms = t.elapsed().as_millis() as u64;
    // 3. Compare with what is live.
    let mut transient_msgs = Vec::new();
    let desired = std::mem::take(&mut sorted.desired);
    let compared = compare(
        cfg,
        ctx,
        &live,
        &mut sorted.statuses,
        desired,
        rev,
        &mut transient_msgs,
    )
    .await;
    // 4. Apply through the `ksec apply` engine (restart + verify).
    let written = if compared.plans.is_empty() {
        Written::default()
    } else {
        match write(
            ctx,
            cfg,
            compared.plans,
            &mut sorted.statuses,
            rev,
            &mut transient_msgs,
        )
        .await
        {
            Ok(w) => w,
            Err(message) => {
                transient(cfg, ctx, mem, sorted.statuses, &message).await;
                return false;
            }
        }
    };
    let applied_ms = t.elapsed().as_millis() as u64;
    // 5. Prune.
    let pruned = prune(cfg, ctx, &live, &sorted, rev, &mut transient_msgs).await;
    // 6. Status, metrics, events.
    let complete = transient_msgs.is_empty();
    let outcome = SyncReport {
        rev,
        complete,
        transient_msgs,
        compared_drifted: compared.drifted,
        written,
        pruned,
    };
    report(cfg, ctx, mem, sorted, outcome).await;
    tracing::debug!(
        listed_ms,
        decrypted_ms,
        applied_ms,
        status_ms = t.elapsed().as_millis() as u64,
        "git source sync phases"
    );
    complete
}

/// What step 6 reports besides the statuses.
struct SyncReport<'a> {
    rev: &'a str,
    complete: bool,
    transient_msgs: Vec<String>,
    compared_drifted: Vec<Drift>,
    written: Written,
    pruned: Vec<Pruned>,
}

/// A Secret applied from the same document and not edited since needs no
/// decryption: the document was checked when it was applied.
fn live_index(live: &BTreeMap<(String, String), Secret>, scope: &Scope) -> LiveIndex {
    let mut index = LiveIndex::default();
    for ((ns, name), l) in live {
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
        if untouched(l) && scope.refuse(ns).is_none() {
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
    index
}

/// Opens every file on the blocking pool, then sorts the entries: one
/// status each, and the decrypted Secrets that are not defined twice.
async fn open_snapshot(
    ctx: &Context,
    snap: &Snapshot,
    index: LiveIndex,
) -> Result<Sorted, tokio::task::JoinError> {
    let files = Arc::new(snap.files.clone());
    let (ring, scope, fs) = (ctx.ring.clone(), ctx.scope.clone(), files.clone());
    let opened = tokio::task::spawn_blocking(move || {
        fs.par_iter()
            .map(|f| open_file(f, &ring, &scope, &index))
            .collect::<Vec<_>>()
    })
    .await?;
    let mut sorted = sort_entries(&files, opened);
    for p in &snap.oversized {
        sorted.statuses.push(FileStatus {
            path: p.clone(),
            secret: None,
            state: FileState::Refused,
            reason: Some(Reason::InvalidSpec),
            message: format!(
                "larger than {} bytes",
                crate::controller::git::MAX_FILE_BYTES
            ),
            keys: vec![],
            blob: String::new(),
        });
    }
    Ok(sorted)
}

fn sort_entries(files: &[GitFile], opened: Vec<Opened>) -> Sorted {
    let mut sorted = Sorted::default();
    // Intact Secrets first: as applied, they win over a second definition elsewhere.
    // Keyed by `namespace/name`, the text a status entry names its Secret by.
    let mut seen: HashMap<String, String> = HashMap::new();
    for o in &opened {
        for e in &o.entries {
            if let Entry::Intact(st) = e
                && let Some(id) = &st.secret
            {
                seen.insert(id.clone(), st.path.clone());
            }
        }
    }
    for (i, o) in opened.into_iter().enumerate() {
        if o.verified {
            sorted.verified.insert(files[i].path.clone());
        }
        if let Some(r) = o.decrypt_error {
            let f = &files[i];
            sorted
                .decrypt_errors
                .push((f.path.clone(), f.blob.clone(), r));
        }
        for e in o.entries {
            let (mut st, d, digest) = match e {
                Entry::Intact(st) | Entry::Done(st) => {
                    sorted.statuses.push(st);
                    continue;
                }
                Entry::Open(st, d, digest) => (st, *d, digest),
            };
            let key = cluster::nsname(&d.namespace, &d.name);
            if let Some(prev) = seen.get(&key) {
                st.refused(
                    Reason::InvalidSpec,
                    format!("the same Secret is defined in {prev}"),
                );
            } else if let Some(why) = bad_policy(&d.object) {
                st.refused(Reason::InvalidSpec, why);
            } else {
                seen.insert(key, files[i].path.clone());
                sorted.desired.push((sorted.statuses.len(), d, digest));
            }
            sorted.statuses.push(st);
        }
    }
    sorted
}

/// A per-object policy annotation with a value ksec does not know.
fn bad_policy(object: &J) -> Option<String> {
    if let Some(bad) = annotation(object, ANN_DRIFT).filter(|v| parse_drift(v).is_none()) {
        return Some(format!(
            "{ANN_DRIFT}: {bad:?} is not enforce, report or ignore"
        ));
    }
    annotation(object, ANN_DELETION_POLICY)
        .filter(|v| parse_deletion(v).is_none())
        .map(|bad| format!("{ANN_DELETION_POLICY}: {bad:?} is not Orphan or Delete"))
}

/// Step 3: which Secrets to write. Unchanged ones are not written again;
/// drift is left alone when the mode says so; a Secret this source did
/// not create is never taken over.
async fn compare(
    cfg: &GitSourceConfig,
    ctx: &Context,
    live: &BTreeMap<(String, String), Secret>,
    statuses: &mut [FileStatus],
    desired: Vec<(usize, DesiredSecret, String)>,
    rev: &str,
    transient_msgs: &mut Vec<String>,
) -> Compared {
    let mut out = Compared::default();
    for (si, mut d, digest) in desired {
        let st = &mut statuses[si];
        let key = (d.namespace.clone(), d.name.clone());
        let unorphan = match live.get(&key) {
            Some(l) => match against_live(cfg, l, &d, &digest, st) {
                LiveVerdict::Write { unorphan } => unorphan,
                LiveVerdict::Unchanged => continue,
                LiveVerdict::Drifted(drift) => {
                    out.drifted.push(drift);
                    continue;
                }
            },
            None => {
                if let Err(m) = claimable(cfg, ctx, &d, st).await {
                    if st.state == FileState::Failed {
                        transient_msgs.push(m);
                    }
                    continue;
                }
                false
            }
        };
        stamp_source(&mut d.object, &cfg.name, st, rev, digest);
        out.plans.push(Planned {
            file: si,
            desired: d,
            unorphan,
        });
    }
    out
}

enum LiveVerdict {
    Write { unorphan: bool },
    Unchanged,
    Drifted(Drift),
}

/// Compares a decrypted Secret with its live copy from this source.
fn against_live(
    cfg: &GitSourceConfig,
    l: &Secret,
    d: &DesiredSecret,
    digest: &str,
    st: &mut FileStatus,
) -> LiveVerdict {
    let orphaned = live_annotation(l, ANN_ORPHANED).is_some();
    // Applied from this very document at this path (Secrets applied
    // before the digest existed: from this very file).
    let live_digest = live_annotation(l, ANN_SOURCE_DIGEST);
    let same_doc = live_digest == Some(digest)
        && live_annotation(l, ANN_SOURCE_PATH) == Some(st.path.as_str());
    let same_source = !orphaned
        && (same_doc
            || (live_digest.is_none()
                && live_annotation(l, ANN_SOURCE_BLOB) == Some(st.blob.as_str())));
    if !same_source {
        return LiveVerdict::Write { unorphan: orphaned };
    }
    let keys = diff::key_diff(&d.data, &diff::live_data(l));
    // Unchanged: not written again, even when another Secret of the same
    // file changed. Without a digest yet, it is applied once to get one.
    if keys.is_empty() && same_doc {
        st.state = FileState::Unchanged;
        return LiveVerdict::Unchanged;
    }
    let mode = annotation(&d.object, ANN_DRIFT)
        .and_then(parse_drift)
        .unwrap_or(cfg.drift);
    if keys.is_empty() || mode == DriftMode::Enforce {
        return LiveVerdict::Write { unorphan: orphaned };
    }
    let report = mode == DriftMode::Report;
    st.state = FileState::Drifted;
    st.reason = Some(Reason::DriftDetected);
    st.message = format!(
        "the live Secret differs ({}); not reverted (drift: {})",
        keys.summary(),
        if report { "report" } else { "ignore" }
    );
    LiveVerdict::Drifted(Drift {
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        summary: keys.summary(),
        report,
    })
}

/// Never take over a Secret this source did not create. `Err` (the entry
/// is refused, or failed when the lookup itself failed) carries the message.
async fn claimable(
    cfg: &GitSourceConfig,
    ctx: &Context,
    d: &DesiredSecret,
    st: &mut FileStatus,
) -> Result<(), String> {
    let got = Api::<Secret>::namespaced(ctx.client.clone(), &d.namespace)
        .get_metadata_opt(&d.name)
        .await;
    let other = match got {
        Ok(None) => return Ok(()),
        Ok(Some(other)) => other,
        Err(e) => {
            let m = ClusterError::from_kube(format!("get secret {}/{}", d.namespace, d.name), e)
                .to_string();
            st.refused(Reason::ApplyFailed, m.clone());
            st.state = FileState::Failed;
            return Err(m);
        }
    };
    let me = Writer::GitSource(&cfg.name);
    let Err(msg) = may_write(me, &d.namespace, &d.name, Some(other.labels())) else {
        return Ok(());
    };
    st.refused(Reason::SecretConflict, msg.clone());
    Err(msg)
}

/// The source's label and annotations on the object to apply.
fn stamp_source(object: &mut J, source: &str, st: &FileStatus, rev: &str, digest: String) {
    let Some(meta) = stamp(object, Writer::GitSource(source)) else {
        return;
    };
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| J::Object(Default::default()));
    ann[ANN_SOURCE_PATH] = J::String(st.path.clone());
    ann[ANN_SOURCE_REVISION] = J::String(rev.into());
    ann[ANN_SOURCE_BLOB] = J::String(st.blob.clone());
    ann[ANN_SOURCE_DIGEST] = J::String(digest);
}

/// Step 4. `Err`: the engine itself failed (nothing known to be written; retried).
async fn write(
    ctx: &Context,
    cfg: &GitSourceConfig,
    plans: Vec<Planned>,
    statuses: &mut [FileStatus],
    rev: &str,
    transient_msgs: &mut Vec<String>,
) -> Result<Written, String> {
    let index: HashMap<(String, String), usize> = plans
        .iter()
        .map(|p| {
            (
                (p.desired.namespace.clone(), p.desired.name.clone()),
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
        approval: Some(ctx.approval.clone()),
        ..Default::default()
    };
    let report = match apply_off_thread(ctx.client.clone(), loaded, opts).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(format!("apply task: {e}")),
    };
    let short = &rev[..rev.len().min(12)];
    let mut out = Written {
        rollout_failed: rollout_failures(&report),
        events: Vec::new(),
    };
    for f in &report.failures {
        let si = match &f.subject {
            Subject::Secret { namespace, name } => index.get(&(namespace.clone(), name.clone())),
            _ => None,
        };
        match si {
            Some(&si) => {
                statuses[si].refused(Reason::ApplyFailed, f.message.clone());
                statuses[si].state = FileState::Failed;
                transient_msgs.push(format!("{}: {}", statuses[si].path, f.message));
            }
            None => out
                .rollout_failed
                .push(format!("{}: {}", f.subject, f.message)),
        }
    }
    for a in &report.awaiting {
        if let Some(&si) = index.get(&(a.namespace.clone(), a.name.clone())) {
            statuses[si].refused(Reason::AwaitingApproval, a.to_string());
            statuses[si].state = FileState::Failed;
        }
    }
    for sr in report.applied.iter().chain(report.unchanged.iter()) {
        let Some(&si) = index.get(&(sr.namespace.clone(), sr.name.clone())) else {
            continue;
        };
        let st = &mut statuses[si];
        if sr.action == ApplyAction::Unchanged {
            st.state = FileState::Unchanged;
            continue;
        }
        st.state = FileState::Applied;
        let note = applied_note(sr, &report, st, short);
        out.events
            .push((sr.namespace.clone(), sr.name.clone(), note));
    }
    ctx.metrics
        .restart("executed", report.restarted.len() as u64);
    ctx.metrics
        .restart("verified", report.verified.len() as u64);
    ctx.metrics
        .restart("failed", out.rollout_failed.len() as u64);
    clear_orphan_marks(ctx, unorphan).await;
    Ok(out)
}

fn applied_note(
    sr: &cluster::apply::SecretResult,
    report: &cluster::Report,
    st: &FileStatus,
    short: &str,
) -> String {
    let restarted: Vec<String> = report
        .restarted
        .iter()
        .filter(|w| w.namespace == sr.namespace && w.secrets.contains(&sr.name))
        .map(|w| format!("{} {}", w.kind, w.name))
        .collect();
    format!(
        "{} from {} at {short} (keys: {}); consumers restarted: {}",
        if sr.action == ApplyAction::Created {
            "created"
        } else {
            "updated"
        },
        st.path,
        st.keys.join(", "),
        if restarted.is_empty() {
            "none".into()
        } else {
            restarted.join(", ")
        }
    )
}

async fn clear_orphan_marks(ctx: &Context, secrets: Vec<(String, String)>) {
    for (ns, name) in secrets {
        let patch = json!({"metadata": {"annotations": {ANN_ORPHANED: null}}});
        if let Err(e) = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(namespace = %ns, name = %name, error = %e, "cannot clear {ANN_ORPHANED}");
        }
    }
}

/// Step 5: Secrets whose file is gone, or whose file, decrypted, no longer
/// defines them (document removed, Secret renamed). A file still there
/// keeps its Secret unless it was decrypted (MAC verified) and no longer
/// defines it: a refused file (bad MAC, missing key…) never causes a deletion.
async fn prune(
    cfg: &GitSourceConfig,
    ctx: &Context,
    live: &BTreeMap<(String, String), Secret>,
    sorted: &Sorted,
    rev: &str,
    transient_msgs: &mut Vec<String>,
) -> Vec<Pruned> {
    let statuses = &sorted.statuses;
    let desired_ids: BTreeSet<&str> = statuses
        .iter()
        .filter(|s| !matches!(s.state, FileState::Refused | FileState::Skipped))
        .filter_map(|s| s.secret.as_deref())
        .collect();
    let present: BTreeSet<&str> = statuses.iter().map(|s| s.path.as_str()).collect();
    // Entries that keep their Secret (per Secret, or the whole file when `None`).
    let held: BTreeSet<(&str, Option<&str>)> = statuses
        .iter()
        .filter(|s| s.state.holds())
        .map(|s| (s.path.as_str(), s.secret.as_deref()))
        .collect();
    let mut pruned = Vec::new();
    for ((ns, name), l) in live {
        let id = cluster::nsname(ns, name);
        if desired_ids.contains(id.as_str()) || live_annotation(l, ANN_ORPHANED).is_some() {
            continue;
        }
        let path = live_annotation(l, ANN_SOURCE_PATH).unwrap_or("");
        if present.contains(path)
            && (!sorted.verified.contains(path)
                || held.contains(&(path, Some(id.as_str())))
                || held.contains(&(path, None)))
        {
            continue;
        }
        let policy = live_annotation(l, ANN_DELETION_POLICY)
            .and_then(parse_deletion)
            .unwrap_or(cfg.deletion);
        match prune_one(ctx, ns, name, policy, rev).await {
            Ok(()) => pruned.push(Pruned {
                namespace: ns.clone(),
                name: name.clone(),
                policy,
                path: path.to_string(),
            }),
            Err(e) => transient_msgs
                .push(ClusterError::from_kube(format!("prune secret {id}"), e).to_string()),
        }
    }
    pruned
}

async fn prune_one(
    ctx: &Context,
    ns: &str,
    name: &str,
    policy: DeletionPolicy,
    rev: &str,
) -> Result<(), kube::Error> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), ns);
    match policy {
        DeletionPolicy::Delete => api.delete(name, &DeleteParams::default()).await.map(|_| ()),
        DeletionPolicy::Orphan => {
            let patch = json!({"metadata": {"annotations": {ANN_ORPHANED: rev}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ())
        }
    }
}

/// Step 6: conditions, metrics, the status ConfigMap, then events.
async fn report(
    cfg: &GitSourceConfig,
    ctx: &Context,
    mem: &mut Memory,
    sorted: Sorted,
    r: SyncReport<'_>,
) {
    let short = &r.rev[..r.rev.len().min(12)];
    mem.fetch_error = None;
    set_conditions(ctx, &mut mem.status.conditions, &sorted.statuses, &r, short);
    if r.complete {
        record_synced(ctx, mem, r.rev);
    }
    let new_refusals = count_outcomes(ctx, mem, &sorted);
    let mut statuses = sorted.statuses;
    statuses.sort_by(|a, b| (&a.path, &a.secret).cmp(&(&b.path, &b.secret)));
    let (files, omitted) = cap_files(statuses);
    mem.status.files = files;
    mem.status.files_omitted = omitted;
    write_status(cfg, ctx, mem).await;
    announce(ctx, mem, r, new_refusals, short).await;
}

/// Ready/Reconciling/Stalled, and Drifted, from what the sync found.
fn set_conditions(
    ctx: &Context,
    conds: &mut Vec<Condition>,
    statuses: &[FileStatus],
    r: &SyncReport<'_>,
    short: &str,
) {
    let refused: Vec<&FileStatus> = statuses
        .iter()
        .filter(|s| s.state == FileState::Refused)
        .collect();
    let total = statuses
        .iter()
        .filter(|s| s.state != FileState::Skipped)
        .count();
    if !r.written.rollout_failed.is_empty() {
        let msg = format!(
            "revision {short} applied, but consumers did not roll out: {}",
            r.written.rollout_failed.join("; ")
        );
        set_health(conds, Health::Stalled, Reason::RolloutFailed, &msg, None);
        ctx.metrics.sync_error(Reason::RolloutFailed);
    } else if !r.complete {
        let msg = format!(
            "revision {short}: will retry: {}",
            r.transient_msgs.join("; ")
        );
        set_health(conds, Health::Retrying, Reason::ApplyFailed, &msg, None);
        ctx.metrics.sync_error(Reason::ApplyFailed);
    } else if let Some(first) = refused.first() {
        let reason = first.reason.unwrap_or(Reason::InvalidSpec);
        let listed: Vec<String> = refused.iter().map(|s| refusal_line(s)).collect();
        let msg = format!(
            "revision {short}: {} of {total} Secret(s) or file(s) refused: {}",
            refused.len(),
            listed.join("; ")
        );
        set_health(conds, Health::Stalled, reason, &trim_note(&msg), None);
    } else {
        let msg = format!("revision {short}: {total} Secret(s) in sync");
        set_health(conds, Health::InSync, Reason::Synced, &msg, None);
    }
    let reported: Vec<String> = r
        .compared_drifted
        .iter()
        .filter(|d| d.report)
        .map(|d| format!("{}: {}", d.id(), d.summary))
        .collect();
    if reported.is_empty() {
        conds.retain(|c| c.type_ != "Drifted");
    } else {
        let msg = trim_note(&reported.join("; "));
        set_condition(conds, "Drifted", "True", Reason::DriftDetected, &msg, None);
    }
}

fn refusal_line(s: &FileStatus) -> String {
    format!(
        "{}{} ({}): {}",
        s.path,
        s.secret
            .as_deref()
            .map(|x| format!(" [{x}]"))
            .unwrap_or_default(),
        s.reason.map(Reason::as_str).unwrap_or(""),
        s.message
    )
}

fn record_synced(ctx: &Context, mem: &mut Memory, rev: &str) {
    let now = chrono::Utc::now();
    mem.status.last_synced_revision = Some(rev.to_string());
    mem.status.last_sync_time = Some(now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let git = &ctx.metrics.git;
    git.last_sync.set(now.timestamp_millis() as f64 / 1000.0);
    git.revision.clear();
    git.revision
        .get_or_create(&RevisionLabels {
            revision: rev.to_string(),
        })
        .set(1);
}

/// Counters fire when an entry's (file, Secret) outcome changes, decrypt
/// errors once per file and blob. Returns the new refusals (to announce).
fn count_outcomes(ctx: &Context, mem: &mut Memory, sorted: &Sorted) -> Vec<FileStatus> {
    let mut new_refusals = Vec::new();
    let mut outcomes = HashMap::new();
    for s in &sorted.statuses {
        let now = (s.blob.clone(), s.state, s.reason);
        let key = (s.path.clone(), s.secret.clone());
        if mem.outcomes.get(&key) != Some(&now) {
            match s.state {
                FileState::Applied => ctx.metrics.sync_ok(),
                FileState::Refused => {
                    ctx.metrics
                        .sync_error(s.reason.unwrap_or(Reason::InvalidSpec));
                    new_refusals.push(s.clone());
                }
                _ => {}
            }
        }
        outcomes.insert(key, now);
    }
    let known: BTreeSet<(&str, &str)> = mem
        .outcomes
        .iter()
        .map(|((p, _), o)| (p.as_str(), o.0.as_str()))
        .collect();
    for (path, blob, r) in &sorted.decrypt_errors {
        if !known.contains(&(path.as_str(), blob.as_str())) {
            ctx.metrics.decrypt_error(*r);
        }
    }
    mem.outcomes = outcomes;
    let mut counts: BTreeMap<FileState, i64> =
        FileState::REPORTED.into_iter().map(|k| (k, 0)).collect();
    for s in &sorted.statuses {
        *counts.entry(s.state).or_default() += 1;
    }
    for (k, v) in counts {
        ctx.metrics
            .git
            .files
            .get_or_create(&StateLabels {
                state: k.as_str().into(),
            })
            .set(v);
    }
    new_refusals
}

/// Events: applied Secrets, new drift, new refusals, prunes.
async fn announce(
    ctx: &Context,
    mem: &mut Memory,
    r: SyncReport<'_>,
    new_refusals: Vec<FileStatus>,
    short: &str,
) {
    // Concurrently: a first sync of a large repository has one per Secret.
    {
        use futures_util::StreamExt;
        futures_util::stream::iter(r.written.events)
            .for_each_concurrent(16, |(ns, name, note)| async move {
                let (t, reason) = (EventType::Normal, Reason::Synced.as_str());
                secret_event(ctx, &ns, &name, t, reason, "Apply", &note).await
            })
            .await;
    }
    announce_drift(ctx, mem, &r.compared_drifted).await;
    for s in new_refusals {
        let r = s.reason.unwrap_or(Reason::InvalidSpec);
        let secret = s.secret.as_deref().map(|x| format!(" (Secret {x})"));
        let note = format!("{}{}: {}", s.path, secret.unwrap_or_default(), s.message);
        tracing::warn!(path = %s.path, reason = r.as_str(), "git source refused: {}", s.message);
        source_event(ctx, mem, EventType::Warning, r.as_str(), &note).await;
    }
    for p in r.pruned {
        let (ns, name, path) = (&p.namespace, &p.name, &p.path);
        let note = match p.policy {
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
}

/// Counted and announced once per new drift (summary), not per sync.
async fn announce_drift(ctx: &Context, mem: &mut Memory, drifted: &[Drift]) {
    let mut still_drifted = HashMap::new();
    for d in drifted {
        let id = d.id();
        if d.report && mem.drift.get(&id) != Some(&d.summary) {
            ctx.metrics.drift();
            let note = format!(
                "the live Secret differs from the Git source ({}); not reverted (drift: report)",
                d.summary
            );
            let reason = Reason::DriftDetected.as_str();
            secret_event(
                ctx,
                &d.namespace,
                &d.name,
                EventType::Warning,
                reason,
                "Compare",
                &note,
            )
            .await;
        }
        still_drifted.insert(id, d.summary.clone());
    }
    mem.drift = still_drifted;
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
    let ok = |f: &FileStatus| {
        matches!(
            f.state,
            FileState::Applied | FileState::Unchanged | FileState::Skipped
        )
    };
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
    ctx.metrics.sync_error(Reason::ApplyFailed);
    tracing::warn!(
        reason = Reason::ApplyFailed.as_str(),
        "git source, will retry: {message}"
    );
    let conds = &mut mem.status.conditions;
    set_health(conds, Health::Retrying, Reason::ApplyFailed, message, None);
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
        let f = |i: usize, state: FileState| FileStatus {
            path: format!("f{i:05}"),
            secret: None,
            state,
            reason: None,
            message: String::new(),
            keys: vec![],
            blob: String::new(),
        };
        let mut files: Vec<FileStatus> = (0..MAX_LISTED + 10)
            .map(|i| f(i, FileState::Unchanged))
            .collect();
        files.push(f(99_999, FileState::Refused));
        let (kept, omitted) = cap_files(files);
        assert_eq!(kept.len(), MAX_LISTED);
        assert_eq!(omitted, 11);
        assert_eq!(kept.last().unwrap().state, FileState::Refused);
        assert_eq!(cap_files(vec![f(1, FileState::Unchanged)]).1, 0);
    }
}
