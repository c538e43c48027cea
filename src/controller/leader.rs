//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas
//! are safe: only the holder reconciles. Optimistic concurrency
//! (resourceVersion) decides races; a holder that cannot renew within the
//! lease duration stops, and a clean shutdown releases the lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

use crate::cluster::ClusterError;

#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub namespace: String,
    pub name: String,
    /// This replica (the pod name).
    pub identity: String,
    /// How long a lease is valid without renewal (renewed every third of it).
    pub duration: Duration,
}

fn now_ms(t: &Timestamp) -> i64 {
    t.as_millisecond()
}

/// One attempt: `true` when this replica holds the lease afterwards.
pub async fn try_acquire(client: &kube::Client, o: &LeaseOptions) -> Result<bool, ClusterError> {
    let api = Api::<Lease>::namespaced(client.clone(), &o.namespace);
    let now = Timestamp::now();
    let secs = o.duration.as_secs().max(1) as i32;
    let what = format!("lease {}/{}", o.namespace, o.name);
    let live = api
        .get_opt(&o.name)
        .await
        .map_err(|e| ClusterError::from_kube(what.clone(), e))?;
    let res = match live {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(o.name.clone()),
                    namespace: Some(o.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(o.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Some(mut l) => {
            let mut s = l.spec.clone().unwrap_or_default();
            let holder = s.holder_identity.clone().unwrap_or_default();
            let dur_ms = i64::from(s.lease_duration_seconds.unwrap_or(secs)) * 1000;
            let expired = s
                .renew_time
                .as_ref()
                .is_none_or(|t| now_ms(&now) - now_ms(&t.0) > dur_ms);
            if holder != o.identity && !holder.is_empty() && !expired {
                return Ok(false);
            }
            if holder != o.identity {
                s.holder_identity = Some(o.identity.clone());
                s.acquire_time = Some(MicroTime(now));
                s.lease_transitions = Some(s.lease_transitions.unwrap_or(0) + 1);
            }
            s.renew_time = Some(MicroTime(now));
            s.lease_duration_seconds = Some(secs);
            l.spec = Some(s);
            api.replace(&o.name, &PostParams::default(), &l)
                .await
                .map(|_| ())
        }
    };
    match res {
        Ok(()) => Ok(true),
        // Someone else wrote first.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(ClusterError::from_kube(what, e)),
    }
}

/// Waits until this replica holds the lease.
pub async fn acquire(client: &kube::Client, o: &LeaseOptions) {
    let retry = o.duration / 3;
    let mut said = false;
    loop {
        match try_acquire(client, o).await {
            Ok(true) => {
                tracing::info!(lease = %o.name, identity = %o.identity, "leader elected: this replica");
                return;
            }
            Ok(false) if !said => {
                tracing::info!(lease = %o.name, "another replica leads; standing by");
                said = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::time::sleep(retry).await;
    }
}

/// Renews until it cannot (another replica took over, or no renewal
/// succeeded for two thirds of the duration); then returns.
pub async fn hold(client: &kube::Client, o: &LeaseOptions) {
    let every = o.duration / 3;
    let deadline = o.duration * 2 / 3;
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match try_acquire(client, o).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(lease = %o.name, "lost the lease to another replica");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew the lease"),
        }
        if last_ok.elapsed() > deadline {
            tracing::error!(lease = %o.name, "could not renew the lease in time");
            return;
        }
    }
}

/// Gives the lease up (clean shutdown) so a standby takes over at once.
pub async fn release(client: &kube::Client, o: &LeaseOptions) {
    let api = Api::<Lease>::namespaced(client.clone(), &o.namespace);
    if let Ok(Some(mut l)) = api.get_opt(&o.name).await
        && let Some(s) = l.spec.as_mut()
        && s.holder_identity.as_deref() == Some(o.identity.as_str())
    {
        s.holder_identity = None;
        s.renew_time = None;
        if let Err(e) = api.replace(&o.name, &PostParams::default(), &l).await {
            tracing::warn!(error = %e, "cannot release the lease");
        }
    }
}
