//! Which Secrets the controller may write. Both sources follow one rule:
//! never take over a Secret one of them did not create, so that creating an
//! EncryptedSecret or committing a file is not a way to overwrite a Secret
//! one cannot write directly.

use std::collections::BTreeMap;

use serde_json::Value as J;

/// Label on every Secret an EncryptedSecret generates: its name.
pub const LABEL_SOURCE: &str = "ksec.io/encryptedsecret";
/// Label on every Secret the Git source generates: the source's name.
pub const LABEL_GIT_SOURCE: &str = "ksec.io/git-source";

/// A writer of generated Secrets, as its label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer<'a> {
    /// `ksec.io/encryptedsecret=<name>`.
    EncryptedSecret(&'a str),
    /// `ksec.io/git-source=<name>`.
    GitSource(&'a str),
}

impl Writer<'_> {
    fn label(self) -> (&'static str, String) {
        match self {
            Writer::EncryptedSecret(n) => (LABEL_SOURCE, n.to_string()),
            Writer::GitSource(n) => (LABEL_GIT_SOURCE, n.to_string()),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Writer::EncryptedSecret(_) => "EncryptedSecret",
            Writer::GitSource(_) => "Git source",
        }
    }
}

/// Who created a live Secret, from its labels.
pub fn writer_of(labels: &BTreeMap<String, String>) -> Option<Writer<'_>> {
    labels
        .get(LABEL_SOURCE)
        .map(|s| Writer::EncryptedSecret(s))
        .or_else(|| labels.get(LABEL_GIT_SOURCE).map(|s| Writer::GitSource(s)))
}

/// `Ok` when `me` may write Secret `namespace/name` whose live labels are
/// `labels` (absent: no such Secret); else the refusal, saying how to hand it over.
pub fn may_write(
    me: Writer<'_>,
    namespace: &str,
    name: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<(), String> {
    let Some(labels) = labels else {
        return Ok(());
    };
    match writer_of(labels) {
        Some(w) if w == me => Ok(()),
        Some(w) => Err(format!(
            "Secret {namespace}/{name} belongs to {} {}",
            w.noun(),
            w.label().1
        )),
        None => {
            let (key, value) = me.label();
            Err(format!(
                "Secret {namespace}/{name} exists and was not created by this {}; delete it, or label it {key}={value} to hand it over",
                me.noun()
            ))
        }
    }
}

/// Puts `me`'s label on an object to apply (the controller's Secret watch selects on it).
pub fn stamp<'o>(object: &'o mut J, me: Writer<'_>) -> Option<&'o mut serde_json::Map<String, J>> {
    let meta = object.get_mut("metadata").and_then(J::as_object_mut)?;
    let (key, value) = me.label();
    let labels = meta
        .entry("labels")
        .or_insert_with(|| J::Object(Default::default()));
    labels[key] = J::String(value);
    Some(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_writer_that_created_a_secret_may_write_it() {
        let l = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        let me = Writer::GitSource("repo");
        assert!(may_write(me, "a", "b", None).is_ok());
        assert!(may_write(me, "a", "b", Some(&l(LABEL_GIT_SOURCE, "repo"))).is_ok());
        let other = may_write(me, "a", "b", Some(&l(LABEL_GIT_SOURCE, "x"))).unwrap_err();
        assert_eq!(other, "Secret a/b belongs to Git source x");
        let cr = may_write(me, "a", "b", Some(&l(LABEL_SOURCE, "db"))).unwrap_err();
        assert_eq!(cr, "Secret a/b belongs to EncryptedSecret db");
        let hand = may_write(
            Writer::EncryptedSecret("db"),
            "a",
            "b",
            Some(&BTreeMap::new()),
        );
        assert!(
            hand.unwrap_err()
                .contains("label it ksec.io/encryptedsecret=db")
        );
    }
}
