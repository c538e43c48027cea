//! ksec as a drop-in `sops` binary: the command lines sops users and their
//! scripts type (old `-d/-e/-r/--set` syntax, `--output FILE`, stdin,
//! `set/unset`, `exec-env/exec-file`, `groups`), run the same way against
//! real sops where the output must match.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::bin::{self, AgeKey, age_key, ksec, run, stderr, stdout};

/// A folder with a `.sops.yaml` naming one age key; commands run in it,
/// as sops users run them from their repository.
pub struct SopsDir {
    pub dir: tempfile::TempDir,
    pub key: AgeKey,
}

pub fn sops_dir() -> SopsDir {
    let dir = bin::tempdir();
    let key = age_key(dir.path(), "key");
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!("creation_rules:\n  - age: {}\n", key.recipient),
    )
    .unwrap();
    SopsDir { dir, key }
}

impl SopsDir {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    fn prepare(&self, mut c: Command) -> Command {
        c.current_dir(self.dir.path())
            .env("SOPS_AGE_KEY_FILE", &self.key.identity_file);
        c
    }

    pub fn ksec_cmd(&self) -> Command {
        self.prepare(ksec())
    }

    pub fn ksec(&self, args: &[&str]) -> Output {
        run(self.ksec_cmd().args(args))
    }

    /// Real sops, or None (skip) when it is not installed.
    pub fn sops(&self, args: &[&str]) -> Option<Output> {
        let c = bin::sops_cmd()?;
        Some(run(self.prepare(c).args(args)))
    }

    /// Runs ksec with `input` on stdin.
    pub fn ksec_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .ksec_cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

#[track_caller]
pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The old syntax (`-e -i`, `--set '["a"] v' -i`, `-d -i`, `-d --extract`,
/// `-r -i`) does what sops does, with the same output.
#[test]
fn old_sops_syntax_works_like_sops() {
    let d = sops_dir();
    for tool in ["ksec", "sops"] {
        let f = format!("{tool}.yaml");
        d.write(&f, "a: 2\nb: ba\n");
        let go = |args: &[&str]| -> Option<Output> {
            let mut all: Vec<&str> = args.to_vec();
            all.push(&f);
            if tool == "ksec" {
                Some(d.ksec(&all))
            } else {
                d.sops(&all)
            }
        };
        let Some(o) = go(&["-e", "-i"]) else { return };
        ok(&o);
        assert!(
            d.read(&f).contains("sops:"),
            "{tool}: -e -i encrypts in place"
        );
        ok(&go(&["--set", "[\"a\"] \"aaa\"", "-i"]).unwrap());
        ok(&go(&["-r", "-i"]).unwrap());
        let o = go(&["-d", "--extract", "[\"a\"]"]).unwrap();
        ok(&o);
        assert_eq!(stdout(&o), "aaa", "{tool}");
        let o = go(&["--decrypt"]).unwrap();
        ok(&o);
        assert_eq!(stdout(&o), "a: aaa\nb: ba\n", "{tool}");
        ok(&go(&["-d", "-i"]).unwrap());
        assert_eq!(d.read(&f), "a: aaa\nb: ba\n", "{tool}");
    }
}

#[test]
fn old_syntax_refuses_two_modes_as_a_usage_error() {
    let d = sops_dir();
    d.write("f.yaml", "a: 1\n");
    let o = d.ksec(&["-e", "-d", "f.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("conflicting"), "{}", stderr(&o));
}

/// `--output FILE` on encrypt, decrypt and rotate: nothing on stdout, the
/// result in FILE; plaintext is 0600 even over a readable file.
#[test]
fn output_flag_writes_the_result_to_a_file() {
    let d = sops_dir();
    d.write("p.yaml", "a: secret\n");
    let o = d.ksec(&["encrypt", "--output", "e.yaml", "p.yaml"]);
    ok(&o);
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    assert!(d.read("e.yaml").contains("ENC["));
    assert_eq!(d.read("p.yaml"), "a: secret\n", "the input is untouched");

    d.write("plain.out", "old");
    std::fs::set_permissions(
        d.path("plain.out"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let o = d.ksec(&["decrypt", "--output", "plain.out", "e.yaml"]);
    ok(&o);
    assert!(o.stdout.is_empty());
    assert_eq!(d.read("plain.out"), "a: secret\n");
    assert_eq!(mode(&d.path("plain.out")), 0o600, "plaintext is private");

    let o = d.ksec(&["rotate", "--output", "r.yaml", "e.yaml"]);
    ok(&o);
    assert!(o.stdout.is_empty());
    let o = d.ksec(&["decrypt", "r.yaml"]);
    ok(&o);
    assert_eq!(stdout(&o), "a: secret\n");
    assert_ne!(d.read("r.yaml"), d.read("e.yaml"), "a new data key");

    // the old spelling still works
    let o = d.ksec(&["decrypt", "--output-file", "again.yaml", "e.yaml"]);
    ok(&o);
    assert_eq!(d.read("again.yaml"), "a: secret\n");
    // and ksec's own commands keep -o/--output FORMAT
    let o = d.ksec(&["check", "--output", "json", "e.yaml"]);
    ok(&o);
    assert!(serde_json::from_slice::<serde_json::Value>(&o.stdout).is_ok());
    let o = d.ksec(&["decrypt", "-i", "--output", "x", "e.yaml"]);
    assert_eq!(o.status.code(), Some(2), "-i and --output conflict");
}

/// Runs the same command with ksec and, when installed, real sops, on
/// copies `ksec-NAME` / `sops-NAME` of a file; returns both outputs.
fn both(d: &SopsDir, name: &str, args: &[&str], tail: &[&str]) -> Vec<(String, Output)> {
    let mut out = Vec::new();
    for tool in ["ksec", "sops"] {
        let f = format!("{tool}-{name}");
        let mut all: Vec<&str> = args.to_vec();
        all.push(&f);
        all.extend_from_slice(tail);
        let o = if tool == "ksec" {
            Some(d.ksec(&all))
        } else {
            d.sops(&all)
        };
        if let Some(o) = o {
            out.push((f, o));
        }
    }
    out
}

/// `set FILE PATH JSON` (maps, strings, numbers, --value-file, --output-type)
/// and `unset` leave the same plaintext as sops.
#[test]
fn set_and_unset_match_sops() {
    let d = sops_dir();
    d.write("value.json", r#"{"cc": "ccc"}"#);
    for tool in ["ksec", "sops"] {
        d.write(
            &format!("{tool}-s.json"),
            r#"{"a": 2, "b": "ba", "c": [1, 2]}"#,
        );
    }
    let steps: &[(&[&str], &[&str])] = &[
        (&["encrypt", "-i"], &[]),
        (&["set"], &[r#"["a"]"#, r#"{"aa": "aaa"}"#]),
        (&["set"], &[r#"["n"]"#, "1.5"]),
        (&["set"], &[r#"["c"][5]"#, r#""appended""#]),
        (&["set", "--value-file"], &[r#"["v"]"#, "value.json"]),
        (&["unset"], &[r#"["b"]"#]),
        (&["unset"], &[r#"["c"][0]"#]),
        (&["set", "--output-type", "yaml"], &[r#"["b"]"#, r#""new""#]),
    ];
    for (args, tail) in steps {
        for (f, o) in both(&d, "s.json", args, tail) {
            assert!(o.status.success(), "{f} {args:?}: {}", stderr(&o));
        }
    }
    let plain: Vec<String> = both(&d, "s.json", &["decrypt", "--input-type", "yaml"], &[])
        .into_iter()
        .map(|(_, o)| stdout(&o))
        .collect();
    assert!(
        plain[0].starts_with("{\n\t\"a\": {\n\t\t\"aa\": \"aaa\""),
        "the output type follows the name (.json), not --input-type: {}",
        plain[0]
    );
    assert!(
        d.read("ksec-s.json").starts_with("a:"),
        "--output-type yaml"
    );
    if plain.len() == 2 {
        assert_eq!(plain[0], plain[1], "ksec and sops agree");
    }
}

#[test]
fn set_reads_the_value_from_stdin() {
    let d = sops_dir();
    d.write("s.json", r#"{"a": 2}"#);
    ok(&d.ksec(&["encrypt", "-i", "s.json"]));
    let o = d.ksec_stdin(
        &["set", "--value-stdin", "s.json", r#"["c"]"#],
        br#"{"cc": "ccc"}"#,
    );
    ok(&o);
    let o = d.ksec(&["decrypt", "--extract", r#"["c"]["cc"]"#, "s.json"]);
    assert_eq!(stdout(&o), "ccc");
}

/// `--idempotent`: no write (byte-identical file, exit 0) when nothing
/// changes; without it `set` always rewrites; `unset` of a missing path
/// fails (exit 1) unless idempotent.
#[test]
fn idempotent_set_and_unset_do_not_write() {
    let d = sops_dir();
    d.write("s.json", r#"{"a": 2, "b": "ba"}"#);
    ok(&d.ksec(&["encrypt", "-i", "s.json"]));
    let before = d.read("s.json");
    ok(&d.ksec(&["set", "--idempotent", "s.json", r#"["b"]"#, r#""ba""#]));
    assert_eq!(d.read("s.json"), before);
    ok(&d.ksec(&["set", "s.json", r#"["b"]"#, r#""ba""#]));
    assert_ne!(
        d.read("s.json"),
        before,
        "sops rewrites without --idempotent"
    );
    let before = d.read("s.json");
    let o = d.ksec(&["unset", "s.json", r#"["zz"]"#]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    ok(&d.ksec(&["unset", "--idempotent", "s.json", r#"["zz"]"#]));
    assert_eq!(d.read("s.json"), before);
    if let Some(o) = d.sops(&["unset", "s.json", r#"["zz"]"#]) {
        assert_eq!(o.status.code(), Some(1), "sops agrees");
    }
}

/// A file whose MAC does not verify is refused by set/unset unless
/// `--ignore-mac` is given (which writes a fresh MAC).
#[test]
fn set_and_unset_refuse_a_bad_mac_unless_told() {
    let d = sops_dir();
    d.write("s.yaml", "a: 1\nb: 2\n");
    ok(&d.ksec(&["encrypt", "-i", "s.yaml"]));
    let text = d.read("s.yaml");
    let mac_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("mac:"))
        .unwrap();
    let forged = text.replace(mac_line, "    mac: ENC[AES256_GCM,data:AAAA,iv:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]");
    d.write("s.yaml", &forged);
    let o = d.ksec(&["set", "s.yaml", r#"["a"]"#, "3"]);
    assert!(!o.status.success());
    let o = d.ksec(&["unset", "s.yaml", r#"["a"]"#]);
    assert!(!o.status.success());
    ok(&d.ksec(&["set", "--ignore-mac", "s.yaml", r#"["a"]"#, "3"]));
    let o = d.ksec(&["decrypt", "s.yaml"]);
    ok(&o);
    assert_eq!(stdout(&o), "a: 3\nb: 2\n");
}

/// `encrypt`/`decrypt` with no file (or `-`) read stdin; `--filename-override`
/// picks the rules and formats; encrypting stdin without a name is refused.
#[test]
fn stdin_and_filename_override_work_like_sops() {
    let d = sops_dir();
    let o = d.ksec_stdin(
        &[
            "encrypt",
            "--filename-override",
            "x.yaml",
            "--output-type",
            "json",
        ],
        b"foo: 2\nbar: baz\n",
    );
    ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["foo"].as_str().unwrap().starts_with("ENC["));
    assert!(j["sops"].is_object());
    d.write("enc.json", &stdout(&o));

    let o = d.ksec_stdin(&["encrypt"], b"a: 1\n");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--filename-override"), "{}", stderr(&o));

    let enc = std::fs::read(d.path("enc.json")).unwrap();
    for args in [
        &["decrypt", "--input-type", "json", "--output-type", "yaml"][..],
        &[
            "decrypt",
            "--filename-override",
            "y.json",
            "--output-type",
            "yaml",
            "-",
        ],
    ] {
        let o = d.ksec_stdin(args, &enc);
        ok(&o);
        assert_eq!(stdout(&o), "foo: 2\nbar: baz\n", "{args:?}");
    }
    // a file read under another name: .yaml content in a .txt file
    d.write("q.txt", "a: 1\n");
    ok(&d.ksec(&["encrypt", "-i", "--filename-override", "q.yaml", "q.txt"]));
    assert!(
        d.read("q.txt").starts_with("a: ENC["),
        "{}",
        d.read("q.txt")
    );
    let o = d.ksec(&["decrypt", "--filename-override", "q.yaml", "q.txt"]);
    ok(&o);
    assert_eq!(stdout(&o), "a: 1\n");
}

/// sops finds `.sops.yaml` from the working directory: a file elsewhere is
/// encrypted with the rules of the folder the command runs in.
#[test]
fn sops_yaml_of_the_working_directory_applies_to_files_elsewhere() {
    let d = sops_dir();
    let elsewhere = bin::tempdir();
    let f = elsewhere.path().join("s.yaml");
    std::fs::write(&f, "a: 1\n").unwrap();
    let o = run(d.ksec_cmd().args(["encrypt", "-i"]).arg(&f));
    ok(&o);
    let o = run(d.ksec_cmd().arg("decrypt").arg(&f));
    ok(&o);
    assert_eq!(stdout(&o), "a: 1\n");
}

fn encrypted_env_file(d: &SopsDir) {
    d.write("e.yaml", "foo: bar\nbar: |-\n  baz\n  bam\n");
    ok(&d.ksec(&["encrypt", "-i", "e.yaml"]));
}

/// exec-env: values in the command's environment (same output as sops),
/// the command's exit code, --pristine, and complex values refused by key.
#[test]
fn exec_env_passes_values_and_the_exit_code() {
    let d = sops_dir();
    encrypted_env_file(&d);
    for tool in ["ksec", "sops"] {
        let args = ["exec-env", "e.yaml", r#"printf '%s\n' "${foo}" "${bar}""#];
        let o = if tool == "ksec" {
            d.ksec(&args)
        } else {
            match d.sops(&args) {
                Some(o) => o,
                None => continue,
            }
        };
        ok(&o);
        assert_eq!(stdout(&o), "bar\nbaz\nbam\n", "{tool}");
    }
    let o = d.ksec(&["exec-env", "e.yaml", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let o = d.ksec(&["exec-env", "--pristine", "e.yaml", "env"]);
    ok(&o);
    assert!(!stdout(&o).contains("SOPS_AGE_KEY_FILE"), "{}", stdout(&o));
    assert!(stdout(&o).contains("foo=bar"));
    d.write("m.yaml", "a: CANARY-m\nm:\n  x: 1\n");
    ok(&d.ksec(&["encrypt", "-i", "m.yaml"]));
    let o = d.ksec(&["exec-env", "m.yaml", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("offending key m"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("CANARY"));
}

/// exec-file: a FIFO by default (never a file on disk), `{}` substituted,
/// --output-type; a command that never reads it does not hang ksec.
#[test]
fn exec_file_streams_through_a_fifo() {
    let d = sops_dir();
    encrypted_env_file(&d);
    let o = d.ksec(&[
        "exec-file",
        "--output-type",
        "json",
        "e.yaml",
        "test -p {} && stat -c %a {} && cat {}",
    ]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "600\n{\n\t\"foo\": \"bar\",\n\t\"bar\": \"baz\\nbam\"\n}\n"
    );
    let o = d.ksec(&["exec-file", "e.yaml", "exit 4"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "no reader: no hang, the exit code"
    );
    if let Some(o) = d.sops(&["exec-file", "--output-type", "json", "e.yaml", "cat {}"]) {
        let k = d.ksec(&["exec-file", "--output-type", "json", "e.yaml", "cat {}"]);
        assert_eq!(stdout(&k), stdout(&o), "same plaintext as sops");
    }
}

/// --no-fifo: a 0600 file named by --filename in a 0700 folder, removed
/// when the command ends.
#[test]
fn exec_file_no_fifo_uses_a_private_file_then_removes_it() {
    let d = sops_dir();
    encrypted_env_file(&d);
    let o = d.ksec(&[
        "exec-file",
        "--no-fifo",
        "--filename",
        "foobar",
        "e.yaml",
        "stat -c %a {} && stat -c %a $(dirname {}) && echo {}",
    ]);
    ok(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["600", "700"], "{out}");
    assert!(lines[2].ends_with("/foobar"), "{out}");
    assert!(!Path::new(lines[2]).exists(), "removed afterwards");
    assert!(!Path::new(lines[2]).parent().unwrap().exists());
}

/// A signal while the command runs still removes the plaintext file.
#[test]
fn exec_file_no_fifo_removes_the_file_on_sigterm() {
    use std::io::BufRead;
    let d = sops_dir();
    encrypted_env_file(&d);
    let mut child = d
        .ksec_cmd()
        .args(["exec-file", "--no-fifo", "e.yaml", "echo {}; sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let path = PathBuf::from(line.trim());
    assert!(path.exists(), "{line}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(!path.exists(), "plaintext left behind");
    assert!(!path.parent().unwrap().exists());
}

/// Plaintext in the flat stores (INI, dotenv) prints scalars as sops does
/// (booleans `true`, dates as RFC 3339).
#[test]
fn flat_stores_print_scalars_like_sops() {
    let d = sops_dir();
    let plain = "the_section:\n  int: 123\n  float: 1.23\n  bool: true\n  date: 2025-01-02\n  string: this is a string\n";
    d.write("ksec-v.yaml", plain);
    ok(&d.ksec(&["encrypt", "-i", "ksec-v.yaml"]));
    let o = d.ksec(&["decrypt", "--output-type", "ini", "ksec-v.yaml"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "[the_section]\nint    = 123\nfloat  = 1.23\nbool   = true\ndate   = 2025-01-02T00:00:00Z\nstring = this is a string\n"
    );
    d.write("flat.yaml", "b: true\nf: 1.50\n");
    ok(&d.ksec(&["encrypt", "-i", "flat.yaml"]));
    let o = d.ksec(&["decrypt", "--output-type", "dotenv", "flat.yaml"]);
    assert_eq!(stdout(&o), "b=true\nf=1.5\n");
    for (args, file) in [
        (&["decrypt", "--output-type", "ini"][..], "ksec-v.yaml"),
        (&["decrypt", "--output-type", "dotenv"], "flat.yaml"),
    ] {
        let all: Vec<&str> = args.iter().copied().chain([file]).collect();
        if let Some(s) = d.sops(&all) {
            assert_eq!(stdout(&d.ksec(&all)), stdout(&s), "{args:?}");
        }
    }
}

/// A `.sops.yaml` rule with no keys or an empty key group fails when used,
/// with sops's exact message; the other rules of that file still work.
#[test]
fn empty_key_groups_fail_with_sops_words_only_when_used() {
    let d = sops_dir();
    std::fs::write(
        d.path(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: none\\.yaml\n  - path_regex: zero\\.yaml\n    key_groups: []\n  - path_regex: empty\\.yaml\n    key_groups:\n      - {{}}\n  - age: {}\n",
            d.key.recipient
        ),
    )
    .unwrap();
    for name in ["none.yaml", "zero.yaml", "empty.yaml"] {
        d.write(name, "a: secret\n");
        let o = d.ksec(&["encrypt", "-i", name]);
        assert!(!o.status.success(), "{name}");
        assert_eq!(
            stderr(&o),
            "Could not generate data key: [empty key group provided]\n",
            "{name}"
        );
        if let Some(s) = d.sops(&["encrypt", "-i", name]) {
            assert_eq!(stderr(&s), stderr(&o), "{name}: as sops says it");
        }
    }
    d.write("ok.yaml", "a: secret\n");
    ok(&d.ksec(&["encrypt", "-i", "ok.yaml"]));
}

/// `groups add --file F --age R` splits the data key across the groups
/// (both keys then needed); `groups delete --file F INDEX` (alias `remove`)
/// takes one away, refusing a threshold the rest cannot meet, like sops.
#[test]
fn groups_add_and_delete_work_like_sops() {
    let d = sops_dir();
    let second = age_key(d.dir.path(), "second");
    let both = d.path("both.txt");
    std::fs::write(
        &both,
        std::fs::read_to_string(&d.key.identity_file).unwrap()
            + &std::fs::read_to_string(&second.identity_file).unwrap(),
    )
    .unwrap();
    for tool in ["ksec", "sops"] {
        let f = format!("{tool}-g.yaml");
        d.write(&f, "a: secret\n");
        let go = |args: &[&str], key: &Path| -> Option<Output> {
            let mut c = if tool == "ksec" {
                d.ksec_cmd()
            } else {
                d.prepare(bin::sops_cmd()?)
            };
            Some(run(c.env("SOPS_AGE_KEY_FILE", key).args(args)))
        };
        let Some(o) = go(&["encrypt", "-i", &f], &d.key.identity_file) else {
            return;
        };
        ok(&o);
        let add = [
            "groups",
            "add",
            "--file",
            &f,
            "-i",
            "--age",
            &second.recipient,
        ];
        ok(&go(&add, &d.key.identity_file).unwrap());
        let dec = ["decrypt", f.as_str()];
        let o = go(&dec, &d.key.identity_file).unwrap();
        assert!(!o.status.success(), "{tool}: one group is not enough");
        let o = go(&dec, &both).unwrap();
        ok(&o);
        assert_eq!(stdout(&o), "a: secret\n", "{tool}");
        let del = ["groups", "delete", "--file", &f, "-i", "0"];
        let o = go(&del, &both).unwrap();
        assert!(
            !o.status.success(),
            "{tool}: threshold 2 with one group left"
        );
        let del = [
            "groups",
            "delete",
            "--file",
            &f,
            "-i",
            "--shamir-secret-sharing-threshold",
            "1",
            "0",
        ];
        ok(&go(&del, &both).unwrap());
        let o = go(&dec, &second.identity_file).unwrap();
        ok(&o);
        assert_eq!(stdout(&o), "a: secret\n", "{tool}: the second key alone");
    }
    // `remove` is an alias; a group that does not exist is a usage error
    let o = run(d.ksec_cmd().env("SOPS_AGE_KEY_FILE", &both).args([
        "groups",
        "remove",
        "--file",
        "ksec-g.yaml",
        "7",
    ]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no key group 7"), "{}", stderr(&o));
}

/// `-s/--show-master-keys`: decrypt keeps the sops metadata in its output;
/// edit shows it in the buffer and ignores changes to it.
#[test]
fn show_master_keys_in_decrypt_and_edit() {
    let d = sops_dir();
    d.write("s.yaml", "a: secret\n");
    ok(&d.ksec(&["encrypt", "-i", "s.yaml"]));
    for args in [&["decrypt", "--show-master-keys"][..], &["-d", "-s"]] {
        let all: Vec<&str> = args.iter().copied().chain(["s.yaml"]).collect();
        let o = d.ksec(&all);
        ok(&o);
        let out = stdout(&o);
        assert!(out.starts_with("a: secret\nsops:\n"), "{args:?}: {out}");
        assert!(out.contains(&d.key.recipient));
    }
    let editor = d.write(
        "editor.sh",
        "#!/bin/sh\ngrep -q '^sops:' \"$1\" || exit 9\nsed -i 's/secret/changed/; s/version: .*/version: 0.0.1/' \"$1\"\n",
    );
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = run(d
        .ksec_cmd()
        .env("EDITOR", &editor)
        .args(["edit", "-s", "s.yaml"]));
    ok(&o);
    let o = d.ksec(&["decrypt", "s.yaml"]);
    ok(&o);
    assert_eq!(stdout(&o), "a: changed\n");
    assert!(
        !d.read("s.yaml").contains("version: 0.0.1"),
        "metadata edits are ignored"
    );
}

/// `--decryption-order` (and SOPS_DECRYPTION_ORDER) takes sops's key type
/// names; an unknown one is a usage error. `completion` is `completions`.
#[test]
fn decryption_order_and_completion_alias() {
    let d = sops_dir();
    d.write("s.yaml", "a: secret\n");
    ok(&d.ksec(&["encrypt", "-i", "s.yaml"]));
    ok(&d.ksec(&["decrypt", "--decryption-order", "kms,age", "s.yaml"]));
    let o = d.ksec(&["decrypt", "--decryption-order", "gpg", "s.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(d
        .ksec_cmd()
        .env("SOPS_DECRYPTION_ORDER", "bogus")
        .args(["decrypt", "s.yaml"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = d.ksec(&["completion", "bash"]);
    ok(&o);
    assert!(stdout(&o).contains("ksec"));
    // rotate takes --encryption-context (for the KMS keys it adds)
    let o = d.ksec(&["rotate", "-i", "--encryption-context", "nocolon", "s.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    ok(&d.ksec(&["rotate", "-i", "--encryption-context", "app:web", "s.yaml"]));
}

/// The command lines helm-secrets' sops backend runs, verbatim.
#[test]
fn helm_secrets_command_lines_work() {
    let d = sops_dir();
    d.write("values.yaml", "db:\n    password: s3cret\n");
    let y = ["--input-type", "yaml", "--output-type", "yaml"];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter()
            .chain(y.iter())
            .chain(tail.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let args = with(&["--encrypt"], &["--output", "secrets.yaml", "values.yaml"]);
    ok(&d.ksec(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let args = with(&["--decrypt"], &["--output", "dec.yaml", "secrets.yaml"]);
    ok(&d.ksec(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(d.read("dec.yaml"), "db:\n    password: s3cret\n");
    let args = with(&["--decrypt"], &["/dev/stdin"]);
    let o = d.ksec_stdin(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &std::fs::read(d.path("secrets.yaml")).unwrap(),
    );
    ok(&o);
    assert_eq!(stdout(&o), "db:\n    password: s3cret\n");
    std::fs::copy(d.path("secrets.yaml"), d.path("inplace.yaml")).unwrap();
    let args = with(&["--decrypt"], &["--in-place", "inplace.yaml"]);
    ok(&d.ksec(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(d.read("inplace.yaml"), "db:\n    password: s3cret\n");
    // edit: `sops --input-type yaml --output-type yaml FILE`
    let before = d.read("secrets.yaml");
    let o = run(d
        .ksec_cmd()
        .env("EDITOR", "true")
        .args(with(&[], &["secrets.yaml"])));
    ok(&o);
    assert_eq!(d.read("secrets.yaml"), before, "no change, no write");
}

/// `--user`: the command runs as that user and can read the plaintext
/// (FIFO or file handed to it). Needs root; skipped otherwise.
#[test]
fn exec_user_runs_the_command_as_that_user() {
    if unsafe { libc::getuid() } != 0 {
        eprintln!("SKIP: --user needs root");
        return;
    }
    let d = sops_dir();
    encrypted_env_file(&d);
    let o = d.ksec(&["exec-env", "--user", "nobody", "e.yaml", "id -u; echo $foo"]);
    ok(&o);
    assert_eq!(stdout(&o), "65534\nbar\n");
    for fifo in [&[][..], &["--no-fifo"]] {
        let mut args = vec!["exec-file", "--user", "nobody"];
        args.extend_from_slice(fifo);
        args.extend(["e.yaml", "id -u; head -1 {}"]);
        // the owner's runtime folder (0700) is no place for another user's buffer
        let o = run(d
            .ksec_cmd()
            .env("XDG_RUNTIME_DIR", d.dir.path())
            .args(&args));
        ok(&o);
        assert_eq!(stdout(&o), "65534\nfoo: bar\n", "{fifo:?}");
    }
    let o = d.ksec(&["exec-env", "--user", "no-such-user-h5", "e.yaml", "true"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Old-syntax scripts that pass key flags everywhere (`$SOPS -d` with
/// SOPS="sops --age KEY") still work: sops ignores them when decrypting.
#[test]
fn old_syntax_ignores_key_flags_where_sops_does() {
    let d = sops_dir();
    d.write("s.yaml", "a: 1\n");
    let r = d.key.recipient.clone();
    ok(&d.ksec(&["--age", &r, "-e", "-i", "s.yaml"]));
    let o = d.ksec(&["--age", &r, "--enable-local-keyservice", "-d", "s.yaml"]);
    ok(&o);
    assert_eq!(stdout(&o), "a: 1\n");
    if let Some(s) = d.sops(&["--age", &r, "--enable-local-keyservice", "-d", "s.yaml"]) {
        assert_eq!(stdout(&s), stdout(&o));
    }
}
