//! Shared by every integration test module (one test binary, `tests/it/`).
//! `bin`: the ksec binary and the real peers (sops, age, gpg) as oracles;
//! `kms`: local key and secret services (moto, OpenBao, the Azure and Google
//! fakes) and a fault-injecting proxy; `cluster`: the real control plane,
//! Git repos and the controller; `export`: export fixtures;
//! `sops_surface`: the sops command-line surface cases.
pub mod bin;
pub mod cluster;
pub mod export;
pub mod kms;
pub mod sops_surface;
