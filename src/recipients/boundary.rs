//! The environment boundary for re-keying. The environment a file belongs
//! to is the one whose recipients can open it today, whatever its readable
//! fields now claim: those fields can be moved without the key (the MAC
//! binds values, not where they sit), its recipients cannot.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::{ConfigError, Environment, RecipientsDir};
use crate::sops::Metadata;

/// Where Secrets may land: the environment scope of a run (`ksec apply
/// --env`, `ksec export`) or of a controller (`--env`, `--namespace`).
/// Built here only, so the CLI, the controller and export agree on it.
#[derive(Debug, Clone, Default)]
pub struct Boundary {
    /// `recipients/`: each namespace must belong to the environment its
    /// file was encrypted for. Without it, only `namespaces` is checked.
    pub recipients: Option<Arc<RecipientsDir>>,
    /// Only this environment's namespaces.
    pub env: Option<String>,
    /// When not empty, the only namespaces allowed (a controller's `--namespace`).
    pub namespaces: BTreeSet<String>,
}

/// Why a scope could not be built: a configuration error, said before any file is read.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("--env {env}: no such environment in {}", dir.display())]
    UnknownEnv { env: String, dir: PathBuf },
    #[error("--env needs --recipients-dir (the recipients/ directory)")]
    EnvWithoutRecipients,
}

/// The environments a file was encrypted for (recipients that all belong
/// to them); read from its sops metadata, so known before decryption.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptedFor(pub Vec<String>);

impl EncryptedFor {
    pub fn of(meta: &Metadata, rdir: &RecipientsDir) -> EncryptedFor {
        let ids = file_recipients(meta);
        EncryptedFor(
            rdir.encrypted_for(&ids)
                .into_iter()
                .map(|e| e.name.clone())
                .collect(),
        )
    }

    pub fn contains(&self, env: &str) -> bool {
        self.0.iter().any(|e| e == env)
    }
}

impl std::fmt::Display for EncryptedFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("recipients of no single environment")
        } else {
            write!(f, "environment {}", self.0.join("/"))
        }
    }
}

/// Why [`Boundary::admit`] refused a namespace. Names only, never values.
#[derive(Debug, thiserror::Error)]
pub enum BoundaryRefusal {
    #[error("namespace {namespace:?} is not one of this controller's namespaces")]
    NotListed { namespace: String },
    #[error("namespace {namespace:?} is not owned by environment {env}")]
    NotInEnvironment { namespace: String, env: String },
    #[error("namespace {namespace:?} belongs to no environment in {}", dir.display())]
    Unowned { namespace: String, dir: PathBuf },
    #[error("{0}")]
    Conflict(ConfigError),
    /// The file's recipients are another environment's: a moved or forged file.
    #[error(
        "namespace {namespace:?} belongs to environment {owner}, but the file was encrypted for {encrypted_for}"
    )]
    WrongEnvironment {
        namespace: String,
        owner: String,
        encrypted_for: EncryptedFor,
    },
    /// Another environment's Secret, legitimately there: outside `--env`.
    #[error("namespace {namespace:?} is in environment {owner}, not --env {wanted}")]
    OtherEnvironment {
        namespace: String,
        owner: String,
        wanted: String,
    },
}

impl BoundaryRefusal {
    /// Outside the scope rather than wrong: a run skips it, it does not fail.
    pub fn is_out_of_scope(&self) -> bool {
        matches!(self, BoundaryRefusal::OtherEnvironment { .. })
    }
}

impl Boundary {
    /// The one place a scope is built: `env` must name an environment of
    /// `recipients` (which it needs).
    pub fn new(
        recipients: Option<RecipientsDir>,
        env: Option<String>,
        namespaces: BTreeSet<String>,
    ) -> Result<Boundary, ScopeError> {
        let recipients = recipients.map(Arc::new);
        Boundary::with_shared(recipients, env, namespaces)
    }

    /// [`Boundary::new`] over a `recipients/` already loaded (one per folder).
    pub fn with_shared(
        recipients: Option<Arc<RecipientsDir>>,
        env: Option<String>,
        namespaces: BTreeSet<String>,
    ) -> Result<Boundary, ScopeError> {
        match (&recipients, &env) {
            (None, Some(_)) => return Err(ScopeError::EnvWithoutRecipients),
            (Some(d), Some(e)) if d.env(e).is_none() => {
                return Err(ScopeError::UnknownEnv {
                    env: e.clone(),
                    dir: d.dir.clone(),
                });
            }
            _ => {}
        }
        Ok(Boundary {
            recipients,
            env,
            namespaces,
        })
    }

    /// The environments a file was encrypted for (empty without `recipients/`).
    pub fn encrypted_for(&self, meta: &Metadata) -> EncryptedFor {
        self.recipients
            .as_deref()
            .map(|d| EncryptedFor::of(meta, d))
            .unwrap_or_default()
    }

    /// Is a file encrypted for `--env` at all? `Err` says for what it was
    /// (such a file is another environment's: skipped, not decrypted).
    pub fn file_in_env(&self, encrypted_for: &EncryptedFor) -> Result<(), String> {
        match &self.env {
            Some(want) if self.recipients.is_some() && !encrypted_for.contains(want) => {
                Err(format!("encrypted for {encrypted_for}, not --env {want}"))
            }
            _ => Ok(()),
        }
    }

    /// Is `namespace` inside the scope at all, whatever file names it (a
    /// live Secret, an EncryptedSecret's own namespace)?
    pub fn check_namespace(&self, namespace: &str) -> Result<(), BoundaryRefusal> {
        if !self.namespaces.is_empty() && !self.namespaces.contains(namespace) {
            return Err(BoundaryRefusal::NotListed {
                namespace: namespace.into(),
            });
        }
        if let (Some(d), Some(env)) = (&self.recipients, &self.env)
            && !d.env(env).is_some_and(|e| e.owns_namespace(namespace))
        {
            return Err(BoundaryRefusal::NotInEnvironment {
                namespace: namespace.into(),
                env: env.clone(),
            });
        }
        Ok(())
    }

    /// [`Self::check_namespace`] as a filter (where prune may look).
    pub fn contains(&self, namespace: &str) -> bool {
        self.check_namespace(namespace).is_ok()
    }

    /// The one boundary check: may a Secret of a file encrypted for
    /// `encrypted_for` land in `namespace`? `Ok` names the environment that
    /// owns it (empty without `recipients/`).
    pub fn admit(
        &self,
        namespace: &str,
        encrypted_for: &EncryptedFor,
    ) -> Result<String, BoundaryRefusal> {
        if !self.namespaces.is_empty() && !self.namespaces.contains(namespace) {
            return Err(BoundaryRefusal::NotListed {
                namespace: namespace.into(),
            });
        }
        let Some(rdir) = &self.recipients else {
            return Ok(String::new());
        };
        let owner = match rdir.env_for_namespace(namespace) {
            Ok(Some(e)) => e.name.clone(),
            Ok(None) => {
                return Err(BoundaryRefusal::Unowned {
                    namespace: namespace.into(),
                    dir: rdir.dir.clone(),
                });
            }
            Err(e) => return Err(BoundaryRefusal::Conflict(e)),
        };
        if !encrypted_for.contains(&owner) {
            return Err(BoundaryRefusal::WrongEnvironment {
                namespace: namespace.into(),
                owner,
                encrypted_for: encrypted_for.clone(),
            });
        }
        match &self.env {
            Some(want) if *want != owner => Err(BoundaryRefusal::OtherEnvironment {
                namespace: namespace.into(),
                owner,
                wanted: want.clone(),
            }),
            _ => Ok(owner),
        }
    }
}

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

    fn for_env(env: Option<&str>) -> Boundary {
        Boundary::new(Some(dir()), env.map(str::to_string), BTreeSet::new()).unwrap()
    }

    #[test]
    fn admit_checks_the_owner_against_the_recipients_then_the_env() {
        let prod = EncryptedFor(vec!["prod".into()]);
        assert_eq!(for_env(None).admit("prod", &prod).unwrap(), "prod");
        let e = for_env(None).admit("dev", &prod).unwrap_err();
        assert!(matches!(e, BoundaryRefusal::WrongEnvironment { ref owner, .. } if owner == "dev"));
        assert!(!e.is_out_of_scope());
        let msg = e.to_string();
        assert!(
            msg.contains("belongs to environment dev")
                && msg.contains("encrypted for environment prod"),
            "{msg}"
        );
        let none = for_env(None)
            .admit("prod", &EncryptedFor::default())
            .unwrap_err();
        assert!(
            none.to_string()
                .contains("recipients of no single environment")
        );
        assert!(matches!(
            for_env(None).admit("elsewhere", &prod),
            Err(BoundaryRefusal::Unowned { .. })
        ));
        let dev = EncryptedFor(vec!["dev".into()]);
        let skip = for_env(Some("prod")).admit("dev", &dev).unwrap_err();
        assert!(skip.is_out_of_scope(), "{skip}");
        assert!(for_env(Some("prod")).file_in_env(&dev).is_err());
        assert!(for_env(Some("prod")).file_in_env(&prod).is_ok());
    }

    #[test]
    fn a_scope_is_built_only_from_a_known_environment() {
        assert!(matches!(
            Boundary::new(Some(dir()), Some("qa".into()), BTreeSet::new()),
            Err(ScopeError::UnknownEnv { .. })
        ));
        assert!(matches!(
            Boundary::new(None, Some("prod".into()), BTreeSet::new()),
            Err(ScopeError::EnvWithoutRecipients)
        ));
        let listed = Boundary::new(None, None, ids(&["a"])).unwrap();
        assert!(listed.contains("a") && !listed.contains("b"));
        assert!(matches!(
            listed.admit("b", &EncryptedFor::default()),
            Err(BoundaryRefusal::NotListed { .. })
        ));
        assert!(for_env(Some("prod")).contains("prod") && !for_env(Some("prod")).contains("dev"));
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
