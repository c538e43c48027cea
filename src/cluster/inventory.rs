//! What ksec created, so `--prune` can delete exactly that and nothing else.
//!
//! Per namespace, a ConfigMap `ksec-inventory-<id>` lists the Secrets ksec
//! *created* (they did not exist before its first apply). A Secret is pruned
//! only if it is in that list, gone from the source, still labelled
//! `app.kubernetes.io/managed-by=ksec`, and its managedFields show ksec's
//! apply. Secrets ksec adopted (existing before) are never deleted.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use serde::Serialize;
use serde_json::json;

use super::{ClusterError, FIELD_MANAGER, LABEL_INVENTORY, LABEL_MANAGED_BY, MANAGED_BY_VALUE};

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub namespace: String,
    pub id: String,
    /// Secrets ksec created in this namespace (candidates for prune).
    pub created: BTreeSet<String>,
    pub exists: bool,
}

/// An inventory id must fit a ConfigMap name and a label value.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

pub fn configmap_name(id: &str) -> String {
    format!("ksec-inventory-{id}")
}

pub async fn read(client: &kube::Client, ns: &str, id: &str) -> Result<Inventory, ClusterError> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(&configmap_name(id))
        .await
        .map_err(|e| ClusterError::from_kube(format!("read inventory in {ns}"), e))?;
    let created = cm
        .as_ref()
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get("secrets"))
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Inventory {
        namespace: ns.into(),
        id: id.into(),
        created,
        exists: cm.is_some(),
    })
}

/// Writes the inventory (server-side apply, field manager `ksec`).
pub async fn write(client: &kube::Client, inv: &Inventory) -> Result<(), ClusterError> {
    let mut list: Vec<&str> = inv.created.iter().map(String::as_str).collect();
    list.sort();
    let mut text = list.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(&inv.id), "namespace": inv.namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY_VALUE, LABEL_INVENTORY: inv.id},
        },
        "data": {"secrets": text},
    });
    Api::<ConfigMap>::namespaced(client.clone(), &inv.namespace)
        .patch(
            &configmap_name(&inv.id),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&cm),
        )
        .await
        .map_err(|e| ClusterError::from_kube(format!("write inventory in {}", inv.namespace), e))?;
    Ok(())
}

/// Namespaces holding an inventory of `id`; `None` when the credentials may not list cluster-wide.
pub async fn namespaces(
    client: &kube::Client,
    id: &str,
) -> Result<Option<BTreeSet<String>>, ClusterError> {
    let lp = ListParams::default().labels(&format!("{LABEL_INVENTORY}={id}"));
    match Api::<ConfigMap>::all(client.clone()).list(&lp).await {
        Ok(l) => Ok(Some(
            l.items
                .into_iter()
                .filter_map(|c| c.metadata.namespace)
                .collect(),
        )),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
        Err(e) => Err(ClusterError::from_kube("list inventories", e)),
    }
}

/// Did ksec's server-side apply write this object?
pub fn applied_by_ksec(meta: &ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(FIELD_MANAGER) && m.operation.as_deref() == Some("Apply")
    })
}

pub fn labelled_ksec(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l: &BTreeMap<String, String>| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PruneResult {
    Pruned,
    /// Already deleted by someone else.
    Gone,
    /// Left in place: no longer ksec's (label removed or another writer took it over).
    NotOurs(String),
}

/// Deletes one Secret if it is still ksec's (preconditions: uid and resourceVersion).
pub async fn prune_one(
    client: &kube::Client,
    ns: &str,
    name: &str,
    dry_run: bool,
) -> Result<PruneResult, ClusterError> {
    let api = Api::<Secret>::namespaced(client.clone(), ns);
    let Some(s) = api
        .get_metadata_opt(name)
        .await
        .map_err(|e| ClusterError::from_kube(format!("get secret {ns}/{name}"), e))?
    else {
        return Ok(PruneResult::Gone);
    };
    if !labelled_ksec(&s.metadata) {
        return Ok(PruneResult::NotOurs(format!(
            "label {LABEL_MANAGED_BY}={MANAGED_BY_VALUE} was removed"
        )));
    }
    if !applied_by_ksec(&s.metadata) {
        return Ok(PruneResult::NotOurs(
            "ksec no longer manages any of its fields".into(),
        ));
    }
    let dp = DeleteParams {
        dry_run,
        preconditions: Some(Preconditions {
            uid: s.metadata.uid.clone(),
            resource_version: s.metadata.resource_version.clone(),
        }),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(PruneResult::Pruned),
        Err(kube::Error::Api(st)) if st.code == 404 => Ok(PruneResult::Gone),
        Err(kube::Error::Api(st)) if st.code == 409 => Ok(PruneResult::NotOurs(
            "changed while pruning (precondition failed); left in place".into(),
        )),
        Err(e) => Err(ClusterError::from_kube(
            format!("delete secret {ns}/{name}"),
            e,
        )),
    }
}
