//! The committed CRD is exactly what `ksec controller crd` prints.

mod common;

#[test]
fn committed_crd_matches_generated() {
    let o = common::run(common::ksec().args(["controller", "crd"]));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let printed = common::stdout(&o);
    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy/crd.yaml"),
    )
    .unwrap();
    assert_eq!(
        committed, printed,
        "examples/deploy/crd.yaml is stale: ksec controller crd > examples/deploy/crd.yaml"
    );
    assert!(printed.contains("name: encryptedsecrets.ksec.io"));
    assert!(printed.contains("status: {}"), "status subresource");
    assert_eq!(printed, ksec::controller::crd::crd_yaml());
}

/// Without --namespace or --env the controller would not know where it may
/// write: a usage error (exit 2) before any connection.
#[test]
fn controller_needs_a_scope() {
    let dir = common::tempdir();
    let key = common::age_key(dir.path(), "k");
    let o = common::run(
        common::ksec()
            .args(["controller", "--kubeconfig", "/nonexistent", "--identity"])
            .arg(&key.identity_file),
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("--namespace"),
        "{}",
        common::stderr(&o)
    );
    let o = common::run(
        common::ksec()
            .args(["controller", "--env", "prod", "--identity"])
            .arg(&key.identity_file),
    );
    assert_eq!(o.status.code(), Some(2), "{}", common::stderr(&o));
    assert!(
        common::stderr(&o).contains("--recipients-dir"),
        "{}",
        common::stderr(&o)
    );
}
