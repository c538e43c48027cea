//! The `ksec` command line: a thin layer over the `ksec` library.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
