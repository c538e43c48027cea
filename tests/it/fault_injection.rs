//! Fault injection against the real servers (issue 9): a loopback proxy
//! (tests/support/proxy.rs) sits in front of moto (AWS KMS), the OpenBao dev
//! server (Vault transit) and the kube-apiserver, and throttles, fails,
//! slows, drops or cuts them mid-operation. Every case asserts bounded
//! retries (requests counted at the proxy), a clear error naming the backend
//! and key, no partial state on disk or in the cluster, and recovery on the
//! next run.
//!
//! Killing the dev servers themselves would lose their in-memory keys, so a
//! "killed" server is the proxy resetting every connection and refusing new
//! ones; clients see exactly what a crashed peer looks like (RST).
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::kms::proxy::{Action, Proxy, rule};
use support::kms::{Bao, Moto};

fn bao() -> Option<&'static Bao> {
    static B: OnceLock<Option<Bao>> = OnceLock::new();
    B.get_or_init(Bao::start).as_ref()
}

fn moto() -> Option<&'static Moto> {
    static M: OnceLock<Option<Moto>> = OnceLock::new();
    M.get_or_init(Moto::start).as_ref()
}

/// A transit key on OpenBao behind a fresh proxy, and a temp dir holding
/// one plaintext Secret `s.yaml`: (proxy, key URI through the proxy, dir, file).
fn vault_case(b: &Bao, mount: &str) -> (Proxy, String, tempfile::TempDir, PathBuf) {
    let uri = b.transit(mount, "ksec");
    let proxy = Proxy::http(&upstream(b.addr()));
    let puri = uri.replacen(b.addr(), &proxy.url(), 1);
    let (dir, f) = plain_secret();
    (proxy, puri, dir, f)
}

fn plain_secret() -> (tempfile::TempDir, PathBuf) {
    let dir = support::bin::tempdir();
    let f = dir.path().join("s.yaml");
    std::fs::write(&f, support::kms::SECRET).unwrap();
    (dir, f)
}

/// `ksec encrypt -i --hc-vault-transit URI TARGET` with the root token.
fn encrypt_vault(b: &Bao, uri: &str, target: &Path) -> std::process::Command {
    let mut c = ksec_vault(b);
    c.args(["encrypt", "-i", "--hc-vault-transit", uri])
        .arg(target);
    c
}

fn upstream(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Exit 1 after 1 + 2 retries at most (counted at the proxy), an error
/// containing every `needle`, and `file` still the plaintext. Returns stderr.
/// With the service answering again, `args` on `file` (commands from
/// `ksec`, which points them at the service) succeeds and the file decrypts
/// to its values.
fn recovers(proxy: &Proxy, ksec: impl Fn() -> std::process::Command, file: &Path, args: &[&str]) {
    proxy.set(rule(|_| Action::Pass));
    let o = support::bin::run(ksec().args(args).arg(file));
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let o = support::bin::run(ksec().arg("decrypt").arg(file));
    assert!(
        support::bin::stdout(&o).contains("CANARY-kms-4f1c"),
        "{}",
        support::bin::stderr(&o)
    );
}

fn failed_within_retries(o: &Output, proxy: &Proxy, file: &Path, needles: &[&str]) -> String {
    let err = support::bin::stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let n = proxy.count();
    assert!(
        (2..=3).contains(&n),
        "expected 1 + 2 retries at most, saw {n} requests"
    );
    for needle in needles {
        assert!(err.contains(needle), "the error lacks {needle:?}: {err}");
    }
    assert_eq!(
        std::fs::read_to_string(file).unwrap(),
        support::kms::SECRET,
        "file changed"
    );
    err
}

fn ksec_vault(b: &Bao) -> std::process::Command {
    let mut c = support::bin::ksec();
    c.env("VAULT_TOKEN", &b.root);
    c
}

fn decrypts_to_secret(b: &Bao, file: &Path) -> bool {
    let o = support::bin::run(ksec_vault(b).arg("decrypt").arg(file));
    o.status.success() && support::bin::stdout(&o).contains("CANARY-kms-4f1c")
}

const VAULT_503: &str = r#"{"errors":["injected: service unavailable"]}"#;
const AWS_THROTTLE: &str =
    r#"{"__type":"ThrottlingException","message":"injected: rate exceeded"}"#;

#[test]
fn vault_5xx_is_retried_a_bounded_number_of_times_then_a_clear_error_and_no_change() {
    let Some(b) = bao() else { return };
    let (proxy, puri, _dir, f) = vault_case(b, "transit-fault5xx");

    proxy.set(rule(|_| Action::Status(503, VAULT_503)));
    let o = support::bin::run(&mut encrypt_vault(b, &puri, &f));
    let err = failed_within_retries(&o, &proxy, &f, &["vault transit key", "keys/ksec", "503"]);
    assert!(!err.contains(&b.root), "token leaked: {err}");

    // Transient: two failures, then the service answers; retries hide it.
    proxy.set(rule(|n| {
        if n < 2 {
            Action::Status(503, VAULT_503)
        } else {
            Action::Pass
        }
    }));
    let o = support::bin::run(&mut encrypt_vault(b, &puri, &f));
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    assert_eq!(proxy.count(), 3, "two failed attempts and one success");
    assert!(decrypts_to_secret(b, &f));

    // Throttling on decrypt: same bound, a clear error, nothing on stdout.
    proxy.set(rule(|_| Action::Status(429, VAULT_503)));
    let o = support::bin::run(ksec_vault(b).arg("decrypt").arg(&f));
    assert_eq!(o.status.code(), Some(1));
    assert!(support::bin::stdout(&o).is_empty());
    assert!(
        support::bin::stderr(&o).contains("throttled"),
        "{}",
        support::bin::stderr(&o)
    );
    assert!((2..=3).contains(&proxy.count()), "{}", proxy.count());
}

#[test]
fn aws_kms_throttling_is_bounded_and_leaves_the_file_alone_then_recovers() {
    let Some(m) = moto() else { return };
    let arn = m.create_key("us-east-1");
    let proxy = Proxy::http(&upstream(m.url()));
    let (_dir, f) = plain_secret();
    let ksec = || {
        let mut c = support::bin::ksec();
        for (k, v) in m.env() {
            c.env(k, v);
        }
        c.env("AWS_ENDPOINT_URL", proxy.url());
        c
    };

    proxy.set(rule(|_| Action::Status(429, AWS_THROTTLE)));
    let o = support::bin::run(ksec().args(["encrypt", "-i", "--kms", &arn]).arg(&f));
    failed_within_retries(&o, &proxy, &f, &["aws kms key", &arn, "throttled"]);

    // 500s: same bound.
    proxy.set(rule(|_| {
        Action::Status(
            500,
            r#"{"__type":"KMSInternalException","message":"injected"}"#,
        )
    }));
    let o = support::bin::run(ksec().args(["encrypt", "-i", "--kms", &arn]).arg(&f));
    failed_within_retries(&o, &proxy, &f, &["aws kms key", &arn]);

    recovers(&proxy, ksec, &f, &["encrypt", "-i", "--kms", &arn]);
}

#[test]
fn a_key_service_slower_than_the_deadline_times_out_without_writing() {
    let Some(b) = bao() else { return };
    let (proxy, puri, dir, f) = vault_case(b, "transit-slow");

    proxy.set(rule(|_| Action::Delay(Duration::from_secs(8))));
    let t = Instant::now();
    let o =
        support::bin::run(&mut encrypt_vault(b, &puri, &f).env("KSEC_KEY_SERVICE_TIMEOUT", "2"));
    let took = t.elapsed();
    let err = support::bin::stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no answer within 2s"), "{err}");
    assert!(
        took < Duration::from_secs(6),
        "the deadline was not kept: {took:?}"
    );
    assert_eq!(std::fs::read_to_string(&f).unwrap(), support::kms::SECRET);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "a temp file was left behind");
}

#[test]
fn a_key_service_killed_mid_directory_leaves_each_file_old_or_new_and_a_rerun_completes() {
    let Some(b) = bao() else { return };
    let (proxy, puri, dir, f) = vault_case(b, "transit-kill");
    std::fs::remove_file(f).unwrap();
    let n_files = 24;
    for i in 0..n_files {
        std::fs::write(
            dir.path().join(format!("s{i:02}.yaml")),
            support::kms::SECRET.replace("name: db", &format!("name: db{i}")),
        )
        .unwrap();
    }
    // The first 8 encryptions go through, then the server "dies": every
    // later connection is reset.
    proxy.set(rule(|n| if n < 8 { Action::Pass } else { Action::Reset }));
    let o = support::bin::run(
        &mut encrypt_vault(b, &puri, dir.path()).env("KSEC_KEY_SERVICE_CONCURRENCY", "2"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", support::bin::stderr(&o));
    assert!(
        proxy.count() <= 8 + 3 * (n_files - 8),
        "unbounded retries: {}",
        proxy.count()
    );
    let (mut old, mut new) = (0, 0);
    for i in 0..n_files {
        let p = dir.path().join(format!("s{i:02}.yaml"));
        let text = std::fs::read_to_string(&p).unwrap();
        if text == support::kms::SECRET.replace("name: db", &format!("name: db{i}")) {
            old += 1;
        } else {
            assert!(text.contains("sops:"), "{p:?} is neither old nor new");
            proxy.set(rule(|_| Action::Pass));
            assert!(decrypts_to_secret(b, &p), "{p:?} does not decrypt");
            proxy.set(rule(|n| if n < 8 { Action::Pass } else { Action::Reset }));
            new += 1;
        }
    }
    assert!(
        old > 0 && new > 0,
        "the kill was not mid-run: {old} old, {new} new"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        n_files,
        "temp files left behind"
    );

    // The server is back: the re-run encrypts the rest and skips the done ones.
    proxy.set(rule(|_| Action::Pass));
    let o = support::bin::run(&mut encrypt_vault(b, &puri, dir.path()));
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    for i in 0..n_files {
        assert!(decrypts_to_secret(
            b,
            &dir.path().join(format!("s{i:02}.yaml"))
        ));
    }
}

/// A copy of the test kubeconfig whose server is `proxy` (same TLS name: 127.0.0.1).
fn kubeconfig_via(kc: &Path, proxy: &Proxy, out: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(kc).unwrap();
    let re = regex::Regex::new(r"server: https://127\.0\.0\.1:\d+").unwrap();
    assert!(re.is_match(&text), "the test kubeconfig talks to 127.0.0.1");
    let p = out.join("kubeconfig-via-proxy");
    std::fs::write(
        &p,
        re.replace_all(&text, format!("server: https://{}", proxy.addr()).as_str())
            .as_ref(),
    )
    .unwrap();
    p
}

fn apiserver_addr(kc: &Path) -> String {
    let text = std::fs::read_to_string(kc).unwrap();
    let re = regex::Regex::new(r"server: https://(127\.0\.0\.1:\d+)").unwrap();
    re.captures(&text).unwrap()[1].to_string()
}

#[test]
fn apply_with_the_api_server_unreachable_fails_clearly_and_a_rerun_converges() {
    let Some(c) = support::cluster::cluster() else {
        return;
    };
    let mut repo = support::cluster::Repo::new(&c);
    let ns = c.namespace("prod", "fault");
    let id = repo.prod.identity_file.clone();
    let files: Vec<String> = (0..6)
        .map(|i| {
            repo.secret(
                &format!("p/s{i}.yaml"),
                &ns,
                &format!("s{i}"),
                &[("password", format!("CANARY-fault-{i}").as_str())],
            )
            .to_string_lossy()
            .into_owned()
        })
        .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let proxy = Proxy::tcp(&apiserver_addr(&c.kubeconfig));
    repo.kubeconfig = kubeconfig_via(&c.kubeconfig, &proxy, repo.dir.path());

    // Unreachable from the start: a clear error, non-zero, nothing applied.
    proxy.set(rule(|_| Action::Reset));
    let t = Instant::now();
    let o = repo.ksec("apply", &id, &args);
    let err = support::bin::stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("API server") || err.contains("connect"),
        "{err}"
    );
    assert!(!err.contains("CANARY"), "value leaked: {err}");
    assert!(t.elapsed() < Duration::from_secs(120), "no bounded give-up");
    for i in 0..6 {
        assert!(c.secret(&ns, &format!("s{i}")).is_none(), "s{i} applied");
    }

    // Dropped mid-apply: a slow server (every chunk held 150 ms) whose
    // connections are all cut as soon as the first Secret exists; new
    // connections are refused from then on.
    proxy.set(rule(|_| Action::Pass));
    proxy.slow(Duration::from_millis(150));
    let cutter = {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ns = ns.clone();
        let kc = c.kubeconfig.clone();
        std::thread::spawn(move || {
            // Cut as soon as the first Secret exists (seen through the real apiserver).
            let c2 = support::cluster::Cluster::at(kc);
            while Instant::now() < deadline {
                if (0..6).any(|i| c2.secret(&ns, &format!("s{i}")).is_some()) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };
    let watcher = std::thread::spawn({
        let files = files.clone();
        let kubeconfig = repo.kubeconfig.clone();
        let id = id.clone();
        move || {
            support::bin::run(
                support::bin::ksec()
                    .arg("apply")
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .arg("--identity")
                    .arg(&id)
                    .args(&files),
            )
        }
    });
    let saw_first = cutter.join().unwrap();
    proxy.set(rule(|_| Action::Reset));
    proxy.cut();
    proxy.slow(Duration::ZERO);
    let o = watcher.join().unwrap();
    let applied = (0..6)
        .filter(|i| c.secret(&ns, &format!("s{i}")).is_some())
        .count();
    eprintln!(
        "mid-apply cut: first Secret seen {saw_first}, {applied}/6 applied, exit {:?}: {}",
        o.status.code(),
        support::bin::stderr(&o).lines().last().unwrap_or("")
    );
    // The Secrets go out in parallel, so the cut lands between the writes
    // and the end of the run (consumers, restarts, report): still mid-command.
    assert!(saw_first, "no Secret appeared before the deadline");
    assert_ne!(o.status.code(), Some(0), "{}", support::bin::stderr(&o));
    assert!(!support::bin::stderr(&o).contains("CANARY"));
    // Every Secret that exists is whole (all keys, right value).
    for i in 0..6 {
        if c.secret(&ns, &format!("s{i}")).is_some() {
            let d = c.secret_data(&ns, &format!("s{i}"));
            assert_eq!(
                d.get("password").map(String::as_str),
                Some(format!("CANARY-fault-{i}").as_str())
            );
        }
    }

    // Reachable again: the re-run converges.
    proxy.set(rule(|_| Action::Pass));
    let (code, report, err) = repo.apply_json(&id, &args);
    assert_eq!(code, 0, "{err}");
    assert!(report.is_object(), "{report}");
    for i in 0..6 {
        let d = c.secret_data(&ns, &format!("s{i}"));
        assert_eq!(
            d.get("password").map(String::as_str),
            Some(format!("CANARY-fault-{i}").as_str())
        );
    }
}

#[test]
fn azure_key_vault_dropping_connections_is_retried_a_bounded_number_of_times() {
    static F: OnceLock<Option<support::kms::AzureFake>> = OnceLock::new();
    let Some(fake) = F.get_or_init(support::kms::AzureFake::start).as_ref() else {
        return;
    };
    fake.create_key("ksec-fault");
    // TLS end to end: the proxy only pipes bytes (and resets them).
    let proxy = Proxy::tcp(&upstream(&fake.url().replace("https://", "http://")));
    let url = format!("https://{}/keys/ksec-fault", proxy.addr());
    let (_dir, f) = plain_secret();
    let ksec = || {
        let mut c = support::bin::ksec();
        for (k, v) in fake.env() {
            c.env(k, v);
        }
        c
    };

    proxy.set(rule(|_| Action::Reset));
    let o = support::bin::run(ksec().args(["encrypt", "-i", "--azure-kv", &url]).arg(&f));
    failed_within_retries(&o, &proxy, &f, &["azure", "ksec-fault", "network error"]);

    recovers(&proxy, ksec, &f, &["encrypt", "-i", "--azure-kv", &url]);
}
