//! Approval gates: in an environment whose `recipients/<env>.yaml` says
//! `rotation: {approval: required}`, a content change of a Secret reaches
//! no pod until a `SecretApproval` names that Secret and that exact content
//! hash. The approval is an object, so who may approve is decided by
//! Kubernetes RBAC (`ksec rbac` binds the environment's `owners`), not by
//! convention; the API server's audit log records who created it.
//!
//! Both the apply engine (`ksec apply`, the controller's sources) and the
//! watched-Secret rotation handler ask the same [`Gate`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kube::CustomResource;
use kube::api::{Api, ListParams};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ClusterError;
use super::diff::KeyDiff;
use crate::recipients::RecipientsDir;

/// Approval of one content hash of one Secret, in the Secret's namespace.
#[derive(CustomResource, Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ksec.io",
    version = "v1alpha1",
    kind = "SecretApproval",
    namespaced,
    category = "ksec",
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secret"}"#,
    printcolumn = r#"{"name":"Hash","type":"string","jsonPath":".spec.contentHash"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SecretApprovalSpec {
    /// The Secret's name (same namespace).
    pub secret: String,
    /// The salted content hash being approved, as ksec printed it (never a value).
    pub content_hash: String,
    /// Why (ticket, change number); shown by `kubectl get secretapprovals`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who must approve rotations in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Approvers {
    pub env: String,
    pub owners: Vec<String>,
}

impl std::fmt::Display for Approvers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.owners.is_empty() {
            write!(
                f,
                "the holders of Role ksec-secret-approver ({} names no owners)",
                self.env
            )
        } else {
            write!(f, "{} (environment {})", self.owners.join(", "), self.env)
        }
    }
}

/// A change held back for want of an approval. Names and hashes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Awaiting {
    pub namespace: String,
    pub name: String,
    pub content_hash: String,
    pub keys: KeyDiff,
    pub approvers: Approvers,
}

impl std::fmt::Display for Awaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secret {}/{}: the content change ({}) awaits approval of content hash {} by {}; approve with: {}",
            self.namespace,
            self.name,
            if self.keys.is_empty() {
                "rollout to a new value".to_string()
            } else {
                format!("keys {}", self.keys.summary())
            },
            self.content_hash,
            self.approvers,
            self.approve_command()
        )
    }
}

impl Awaiting {
    /// The command an approver runs.
    pub fn approve_command(&self) -> String {
        format!(
            "ksec approve -n {} {} --hash {}",
            self.namespace, self.name, self.content_hash
        )
    }
}

/// On a Namespace, `required` gates rotations there whatever the
/// repository's `recipients/` says: a writer of the repository cannot drop
/// it in the same commit as a new value (Pod Security Admission's idea).
pub const LABEL_NAMESPACE_GATE: &str = "ksec.io/rotation-approval";

/// Which namespaces need approvals: those of environments that say so
/// (`rotation: {approval: required}`) and those labelled
/// [`LABEL_NAMESPACE_GATE`]`=required`.
#[derive(Clone, Default)]
pub struct Gate {
    dir: Option<Arc<RecipientsDir>>,
    /// Set once the caller was refused `get` on namespaces: the label is
    /// not read again (a namespaced install cannot be granted it).
    no_label_access: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("dir", &self.dir.as_ref().map(|d| &d.dir))
            .finish()
    }
}

impl Gate {
    /// `read_labels`: also read the namespaces' [`LABEL_NAMESPACE_GATE`]
    /// (needs `get` on namespaces, which a namespaced install cannot have).
    pub fn new(dir: Option<&RecipientsDir>, read_labels: bool) -> Gate {
        Gate {
            dir: dir.map(|d| Arc::new(d.clone())),
            no_label_access: Arc::new((!read_labels).into()),
        }
    }

    /// The approvers `recipients/` names for `ns`, when its environment
    /// requires approval. A namespace claimed by two environments is gated
    /// if either gates it.
    fn declared(&self, ns: &str) -> Option<Approvers> {
        let env = self
            .dir
            .as_ref()?
            .envs
            .iter()
            .find(|e| e.approval_required() && e.owns_namespace(ns))?;
        Some(Approvers {
            env: env.name.clone(),
            owners: env.owners.clone(),
        })
    }

    /// The owners `recipients/` names for `ns` (gated or not).
    fn owners(&self, ns: &str) -> Approvers {
        let env = self
            .dir
            .as_ref()
            .and_then(|d| d.envs.iter().find(|e| e.owns_namespace(ns)));
        Approvers {
            env: env.map_or_else(|| format!("namespace {ns}"), |e| e.name.clone()),
            owners: env.map(|e| e.owners.clone()).unwrap_or_default(),
        }
    }

    /// Who must approve rotations in each of `namespaces` (absent: not
    /// gated). The namespace label is read with the caller's credentials; a
    /// caller that may not read Namespaces gets the repository's word only,
    /// and a warning.
    pub async fn approvers<'a>(
        &self,
        client: &kube::Client,
        namespaces: impl IntoIterator<Item = &'a str>,
    ) -> BTreeMap<String, Approvers> {
        let mut out = BTreeMap::new();
        let unique: BTreeSet<&str> = namespaces.into_iter().collect();
        for ns in unique {
            let gated = match self.declared(ns) {
                Some(a) => Some(a),
                None => self.labelled(client, ns).await.then(|| self.owners(ns)),
            };
            if let Some(a) = gated {
                out.insert(ns.to_string(), a);
            }
        }
        out
    }

    /// Does Namespace `ns` carry [`LABEL_NAMESPACE_GATE`]`=required`?
    async fn labelled(&self, client: &kube::Client, ns: &str) -> bool {
        use k8s_openapi::api::core::v1::Namespace;
        use std::sync::atomic::Ordering;
        if self.no_label_access.load(Ordering::Relaxed) {
            return false;
        }
        match Api::<Namespace>::all(client.clone()).get_opt(ns).await {
            Ok(n) => n
                .and_then(|n| n.metadata.labels)
                .and_then(|l| l.get(LABEL_NAMESPACE_GATE).cloned())
                .is_some_and(|v| v == "required"),
            Err(kube::Error::Api(e)) if e.code == 403 => {
                self.no_label_access.store(true, Ordering::Relaxed);
                tracing::warn!(
                    "this identity may not get namespaces: the {LABEL_NAMESPACE_GATE} label is not read, recipients/ alone decides which rotations need approval"
                );
                false
            }
            Err(e) => {
                tracing::warn!(namespace = ns, error = %e, "cannot read the namespace's {LABEL_NAMESPACE_GATE} label; recipients/ alone decides this time");
                false
            }
        }
    }
}

/// The approved (secret, content hash) pairs, by namespace.
#[derive(Debug, Default)]
pub struct Approved(BTreeMap<String, BTreeSet<(String, String)>>);

impl Approved {
    /// Is this content hash of Secret `ns/name` approved?
    pub fn covers(&self, ns: &str, name: &str, hash: &str) -> bool {
        self.0
            .get(ns)
            .is_some_and(|a| a.contains(&(name.to_string(), hash.to_string())))
    }
}

/// The approved (secret, content hash) pairs of one namespace. A missing
/// CRD reads as "nothing approved" (the gate then holds everything, which
/// is the safe side) but says so in the log.
async fn approved(
    client: &kube::Client,
    ns: &str,
) -> Result<BTreeSet<(String, String)>, ClusterError> {
    let api: Api<SecretApproval> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list
            .items
            .into_iter()
            .map(|a| (a.spec.secret, a.spec.content_hash))
            .collect()),
        Err(e) => {
            let err = ClusterError::from_kube(format!("list secretapprovals.ksec.io in {ns}"), e);
            if err.code() == Some(404) {
                tracing::warn!(
                    namespace = ns,
                    "the SecretApproval CRD is not installed: no rotation in a gated namespace can be approved (ksec controller crd | kubectl apply -f -)"
                );
                return Ok(BTreeSet::new());
            }
            Err(err)
        }
    }
}

/// The approvals of every namespace in `namespaces`, read once each.
pub async fn approved_in(
    client: &kube::Client,
    namespaces: impl IntoIterator<Item = &str>,
) -> Result<Approved, ClusterError> {
    let mut out = BTreeMap::new();
    for ns in namespaces {
        if !out.contains_key(ns) {
            out.insert(ns.to_string(), approved(client, ns).await?);
        }
    }
    Ok(Approved(out))
}

/// Creates the approval of `hash` for Secret `ns/secret` (as the caller:
/// RBAC decides whether they may). Approving twice is not an error.
/// Returns the approval object's name.
pub async fn approve(
    client: &kube::Client,
    ns: &str,
    secret: &str,
    hash: &str,
    reason: Option<String>,
) -> Result<String, ClusterError> {
    if hash.len() < 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ClusterError::Invalid(format!(
            "--hash {hash:?}: give the content hash ksec printed (hex)"
        )));
    }
    let name = format!("{secret}-{}", &hash[..hash.len().min(12)]);
    let obj = SecretApproval::new(
        &name,
        SecretApprovalSpec {
            secret: secret.into(),
            content_hash: hash.into(),
            reason,
        },
    );
    let api: Api<SecretApproval> = Api::namespaced(client.clone(), ns);
    let pp = kube::api::PostParams {
        field_manager: Some(super::FIELD_MANAGER.into()),
        ..Default::default()
    };
    let what = format!("create secretapproval {ns}/{name}");
    match api.create(&pp, &obj).await {
        Ok(_) => Ok(name),
        // Already there: fine if it approves the same thing (the name holds
        // only 12 hex digits of the hash).
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let have = api
                .get(&name)
                .await
                .map_err(|e| ClusterError::from_kube(what.clone(), e))?;
            if have.spec.secret == secret && have.spec.content_hash == hash {
                Ok(name)
            } else {
                Err(ClusterError::Invalid(format!(
                    "{what}: an approval of that name approves something else (Secret {}, hash {})",
                    have.spec.secret, have.spec.content_hash
                )))
            }
        }
        Err(e) => Err(ClusterError::from_kube(what, e)),
    }
}
