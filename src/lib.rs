//! ksec: Kubernetes Secrets in Git, encrypted in the SOPS format, with
//! recipients routed by namespace.
//!
//! The CLI (`src/cli`) is a thin layer over this library.
//!
//! Cargo features (all on by default): `kms` (cloud key services), `cluster`
//! (apply/diff, controller, live doctor checks) and `git` (the guard's staged
//! index and history). `--no-default-features` builds only the file formats,
//! age, the guard's detector and the offline checks; the fuzz crate uses that.

#[cfg(feature = "cluster")]
pub mod cluster;
#[cfg(feature = "cluster")]
pub mod controller;
pub mod doctor;
pub mod eso;
/// `ksec export`: Secrets → Vault / AWS Secrets Manager / Azure Key Vault, plus ESO manifests.
#[cfg(feature = "kms")]
pub mod export;
pub mod fsio;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod keys;
pub mod manifest;
pub mod ops;
pub mod recipients;
pub mod sops;
pub mod source;
pub mod workloads;
