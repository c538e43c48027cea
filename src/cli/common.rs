//! Flags shared by several subcommands, and the edge plumbing (exit codes,
//! logging, panic hook).

use ksec::fsio::walk;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ksec::keys::age::IdentityOptions;
use ksec::keys::{KeyRing, Recipient};
use ksec::ops::OpError;
use ksec::recipients::{ConfigError, Overrides};
use ksec::sops::{Format, Rule};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
    /// SARIF 2.1.0 (doctor, check): for CI code annotations
    Sarif,
}

#[derive(Args, Debug)]
pub struct GlobalArgs {
    /// The report format of the command that runs (its [`ReportArgs`]);
    /// text for commands without one.
    #[arg(skip)]
    pub output: OutputFormat,
    /// Say which recipient opened a file, which config chose the recipients, and more
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// ksec's own commands (check, doctor, apply, …): `-o/--output FORMAT`, kubectl style.
#[derive(Args, Debug, Default, Clone)]
pub struct ReportArgs {
    /// Report format: human text, JSON for CI, or SARIF (doctor, check)
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// The sops-surface commands' report (`encrypt -i DIR`): `--output` is a file there.
#[derive(Args, Debug, Default, Clone)]
pub struct BulkReportArgs {
    /// Report format for several files: human text, or JSON for CI
    #[arg(long = "report", value_enum, default_value = "text")]
    pub report: OutputFormat,
}

/// sops's `--output FILE` (encrypt, decrypt, rotate): the result goes to
/// FILE, written atomically, instead of stdout.
#[derive(Args, Debug, Default, Clone)]
pub struct OutputFileArgs {
    /// Write the result to FILE (atomically; plaintext 0600) instead of stdout
    #[arg(long = "output", value_name = "FILE", alias = "output-file")]
    pub output: Option<PathBuf>,
}

impl OutputFileArgs {
    /// Writes `bytes` to `--output` (plaintext: 0600), else to stdout.
    pub fn emit(&self, bytes: &[u8], plaintext: bool) -> Result<()> {
        use std::io::Write;
        let Some(path) = &self.output else {
            return Ok(std::io::stdout().write_all(bytes)?);
        };
        let write = if plaintext {
            ksec::fsio::write_private
        } else {
            ksec::fsio::write_atomic
        };
        write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Recipients and encryption options, in sops's spellings.
#[derive(Args, Debug, Default, Clone)]
pub struct KeyArgs {
    /// age recipients (comma-separated), overriding recipients/ and .sops.yaml
    #[arg(long = "age", env = "SOPS_AGE_RECIPIENTS", value_delimiter = ',')]
    pub age: Vec<String>,
    /// PGP key fingerprints (comma-separated); GnuPG (`gpg`, or SOPS_GPG_EXEC) does the work
    #[arg(long = "pgp", env = "SOPS_PGP_FP", value_delimiter = ',')]
    pub pgp: Vec<String>,
    /// AWS KMS key ARNs (`arn` or `arn+roleArn`, comma-separated)
    #[arg(long = "kms", env = "SOPS_KMS_ARN", value_delimiter = ',')]
    pub kms: Vec<String>,
    /// AWS profile for the KMS keys
    #[arg(long = "aws-profile")]
    pub aws_profile: Option<String>,
    /// KMS encryption context (`key:value,key2:value2`)
    #[arg(long = "encryption-context")]
    pub encryption_context: Option<String>,
    /// Vault transit key URIs (https://vault:8200/v1/transit/keys/NAME)
    #[arg(
        long = "hc-vault-transit",
        env = "SOPS_VAULT_URIS",
        value_delimiter = ','
    )]
    pub hc_vault_transit: Vec<String>,
    /// Azure Key Vault key URLs (https://VAULT.vault.azure.net/keys/NAME[/VERSION])
    #[arg(
        long = "azure-kv",
        env = "SOPS_AZURE_KEYVAULT_URLS",
        value_delimiter = ','
    )]
    pub azure_kv: Vec<String>,
    /// GCP KMS key resource IDs (projects/P/locations/L/keyRings/R/cryptoKeys/K)
    #[arg(long = "gcp-kms", env = "SOPS_GCP_KMS_IDS", value_delimiter = ',')]
    pub gcp_kms: Vec<String>,
    /// Shamir threshold across key groups
    #[arg(long = "shamir-secret-sharing-threshold")]
    pub shamir_threshold: Option<usize>,
    #[command(flatten)]
    pub env: EnvArg,
    #[command(flatten)]
    pub recipients: RecipientsDirArg,
    /// The .sops.yaml to use (default: found upward from the current folder, as sops does)
    #[arg(long = "config", env = "SOPS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub rule: RuleArgs,
}

/// The manifests a cluster-bound command reads (apply, diff, export).
#[derive(Args, Debug, Clone)]
pub struct ManifestPaths {
    /// Encrypted manifests, or directories of them
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `--env`, defined once for every command that takes it.
#[derive(Args, Debug, Default, Clone)]
pub struct EnvArg {
    /// The environment (a recipients/<env>.yaml): encrypt routes Secrets that name no namespace
    /// to it; apply, diff, export, doctor and the controller keep to its namespaces
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
}

/// `--recipients-dir`, defined once for every command that reads recipients/.
#[derive(Args, Debug, Default, Clone)]
pub struct RecipientsDirArg {
    /// The recipients/ directory (default: found upward from each file, or from the first path)
    #[arg(
        long = "recipients-dir",
        env = "KSEC_RECIPIENTS_DIR",
        value_name = "DIR"
    )]
    pub recipients_dir: Option<PathBuf>,
}

impl RecipientsDirArg {
    /// `--recipients-dir`, else the `recipients/` found upward from `first`
    /// (a file, or a directory searched from inside).
    pub fn resolve(&self, first: &Path) -> Result<Option<ksec::recipients::RecipientsDir>> {
        use ksec::recipients::RecipientsDir;
        Ok(match &self.recipients_dir {
            Some(d) => Some(RecipientsDir::load(d)?),
            None if first.is_dir() => RecipientsDir::find(&first.join("x"))?,
            None => RecipientsDir::find(first)?,
        })
    }
}

#[derive(Args, Debug, Default, Clone)]
pub struct RuleArgs {
    /// Keys ending with this suffix stay in clear text
    #[arg(long)]
    pub unencrypted_suffix: Option<String>,
    /// Only keys ending with this suffix are encrypted
    #[arg(long)]
    pub encrypted_suffix: Option<String>,
    /// Keys matching this regex stay in clear text
    #[arg(long)]
    pub unencrypted_regex: Option<String>,
    /// Only keys matching this regex are encrypted (ksec's default for Secrets: ^(data|stringData)$)
    #[arg(long)]
    pub encrypted_regex: Option<String>,
    /// Values under a comment matching this regex stay in clear text
    #[arg(long)]
    pub unencrypted_comment_regex: Option<String>,
    /// Only values under a comment matching this regex are encrypted
    #[arg(long)]
    pub encrypted_comment_regex: Option<String>,
    /// The MAC covers only encrypted values
    #[arg(long)]
    pub mac_only_encrypted: bool,
}

/// Which decrypted Secrets a cluster-bound command takes (apply, diff, export).
#[derive(Args, Debug, Default, Clone)]
pub struct SourceArgs {
    /// Namespace for Secrets without one; a Secret naming another namespace is refused
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

impl SourceArgs {
    pub fn options(&self, default_namespace: String, all: bool) -> ksec::source::SourceOptions {
        ksec::source::SourceOptions {
            recipients_dir: self.scope.recipients.recipients_dir.clone(),
            env: self.scope.env.env.clone(),
            namespace: self.namespace.clone(),
            default_namespace,
            allow_mac_only: self.scope.allow_mac_only,
            all,
        }
    }
}

/// Which environment's namespaces a cluster command serves, and what it
/// accepts from a file (apply, diff, export, controller).
#[derive(Args, Debug, Default, Clone)]
pub struct ScopeArgs {
    #[command(flatten)]
    pub env: EnvArg,
    #[command(flatten)]
    pub recipients: RecipientsDirArg,
    /// Accept files whose MAC covers only encrypted values (namespace/name not authenticated)
    #[arg(long)]
    pub allow_mac_only: bool,
}

/// How to reach the cluster (apply, diff, controller).
#[derive(Args, Debug, Default, Clone)]
pub struct ConnectArgs {
    /// kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use
    #[arg(long)]
    pub context: Option<String>,
    /// Use the pod's service account (in-cluster config) instead of a kubeconfig
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub in_cluster: bool,
}

impl ConnectArgs {
    pub fn options(&self) -> ksec::cluster::ConnectOptions {
        ksec::cluster::ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            in_cluster: self.in_cluster,
        }
    }
}

#[derive(Args, Debug, Default, Clone)]
pub struct IdentityArgs {
    /// age identity file or OpenSSH private key (repeatable); also SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, ~/.config/sops/age/keys.txt
    #[arg(long = "identity", value_name = "FILE")]
    pub identity: Vec<PathBuf>,
    /// Key types to try first, in order (e.g. age,kms)
    #[arg(
        long = "decryption-order",
        env = "SOPS_DECRYPTION_ORDER",
        value_delimiter = ',',
        value_name = "TYPES"
    )]
    pub decryption_order: Vec<String>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct TypeArgs {
    /// Input format (default: by file extension; unknown extensions are binary)
    #[arg(long, value_parser = format_parser())]
    pub input_type: Option<Format>,
    /// Output format for decrypted data (default: same as input)
    #[arg(long, value_parser = format_parser())]
    pub output_type: Option<Format>,
    /// YAML indentation (default 4, or .sops.yaml stores.yaml.indent)
    #[arg(long)]
    pub indent: Option<usize>,
}

impl TypeArgs {
    /// `--input-type`, else by extension; stdin without either is JSON, as in sops.
    pub fn input(&self, path: &Path) -> Format {
        self.input_type.unwrap_or_else(|| {
            if is_stdin(path) {
                Format::Json
            } else {
                Format::from_path(path)
            }
        })
    }

    /// `--output-type`, else by extension (sops: not the input type); stdin keeps the input's.
    pub fn output(&self, path: &Path, input: Format) -> Format {
        self.output_type.unwrap_or_else(|| {
            if is_stdin(path) {
                input
            } else {
                Format::from_path(path)
            }
        })
    }
}

/// sops's `--filename-override NAME` (3.9+): the creation rules and the
/// store format come from NAME instead of the file read (or stdin).
#[derive(Args, Debug, Default, Clone)]
pub struct NameArgs {
    /// Use NAME instead of the file's name for .sops.yaml rules and the file format (needed for stdin)
    #[arg(long = "filename-override", value_name = "NAME")]
    pub filename_override: Option<PathBuf>,
}

impl NameArgs {
    /// The name rules and formats are chosen by.
    pub fn name_for<'a>(&'a self, path: &'a Path) -> &'a Path {
        self.filename_override.as_deref().unwrap_or(path)
    }

    /// The files to read: stdin (`-`) when none is given.
    pub fn inputs(&self, files: &[PathBuf]) -> Vec<PathBuf> {
        if files.is_empty() {
            vec![PathBuf::from("-")]
        } else {
            files.to_vec()
        }
    }
}

/// `-` stands for standard input.
pub fn is_stdin(p: &Path) -> bool {
    p == Path::new("-")
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

impl KeyArgs {
    pub fn recipients(&self) -> Result<Vec<Recipient>> {
        let mut ctx = indexmap::IndexMap::new();
        if let Some(c) = &self.encryption_context {
            for pair in c.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once(':').ok_or_else(|| {
                    usage(format!("--encryption-context: {pair:?} is not key:value"))
                })?;
                ctx.insert(k.to_string(), v.to_string());
            }
        }
        let profile = self.aws_profile.clone().unwrap_or_default();
        let mut out: Vec<Recipient> = self
            .age
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Recipient::Age(s.trim().into()))
            .collect();
        out.extend(
            self.pgp
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Recipient::pgp(s)),
        );
        out.extend(
            self.kms
                .iter()
                .filter(|s| !s.trim().is_empty())
                .map(|s| Recipient::kms_from_str(s, ctx.clone(), &profile)),
        );
        for u in self
            .hc_vault_transit
            .iter()
            .filter(|s| !s.trim().is_empty())
        {
            out.push(Recipient::vault_from_uri(u).map_err(|e| usage(e.to_string()))?);
        }
        for u in self.azure_kv.iter().filter(|s| !s.trim().is_empty()) {
            out.push(Recipient::azure_from_url(u).map_err(|e| usage(e.to_string()))?);
        }
        for id in self.gcp_kms.iter().filter(|s| !s.trim().is_empty()) {
            out.push(Recipient::gcp_from_str(id).map_err(|e| usage(e.to_string()))?);
        }
        Ok(out)
    }

    pub fn overrides(&self) -> Result<Overrides> {
        let r = &self.rule;
        let rule = Rule::from_fields([
            ("unencrypted_suffix", r.unencrypted_suffix.as_deref()),
            ("encrypted_suffix", r.encrypted_suffix.as_deref()),
            ("unencrypted_regex", r.unencrypted_regex.as_deref()),
            ("encrypted_regex", r.encrypted_regex.as_deref()),
            (
                "unencrypted_comment_regex",
                r.unencrypted_comment_regex.as_deref(),
            ),
            (
                "encrypted_comment_regex",
                r.encrypted_comment_regex.as_deref(),
            ),
        ])
        .map_err(usage)?;
        Ok(Overrides {
            recipients: self.recipients()?,
            threshold: self.shamir_threshold,
            rule,
            mac_only_encrypted: r.mac_only_encrypted,
            env: self.env.env.clone(),
            recipients_dir: self.recipients.recipients_dir.clone(),
            sops_config: self.config.clone(),
        })
    }
}

/// The key ring: identities only when something must be decrypted.
pub fn keyring(ids: &IdentityArgs, need_identities: bool) -> Result<KeyRing> {
    let opts = IdentityOptions {
        files: ids.identity.clone(),
    };
    let mut ring = ksec::keys::keyring_from_env(&opts, need_identities)?;
    let order: Vec<String> = ids
        .decryption_order
        .iter()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    ring.set_decryption_order(&order)?;
    Ok(ring)
}

/// Maps an error to the documented exit code.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<ConfigError>().is_some()
        {
            return 2;
        }
        if let Some(op) = cause.downcast_ref::<OpError>() {
            return op.exit_code();
        }
        if let Some(ksec::keys::KeyError::Config(_)) = cause.downcast_ref::<ksec::keys::KeyError>()
        {
            return 2;
        }
    }
    1
}

/// Prints a failure: `ksec: error: …`, or sops's exact line where sops's
/// users (and its test suite) match it, with ksec's detail on --verbose.
pub fn print_error(e: &anyhow::Error, verbose: bool) {
    let exact = e
        .chain()
        .filter_map(|c| c.downcast_ref::<ConfigError>())
        .find_map(|c| c.detail().map(|d| (c.to_string(), d)));
    match exact {
        Some((line, detail)) => {
            eprintln!("{line}");
            if verbose {
                eprintln!("ksec: {e:#}\nksec: {detail}");
            }
        }
        None => eprintln!("ksec: error: {e:#}"),
    }
}

/// Panic messages may carry data; print only where it happened.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        // A closed standard output (`ksec runbook | head`): end quietly, as
        // Unix tools do. SIGPIPE itself stays ignored: a child that exits
        // early (gpg, git, a key command) must give an error, not kill ksec.
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") || msg.contains("BrokenPipe") {
            std::process::exit(0);
        }
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "ksec: internal error at {loc} (details withheld so no secret can leak; please report it)"
        );
    }));
}

pub fn init_logging(g: &GlobalArgs) {
    // vaultrs/rustify log every non-2xx answer at ERROR (a 404 is how
    // `ksec export` learns an entry is new); ksec reports failures itself.
    let default = if g.verbose {
        "ksec=debug"
    } else if g.quiet {
        "error,vaultrs=off,rustify=off"
    } else {
        "warn,vaultrs=off,rustify=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Expands directory arguments into manifest files (YAML/JSON), sorted.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<(PathBuf, bool)>> {
    let files = expand_walk(paths)?.files;
    if files.is_empty() {
        bail!(usage("no files given"));
    }
    Ok(files)
}

/// What a directory walk found, and what it passed over and why.
pub struct Walk {
    /// Files, each with whether it came from a directory.
    pub files: Vec<(PathBuf, bool)>,
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// Like `expand`, also naming the hidden entries and symlinks a walk does
/// not enter ([`ksec::fsio::walk`]), so a caller can report them.
pub fn expand_walk(paths: &[PathBuf]) -> Result<Walk> {
    let w = walk::walk(paths, walk::Policy::Manifests)?;
    if w.files.is_empty() && w.skipped.is_empty() {
        bail!(usage("no files given"));
    }
    Ok(Walk {
        files: w.files.into_iter().map(|f| (f.path, f.walked)).collect(),
        skipped: w
            .skipped
            .into_iter()
            .map(|(p, r)| (p, r.as_str()))
            .collect(),
    })
}

/// Refuses `-i -`: stdin has no file to write back to (it would create `./-`).
pub fn refuse_in_place_stdin(in_place: bool, file: &Path) -> Result<()> {
    if in_place && file == Path::new("-") {
        bail!(usage(
            "-i/--in-place needs a file: '-' (stdin) has none to write back to"
        ));
    }
    Ok(())
}

/// Parses a sops path like `["data"]["key"][0]` (a usage error if it does not).
pub fn parse_tree_path(s: &str) -> Result<Vec<PathSeg>> {
    ksec::sops::tree::parse_path(s).map_err(|e| usage(e.to_string()))
}

pub use ksec::sops::PathSeg;

pub fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

/// Where plaintext may be buffered for a command run as another user: a
/// tmpfs every user can enter (the buffer's own folder is still 0700, owned
/// by that user), else the temp folder.
pub fn shared_tmp_base() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

/// Where plaintext may be buffered for an editor: tmpfs if there is one.
pub fn private_tmp_base() -> PathBuf {
    // access(2), not a probe directory: a probe left behind by a killed run would litter the folder.
    let writable = |p: &Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok();
        c.is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0)
    };
    for c in [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(PathBuf::from("/dev/shm")),
    ]
    .into_iter()
    .flatten()
    {
        if c.is_dir() && writable(&c) {
            return c;
        }
    }
    std::env::temp_dir()
}

/// `--input-type`/`--output-type`: the library's formats, listed for
/// completions (clap stays out of the library).
pub fn format_parser() -> impl clap::builder::TypedValueParser<Value = Format> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Format::ALL.map(Format::name))
        .map(|s| s.parse::<Format>().expect("a listed format"))
}

/// `--fail-on` and `--severity`: the library's severities.
pub fn severity_parser() -> impl clap::builder::TypedValueParser<Value = ksec::doctor::Severity> {
    use clap::builder::TypedValueParser;
    use ksec::doctor::Severity;
    clap::builder::PossibleValuesParser::new(Severity::ALL.map(Severity::name))
        .map(|s| s.parse::<Severity>().expect("a listed severity"))
}
