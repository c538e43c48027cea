//! The `ksec` command line: a thin layer over the `ksec` library.

mod cli;

fn main() {
    // A closed standard output (`ksec runbook | head`) ends the process
    // quietly, as it does for other Unix tools, instead of a panic on EPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::main());
}
