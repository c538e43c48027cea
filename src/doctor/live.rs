//! `ksec doctor --cluster`: the same reference checks against live
//! namespaces (read-only), plus what only a cluster can show: pods failing
//! on a missing Secret or key, and consumers still running an old content hash.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value as J;

use super::inventory::Inventory;
use super::{Check, Finding};
use crate::cluster::{ANN_CONTENT_HASH, ClusterError};
use crate::recipients::RecipientsDir;

/// (group, version, kind, plural); CronJob is batch/v1beta1 on older servers.
const KINDS: [(&str, &str, &str, &str); 8] = [
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
    ("batch", "v1beta1", "CronJob", "cronjobs"),
    ("", "v1", "Pod", "pods"),
];

async fn list(
    client: &kube::Client,
    ns: &str,
    g: &str,
    v: &str,
    k: &str,
    plural: &str,
) -> Result<Vec<J>, ClusterError> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    match api.list(&ListParams::default()).await {
        Ok(l) => Ok(l
            .items
            .into_iter()
            .map(|o| {
                let mut j = serde_json::to_value(&o).unwrap_or(J::Null);
                j["kind"] = J::String(k.to_string());
                j
            })
            .collect()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(vec![]),
        Err(e) => Err(ClusterError::from_kube(format!("list {plural} in {ns}"), e)),
    }
}

/// Which namespaces to inspect: explicit ones, else those of the recipients
/// environments that exist in the cluster.
pub async fn namespaces(
    client: &kube::Client,
    explicit: &[String],
    dir: Option<&RecipientsDir>,
    env: Option<&str>,
) -> Result<Vec<String>, ClusterError> {
    if !explicit.is_empty() {
        return Ok(explicit.to_vec());
    }
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let all = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ClusterError::from_kube("list namespaces", e))?;
    let mut out = Vec::new();
    for n in all.items.into_iter().filter_map(|n| n.metadata.name) {
        let owned = match dir {
            Some(d) => d
                .env_for_namespace(&n)
                .ok()
                .flatten()
                .is_some_and(|e| env.is_none_or(|x| x == e.name)),
            None => !n.starts_with("kube-"),
        };
        if owned {
            out.push(n);
        }
    }
    Ok(out)
}

/// Reads the namespaces and returns every finding. Secret values are read by
/// the list call (the API has no keys-only view) and dropped at once: only
/// key names and the content-hash annotation are kept.
pub async fn check(
    client: &kube::Client,
    nss: &[String],
    dir: Option<&RecipientsDir>,
) -> Result<Vec<Finding>, ClusterError> {
    let mut inv = Inventory::default();
    let mut pods: Vec<J> = Vec::new();
    let mut hashes: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut out = Vec::new();
    for ns in nss {
        let where_ = PathBuf::from(format!("cluster:{ns}"));
        let sapi: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), ns);
        for s in sapi
            .list(&ListParams::default())
            .await
            .map_err(|e| ClusterError::from_kube(format!("list secrets in {ns}"), e))?
            .items
        {
            let name = s.metadata.name.clone().unwrap_or_default();
            if let Some(h) = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_CONTENT_HASH))
            {
                hashes.insert((ns.clone(), name.clone()), h.clone());
            }
            let keys: serde_json::Map<String, J> = s
                .data
                .iter()
                .flatten()
                .map(|(k, _)| (k.clone(), J::String(String::new())))
                .collect();
            let obj = serde_json::json!({"kind": "Secret", "metadata": {"name": name, "namespace": ns}, "data": keys});
            inv.add_object(&where_, 0, &obj, None, ns);
        }
        let mut seen_cronjob = false;
        for (g, v, k, plural) in KINDS {
            if k == "CronJob" && seen_cronjob {
                continue;
            }
            let objs = list(client, ns, g, v, k, plural).await?;
            if k == "CronJob" && !objs.is_empty() {
                seen_cronjob = true;
            }
            for o in objs {
                if k == "Pod" {
                    pods.push(o.clone());
                    // Owned pods are judged through their workload.
                    if o.pointer("/metadata/ownerReferences")
                        .and_then(J::as_array)
                        .is_some_and(|a| !a.is_empty())
                    {
                        continue;
                    }
                }
                inv.add_object(&where_, 0, &o, None, ns);
            }
        }
    }
    super::references(&inv, dir, true, &mut out);
    let env_of = |ns: &str| {
        dir.and_then(|d| d.env_for_namespace(ns).ok().flatten())
            .map(|e| e.name.clone())
            .unwrap_or_else(|| "-".into())
    };
    for p in &pods {
        let ns = p
            .pointer("/metadata/namespace")
            .and_then(J::as_str)
            .unwrap_or("")
            .to_string();
        let name = p
            .pointer("/metadata/name")
            .and_then(J::as_str)
            .unwrap_or("")
            .to_string();
        let statuses = p
            .pointer("/status/containerStatuses")
            .and_then(J::as_array)
            .into_iter()
            .flatten()
            .chain(
                p.pointer("/status/initContainerStatuses")
                    .and_then(J::as_array)
                    .into_iter()
                    .flatten(),
            );
        for cs in statuses {
            let reason = cs
                .pointer("/state/waiting/reason")
                .and_then(J::as_str)
                .unwrap_or("");
            if matches!(
                reason,
                "CreateContainerConfigError" | "ImagePullBackOff" | "ErrImagePull"
            ) {
                let spec = p.get("spec").cloned().unwrap_or(J::Null);
                let refs = crate::workloads::secret_refs(&spec);
                let missing: Vec<String> = refs
                    .iter()
                    .filter(|r| !r.optional)
                    .filter(|r| match inv.secret(&ns, &r.secret) {
                        None => true,
                        Some(s) => r.key.as_ref().is_some_and(|k| !s.keys.contains(k)),
                    })
                    .map(|r| match &r.key {
                        Some(k) => format!("{}[{k}]", r.secret),
                        None => r.secret.clone(),
                    })
                    .collect();
                if missing.is_empty() && reason == "CreateContainerConfigError" {
                    continue;
                }
                out.push(Finding {
                    severity: Check::FailingPod.default_severity(),
                    check: Check::FailingPod,
                    environment: env_of(&ns),
                    namespace: ns.clone(),
                    object: format!("Pod/{name}"),
                    file: None,
                    message: format!(
                        "container {} is {reason}{}",
                        cs.get("name").and_then(J::as_str).unwrap_or("?"),
                        if missing.is_empty() { String::new() } else { format!("; missing Secret or key: {}", missing.join(", ")) }
                    ),
                    fix: (!missing.is_empty()).then(|| format!("add the Secret to the {} tree, `ksec encrypt -i FILE`, `ksec apply FILE`", env_of(&ns))),
                });
                break;
            }
        }
        // Pods whose recorded content hash differs from the Secret's current one.
        let anns = p.pointer("/metadata/annotations").and_then(J::as_object);
        for r in crate::workloads::secret_refs(p.get("spec").unwrap_or(&J::Null)) {
            let (Some(cur), Some(anns)) = (hashes.get(&(ns.clone(), r.secret.clone())), anns)
            else {
                continue;
            };
            let key = crate::cluster::consumers::template_key(&r.secret);
            if let Some(running) = anns.get(&key).and_then(J::as_str) {
                if running != cur {
                    out.push(Finding {
                        severity: Check::StaleConsumer.default_severity(),
                        check: Check::StaleConsumer,
                        environment: env_of(&ns),
                        namespace: ns.clone(),
                        object: format!("Pod/{name}"),
                        file: None,
                        message: format!("runs an old content of Secret {:?} (hash {running}, current {cur})", r.secret),
                        fix: Some(format!("ksec apply --env {} FILE  (restarts the consumers and verifies the rollout)", env_of(&ns))),
                    });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
