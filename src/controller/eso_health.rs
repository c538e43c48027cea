//! Exports External Secrets Operator's sync health ([`crate::eso`]) as
//! metrics, so the sync gap of a migrated team is alerted on (see
//! examples/deploy/prometheusrule.yaml). It lists the ExternalSecrets of the
//! controller's namespaces every `interval`: ages grow with the clock, not
//! with events, so a periodic read is the honest source. No ExternalSecret
//! CRD installed: nothing is exported, and the next round looks again.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::metrics::Metrics;
use crate::eso;

/// Served versions, newest first (ESO ≥ 0.16 serves v1; older ones v1beta1).
const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

pub async fn run(
    client: kube::Client,
    scopes: Vec<Option<String>>,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    loop {
        match read_all(&client, &scopes).await {
            Ok(found) => metrics.eso.set(&found),
            Err(e) => {
                tracing::debug!(error = %e, "ExternalSecrets not readable; ESO health not exported")
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Every ExternalSecret of the scopes, as health records.
async fn read_all(
    client: &kube::Client,
    scopes: &[Option<String>],
) -> Result<Vec<eso::Health>, kube::Error> {
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for s in scopes {
        let list = list_scope(client, s.as_deref()).await?;
        out.extend(list.iter().filter_map(|o| {
            let j = serde_json::to_value(o).ok()?;
            eso::health(&j, now)
        }));
    }
    Ok(out)
}

/// Lists one scope, trying each served version until one answers.
async fn list_scope(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let mut last = None;
    for v in VERSIONS {
        let gvk = GroupVersionKind::gvk("external-secrets.io", v, "ExternalSecret");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "externalsecrets");
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        match api.list(&ListParams::default()).await {
            Ok(l) => return Ok(l.items),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one version"))
}
