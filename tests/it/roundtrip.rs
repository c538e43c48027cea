//! Property tests: whatever the tree, emitting it and parsing it back gives
//! the same tree (a value that changes on the way is a corrupted secret), and
//! encrypt → decrypt with the same data key is the identity.

use ksec::sops::engine;
use ksec::sops::store::{self, yaml};
use ksec::sops::{DataKey, Documents, Format, Map, MapItem, Rule, Seq, SeqItem, Value};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 _.:#'\"\\-\\[\\]{},&*!|>%@`?=\\\\/\t]{0,24}",
        "[a-z]{1,8}(\n[ a-z#:]{0,10}){1,3}\n?",
        Just("true".to_string()),
        Just("~".to_string()),
        Just("0x1F".to_string()),
        Just("2024-01-01".to_string()),
        Just("- x".to_string()),
        Just("key: value".to_string()),
        Just(" lead".to_string()),
        "\\PC{0,12}",
    ]
}

fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_.\\-]{0,10}"
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::Str),
        any::<i64>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        (-1e12f64..1e12f64).prop_map(Value::Float),
        Just(Value::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| Value::Seq(Seq(v.into_iter().map(SeqItem::Elem).collect()))),
            prop::collection::btree_map(key(), inner, 0..4).prop_map(|m| Value::Map(Map(m
                .into_iter()
                .map(|(k, v)| MapItem::Pair(k, v))
                .collect()))),
        ]
    })
}

fn doc() -> impl Strategy<Value = Map> {
    (
        prop::collection::btree_map(key(), value(), 1..6),
        prop::option::of("[ a-zA-Z0-9:#]{0,20}"),
    )
        .prop_map(|(m, c)| {
            let mut items: Vec<MapItem> = m.into_iter().map(|(k, v)| MapItem::Pair(k, v)).collect();
            if let Some(c) = c {
                items.insert(0, MapItem::Comment(format!(" {c}")));
            }
            Map(items)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn yaml_emit_parse_is_the_identity(docs in prop::collection::vec(doc(), 1..3)) {
        let d = Documents(docs);
        let text = yaml::emit(&d, 4);
        let back = yaml::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, d, "{}", text);
    }

    #[test]
    fn json_emit_parse_keeps_strings_and_ints(m in prop::collection::btree_map(key(), prop_oneof![text().prop_map(Value::Str), any::<i64>().prop_map(Value::Int)], 1..6)) {
        let map = Map(m.into_iter().map(|(k, v)| MapItem::Pair(k, v)).collect());
        let text = store::json::emit(&map, None);
        prop_assert_eq!(store::json::parse(&text).unwrap(), map);
    }

    /// Values with edge whitespace, quotes and backquotes, and multi-line
    /// values, read back exactly (or are refused, never changed).
    #[test]
    fn ini_emit_parse_is_the_identity(m in prop::collection::btree_map("[a-z][a-z0-9_.]{0,8}", "[ \t\"`a-z;#=]{0,12}(\n[ \t\"`a-z]{0,6}){0,2}", 1..6)) {
        let sec = Map(m.into_iter().map(|(k, v)| MapItem::Pair(k, Value::Str(v))).collect());
        let single_line = sec.pairs().all(|(_, v)| !matches!(v, Value::Str(s) if s.contains('\n')));
        let map = Map(vec![MapItem::Pair("app".into(), Value::Map(sec))]);
        match store::ini::emit(&map) {
            Ok(text) => {
                let back = store::ini::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                prop_assert_eq!(back, map, "{}", text);
            }
            // Only some multi-line values have no written form.
            Err(e) => prop_assert!(!single_line, "single-line values refused: {}", e),
        }
    }

    /// Floats survive a second pass: the parser rounds correctly.
    #[test]
    fn json_floats_are_stable(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let map = Map(vec![MapItem::Pair("f".into(), Value::Float(f))]);
        let first = store::json::emit(&map, None);
        let again = store::json::emit(&store::json::parse(&first).unwrap(), None);
        prop_assert_eq!(again, first);
    }

    #[test]
    fn dotenv_round_trip(m in prop::collection::btree_map("[A-Z_][A-Z0-9_]{0,8}", "[^\n\\\\]{0,20}(\n[^\n\\\\]{0,5})?", 1..6)) {
        let map = Map(m.into_iter().map(|(k, v)| MapItem::Pair(k, Value::Str(v))).collect());
        let text = store::dotenv::emit(&map).unwrap();
        prop_assert_eq!(store::dotenv::parse(&text).unwrap(), map);
    }

    #[test]
    fn encrypt_then_decrypt_is_the_identity(docs in prop::collection::vec(doc(), 1..3), mac_only in any::<bool>()) {
        let key = DataKey::generate();
        let orig = Documents(docs);
        let mut d = orig.clone();
        let rule = Rule::default();
        let mac1 = engine::encrypt_docs(&mut d.0, &key, &rule, mac_only, None).unwrap();
        let mut warnings = vec![];
        let mac2 = engine::decrypt_docs(&mut d.0, &key, &rule, mac_only, None, &mut warnings).unwrap();
        prop_assert_eq!(mac1, mac2);
        prop_assert!(warnings.is_empty());
        prop_assert_eq!(d, orig);
    }

    #[test]
    fn encrypted_yaml_survives_the_store(docs in prop::collection::vec(doc(), 1..3)) {
        let key = DataKey::generate();
        let orig = Documents(docs);
        let mut d = orig.clone();
        engine::encrypt_docs(&mut d.0, &key, &Rule::default(), false, None).unwrap();
        let text = yaml::emit(&d, 4);
        let mut back = store::load_plain(Format::Yaml, text.as_bytes()).unwrap();
        let mut w = vec![];
        engine::decrypt_docs(&mut back.0, &key, &Rule::default(), false, None, &mut w).unwrap();
        prop_assert_eq!(back, orig);
    }
}
