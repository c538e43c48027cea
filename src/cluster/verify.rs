//! Waiting for a restarted workload: its rollout must complete
//! (observedGeneration, updated/available replicas) and no pod of it may
//! still carry the old hash. Fails fast on pods that cannot start.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;
use tokio::time::Instant;

use super::ClusterError;
use super::consumers::{WorkloadKind, selector_string};
use super::restart::Restart;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "camelCase")]
pub enum Outcome {
    Verified,
    Failed(String),
    TimedOut(String),
}

/// Container states that will not fix themselves within a rollout.
const FATAL_WAITING: [&str; 7] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
];

/// Where a workload's rollout stands, read from the object alone.
pub struct Progress {
    /// The controller observed `want_gen` and every replica is updated and available.
    pub done: bool,
    /// Will not finish by waiting (deadline exceeded, OnDelete).
    pub fatal: Option<String>,
    /// Pods of the new generation may exist (it is observed and has updated
    /// replicas): only then can a pod be failing on the new value.
    pub new_pods: bool,
    pub selector: Option<LabelSelector>,
    pub what: String,
}

/// A Deployment's rollout to generation `want_gen` (also used on cached objects).
pub fn deployment_progress(d: &Deployment, want_gen: i64) -> Progress {
    let spec = d.spec.clone().unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    let want = spec.replicas.unwrap_or(1);
    let observed = st.observed_generation.unwrap_or(0) >= want_gen;
    let updated = st.updated_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let avail = st.available_replicas.unwrap_or(0);
    let fatal = st.conditions.iter().flatten().find_map(|c| {
        (c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        .then(|| "progress deadline exceeded (ProgressDeadlineExceeded)".to_string())
    });
    Progress {
        done: observed && updated >= want && total == updated && avail >= want,
        fatal,
        new_pods: observed && updated > 0,
        selector: Some(spec.selector),
        what: format!(
            "{updated}/{want} updated, {avail} available, {} old",
            (total - updated).max(0)
        ),
    }
}

/// StatefulSets and DaemonSets with `updateStrategy: OnDelete` never roll by themselves.
fn on_delete(strategy: Option<&str>) -> Option<String> {
    (strategy == Some("OnDelete"))
        .then(|| "updateStrategy OnDelete: pods only change when deleted by hand".into())
}

/// A StatefulSet's rollout to generation `want_gen`.
pub fn statefulset_progress(s: &StatefulSet, want_gen: i64) -> Progress {
    let spec = s.spec.clone().unwrap_or_default();
    let st = s.status.clone().unwrap_or_default();
    let want = spec.replicas.unwrap_or(1);
    let fatal = on_delete(
        spec.update_strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref()),
    );
    let observed = st.observed_generation.unwrap_or(0) >= want_gen;
    let updated = st.updated_replicas.unwrap_or(0);
    let ready = st.ready_replicas.unwrap_or(0);
    let same_rev = st.current_revision.is_some() && st.current_revision == st.update_revision;
    Progress {
        done: observed && updated >= want && ready >= want && (same_rev || want == 0),
        fatal,
        new_pods: observed && updated > 0,
        selector: Some(spec.selector),
        what: format!("{updated}/{want} updated, {ready} ready"),
    }
}

/// A DaemonSet's rollout to generation `want_gen`.
pub fn daemonset_progress(d: &DaemonSet, want_gen: i64) -> Progress {
    let spec = d.spec.clone().unwrap_or_default();
    let st = d.status.clone().unwrap_or_default();
    let fatal = on_delete(
        spec.update_strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref()),
    );
    let observed = st.observed_generation.unwrap_or(0) >= want_gen;
    let want = st.desired_number_scheduled;
    let updated = st.updated_number_scheduled.unwrap_or(0);
    let avail = st.number_available.unwrap_or(0);
    Progress {
        done: observed && updated >= want && avail >= want,
        fatal,
        new_pods: observed && updated > 0,
        selector: Some(spec.selector),
        what: format!("{updated}/{want} updated, {avail} available"),
    }
}

async fn progress(client: &kube::Client, r: &Restart) -> Result<Progress, ClusterError> {
    let ns = &r.namespace;
    let what = format!("get {} {}/{}", r.kind, ns, r.name);
    let want_gen = r.generation.unwrap_or(0);
    let err = |e| ClusterError::from_kube(what.clone(), e);
    Ok(match r.kind {
        WorkloadKind::Deployment => deployment_progress(
            &Api::<Deployment>::namespaced(client.clone(), ns)
                .get(&r.name)
                .await
                .map_err(err)?,
            want_gen,
        ),
        WorkloadKind::StatefulSet => statefulset_progress(
            &Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get(&r.name)
                .await
                .map_err(err)?,
            want_gen,
        ),
        WorkloadKind::DaemonSet => daemonset_progress(
            &Api::<DaemonSet>::namespaced(client.clone(), ns)
                .get(&r.name)
                .await
                .map_err(err)?,
            want_gen,
        ),
    })
}

/// Pods that still carry another hash, and the first fatal container state among the new ones.
async fn pods_state(
    client: &kube::Client,
    r: &Restart,
    sel: &LabelSelector,
) -> Result<(usize, Option<String>), ClusterError> {
    let lp = ListParams::default().labels(&selector_string(sel));
    let pods = Api::<Pod>::namespaced(client.clone(), &r.namespace)
        .list(&lp)
        .await
        .map_err(|e| ClusterError::from_kube(format!("list pods in {}", r.namespace), e))?;
    let mut old = 0;
    let mut fatal = None;
    for p in pods.items {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let ann = p.metadata.annotations.clone().unwrap_or_default();
        let is_new = r.new.iter().all(|(k, v)| ann.get(k) == Some(v));
        if !is_new {
            old += 1;
            continue;
        }
        if fatal.is_some() {
            continue;
        }
        let st = p.status.unwrap_or_default();
        if st.phase.as_deref() == Some("Failed") {
            fatal = Some(format!(
                "pod {} failed ({})",
                p.metadata.name.unwrap_or_default(),
                st.reason.unwrap_or_else(|| "no reason given".into())
            ));
            continue;
        }
        // Reasons only: container messages may echo application output.
        for c in st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten())
        {
            if let Some(reason) = c
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref())
                .filter(|r| FATAL_WAITING.contains(r))
            {
                fatal = Some(format!(
                    "pod {} container {}: {reason}",
                    p.metadata.name.clone().unwrap_or_default(),
                    c.name
                ));
                break;
            }
        }
    }
    Ok((old, fatal))
}

/// Errors worth waiting out: no connection, 5xx, 429.
fn transient(e: &ClusterError) -> bool {
    match e {
        ClusterError::Transport { .. } => true,
        ClusterError::Api { code, .. } => *code >= 500 || *code == 429,
        _ => false,
    }
}

/// Polls until the rollout is verified, fails, or `deadline` passes. The
/// interval grows from `poll` to four times it while nothing changes, and
/// pods are listed only once new ones may exist (hundreds of rollouts at
/// once must not crowd the API server the workload controllers need).
pub async fn wait(
    client: &kube::Client,
    r: &Restart,
    deadline: Instant,
    poll: Duration,
) -> Result<Outcome, ClusterError> {
    let mut delay = poll;
    loop {
        // An API server that is briefly away (restart, overload) does not
        // fail the rollout: keep polling until the deadline.
        let step = async {
            let p = progress(client, r).await?;
            let pods = match (&p.fatal, &p.selector) {
                (None, Some(sel)) if p.done || p.new_pods => pods_state(client, r, sel).await?,
                _ => (0, None),
            };
            Ok::<_, ClusterError>((p, pods))
        };
        let (p, (old, fatal)) = match step.await {
            Ok(x) => x,
            Err(e) if transient(&e) && Instant::now() + delay <= deadline => {
                tracing::debug!(error = %e, "rollout check: API server unavailable; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some(f) = p.fatal {
            return Ok(Outcome::Failed(f));
        }
        if let Some(f) = fatal {
            return Ok(Outcome::Failed(f));
        }
        if p.done && old == 0 {
            return Ok(Outcome::Verified);
        }
        if Instant::now() + delay > deadline {
            return Ok(Outcome::TimedOut(format!(
                "rollout not complete: {}{}",
                p.what,
                if old > 0 {
                    format!("; {old} pod(s) still run the old value")
                } else {
                    String::new()
                }
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 3 / 2).min(poll * 4);
    }
}
