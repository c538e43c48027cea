//! Which values get encrypted (`sops.go` `shouldBeEncrypted`).

use regex::Regex;

/// The single selection rule a file carries in its metadata.
#[derive(Clone, Debug)]
pub enum Rule {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
    UnencryptedCommentRegex(Regex),
    EncryptedCommentRegex(Regex),
    /// The binary store records no rule and encrypts its one value.
    None,
}

pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";
/// What ksec uses for `kind: Secret` documents unless told otherwise.
pub const KUBERNETES_SECRET_REGEX: &str = "^(data|stringData)$";

/// The metadata field names, in the order sops checks them.
pub const RULE_FIELDS: [&str; 6] = [
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
];

impl Default for Rule {
    fn default() -> Self {
        Rule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.to_string())
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.field() == other.field() && self.pattern() == other.pattern()
    }
}

impl Rule {
    /// Builds a rule from its metadata field name and value.
    pub fn from_field(field: &str, value: &str) -> Result<Rule, String> {
        let re =
            || Regex::new(value).map_err(|e| format!("{field}: invalid regular expression: {e}"));
        Ok(match field {
            "unencrypted_suffix" => Rule::UnencryptedSuffix(value.to_string()),
            "encrypted_suffix" => Rule::EncryptedSuffix(value.to_string()),
            "unencrypted_regex" => Rule::UnencryptedRegex(re()?),
            "encrypted_regex" => Rule::EncryptedRegex(re()?),
            "unencrypted_comment_regex" => Rule::UnencryptedCommentRegex(re()?),
            "encrypted_comment_regex" => Rule::EncryptedCommentRegex(re()?),
            _ => return Err(format!("unknown encryption rule {field}")),
        })
    }

    /// Picks the one rule set among `(field, value)` candidates; more than one is an error, as in sops.
    pub fn from_fields<'a>(
        fields: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<Option<Rule>, String> {
        let set: Vec<_> = fields
            .into_iter()
            .filter_map(|(f, v)| v.filter(|v| !v.is_empty()).map(|v| (f, v)))
            .collect();
        match set.as_slice() {
            [] => Ok(None),
            [(f, v)] => Rule::from_field(f, v).map(Some),
            many => Err(format!(
                "only one of {} may be set, found {}",
                RULE_FIELDS.join(", "),
                many.iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }

    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            Rule::UnencryptedSuffix(_) => "unencrypted_suffix",
            Rule::EncryptedSuffix(_) => "encrypted_suffix",
            Rule::UnencryptedRegex(_) => "unencrypted_regex",
            Rule::EncryptedRegex(_) => "encrypted_regex",
            Rule::UnencryptedCommentRegex(_) => "unencrypted_comment_regex",
            Rule::EncryptedCommentRegex(_) => "encrypted_comment_regex",
            Rule::None => return None,
        })
    }

    pub fn pattern(&self) -> Option<&str> {
        Some(match self {
            Rule::UnencryptedSuffix(s) | Rule::EncryptedSuffix(s) => s,
            Rule::UnencryptedRegex(r)
            | Rule::EncryptedRegex(r)
            | Rule::UnencryptedCommentRegex(r)
            | Rule::EncryptedCommentRegex(r) => r.as_str(),
            Rule::None => return None,
        })
    }

    /// `path` holds map keys only; `comments` is the stack of comment runs
    /// directly above the item and its ancestors. For a comment item the
    /// comment itself is the last entry of the innermost level and is skipped
    /// by `encrypted_comment_regex`, so the marker comment stays readable.
    pub fn should_encrypt(
        &self,
        path: &[String],
        comments: &[Vec<String>],
        is_comment: bool,
    ) -> bool {
        match self {
            Rule::None => true,
            Rule::UnencryptedSuffix(s) => !path.iter().any(|p| p.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|p| p.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !path.iter().any(|p| r.is_match(p)),
            Rule::EncryptedRegex(r) => path.iter().any(|p| r.is_match(p)),
            Rule::UnencryptedCommentRegex(r) => !comments.iter().flatten().any(|c| r.is_match(c)),
            Rule::EncryptedCommentRegex(r) => {
                let last_level = comments.len().saturating_sub(1);
                comments.iter().enumerate().any(|(i, level)| {
                    level.iter().enumerate().any(|(j, c)| {
                        let itself = is_comment && i == last_level && j + 1 == level.len();
                        !itself && r.is_match(c)
                    })
                })
            }
        }
    }
}
