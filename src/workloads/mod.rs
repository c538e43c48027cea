//! Which Secrets a workload uses, read from its pod spec. Shared by the
//! offline doctor (manifests), `ksec apply` and the controller (live objects),
//! so "uses this Secret" means the same thing everywhere.

use serde::Serialize;
use serde_json::Value as J;

/// How a pod reaches a Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub enum RefKind {
    ImagePullSecret,
    EnvSecretKeyRef,
    EnvFromSecretRef,
    SecretVolume,
    ProjectedVolume,
    ServiceAccountImagePullSecret,
    /// A Flux Kustomization's `spec.decryption.secretRef`.
    FluxDecryption,
    /// A HelmRelease's `spec.valuesFrom`.
    HelmValuesFrom,
    /// A chart value such as `existingSecret`.
    HelmExistingSecret,
}

impl std::fmt::Display for RefKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RefKind::ImagePullSecret => "imagePullSecrets",
            RefKind::EnvSecretKeyRef => "env secretKeyRef",
            RefKind::EnvFromSecretRef => "envFrom secretRef",
            RefKind::SecretVolume => "secret volume",
            RefKind::ProjectedVolume => "projected volume",
            RefKind::ServiceAccountImagePullSecret => "service account imagePullSecrets",
            RefKind::FluxDecryption => "Flux decryption.secretRef",
            RefKind::HelmValuesFrom => "HelmRelease valuesFrom",
            RefKind::HelmExistingSecret => "chart value existingSecret",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    pub secret: String,
    /// A specific key (env secretKeyRef, volume items); `None` = the whole Secret.
    pub key: Option<String>,
    pub optional: bool,
    pub via: RefKind,
    /// The mount is only reached through `subPath`, which never refreshes in a running pod.
    pub sub_path_only: bool,
}

/// A workload as far as Secrets are concerned.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub service_account: String,
    pub refs: Vec<SecretRef>,
}

impl Workload {
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    pub fn uses(&self, secret: &str) -> bool {
        self.refs.iter().any(|r| r.secret == secret)
    }
}

pub const WORKLOAD_KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
];

/// The pod spec inside a workload object (JSON form of the manifest).
pub fn pod_spec(obj: &J) -> Option<&J> {
    match obj.get("kind")?.as_str()? {
        "Pod" => obj.get("spec"),
        "CronJob" => obj.pointer("/spec/jobTemplate/spec/template/spec"),
        k if WORKLOAD_KINDS.contains(&k) => obj.pointer("/spec/template/spec"),
        _ => None,
    }
}

fn s(v: &J, p: &str) -> Option<String> {
    v.pointer(p).and_then(J::as_str).map(str::to_string)
}

fn flag(v: &J, p: &str) -> bool {
    v.pointer(p).and_then(J::as_bool).unwrap_or(false)
}

fn arr<'a>(v: &'a J, p: &str) -> impl Iterator<Item = &'a J> {
    v.pointer(p).and_then(J::as_array).into_iter().flatten()
}

/// A secret or projected-secret volume source: the whole Secret, or one
/// reference per listed `items` key.
fn push_volume_refs(
    out: &mut Vec<SecretRef>,
    secret: String,
    src: &J,
    via: RefKind,
    sub_path_only: bool,
) {
    let optional = flag(src, "/optional");
    let items: Vec<String> = arr(src, "/items").filter_map(|i| s(i, "/key")).collect();
    if items.is_empty() {
        out.push(SecretRef {
            secret,
            key: None,
            optional,
            via,
            sub_path_only,
        });
    } else {
        for k in items {
            out.push(SecretRef {
                secret: secret.clone(),
                key: Some(k),
                optional,
                via,
                sub_path_only,
            });
        }
    }
}

/// Every Secret reference in a pod spec, in a stable order.
pub fn secret_refs(spec: &J) -> Vec<SecretRef> {
    let mut out = Vec::new();
    for p in arr(spec, "/imagePullSecrets") {
        if let Some(n) = s(p, "/name") {
            out.push(SecretRef {
                secret: n,
                key: None,
                optional: false,
                via: RefKind::ImagePullSecret,
                sub_path_only: false,
            });
        }
    }
    let containers: Vec<&J> = arr(spec, "/initContainers")
        .chain(arr(spec, "/containers"))
        .chain(arr(spec, "/ephemeralContainers"))
        .collect();
    for c in &containers {
        for e in arr(c, "/env") {
            if let Some(n) = s(e, "/valueFrom/secretKeyRef/name") {
                out.push(SecretRef {
                    secret: n,
                    key: s(e, "/valueFrom/secretKeyRef/key"),
                    optional: flag(e, "/valueFrom/secretKeyRef/optional"),
                    via: RefKind::EnvSecretKeyRef,
                    sub_path_only: false,
                });
            }
        }
        for e in arr(c, "/envFrom") {
            if let Some(n) = s(e, "/secretRef/name") {
                out.push(SecretRef {
                    secret: n,
                    key: None,
                    optional: flag(e, "/secretRef/optional"),
                    via: RefKind::EnvFromSecretRef,
                    sub_path_only: false,
                });
            }
        }
    }
    for vol in arr(spec, "/volumes") {
        let vname = s(vol, "/name").unwrap_or_default();
        // A volume mounted only with subPath never sees updates.
        let mounts: Vec<&J> = containers
            .iter()
            .flat_map(|c| arr(c, "/volumeMounts"))
            .filter(|m| s(m, "/name").as_deref() == Some(&vname))
            .collect();
        let sub_path_only = !mounts.is_empty()
            && mounts
                .iter()
                .all(|m| m.get("subPath").is_some() || m.get("subPathExpr").is_some());
        if let Some(n) = s(vol, "/secret/secretName") {
            push_volume_refs(
                &mut out,
                n,
                &vol["secret"],
                RefKind::SecretVolume,
                sub_path_only,
            );
        }
        for src in arr(vol, "/projected/sources") {
            if let Some(n) = s(src, "/secret/name") {
                push_volume_refs(
                    &mut out,
                    n,
                    &src["secret"],
                    RefKind::ProjectedVolume,
                    sub_path_only,
                );
            }
        }
    }
    out
}

/// Reads a workload object; `default_ns` applies when the manifest has no namespace.
pub fn workload(obj: &J, default_ns: &str) -> Option<Workload> {
    let kind = obj.get("kind")?.as_str()?.to_string();
    if !WORKLOAD_KINDS.contains(&kind.as_str()) {
        return None;
    }
    let spec = pod_spec(obj)?;
    Some(Workload {
        namespace: s(obj, "/metadata/namespace").unwrap_or_else(|| default_ns.to_string()),
        name: s(obj, "/metadata/name")?,
        service_account: s(spec, "/serviceAccountName")
            .or_else(|| s(spec, "/serviceAccount"))
            .unwrap_or_else(|| "default".into()),
        refs: secret_refs(spec),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_reference_kind() {
        let obj: J = serde_json::json!({
            "kind": "CronJob", "metadata": {"name": "backup", "namespace": "prod"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "serviceAccountName": "backup-sa",
                "imagePullSecrets": [{"name": "pull"}],
                "containers": [{"name": "c",
                    "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                            {"name": "O", "valueFrom": {"secretKeyRef": {"name": "opt", "key": "k", "optional": true}}}],
                    "envFrom": [{"secretRef": {"name": "bulk"}}],
                    "volumeMounts": [{"name": "tls", "mountPath": "/tls/cert", "subPath": "cert"}]}],
                "volumes": [{"name": "tls", "secret": {"secretName": "tls", "items": [{"key": "cert", "path": "c"}]}},
                            {"name": "p", "projected": {"sources": [{"secret": {"name": "proj"}}]}}]
            }}}}}
        });
        let w = workload(&obj, "default").unwrap();
        assert_eq!(w.service_account, "backup-sa");
        let got: Vec<(String, Option<String>, bool, RefKind, bool)> = w
            .refs
            .iter()
            .map(|r| {
                (
                    r.secret.clone(),
                    r.key.clone(),
                    r.optional,
                    r.via,
                    r.sub_path_only,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("pull".into(), None, false, RefKind::ImagePullSecret, false),
                (
                    "db".into(),
                    Some("password".into()),
                    false,
                    RefKind::EnvSecretKeyRef,
                    false
                ),
                (
                    "opt".into(),
                    Some("k".into()),
                    true,
                    RefKind::EnvSecretKeyRef,
                    false
                ),
                ("bulk".into(), None, false, RefKind::EnvFromSecretRef, false),
                (
                    "tls".into(),
                    Some("cert".into()),
                    false,
                    RefKind::SecretVolume,
                    true
                ),
                ("proj".into(), None, false, RefKind::ProjectedVolume, false),
            ]
        );
    }
}
