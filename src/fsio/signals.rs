//! Removal of plaintext-bearing files when the process is stopped by
//! SIGINT, SIGTERM or SIGHUP. Paths are registered in fixed slots that the
//! handler reads without locking or allocating (only async-signal-safe
//! calls run in it); the handlers are installed while anything is
//! registered and the previous dispositions restored after, so a process
//! with its own signal handling (the controller) is left alone otherwise.
//! SIGKILL cannot be handled: `reap_stale` in the parent module removes
//! what a killed run left.

use std::ffi::CString;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};

const SLOTS: usize = 128;
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

static FILES: [AtomicPtr<libc::c_char>; SLOTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
static DIRS: [AtomicPtr<libc::c_char>; SLOTS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; SLOTS];
static CHILD: AtomicI32 = AtomicI32::new(0);
/// Registrations alive, and the dispositions to restore when none are.
static STATE: Mutex<(usize, Vec<libc::sighandler_t>)> = Mutex::new((0, Vec::new()));

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe calls: unlink, rmdir, kill, _exit.
    unsafe {
        for s in &FILES {
            let p = s.load(Ordering::SeqCst);
            if !p.is_null() {
                libc::unlink(p);
            }
        }
        for s in &DIRS {
            let p = s.load(Ordering::SeqCst);
            if !p.is_null() {
                libc::rmdir(p);
            }
        }
        let c = CHILD.load(Ordering::SeqCst);
        if c > 0 {
            libc::kill(c, libc::SIGTERM);
        }
        libc::_exit(128 + sig);
    }
}

/// A path removed if a signal stops the process; unregistered on drop
/// (the owner removes or renames the file itself).
#[derive(Debug)]
pub struct Guard {
    slot: usize,
    dir: bool,
}

/// Registers a file to unlink on a signal.
pub fn guard_file(path: &Path) -> std::io::Result<Guard> {
    register(path, false)
}

/// Registers an (emptied) folder to rmdir on a signal, after the files.
pub fn guard_dir(path: &Path) -> std::io::Result<Guard> {
    register(path, true)
}

/// A child process to SIGTERM when a signal stops us (an editor); 0 clears it.
pub fn set_child(pid: i32) {
    CHILD.store(pid, Ordering::SeqCst);
}

fn register(path: &Path, dir: bool) -> std::io::Result<Guard> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    let table = if dir { &DIRS } else { &FILES };
    let raw = c.into_raw();
    let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(slot) = table.iter().position(|s| {
        s.compare_exchange(
            std::ptr::null_mut(),
            raw,
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .is_ok()
    }) else {
        drop(unsafe { CString::from_raw(raw) });
        return Err(std::io::Error::other(
            "too many temporary files at once to guard against signals",
        ));
    };
    if st.0 == 0 {
        st.1 = SIGNALS
            .iter()
            .map(|&s| unsafe { libc::signal(s, on_signal as *const () as libc::sighandler_t) })
            .collect();
    }
    st.0 += 1;
    Ok(Guard { slot, dir })
}

impl Drop for Guard {
    fn drop(&mut self) {
        let table = if self.dir { &DIRS } else { &FILES };
        let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
        // The path is not freed: a handler running on another thread may be
        // reading it right now (a few bytes per write, once).
        table[self.slot].store(std::ptr::null_mut(), Ordering::SeqCst);
        st.0 -= 1;
        if st.0 == 0 {
            for (&s, &old) in SIGNALS.iter().zip(st.1.iter()) {
                unsafe {
                    libc::signal(s, old);
                }
            }
            st.1.clear();
        }
    }
}
