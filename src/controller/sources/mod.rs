//! Where desired Secrets come from. Each source opens, plans and reports in
//! its own terms and shares the rest through [`crate::controller::context`] (the apply
//! engine, refusal reasons), [`crate::controller::ownership`] and [`crate::controller::status`].
//! - `encrypted_secret`: the `EncryptedSecret` custom resource (one Secret each);
//! - `git`: a Git repository's encrypted manifests (`--git-url`);
//! - `watched`: Secrets ksec does not write (ESO-owned, opted in): only
//!   their consumers are rolled (`--watch-secrets`).

pub mod encrypted_secret;
pub mod git;
pub mod watched;
