//! Files with age + AWS KMS + Vault recipients: one key group opens with any
//! single backend; a Shamir 2-of-3 across backends needs two of them. Real
//! moto and OpenBao servers; rings are built with only the backends "available".
use crate::support;

use ksec::keys::aws_kms::AwsKmsSource;
use ksec::keys::vault::{VaultAuth, VaultOptions, VaultSource};
use ksec::keys::{KeySource, Recipient};
use support::kms::{Bao, Moto};
use zeroize::Zeroizing;

struct World {
    moto: Moto,
    bao: Bao,
    dir: tempfile::TempDir,
    age: support::bin::AgeKey,
    arn: String,
    vault_uri: String,
}

fn world() -> Option<World> {
    let moto = Moto::start()?;
    let bao = Bao::start()?;
    let dir = support::bin::tempdir();
    let age = support::bin::age_key(dir.path(), "age");
    let arn = moto.create_key("us-east-1");
    let vault_uri = bao.transit("transit", "multi");
    Some(World {
        moto,
        bao,
        dir,
        age,
        arn,
        vault_uri,
    })
}

impl World {
    fn recipients(&self) -> (Recipient, Recipient, Recipient) {
        (
            Recipient::Age(self.age.recipient.clone()),
            Recipient::kms_from_str(&self.arn, Default::default(), ""),
            Recipient::vault_from_uri(&self.vault_uri).unwrap(),
        )
    }
    fn age_src(&self) -> Box<dyn KeySource> {
        support::kms::age_source(&self.age.identity_file)
    }
    fn kms_src(&self) -> Box<dyn KeySource> {
        Box::new(AwsKmsSource::new(self.moto.options()))
    }
    fn vault_src(&self) -> Box<dyn KeySource> {
        Box::new(VaultSource::new(
            VaultAuth::Token(Zeroizing::new(self.bao.root.clone())),
            VaultOptions::default(),
        ))
    }
    fn all(&self) -> ksec::keys::KeyRing {
        support::kms::ring(vec![self.age_src(), self.kms_src(), self.vault_src()])
    }
}

#[test]
fn one_group_opens_with_any_single_backend() {
    let Some(w) = world() else { return };
    let (a, k, v) = w.recipients();
    let enc = support::kms::encrypt_secret(&w.all(), vec![vec![a, k, v]], 0);
    let text = String::from_utf8_lossy(&enc);
    assert!(
        text.contains("age:") && text.contains("kms:") && text.contains("hc_vault:"),
        "{text}"
    );

    for (name, only) in [
        ("age", support::kms::ring(vec![w.age_src()])),
        ("kms", support::kms::ring(vec![w.kms_src()])),
        ("vault", support::kms::ring(vec![w.vault_src()])),
    ] {
        assert_eq!(
            support::kms::open_password(&only, &enc).unwrap_or_else(|e| panic!("{name}: {e}")),
            "CANARY-kms-4f1c",
            "{name}"
        );
    }
    let none = support::kms::ring(vec![]);
    let e = support::kms::open_password(&none, &enc).unwrap_err();
    assert!(
        e.contains("kms") && e.contains("hc_vault") && e.contains("age"),
        "{e}"
    );

    // A failing backend does not stop another: Vault with a bad token, KMS fine.
    let bad_vault = Box::new(VaultSource::new(
        VaultAuth::Token(Zeroizing::new("s.bogus-token-000000000000".into())),
        VaultOptions::default(),
    ));
    let ring = support::kms::ring(vec![bad_vault, w.kms_src()]);
    assert_eq!(
        support::kms::open_password(&ring, &enc).unwrap(),
        "CANARY-kms-4f1c"
    );

    // Through the CLI: age identity present, the cloud services unreachable: age opens it first.
    let f = w.dir.path().join("multi.yaml");
    std::fs::write(&f, &enc).unwrap();
    let o = support::bin::run(
        support::bin::ksec()
            .args(["decrypt", "-v"])
            .arg(&f)
            .env("SOPS_AGE_KEY_FILE", &w.age.identity_file)
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env_remove("VAULT_TOKEN"),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert!(
        support::bin::stderr(&o).contains("opened by age"),
        "{}",
        support::bin::stderr(&o)
    );
    // And with only Vault reachable.
    let o = support::bin::run(
        support::bin::ksec()
            .args(["decrypt", "-v"])
            .arg(&f)
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("KSEC_KEY_SERVICE_TIMEOUT", "15")
            .env("VAULT_TOKEN", &w.bao.root),
    );
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert!(
        support::bin::stderr(&o).contains("opened by hc_vault"),
        "{}",
        support::bin::stderr(&o)
    );
}

#[test]
fn shamir_two_of_three_across_backends_needs_two() {
    let Some(w) = world() else { return };
    let (a, k, v) = w.recipients();
    let enc = support::kms::encrypt_secret(&w.all(), vec![vec![a], vec![k], vec![v]], 2);
    let text = String::from_utf8_lossy(&enc);
    assert!(
        text.contains("key_groups:") && text.contains("shamir_threshold: 2"),
        "{text}"
    );

    let pairs: Vec<(&str, Vec<Box<dyn KeySource>>)> = vec![
        ("age+kms", vec![w.age_src(), w.kms_src()]),
        ("age+vault", vec![w.age_src(), w.vault_src()]),
        ("kms+vault", vec![w.kms_src(), w.vault_src()]),
    ];
    for (name, srcs) in pairs {
        assert_eq!(
            support::kms::open_password(&support::kms::ring(srcs), &enc)
                .unwrap_or_else(|e| panic!("{name}: {e}")),
            "CANARY-kms-4f1c"
        );
    }
    for (name, only) in [
        ("age", w.age_src()),
        ("kms", w.kms_src()),
        ("vault", w.vault_src()),
    ] {
        let e = support::kms::open_password(&support::kms::ring(vec![only]), &enc).unwrap_err();
        assert!(e.contains("only 1 of the 2"), "{name}: {e}");
    }

    // The real sops agrees: two of the three backends open the file.
    let Some(mut sops) = support::bin::sops_cmd() else {
        return;
    };
    let f = w.dir.path().join("shamir.yaml");
    std::fs::write(&f, &enc).unwrap();
    for (k, v) in w.moto.env() {
        sops.env(k, v);
    }
    let o = support::bin::run(sops.arg("decrypt").arg(&f).env("VAULT_TOKEN", &w.bao.root));
    assert!(o.status.success(), "sops: {}", support::bin::stderr(&o));
    assert!(support::bin::stdout(&o).contains("CANARY-kms-4f1c"));
}
