//! Passphrases and prompts for age: encrypted identity files (`age -p`) and
//! age plugins.
//!
//! sops 3.x asks gpg-agent first (GET_PASSPHRASE with a cache key derived from
//! the identity file, so a passphrase typed for sops is reused by ksec and the
//! other way round) and falls back to the terminal when no agent answers. ksec
//! does the same. There is no environment variable for the passphrase in
//! sops, and ksec adds none: a passphrase in the environment leaks into child
//! processes and `/proc`. Passphrases are never echoed or logged and are held
//! in `Zeroizing` buffers.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The gpg-agent socket, found the way sops's gpg-agent client finds it:
/// `GPG_AGENT_INFO` (first field), else `~/.gnupg/S.gpg-agent` when that is a
/// socket, else `$XDG_RUNTIME_DIR/gnupg/S.gpg-agent`.
fn agent_socket() -> Option<PathBuf> {
    if let Ok(info) = std::env::var("GPG_AGENT_INFO") {
        let first = info.split(':').next().unwrap_or("");
        return (!first.is_empty()).then(|| PathBuf::from(first));
    }
    let home = PathBuf::from(std::env::var_os("HOME")?);
    let sock = home.join(".gnupg").join("S.gpg-agent");
    let is_socket = |p: &PathBuf| {
        std::fs::metadata(p)
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false)
    };
    if !is_socket(&sock) {
        if let Some(rt) = std::env::var_os("XDG_RUNTIME_DIR") {
            return Some(PathBuf::from(rt).join("gnupg").join("S.gpg-agent"));
        }
    }
    Some(sock)
}

/// The gpg-agent cache key sops uses for an encrypted identity:
/// `SopsAge` + base32 of the first 25 bytes of SHA-256 over the binary
/// (de-armored) age file.
pub fn cache_key(contents: &[u8]) -> String {
    let digest = Sha256::digest(contents);
    format!("SopsAge{}", base32(&digest[..25]))
}

/// RFC 4648 base32 (the input here is a multiple of 5 bytes: no padding).
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(ALPHABET[((n >> (35 - 5 * i)) & 31) as usize] as char);
        }
    }
    out
}

/// `url.QueryEscape`, as sops encodes Assuan arguments.
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A connection to gpg-agent speaking just enough Assuan for passphrases.
pub struct Agent {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Agent {
    /// Connects to the agent; `None` when there is none (sops then prompts on
    /// the terminal).
    pub fn connect() -> Option<Agent> {
        let stream = UnixStream::connect(agent_socket()?).ok()?;
        let mut agent = Agent {
            writer: stream.try_clone().ok()?,
            reader: BufReader::new(stream),
        };
        let greeting = agent.read_line().ok()?;
        greeting.starts_with(b"OK").then_some(agent)
    }

    /// One response line; status and comment lines are skipped, and an
    /// INQUIRE (pinentry notifications) is answered with END.
    fn read_line(&mut self) -> io::Result<Zeroizing<Vec<u8>>> {
        loop {
            let mut line = Zeroizing::new(Vec::new());
            if self.reader.read_until(b'\n', &mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "gpg-agent closed",
                ));
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            if line.starts_with(b"S ") || line.starts_with(b"#") {
                continue;
            }
            if line.starts_with(b"INQUIRE") {
                self.writer.write_all(b"END\n")?;
                continue;
            }
            return Ok(line);
        }
    }

    fn command(&mut self, line: &str) -> io::Result<Zeroizing<Vec<u8>>> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")?;
        self.read_line()
    }

    /// GET_PASSPHRASE as sops sends it (same options, cache key, prompt and
    /// description), so both tools share the agent's cache.
    pub fn get_passphrase(
        &mut self,
        cache_key: &str,
        desc: &str,
    ) -> Result<Zeroizing<String>, String> {
        if let Ok(d) = std::env::var("DISPLAY") {
            if !d.is_empty() {
                self.option(&format!("display={d}"))?;
            }
        }
        if let Ok(tty) = std::fs::read_link("/proc/self/fd/0") {
            self.option(&format!("ttyname={}", tty.display()))?;
        }
        if let Ok(term) = std::env::var("TERM") {
            if !term.is_empty() {
                self.option(&format!("ttytype={term}"))?;
            }
        }
        let cmd = format!(
            "GET_PASSPHRASE {} X Passphrase {}",
            query_escape(cache_key),
            query_escape(desc)
        );
        let line = self
            .command(&cmd)
            .map_err(|e| format!("gpg-agent passphrase request failed: {e}"))?;
        let Some(hexpass) = line.strip_prefix(b"OK ") else {
            // ERR lines carry a code and a message, never the passphrase.
            return Err(format!(
                "gpg-agent passphrase request errored: {}",
                String::from_utf8_lossy(&line)
            ));
        };
        let bytes = Zeroizing::new(
            hex::decode(hexpass)
                .map_err(|_| "gpg-agent sent a malformed passphrase".to_string())?,
        );
        let pass = std::str::from_utf8(&bytes)
            .map_err(|_| "the passphrase is not valid UTF-8".to_string())?;
        Ok(Zeroizing::new(pass.to_string()))
    }

    fn option(&mut self, opt: &str) -> Result<(), String> {
        let line = self
            .command(&format!("OPTION {opt}"))
            .map_err(|e| format!("gpg-agent: {e}"))?;
        if line.starts_with(b"OK") {
            Ok(())
        } else {
            Err(format!(
                "gpg-agent refused OPTION: {}",
                String::from_utf8_lossy(&line)
            ))
        }
    }

    /// Forgets a cached passphrase (after it turned out wrong), as sops does.
    pub fn clear(&mut self, cache_key: &str) {
        let _ = self.command(&format!("CLEAR_PASSPHRASE {}", query_escape(cache_key)));
    }
}

/// The passphrase for an encrypted identity file: gpg-agent, else terminal.
pub fn identity_passphrase(cache_key: &str, origin: &str) -> Result<Zeroizing<String>, String> {
    let desc = format!("Enter passphrase for identity '{origin}':");
    match Agent::connect() {
        Some(mut agent) => {
            let pass = agent.get_passphrase(cache_key, &desc)?;
            if pass.is_empty() {
                agent.clear(cache_key);
            }
            Ok(pass)
        }
        None => read_secret(&desc),
    }
}

/// Forgets the agent's cached passphrase for `cache_key` (wrong passphrase).
pub fn forget_passphrase(cache_key: &str) {
    if let Some(mut agent) = Agent::connect() {
        agent.clear(cache_key);
    }
}

fn tty() -> Result<File, String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| "no terminal to ask on (and no gpg-agent running)".to_string())
}

/// Reads one line from the terminal with echo off.
pub fn read_secret(prompt: &str) -> Result<Zeroizing<String>, String> {
    let mut tty = tty()?;
    write!(tty, "{prompt} ").map_err(|e| e.to_string())?;
    let fd = std::os::unix::io::AsRawFd::as_raw_fd(&tty);
    // SAFETY: tcgetattr/tcsetattr on an open descriptor with a zeroed termios
    // that tcgetattr fills before use.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_termios = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_termios {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let line = read_tty_line(&mut tty);
    if have_termios {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    line
}

fn read_public(prompt: &str) -> Result<String, String> {
    let mut tty = tty()?;
    write!(tty, "{prompt} ").map_err(|e| e.to_string())?;
    read_tty_line(&mut tty).map(|s| s.to_string())
}

/// Bytes up to a newline, one at a time so nothing past it is buffered.
fn read_tty_line(tty: &mut File) -> Result<Zeroizing<String>, String> {
    let mut buf = Zeroizing::new(Vec::new());
    let mut byte = [0u8; 1];
    loop {
        match tty.read(&mut byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let s = std::str::from_utf8(&buf).map_err(|_| "input is not valid UTF-8".to_string())?;
    Ok(Zeroizing::new(s.to_string()))
}

/// The user interface age plugins get: messages on stderr (prefixed like
/// sops's `age: `), questions and PINs on the terminal.
#[derive(Clone, Copy, Debug, Default)]
pub struct TerminalUi;

impl age::Callbacks for TerminalUi {
    fn display_message(&self, message: &str) {
        eprintln!("age: {message}");
    }

    fn confirm(&self, message: &str, yes: &str, no: Option<&str>) -> Option<bool> {
        let choices = match no {
            Some(no) => format!("[1] {yes} [2] {no}"),
            None => format!("[1] {yes}"),
        };
        let answer = read_public(&format!("{message} {choices}:")).ok()?;
        match answer.trim() {
            "1" => Some(true),
            "2" if no.is_some() => Some(false),
            _ => None,
        }
    }

    fn request_public_string(&self, description: &str) -> Option<String> {
        read_public(description).ok()
    }

    fn request_passphrase(&self, description: &str) -> Option<age::secrecy::SecretString> {
        let pass = read_secret(description).ok()?;
        Some(age::secrecy::SecretString::from(pass.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_and_escape_match_go() {
        // Go: base32.StdEncoding.EncodeToString([]byte("hello")) == "NBSWY3DP"
        assert_eq!(base32(b"hello"), "NBSWY3DP");
        assert_eq!(query_escape("a b/c'd:"), "a+b%2Fc%27d%3A");
        assert_eq!(cache_key(b"").len(), "SopsAge".len() + 40);
    }
}
