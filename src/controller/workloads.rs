//! Caches of the workloads in the controller's namespaces (Deployments,
//! StatefulSets, DaemonSets, managed fields dropped), and from them the
//! consumers that may still run an old content hash of a managed Secret
//! (`ksec_controller_stale_consumers`). Of Secrets, only the controller's
//! own (label selector) are cached, with their values replaced by digests;
//! other Secrets are never watched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::metrics::{Managed, SecretLabels};
use crate::cluster::consumers::{Listed, WorkloadSource, template_key};
use crate::cluster::verify;

/// Reflector stores of the workloads in every watch scope.
#[derive(Default, Clone)]
pub struct Workloads {
    deployments: Vec<Store<Deployment>>,
    statefulsets: Vec<Store<StatefulSet>>,
    daemonsets: Vec<Store<DaemonSet>>,
}

/// Starts a watch-backed cache of `api` (with backoff; it re-lists on 410 Gone).
fn cache<K>(api: Api<K>, what: &'static str) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    // A consistent first list (not the API server's possibly lagging watch
    // cache): a consumer created just before the controller started must be
    // in the cache before the first sync looks for it.
    let cfg = watcher::Config::default().list_semantic(watcher::ListSemantic::MostRecent);
    let stream = watcher(api, cfg)
        .default_backoff()
        .modify(|o: &mut K| o.managed_fields_mut().clear());
    let stream = reflector::reflector(writer, stream);
    tokio::spawn(async move {
        stream
            .for_each(|r| async move {
                if let Err(e) = r {
                    tracing::warn!(error = %e, kind = what, "workload watch");
                }
            })
            .await;
    });
    reader
}

impl Workloads {
    /// One cache per kind and scope (`None`: cluster-wide).
    pub fn start(client: &kube::Client, scopes: &[Option<String>]) -> Workloads {
        let mut w = Workloads::default();
        for s in scopes {
            let c = client.clone();
            match s {
                Some(ns) => {
                    w.deployments
                        .push(cache(Api::namespaced(c.clone(), ns), "Deployment"));
                    w.statefulsets
                        .push(cache(Api::namespaced(c.clone(), ns), "StatefulSet"));
                    w.daemonsets
                        .push(cache(Api::namespaced(c, ns), "DaemonSet"));
                }
                None => {
                    w.deployments.push(cache(Api::all(c.clone()), "Deployment"));
                    w.statefulsets
                        .push(cache(Api::all(c.clone()), "StatefulSet"));
                    w.daemonsets.push(cache(Api::all(c), "DaemonSet"));
                }
            }
        }
        w
    }

    /// Waits until every cache has listed once.
    pub async fn wait_until_ready(&self) {
        for s in &self.deployments {
            wait(s).await;
        }
        for s in &self.statefulsets {
            wait(s).await;
        }
        for s in &self.daemonsets {
            wait(s).await;
        }
    }

    /// Lookups of one namespace's workloads for the apply engine.
    pub fn source(&self) -> WorkloadSource {
        let w = self.clone();
        Arc::new(move |ns: &str| {
            fn of<K: Resource<DynamicType = ()> + Clone>(stores: &[Store<K>], ns: &str) -> Vec<K> {
                stores
                    .iter()
                    .flat_map(|s| s.state())
                    .filter(|o| o.meta().namespace.as_deref() == Some(ns))
                    .map(|o| (*o).clone())
                    .collect()
            }
            Listed {
                deployments: of(&w.deployments, ns),
                statefulsets: of(&w.statefulsets, ns),
                daemonsets: of(&w.daemonsets, ns),
            }
        })
    }

    /// Per managed Secret, the workloads in its namespace that use it (pod
    /// spec reference, or a ksec template annotation for it) and either carry
    /// another content hash on their pod template, or carry the current one
    /// but have not finished rolling out to it.
    pub fn stale(&self, managed: &[Managed]) -> BTreeMap<SecretLabels, i64> {
        let mut by_ns: BTreeMap<&str, Vec<&Managed>> = BTreeMap::new();
        for m in managed {
            by_ns.entry(m.namespace.as_str()).or_default().push(m);
        }
        let mut out = BTreeMap::new();
        let mut visit = |ns: Option<String>, tmpl: Option<&PodTemplateSpec>, done: bool| {
            let Some(list) = ns.as_deref().and_then(|ns| by_ns.get(ns)) else {
                return;
            };
            let Some(tmpl) = tmpl else { return };
            let ann = tmpl.metadata.as_ref().and_then(|m| m.annotations.as_ref());
            let mut refs: Option<BTreeSet<String>> = None;
            for m in list {
                let current = ann.and_then(|a| a.get(&template_key(&m.secret)));
                let uses = current.is_some()
                    || refs
                        .get_or_insert_with(|| referenced(tmpl))
                        .contains(&m.secret);
                let stale = match current {
                    Some(h) => *h != m.content_hash || !done,
                    // Never restarted by ksec: its pods started after the Secret.
                    None => false,
                };
                if uses && stale {
                    *out.entry(SecretLabels {
                        namespace: m.namespace.clone(),
                        secret: m.secret.clone(),
                    })
                    .or_insert(0) += 1;
                }
            }
        };
        for s in &self.deployments {
            for d in s.state() {
                let done = verify::deployment_progress(&d, generation(&*d)).done;
                visit(d.namespace(), d.spec.as_ref().map(|s| &s.template), done);
            }
        }
        for s in &self.statefulsets {
            for d in s.state() {
                let done = verify::statefulset_progress(&d, generation(&*d)).done;
                visit(d.namespace(), d.spec.as_ref().map(|s| &s.template), done);
            }
        }
        for s in &self.daemonsets {
            for d in s.state() {
                let done = verify::daemonset_progress(&d, generation(&*d)).done;
                visit(d.namespace(), d.spec.as_ref().map(|s| &s.template), done);
            }
        }
        out
    }
}

/// The controller's own Secrets, as stored by the reflectors whose events
/// trigger their reconciles (so a reconcile never sees an older copy than
/// the event that woke it). Values are SHA-256 digests: compare them with
/// [`digests`]. No plaintext is cached.
#[derive(Default, Clone)]
pub struct OwnSecrets(Vec<Store<Secret>>);

impl OwnSecrets {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        let r = ObjectRef::new(name).within(namespace);
        self.0.iter().find_map(|s| s.get(&r))
    }

    /// A reflected watch of the Secrets labelled `label` in `api`'s scope,
    /// stored here; its items (also deletions) are the reconcile triggers.
    pub fn watch(
        &mut self,
        api: Api<Secret>,
        label: &str,
    ) -> impl futures_util::Stream<Item = Result<Secret, watcher::Error>> + Send + 'static {
        let (reader, writer) = reflector::store();
        self.0.push(reader);
        watcher(api, watcher::Config::default().labels(label))
            .default_backoff()
            .modify(|s: &mut Secret| {
                s.managed_fields_mut().clear();
                s.string_data = None;
                for v in s.data.iter_mut().flat_map(|d| d.values_mut()) {
                    v.0 = Sha256::digest(&v.0).to_vec();
                }
            })
            .reflect(writer)
            .touched_objects()
    }
}

/// Secret data as [`OwnSecrets`] stores it.
pub fn digests(data: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    data.iter()
        .map(|(k, v)| (k.clone(), Sha256::digest(v).to_vec()))
        .collect()
}

fn generation<K: Resource>(o: &K) -> i64 {
    o.meta().generation.unwrap_or(0)
}

async fn wait<K: Resource<DynamicType = ()> + Clone>(s: &Store<K>) {
    // Re-polled: a missed wake-up must not keep readiness down.
    while tokio::time::timeout(Duration::from_secs(1), s.wait_until_ready())
        .await
        .is_err()
    {}
}

/// The Secrets a pod template references (env, envFrom, volumes, imagePullSecrets).
fn referenced(tmpl: &PodTemplateSpec) -> BTreeSet<String> {
    let spec = serde_json::to_value(&tmpl.spec).unwrap_or_default();
    crate::workloads::secret_refs(&spec)
        .into_iter()
        .map(|r| r.secret)
        .collect()
}
