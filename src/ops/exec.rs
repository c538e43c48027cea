//! What `exec-env` and `exec-file` hand to a command: the decrypted top-level
//! values as environment variables, and the command line with `{}` replaced
//! by the plaintext file's path.

use crate::sops::{Map, Value, scalar};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// sops's wording; the key is named, never its value.
    #[error("cannot use complex value in environment; offending key {0}")]
    Complex(String),
    #[error("cannot use {0:?} as an environment variable name")]
    BadName(String),
}

/// The top-level values as `NAME=value` pairs, as sops exports them:
/// strings as they are, numbers and booleans as text, null as empty.
/// Maps and lists cannot be exported: an error names the key.
pub fn env_vars(m: &Map) -> Result<Vec<(String, zeroize::Zeroizing<Vec<u8>>)>, ExecError> {
    m.pairs()
        .map(|(k, v)| {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(ExecError::BadName(k.to_string()));
            }
            let bytes = match v {
                Value::Map(_) | Value::Seq(_) => return Err(ExecError::Complex(k.to_string())),
                Value::Null => Vec::new(),
                Value::Bool(b) => b.to_string().into_bytes(),
                other => scalar::to_bytes(other)
                    .map(|c| c.into_owned())
                    .unwrap_or_default(),
            };
            Ok((k.to_string(), zeroize::Zeroizing::new(bytes)))
        })
        .collect()
}

/// sops's `exec-file` substitution: every `{}` becomes the file's path.
pub fn substitute(command: &str, path: &str) -> String {
    command.replace("{}", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(yaml: &str) -> Map {
        crate::sops::store::load_plain(crate::sops::Format::Yaml, yaml.as_bytes())
            .unwrap()
            .0
            .remove(0)
    }

    #[test]
    fn scalars_become_text_like_sops() {
        let vars = env_vars(&map(
            "foo: bar\nn: 5\nf: 1.50\nb: true\nz: null\n# c\nml: |-\n  a\n  b\n",
        ))
        .unwrap();
        let got: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.to_vec()).unwrap()))
            .collect();
        let want = [
            ("foo", "bar"),
            ("n", "5"),
            ("f", "1.5"),
            ("b", "true"),
            ("z", ""),
            ("ml", "a\nb"),
        ];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_string(), v.to_string())).to_vec()
        );
    }

    #[test]
    fn containers_and_bad_names_are_refused_by_key() {
        assert_eq!(
            env_vars(&map("a: 1\nm:\n  x: 1\n")).unwrap_err(),
            ExecError::Complex("m".into())
        );
        assert_eq!(
            env_vars(&map("\"a=b\": 1\n")).unwrap_err(),
            ExecError::BadName("a=b".into())
        );
        assert_eq!(substitute("cat {} {}", "/p"), "cat /p /p");
    }
}
