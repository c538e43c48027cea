//! The controller's typed states. A [`Reason`] is at once a condition
//! reason, an event reason and a metric label; a [`FileState`] is what the
//! Git source's status says of one file; [`Health`] sets the
//! Ready/Reconciling/Stalled triple that every outcome writes together.

use serde::Serialize;

use super::crd::Condition;

/// Why a Secret or file is where it is. `as_str()` is the wire form (status,
/// events, `reason` metric label); the set is closed, so labels stay bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Synced,
    Progressing,
    DecryptFailed,
    NamespaceNotAllowed,
    MacMismatch,
    MissingKey,
    RolloutFailed,
    ApplyFailed,
    InvalidSpec,
    SecretConflict,
    DriftDetected,
    FetchFailed,
    /// A content change waits for a SecretApproval (`rotation: {approval: required}`).
    AwaitingApproval,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Synced => "Synced",
            Reason::Progressing => "Progressing",
            Reason::DecryptFailed => "DecryptFailed",
            Reason::NamespaceNotAllowed => "NamespaceNotAllowed",
            Reason::MacMismatch => "MacMismatch",
            Reason::MissingKey => "MissingKey",
            Reason::RolloutFailed => "RolloutFailed",
            Reason::ApplyFailed => "ApplyFailed",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::SecretConflict => "SecretConflict",
            Reason::DriftDetected => "DriftDetected",
            Reason::FetchFailed => "FetchFailed",
            Reason::AwaitingApproval => "AwaitingApproval",
        }
    }

    /// When a refusal for this reason is worth retrying without a new spec:
    /// a missing key may be mounted later; a bad MAC or namespace never heals.
    pub fn requeue(self) -> Option<std::time::Duration> {
        use std::time::Duration;
        match self {
            Reason::MissingKey => Some(Duration::from_secs(300)),
            Reason::RolloutFailed => Some(Duration::from_secs(60)),
            Reason::ApplyFailed | Reason::FetchFailed | Reason::AwaitingApproval => {
                Some(Duration::from_secs(15))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What happened to one file (or one Secret of it) in a Git sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Opened, waiting to be applied (never left in a written status).
    Pending,
    Skipped,
    Refused,
    Unchanged,
    Applied,
    Drifted,
    Failed,
}

impl FileState {
    /// Every state a written status may hold (the per-state file gauge).
    pub const REPORTED: [FileState; 6] = [
        FileState::Applied,
        FileState::Unchanged,
        FileState::Drifted,
        FileState::Refused,
        FileState::Skipped,
        FileState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Pending => "pending",
            FileState::Skipped => "skipped",
            FileState::Refused => "refused",
            FileState::Unchanged => "unchanged",
            FileState::Applied => "applied",
            FileState::Drifted => "drifted",
            FileState::Failed => "failed",
        }
    }

    /// Refused, skipped or failed: the Secret it names is kept as it is (never pruned).
    pub fn holds(self) -> bool {
        matches!(
            self,
            FileState::Refused | FileState::Skipped | FileState::Failed
        )
    }
}

/// The three conditions every outcome sets together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Ready=True.
    InSync,
    /// Ready=False, Reconciling=True: a transient failure, retried.
    Retrying,
    /// Ready=False, Stalled=True: needs a person (a new spec, a rollout fix).
    Stalled,
}

/// Sets Ready, Reconciling and Stalled for `health` in one go; the message
/// goes where it explains the state.
pub fn set_health(
    conditions: &mut Vec<Condition>,
    health: Health,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
) {
    let (ready, reconciling, stalled) = match health {
        Health::InSync => (("True", message), ("False", ""), ("False", "")),
        Health::Retrying => (("False", message), ("True", message), ("False", "")),
        Health::Stalled => (("False", message), ("False", ""), ("True", message)),
    };
    for (type_, (status, msg)) in [
        ("Ready", ready),
        ("Reconciling", reconciling),
        ("Stalled", stalled),
    ] {
        set_condition(conditions, type_, status, reason, msg, generation);
    }
}

/// Sets one condition; the transition time moves only when the status does.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let reason = reason.as_str();
    // Never empty: the 1.20 API server reads "" in a custom resource as null.
    let message = if message.is_empty() { reason } else { message };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: now,
        }),
    }
}

/// Events have a 1 KiB note limit.
pub fn trim_note(s: &str) -> String {
    if s.len() <= 1000 {
        return s.to_string();
    }
    let mut end = 1000;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_sets_the_triple_with_the_message_where_it_explains() {
        let mut c = Vec::new();
        set_health(
            &mut c,
            Health::Stalled,
            Reason::RolloutFailed,
            "why",
            Some(2),
        );
        let get = |t: &str| c.iter().find(|x| x.type_ == t).unwrap().clone();
        assert_eq!(
            (get("Ready").status.as_str(), get("Ready").message.as_str()),
            ("False", "why")
        );
        assert_eq!(get("Stalled").status, "True");
        assert_eq!(get("Reconciling").status, "False");
        assert_eq!(get("Reconciling").message, "RolloutFailed");
        set_health(&mut c, Health::InSync, Reason::Synced, "ok", Some(3));
        assert_eq!(c.len(), 3);
        assert!(
            c.iter()
                .all(|x| x.reason == "Synced" && x.observed_generation == Some(3))
        );
    }

    #[test]
    fn file_states_serialize_as_the_status_api_spells_them() {
        let j = serde_json::to_string(&FileState::REPORTED).unwrap();
        assert_eq!(
            j,
            r#"["applied","unchanged","drifted","refused","skipped","failed"]"#
        );
        assert_eq!(
            serde_json::to_string(&Reason::InvalidSpec).unwrap(),
            r#""InvalidSpec""#
        );
    }
}
