//! Azure Key Vault recipients against the in-repo fake (TLS with a test CA,
//! the 401 Bearer challenge, a token endpoint), whose wire format is checked
//! with Azure's own Python SDK as an independent client. Fidelity is only as
//! good as the fake: real Key Vault access policies and HSM keys are not modelled.
use crate::support;

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ksec::keys::azure_kv::AzureKvSource;
use ksec::keys::{ErrorClass, KeyError, KeySource, Recipient};
use ksec::sops::Stanza;
use support::kms::AzureFake;

fn fake() -> Option<&'static AzureFake> {
    static F: OnceLock<Option<AzureFake>> = OnceLock::new();
    F.get_or_init(AzureFake::start).as_ref()
}

fn class_of(e: &KeyError) -> ErrorClass {
    match e {
        KeyError::Backend { class, .. } => *class,
        other => panic!("expected a backend error, got {other}"),
    }
}

fn recipient(f: &AzureFake, name: &str, version: &str) -> Recipient {
    let url = if version.is_empty() {
        format!("{}/keys/{name}", f.url())
    } else {
        format!("{}/keys/{name}/{version}", f.url())
    };
    Recipient::azure_from_url(&url).unwrap()
}

#[test]
fn wraps_and_unwraps_and_resolves_the_version() {
    let Some(f) = fake() else { return };
    let v1 = f.create_key("sops-a");
    let src = AzureKvSource::new(f.options());
    let key = [6u8; 32];
    let st = src.wrap(&recipient(f, "sops-a", ""), &key).unwrap();
    let Stanza::AzureKv {
        vault_url,
        name,
        version,
        enc,
        created_at,
    } = &st
    else {
        panic!("{st:?}")
    };
    assert_eq!(vault_url, f.url());
    assert_eq!(name, "sops-a");
    assert_eq!(version, &v1, "the concrete version is recorded");
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok());
    assert!(
        !enc.contains('=') && !enc.contains('+') && !enc.contains('/'),
        "base64url, no padding: {enc}"
    );
    assert_eq!(
        URL_SAFE_NO_PAD.decode(enc).unwrap().len(),
        256,
        "RSA-2048 ciphertext"
    );
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &key);

    // A new key version: the old stanza still opens (version pinned), new wraps use v2.
    let v2 = f.create_key("sops-a");
    assert_ne!(v1, v2);
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &key);
    let st2 = src.wrap(&recipient(f, "sops-a", ""), &key).unwrap();
    assert!(matches!(&st2, Stanza::AzureKv { version, .. } if *version == v2));
    // An explicit version is used as given.
    let st1 = src.wrap(&recipient(f, "sops-a", &v1), &key).unwrap();
    assert!(matches!(&st1, Stanza::AzureKv { version, .. } if *version == v1));
}

#[test]
fn errors_are_classified_and_name_the_key() {
    let Some(f) = fake() else { return };
    let v = f.create_key("sops-err");
    let src = AzureKvSource::new(f.options());
    let st = src.wrap(&recipient(f, "sops-err", ""), &[1u8; 32]).unwrap();

    let e = src
        .wrap(&recipient(f, "missing", ""), &[1u8; 32])
        .unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::NotFound, "{e}");
    assert!(
        e.to_string().contains("azure key vault key") && e.to_string().contains("/keys/missing"),
        "{e}"
    );

    let mut bad = st.clone();
    if let Stanza::AzureKv { enc, .. } = &mut bad {
        *enc = URL_SAFE_NO_PAD.encode([0u8; 256]);
    }
    let e = src.unwrap(&bad).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::InvalidCiphertext, "{e}");

    f.set_enabled("sops-err", &v, false);
    let e = src.unwrap(&st).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::KeyDisabled, "{e}");
    f.set_enabled("sops-err", &v, true);
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &[1u8; 32]);

    // A wrong client secret: access denied from the token endpoint, secret not echoed.
    let mut o = f.options();
    o.client_secret = Some((
        f.tenant.clone(),
        f.client_id.clone(),
        zeroize::Zeroizing::new("wrong-secret-value-123".into()),
    ));
    let e = AzureKvSource::new(o).unwrap(&st).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::AccessDenied, "{e}");
    assert!(!e.to_string().contains("wrong-secret-value-123"), "{e}");
    assert!(!e.to_string().contains(&f.client_secret), "{e}");
}

/// Azure's Python SDK opens what ksec wrapped, and ksec opens what was
/// encrypted locally from the key's published JWK.
#[test]
fn azure_python_sdk_agrees_with_the_fake_and_with_ksec() {
    let Some(f) = fake() else { return };
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
    let has_sdk = py.is_file()
        && std::process::Command::new(&py)
            .args(["-c", "import azure.keyvault.keys, azure.identity"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !has_sdk {
        if support::kms::require() {
            panic!(
                "azure-keyvault-keys/azure-identity are required (KSEC_REQUIRE_ORACLES=1); run scripts/test-deps.sh"
            );
        }
        eprintln!("SKIP: Azure's Python SDK is not installed in .test-deps/venv");
        return;
    }
    let v = f.create_key("sops-py");
    let src = AzureKvSource::new(f.options());
    let key: [u8; 32] = std::array::from_fn(|i| i as u8 * 7 + 1);
    let st = src.wrap(&recipient(f, "sops-py", ""), &key).unwrap();
    let Stanza::AzureKv { enc, .. } = &st else {
        panic!()
    };
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/azure_sdk_check.py");
    let o = support::bin::run(
        std::process::Command::new(&py)
            .arg(script)
            .args([
                f.url(),
                &f.tenant,
                &f.client_id,
                &f.client_secret,
                "sops-py",
                &v,
                enc,
                &hex::encode(key),
            ])
            .env("REQUESTS_CA_BUNDLE", &f.ca)
            .env("SSL_CERT_FILE", &f.ca),
    );
    assert!(
        o.status.success(),
        "python SDK: {}",
        support::bin::stderr(&o)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["ksec_enc_opened"], true, "{r}");
    assert_eq!(r["sdk_roundtrip"], true, "{r}");
    assert_eq!(r["wrap_roundtrip"], true, "{r}");
    let mut local = st.clone();
    if let Stanza::AzureKv { enc, .. } = &mut local {
        *enc = r["local_enc"].as_str().unwrap().to_string();
    }
    assert_eq!(
        hex::encode(src.unwrap(&local).unwrap().as_slice()),
        r["local_plain_hex"].as_str().unwrap()
    );
}

fn ksec_env(f: &AzureFake) -> std::process::Command {
    let mut c = support::bin::ksec();
    for (k, v) in f.env() {
        c.env(k, v);
    }
    c
}

#[test]
fn cli_with_client_secret_and_workload_identity() {
    let Some(f) = fake() else { return };
    f.create_key("sops-cli");
    let dir = support::bin::tempdir();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, support::kms::SECRET).unwrap();
    let url = format!("{}/keys/sops-cli", f.url());
    let o = support::bin::run(
        ksec_env(f)
            .args(["encrypt", "-i", "--azure-kv", &url])
            .arg(&file),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let enc = std::fs::read_to_string(&file).unwrap();
    assert!(
        enc.contains("azure_kv:") && !enc.contains("CANARY-kms"),
        "{enc}"
    );
    let o = support::bin::run(ksec_env(f).args(["decrypt"]).arg(&file));
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));

    // Workload identity: the federated token file is exchanged at the token endpoint.
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, &f.assertion).unwrap();
    let o = support::bin::run(
        ksec_env(f)
            .args(["decrypt"])
            .arg(&file)
            .env_remove("AZURE_CLIENT_SECRET")
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));

    // A federated token the tenant does not trust: access denied, file untouched.
    std::fs::write(&token_file, "eyJ-not-trusted").unwrap();
    let before = std::fs::read(&file).unwrap();
    let o = support::bin::run(
        ksec_env(f)
            .args(["rotate", "-i"])
            .arg(&file)
            .env_remove("AZURE_CLIENT_SECRET")
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file),
    );
    assert!(!o.status.success());
    assert!(
        support::bin::stderr(&o).contains("access denied"),
        "{}",
        support::bin::stderr(&o)
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
}
