//! Kubernetes objects inside a document tree, seen the way the API server
//! will see them: YAML merge keys resolved, `*List` items walked at any
//! depth. Every reader of manifests (router, guard, apply, controller,
//! doctor) goes through here, so a file cannot mean one thing to the router
//! and another to the cluster.
//!
//! [`secret_shape`] says where an encrypted Secret's readable structure
//! differs from what ksec writes. The sops MAC covers values in document
//! order, not keys, so an attacker without the key can move a readable
//! value (say `namespace: prod` under `labels`) and keep the MAC valid;
//! these checks refuse such moves where a Secret is consumed.

pub mod desired;
pub mod encrypted;

pub use desired::{DesiredSecret, IdentityError, NamespacePolicy};
pub use encrypted::{
    DecryptedObjects, EncryptedManifest, Manifest, ManifestError, PlainManifest, SecretId,
};

use crate::sops::{Documents, Map, MapItem, Seq, SeqItem, Value};

/// How deep `*List` items and merge keys are followed. Real manifests nest
/// two or three levels; the bound keeps a hostile file cheap.
const MAX_DEPTH: usize = 32;

/// A document and every object inside it (`*List` items, recursively), merge keys resolved.
pub fn objects(doc: &Map) -> Vec<Map> {
    let mut out = Vec::new();
    collect(resolve_merges(doc), 0, &mut out);
    out
}

fn collect(m: Map, depth: usize, out: &mut Vec<Map>) {
    let items: Vec<Map> = if depth < MAX_DEPTH && is_list(&m) {
        match m.get("items") {
            Some(Value::Seq(s)) => s.elems().filter_map(Value::as_map).cloned().collect(),
            _ => vec![],
        }
    } else {
        vec![]
    };
    out.push(m);
    for it in items {
        collect(it, depth + 1, out);
    }
}

fn is_list(m: &Map) -> bool {
    m.str_of("kind").is_some_and(|k| k.ends_with("List"))
}

pub fn is_secret(m: &Map) -> bool {
    m.str_of("kind") == Some("Secret") && m.str_of("apiVersion").is_none_or(|a| a == "v1")
}

/// Every Secret in the file, in document order, with its document index.
pub fn secrets(docs: &Documents) -> Vec<(usize, Map)> {
    let mut v = Vec::new();
    for (i, d) in docs.0.iter().enumerate() {
        v.extend(objects(d).into_iter().filter(is_secret).map(|m| (i, m)));
    }
    v
}

/// Does the file hold at least one Kubernetes Secret?
pub fn has_secret(docs: &Documents) -> bool {
    docs.0.iter().any(|d| objects(d).iter().any(is_secret))
}

/// The namespaces of the file's Secrets (`None`: the Secret names none).
pub fn secret_namespaces(docs: &Documents) -> Vec<Option<String>> {
    secrets(docs)
        .iter()
        .map(|(_, s)| {
            s.get("metadata")
                .and_then(Value::as_map)
                .and_then(|m| m.str_of("namespace"))
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .collect()
}

/// Expands YAML merge keys (`<<: *anchor` or a list of them) as the API
/// server's YAML decoder does; explicit keys win.
pub fn resolve_merges(m: &Map) -> Map {
    merge_map(m, 0)
}

fn merge_map(m: &Map, depth: usize) -> Map {
    if depth > MAX_DEPTH {
        return m.clone();
    }
    let mut out = Map::default();
    let mut merges: Vec<&Value> = Vec::new();
    for item in &m.0 {
        match item {
            MapItem::Pair(k, v) if k == "<<" => merges.push(v),
            MapItem::Pair(k, v) => out
                .0
                .push(MapItem::Pair(k.clone(), merge_value(v, depth + 1))),
            MapItem::Comment(c) => out.0.push(MapItem::Comment(c.clone())),
        }
    }
    if merges.is_empty() {
        return out;
    }
    // Keys already in `out`: a hash set keeps merging linear.
    let mut keys: std::collections::HashSet<String> =
        out.pairs().map(|(k, _)| k.to_string()).collect();
    for mv in merges {
        let sources: Vec<&Map> = match mv {
            Value::Map(src) => vec![src],
            Value::Seq(s) => s.elems().filter_map(Value::as_map).collect(),
            _ => vec![],
        };
        for src in sources {
            let src = merge_map(src, depth + 1);
            for (k, v) in src.pairs() {
                if keys.insert(k.to_string()) {
                    out.0.push(MapItem::Pair(k.to_string(), v.clone()));
                }
            }
        }
    }
    out
}

fn merge_value(v: &Value, depth: usize) -> Value {
    match v {
        Value::Map(m) => Value::Map(merge_map(m, depth)),
        Value::Seq(s) => Value::Seq(Seq(s
            .0
            .iter()
            .map(|i| match i {
                SeqItem::Elem(e) => SeqItem::Elem(merge_value(e, depth + 1)),
                SeqItem::Comment(c) => SeqItem::Comment(c.clone()),
            })
            .collect())),
        other => other.clone(),
    }
}

/// Where an encrypted Secret's readable structure differs from what ksec writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeProblem {
    /// Document index in the file.
    pub doc: usize,
    /// Key path inside the document (`metadata.namespace`, `items[1].stringData.password`).
    pub path: String,
    pub kind: ShapeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeKind {
    /// A YAML merge key: the MAC does not bind what it merges.
    MergeKey,
    /// `metadata.namespace` is not a plain string.
    NamespaceNotString,
    /// `metadata.name` is missing or not a plain string.
    NameNotString,
    /// A top-level field a Secret does not have.
    UnknownField,
    /// An empty `stringData` value would override the `data` key of the same name.
    EmptyOverride,
    /// A `data`/`stringData` value that is a mapping or list.
    NonScalarValue,
}

impl ShapeKind {
    pub fn describe(self) -> &'static str {
        match self {
            ShapeKind::MergeKey => {
                "a YAML merge key (<<) in an encrypted Secret: the MAC does not bind what it merges"
            }
            ShapeKind::NamespaceNotString => "metadata.namespace is not a plain string",
            ShapeKind::NameNotString => "metadata.name is missing or not a plain string",
            ShapeKind::UnknownField => "a field a Secret does not have (was a value moved here?)",
            ShapeKind::EmptyOverride => {
                "an empty stringData value would override the data key of the same name"
            }
            ShapeKind::NonScalarValue => "a data/stringData value that is not a plain value",
        }
    }
}

impl std::fmt::Display for ShapeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "document {}, {}: {}",
            self.doc,
            self.path,
            self.kind.describe()
        )
    }
}

const SECRET_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "type",
    "data",
    "stringData",
    "immutable",
];

/// Checks every Secret of an encrypted file (raw tree, before merge resolution).
pub fn secret_shape(docs: &Documents) -> Vec<ShapeProblem> {
    let mut out = Vec::new();
    for (i, d) in docs.0.iter().enumerate() {
        shape_walk(d, i, String::new(), 0, &mut out);
    }
    out
}

fn shape_walk(m: &Map, doc: usize, prefix: String, depth: usize, out: &mut Vec<ShapeProblem>) {
    let resolved = resolve_merges(m);
    // Only a manifest the API server would take as a Secret (an Ansible
    // vars file may say `kind: Secret` too).
    let secret = is_secret(&resolved) && resolved.str_of("apiVersion") == Some("v1");
    let mut push = |path: String, kind| out.push(ShapeProblem { doc, path, kind });
    if (secret && has_merge(m, 0)) || (is_list(&resolved) && m.contains_key("<<")) {
        push(join(&prefix, "<<"), ShapeKind::MergeKey);
    }
    if secret {
        secret_fields(&resolved, &prefix, &mut push);
    }
    if depth < MAX_DEPTH && is_list(m) {
        if let Some(Value::Seq(items)) = m.get("items") {
            for (i, it) in items.elems().enumerate() {
                if let Some(im) = it.as_map() {
                    shape_walk(
                        im,
                        doc,
                        join(&prefix, &format!("items[{i}]")),
                        depth + 1,
                        out,
                    );
                }
            }
        }
    }
}

fn secret_fields(m: &Map, prefix: &str, push: &mut impl FnMut(String, ShapeKind)) {
    for (k, _) in m.pairs() {
        if k != "<<" && !SECRET_FIELDS.contains(&k) {
            push(join(prefix, k), ShapeKind::UnknownField);
        }
    }
    let meta = m.get("metadata").and_then(Value::as_map);
    match meta.map(|md| md.get("namespace")) {
        Some(Some(Value::Str(_))) | Some(None) => {}
        _ if meta.is_none() => {}
        _ => push(
            join(prefix, "metadata.namespace"),
            ShapeKind::NamespaceNotString,
        ),
    }
    if !matches!(meta.and_then(|md| md.get("name")), Some(Value::Str(s)) if !s.is_empty()) {
        push(join(prefix, "metadata.name"), ShapeKind::NameNotString);
    }
    let data = m.get("data").and_then(Value::as_map);
    for section in ["data", "stringData"] {
        let Some(sec) = m.get(section).and_then(Value::as_map) else {
            continue;
        };
        for (k, v) in sec.pairs() {
            let path = join(prefix, &format!("{section}.{k}"));
            match v {
                Value::Map(_) | Value::Seq(_) => push(path, ShapeKind::NonScalarValue),
                Value::Str(s) if s.is_empty() && section == "stringData" => {
                    if data.is_some_and(|d| d.contains_key(k)) {
                        push(path, ShapeKind::EmptyOverride);
                    }
                }
                Value::Null if section == "stringData" => {
                    if data.is_some_and(|d| d.contains_key(k)) {
                        push(path, ShapeKind::EmptyOverride);
                    }
                }
                _ => {}
            }
        }
    }
}

fn has_merge(m: &Map, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    m.pairs()
        .any(|(k, v)| k == "<<" || value_has_merge(v, depth + 1))
}

fn value_has_merge(v: &Value, depth: usize) -> bool {
    match v {
        Value::Map(m) => has_merge(m, depth),
        Value::Seq(s) => s.elems().any(|e| value_has_merge(e, depth + 1)),
        _ => false,
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sops::Format;

    fn docs(y: &str) -> Documents {
        crate::sops::store::load_plain(Format::Yaml, y.as_bytes()).unwrap()
    }

    #[test]
    fn nested_lists_are_walked() {
        let d = docs(
            "kind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: a, namespace: dev}}\n- kind: List\n  items:\n  - {apiVersion: v1, kind: Secret, metadata: {name: b, namespace: prod}}\n",
        );
        assert_eq!(
            secret_namespaces(&d),
            vec![Some("dev".to_string()), Some("prod".to_string())]
        );
    }

    #[test]
    fn merge_keys_are_resolved() {
        let d = docs(
            "m: &m {namespace: dev}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  <<: {namespace: prod}\n  name: x\n",
        );
        assert_eq!(secret_namespaces(&d), vec![Some("prod".to_string())]);
    }

    #[test]
    fn moved_namespace_and_empty_override_are_shape_problems() {
        let d = docs(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: {a: prod}\nnamespace: prod\ndata:\n  p: ENC\nstringData:\n  p: \"\"\n",
        );
        let kinds: Vec<ShapeKind> = secret_shape(&d).into_iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ShapeKind::UnknownField,
                ShapeKind::NamespaceNotString,
                ShapeKind::EmptyOverride
            ]
        );
    }

    #[test]
    fn a_plain_secret_has_no_shape_problem() {
        let d = docs(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: prod\n  labels: {a: b}\ntype: Opaque\ndata:\n  p: ENC\nstringData:\n  q: \"\"\n",
        );
        assert!(secret_shape(&d).is_empty());
    }
}
