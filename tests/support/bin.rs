//! Shared test support: the built binary, real peers (sops, age), temp
//! dirs, and generated age keys. A peer that is missing fails the test when
//! KSEC_REQUIRE_ORACLES=1 (the test command sets it), else the test skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn ksec() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ksec"));
    // Never pick up the developer's own keys or config.
    for v in [
        "SOPS_AGE_KEY",
        "SOPS_AGE_KEY_FILE",
        "SOPS_AGE_KEY_CMD",
        "SOPS_AGE_RECIPIENTS",
        "SOPS_CONFIG",
        "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
        "KSEC_RECIPIENTS_DIR",
        "SOPS_KMS_ARN",
        "SOPS_PGP_FP",
        "SOPS_GPG_EXEC",
        "SOPS_VAULT_URIS",
        "SOPS_AZURE_KEYVAULT_URLS",
        "SOPS_GCP_KMS_IDS",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CREDENTIALS",
        "GOOGLE_OAUTH_ACCESS_TOKEN",
        "CLOUDSDK_CONFIG",
        "GCE_METADATA_HOST",
        "KSEC_GCP_KMS_ENDPOINT",
        "SOPS_GCP_KMS_ENDPOINT",
    ] {
        c.env_remove(v);
    }
    c.env("HOME", "/nonexistent-ksec-test-home")
        .env("XDG_CONFIG_HOME", "/nonexistent-ksec-test-home");
    c
}

pub fn run(c: &mut Command) -> Output {
    c.output().expect("spawn")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn require() -> bool {
    std::env::var("KSEC_REQUIRE_ORACLES").is_ok_and(|v| v == "1")
}

/// Finds a peer tool on PATH; None (skip) unless the test command requires it.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    });
    if found.is_none() {
        if require() {
            panic!(
                "{name} is required (KSEC_REQUIRE_ORACLES=1) but not on PATH; run scripts/test-deps.sh"
            );
        }
        eprintln!("SKIP: {name} not on PATH (run scripts/test.sh to install the real peers)");
    }
    found
}

pub fn sops_cmd() -> Option<Command> {
    let p = tool("sops")?;
    let mut c = Command::new(p);
    c.env("SOPS_DISABLE_VERSION_CHECK", "1");
    for v in [
        "SOPS_AGE_KEY",
        "SOPS_AGE_KEY_FILE",
        "SOPS_AGE_RECIPIENTS",
        "SOPS_CONFIG",
    ] {
        c.env_remove(v);
    }
    c.env("HOME", "/nonexistent-ksec-test-home")
        .env("XDG_CONFIG_HOME", "/nonexistent-ksec-test-home");
    Some(c)
}

/// `../shared/vectors/sops`, or None with a message when `../shared` is absent.
pub fn vectors() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/sops");
    if p.is_dir() {
        Some(p)
    } else if require() {
        panic!("../shared/vectors/sops is required (KSEC_REQUIRE_ORACLES=1) but absent");
    } else {
        eprintln!("SKIP: ../shared is absent, so the sops vectors cannot be read");
        None
    }
}

pub struct AgeKey {
    pub identity_file: PathBuf,
    pub recipient: String,
}

/// Generates an age X25519 identity file in `dir`.
pub fn age_key(dir: &Path, name: &str) -> AgeKey {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    let identity_file = dir.join(format!("{name}.txt"));
    std::fs::write(
        &identity_file,
        format!(
            "# public key: {recipient}\n{}\n",
            id.to_string().expose_secret()
        ),
    )
    .unwrap();
    AgeKey {
        identity_file,
        recipient,
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub const SECRET_YAML: &str = "\
# registry credentials for prod
apiVersion: v1
kind: Secret
metadata:
  name: registry-pull-secret
  namespace: prod
  labels:
    app: web
type: kubernetes.io/dockerconfigjson
data:
  .dockerconfigjson: Q0FOQVJZLWRvY2tlcmNvbmZpZy0xNzM=
stringData:
  # the database password
  password: CANARY-password-8c1f
  port: \"5432\"
";

/// Names the step a long scenario test is in: each step is printed as it
/// starts, and a failure says which step it happened in.
pub struct Scenario {
    name: &'static str,
    step: std::cell::Cell<String>,
}

impl Scenario {
    pub fn new(name: &'static str) -> Scenario {
        Scenario {
            name,
            step: std::cell::Cell::new("setup".into()),
        }
    }

    pub fn step(&self, step: &str) {
        eprintln!("-- {}: {step}", self.name);
        self.step.set(step.to_string());
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("FAILED in {} at step: {}", self.name, self.step.take());
        }
    }
}
