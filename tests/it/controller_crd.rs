//! The committed CRD is exactly what `ksec controller crd` prints.
use crate::support;

#[test]
fn committed_crd_matches_generated() {
    let o = support::bin::run(support::bin::ksec().args(["controller", "crd"]));
    assert!(o.status.success(), "{}", support::bin::stderr(&o));
    let printed = support::bin::stdout(&o);
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
    let dir = support::bin::tempdir();
    let key = support::bin::age_key(dir.path(), "k");
    let o = support::bin::run(
        support::bin::ksec()
            .args(["controller", "--kubeconfig", "/nonexistent", "--identity"])
            .arg(&key.identity_file),
    );
    assert_eq!(o.status.code(), Some(2), "{}", support::bin::stderr(&o));
    assert!(
        support::bin::stderr(&o).contains("--namespace"),
        "{}",
        support::bin::stderr(&o)
    );
    let o = support::bin::run(
        support::bin::ksec()
            .args(["controller", "--env", "prod", "--identity"])
            .arg(&key.identity_file),
    );
    assert_eq!(o.status.code(), Some(2), "{}", support::bin::stderr(&o));
    assert!(
        support::bin::stderr(&o).contains("--recipients-dir"),
        "{}",
        support::bin::stderr(&o)
    );
}
