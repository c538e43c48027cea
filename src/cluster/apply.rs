//! The apply pipeline: read live state (any RBAC refusal stops the run
//! before the first write), server-side apply each Secret as `ksec`,
//! roll the workloads whose Secrets' content changed (one rollout each),
//! verify them, record the inventory and prune.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Scope;
use serde::Serialize;
use serde_json::Value as J;

use super::approval::{self, Awaiting, Gate};
use super::consumers::{self, Fixed, WorkloadKind};
use super::diff::{self, KeyDiff};
use super::inventory::{self, PruneResult};
use super::restart::{self, Restart};
use super::source::{DesiredSecret, Loaded, Refusal, Skipped};
use super::verify::{self, Outcome};
use super::{
    ANN_CONTENT_HASH, ANN_HASH_SALT, ClusterError, FIELD_MANAGER, LABEL_INVENTORY,
    LABEL_MANAGED_BY, MANAGED_BY_VALUE,
};

/// Which namespaces prune may touch (the `--env` / `--namespace` restriction).
pub type NamespaceFilter = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct ApplyOptions {
    /// Server-side dry run: nothing is persisted; the report says what would happen.
    pub dry_run: bool,
    /// Take over fields another manager owns (SSA `force`).
    pub force_conflicts: bool,
    /// Roll consumers of changed Secrets (and verify them).
    pub restart: bool,
    pub timeout: Duration,
    pub poll: Duration,
    pub rollback_on_failure: bool,
    pub prune: bool,
    pub inventory_id: String,
    /// Set (from --env / --namespace): prune also visits inventories in these
    /// namespaces with nothing left in the source. Unset: only the run's namespaces.
    pub prune_scope: Option<NamespaceFilter>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Record created Secrets in the namespace's inventory ConfigMap (for prune).
    /// The controller turns it off: its Secrets are tracked by their source object.
    pub record_inventory: bool,
    /// Read workloads from here instead of listing them per namespace (the
    /// controller's watch caches).
    pub workloads: Option<consumers::WorkloadSource>,
    /// List bare Pods and running Jobs of changed Secrets for the `stale`
    /// report (the controller does not use it).
    pub report_fixed: bool,
    /// Live Secrets (by namespace and name; `None`: absent) the caller read
    /// just before: not read a second time.
    pub known_live: BTreeMap<(String, String), Option<Secret>>,
    /// Hold content changes in gated namespaces until approved (`rotation: {approval: required}`).
    pub approval: Option<Gate>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            force_conflicts: false,
            restart: true,
            timeout: Duration::from_secs(300),
            poll: Duration::from_millis(500),
            rollback_on_failure: false,
            prune: false,
            inventory_id: "default".into(),
            prune_scope: None,
            concurrency: 16,
            record_inventory: true,
            workloads: None,
            report_fixed: true,
            known_live: BTreeMap::new(),
            approval: None,
        }
    }
}

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("dry_run", &self.dry_run)
            .field("prune", &self.prune)
            .field("inventory_id", &self.inventory_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretResult {
    pub namespace: String,
    pub name: String,
    pub file: PathBuf,
    pub env: String,
    pub action: Action,
    /// Key names only.
    pub keys: KeyDiff,
    /// Salted; see [`diff::content_hash`].
    pub content_hash: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadResult {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub secrets: Vec<String>,
    /// `None` in a dry run or with restarts verified elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    pub rolled_back: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_error: Option<String>,
}

/// What a [`Note`] is about. Callers match on it (the controller files an
/// apply failure under its Secret); reports print it (`Secret ns/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Secret {
        namespace: String,
        name: String,
    },
    Workload {
        kind: WorkloadKind,
        namespace: String,
        name: String,
    },
    /// A non-Secret object (`--all`).
    Object {
        kind: String,
        name: String,
        file: PathBuf,
    },
    /// Looking up the consumers of the Secrets of a namespace.
    Consumers {
        namespace: String,
    },
    /// Prune in a namespace (`name`: of one Secret).
    Prune {
        namespace: String,
        name: Option<String>,
    },
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Secret { namespace, name } => write!(f, "Secret {namespace}/{name}"),
            Subject::Workload {
                kind,
                namespace,
                name,
            } => write!(f, "{kind} {namespace}/{name}"),
            Subject::Object { kind, name, file } => {
                write!(f, "{kind} {name} ({})", file.display())
            }
            Subject::Consumers { .. } => f.write_str("consumers"),
            Subject::Prune {
                namespace,
                name: None,
            } => write!(f, "prune {namespace}"),
            Subject::Prune {
                namespace,
                name: Some(name),
            } => write!(f, "prune Secret {namespace}/{name}"),
        }
    }
}

/// As its text: the JSON report keeps its `subject` strings.
impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub subject: Subject,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherResult {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub file: PathBuf,
}

/// What a run did. Key names, workload names and reasons; never values.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    pub applied: Vec<SecretResult>,
    pub unchanged: Vec<SecretResult>,
    pub restarted: Vec<WorkloadResult>,
    pub verified: Vec<String>,
    pub stale: Vec<Fixed>,
    /// Opted-out consumers that pick the value up in place (plain secret volumes).
    pub refreshed_in_place: Vec<Note>,
    pub pruned: Vec<String>,
    pub prune_skipped: Vec<Note>,
    pub others: Vec<OtherResult>,
    pub skipped: Vec<Skipped>,
    pub refused: Vec<Refusal>,
    pub failures: Vec<Note>,
    pub warnings: Vec<String>,
    /// Content changes held for an approval: not written, not rolled.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub awaiting: Vec<Awaiting>,
}

impl Report {
    /// Everything applied, every restarted workload verified, nothing refused.
    pub fn ok(&self) -> bool {
        self.awaiting.is_empty() && self.ok_apart_from_approvals()
    }

    /// [`Report::ok`] but for changes held for approval (`ksec apply` exit 3).
    pub fn ok_apart_from_approvals(&self) -> bool {
        self.refused.is_empty()
            && self.failures.is_empty()
            && self
                .restarted
                .iter()
                .all(|w| matches!(w.outcome, None | Some(Outcome::Verified)))
    }

    pub fn changed(&self) -> bool {
        !self.applied.is_empty() || !self.restarted.is_empty() || !self.pruned.is_empty()
    }
}

/// Runs the pipeline, phase by phase. Refusals in `loaded` stop it before
/// anything is applied.
pub async fn apply(
    client: &kube::Client,
    loaded: Loaded,
    opts: &ApplyOptions,
) -> Result<Report, ClusterError> {
    let mut report = Report {
        dry_run: opts.dry_run,
        skipped: loaded.skipped,
        refused: loaded.refused,
        ..Default::default()
    };
    if !report.refused.is_empty() {
        return Ok(report);
    }
    let secrets = loaded.secrets;
    let live = read_live(client, &secrets, opts).await?;
    let (secrets, live, held) = hold_unapproved(client, secrets, live, opts).await?;
    let pp = PatchParams {
        dry_run: opts.dry_run,
        force: opts.force_conflicts,
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut written = write_secrets(client, &secrets, live, &pp, opts).await;
    drop(secrets);
    // A held Secret is still live and still in the source: prune stays out of its namespace.
    written
        .failed_ns
        .extend(held.iter().map(|a| a.namespace.clone()));
    report.awaiting = held;
    report.failures.extend(written.failures);
    apply_others(client, &loaded.others, &pp, &mut report).await;
    if opts.restart {
        restart_phases(client, &written.ok, opts, &mut report).await;
    }
    if opts.record_inventory || opts.prune {
        inventory_and_prune(client, opts, &written.ok, &written.failed_ns, &mut report).await;
    }
    for s in written.ok {
        if s.action == Action::Unchanged {
            report.unchanged.push(s);
        } else {
            report.applied.push(s);
        }
    }
    Ok(report)
}

/// Phases 3 to 5 for Secrets someone else wrote (the controller's watched
/// Secrets: ESO, opted-in): `changed` says which content changed (key
/// names) and its hash. In gated namespaces, a rollout to a hash nobody
/// approved is held (reported in `awaiting`); the rest goes ahead.
pub async fn roll(
    client: &kube::Client,
    changed: Vec<SecretResult>,
    opts: &ApplyOptions,
) -> Result<Report, ClusterError> {
    let mut report = Report {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut plan = plan_restarts(client, &changed, opts).await;
    if let Some(gate) = &opts.approval {
        report.awaiting = gate_rollouts(client, gate, &mut plan, &changed).await?;
    }
    run_plan(client, plan, opts, &mut report).await;
    Ok(report)
}

/// Plan, start and verify the rollouts the changes in `ok` call for.
async fn restart_phases(
    client: &kube::Client,
    ok: &[SecretResult],
    opts: &ApplyOptions,
    report: &mut Report,
) {
    let plan = plan_restarts(client, ok, opts).await;
    run_plan(client, plan, opts, report).await;
}

/// Phases 4 and 5 of a plan, and what it reports without doing.
async fn run_plan(
    client: &kube::Client,
    plan: RestartPlan,
    opts: &ApplyOptions,
    report: &mut Report,
) {
    report.stale.extend(plan.stale);
    report.refreshed_in_place.extend(plan.refreshed_in_place);
    report.failures.extend(plan.failures);
    let started = start_restarts(client, plan.rollouts, opts).await;
    report.restarted = started.workloads;
    if !opts.dry_run {
        verify_restarts(client, &started.restarts, opts, report).await;
    }
    report
        .restarted
        .sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
}

/// Takes out of `plan` every rollout to a hash not approved in a gated
/// namespace; returns those Secrets. A Secret that rolls nothing (first
/// sight, every consumer current) asks nobody for anything.
async fn gate_rollouts(
    client: &kube::Client,
    gate: &Gate,
    plan: &mut RestartPlan,
    changed: &[SecretResult],
) -> Result<Vec<Awaiting>, ClusterError> {
    let rolling: BTreeSet<(&str, &str)> = plan
        .rollouts
        .iter()
        .flat_map(|r| {
            r.secrets
                .iter()
                .map(|s| (r.consumer.namespace.as_str(), s.as_str()))
        })
        .collect();
    let approvers = gate
        .approvers(client, rolling.iter().map(|(ns, _)| *ns))
        .await;
    let rolling: BTreeSet<(&str, &str)> = rolling
        .into_iter()
        .filter(|(ns, _)| approvers.contains_key(*ns))
        .collect();
    let approved = approval::approved_in(client, rolling.iter().map(|(ns, _)| *ns)).await?;
    let held: Vec<&SecretResult> = changed
        .iter()
        .filter(|s| rolling.contains(&(s.namespace.as_str(), s.name.as_str())))
        .filter(|s| !approved.covers(&s.namespace, &s.name, &s.content_hash))
        .collect();
    for r in &mut plan.rollouts {
        let here: Vec<String> = held
            .iter()
            .filter(|h| h.namespace == r.consumer.namespace)
            .map(|h| h.name.clone())
            .collect();
        r.secrets.retain(|s| !here.contains(s));
        r.annotations
            .retain(|k, _| !here.iter().any(|h| consumers::template_key(h) == *k));
    }
    plan.rollouts.retain(|r| !r.annotations.is_empty());
    Ok(held
        .into_iter()
        .map(|s| Awaiting {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            content_hash: s.content_hash.clone(),
            keys: s.keys.clone(),
            approvers: approvers[&s.namespace].clone(),
        })
        .collect())
}

/// Phase 1b: in gated namespaces, a change of an existing Secret's content
/// is held unless its new hash is approved. A new Secret is not a rotation
/// and is not held.
async fn hold_unapproved(
    client: &kube::Client,
    secrets: Vec<DesiredSecret>,
    live: Vec<Option<Secret>>,
    opts: &ApplyOptions,
) -> Result<(Vec<DesiredSecret>, Vec<Option<Secret>>, Vec<Awaiting>), ClusterError> {
    let Some(gate) = &opts.approval else {
        return Ok((secrets, live, Vec::new()));
    };
    // Content changes of existing Secrets, then which of their namespaces are gated.
    let changes: Vec<Option<(String, KeyDiff)>> = secrets
        .iter()
        .zip(&live)
        .map(|(s, l)| {
            let l = l.as_ref()?;
            let keys = diff::key_diff(&diff::live_data(l), &s.data);
            (!keys.is_empty()).then(|| (diff::content_hash(&salt_of(Some(l)), &s.data), keys))
        })
        .collect();
    let changed_ns = secrets
        .iter()
        .zip(&changes)
        .filter(|(_, c)| c.is_some())
        .map(|(s, _)| s.namespace.as_str());
    let approvers = gate.approvers(client, changed_ns).await;
    let approved = approval::approved_in(client, approvers.keys().map(String::as_str)).await?;
    let (mut keep, mut keep_live, mut held) = (Vec::new(), Vec::new(), Vec::new());
    for ((s, l), c) in secrets.into_iter().zip(live).zip(changes) {
        let gated = approvers.get(&s.namespace);
        let (Some((hash, keys)), Some(who)) = (c, gated) else {
            keep.push(s);
            keep_live.push(l);
            continue;
        };
        if approved.covers(&s.namespace, &s.name, &hash) {
            keep.push(s);
            keep_live.push(l);
        } else {
            held.push(Awaiting {
                approvers: who.clone(),
                namespace: s.namespace,
                name: s.name,
                content_hash: hash,
                keys,
            });
        }
    }
    Ok((keep, keep_live, held))
}

/// The hash salt of a live Secret, or a fresh one for a new Secret.
fn salt_of(live: Option<&Secret>) -> String {
    live.and_then(|l| l.metadata.annotations.as_ref())
        .and_then(|a| a.get(ANN_HASH_SALT))
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(diff::new_salt)
}

/// Phase 1: what is live for each Secret (`None`: absent), in the order of
/// `secrets`. A 403 here means nothing has been written yet: the run stops.
async fn read_live(
    client: &kube::Client,
    secrets: &[DesiredSecret],
    opts: &ApplyOptions,
) -> Result<Vec<Option<Secret>>, ClusterError> {
    let reads: Vec<(usize, Result<Option<Secret>, ClusterError>)> =
        stream::iter(secrets.iter().enumerate())
            .map(|(idx, s)| async move {
                if let Some(live) = opts.known_live.get(&(s.namespace.clone(), s.name.clone())) {
                    return (idx, Ok(live.clone()));
                }
                let api = Api::<Secret>::namespaced(client.clone(), &s.namespace);
                let live = api.get_opt(&s.name).await.map_err(|e| {
                    ClusterError::from_kube(format!("get secret {}/{}", s.namespace, s.name), e)
                });
                (idx, live)
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    let mut live = vec![None; secrets.len()];
    let mut forbidden = BTreeSet::new();
    for (idx, r) in reads {
        match r {
            Ok(l) => live[idx] = l,
            Err(ClusterError::Forbidden(m)) => {
                forbidden.insert(m);
            }
            Err(e) => return Err(e),
        }
    }
    if !forbidden.is_empty() {
        return Err(ClusterError::Forbidden(
            forbidden.into_iter().collect::<Vec<_>>().join("\n"),
        ));
    }
    Ok(live)
}

/// What phase 2 wrote.
struct Written {
    /// In the order of the desired Secrets.
    ok: Vec<SecretResult>,
    failures: Vec<Note>,
    /// Namespaces where a Secret failed to apply: prune stays out of them.
    failed_ns: BTreeSet<String>,
}

/// Phase 2: server-side apply of each Secret, as `ksec`.
async fn write_secrets(
    client: &kube::Client,
    secrets: &[DesiredSecret],
    live: Vec<Option<Secret>>,
    pp: &PatchParams,
    opts: &ApplyOptions,
) -> Written {
    let mut results: Vec<(usize, Result<SecretResult, ClusterError>)> =
        stream::iter(secrets.iter().zip(live).enumerate())
            .map(|(i, (s, live))| async move { (i, write_secret(client, s, live, pp, opts).await) })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    results.sort_by_key(|(i, _)| *i);
    let mut out = Written {
        ok: Vec::new(),
        failures: Vec::new(),
        failed_ns: BTreeSet::new(),
    };
    for (i, r) in results {
        match r {
            Ok(sr) => out.ok.push(sr),
            Err(e) => {
                let s = &secrets[i];
                out.failed_ns.insert(s.namespace.clone());
                out.failures.push(Note {
                    subject: Subject::Secret {
                        namespace: s.namespace.clone(),
                        name: s.name.clone(),
                    },
                    message: e.to_string(),
                });
            }
        }
    }
    out
}

/// One Secret: stamped (labels, salted content hash), applied, compared.
async fn write_secret(
    client: &kube::Client,
    s: &DesiredSecret,
    live: Option<Secret>,
    pp: &PatchParams,
    opts: &ApplyOptions,
) -> Result<SecretResult, ClusterError> {
    let api = Api::<Secret>::namespaced(client.clone(), &s.namespace);
    let salt = salt_of(live.as_ref());
    let hash = diff::content_hash(&salt, &s.data);
    let obj = stamped(s, &opts.inventory_id, salt, &hash);
    let res = api.patch(&s.name, pp, &Patch::Apply(&obj)).await;
    drop(obj);
    let after = res.map_err(|e| {
        ClusterError::from_kube(format!("apply secret {}/{}", s.namespace, s.name), e)
    })?;
    let before = live.as_ref().map(diff::live_data).unwrap_or_default();
    let keys = diff::key_diff(&before, &diff::live_data(&after));
    let action = match &live {
        None => Action::Created,
        Some(_) if !keys.is_empty() => Action::Updated,
        Some(l)
            if !opts.dry_run && l.metadata.resource_version != after.metadata.resource_version =>
        {
            Action::Updated
        }
        Some(_) => Action::Unchanged,
    };
    Ok(SecretResult {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        file: s.file.clone(),
        env: s.env.clone(),
        action,
        keys,
        content_hash: hash,
    })
}

/// The object to apply: the skeleton with ksec's labels, the salted content
/// hash and the data. Holds values: dropped as soon as it is sent.
fn stamped(s: &DesiredSecret, inventory_id: &str, salt: String, hash: &str) -> J {
    let mut obj = s.object.clone();
    let meta = obj["metadata"]
        .as_object_mut()
        .expect("skeleton has metadata");
    let labels = meta
        .entry("labels")
        .or_insert_with(|| J::Object(Default::default()));
    labels[LABEL_MANAGED_BY] = J::String(MANAGED_BY_VALUE.into());
    labels[LABEL_INVENTORY] = J::String(inventory_id.into());
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| J::Object(Default::default()));
    ann[ANN_HASH_SALT] = J::String(salt);
    ann[ANN_CONTENT_HASH] = J::String(hash.into());
    obj["data"] = J::Object(diff::encode_data(&s.data));
    obj
}

/// One workload to roll: the template annotations to set (Secret → content
/// hash) and the Secrets that call for it.
struct Rollout {
    consumer: consumers::Consumer,
    annotations: BTreeMap<String, String>,
    secrets: Vec<String>,
}

/// What phase 3 found to do, and what it reports without doing.
#[derive(Default)]
struct RestartPlan {
    rollouts: Vec<Rollout>,
    stale: Vec<Fixed>,
    refreshed_in_place: Vec<Note>,
    failures: Vec<Note>,
}

/// Phase 3: per namespace, the consumers of the applied Secrets and the
/// rollouts their changes call for (one per workload).
async fn plan_restarts(
    client: &kube::Client,
    ok: &[SecretResult],
    opts: &ApplyOptions,
) -> RestartPlan {
    let mut by_ns: BTreeMap<String, Vec<&SecretResult>> = BTreeMap::new();
    for s in ok {
        by_ns.entry(s.namespace.clone()).or_default().push(s);
    }
    let found: Vec<(String, Result<consumers::NamespaceConsumers, ClusterError>)> =
        stream::iter(by_ns.iter())
            .map(|(ns, list)| async move {
                let names: BTreeSet<String> = list.iter().map(|s| s.name.clone()).collect();
                let any_changed = list.iter().any(|s| !s.keys.is_empty());
                let found = consumers::find_with(
                    client,
                    ns,
                    &names,
                    any_changed,
                    any_changed && opts.report_fixed,
                    opts.workloads.as_ref(),
                )
                .await;
                (ns.clone(), found)
            })
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
    let mut plan = RestartPlan::default();
    for (ns, f) in found {
        match f {
            Ok(found) => plan_namespace(&by_ns[&ns], found, &mut plan),
            Err(e) => plan.failures.push(Note {
                subject: Subject::Consumers { namespace: ns },
                message: e.to_string(),
            }),
        }
    }
    plan
}

/// [`plan_restarts`] in one namespace.
fn plan_namespace(
    list: &[&SecretResult],
    found: consumers::NamespaceConsumers,
    plan: &mut RestartPlan,
) {
    let changed: BTreeSet<&str> = list
        .iter()
        .filter(|s| !s.keys.is_empty())
        .map(|s| s.name.as_str())
        .collect();
    let hashes: BTreeMap<&str, &str> = list
        .iter()
        .map(|s| (s.name.as_str(), s.content_hash.as_str()))
        .collect();
    for fx in found.fixed {
        let secrets: Vec<String> = fx
            .secrets
            .iter()
            .filter(|s| changed.contains(s.as_str()))
            .cloned()
            .collect();
        if !secrets.is_empty() {
            plan.stale.push(Fixed { secrets, ..fx });
        }
    }
    for c in found.workloads {
        if let Some(r) = plan_workload(c, &changed, &hashes, plan) {
            plan.rollouts.push(r);
        }
    }
}

/// One consumer: a rollout when a Secret it uses changed (or its template
/// missed one); opted-out consumers are reported instead.
fn plan_workload(
    c: consumers::Consumer,
    changed: &BTreeSet<&str>,
    hashes: &BTreeMap<&str, &str>,
    plan: &mut RestartPlan,
) -> Option<Rollout> {
    let mut annotations = BTreeMap::new();
    let mut why = Vec::new();
    for (secret, refs) in &c.uses {
        let Some(hash) = hashes.get(secret.as_str()) else {
            continue;
        };
        let key = consumers::template_key(secret);
        let content_changed = changed.contains(secret.as_str());
        // A template annotated with another hash missed a rollout (e.g. an interrupted run).
        let behind = c.template_annotations.get(&key).is_some_and(|v| v != hash);
        if !(content_changed || behind) {
            continue;
        }
        if c.opted_out {
            if content_changed && consumers::needs_restart(refs) {
                plan.stale.push(Fixed {
                    kind: c.kind.to_string(),
                    namespace: c.namespace.clone(),
                    name: c.name.clone(),
                    secrets: vec![secret.clone()],
                    reason: consumers::stale_reason(refs),
                });
            } else if content_changed {
                plan.refreshed_in_place.push(Note {
                    subject: Subject::Workload {
                        kind: c.kind,
                        namespace: c.namespace.clone(),
                        name: c.name.clone(),
                    },
                    message: format!(
                        "opted out; mounts Secret {secret} as a volume, which the kubelet refreshes in place"
                    ),
                });
            }
            continue;
        }
        annotations.insert(key, hash.to_string());
        why.push(secret.clone());
    }
    (!annotations.is_empty()).then_some(Rollout {
        consumer: c,
        annotations,
        secrets: why,
    })
}

/// What phase 4 started.
struct Started {
    workloads: Vec<WorkloadResult>,
    /// Each with the index of its entry in `workloads`; failed starts have none.
    restarts: Vec<(usize, Restart)>,
}

/// Phase 4: one rollout per workload.
async fn start_restarts(
    client: &kube::Client,
    rollouts: Vec<Rollout>,
    opts: &ApplyOptions,
) -> Started {
    let done: Vec<(WorkloadResult, Option<Restart>)> = stream::iter(rollouts)
        .map(|r| async move {
            let c = r.consumer;
            let mut wr = WorkloadResult {
                kind: c.kind,
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                secrets: r.secrets,
                outcome: None,
                rolled_back: false,
                rollback_error: None,
            };
            let started = restart::restart(
                client,
                c.kind,
                &c.namespace,
                &c.name,
                &c.template_annotations,
                r.annotations,
                opts.dry_run,
            )
            .await;
            match started {
                Ok(r) => (wr, Some(r)),
                Err(e) => {
                    wr.outcome = Some(Outcome::Failed(format!("restart failed: {e}")));
                    (wr, None)
                }
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    let mut out = Started {
        workloads: Vec::with_capacity(done.len()),
        restarts: Vec::new(),
    };
    for (wr, r) in done {
        if let Some(r) = r {
            out.restarts.push((out.workloads.len(), r));
        }
        out.workloads.push(wr);
    }
    out
}

/// How one rollout ended (phase 5).
struct Verified {
    /// Index in `report.restarted`.
    idx: usize,
    outcome: Outcome,
    rolled_back: bool,
    rollback_error: Option<String>,
}

/// Phase 5: wait for every rollout (all at once, one deadline); roll back
/// the failed ones when asked.
async fn verify_restarts(
    client: &kube::Client,
    restarts: &[(usize, Restart)],
    opts: &ApplyOptions,
    report: &mut Report,
) {
    if restarts.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let outcomes: Vec<Verified> = stream::iter(restarts.iter())
        .map(|(idx, r)| async move {
            let outcome = match verify::wait(client, r, deadline, opts.poll).await {
                Ok(o) => o,
                Err(e) => Outcome::Failed(e.to_string()),
            };
            let mut v = Verified {
                idx: *idx,
                outcome,
                rolled_back: false,
                rollback_error: None,
            };
            if v.outcome != Outcome::Verified && opts.rollback_on_failure {
                match restart::rollback(client, r).await {
                    Ok(()) => v.rolled_back = true,
                    Err(e) => v.rollback_error = Some(e.to_string()),
                }
            }
            v
        })
        .buffer_unordered(opts.concurrency.max(1))
        .collect()
        .await;
    for v in outcomes {
        let w = &mut report.restarted[v.idx];
        if v.outcome == Outcome::Verified {
            report
                .verified
                .push(format!("{}/{}/{}", w.namespace, w.kind, w.name));
        }
        w.outcome = Some(v.outcome);
        w.rolled_back = v.rolled_back;
        w.rollback_error = v.rollback_error;
    }
    report.verified.sort();
}

async fn apply_others(
    client: &kube::Client,
    others: &[super::source::DesiredOther],
    pp: &PatchParams,
    report: &mut Report,
) {
    let mut cache: HashMap<
        (String, String),
        (
            kube::discovery::ApiResource,
            kube::discovery::ApiCapabilities,
        ),
    > = HashMap::new();
    for o in others {
        let api_version = o.object.get("apiVersion").and_then(J::as_str).unwrap_or("");
        let kind = o.object.get("kind").and_then(J::as_str).unwrap_or("");
        let name = o
            .object
            .pointer("/metadata/name")
            .and_then(J::as_str)
            .unwrap_or("")
            .to_string();
        let subject = Subject::Object {
            kind: kind.into(),
            name: name.clone(),
            file: o.file.clone(),
        };
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let key = (api_version.to_string(), kind.to_string());
        if !cache.contains_key(&key) {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            match kube::discovery::pinned_kind(client, &gvk).await {
                Ok(x) => {
                    cache.insert(key.clone(), x);
                }
                Err(e) => {
                    report.failures.push(Note {
                        subject,
                        message: format!("unknown kind {api_version} {kind}: {e}"),
                    });
                    continue;
                }
            }
        }
        let (ar, caps) = &cache[&key];
        let api: Api<DynamicObject> = match (&caps.scope, &o.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), ar),
            (Scope::Cluster, _) => Api::all_with(client.clone(), ar),
        };
        match api.patch(&name, pp, &Patch::Apply(&o.object)).await {
            Ok(_) => report.others.push(OtherResult {
                kind: kind.into(),
                namespace: o.namespace.clone(),
                name,
                file: o.file.clone(),
            }),
            Err(e) => report.failures.push(Note {
                subject,
                message: ClusterError::from_kube("apply", e).to_string(),
            }),
        }
    }
}

/// Phase 6: record what was created in each namespace's inventory and
/// (`--prune`) delete what the source no longer defines.
async fn inventory_and_prune(
    client: &kube::Client,
    opts: &ApplyOptions,
    ok: &[SecretResult],
    failed_ns: &BTreeSet<String>,
    report: &mut Report,
) {
    let mut source: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in ok {
        source
            .entry(s.namespace.clone())
            .or_default()
            .insert(s.name.clone());
    }
    let namespaces = prune_namespaces(client, opts, &source, report).await;
    let empty = BTreeSet::new();
    for ns in namespaces {
        let created = ok
            .iter()
            .filter(|s| s.namespace == ns && s.action == Action::Created)
            .map(|s| s.name.clone());
        let prune = if !opts.prune {
            Prune::No
        } else if failed_ns.contains(&ns) {
            Prune::Blocked
        } else {
            Prune::Keep(source.get(&ns).unwrap_or(&empty))
        };
        namespace_inventory(client, opts, &ns, created, prune, report).await;
    }
}

/// The run's namespaces, and (`--prune` inside an explicit scope) those
/// whose inventory lists Secrets the source no longer has.
async fn prune_namespaces(
    client: &kube::Client,
    opts: &ApplyOptions,
    source: &BTreeMap<String, BTreeSet<String>>,
    report: &mut Report,
) -> BTreeSet<String> {
    let mut namespaces: BTreeSet<String> = source.keys().cloned().collect();
    // Namespaces with nothing left in the source are only visited inside an
    // explicit scope (--env / --namespace); otherwise prune stays in the run's namespaces.
    let Some(scope) = opts.prune_scope.as_ref().filter(|_| opts.prune) else {
        return namespaces;
    };
    match inventory::namespaces(client, &opts.inventory_id).await {
        Ok(Some(more)) => namespaces.extend(more.into_iter().filter(|ns| scope(ns))),
        Ok(None) => report.warnings.push(
            "cannot list inventories cluster-wide (RBAC): prune only looks at the namespaces of this run".into(),
        ),
        Err(e) => report.warnings.push(format!("prune: {e}")),
    }
    namespaces
}

/// Whether prune runs in a namespace.
enum Prune<'a> {
    No,
    /// Some Secrets there failed to apply: what the source holds is unknown.
    Blocked,
    /// Prune what the inventory lists and this does not.
    Keep(&'a BTreeSet<String>),
}

/// One namespace: add `created` to its inventory, prune, write the
/// inventory back if it changed.
async fn namespace_inventory(
    client: &kube::Client,
    opts: &ApplyOptions,
    ns: &str,
    created: impl Iterator<Item = String>,
    prune: Prune<'_>,
    report: &mut Report,
) {
    let mut inv = match inventory::read(client, ns, &opts.inventory_id).await {
        Ok(i) => i,
        Err(e) => {
            let msg = format!(
                "inventory in {ns} not readable, so ksec cannot record what it created there: {e}"
            );
            if opts.prune {
                report.failures.push(Note {
                    subject: Subject::Prune {
                        namespace: ns.into(),
                        name: None,
                    },
                    message: msg,
                });
            } else {
                report.warnings.push(msg);
            }
            return;
        }
    };
    let before = inv.created.clone();
    inv.created.extend(created);
    match prune {
        Prune::No => {}
        Prune::Blocked => report.warnings.push(format!(
            "prune skipped in {ns}: some Secrets there failed to apply"
        )),
        Prune::Keep(keep) => {
            for name in before.difference(keep) {
                if prune_one(client, opts, ns, name, report).await {
                    inv.created.remove(name);
                }
            }
        }
    }
    if !opts.dry_run
        && (inv.created != before || (!inv.exists && !inv.created.is_empty()))
        && let Err(e) = inventory::write(client, &inv).await
    {
        report.warnings.push(format!(
            "inventory in {ns} not written (prune will not know what ksec created): {e}"
        ));
    }
}

/// Prunes one Secret; `true` when it leaves the inventory (pruned, gone,
/// or not ours).
async fn prune_one(
    client: &kube::Client,
    opts: &ApplyOptions,
    ns: &str,
    name: &str,
    report: &mut Report,
) -> bool {
    match inventory::prune_one(client, ns, name, opts.dry_run).await {
        Ok(PruneResult::Pruned) => {
            report.pruned.push(format!("{ns}/{name}"));
            true
        }
        Ok(PruneResult::Gone) => true,
        Ok(PruneResult::NotOurs(why)) => {
            report.prune_skipped.push(Note {
                subject: Subject::Secret {
                    namespace: ns.into(),
                    name: name.into(),
                },
                message: why,
            });
            true
        }
        Err(e) => {
            report.failures.push(Note {
                subject: Subject::Prune {
                    namespace: ns.into(),
                    name: Some(name.into()),
                },
                message: e.to_string(),
            });
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON report keeps the text it had when subjects were strings.
    #[test]
    fn subjects_serialize_as_their_text() {
        let notes = [
            Subject::Secret {
                namespace: "prod".into(),
                name: "db".into(),
            },
            Subject::Workload {
                kind: WorkloadKind::Deployment,
                namespace: "prod".into(),
                name: "api".into(),
            },
            Subject::Prune {
                namespace: "prod".into(),
                name: Some("old".into()),
            },
            Subject::Prune {
                namespace: "prod".into(),
                name: None,
            },
        ];
        let text: Vec<J> = notes
            .iter()
            .map(|s| serde_json::to_value(s).unwrap())
            .collect();
        assert_eq!(
            text,
            [
                "Secret prod/db",
                "Deployment prod/api",
                "prune Secret prod/old",
                "prune prod"
            ]
        );
    }
}
