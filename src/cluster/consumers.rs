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
    let lp = ListParams::default();
    let listed = match cached {
        Some(source) => source(ns),
        None => {
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
            Listed {
                deployments: deps.items,
                statefulsets: stss.items,
                daemonsets: dss.items,
            }
        }
    };
    // From a cache, a namespace without workloads has no consumers: no request at all.
    let none = listed.deployments.is_empty()
        && listed.statefulsets.is_empty()
        && listed.daemonsets.is_empty();
    if cached.is_some() && none && !include_fixed {
        return Ok(NamespaceConsumers::default());
    }
    let sa_pulls: BTreeMap<String, Vec<String>> = if with_service_accounts || include_fixed {
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .list(&lp)
            .await
            .map_err(kerr(format!("list serviceaccounts in {ns}")))?
            .items
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
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut out = NamespaceConsumers::default();
    let mut push = |kind: WorkloadKind,
                    meta: &ObjectMeta,
                    json: serde_json::Value,
                    tmpl: Option<&ObjectMeta>| {
        let ann: BTreeMap<String, String> = tmpl
            .and_then(|m| m.annotations.clone())
            .map(|a| a.into_iter().collect())
            .unwrap_or_default();
        let mut uses = interesting(refs_of(&json, ns, &sa_pulls), secrets);
        // A template we annotated earlier stays ours even when references were
        // only reachable through the service account (not listed without include_fixed).
        for s in secrets {
            if ann.contains_key(&template_key(s)) {
                uses.entry(s.clone()).or_default();
            }
        }
        if uses.is_empty() {
            return;
        }
        out.workloads.push(Consumer {
            kind,
            namespace: ns.to_string(),
            name: meta.name.clone().unwrap_or_default(),
            opted_out: opted_out(meta),
            template_annotations: ann,
            uses,
        });
    };
    for d in &listed.deployments {
        let j = serde_json::to_value(d).unwrap_or_default();
        let t = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
        push(
            WorkloadKind::Deployment,
            &d.metadata,
            with_kind(j, "Deployment"),
            t,
        );
    }
    for d in &listed.statefulsets {
        let j = serde_json::to_value(d).unwrap_or_default();
        let t = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
        push(
            WorkloadKind::StatefulSet,
            &d.metadata,
            with_kind(j, "StatefulSet"),
            t,
        );
    }
    for d in &listed.daemonsets {
        let j = serde_json::to_value(d).unwrap_or_default();
        let t = d.spec.as_ref().and_then(|s| s.template.metadata.as_ref());
        push(
            WorkloadKind::DaemonSet,
            &d.metadata,
            with_kind(j, "DaemonSet"),
            t,
        );
    }
    if include_fixed {
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
        for p in &pods.items {
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
                continue;
            }
            let j = with_kind(serde_json::to_value(p).unwrap_or_default(), "Pod");
            let uses = interesting(refs_of(&j, ns, &sa_pulls), secrets);
            if !uses.is_empty() {
                out.fixed.push(Fixed {
                    kind: "Pod".into(),
                    namespace: ns.into(),
                    name: p.metadata.name.clone().unwrap_or_default(),
                    secrets: uses.into_keys().collect(),
                    reason: "bare Pod: no controller can roll it; delete and recreate it".into(),
                });
            }
        }
        for job in &jobs.items {
            let active = job.status.as_ref().and_then(|s| s.active).unwrap_or(0);
            if active == 0 {
                continue;
            }
            let j = with_kind(serde_json::to_value(job).unwrap_or_default(), "Job");
            let uses = interesting(refs_of(&j, ns, &sa_pulls), secrets);
            if uses.is_empty() {
                continue;
            }
            let cron = job
                .metadata
                .owner_references
                .as_ref()
                .and_then(|o| o.iter().find(|r| r.kind == "CronJob"))
                .map(|r| r.name.clone());
            out.fixed.push(Fixed {
                kind: "Job".into(),
                namespace: ns.into(),
                name: job.metadata.name.clone().unwrap_or_default(),
                secrets: uses.into_keys().collect(),
                reason: match cron {
                    Some(c) => format!(
                        "running Job of CronJob {c}: it keeps the old value until it ends (the next run gets the new one)"
                    ),
                    None => "running Job: it keeps the old value until it ends".into(),
                },
            });
        }
    }
    Ok(out)
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
