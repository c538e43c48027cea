//! Decrypts many files in one process, concurrently (benches/kms.sh): what a
//! directory-wide `ksec decrypt`/controller does, key-service bound.
//! Usage: decrypt_many FILE... (prints how many opened; never the plaintext).

use rayon::prelude::*;

fn main() {
    let files: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    let ring = ksec::keys::keyring_from_env(&Default::default(), true).expect("key ring");
    // Key-service calls are I/O bound: more workers than cores hide latency;
    // the ring's own limiter still bounds calls in flight.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(16)
        .build()
        .expect("pool");
    let failed: usize = pool.install(|| {
        files
            .par_iter()
            .map(|f| {
                let bytes = std::fs::read(f).expect("read");
                let format = ksec::sops::Format::from_path(f);
                match ksec::ops::open(&bytes, format, &ring, Default::default()) {
                    Ok(_) => 0,
                    Err(e) => {
                        eprintln!("{}: {e}", f.display());
                        1
                    }
                }
            })
            .sum()
    });
    println!("opened {} of {}", files.len() - failed, files.len());
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
