//! A real `docker-registry` serving HTTPS with a certificate signed by its own
//! test CA, optionally with HTTP basic auth (htpasswd).
//!
//! The certificates are made with the `openssl` CLI: a CA (`CA:TRUE`) and a
//! leaf for `127.0.0.1`/`localhost` signed by it (`CA:FALSE`, serverAuth).
//! rustls refuses a self-signed certificate that says `CA:TRUE` when it is used
//! as the server's own certificate (`CaUsedAsEndEntity`), hence the two.
//!
//! Independent of [`super::registry::Registry`] (whose helpers speak plain
//! HTTP): check what a [`TlsRegistry`] holds with [`TlsRegistry::inspect_raw`],
//! which runs skopeo with certificate verification against the test CA.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::registry::REGISTRY_BIN;
use super::skopeo::skopeo;

const START_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_ATTEMPTS: usize = 10;
const NONCE_HEADER: &str = "x-ferry-test-registry";

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A running `docker-registry serve` over HTTPS; killed on drop.
pub struct TlsRegistry {
    child: Child,
    port: u16,
    creds: Option<(String, String)>,
    ca_pem: PathBuf,
    cert_dir: PathBuf,
    log_path: PathBuf,
    // Declared last: removed only after the process is gone (see `Drop`).
    dir: tempfile::TempDir,
}

/// Runs `openssl ARGS...` in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running openssl (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `ca.pem`/`ca.key` and `leaf.pem`/`leaf.key` (for 127.0.0.1 and
/// localhost, signed by the CA) into `dir`.
pub fn make_ca_and_leaf(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ferry test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("writing leaf.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

impl TlsRegistry {
    /// Start an HTTPS registry; with `creds`, it requires basic auth for that
    /// single user. Panics (with the registry log) if it does not answer
    /// `GET /v2/` over verified TLS within 20 s.
    pub fn start(creds: Option<(&str, &str)>) -> TlsRegistry {
        let dir = tempfile::Builder::new()
            .prefix("ferry-tls-registry-")
            .tempdir()
            .expect("creating registry tempdir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("creating registry storage dir");
        let pki = dir.path().join("pki");
        fs::create_dir_all(&pki).expect("creating pki dir");
        make_ca_and_leaf(&pki);
        // skopeo --cert-dir: `*.crt` files are CAs to trust.
        let cert_dir = dir.path().join("certs.d");
        fs::create_dir_all(&cert_dir).expect("creating cert dir");
        fs::copy(pki.join("ca.pem"), cert_dir.join("ca.crt")).expect("copying CA");
        let log_path = dir.path().join("registry.log");
        let config_path = dir.path().join("config.yml");

        let auth_section = match creds {
            None => String::new(),
            Some((user, password)) => {
                assert!(!user.contains(':') && !user.contains('\n'));
                let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
                let htpasswd = dir.path().join("htpasswd");
                fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("writing htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
                    yaml_str(&htpasswd)
                )
            }
        };
        let ca_pem = pki.join("ca.pem");

        let mut last_log = String::new();
        for _ in 0..MAX_ATTEMPTS {
            let port = free_port();
            let nonce = format!(
                "tls-{}-{}-{}",
                std::process::id(),
                STARTED.fetch_add(1, Ordering::Relaxed),
                port
            );
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Ferry-Test-Registry: [\"{nonce}\"]\n\
                 \x20 tls:\n    certificate: {cert}\n    key: {key}\n\
                 {auth_section}",
                storage = yaml_str(&storage),
                cert = yaml_str(&pki.join("leaf.pem")),
                key = yaml_str(&pki.join("leaf.key")),
            );
            fs::write(&config_path, config).expect("writing registry config");
            let log = File::create(&log_path).expect("creating registry log");
            let mut cmd = Command::new(REGISTRY_BIN);
            cmd.arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log fd"))
                .stderr(log);
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(key);
                }
            }
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {REGISTRY_BIN}: {e}"));
            match wait_ready(&mut child, port, &nonce, &ca_pem) {
                Ok(()) => {
                    return TlsRegistry {
                        child,
                        port,
                        creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
                        ca_pem,
                        cert_dir,
                        log_path,
                        dir,
                    }
                }
                Err(Some(why)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("{REGISTRY_BIN} (TLS) on port {port} not ready: {why}; log:\n{log}");
                }
                Err(None) => {
                    // Exited: the port was taken meanwhile, try another one.
                    last_log = fs::read_to_string(&log_path).unwrap_or_default();
                    if !last_log.contains("address already in use") {
                        panic!("{REGISTRY_BIN} (TLS) exited; log:\n{last_log}");
                    }
                }
            }
        }
        panic!("{REGISTRY_BIN} (TLS): no free port; last log:\n{last_log}");
    }

    /// `"127.0.0.1:PORT"`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `"https://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `"127.0.0.1:PORT/repo:tag"`.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }

    /// The CA certificate (PEM) that signed the registry's certificate.
    pub fn ca_pem(&self) -> &Path {
        &self.ca_pem
    }

    /// A folder holding `ca.crt`, for skopeo's `--cert-dir`.
    pub fn cert_dir(&self) -> &Path {
        &self.cert_dir
    }

    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `skopeo inspect --raw` with TLS verification against the test CA and
    /// the registry's credentials: the exact manifest bytes served.
    pub fn inspect_raw(&self, reference: &str) -> Result<Vec<u8>, String> {
        let cert_dir = format!("--cert-dir={}", self.cert_dir.display());
        let creds = self.creds.as_ref().map(|(u, p)| format!("--creds={u}:{p}"));
        let reference = format!("docker://{reference}");
        let mut args = vec!["inspect", "--raw", "--tls-verify=true", &cert_dir];
        if let Some(c) = &creds {
            args.push(c);
        }
        args.push(&reference);
        skopeo(&args)
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Ok when our process answers `GET /v2/` over TLS verified with `ca`;
/// Err(None) when the process exited; Err(Some(why)) on timeout.
fn wait_ready(child: &mut Child, port: u16, nonce: &str, ca: &Path) -> Result<(), Option<String>> {
    let pem = fs::read(ca).expect("reading CA");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let _runtime = rt.enter();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    let url = format!("https://127.0.0.1:{port}/v2/");
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last_err: String;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(None);
        }
        match rt.block_on(client.get(&url).send()) {
            Ok(resp) => {
                let ours = resp
                    .headers()
                    .get(NONCE_HEADER)
                    .and_then(|v| v.to_str().ok())
                    == Some(nonce);
                if ours {
                    return Ok(());
                }
                last_err = format!("answer without our nonce ({})", resp.status());
            }
            Err(e) => {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                last_err = msg;
            }
        }
        if Instant::now() >= deadline {
            return Err(Some(format!(
                "no verified answer within {START_TIMEOUT:?}: {last_err}"
            )));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn yaml_str(path: &Path) -> String {
    serde_json::to_string(path.to_str().expect("utf-8 temp path")).expect("json string")
}
