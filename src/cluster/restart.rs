//! Rolling a workload: one merge patch of its pod-template annotations
//! (`secret.ksec.io/<secret>: <content hash>`), so several Secrets changing
//! together give one rollout, and undoing it restores the previous template.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::consumers::WorkloadKind;
use super::{ClusterError, FIELD_MANAGER};

/// The annotations a restart set, and what they were before (for rollback).
#[derive(Debug, Clone)]
pub struct Restart {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub new: BTreeMap<String, String>,
    /// `None`: the annotation was absent.
    pub previous: BTreeMap<String, Option<String>>,
    /// metadata.generation after the patch (verify waits for it to be observed).
    pub generation: Option<i64>,
}

async fn patch_template(
    client: &kube::Client,
    kind: WorkloadKind,
    ns: &str,
    name: &str,
    annotations: serde_json::Value,
    dry_run: bool,
) -> Result<Option<i64>, ClusterError> {
    let body = json!({"spec": {"template": {"metadata": {"annotations": annotations}}}});
    let pp = PatchParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let patch = Patch::Merge(&body);
    let what = format!("patch {kind} {ns}/{name}");
    let generation = match kind {
        WorkloadKind::Deployment => {
            Api::<Deployment>::namespaced(client.clone(), ns)
                .patch(name, &pp, &patch)
                .await
                .map_err(|e| ClusterError::from_kube(what, e))?
                .metadata
                .generation
        }
        WorkloadKind::StatefulSet => {
            Api::<StatefulSet>::namespaced(client.clone(), ns)
                .patch(name, &pp, &patch)
                .await
                .map_err(|e| ClusterError::from_kube(what, e))?
                .metadata
                .generation
        }
        WorkloadKind::DaemonSet => {
            Api::<DaemonSet>::namespaced(client.clone(), ns)
                .patch(name, &pp, &patch)
                .await
                .map_err(|e| ClusterError::from_kube(what, e))?
                .metadata
                .generation
        }
    };
    Ok(generation)
}

/// Sets the new hashes on the pod template (one patch, one rollout).
pub async fn restart(
    client: &kube::Client,
    kind: WorkloadKind,
    ns: &str,
    name: &str,
    current: &BTreeMap<String, String>,
    new: BTreeMap<String, String>,
    dry_run: bool,
) -> Result<Restart, ClusterError> {
    let previous = new
        .keys()
        .map(|k| (k.clone(), current.get(k).cloned()))
        .collect();
    let ann = serde_json::to_value(&new).unwrap_or_default();
    let generation = patch_template(client, kind, ns, name, ann, dry_run).await?;
    Ok(Restart {
        kind,
        namespace: ns.into(),
        name: name.into(),
        new,
        previous,
        generation,
    })
}

/// Puts the previous annotations back: the template equals the old one
/// again, so the controller scales the old ReplicaSet/revision back up
/// (what `kubectl rollout undo` does for this change). The Secret keeps its new value.
pub async fn rollback(client: &kube::Client, r: &Restart) -> Result<(), ClusterError> {
    let ann = serde_json::to_value(&r.previous).unwrap_or_default();
    patch_template(client, r.kind, &r.namespace, &r.name, ann, false).await?;
    Ok(())
}
