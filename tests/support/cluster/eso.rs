//! External Secrets Operator, played by the tests: its ExternalSecret CRD
//! (served as it comes, objects checked by ESO's own validators), its
//! objects with the status ESO would report, and the Secrets it would write.

use kube::Api;
use serde_json::json;

use super::Cluster;

/// A minimal ExternalSecret CRD: ESO publishes no CRD YAML in any registry
/// this CI reaches, so the objects are checked against ESO's own schema
/// validators (`crate::support::export::eso_validate`) and served here as they come.
pub fn install_eso_crd(c: &Cluster) {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "externalsecrets.external-secrets.io"},
        "spec": {
            "group": "external-secrets.io", "scope": "Namespaced",
            "names": {"kind": "ExternalSecret", "plural": "externalsecrets", "singular": "externalsecret", "listKind": "ExternalSecretList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    });
    c.create(crd);
    let gvk = kube::core::GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret");
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, "externalsecrets");
    c.wait_for("the ExternalSecret CRD to be served", 30, || {
        c.block(
            Api::<kube::api::DynamicObject>::all_with(c.admin.clone(), &ar)
                .list(&Default::default()),
        )
        .is_ok()
    });
}

/// ESO plays itself: each object is written, then its status as ESO would report it.
pub fn put_external_secret(
    c: &Cluster,
    ns: &str,
    name: &str,
    refresh: &str,
    status: Option<serde_json::Value>,
) {
    let obj = json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "refreshInterval": refresh,
            "secretStoreRef": {"name": "vault-backend", "kind": "ClusterSecretStore"},
            "target": {"name": name, "creationPolicy": "Owner"},
            "data": [{"secretKey": "password", "remoteRef": {"key": format!("prod/{name}"), "property": "password"}}]
        }
    });
    if let Some(res) = crate::support::export::eso_validate(std::slice::from_ref(&obj)) {
        assert_eq!(
            res[0]["ok"], true,
            "ESO's schema rejects the test object: {}",
            res[0]
        );
    }
    c.create(obj);
    let Some(status) = status else { return };
    let gvk = kube::core::GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret");
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, "externalsecrets");
    let api = Api::<kube::api::DynamicObject>::namespaced_with(c.admin.clone(), ns, &ar);
    c.block(api.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"status": status})),
    ))
    .expect("write the ExternalSecret status");
}

/// The ExternalSecret's uid (for the ownerReference of the Secret ESO writes).
pub fn external_secret_uid(c: &Cluster, ns: &str, name: &str) -> String {
    let gvk = kube::core::GroupVersionKind::gvk("external-secrets.io", "v1", "ExternalSecret");
    let ar = kube::core::ApiResource::from_gvk_with_plural(&gvk, "externalsecrets");
    let api = Api::<kube::api::DynamicObject>::namespaced_with(c.admin.clone(), ns, &ar);
    c.block(api.get(name))
        .expect("get the ExternalSecret")
        .metadata
        .uid
        .expect("uid")
}

/// Writes the target Secret as ESO does (`creationPolicy: Owner`): owned by
/// the ExternalSecret, labelled as ESO-managed, with `data`.
pub fn write_target_secret(c: &Cluster, ns: &str, name: &str, data: &[(&str, &str)]) {
    let uid = external_secret_uid(c, ns, name);
    let data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(v);
            (k.to_string(), json!(b))
        })
        .collect();
    c.create(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns,
            "labels": {"reconcile.external-secrets.io/managed": "true"},
            "ownerReferences": [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "type": "Opaque",
        "data": data
    }));
}
