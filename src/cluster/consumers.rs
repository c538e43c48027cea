//! Which live workloads use a Secret: env `secretKeyRef`, `envFrom`,
//! volumes, projected volumes, `imagePullSecrets`, and the imagePullSecrets of
//! the pod's service account. The pod-spec reading is [`crate::workloads`],
//! shared with the doctor, so "uses" means the same thing everywhere.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use super::{ANN_RESTART, ClusterError};
use crate::workloads::{self, RefKind, SecretRef};

/// The kinds ksec can roll by patching their pod template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl std::fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        })
    }
}

/// A restartable workload and the Secrets (of interest) it uses.
#[derive(Debug, Clone)]
pub struct Consumer {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// `ksec.io/restart: "false"` on the workload.
    pub opted_out: bool,
    pub template_annotations: BTreeMap<String, String>,
    /// Secret name → how the pod reaches it.
    pub uses: BTreeMap<String, Vec<SecretRef>>,
}

impl Consumer {
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// A pod-running object ksec cannot roll: it keeps the old value until someone replaces it.
#[derive(Debug, Clone, Serialize)]
pub struct Fixed {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub secrets: Vec<String>,
    pub reason: String,
}

/// The Deployments, StatefulSets and DaemonSets of one namespace, already
/// listed (the controller's watch caches), so a lookup costs no request.
#[derive(Debug, Default, Clone)]
pub struct Listed {
    pub deployments: Vec<Deployment>,
    pub statefulsets: Vec<StatefulSet>,
    pub daemonsets: Vec<DaemonSet>,
}

/// Where to read a namespace's workloads from instead of listing them.
pub type WorkloadSource = std::sync::Arc<dyn Fn(&str) -> Listed + Send + Sync>;

#[derive(Debug, Default)]
pub struct NamespaceConsumers {
    pub workloads: Vec<Consumer>,
    /// Bare Pods and running Jobs using the Secrets (only when `include_fixed`).
    pub fixed: Vec<Fixed>,
}

fn kerr(what: String) -> impl FnOnce(kube::Error) -> ClusterError {
    move |e| ClusterError::from_kube(what, e)
}

fn interesting(
    refs: Vec<SecretRef>,
    secrets: &BTreeSet<String>,
) -> BTreeMap<String, Vec<SecretRef>> {
    let mut out: BTreeMap<String, Vec<SecretRef>> = BTreeMap::new();
    for r in refs {
        if secrets.contains(&r.secret) {
            out.entry(r.secret.clone()).or_default().push(r);
        }
    }
    out
}

/// Refs of an object's pod spec, plus its service account's imagePullSecrets.
fn refs_of(
    json: &serde_json::Value,
    ns: &str,
    sa_pulls: &BTreeMap<String, Vec<String>>,
) -> Vec<SecretRef> {
    let Some(w) = workloads::workload(json, ns) else {
        return Vec::new();
    };
    let mut refs = w.refs;
    if let Some(pulls) = sa_pulls.get(&w.service_account) {
        refs.extend(pulls.iter().map(|p| SecretRef {
            secret: p.clone(),
            key: None,
            optional: false,
            via: RefKind::ServiceAccountImagePullSecret,
            sub_path_only: false,
        }));
    }
    refs
}

fn opted_out(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(ANN_RESTART))
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
}

/// Finds the consumers of `secrets` in `ns`. `include_fixed` also lists bare
/// Pods and running Jobs (more requests; only needed when a value changed).
/// `annotated_too` keeps workloads that carry a ksec template annotation for
/// one of the Secrets even if they no longer reference it (their rollout is ours to finish).
pub async fn find(
    client: &kube::Client,
    ns: &str,
    secrets: &BTreeSet<String>,
    include_fixed: bool,
) -> Result<NamespaceConsumers, ClusterError> {
    find_with(client, ns, secrets, include_fixed, include_fixed, None).await
}

/// [`find`] with the workloads read from `cached` when given, and with the
/// service accounts' imagePullSecrets (`with_service_accounts`) and the bare
/// Pods / running Jobs (`include_fixed`) chosen separately.
pub async fn find_with(
    client: &kube::Client,
    ns: &str,
    secrets: &BTreeSet<String>,
    with_service_accounts: bool,
    include_fixed: bool,
    cached: Option<&WorkloadSource>,
) -> Result<NamespaceConsumers, ClusterError> {
    let listed = match cached {
        Some(source) => source(ns),
        None => list_workloads(client, ns).await?,
    };
    // From a cache, a namespace without workloads has no consumers: no request at all.
    let none = listed.deployments.is_empty()
        && listed.statefulsets.is_empty()
        && listed.daemonsets.is_empty();
    if cached.is_some() && none && !include_fixed {
        return Ok(NamespaceConsumers::default());
    }
    let sa_pulls = if with_service_accounts || include_fixed {
        service_account_pulls(client, ns).await?
    } else {
        BTreeMap::new()
    };
    let scan = Scan {
        ns,
        secrets,
        sa_pulls: &sa_pulls,
    };
    let mut out = NamespaceConsumers {
        workloads: scan.workloads(&listed),
        fixed: Vec::new(),
    };
    if include_fixed {
        out.fixed = scan.fixed(client).await?;
    }
    Ok(out)
}

fn list_params() -> ListParams {
    ListParams::default()
}

async fn list_workloads(client: &kube::Client, ns: &str) -> Result<Listed, ClusterError> {
    let lp = list_params();
    let (deps, stss, dss) = futures_util::try_join!(
        async {
            Api::<Deployment>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .map_err(kerr(format!("list deployments in {ns}")))
        },
        async {
            Api::<StatefulSet>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .map_err(kerr(format!("list statefulsets in {ns}")))
        },
        async {
            Api::<DaemonSet>::namespaced(client.clone(), ns)
                .list(&lp)
                .await
                .map_err(kerr(format!("list daemonsets in {ns}")))
        },
    )?;
    Ok(Listed {
        deployments: deps.items,
        statefulsets: stss.items,
        daemonsets: dss.items,
    })
}

/// Service account → the imagePullSecrets it gives its pods.
async fn service_account_pulls(
    client: &kube::Client,
    ns: &str,
) -> Result<BTreeMap<String, Vec<String>>, ClusterError> {
    let items = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .list(&list_params())
        .await
        .map_err(kerr(format!("list serviceaccounts in {ns}")))?
        .items;
    Ok(items
        .into_iter()
        .filter_map(|sa| {
            let pulls: Vec<String> = sa
                .image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .filter(|n| !n.is_empty())
                .collect();
            let name = sa.metadata.name?;
            (!pulls.is_empty()).then_some((name, pulls))
        })
        .collect())
}

/// What one namespace's objects are matched against.
struct Scan<'a> {
    ns: &'a str,
    secrets: &'a BTreeSet<String>,
    sa_pulls: &'a BTreeMap<String, Vec<String>>,
}

impl Scan<'_> {
    fn uses(&self, j: &serde_json::Value) -> BTreeMap<String, Vec<SecretRef>> {
        interesting(refs_of(j, self.ns, self.sa_pulls), self.secrets)
    }

    /// The Deployments, StatefulSets and DaemonSets using the Secrets.
    fn workloads(&self, listed: &Listed) -> Vec<Consumer> {
        let mut out = Vec::new();
        for d in &listed.deployments {
            let t = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
            let j = with_kind(serde_json::to_value(d).unwrap_or_default(), "Deployment");
            out.extend(self.consumer(WorkloadKind::Deployment, &d.metadata, &j, t));
        }
        for d in &listed.statefulsets {
            let t = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
            let j = with_kind(serde_json::to_value(d).unwrap_or_default(), "StatefulSet");
            out.extend(self.consumer(WorkloadKind::StatefulSet, &d.metadata, &j, t));
        }
        for d in &listed.daemonsets {
            let t = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
            let j = with_kind(serde_json::to_value(d).unwrap_or_default(), "DaemonSet");
            out.extend(self.consumer(WorkloadKind::DaemonSet, &d.metadata, &j, t));
        }
        out
    }

    fn consumer(
        &self,
        kind: WorkloadKind,
        meta: &ObjectMeta,
        json: &serde_json::Value,
        tmpl: Option<&ObjectMeta>,
    ) -> Option<Consumer> {
        let ann: BTreeMap<String, String> = tmpl
            .and_then(|m| m.annotations.clone())
            .map(|a| a.into_iter().collect())
            .unwrap_or_default();
        let mut uses = self.uses(json);
        // A template we annotated earlier stays ours even when references were
        // only reachable through the service account (not listed without include_fixed).
        for s in self.secrets {
            if ann.contains_key(&template_key(s)) {
                uses.entry(s.clone()).or_default();
            }
        }
        if uses.is_empty() {
            return None;
        }
        Some(Consumer {
            kind,
            namespace: self.ns.to_string(),
            name: meta.name.clone().unwrap_or_default(),
            opted_out: opted_out(meta),
            template_annotations: ann,
            uses,
        })
    }

    /// Bare Pods and running Jobs using the Secrets: nothing can roll them.
    async fn fixed(&self, client: &kube::Client) -> Result<Vec<Fixed>, ClusterError> {
        let (ns, lp) = (self.ns, list_params());
        let (pods, jobs) = futures_util::try_join!(
            async {
                Api::<Pod>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .map_err(kerr(format!("list pods in {ns}")))
            },
            async {
                Api::<Job>::namespaced(client.clone(), ns)
                    .list(&lp)
                    .await
                    .map_err(kerr(format!("list jobs in {ns}")))
            },
        )?;
        let mut out: Vec<Fixed> = pods.items.iter().filter_map(|p| self.bare_pod(p)).collect();
        out.extend(jobs.items.iter().filter_map(|j| self.running_job(j)));
        Ok(out)
    }

    fn bare_pod(&self, p: &Pod) -> Option<Fixed> {
        let controlled = p
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| r.controller == Some(true)));
        let done = p
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|ph| ph == "Succeeded" || ph == "Failed");
        if controlled || done || p.metadata.deletion_timestamp.is_some() {
            return None;
        }
        let uses = self.uses(&with_kind(
            serde_json::to_value(p).unwrap_or_default(),
            "Pod",
        ));
        (!uses.is_empty()).then(|| Fixed {
            kind: "Pod".into(),
            namespace: self.ns.into(),
            name: p.metadata.name.clone().unwrap_or_default(),
            secrets: uses.into_keys().collect(),
            reason: "bare Pod: no controller can roll it; delete and recreate it".into(),
        })
    }

    fn running_job(&self, job: &Job) -> Option<Fixed> {
        if job.status.as_ref().and_then(|s| s.active).unwrap_or(0) == 0 {
            return None;
        }
        let uses = self.uses(&with_kind(
            serde_json::to_value(job).unwrap_or_default(),
            "Job",
        ));
        if uses.is_empty() {
            return None;
        }
        let cron = job
            .metadata
            .owner_references
            .as_ref()
            .and_then(|o| o.iter().find(|r| r.kind == "CronJob"))
            .map(|r| r.name.clone());
        Some(Fixed {
            kind: "Job".into(),
            namespace: self.ns.into(),
            name: job.metadata.name.clone().unwrap_or_default(),
            secrets: uses.into_keys().collect(),
            reason: match cron {
                Some(c) => format!(
                    "running Job of CronJob {c}: it keeps the old value until it ends (the next run gets the new one)"
                ),
                None => "running Job: it keeps the old value until it ends".into(),
            },
        })
    }
}

fn with_kind(mut j: serde_json::Value, kind: &str) -> serde_json::Value {
    j["kind"] = serde_json::Value::String(kind.into());
    j
}

/// The pod-template annotation that records which content of `secret` the pods run.
/// Names longer than an annotation name allows (63) are hashed.
pub fn template_key(secret: &str) -> String {
    if secret.len() <= 63 {
        format!("{}{secret}", super::ANN_TEMPLATE_PREFIX)
    } else {
        use sha2::Digest;
        let h = sha2::Sha256::digest(secret.as_bytes());
        format!("{}{}", super::ANN_TEMPLATE_PREFIX, hex::encode(&h[..16]))
    }
}

/// Would a running pod see a new value without a restart? Only through a
/// plain (non-subPath) secret or projected volume; env, envFrom, subPath and
/// imagePullSecrets need a new pod.
pub fn needs_restart(refs: &[SecretRef]) -> bool {
    refs.is_empty()
        || refs.iter().any(|r| {
            !matches!(r.via, RefKind::SecretVolume | RefKind::ProjectedVolume) || r.sub_path_only
        })
}

/// Why an opted-out consumer stays on the old value (for the stale list).
pub fn stale_reason(refs: &[SecretRef]) -> String {
    let mut hows: Vec<String> = refs
        .iter()
        .filter(|r| {
            !matches!(r.via, RefKind::SecretVolume | RefKind::ProjectedVolume) || r.sub_path_only
        })
        .map(|r| {
            if r.sub_path_only {
                format!("{} mounted with subPath (never refreshes)", r.via)
            } else {
                r.via.to_string()
            }
        })
        .collect();
    hows.sort();
    hows.dedup();
    format!(
        "opted out of restarts ({}=false) and uses it via {}",
        ANN_RESTART,
        hows.join(", ")
    )
}

/// A label selector as the list API takes it.
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let vals = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({vals})", e.key),
            "NotIn" => format!("{} notin ({vals})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}
