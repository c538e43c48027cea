//! Google Cloud: KMS recipients and `ksec export --to gcp-sm://` against the
//! in-repo fake (tests/support/gcp_fake.py: TLS, OAuth token endpoint,
//! metadata server, Secret Manager), whose wire format is checked with
//! Google's own Python clients (google-cloud-kms, google-cloud-secret-manager,
//! REST transport). sops
//! 3.11 (the pinned oracle) only speaks gRPC to KMS and has no endpoint
//! override, so it cannot be pointed at the fake: interop is checked against
//! stanzas made by Google's client instead.
use crate::support;

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ksec::keys::gcp_kms::{GcpKmsOptions, GcpKmsSource};
use ksec::keys::{ErrorClass, KeyError, KeySource, Recipient};
use ksec::sops::Stanza;
use support::kms::{AzureFake, GcpFake};

fn fake() -> Option<&'static GcpFake> {
    static F: OnceLock<Option<GcpFake>> = OnceLock::new();
    F.get_or_init(GcpFake::start).as_ref()
}

fn class_of(e: &KeyError) -> ErrorClass {
    match e {
        KeyError::Backend { class, .. } => *class,
        other => panic!("expected a backend error, got {other}"),
    }
}

fn field<'a>(st: &'a Stanza, k: &str) -> &'a str {
    match st {
        Stanza::Other { kind, fields } if kind == "gcp_kms" => fields.str_of(k).unwrap(),
        other => panic!("not a gcp_kms stanza: {other:?}"),
    }
}

fn with_enc(st: &Stanza, enc: &str) -> Stanza {
    let id = field(st, "resource_id");
    ksec::keys::gcp_kms::stanza(id, field(st, "created_at"), enc)
}

#[test]
fn wraps_and_unwraps_with_the_stanza_sops_writes() {
    let Some(f) = fake() else { return };
    let id = f.create_key("rt");
    let src = GcpKmsSource::new(f.options());
    let key = [9u8; 32];
    let st = src
        .wrap(&Recipient::gcp_from_str(&id).unwrap(), &key)
        .unwrap();
    assert_eq!(field(&st, "resource_id"), id);
    assert!(chrono::DateTime::parse_from_rfc3339(field(&st, "created_at")).is_ok());
    assert!(
        STANDARD.decode(field(&st, "enc")).is_ok(),
        "standard base64"
    );
    assert_eq!(st.recipient(), Recipient::gcp_from_str(&id).unwrap().id());
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &key);

    // Rotation: the old stanza still opens (KMS finds the version in the ciphertext).
    f.control("rotate", serde_json::json!({"name": id}));
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &key);

    // The file's metadata holds exactly sops's fields.
    let ring = support::kms::ring(vec![Box::new(GcpKmsSource::new(f.options()))]);
    let enc =
        support::kms::encrypt_secret(&ring, vec![vec![Recipient::gcp_from_str(&id).unwrap()]], 0);
    let text = String::from_utf8(enc.clone()).unwrap();
    let block: String = text
        .lines()
        .skip_while(|l| !l.contains("gcp_kms:"))
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    for k in ["resource_id: ", "created_at: ", "enc: "] {
        assert!(block.contains(k), "{block}");
    }
    assert_eq!(
        support::kms::open_password(&ring, &enc).unwrap(),
        "CANARY-kms-4f1c"
    );
}

#[test]
fn errors_are_classified_and_name_the_key() {
    let Some(f) = fake() else { return };
    let id = f.create_key("errs");
    let src = GcpKmsSource::new(f.options());
    let st = src
        .wrap(&Recipient::gcp_from_str(&id).unwrap(), &[1u8; 32])
        .unwrap();

    let missing = id.replace("errs", "missing");
    let e = src
        .wrap(&Recipient::gcp_from_str(&missing).unwrap(), &[1u8; 32])
        .unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::NotFound, "{e}");
    assert!(
        e.to_string().contains("gcp kms key") && e.to_string().contains(&missing),
        "{e}"
    );

    let e = src
        .unwrap(&with_enc(&st, &STANDARD.encode([7u8; 60])))
        .unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::InvalidCiphertext, "{e}");

    // A 403 on decrypt: access denied, the key named.
    f.control("deny", serde_json::json!({"name": id, "op": "decrypt"}));
    let e = src.unwrap(&st).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::AccessDenied, "{e}");
    assert!(
        e.to_string().contains(&id) && e.to_string().contains("PERMISSION_DENIED"),
        "{e}"
    );
    f.control("deny", serde_json::json!({"name": id, "op": ""}));

    // The key version that wrapped the file was destroyed.
    f.control(
        "version-state",
        serde_json::json!({"name": id, "version": 1, "state": "DESTROYED"}),
    );
    let e = src.unwrap(&st).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::KeyDisabled, "{e}");
    f.control(
        "version-state",
        serde_json::json!({"name": id, "version": 1, "state": "ENABLED"}),
    );
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &[1u8; 32]);

    // Not a CryptoKey name: refused before any call, as sops does.
    assert!(Recipient::gcp_from_str("projects/p/locations/l/keyRings/r").is_err());

    // A credential the token endpoint rejects (someone else's key): access denied, no key material echoed.
    let mut sa: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&f.sa).unwrap()).unwrap();
    sa["client_email"] = "intruder@fake-project.iam.gserviceaccount.com".into();
    let o = GcpKmsOptions {
        credentials_json: Some(zeroize::Zeroizing::new(sa.to_string())),
        ..f.options()
    };
    let e = GcpKmsSource::new(o).unwrap(&st).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::AccessDenied, "{e}");
    assert!(e.to_string().contains("invalid_grant"), "{e}");
    assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");
}

/// Google's Python client opens what ksec wrapped, and ksec opens what
/// Google's client encrypted (the stanza sops would write from it).
#[test]
fn google_python_client_agrees_with_the_fake_and_with_ksec() {
    let Some(f) = fake() else { return };
    let Some(py) =
        support::kms::venv_python("google.cloud.kms, google.auth", "GCP KMS wire format")
    else {
        return;
    };
    let id = f.create_key("py");
    let src = GcpKmsSource::new(f.options());
    let key: [u8; 32] = std::array::from_fn(|i| i as u8 * 5 + 3);
    let st = src
        .wrap(&Recipient::gcp_from_str(&id).unwrap(), &key)
        .unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gcp_sdk_check.py");
    let o = support::bin::run(
        std::process::Command::new(&py)
            .arg(script)
            .arg(f.url())
            .arg(&f.sa)
            .args([&id, field(&st, "enc"), &hex::encode(key)])
            .env("REQUESTS_CA_BUNDLE", &f.ca),
    );
    assert!(
        o.status.success(),
        "python client: {}",
        support::bin::stderr(&o)
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["ksec_enc_opened"], true, "{r}");
    assert_eq!(r["sdk_roundtrip"], true, "{r}");
    let theirs = with_enc(&st, r["sdk_enc"].as_str().unwrap());
    assert_eq!(src.unwrap(&theirs).unwrap().as_slice(), &key);
}

fn ksec_env(f: &GcpFake) -> std::process::Command {
    let mut c = support::bin::ksec();
    for (k, v) in f.env() {
        c.env(k, v);
    }
    c
}

/// One fresh access token from the metadata server (as a GKE pod would get).
fn metadata_token(f: &GcpFake) -> String {
    let url = format!(
        "http://127.0.0.1:{}/computeMetadata/v1/instance/service-accounts/default/token",
        f.metadata_port
    );
    support::kms::rt().block_on(async move {
        let v: serde_json::Value = reqwest::Client::new()
            .get(url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["access_token"].as_str().unwrap().to_string()
    })
}

#[test]
fn cli_with_each_credential_kind() {
    let Some(f) = fake() else { return };
    let id = f.create_key("cli");
    let dir = support::bin::tempdir();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, support::kms::SECRET).unwrap();
    // Service-account key file (GOOGLE_APPLICATION_CREDENTIALS).
    let o = support::bin::run(
        ksec_env(f)
            .args(["encrypt", "-i", "--gcp-kms", &id])
            .arg(&file),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let enc = std::fs::read_to_string(&file).unwrap();
    assert!(
        enc.contains("gcp_kms:") && !enc.contains("CANARY-kms"),
        "{enc}"
    );

    let decrypt = |c: &mut std::process::Command| {
        let o = support::bin::run(c.args(["decrypt"]).arg(&file));
        (
            o.status.code(),
            support::bin::stdout(&o),
            support::bin::stderr(&o),
        )
    };
    let ok = |r: (Option<i32>, String, String), what: &str| {
        assert_eq!(r.0, Some(0), "{what}: {}", r.2);
        assert!(r.1.contains("CANARY-kms-4f1c"), "{what}");
    };
    // sops's GOOGLE_CREDENTIALS, inline JSON of a gcloud user (refresh token).
    let user = std::fs::read_to_string(&f.user).unwrap();
    ok(
        decrypt(
            ksec_env(f)
                .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
                .env("GOOGLE_CREDENTIALS", &user),
        ),
        "GOOGLE_CREDENTIALS",
    );
    // gcloud's application_default_credentials.json under CLOUDSDK_CONFIG.
    let gcloud = dir.path().join("gcloud");
    std::fs::create_dir(&gcloud).unwrap();
    std::fs::copy(&f.user, gcloud.join("application_default_credentials.json")).unwrap();
    ok(
        decrypt(
            ksec_env(f)
                .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
                .env("CLOUDSDK_CONFIG", &gcloud),
        ),
        "gcloud ADC",
    );
    // Workload identity federation: a file-sourced subject token, STS, impersonation.
    ok(
        decrypt(ksec_env(f).env("GOOGLE_APPLICATION_CREDENTIALS", &f.external)),
        "external account",
    );
    // The metadata server (GKE Workload Identity).
    ok(
        decrypt(
            ksec_env(f)
                .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
                .env(
                    "GCE_METADATA_HOST",
                    format!("127.0.0.1:{}", f.metadata_port),
                ),
        ),
        "metadata server",
    );
    // A ready token (sops's GOOGLE_OAUTH_ACCESS_TOKEN), then the same token expired.
    let token = metadata_token(f);
    ok(
        decrypt(
            ksec_env(f)
                .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
                .env("GOOGLE_OAUTH_ACCESS_TOKEN", &token),
        ),
        "access token",
    );
    f.control("expire-tokens", serde_json::json!({ "token": token }));
    let before = std::fs::read(&file).unwrap();
    let (code, _, err) = decrypt(
        ksec_env(f)
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS")
            .env("GOOGLE_OAUTH_ACCESS_TOKEN", &token),
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("access denied") && err.contains(&id) && err.contains("UNAUTHENTICATED"),
        "{err}"
    );
    assert!(!err.contains(&token), "the token leaked: {err}");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // rotate --rm-gcp-kms/--add-gcp-kms: the recipient set changes.
    let id2 = f.create_key("cli2");
    let o = support::bin::run(
        ksec_env(f)
            .args(["rotate", "-i", "--add-gcp-kms", &id2, "--rm-gcp-kms", &id])
            .arg(&file),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let enc = std::fs::read_to_string(&file).unwrap();
    assert!(
        enc.contains(&id2) && !enc.contains(&format!("{id}\n")),
        "{enc}"
    );
    ok(decrypt(&mut ksec_env(f)), "after rotate");
}

/// age + GCP KMS + AWS KMS (moto) in one group opens with any one; a Shamir
/// 2-of-3 across age, GCP KMS and Azure Key Vault opens with any two of them.
#[test]
fn multi_cloud_groups_and_shamir() {
    let Some(f) = fake() else { return };
    let Some(az) = AzureFake::start() else { return };
    let Some(moto) = support::kms::Moto::start() else {
        return;
    };
    let arn = moto.create_key("us-east-1");
    let k = Recipient::kms_from_str(&arn, Default::default(), "");
    let aws_src = || -> Box<dyn KeySource> {
        Box::new(ksec::keys::aws_kms::AwsKmsSource::new(moto.options()))
    };
    let dir = support::bin::tempdir();
    let age = support::bin::age_key(dir.path(), "age");
    let gid = f.create_key("multi");
    az.create_key("multi");
    let (a, g, z) = (
        Recipient::Age(age.recipient.clone()),
        Recipient::gcp_from_str(&gid).unwrap(),
        Recipient::azure_from_url(&format!("{}/keys/multi", az.url())).unwrap(),
    );
    let age_src = || support::kms::age_source(&age.identity_file);
    let gcp_src = || -> Box<dyn KeySource> { Box::new(GcpKmsSource::new(f.options())) };
    let az_src = || -> Box<dyn KeySource> {
        Box::new(ksec::keys::azure_kv::AzureKvSource::new(az.options()))
    };
    let enc = support::kms::encrypt_secret(
        &support::kms::ring(vec![age_src(), gcp_src(), aws_src()]),
        vec![vec![a.clone(), g.clone(), k]],
        0,
    );
    let text = String::from_utf8_lossy(&enc);
    assert!(
        text.contains("gcp_kms:") && text.contains("kms:") && text.contains("age:"),
        "{text}"
    );
    for (name, only) in [("age", age_src()), ("gcp", gcp_src()), ("aws", aws_src())] {
        let r = support::kms::ring(vec![only]);
        assert_eq!(
            support::kms::open_password(&r, &enc).unwrap(),
            "CANARY-kms-4f1c",
            "{name}"
        );
    }

    let all = support::kms::ring(vec![age_src(), gcp_src(), az_src()]);
    let enc = support::kms::encrypt_secret(&all, vec![vec![a], vec![g], vec![z]], 2);
    for (name, pair) in [
        ("age+gcp", vec![age_src(), gcp_src()]),
        ("gcp+azure", vec![gcp_src(), az_src()]),
        ("age+azure", vec![age_src(), az_src()]),
    ] {
        let r = support::kms::ring(pair);
        assert_eq!(
            support::kms::open_password(&r, &enc).unwrap(),
            "CANARY-kms-4f1c",
            "{name}"
        );
    }
    let e = support::kms::open_password(&support::kms::ring(vec![gcp_src()]), &enc).unwrap_err();
    assert!(e.contains("only 1 of the 2 key groups"), "{e}");
}

// ------------------------------------------------------------------ export

fn sm(f: &GcpFake, args: &[&str]) -> Option<serde_json::Value> {
    let py = support::kms::venv_python(
        "google.cloud.secretmanager",
        "reading Secret Manager back with Google's client",
    )?;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gcp_secrets_check.py");
    let o = support::bin::run(
        std::process::Command::new(&py)
            .arg(script)
            .arg(f.url())
            .arg(&f.sa)
            .arg("fake-project")
            .args(args)
            .env("REQUESTS_CA_BUNDLE", &f.ca),
    );
    assert!(
        o.status.success(),
        "python client: {}",
        support::bin::stderr(&o)
    );
    Some(serde_json::from_slice(&o.stdout).unwrap())
}

fn export_env(f: &GcpFake) -> Vec<(&'static str, String)> {
    let mut e = f.env();
    e.push(("KSEC_GCP_SM_ENDPOINT", f.url().to_string()));
    e
}

fn sm_id(path: &str) -> String {
    ksec::export::gcp_sm::secret_id(path).unwrap()
}

#[test]
fn export_to_secret_manager_reads_back_with_googles_client() {
    let Some(f) = GcpFake::start() else { return };
    let fx = support::export::Fixture::new(10);
    let env = export_env(&f);
    let to = "gcp-sm://fake-project/ksec";
    let foreign = sm_id("ksec/dev/dev-app/app-2");
    let Some(_) = sm(&f, &["set", &foreign, "{\"x\":\"theirs\"}"]) else {
        return;
    };

    let (code, r, err) = fx.export(&["--to", to], &env);
    assert_eq!(code, 1, "{err}");
    assert!(!r.to_string().contains("CANARY") && !err.contains("CANARY"));
    let st = support::export::statuses(&r);
    assert_eq!(
        support::export::outcome(&r, "dev-app/app-2")["status"],
        "skipped-foreign"
    );
    assert_eq!(st.get("exported"), Some(&(fx.count() - 1)), "{r}");
    assert_eq!(
        support::export::outcome(&r, "prod-web/registry-pull-secret")["entry"],
        "projects/fake-project/secrets/ksec--prod--prod-web--registry-pull-secret"
    );

    let ids: Vec<String> = fx
        .expected
        .keys()
        .map(|k| sm_id(&format!("ksec/{}/{}/{}", k.0, k.1, k.2)))
        .collect();
    let mut args = vec!["get"];
    args.extend(ids.iter().map(String::as_str));
    let got = sm(&f, &args).unwrap();
    for (key, id) in fx.expected.keys().zip(&ids) {
        let s = &got[id];
        if *id == foreign {
            assert_eq!(
                s["value"], "{\"x\":\"theirs\"}",
                "foreign secret overwritten"
            );
            continue;
        }
        let v: std::collections::BTreeMap<String, String> =
            serde_json::from_str(s["value"].as_str().unwrap()).unwrap();
        assert_eq!(v, fx.stored(key), "{id}");
        assert_eq!(s["labels"]["managed-by"], "ksec");
        assert_eq!(s["versions"], 1);
    }

    // Compare first: a second run writes nothing.
    let (_, r, _) = fx.export(&["--to", to], &env);
    assert_eq!(
        support::export::statuses(&r).get("unchanged"),
        Some(&(fx.count() - 1)),
        "{r}"
    );
    let again = sm(&f, &args).unwrap();
    for id in &ids {
        assert_eq!(
            again[id]["versions"], got[id]["versions"],
            "{id}: new version on a no-op run"
        );
    }

    // --force claims the foreign secret, keeping its owner's other labels.
    let (code, r, err) = fx.export(&["--to", to, "--force"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        support::export::outcome(&r, "dev-app/app-2")["status"],
        "exported"
    );
    let s = &sm(&f, &["get", &foreign]).unwrap()[&foreign];
    assert_eq!(s["labels"]["managed-by"], "ksec");
    assert_eq!(s["labels"]["owner"], "team-x");
    assert_eq!(s["versions"], 2);
}

#[test]
fn secret_manager_failing_halfway_then_rerun_completes() {
    let Some(f) = GcpFake::start() else { return };
    let fx = support::export::Fixture::new(6);
    let env = export_env(&f);
    let to = "gcp-sm://fake-project";
    f.control("fail-after", serde_json::json!({"adds": 7}));
    let (code, r, err) = fx.export(&["--to", to, "--concurrency", "2"], &env);
    assert_eq!(code, 1, "{err}");
    let st = support::export::statuses(&r);
    assert_eq!(st.get("exported"), Some(&7), "{r}");
    assert_eq!(st.get("failed"), Some(&(fx.count() - 7)), "{r}");
    for s in r["secrets"].as_array().unwrap() {
        if s["status"] == "failed" {
            assert_eq!(s["error_class"], "network", "{s}");
        }
    }
    f.control("fail-after", serde_json::json!({}));
    let (code, r, err) = fx.export(&["--to", to], &env);
    assert_eq!(code, 0, "{err} {r}");
    let st = support::export::statuses(&r);
    assert_eq!(st.get("unchanged"), Some(&7), "{r}");
    assert_eq!(st.get("exported"), Some(&(fx.count() - 7)), "{r}");
    let remote = f.control("secrets", serde_json::json!({}));
    for k in fx.expected.keys() {
        let name = format!(
            "projects/fake-project/secrets/{}",
            sm_id(&format!("{}/{}/{}", k.0, k.1, k.2))
        );
        assert_eq!(remote[&name]["versions"], 1, "{name}: {remote}");
    }
}

fn load_yaml(p: &std::path::Path) -> serde_json::Value {
    let bytes = std::fs::read(p).unwrap();
    let docs = ksec::sops::store::load_plain(ksec::sops::Format::Yaml, &bytes).unwrap();
    ksec::sops::Value::Map(docs.0[0].clone()).to_json()
}

/// `--eso-out` for gcp-sm: a gcpsm SecretStore (Workload Identity, or a
/// key-file secret) that ESO's schema accepts, and IAM bindings on exactly
/// the exported secrets, never on the project.
#[test]
fn eso_objects_for_secret_manager_validate_and_grant_exact_secrets() {
    let Some(f) = GcpFake::start() else { return };
    let fx = support::export::Fixture::new(2);
    let env = export_env(&f);
    let out = support::bin::tempdir();
    let eso = out.path().join("eso");
    let (code, r, err) = fx.export(
        &[
            "--to",
            "gcp-sm://fake-project",
            "--eso-out",
            eso.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, 0, "{err} {r}");
    let store = load_yaml(&eso.join("prod-web/secretstore.yaml"));
    let wi = &store["spec"]["provider"]["gcpsm"];
    assert_eq!(wi["projectID"], "fake-project", "{store}");
    assert_eq!(
        wi["auth"]["workloadIdentity"]["serviceAccountRef"]["name"],
        "prod-workload-sa"
    );
    let text = std::fs::read_to_string(eso.join("prod-web/secretstore.yaml")).unwrap();
    assert!(
        text.contains("iam.gke.io/gcp-service-account=prod-external-secrets@fake-project.iam.gserviceaccount.com"),
        "{text}"
    );
    let es_file = std::fs::read_dir(eso.join("prod-web"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".externalsecret.yaml"))
        .unwrap();
    let es = load_yaml(&es_file);
    let key = es["spec"]["data"][0]["remoteRef"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("prod--prod-web--"), "{key}");

    // IAM: one binding per exported secret of the environment, no project-wide grant.
    let iam = std::fs::read_to_string(eso.join("policies/gcp-iam-prod.sh")).unwrap();
    let prod: Vec<String> = fx
        .expected
        .keys()
        .filter(|k| k.0 == "prod")
        .map(|k| sm_id(&format!("{}/{}/{}", k.0, k.1, k.2)))
        .collect();
    assert_eq!(
        iam.matches("gcloud secrets add-iam-policy-binding ")
            .count(),
        prod.len(),
        "{iam}"
    );
    for id in &prod {
        assert!(
            iam.contains(&format!(
                "add-iam-policy-binding {id} --project fake-project"
            )),
            "{iam}"
        );
    }
    assert!(
        !iam.contains("projects add-iam-policy-binding") && !iam.contains('*'),
        "{iam}"
    );

    // The key-file variant.
    let eso2 = out.path().join("eso2");
    let (code, _, err) = fx.export(
        &[
            "--to",
            "gcp-sm://fake-project",
            "--eso-out",
            eso2.to_str().unwrap(),
            "--eso-gcp-key-secret",
            "gcp-sm-key/key.json",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let store2 = load_yaml(&eso2.join("prod-web/secretstore.yaml"));
    assert_eq!(
        store2["spec"]["provider"]["gcpsm"]["auth"]["secretRef"]["secretAccessKeySecretRef"],
        serde_json::json!({"name": "gcp-sm-key", "key": "key.json"})
    );

    let Some(res) = support::export::eso_validate(&[store.clone(), store2, es]) else {
        return;
    };
    for r in &res {
        assert_eq!(r["ok"], true, "ESO schema rejects {r}");
    }
    // The validator can fail: workloadIdentity without its service account.
    let mut bad = store;
    bad["spec"]["provider"]["gcpsm"]["auth"]["workloadIdentity"] = serde_json::json!({});
    let res = support::export::eso_validate(&[bad]).unwrap();
    assert_eq!(res[0]["ok"], false, "{res:?}");
}

/// sops 3.11 cannot reach the fake, but it reads and rewrites files holding
/// gcp_kms stanzas: it opens a ksec file through its age recipient, `sops
/// set` re-emits the gcp_kms stanza from its own model, and ksec then opens
/// the sops-written file through GCP KMS alone.
#[test]
fn sops_keeps_the_gcp_kms_stanza_ksec_wrote() {
    let Some(f) = fake() else { return };
    let Some(mut sops) = support::bin::sops_cmd() else {
        return;
    };
    let id = f.create_key("sops");
    let dir = support::bin::tempdir();
    let age = support::bin::age_key(dir.path(), "age");
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, support::kms::SECRET).unwrap();
    let o = support::bin::run(
        ksec_env(f)
            .args(["encrypt", "-i", "--age", &age.recipient, "--gcp-kms", &id])
            .arg(&file),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let o = support::bin::run(
        sops.args(["set"])
            .arg(&file)
            .args(["[\"stringData\"][\"user\"]", "\"sops-wrote-this\""])
            .env("SOPS_AGE_KEY_FILE", &age.identity_file),
    );
    assert!(o.status.success(), "sops set: {}", support::bin::stderr(&o));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("gcp_kms:") && text.contains(&id), "{text}");
    let o = support::bin::run(ksec_env(f).args(["decrypt", "-v"]).arg(&file));
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("sops-wrote-this"));
    assert!(
        support::bin::stderr(&o).contains("gcp_kms"),
        "{}",
        support::bin::stderr(&o)
    );
}
