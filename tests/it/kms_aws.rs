//! AWS KMS recipients against a real moto server: wrap/unwrap, encryption
//! context, role assumption, error classes, concurrency, the CLI, and interop
//! with the real sops both ways through AWS_ENDPOINT_URL.
use crate::support;

use std::sync::OnceLock;

use base64::Engine;
use indexmap::IndexMap;
use ksec::keys::aws_kms::AwsKmsSource;
use ksec::keys::{ErrorClass, KeyError, KeySource, Recipient};
use ksec::sops::Stanza;
use support::kms::Moto;

/// One moto per test binary; tests create their own keys.
fn moto() -> Option<&'static Moto> {
    static M: OnceLock<Option<Moto>> = OnceLock::new();
    M.get_or_init(Moto::start).as_ref()
}

fn kms(arn: &str, ctx: &[(&str, &str)], role: &str) -> Recipient {
    Recipient::Kms {
        arn: arn.into(),
        role: role.into(),
        context: ctx
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<IndexMap<_, _>>(),
        aws_profile: String::new(),
    }
}

fn class_of(e: &KeyError) -> ErrorClass {
    match e {
        KeyError::Backend { class, .. } => *class,
        other => panic!("expected a backend error, got {other}"),
    }
}

#[test]
fn wraps_and_unwraps_against_moto() {
    let Some(m) = moto() else { return };
    let arn = m.create_key("us-east-1");
    let src = AwsKmsSource::new(m.options());
    let key = [7u8; 32];
    let st = src.wrap(&kms(&arn, &[], ""), &key).unwrap();
    let Stanza::Kms {
        arn: a,
        enc,
        created_at,
        role,
        ..
    } = &st
    else {
        panic!("not a kms stanza: {st:?}")
    };
    assert_eq!(a, &arn);
    assert!(role.is_empty());
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok());
    assert!(created_at.ends_with('Z'), "UTC: {created_at}");
    let blob = base64::engine::general_purpose::STANDARD
        .decode(enc)
        .expect("enc is std base64");
    assert!(blob.len() > 32);
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &key);

    // A tampered blob is refused by KMS, with the class and the key named.
    let mut bad = st.clone();
    if let Stanza::Kms { enc, .. } = &mut bad {
        let mut b = blob.clone();
        let n = b.len();
        b[n - 1] ^= 1;
        *enc = base64::engine::general_purpose::STANDARD.encode(b);
    }
    let e = src.unwrap(&bad).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::InvalidCiphertext, "{e}");
    assert!(e.to_string().contains(&arn), "{e}");
}

#[test]
fn encryption_context_is_recorded_and_enforced() {
    let Some(m) = moto() else { return };
    let arn = m.create_key("us-east-1");
    let src = AwsKmsSource::new(m.options());
    let key = [9u8; 32];
    let st = src
        .wrap(&kms(&arn, &[("app", "web"), ("env", "prod")], ""), &key)
        .unwrap();
    let Stanza::Kms { context, .. } = &st else {
        panic!()
    };
    assert_eq!(context.get("app").map(String::as_str), Some("web"));
    assert_eq!(context.get("env").map(String::as_str), Some("prod"));
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &key);

    for ctx in [
        vec![("app", "web"), ("env", "dev")],
        vec![("app", "web")],
        vec![],
    ] {
        let mut wrong = st.clone();
        if let Stanza::Kms { context, .. } = &mut wrong {
            *context = ctx
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        let e = src.unwrap(&wrong).unwrap_err();
        assert_eq!(class_of(&e), ErrorClass::InvalidCiphertext, "{ctx:?}: {e}");
    }
}

#[test]
fn region_comes_from_the_arn_and_a_role_is_assumed() {
    let Some(m) = moto() else { return };
    let arn = m.create_key("eu-west-1");
    assert!(arn.contains(":eu-west-1:"), "{arn}");
    let src = AwsKmsSource::new(m.options());
    let role = "arn:aws:iam::123456789012:role/ksec-decrypt";
    let r = kms(&arn, &[], role);
    assert_eq!(r.id(), format!("{arn}+{role}"));
    let st = src.wrap(&r, &[1u8; 32]).unwrap();
    assert_eq!(st.recipient(), r.id());
    assert_eq!(src.unwrap(&st).unwrap().as_slice(), &[1u8; 32]);
}

#[test]
fn unknown_key_and_disabled_key_errors_name_backend_key_and_class() {
    let Some(m) = moto() else { return };
    let src = AwsKmsSource::new(m.options());
    let missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";
    let e = src.wrap(&kms(missing, &[], ""), &[0u8; 32]).unwrap_err();
    let text = e.to_string();
    assert_eq!(class_of(&e), ErrorClass::NotFound, "{text}");
    assert!(text.starts_with("aws kms key "), "{text}");
    assert!(
        text.contains(missing) && text.contains("not found"),
        "{text}"
    );
    assert!(!text.contains("test:test"), "{text}");

    // Nothing listening: a network error after bounded retries, not a hang.
    let dead = AwsKmsSource::new(ksec::keys::aws_kms::AwsKmsOptions {
        endpoint_url: Some(format!("http://127.0.0.1:{}", support::kms::free_port())),
        static_credentials: Some(("test".into(), "test".into())),
    });
    let t = std::time::Instant::now();
    let e = dead.wrap(&kms(missing, &[], ""), &[0u8; 32]).unwrap_err();
    assert_eq!(class_of(&e), ErrorClass::Network, "{e}");
    assert!(t.elapsed().as_secs() < 30, "took {:?}", t.elapsed());
}

#[test]
fn many_threads_share_one_source_without_deadlock() {
    use rayon::prelude::*;
    let Some(m) = moto() else { return };
    let arns: Vec<String> = (0..3).map(|_| m.create_key("us-east-1")).collect();
    let src = AwsKmsSource::new(m.options());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(12)
        .build()
        .unwrap();
    let t = std::time::Instant::now();
    let results: Vec<bool> = pool.install(|| {
        (0..96u8)
            .into_par_iter()
            .map(|i| {
                let key = [i; 32];
                let st = src
                    .wrap(&kms(&arns[i as usize % 3], &[], ""), &key)
                    .unwrap();
                src.unwrap(&st).unwrap().as_slice() == key
            })
            .collect()
    });
    assert!(results.iter().all(|ok| *ok));
    assert!(t.elapsed().as_secs() < 60, "took {:?}", t.elapsed());
    // Also from inside someone else's tokio runtime (a controller).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let st = src.wrap(&kms(&arns[0], &[], ""), &[3u8; 32]).unwrap();
    let got = rt.block_on(async { src.unwrap(&st).unwrap() });
    assert_eq!(got.as_slice(), &[3u8; 32]);
}

#[test]
fn library_encrypt_and_open_a_file() {
    let Some(m) = moto() else { return };
    let arn = m.create_key("us-east-1");
    let ring = support::kms::ring(vec![Box::new(AwsKmsSource::new(m.options()))]);
    let enc = support::kms::encrypt_secret(&ring, vec![vec![kms(&arn, &[("k", "v")], "")]], 0);
    let text = String::from_utf8_lossy(&enc);
    assert!(!text.contains("CANARY-kms"), "{text}");
    assert!(text.contains("kms:") && text.contains(&arn), "{text}");
    assert_eq!(
        support::kms::open_password(&ring, &enc).unwrap(),
        "CANARY-kms-4f1c"
    );
}

// ------------------------------------------------------------------ CLI and sops

fn ksec_env(m: &Moto) -> std::process::Command {
    let mut c = support::bin::ksec();
    for (k, v) in m.env() {
        c.env(k, v);
    }
    c
}

#[test]
fn cli_encrypt_decrypt_and_failure_leaves_the_file_untouched() {
    let Some(m) = moto() else { return };
    let arn = m.create_key("us-east-1");
    let dir = support::bin::tempdir();
    let f = dir.path().join("s.yaml");
    std::fs::write(&f, support::kms::SECRET).unwrap();
    let o = support::bin::run(
        ksec_env(m)
            .args([
                "encrypt",
                "-i",
                "--kms",
                &arn,
                "--encryption-context",
                "team:web",
            ])
            .arg(&f),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let enc = std::fs::read_to_string(&f).unwrap();
    assert!(enc.contains(&arn) && !enc.contains("CANARY-kms"), "{enc}");
    assert!(enc.contains("team: web"), "context recorded: {enc}");
    let o = support::bin::run(ksec_env(m).args(["decrypt", "-v"]).arg(&f));
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));
    assert!(
        support::bin::stderr(&o).contains(&format!("opened by kms {arn}")),
        "{}",
        support::bin::stderr(&o)
    );

    // A key that does not exist: error names backend, key and class; file unchanged.
    let g = dir.path().join("t.yaml");
    std::fs::write(&g, support::kms::SECRET).unwrap();
    let missing = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";
    let o = support::bin::run(
        ksec_env(m)
            .args(["encrypt", "-i", "--kms", missing])
            .arg(&g),
    );
    assert!(!o.status.success());
    let err = support::bin::stderr(&o);
    assert!(
        err.contains("aws kms key") && err.contains(missing) && err.contains("not found"),
        "{err}"
    );
    assert!(
        !err.contains("AWS_SECRET") && !err.contains("test:test"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&g).unwrap(), support::kms::SECRET);

    // Without KMS access and no other recipient, decrypt fails and says why.
    let o = support::bin::run(
        support::bin::ksec()
            .args(["decrypt"])
            .arg(&f)
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", support::kms::free_port()),
            )
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("KSEC_KEY_SERVICE_TIMEOUT", "20"),
    );
    assert!(!o.status.success());
    assert!(
        support::bin::stderr(&o).contains("network error"),
        "{}",
        support::bin::stderr(&o)
    );
}

#[test]
fn interop_with_real_sops_both_ways() {
    let Some(m) = moto() else { return };
    let Some(mut sops) = support::bin::sops_cmd() else {
        return;
    };
    let arn = m.create_key("us-east-1");
    let dir = support::bin::tempdir();
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, support::kms::SECRET).unwrap();

    // sops encrypts, ksec decrypts.
    for (k, v) in m.env() {
        sops.env(k, v);
    }
    let o = support::bin::run(
        sops.args(["encrypt", "--kms", &arn, "--encryption-context", "app:web"])
            .arg(&plain),
    );
    assert!(o.status.success(), "sops: {}", support::bin::stderr(&o));
    let by_sops = dir.path().join("by-sops.yaml");
    std::fs::write(&by_sops, &o.stdout).unwrap();
    let o = support::bin::run(ksec_env(m).arg("decrypt").arg(&by_sops));
    assert!(o.status.success(), "ksec: {}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));

    // ksec encrypts, sops decrypts.
    let o = support::bin::run(
        ksec_env(m)
            .args(["encrypt", "--kms", &arn, "--encryption-context", "app:web"])
            .arg(&plain),
    );
    assert!(o.status.success(), "ksec: {}", support::bin::stderr(&o));
    let by_ksec = dir.path().join("by-ksec.yaml");
    std::fs::write(&by_ksec, &o.stdout).unwrap();
    let mut sops = support::bin::sops_cmd().unwrap();
    for (k, v) in m.env() {
        sops.env(k, v);
    }
    let o = support::bin::run(sops.arg("decrypt").arg(&by_ksec));
    assert!(o.status.success(), "sops: {}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));
}
