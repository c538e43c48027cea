//! Vault transit recipients against a real OpenBao dev server: wrap/unwrap,
//! a token whose policy only allows encrypt (403 on decrypt), AppRole and
//! Kubernetes-style logins, the CLI, and interop with the real sops both ways.
use crate::support;

use std::sync::OnceLock;

use ksec::keys::vault::{VaultAuth, VaultOptions, VaultSource};
use ksec::keys::{ErrorClass, KeyError, KeySource, Recipient};
use ksec::sops::Stanza;
use support::kms::Bao;
use zeroize::Zeroizing;

fn bao() -> Option<&'static Bao> {
    static B: OnceLock<Option<Bao>> = OnceLock::new();
    B.get_or_init(Bao::start).as_ref()
}

fn token(t: &str) -> VaultSource {
    VaultSource::new(
        VaultAuth::Token(Zeroizing::new(t.to_string())),
        VaultOptions::default(),
    )
}

fn class_of(e: &KeyError) -> ErrorClass {
    match e {
        KeyError::Backend { class, .. } => *class,
        other => panic!("expected a backend error, got {other}"),
    }
}

const TRANSIT_ALL: &str = r#"path "+/encrypt/*" { capabilities = ["update"] }
path "+/decrypt/*" { capabilities = ["update"] }"#;

#[test]
fn wraps_and_unwraps_against_openbao() {
    let Some(b) = bao() else { return };
    let uri = b.transit("transit-a", "sops");
    let r = Recipient::vault_from_uri(&uri).unwrap();
    let src = token(&b.root);
    let key = [5u8; 32];
    let st = src.wrap(&r, &key).unwrap();
    let Stanza::HcVault {
        vault_address,
        engine_path,
        key_name,
        enc,
        created_at,
    } = &st
    else {
        panic!("{st:?}")
    };
    assert_eq!(vault_address, b.addr());
    assert_eq!(engine_path, "transit-a");
    assert_eq!(key_name, "sops");
    assert!(enc.starts_with("vault:v1:"), "{enc}");
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok());
    assert_eq!(st.recipient(), r.id());
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &key);

    // The ciphertext is the transit one: Vault itself decrypts it to base64(key).
    let (code, v) = b.api(
        "POST",
        "transit-a/decrypt/sops",
        Some(serde_json::json!({"ciphertext": enc})),
        None,
    );
    assert_eq!(code, 200);
    use base64::Engine;
    assert_eq!(
        v["data"]["plaintext"].as_str().unwrap(),
        base64::engine::general_purpose::STANDARD.encode(key)
    );

    // Tampered ciphertext → invalid ciphertext, not a panic or a wrong key.
    let mut bad = st.clone();
    if let Stanza::HcVault { enc, .. } = &mut bad {
        *enc = "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    }
    let e = src.unwrap(&bad).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::InvalidCiphertext, "{e}");
}

#[test]
fn encrypt_only_token_gets_a_clear_403_on_decrypt() {
    let Some(b) = bao() else { return };
    let uri = b.transit("transit-eo", "sops");
    let enc_only = b.token_with_policy(
        "encrypt-only",
        r#"path "transit-eo/encrypt/sops" { capabilities = ["update"] }"#,
    );
    let r = Recipient::vault_from_uri(&uri).unwrap();
    let src = token(&enc_only);
    let st = src.wrap(&r, &[1u8; 32]).expect("encrypt is allowed");
    let e = src.unwrap(&st).unwrap_err();
    let text = e.to_string();
    assert_eq!(class_of(&e), ErrorClass::AccessDenied, "{text}");
    assert!(text.contains("vault transit key"), "{text}");
    assert!(text.contains(&uri), "names the key: {text}");
    assert!(
        text.contains("403") && text.contains("permission denied"),
        "{text}"
    );
    assert!(text.contains("decrypt"), "{text}");
    assert!(!text.contains(&enc_only), "never the token: {text}");
    // The root token still opens it.
    assert_eq!(token(&b.root).unwrap(&st).unwrap().as_slice(), &[1u8; 32]);

    // A bad token is access denied too, and a missing key is not found.
    let e = token("s.not-a-real-token-000000000")
        .wrap(&r, &[0; 32])
        .unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::AccessDenied, "{e}");
    let missing =
        Recipient::vault_from_uri(&format!("{}/v1/transit-eo/keys/nope", b.addr())).unwrap();
    let mut st2 = st.clone();
    if let Stanza::HcVault { key_name, .. } = &mut st2 {
        *key_name = "nope".into();
    }
    let e = token(&b.root).unwrap(&st2).unwrap_err();
    assert!(
        matches!(
            class_of(&e),
            ErrorClass::NotFound | ErrorClass::InvalidCiphertext
        ),
        "{e}"
    );
    let _ = missing;
}

#[test]
fn approle_login() {
    let Some(b) = bao() else { return };
    let uri = b.transit("transit-ar", "sops");
    b.token_with_policy("transit-all", TRANSIT_ALL);
    b.enable_auth("approle", "approle");
    b.post(
        "auth/approle/role/ksec",
        serde_json::json!({"token_policies": ["transit-all"], "token_ttl": "10m"}),
    );
    let role_id = b.get("auth/approle/role/ksec/role-id")["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_id =
        b.post("auth/approle/role/ksec/secret-id", serde_json::json!({}))["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_string();
    let src = VaultSource::new(
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id: role_id.clone(),
            secret_id: Zeroizing::new(secret_id.clone()),
        },
        VaultOptions::default(),
    );
    let r = Recipient::vault_from_uri(&uri).unwrap();
    let st = src.wrap(&r, &[2u8; 32]).unwrap();
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &[2u8; 32]);

    let bad = VaultSource::new(
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id,
            secret_id: Zeroizing::new("00000000-0000-0000-0000-000000000000".into()),
        },
        VaultOptions::default(),
    );
    let e = bad.wrap(&r, &[2u8; 32]).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("approle login"), "{text}");
    assert!(!text.contains(&secret_id), "{text}");
}

/// Kubernetes auth as pods use it: POST auth/<mount>/login {role, jwt} with the
/// service-account token file. OpenBao cannot reach a kube-apiserver here, so
/// the server side is the JWT method mounted at `kubernetes` with a static
/// public key; the client request is the same one Kubernetes auth receives.
#[test]
fn kubernetes_style_login_with_a_service_account_token() {
    let Some(b) = bao() else { return };
    let Some(py) = support::kms::need("python3", "signing a test service-account JWT") else {
        return;
    };
    let venv_py =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
    let py = if venv_py.is_file() { venv_py } else { py };
    let dir = support::bin::tempdir();
    let script = r#"
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pub = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
h = b(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
now = int(time.time())
c = b(json.dumps({"iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:prod:ksec", "aud": ["vault"], "iat": now, "exp": now + 600}).encode())
sig = b(k.sign(f"{h}.{c}".encode(), padding.PKCS1v15(), hashes.SHA256()))
open(sys.argv[1], "w").write(f"{h}.{c}.{sig}")
print(json.dumps({"pub": pub}))
"#;
    let jwt_path = dir.path().join("token");
    let o = support::bin::run(
        std::process::Command::new(&py)
            .args(["-c", script])
            .arg(&jwt_path),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let pubkey = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["pub"]
        .as_str()
        .unwrap()
        .to_string();

    let uri = b.transit("transit-k8s", "sops");
    b.token_with_policy("transit-all", TRANSIT_ALL);
    b.enable_auth("kubernetes", "jwt");
    b.post(
        "auth/kubernetes/config",
        serde_json::json!({"jwt_validation_pubkeys": [pubkey], "bound_issuer": "https://kubernetes.default.svc"}),
    );
    b.post(
        "auth/kubernetes/role/ksec",
        serde_json::json!({"role_type": "jwt", "bound_audiences": ["vault"], "user_claim": "sub",
            "bound_subject": "system:serviceaccount:prod:ksec", "token_policies": ["transit-all"]}),
    );
    let src = VaultSource::new(
        VaultAuth::Kubernetes {
            mount: "kubernetes".into(),
            role: "ksec".into(),
            jwt_path: jwt_path.clone(),
        },
        VaultOptions::default(),
    );
    let r = Recipient::vault_from_uri(&uri).unwrap();
    let st = src.wrap(&r, &[4u8; 32]).unwrap();
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &[4u8; 32]);

    // The env-driven path the CLI uses (VAULT_K8S_ROLE + token path), in a child process.
    let f = dir.path().join("s.yaml");
    std::fs::write(&f, support::kms::SECRET).unwrap();
    let o = support::bin::run(
        support::bin::ksec()
            .args(["encrypt", "-i", "--hc-vault-transit", &uri])
            .arg(&f)
            .env_remove("VAULT_TOKEN")
            .env("VAULT_K8S_ROLE", "ksec")
            .env("VAULT_K8S_TOKEN_PATH", &jwt_path),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let o = support::bin::run(
        support::bin::ksec()
            .arg("decrypt")
            .arg(&f)
            .env_remove("VAULT_TOKEN")
            .env("VAULT_K8S_ROLE", "ksec")
            .env("VAULT_K8S_TOKEN_PATH", &jwt_path),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));

    // A role the token is not bound to is refused at login.
    let wrong = VaultSource::new(
        VaultAuth::Kubernetes {
            mount: "kubernetes".into(),
            role: "nope".into(),
            jwt_path,
        },
        VaultOptions::default(),
    );
    let e = wrong.wrap(&r, &[4u8; 32]).unwrap_err();
    assert!(e.to_string().contains("kubernetes login"), "{e}");
}

#[test]
fn cli_with_vault_token_and_interop_with_real_sops_both_ways() {
    let Some(b) = bao() else { return };
    let Some(mut sops) = support::bin::sops_cmd() else {
        return;
    };
    let uri = b.transit("transit-sops", "sops");
    let dir = support::bin::tempdir();
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, support::kms::SECRET).unwrap();

    let o = support::bin::run(
        sops.args(["encrypt", "--hc-vault-transit", &uri])
            .arg(&plain)
            .env("VAULT_TOKEN", &b.root),
    );
    assert!(o.status.success(), "sops: {}", support::bin::stderr(&o));
    let by_sops = dir.path().join("by-sops.yaml");
    std::fs::write(&by_sops, &o.stdout).unwrap();
    let o = support::bin::run(
        support::bin::ksec()
            .args(["decrypt", "-v"])
            .arg(&by_sops)
            .env("VAULT_TOKEN", &b.root),
    );
    assert!(o.status.success(), "ksec: {}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));
    assert!(
        support::bin::stderr(&o).contains("opened by hc_vault"),
        "{}",
        support::bin::stderr(&o)
    );

    let o = support::bin::run(
        support::bin::ksec()
            .args(["encrypt", "--hc-vault-transit", &uri])
            .arg(&plain)
            .env("VAULT_TOKEN", &b.root),
    );
    assert!(o.status.success(), "ksec: {}", support::bin::stderr(&o));
    let by_ksec = dir.path().join("by-ksec.yaml");
    std::fs::write(&by_ksec, &o.stdout).unwrap();
    let mut sops = support::bin::sops_cmd().unwrap();
    let o = support::bin::run(
        sops.arg("decrypt")
            .arg(&by_ksec)
            .env("VAULT_TOKEN", &b.root),
    );
    assert!(o.status.success(), "sops: {}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));

    // ~/.vault-token is used when VAULT_TOKEN is unset.
    let home = support::bin::tempdir();
    std::fs::write(home.path().join(".vault-token"), &b.root).unwrap();
    let o = support::bin::run(
        support::bin::ksec()
            .arg("decrypt")
            .arg(&by_ksec)
            .env_remove("VAULT_TOKEN")
            .env("HOME", home.path()),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));

    // No token at all: a clear error, exit 1, nothing printed on stdout.
    let o = support::bin::run(
        support::bin::ksec()
            .arg("decrypt")
            .arg(&by_ksec)
            .env_remove("VAULT_TOKEN"),
    );
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    assert!(
        support::bin::stderr(&o).contains("no Vault token"),
        "{}",
        support::bin::stderr(&o)
    );
}
