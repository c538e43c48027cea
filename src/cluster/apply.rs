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

use super::consumers::{self, Fixed, WorkloadKind};
use super::diff::{self, KeyDiff};
use super::inventory::{self, PruneResult};
use super::restart::{self, Restart};
use super::source::{Loaded, Refusal, Skipped};
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
}

impl Report {
    /// Everything applied, every restarted workload verified, nothing refused.
    pub fn ok(&self) -> bool {
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

struct Planned {
    idx: usize,
    live: Option<Secret>,
}

/// Runs the pipeline. Refusals in `loaded` stop it before anything is applied.
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
    let n = opts.concurrency.max(1);

    // 1. Read what is live. A 403 here means nothing has been written yet.
    let reads: Vec<Result<Planned, ClusterError>> = stream::iter(secrets.iter().enumerate())
        .map(|(idx, s)| {
            let api = Api::<Secret>::namespaced(client.clone(), &s.namespace);
            let known = opts.known_live.get(&(s.namespace.clone(), s.name.clone()));
            async move {
                if let Some(live) = known {
                    return Ok(Planned {
                        idx,
                        live: live.clone(),
                    });
                }
                let live = api.get_opt(&s.name).await.map_err(|e| {
                    ClusterError::from_kube(format!("get secret {}/{}", s.namespace, s.name), e)
                })?;
                Ok(Planned { idx, live })
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let mut planned = Vec::with_capacity(reads.len());
    let mut forbidden = BTreeSet::new();
    for r in reads {
        match r {
            Ok(p) => planned.push(p),
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
    planned.sort_by_key(|p| p.idx);

    // 2. Server-side apply.
    let pp = PatchParams {
        dry_run: opts.dry_run,
        force: opts.force_conflicts,
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let applies: Vec<(usize, Result<SecretResult, ClusterError>)> = stream::iter(planned)
        .map(|p| {
            let s = &secrets[p.idx];
            let api = Api::<Secret>::namespaced(client.clone(), &s.namespace);
            let pp = pp.clone();
            let inv = opts.inventory_id.clone();
            async move {
                let live_ann = p
                    .live
                    .as_ref()
                    .and_then(|l| l.metadata.annotations.as_ref());
                let salt = live_ann
                    .and_then(|a| a.get(ANN_HASH_SALT))
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(diff::new_salt);
                let hash = diff::content_hash(&salt, &s.data);
                let mut obj = s.object.clone();
                let meta = obj["metadata"]
                    .as_object_mut()
                    .expect("skeleton has metadata");
                let labels = meta
                    .entry("labels")
                    .or_insert_with(|| J::Object(Default::default()));
                labels[LABEL_MANAGED_BY] = J::String(MANAGED_BY_VALUE.into());
                labels[LABEL_INVENTORY] = J::String(inv);
                let ann = meta
                    .entry("annotations")
                    .or_insert_with(|| J::Object(Default::default()));
                ann[ANN_HASH_SALT] = J::String(salt);
                ann[ANN_CONTENT_HASH] = J::String(hash.clone());
                obj["data"] = J::Object(diff::encode_data(&s.data));
                let res = api
                    .patch(&s.name, &pp, &Patch::Apply(&obj))
                    .await
                    .map_err(|e| {
                        ClusterError::from_kube(
                            format!("apply secret {}/{}", s.namespace, s.name),
                            e,
                        )
                    });
                drop(obj);
                let out = res.map(|after| {
                    let before = p.live.as_ref().map(diff::live_data).unwrap_or_default();
                    let keys = diff::key_diff(&before, &diff::live_data(&after));
                    let action = match &p.live {
                        None => Action::Created,
                        Some(_) if !keys.is_empty() => Action::Updated,
                        Some(l)
                            if !opts.dry_run
                                && l.metadata.resource_version
                                    != after.metadata.resource_version =>
                        {
                            Action::Updated
                        }
                        Some(_) => Action::Unchanged,
                    };
                    SecretResult {
                        namespace: s.namespace.clone(),
                        name: s.name.clone(),
                        file: s.file.clone(),
                        env: s.env.clone(),
                        action,
                        keys,
                        content_hash: hash,
                    }
                });
                (p.idx, out)
            }
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let mut applies = applies;
    applies.sort_by_key(|(i, _)| *i);
    let mut ok_secrets: Vec<SecretResult> = Vec::new();
    let mut failed_ns: BTreeSet<String> = BTreeSet::new();
    for (i, r) in applies {
        match r {
            Ok(sr) => ok_secrets.push(sr),
            Err(e) => {
                let s = &secrets[i];
                failed_ns.insert(s.namespace.clone());
                report.failures.push(Note {
                    subject: Subject::Secret {
                        namespace: s.namespace.clone(),
                        name: s.name.clone(),
                    },
                    message: e.to_string(),
                });
            }
        }
    }
    drop(secrets);

    // Non-Secret objects (--all).
    apply_others(client, &loaded.others, &pp, &mut report).await;

    // 3. Restarts: per namespace, one rollout per workload.
    let mut by_ns: BTreeMap<String, Vec<&SecretResult>> = BTreeMap::new();
    for s in &ok_secrets {
        by_ns.entry(s.namespace.clone()).or_default().push(s);
    }
    // Each with the index of its entry in `report.restarted`.
    let mut restarts: Vec<(usize, Restart)> = Vec::new();
    if opts.restart {
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
                .buffer_unordered(n)
                .collect()
                .await;
        let mut plans: Vec<(consumers::Consumer, BTreeMap<String, String>, Vec<String>)> =
            Vec::new();
        for f in found {
            let (ns, found) = match f {
                (ns, Ok(x)) => (ns, x),
                (ns, Err(e)) => {
                    report.failures.push(Note {
                        subject: Subject::Consumers { namespace: ns },
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let list = &by_ns[&ns];
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
                    report.stale.push(Fixed { secrets, ..fx });
                }
            }
            for c in found.workloads {
                let mut set = BTreeMap::new();
                let mut why = Vec::new();
                for (secret, refs) in &c.uses {
                    let Some(hash) = hashes.get(secret.as_str()) else {
                        continue;
                    };
                    let key = consumers::template_key(secret);
                    let current = c.template_annotations.get(&key);
                    let content_changed = changed.contains(secret.as_str());
                    // A template annotated with another hash missed a rollout (e.g. an interrupted run).
                    let behind = current.is_some_and(|v| v != hash);
                    if !(content_changed || behind) {
                        continue;
                    }
                    if c.opted_out {
                        if content_changed && consumers::needs_restart(refs) {
                            report.stale.push(Fixed {
                                kind: c.kind.to_string(),
                                namespace: c.namespace.clone(),
                                name: c.name.clone(),
                                secrets: vec![secret.clone()],
                                reason: consumers::stale_reason(refs),
                            });
                        } else if content_changed {
                            report.refreshed_in_place.push(Note {
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
                    set.insert(key, hash.to_string());
                    why.push(secret.clone());
                }
                if !set.is_empty() {
                    plans.push((c, set, why));
                }
            }
        }
        let done: Vec<(WorkloadResult, Option<Restart>)> = stream::iter(plans)
            .map(|(c, set, why)| async move {
                let mut wr = WorkloadResult {
                    kind: c.kind,
                    namespace: c.namespace.clone(),
                    name: c.name.clone(),
                    secrets: why,
                    outcome: None,
                    rolled_back: false,
                    rollback_error: None,
                };
                match restart::restart(
                    client,
                    c.kind,
                    &c.namespace,
                    &c.name,
                    &c.template_annotations,
                    set,
                    opts.dry_run,
                )
                .await
                {
                    Ok(r) => (wr, Some(r)),
                    Err(e) => {
                        wr.outcome = Some(Outcome::Failed(format!("restart failed: {e}")));
                        (wr, None)
                    }
                }
            })
            .buffer_unordered(n)
            .collect()
            .await;
        for (wr, r) in done {
            if let Some(r) = r {
                restarts.push((report.restarted.len(), r));
            }
            report.restarted.push(wr);
        }
    }

    // 4. Verify (all at once, one deadline).
    if opts.restart && !opts.dry_run && !restarts.is_empty() {
        let deadline = tokio::time::Instant::now() + opts.timeout;
        let outcomes: Vec<(usize, Outcome, bool, Option<String>)> = stream::iter(restarts.iter())
            .map(|(i, r)| async move {
                let o = match verify::wait(client, r, deadline, opts.poll).await {
                    Ok(o) => o,
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                let (mut rolled, mut err) = (false, None);
                if o != Outcome::Verified && opts.rollback_on_failure {
                    match restart::rollback(client, r).await {
                        Ok(()) => rolled = true,
                        Err(e) => err = Some(e.to_string()),
                    }
                }
                (*i, o, rolled, err)
            })
            .buffer_unordered(n)
            .collect()
            .await;
        for (i, o, rolled, err) in outcomes {
            let w = &mut report.restarted[i];
            if o == Outcome::Verified {
                report
                    .verified
                    .push(format!("{}/{}/{}", w.namespace, w.kind, w.name));
            }
            w.outcome = Some(o);
            w.rolled_back = rolled;
            w.rollback_error = err;
        }
        report.verified.sort();
    }
    report
        .restarted
        .sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));

    // 5. Inventory and prune.
    if opts.record_inventory || opts.prune {
        inventory_and_prune(client, opts, &ok_secrets, &failed_ns, &mut report).await;
    }

    for s in ok_secrets {
        if s.action == Action::Unchanged {
            report.unchanged.push(s);
        } else {
            report.applied.push(s);
        }
    }
    Ok(report)
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
    let mut namespaces: BTreeSet<String> = source.keys().cloned().collect();
    // Namespaces with nothing left in the source are only visited inside an
    // explicit scope (--env / --namespace); otherwise prune stays in the run's namespaces.
    if opts.prune && opts.prune_scope.is_some() {
        match inventory::namespaces(client, &opts.inventory_id).await {
            Ok(Some(more)) => namespaces.extend(more),
            Ok(None) => report.warnings.push(
                "cannot list inventories cluster-wide (RBAC): prune only looks at the namespaces of this run".into(),
            ),
            Err(e) => report.warnings.push(format!("prune: {e}")),
        }
        if let Some(scope) = &opts.prune_scope {
            let extra: Vec<String> = namespaces
                .iter()
                .filter(|ns| !source.contains_key(*ns) && !scope(ns))
                .cloned()
                .collect();
            for ns in extra {
                namespaces.remove(&ns);
            }
        }
    }
    for ns in namespaces {
        let mut inv = match inventory::read(client, &ns, &opts.inventory_id).await {
            Ok(i) => i,
            Err(e) => {
                let msg = format!(
                    "inventory in {ns} not readable, so ksec cannot record what it created there: {e}"
                );
                if opts.prune {
                    report.failures.push(Note {
                        subject: Subject::Prune {
                            namespace: ns.clone(),
                            name: None,
                        },
                        message: msg,
                    });
                } else {
                    report.warnings.push(msg);
                }
                continue;
            }
        };
        let before = inv.created.clone();
        for s in ok
            .iter()
            .filter(|s| s.namespace == ns && s.action == Action::Created)
        {
            inv.created.insert(s.name.clone());
        }
        if opts.prune {
            if failed_ns.contains(&ns) {
                report.warnings.push(format!(
                    "prune skipped in {ns}: some Secrets there failed to apply"
                ));
            } else {
                let empty = BTreeSet::new();
                let keep = source.get(&ns).unwrap_or(&empty);
                let gone: Vec<String> = before.difference(keep).cloned().collect();
                for name in gone {
                    match inventory::prune_one(client, &ns, &name, opts.dry_run).await {
                        Ok(PruneResult::Pruned) => {
                            report.pruned.push(format!("{ns}/{name}"));
                            inv.created.remove(&name);
                        }
                        Ok(PruneResult::Gone) => {
                            inv.created.remove(&name);
                        }
                        Ok(PruneResult::NotOurs(why)) => {
                            report.prune_skipped.push(Note {
                                subject: Subject::Secret {
                                    namespace: ns.clone(),
                                    name: name.clone(),
                                },
                                message: why,
                            });
                            inv.created.remove(&name);
                        }
                        Err(e) => report.failures.push(Note {
                            subject: Subject::Prune {
                                namespace: ns.clone(),
                                name: Some(name.clone()),
                            },
                            message: e.to_string(),
                        }),
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
}
