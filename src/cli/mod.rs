//! Subcommands, one file each. Flags are defined once in `common.rs` and
//! flattened where needed, so `--age` means the same everywhere.

mod apply;
mod approve;
mod buffer;
mod check;
mod common;
mod completions;
mod controller;
mod controller_git;
mod decrypt;
mod diff;
mod doctor;
mod edit;
mod encrypt;
mod exec;
mod export;
mod filestatus;
mod groups;
mod hook;
mod rotate;
mod scan;
mod set;
mod updatekeys;

use clap::{Parser, Subcommand};

pub use common::GlobalArgs;

#[derive(Parser)]
#[command(
    name = "ksec",
    version,
    about = "Kubernetes Secrets in Git, encrypted (SOPS-compatible), routed by namespace",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Encrypt files (or every Secret manifest under a directory)
    Encrypt(encrypt::Args),
    /// Decrypt a file to stdout (or in place)
    Decrypt(decrypt::Args),
    /// Edit an encrypted file in $EDITOR, keeping its data key
    Edit(edit::Args),
    /// Set one value: ksec set FILE '["data"]["key"]' '"value"'
    Set(set::SetArgs),
    /// Remove one value: ksec unset FILE '["data"]["key"]'
    Unset(set::UnsetArgs),
    /// Re-wrap the data key for the recipients the configuration names now
    Updatekeys(updatekeys::Args),
    /// Generate a new data key and re-encrypt every value
    Rotate(rotate::Args),
    /// Run a command with the decrypted values in its environment (sops exec-env)
    ExecEnv(exec::EnvArgs),
    /// Run a command with the plaintext as a FIFO/file, `{}` in CMD naming it (sops exec-file)
    ExecFile(exec::FileArgs),
    /// Add or delete key groups of an encrypted file (sops groups add|delete --file F)
    Groups(groups::Args),
    /// Print whether a file is encrypted ({"encrypted": true|false})
    Filestatus(filestatus::Args),
    /// Find broken Secret references, environment parity gaps, recipient drift and overdue rotations
    Doctor(doctor::Args),
    /// Generate least-privilege Roles scoped to the Secrets each service account uses
    Rbac(doctor::RbacArgs),
    /// Write the rotation runbook of an environment
    Runbook(doctor::RunbookArgs),
    /// Decrypt in memory, server-side apply, restart what changed, verify the rollout
    Apply(apply::Args),
    /// Approve one content hash of a Secret whose environment requires approval of rotations
    Approve(approve::Args),
    /// What `ksec apply` would change, by key name (values masked)
    Diff(diff::Args),
    /// Move Secrets into Vault KV v2 / AWS Secrets Manager / Azure Key Vault (+ ESO manifests), verified
    Export(export::Args),
    /// Run in the cluster: EncryptedSecret objects → Secrets (`ksec controller crd` prints the CRD)
    Controller(controller::Args),
    /// Block plaintext Secrets: check files, directories or the staged index (exit 0 clean, 1 findings, 2 error)
    Check(check::Args),
    /// Install the git pre-commit hook (ksec check --staged)
    Hook(hook::Args),
    /// Run the guard over every blob in the git history
    Scan(scan::Args),
    /// Print shell completions
    #[command(alias = "completion")]
    Completions(completions::CompletionArgs),
    /// Write the man pages
    Man(completions::ManArgs),
}

impl Command {
    /// The `-o/--output FORMAT` of ksec's own commands (and `encrypt --report`); text elsewhere.
    fn report_format(&self) -> common::OutputFormat {
        let r = match self {
            Command::Apply(a) => &a.report,
            Command::Check(a) => &a.report,
            Command::Diff(a) => &a.report,
            Command::Doctor(a) => &a.report,
            Command::Rbac(a) => &a.report,
            Command::Export(a) => &a.report,
            Command::Scan(a) => &a.report,
            Command::Updatekeys(a) => &a.report,
            Command::Encrypt(a) => return a.report.report,
            _ => return common::OutputFormat::Text,
        };
        r.output
    }
}

/// The process arguments, with sops's pre-subcommand syntax (`-d FILE`,
/// `--set '…' FILE`, a bare `FILE` to edit) rewritten into subcommands.
fn argv() -> Result<Vec<std::ffi::OsString>, ksec::sops::argv::ArgvError> {
    use clap::CommandFactory;
    let mut args = std::env::args_os();
    let prog = args.next().unwrap_or_else(|| "ksec".into());
    let cmd = Cli::command();
    let known: Vec<&str> = cmd
        .get_subcommands()
        .flat_map(|s| std::iter::once(s.get_name()).chain(s.get_all_aliases()))
        .collect();
    let mut out = vec![prog];
    out.extend(ksec::sops::argv::rewrite(args.collect(), &known)?);
    Ok(out)
}

/// Runs the CLI and returns the process exit code (0 ok, 1 failure, 2
/// usage/config, 3 `apply`: a change awaits approval).
pub fn main() -> i32 {
    common::install_panic_hook();
    let args = match argv() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ksec: error: {e}");
            return 2;
        }
    };
    let mut cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    cli.global.output = cli.command.report_format();
    common::init_logging(&cli.global);
    let g = &cli.global;
    let res = match &cli.command {
        Command::Encrypt(a) => encrypt::run(a, g),
        Command::Decrypt(a) => decrypt::run(a, g),
        Command::Edit(a) => edit::run(a, g),
        Command::Set(a) => set::run_set(a, g),
        Command::Unset(a) => set::run_unset(a, g),
        Command::Updatekeys(a) => updatekeys::run(a, g),
        Command::Rotate(a) => rotate::run(a, g),
        Command::Filestatus(a) => filestatus::run(a, g),
        Command::ExecEnv(a) => exec::run_env(a, g),
        Command::Groups(a) => groups::run(a, g),
        Command::ExecFile(a) => exec::run_file(a, g),
        Command::Doctor(a) => doctor::run(a, g),
        Command::Rbac(a) => doctor::run_rbac(a, g),
        Command::Runbook(a) => doctor::run_runbook(a, g),
        Command::Apply(a) => apply::run(a, g),
        Command::Approve(a) => approve::run(a, g),
        Command::Diff(a) => diff::run(a, g),
        Command::Export(a) => export::run(a, g),
        Command::Controller(a) => controller::run(a, g),
        Command::Check(a) => check::run(a, g),
        Command::Hook(a) => hook::run(a, g),
        Command::Scan(a) => scan::run(a, g),
        Command::Completions(a) => completions::run_completions(a),
        Command::Man(a) => completions::run_man(a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            common::print_error(&e, g.verbose);
            common::exit_code(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every flag is defined once and every subcommand is well-formed (a
    /// merge that declares a flag twice fails here, not at a user's prompt).
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
