//! The `sops` metadata block: key groups, MAC, lastmodified, rule, version.

use indexmap::IndexMap;

use super::rules::{RULE_FIELDS, Rule};
use super::scalar;
use super::tree::{Map, MapItem, Seq, SeqItem, Value};

/// The sops version ksec writes: real sops checks it is semver ≥ 3.3.0.
pub const SOPS_VERSION: &str = "3.13.2";

/// One wrapped copy of the data key (or of a Shamir share).
#[derive(Clone, PartialEq)]
pub enum Stanza {
    Age {
        recipient: String,
        enc: String,
    },
    Kms {
        arn: String,
        role: String,
        context: IndexMap<String, String>,
        created_at: String,
        enc: String,
        aws_profile: String,
    },
    HcVault {
        vault_address: String,
        engine_path: String,
        key_name: String,
        created_at: String,
        enc: String,
    },
    AzureKv {
        vault_url: String,
        name: String,
        version: String,
        created_at: String,
        enc: String,
    },
    /// A PGP key: `enc` is an ASCII-armored PGP message of the data key.
    Pgp {
        fp: String,
        created_at: String,
        enc: String,
    },
    /// Kept verbatim so files keep GCP/HuaweiCloud recipients ksec cannot use.
    Other {
        kind: String,
        fields: Map,
    },
}

impl std::fmt::Debug for Stanza {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.kind(), self.recipient())
    }
}

impl Stanza {
    /// The metadata list this stanza lives in.
    pub fn kind(&self) -> &str {
        match self {
            Stanza::Age { .. } => "age",
            Stanza::Kms { .. } => "kms",
            Stanza::HcVault { .. } => "hc_vault",
            Stanza::AzureKv { .. } => "azure_kv",
            Stanza::Pgp { .. } => "pgp",
            Stanza::Other { kind, .. } => kind,
        }
    }

    /// A display/identity string for the recipient, in the form `.sops.yaml` takes.
    pub fn recipient(&self) -> String {
        match self {
            Stanza::Age { recipient, .. } => recipient.clone(),
            Stanza::Kms { arn, role, .. } if !role.is_empty() => format!("{arn}+{role}"),
            Stanza::Kms { arn, .. } => arn.clone(),
            Stanza::HcVault {
                vault_address,
                engine_path,
                key_name,
                ..
            } => {
                format!("{vault_address}/v1/{engine_path}/keys/{key_name}")
            }
            Stanza::AzureKv {
                vault_url,
                name,
                version,
                ..
            } => format!("{vault_url}/keys/{name}/{version}"),
            Stanza::Pgp { fp, .. } => format!("pgp:{fp}"),
            Stanza::Other { kind, fields } => {
                let id = ["fp", "resource_id", "key_id"]
                    .iter()
                    .find_map(|k| fields.str_of(k))
                    .unwrap_or("?");
                format!("{kind}:{id}")
            }
        }
    }

    pub fn enc(&self) -> &str {
        match self {
            Stanza::Age { enc, .. }
            | Stanza::Kms { enc, .. }
            | Stanza::HcVault { enc, .. }
            | Stanza::AzureKv { enc, .. }
            | Stanza::Pgp { enc, .. } => enc,
            Stanza::Other { fields, .. } => fields.str_of("enc").unwrap_or(""),
        }
    }

    fn to_map(&self) -> Map {
        let s = |k: &str, v: &str| MapItem::Pair(k.to_string(), Value::Str(v.to_string()));
        // Field order is sops 3.13's: alphabetical.
        Map(match self {
            Stanza::Age { recipient, enc } => vec![s("enc", enc), s("recipient", recipient)],
            Stanza::Kms {
                arn,
                role,
                context,
                created_at,
                enc,
                aws_profile,
            } => {
                let mut v = vec![s("arn", arn), s("aws_profile", aws_profile)];
                if !context.is_empty() {
                    let ctx = Map(context.iter().map(|(k, val)| s(k, val)).collect());
                    v.push(MapItem::Pair("context".into(), Value::Map(ctx)));
                }
                v.extend([s("created_at", created_at), s("enc", enc)]);
                if !role.is_empty() {
                    v.push(s("role", role));
                }
                v
            }
            Stanza::HcVault {
                vault_address,
                engine_path,
                key_name,
                created_at,
                enc,
            } => vec![
                s("created_at", created_at),
                s("enc", enc),
                s("engine_path", engine_path),
                s("key_name", key_name),
                s("vault_address", vault_address),
            ],
            Stanza::AzureKv {
                vault_url,
                name,
                version,
                created_at,
                enc,
            } => vec![
                s("created_at", created_at),
                s("enc", enc),
                s("name", name),
                s("vault_url", vault_url),
                s("version", version),
            ],
            Stanza::Pgp {
                fp,
                created_at,
                enc,
            } => vec![s("created_at", created_at), s("enc", enc), s("fp", fp)],
            Stanza::Other { fields, .. } => fields.0.clone(),
        })
    }

    fn from_map(kind: &str, m: &Map) -> Result<Stanza, String> {
        let get = |k: &str| -> String { lookup(m, k).map(scalar_string).unwrap_or_default() };
        let created = |st: &Stanza| -> Result<(), String> {
            let c = match st {
                Stanza::Kms { created_at, .. }
                | Stanza::HcVault { created_at, .. }
                | Stanza::AzureKv { created_at, .. }
                | Stanza::Pgp { created_at, .. } => created_at,
                _ => return Ok(()),
            };
            scalar::parse_rfc3339(c)
                .map(|_| ())
                .ok_or_else(|| format!("{kind}: created_at is not an RFC 3339 time"))
        };
        let st = match kind {
            "age" => Stanza::Age {
                recipient: get("recipient").trim().to_string(),
                enc: get("enc"),
            },
            "kms" => {
                let mut context = IndexMap::new();
                if let Some(Value::Map(c)) = lookup(m, "context") {
                    for (k, v) in c.pairs() {
                        context.insert(k.to_string(), scalar_string(v));
                    }
                }
                Stanza::Kms {
                    arn: get("arn"),
                    role: get("role"),
                    context,
                    created_at: get("created_at"),
                    enc: get("enc"),
                    aws_profile: get("aws_profile"),
                }
            }
            "hc_vault" => Stanza::HcVault {
                vault_address: get("vault_address"),
                engine_path: get("engine_path"),
                key_name: get("key_name"),
                created_at: get("created_at"),
                enc: get("enc"),
            },
            "azure_kv" => Stanza::AzureKv {
                vault_url: get("vault_url"),
                name: get("name"),
                version: get("version"),
                created_at: get("created_at"),
                enc: get("enc"),
            },
            "pgp" => Stanza::Pgp {
                fp: get("fp"),
                created_at: get("created_at"),
                enc: get("enc"),
            },
            other => Stanza::Other {
                kind: other.to_string(),
                fields: m.clone(),
            },
        };
        created(&st)?;
        Ok(st)
    }
}

/// The key types in the order sops loads them within a group.
pub const KEY_KINDS: [&str; 7] = [
    "kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "pgp", "age",
];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyGroup(pub Vec<Stanza>);

/// Parsed `sops:` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub key_groups: Vec<KeyGroup>,
    pub shamir_threshold: usize,
    /// As stored; the MAC's AAD is its re-formatted RFC 3339 form.
    pub lastmodified: String,
    pub mac: String,
    pub rule: Rule,
    pub mac_only_encrypted: bool,
    pub version: String,
}

impl Metadata {
    pub fn new(
        key_groups: Vec<KeyGroup>,
        shamir_threshold: usize,
        rule: Rule,
        mac_only_encrypted: bool,
    ) -> Metadata {
        Metadata {
            key_groups,
            shamir_threshold,
            lastmodified: String::new(),
            mac: String::new(),
            rule,
            mac_only_encrypted,
            version: SOPS_VERSION.to_string(),
        }
    }

    /// The AAD of the MAC: `lastmodified` parsed and re-formatted, as sops does.
    pub fn mac_aad(&self) -> Result<String, String> {
        scalar::parse_rfc3339(&self.lastmodified)
            .map(|t| scalar::format_rfc3339_seconds(&t))
            .ok_or_else(|| "sops.lastmodified is not an RFC 3339 time".to_string())
    }

    pub fn stanzas(&self) -> impl Iterator<Item = &Stanza> {
        self.key_groups.iter().flat_map(|g| g.0.iter())
    }

    /// Serializes like sops 3.13: alphabetical keys, one group as top-level
    /// lists, two or more as `key_groups` (where `age` and `hc_vault` are always present).
    pub fn to_value(&self) -> Value {
        let mut items: Vec<(String, Value)> = Vec::new();
        let group_lists = |g: &KeyGroup, always: bool| -> Vec<(String, Value)> {
            let mut by_kind: IndexMap<String, Vec<SeqItem>> = IndexMap::new();
            if always {
                by_kind.insert("age".into(), vec![]);
                by_kind.insert("hc_vault".into(), vec![]);
            }
            for st in &g.0 {
                by_kind
                    .entry(st.kind().to_string())
                    .or_default()
                    .push(SeqItem::Elem(Value::Map(st.to_map())));
            }
            by_kind
                .into_iter()
                .map(|(k, v)| (k, Value::Seq(Seq(v))))
                .collect()
        };
        if self.key_groups.len() == 1 {
            items.extend(group_lists(&self.key_groups[0], false));
        } else {
            let groups = self
                .key_groups
                .iter()
                .map(|g| {
                    let mut l = group_lists(g, true);
                    l.sort_by(|a, b| a.0.cmp(&b.0));
                    SeqItem::Elem(Value::Map(Map(l
                        .into_iter()
                        .map(|(k, v)| MapItem::Pair(k, v))
                        .collect())))
                })
                .collect();
            items.push(("key_groups".into(), Value::Seq(Seq(groups))));
        }
        items.push(("lastmodified".into(), Value::Str(self.lastmodified.clone())));
        items.push(("mac".into(), Value::Str(self.mac.clone())));
        if self.mac_only_encrypted {
            items.push(("mac_only_encrypted".into(), Value::Bool(true)));
        }
        if self.shamir_threshold != 0 && (self.key_groups.len() > 1 || self.shamir_threshold > 1) {
            items.push((
                "shamir_threshold".into(),
                Value::Int(self.shamir_threshold as i64),
            ));
        }
        if let (Some(f), Some(p)) = (self.rule.field(), self.rule.pattern()) {
            items.push((f.to_string(), Value::Str(p.to_string())));
        }
        items.push(("version".into(), Value::Str(self.version.clone())));
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Value::Map(Map(items
            .into_iter()
            .map(|(k, v)| MapItem::Pair(k, v))
            .collect()))
    }

    /// Reads a `sops` block leniently, as sops 3.13 does (case-insensitive
    /// names, unknown fields ignored, `"2"`/`"true"` coerced).
    pub fn from_value(v: &Value) -> Result<Metadata, String> {
        let m = v.as_map().ok_or("the sops metadata is not a map")?;
        let str_field = |k: &str| lookup(m, k).map(scalar_string);
        let lastmodified = str_field("lastmodified").ok_or("sops.lastmodified is missing")?;
        scalar::parse_rfc3339(&lastmodified).ok_or("sops.lastmodified is not an RFC 3339 time")?;
        let rule = Rule::from_fields(
            RULE_FIELDS
                .iter()
                .map(|f| (*f, lookup(m, f).and_then(|v| v.as_str()))),
        )?;
        let mut key_groups = Vec::new();
        let top = group_from(m)?;
        if !top.0.is_empty() {
            key_groups.push(top);
        } else if let Some(Value::Seq(gs)) = lookup(m, "key_groups") {
            for g in gs.elems() {
                let gm = g.as_map().ok_or("sops.key_groups entries must be maps")?;
                key_groups.push(group_from(gm)?);
            }
        }
        if key_groups.is_empty() {
            return Err("no keys found in the sops metadata".into());
        }
        let shamir_threshold = match lookup(m, "shamir_threshold") {
            None | Some(Value::Null) => 0,
            Some(v) => scalar_string(v)
                .trim()
                .parse::<usize>()
                .map_err(|_| "sops.shamir_threshold is not an integer")?,
        };
        let mac_only_encrypted = match lookup(m, "mac_only_encrypted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => scalar::go_parse_bool(&scalar_string(v))
                .ok_or("sops.mac_only_encrypted is not a boolean")?,
        };
        Ok(Metadata {
            key_groups,
            shamir_threshold,
            lastmodified,
            mac: str_field("mac").unwrap_or_default(),
            rule: rule.unwrap_or_default(),
            mac_only_encrypted,
            version: str_field("version").unwrap_or_default(),
        })
    }
}

fn group_from(m: &Map) -> Result<KeyGroup, String> {
    let mut g = Vec::new();
    for kind in KEY_KINDS {
        if let Some(Value::Seq(list)) = lookup(m, kind) {
            for e in list.elems() {
                let em = e
                    .as_map()
                    .ok_or_else(|| format!("sops.{kind} entries must be maps"))?;
                g.push(Stanza::from_map(kind, em)?);
            }
        }
    }
    Ok(KeyGroup(g))
}

/// Case-insensitive field lookup (mapstructure's matching).
fn lookup<'a>(m: &'a Map, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.pairs()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn scalar_string(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Time(t) => scalar::format_time(t),
        Value::Null => String::new(),
        other => scalar::to_bytes(other)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
    }
}
