//! sops's pre-subcommand syntax (`sops -d FILE`, `sops -e -i FILE`,
//! `sops -r …`, `sops --set '["a"] 1' FILE`, `sops FILE`), which scripts and
//! helm-secrets still call, rewritten into the subcommand form before the
//! argument parser sees it. Pure, so every case is a unit test.

use std::ffi::{OsStr, OsString};

/// sops subcommands ksec does not implement: left as they are, so the parser
/// says "unrecognized subcommand" instead of editing a file named `publish`.
const UNSUPPORTED: &[&str] = &["publish", "keyservice", "h"];

/// Flags that only ksec puts before a subcommand (`ksec -q check …`).
const LEADING_GLOBALS: &[&str] = &["-v", "--verbose", "-q", "--quiet"];

/// Why the old syntax could not be rewritten (a usage error, exit 2).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgvError {
    #[error("conflicting modes: {0} and {1} cannot be combined")]
    Conflict(String, String),
    #[error("invalid --set format: expected '[\"key\"] JSON-VALUE'")]
    SetFormat,
    #[error("--set needs a file after the flags (sops: flags come before the file)")]
    SetNoFile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Encrypt,
    Decrypt,
    Rotate,
    Set,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Encrypt => "encrypt",
            Mode::Decrypt => "decrypt",
            Mode::Rotate => "rotate",
            Mode::Set => "set",
        }
    }
}

/// Rewrites `args` (without the program name) from sops's old syntax into
/// a subcommand form when the first argument is not one of `known`
/// (ksec's subcommand names and aliases). Anything else passes unchanged.
pub fn rewrite(args: Vec<OsString>, known: &[&str]) -> Result<Vec<OsString>, ArgvError> {
    if args.len() == 1 && args[0] == "-v" {
        return Ok(vec!["--version".into()]);
    }
    let first = args
        .iter()
        .find(|a| !LEADING_GLOBALS.iter().any(|g| *a == OsStr::new(g)));
    let Some(first) = first else {
        return Ok(args);
    };
    let f = first.to_string_lossy();
    if known.contains(&f.as_ref())
        || UNSUPPORTED.contains(&f.as_ref())
        || matches!(f.as_ref(), "-h" | "--help" | "-V" | "--version" | "help")
    {
        return Ok(args);
    }
    let mut mode: Option<(Mode, String)> = None;
    let mut set_expr: Option<String> = None;
    let mut rest: Vec<OsString> = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy().into_owned();
        let found = match s.as_str() {
            "-e" | "--encrypt" => Some(Mode::Encrypt),
            "-d" | "--decrypt" => Some(Mode::Decrypt),
            "-r" | "--rotate" => Some(Mode::Rotate),
            "--set" => {
                set_expr = Some(
                    it.next()
                        .map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
                Some(Mode::Set)
            }
            _ if s.starts_with("--set=") => {
                set_expr = Some(s["--set=".len()..].to_string());
                Some(Mode::Set)
            }
            _ => None,
        };
        if let Some(m) = found {
            if let Some((prev, prev_flag)) = &mode
                && *prev != m
            {
                return Err(ArgvError::Conflict(prev_flag.clone(), s));
            }
            mode = Some((m, s));
            continue;
        }
        let a: OsString = match s.as_str() {
            "-a" => "--age".into(),
            "-k" => "--kms".into(),
            "-p" => "--pgp".into(),
            "-s" => "--show-master-keys".into(),
            _ => a,
        };
        // A flag's value stays next to it, even one that looks like a mode flag.
        let value = takes_value(&a.to_string_lossy());
        rest.push(a);
        if value {
            rest.extend(it.next());
        }
    }
    let mode = mode.map(|(m, _)| m);
    let rest = drop_ignored(mode, rest);
    match mode {
        None => Ok(prepend("edit", rest)),
        Some(Mode::Set) => set_form(set_expr.unwrap_or_default(), rest),
        Some(m) => Ok(prepend(m.name(), rest)),
    }
}

/// Key and rule flags take a value; sops's old syntax accepts (and ignores)
/// them in modes that do not encrypt anew.
const KEY_FLAGS: &[&str] = &[
    "--age",
    "--pgp",
    "--kms",
    "--gcp-kms",
    "--hckms",
    "--azure-kv",
    "--hc-vault-transit",
    "--aws-profile",
    "--encryption-context",
    "--shamir-secret-sharing-threshold",
    "--unencrypted-suffix",
    "--encrypted-suffix",
    "--unencrypted-regex",
    "--encrypted-regex",
    "--unencrypted-comment-regex",
    "--encrypted-comment-regex",
    "--config",
];

/// Flags of sops's old syntax with no effect in ksec: (flag, takes a value).
const IGNORED_EVERYWHERE: &[(&str, bool)] = &[
    ("--keyservice", true),
    ("--enable-local-keyservice", false),
    ("--disable-version-check", false),
    ("--check-for-updates", false),
];

/// Flags that take a value, so the next argument is never read as a flag.
fn takes_value(flag: &str) -> bool {
    KEY_FLAGS.contains(&flag)
        || flag.starts_with("--add-")
        || flag.starts_with("--rm-")
        || [
            "--extract",
            "--output",
            "--output-file",
            "--input-type",
            "--output-type",
            "--filename-override",
            "--indent",
            "--identity",
            "--decryption-order",
            "--env",
            "--recipients-dir",
            "--move-env",
        ]
        .contains(&flag)
}

/// Whether `flag` (without `=value`) is ignored in `mode`, and takes a value.
fn ignored(mode: Option<Mode>, flag: &str) -> Option<bool> {
    if let Some((_, v)) = IGNORED_EVERYWHERE.iter().find(|(f, _)| *f == flag) {
        return Some(*v);
    }
    let rekey = flag.starts_with("--add-") || flag.starts_with("--rm-");
    match mode {
        Some(Mode::Rotate) if rekey || flag == "--encryption-context" => None,
        _ if rekey => Some(true),
        Some(Mode::Decrypt | Mode::Set | Mode::Rotate) if KEY_FLAGS.contains(&flag) => Some(true),
        Some(Mode::Decrypt | Mode::Set | Mode::Rotate) if flag == "--mac-only-encrypted" => {
            Some(false)
        }
        _ => None,
    }
}

/// Removes the flags (and their values) sops's old syntax would ignore in
/// this mode, so the subcommand's parser does not refuse them.
fn drop_ignored(mode: Option<Mode>, rest: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(rest.len());
    let mut it = rest.into_iter();
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        let (flag, inline) = match s.split_once('=') {
            Some((f, _)) if f.starts_with("--") => (f, true),
            _ => (s.as_ref(), false),
        };
        match ignored(mode, flag) {
            Some(takes_value) => {
                if takes_value && !inline {
                    it.next();
                }
            }
            None => {
                let value = !inline && takes_value(flag);
                out.push(a);
                if value {
                    out.extend(it.next());
                }
            }
        }
    }
    out
}

fn prepend(sub: &str, rest: Vec<OsString>) -> Vec<OsString> {
    let mut out = vec![OsString::from(sub)];
    out.extend(rest);
    out
}

/// `--set '["a"]["b"] VALUE' [flags] FILE` → `set [flags] FILE '["a"]["b"]' VALUE`.
/// sops splits the expression at the first `"] "`-style `] `; `-i` is
/// implied (sops writes the file in place either way).
fn set_form(expr: String, mut rest: Vec<OsString>) -> Result<Vec<OsString>, ArgvError> {
    let (path, value) = expr.split_once("] ").ok_or(ArgvError::SetFormat)?;
    rest.retain(|a| a != "-i" && a != "--in-place");
    let file = rest.pop().ok_or(ArgvError::SetNoFile)?;
    let mut out = prepend("set", rest);
    out.push(file);
    out.push(format!("{path}]").into());
    out.push(value.into());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["encrypt", "decrypt", "edit", "set", "check", "exec-env"];

    fn rw(args: &[&str]) -> Result<Vec<String>, ArgvError> {
        rewrite(args.iter().map(OsString::from).collect(), KNOWN).map(|v| {
            v.into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        })
    }

    #[test]
    fn subcommands_and_help_pass_unchanged() {
        for a in [
            &["decrypt", "-d", "f.yaml"][..],
            &["-q", "check", "."],
            &["--help"],
            &["-h"],
            &["--version"],
            &["help", "set"],
            &["publish", "f.yaml"],
            &[],
        ] {
            assert_eq!(rw(a).unwrap(), a.to_vec());
        }
    }

    #[test]
    fn mode_flags_become_subcommands() {
        assert_eq!(rw(&["-d", "f.yaml"]).unwrap(), ["decrypt", "f.yaml"]);
        assert_eq!(rw(&["--decrypt", "f.yaml"]).unwrap(), ["decrypt", "f.yaml"]);
        assert_eq!(
            rw(&["-e", "-i", "f.yaml"]).unwrap(),
            ["encrypt", "-i", "f.yaml"]
        );
        assert_eq!(
            rw(&["--encrypt", "--input-type", "yaml", "--output", "o", "f"]).unwrap(),
            ["encrypt", "--input-type", "yaml", "--output", "o", "f"]
        );
        assert_eq!(
            rw(&["-r", "-i", "--add-age", "age1x", "f"]).unwrap(),
            ["rotate", "-i", "--add-age", "age1x", "f"]
        );
        assert_eq!(
            rw(&["-i", "-d", "f"]).unwrap(),
            ["decrypt", "-i", "f"],
            "the mode flag may come anywhere"
        );
    }

    #[test]
    fn short_key_flags_are_spelled_out() {
        assert_eq!(
            rw(&["-e", "-a", "age1x", "-p", "FP", "-k", "arn", "f"]).unwrap(),
            [
                "encrypt", "--age", "age1x", "--pgp", "FP", "--kms", "arn", "f"
            ]
        );
        assert_eq!(
            rw(&["-s", "f"]).unwrap(),
            ["edit", "--show-master-keys", "f"]
        );
    }

    #[test]
    fn extract_keeps_its_value_even_if_it_looks_like_a_mode() {
        assert_eq!(
            rw(&["-d", "--extract", "[\"a\"]", "f"]).unwrap(),
            ["decrypt", "--extract", "[\"a\"]", "f"]
        );
        assert_eq!(
            rw(&["--extract", "-e", "-d", "f"]).unwrap(),
            ["decrypt", "--extract", "-e", "f"]
        );
        assert_eq!(
            rw(&["-e", "--output", "-d", "f"]).unwrap(),
            ["encrypt", "--output", "-d", "f"]
        );
    }

    #[test]
    fn a_bare_file_means_edit() {
        assert_eq!(rw(&["f.yaml"]).unwrap(), ["edit", "f.yaml"]);
        assert_eq!(
            rw(&["--verbose", "f.yaml"]).unwrap(),
            ["edit", "--verbose", "f.yaml"]
        );
        assert_eq!(
            rw(&["-v"]).unwrap(),
            ["--version"],
            "sops -v prints the version"
        );
    }

    #[test]
    fn set_expression_is_split_into_path_and_value() {
        assert_eq!(
            rw(&["--set", "[\"a\"] \"aaa\"", "-i", "f.yaml"]).unwrap(),
            ["set", "f.yaml", "[\"a\"]", "\"aaa\""]
        );
        assert_eq!(
            rw(&["--set=[\"a\"][0] {\"b\": 1}", "--ignore-mac", "f"]).unwrap(),
            ["set", "--ignore-mac", "f", "[\"a\"][0]", "{\"b\": 1}"]
        );
        assert_eq!(rw(&["--set", "[\"a\"]", "f"]), Err(ArgvError::SetFormat));
        assert_eq!(rw(&["--set", "[\"a\"] 1"]), Err(ArgvError::SetNoFile));
    }

    #[test]
    fn flags_sops_ignores_in_a_mode_are_dropped() {
        assert_eq!(
            rw(&[
                "-d",
                "-a",
                "age1x",
                "--kms=arn",
                "--enable-local-keyservice",
                "f"
            ])
            .unwrap(),
            ["decrypt", "f"]
        );
        assert_eq!(
            rw(&[
                "-r",
                "--age",
                "x",
                "--add-age",
                "y",
                "--encryption-context",
                "a:b",
                "f"
            ])
            .unwrap(),
            [
                "rotate",
                "--add-age",
                "y",
                "--encryption-context",
                "a:b",
                "f"
            ]
        );
        assert_eq!(
            rw(&[
                "-e",
                "--age",
                "x",
                "--rm-age",
                "y",
                "--keyservice",
                "tcp://k",
                "f"
            ])
            .unwrap(),
            ["encrypt", "--age", "x", "f"]
        );
        assert_eq!(
            rw(&["--set", "[\"a\"] 1", "--age", "x", "f"]).unwrap(),
            ["set", "f", "[\"a\"]", "1"]
        );
        assert_eq!(
            rw(&["-d", "--extract", "--age", "f"]).unwrap(),
            ["decrypt", "--extract", "--age", "f"],
            "a value is never taken for a flag"
        );
    }

    #[test]
    fn two_modes_are_refused() {
        assert!(matches!(
            rw(&["-e", "-d", "f"]),
            Err(ArgvError::Conflict(a, b)) if a == "-e" && b == "-d"
        ));
        assert_eq!(rw(&["-d", "--decrypt", "f"]).unwrap(), ["decrypt", "f"]);
    }
}
