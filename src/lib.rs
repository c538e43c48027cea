//! ksec: Kubernetes Secrets in Git, encrypted in the SOPS format, with
//! recipients routed by namespace.
//!
//! The CLI (`src/cli`) is a thin layer over this library.

pub mod cluster;
pub mod controller;
pub mod doctor;
pub mod fsio;
pub mod guard;
pub mod keys;
pub mod ops;
pub mod recipients;
pub mod sops;
pub mod workloads;
