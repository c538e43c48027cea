//! Link the `ksec` binary with packed relative relocations (DT_RELR).
//!
//! Per-file callers (KSOPS, helm-secrets, Flux) start ksec once per file, so
//! start-up matters. The binary is position-independent and carries ~76,000
//! relative relocations; in the classic RELA form the dynamic loader reads
//! ~1.8 MB of them at every start. RELR packs them into a few kilobytes and
//! is applied faster; ASLR is unchanged. glibc applies RELR from 2.36 on,
//! so it is only asked for when the build machine's glibc is at least that
//! (a binary built on glibc >= 2.36 does not run on an older one anyway).
//! Nothing else about the build changes.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.ends_with("-linux-gnu") || !glibc_at_least(2, 36) {
        return;
    }
    // GNU ld >= 2.38 and lld >= 15 understand it and record the
    // GLIBC_ABI_DT_RELR dependency glibc insists on; older linkers warn and
    // ignore it (lld 14's `--pack-dyn-relocs=relr` lacks that dependency, so
    // glibc refuses such a binary: not used).
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
}

/// The build machine's glibc version from `getconf GNU_LIBC_VERSION`
/// ("glibc 2.36"); false when it cannot be told.
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
