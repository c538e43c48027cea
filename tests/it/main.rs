//! The integration tests: one binary (linking kube and the cloud SDKs once),
//! one module per area. `cargo test --test it AREA::` runs one area.
#[path = "../support/mod.rs"]
mod support;

mod apply_diff_prune;
mod apply_failures;
mod apply_rollout;
mod cli;
mod controller_crd;
mod controller_git;
mod controller_metrics;
mod controller_resilience;
mod controller_rotation;
mod controller_sync;
mod crash_safety;
mod doctor;
mod doctor_cluster;
mod export_aws;
mod export_azure;
mod export_eso;
mod export_vault;
mod fault_injection;
mod forgery;
mod fuzz_regressions;
mod gcp;
mod guard_corpus;
mod guard_git;
mod guard_precommit;
mod guard_robust;
mod kms_aws;
mod kms_azure;
mod kms_multi;
mod kms_vault;
mod leak_canaries;
mod pgp;
mod roundtrip;
mod sops_config;
mod sops_interop;
mod vectors;
mod write_safety;
