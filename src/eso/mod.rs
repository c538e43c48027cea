//! External Secrets Operator, read from its `ExternalSecret` objects: when
//! each last synced from its store, whether that is stale, whether it is
//! failing. The field guide asks for ESO itself to be monitored: after a
//! migration (`ksec export`), a sync that silently stopped is a credential
//! that silently stopped rotating.
//!
//! Pure: it reads the object's JSON (any served version: `v1`, `v1beta1`);
//! the controller exports the result as metrics.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value as J;

/// One ExternalSecret's sync health. Names only, never values.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub namespace: String,
    pub name: String,
    /// The store it reads from (`spec.secretStoreRef.name`).
    pub store: String,
    /// Since the last successful sync (`status.refreshTime`); `None`: never synced, or no status yet.
    pub age: Option<Duration>,
    /// `spec.refreshInterval` (ESO's default is 1h); zero: synced once, never refreshed.
    pub refresh: Duration,
    /// Synced once but not within twice the refresh interval.
    pub stale: bool,
    /// The Ready condition is False (the store refused, the key is missing…).
    pub failing: bool,
}

/// ESO's default when `spec.refreshInterval` is absent.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// Reads one ExternalSecret; `None` if it has no name.
pub fn health(obj: &J, now: DateTime<Utc>) -> Option<Health> {
    let name = obj.pointer("/metadata/name")?.as_str()?.to_string();
    let namespace = str_at(obj, "/metadata/namespace").unwrap_or_default();
    let store = str_at(obj, "/spec/secretStoreRef/name").unwrap_or_default();
    let refresh = match str_at(obj, "/spec/refreshInterval") {
        Some(s) => go_duration(&s).unwrap_or(DEFAULT_REFRESH),
        None => DEFAULT_REFRESH,
    };
    let age = str_at(obj, "/status/refreshTime")
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| (now - t.with_timezone(&Utc)).to_std().unwrap_or_default());
    let stale = match age {
        Some(a) => !refresh.is_zero() && a > refresh * 2,
        None => false,
    };
    let failing = conditions(obj).any(|c| {
        c.get("type").and_then(J::as_str) == Some("Ready")
            && c.get("status").and_then(J::as_str) == Some("False")
    });
    Some(Health {
        namespace,
        name,
        store,
        age,
        refresh,
        stale,
        failing,
    })
}

fn str_at(obj: &J, pointer: &str) -> Option<String> {
    obj.pointer(pointer).and_then(J::as_str).map(str::to_string)
}

fn conditions(obj: &J) -> impl Iterator<Item = &J> {
    obj.pointer("/status/conditions")
        .and_then(J::as_array)
        .into_iter()
        .flatten()
}

/// A Go `time.Duration` string as ESO writes `refreshInterval`: `1h`,
/// `15m`, `1h30m`, `90s`, `500ms`, `0`. `None` for anything else.
pub fn go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (num, tail) = rest.split_at(n);
        let v: f64 = num.parse().ok()?;
        let unit = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (u, next) = tail.split_at(unit);
        let secs = match u {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += v * secs;
        rest = next;
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations_parse_as_eso_writes_them() {
        assert_eq!(go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        assert_eq!(go_duration("1d"), None);
        assert_eq!(go_duration("h"), None);
        assert_eq!(go_duration(""), None);
    }

    fn es(refresh: Option<&str>, status: J) -> J {
        let mut o = json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": "db", "namespace": "prod"},
            "spec": {"secretStoreRef": {"name": "vault", "kind": "ClusterSecretStore"}},
        });
        if let Some(r) = refresh {
            o["spec"]["refreshInterval"] = json!(r);
        }
        if !status.is_null() {
            o["status"] = status;
        }
        o
    }

    #[test]
    fn stale_once_twice_the_refresh_interval_has_passed() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let synced = |t: &str| json!({"refreshTime": t, "conditions": [{"type": "Ready", "status": "True"}]});
        let fresh = health(&es(Some("1h"), synced("2026-12-05T11:00:00Z")), now).unwrap();
        assert_eq!(fresh.age, Some(Duration::from_secs(3600)));
        assert!(!fresh.stale && !fresh.failing);
        assert_eq!(fresh.store, "vault");
        let late = health(&es(Some("1h"), synced("2026-12-05T09:59:00Z")), now).unwrap();
        assert!(late.stale);
        let default = health(&es(None, synced("2026-12-05T09:30:00Z")), now).unwrap();
        assert!(default.stale, "ESO's default refresh is 1h");
        let once = health(&es(Some("0"), synced("2020-01-01T00:00:00Z")), now).unwrap();
        assert!(
            !once.stale,
            "refreshInterval 0 syncs once: never stale by age"
        );
    }

    #[test]
    fn failing_and_missing_status_are_told_apart() {
        let now = Utc::now();
        let failing = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "SecretSyncedError"}]});
        let h = health(&es(Some("1h"), failing), now).unwrap();
        assert!(h.failing && !h.stale && h.age.is_none());
        let new = health(&es(Some("1h"), J::Null), now).unwrap();
        assert!(!new.failing && !new.stale && new.age.is_none());
        assert!(health(&json!({"kind": "ExternalSecret"}), now).is_none());
    }
}
