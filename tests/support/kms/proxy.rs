//! A loopback TCP proxy for fault injection in front of the real servers
//! (moto, OpenBao, the kube-apiserver). Thread-based, one thread per
//! connection. Two flavours:
//!
//! - [`Proxy::http`] for plain-HTTP peers: reads each request, forces
//!   `Connection: close` so every request is its own connection (and so
//!   counted exactly), then lets a [`Rule`] decide per request index: pass,
//!   delay, answer an HTTP status itself, or reset the connection.
//! - [`Proxy::tcp`] for TLS peers: pipes bytes, can delay or reset, and
//!   [`Proxy::cut`] resets every open connection (a server killed
//!   mid-operation); [`Proxy::slow`] holds every chunk the server sends.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with one request (HTTP) or connection (TCP).
#[derive(Clone, Debug)]
pub enum Action {
    Pass,
    /// Wait, then pass.
    Delay(Duration),
    /// Answer with this status and a JSON body; the peer never sees the request.
    Status(u16, &'static str),
    /// Close with RST, as a crashed server's kernel would.
    Reset,
}

/// Request (or connection) index, from 0 → action.
pub type Rule = Arc<dyn Fn(usize) -> Action + Send + Sync>;

pub fn rule(f: impl Fn(usize) -> Action + Send + Sync + 'static) -> Rule {
    Arc::new(f)
}

struct Shared {
    upstream: String,
    rule: Mutex<Rule>,
    count: AtomicUsize,
    http: bool,
    open: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    /// TCP mode: wait this long before relaying each chunk from the server.
    slow: Mutex<Duration>,
}

pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// An HTTP-aware proxy to `upstream` (`host:port`).
    pub fn http(upstream: &str) -> Proxy {
        Proxy::start(upstream, true)
    }

    /// A byte pipe to `upstream` (`host:port`), for TLS.
    pub fn tcp(upstream: &str) -> Proxy {
        Proxy::start(upstream, false)
    }

    fn start(upstream: &str, http: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            rule: Mutex::new(rule(|_| Action::Pass)),
            count: AtomicUsize::new(0),
            http,
            open: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            slow: Mutex::new(Duration::ZERO),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    if s.http {
                        serve_http(&s, conn)
                    } else {
                        serve_tcp(&s, conn)
                    }
                });
            }
        });
        Proxy { port, shared }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replaces the rule and resets the counter.
    pub fn set(&self, r: Rule) {
        *self.shared.rule.lock().unwrap() = r;
        self.shared.count.store(0, Ordering::SeqCst);
    }

    /// Requests (HTTP) or connections (TCP) seen since the last [`Proxy::set`].
    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// TCP mode: a slow server, each chunk it sends is held for `d`.
    pub fn slow(&self, d: Duration) {
        *self.shared.slow.lock().unwrap() = d;
    }

    /// Resets every connection open right now.
    pub fn cut(&self) {
        for c in self.shared.open.lock().unwrap().drain(..) {
            reset(&c);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(self.addr());
    }
}

fn reset(c: &TcpStream) {
    // SO_LINGER 0: close sends RST instead of FIN.
    let fd = std::os::fd::AsRawFd::as_raw_fd(c);
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd, option struct of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = c.shutdown(Shutdown::Both);
}

fn next_action(s: &Shared) -> Action {
    let n = s.count.fetch_add(1, Ordering::SeqCst);
    let r = s.rule.lock().unwrap().clone();
    r(n)
}

/// Reads one request head and its Content-Length body.
fn read_request(c: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = c.read(&mut b).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = c.read(&mut b).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&b[..n]);
    }
    Some((head, body))
}

fn serve_http(s: &Shared, mut c: TcpStream) {
    let Some((head, body)) = read_request(&mut c) else {
        return;
    };
    let mut action = next_action(s);
    if let Action::Delay(d) = action {
        std::thread::sleep(d);
        action = Action::Pass;
    }
    match action {
        Action::Reset => reset(&c),
        Action::Status(code, json) => {
            let resp = format!(
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                json.len()
            );
            let _ = c.write_all(resp.as_bytes());
        }
        Action::Pass | Action::Delay(_) => {
            let Ok(mut up) = TcpStream::connect(&s.upstream) else {
                reset(&c);
                return;
            };
            s.open.lock().unwrap().push(c.try_clone().unwrap());
            let mut lines: Vec<&str> = head
                .trim_end_matches("\r\n")
                .split("\r\n")
                .filter(|l| {
                    !l.to_ascii_lowercase().starts_with("connection:")
                        && !l.to_ascii_lowercase().starts_with("keep-alive:")
                })
                .collect();
            lines.push("Connection: close");
            let new_head = format!("{}\r\n\r\n", lines.join("\r\n"));
            if up.write_all(new_head.as_bytes()).is_err() || up.write_all(&body).is_err() {
                reset(&c);
                return;
            }
            let _ = std::io::copy(&mut up, &mut c);
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn serve_tcp(s: &Shared, c: TcpStream) {
    match next_action(s) {
        Action::Reset | Action::Status(..) => {
            reset(&c);
            return;
        }
        Action::Delay(d) => std::thread::sleep(d),
        Action::Pass => {}
    }
    let Ok(up) = TcpStream::connect(&s.upstream) else {
        reset(&c);
        return;
    };
    s.open.lock().unwrap().push(c.try_clone().unwrap());
    s.open.lock().unwrap().push(up.try_clone().unwrap());
    let (mut c1, mut up1) = (c.try_clone().unwrap(), up.try_clone().unwrap());
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c1, &mut up1);
        let _ = up1.shutdown(Shutdown::Write);
    });
    let (mut c2, mut up2) = (c, up);
    let mut buf = [0u8; 16384];
    while let Ok(n) = up2.read(&mut buf) {
        if n == 0 {
            break;
        }
        let d = *s.slow.lock().unwrap();
        if !d.is_zero() {
            std::thread::sleep(d);
        }
        if c2.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c2.shutdown(Shutdown::Write);
    let _ = t.join();
}
