//! The environment boundary for re-keying. The environment a file belongs
//! to is the one whose recipients can open it today, whatever its readable
//! fields now claim: those fields can be moved without the key (the MAC
//! binds values, not where they sit), its recipients cannot.

use std::collections::BTreeSet;
use std::str::FromStr;

use super::{Environment, RecipientsDir};
use crate::sops::Metadata;

/// A deliberate move of a file between environments (`--move-env prod:dev`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvMove {
    pub from: String,
    pub to: String,
}

impl FromStr for EnvMove {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((f, t)) if !f.is_empty() && !t.is_empty() => Ok(EnvMove {
                from: f.to_string(),
                to: t.to_string(),
            }),
            _ => Err(format!("{s:?}: expected FROM:TO, e.g. prod:dev")),
        }
    }
}

/// Why a re-key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the file is encrypted for environment {from} today, but this would let {to} read it ({}). \
     If nobody meant to move it, the file was probably tampered with (a namespace or path edited without the key): restore it from a trusted commit. \
     To move it on purpose, pass --move-env {from}:{to}, then rotate every value in it",
    recipients.join(", ")
)]
pub struct EnvMoveRefused {
    pub from: String,
    pub to: String,
    /// The added recipients that belong to `to`.
    pub recipients: Vec<String>,
}

/// The recipient ids of a file's stanzas.
pub fn file_recipients(meta: &Metadata) -> BTreeSet<String> {
    meta.stanzas().map(|s| s.recipient()).collect()
}

impl RecipientsDir {
    /// The environments that could have encrypted a file: those whose
    /// recipients include all of the file's.
    pub fn encrypted_for(&self, file_ids: &BTreeSet<String>) -> Vec<&Environment> {
        self.envs
            .iter()
            .filter(|e| {
                let ids: BTreeSet<String> = e.recipient_ids().into_iter().collect();
                !file_ids.is_empty() && file_ids.is_subset(&ids)
            })
            .collect()
    }

    /// The environments a file belongs to: [`Self::encrypted_for`], or, when
    /// its recipients are partly stale, those sharing a recipient with it
    /// that not every environment has.
    fn belongs_to(&self, file_ids: &BTreeSet<String>) -> Vec<&Environment> {
        let exact = self.encrypted_for(file_ids);
        if !exact.is_empty() {
            return exact;
        }
        let per_env: Vec<(&Environment, BTreeSet<String>)> = self
            .envs
            .iter()
            .map(|e| (e, e.recipient_ids().into_iter().collect()))
            .collect();
        let shared_by_all = |id: &String| per_env.iter().all(|(_, ids)| ids.contains(id));
        per_env
            .iter()
            .filter(|(_, ids)| {
                ids.iter()
                    .any(|id| file_ids.contains(id) && !shared_by_all(id))
            })
            .map(|(e, _)| *e)
            .collect()
    }

    /// Refuses a change of recipients from `old` to `new` that adds a
    /// recipient of an environment the file does not belong to, unless
    /// `allow` names exactly that move. Removing recipients is always allowed.
    pub fn admit_rekey(
        &self,
        old: &BTreeSet<String>,
        new: &BTreeSet<String>,
        allow: Option<&EnvMove>,
    ) -> Result<(), EnvMoveRefused> {
        let from = self.belongs_to(old);
        if from.is_empty() {
            return Ok(());
        }
        let in_from = |id: &String| from.iter().any(|e| e.recipient_ids().contains(id));
        let mut foreign: Vec<(&str, &String)> = Vec::new();
        for id in new.difference(old).filter(|id| !in_from(id)) {
            for e in self.envs.iter().filter(|e| e.recipient_ids().contains(id)) {
                foreign.push((e.name.as_str(), id));
            }
        }
        let Some((to, _)) = foreign.first().copied() else {
            return Ok(());
        };
        let from_name = from[0].name.clone();
        let allowed = allow.is_some_and(|m| {
            from.iter().any(|e| e.name == m.from) && foreign.iter().all(|(t, _)| *t == m.to)
        });
        if allowed {
            return Ok(());
        }
        Err(EnvMoveRefused {
            from: from_name,
            to: to.to_string(),
            recipients: foreign
                .iter()
                .filter(|(t, _)| *t == to)
                .map(|(_, id)| (*id).clone())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const PROD: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    const DEV: &str = "age1l2875jv7uctk4qk6prd20yrsvu7utert9j08nms7zukv80v99aes8hqv64";

    fn dir() -> RecipientsDir {
        let env = |name: &str, key: &str| {
            super::super::env::parse_env(
                Path::new(&format!("recipients/{name}.yaml")),
                format!("namespaces: [{name}]\nage: [{key}]\n").as_bytes(),
            )
            .unwrap()
        };
        RecipientsDir {
            dir: "recipients".into(),
            root: ".".into(),
            envs: vec![env("prod", PROD), env("dev", DEV)],
        }
    }

    fn ids(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_prod_file_is_not_rekeyed_to_dev() {
        let e = dir()
            .admit_rekey(&ids(&[PROD]), &ids(&[DEV]), None)
            .unwrap_err();
        assert_eq!((e.from.as_str(), e.to.as_str()), ("prod", "dev"));
        let wrong = EnvMove::from_str("dev:prod").unwrap();
        assert!(
            dir()
                .admit_rekey(&ids(&[PROD]), &ids(&[DEV]), Some(&wrong))
                .is_err()
        );
        let right = EnvMove::from_str("prod:dev").unwrap();
        assert!(
            dir()
                .admit_rekey(&ids(&[PROD]), &ids(&[DEV]), Some(&right))
                .is_ok()
        );
    }

    #[test]
    fn removing_and_unknown_recipients_are_not_moves() {
        assert!(
            dir()
                .admit_rekey(&ids(&[PROD, DEV]), &ids(&[PROD]), None)
                .is_ok()
        );
        assert!(
            dir()
                .admit_rekey(&ids(&[PROD]), &ids(&[PROD, "age1other"]), None)
                .is_ok()
        );
    }
}
