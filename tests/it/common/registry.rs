//! A real `docker-registry` (distribution v2, Debian package) per test.
//!
//! Every [`Registry`] is its own process on its own loopback port with its own
//! temporary storage, so tests can run in parallel. Dropping it kills and
//! reaps the process and deletes the storage.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{http_get, http_request, HttpResponse};

/// The registry binary (Debian package `docker-registry`).
pub const REGISTRY_BIN: &str = "docker-registry";
/// How long [`Registry::start`] waits for `GET /v2/` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a start is retried when the picked port was taken meanwhile.
const MAX_ATTEMPTS: usize = 10;
/// Response header (set through the registry's `http.headers` config) whose
/// value is unique per started process: the readiness probe only accepts an
/// answer carrying it, so it can never mistake another test's registry that
/// grabbed the same port for ours.
const NONCE_HEADER: &str = "x-ferry-test-registry";

/// Accept header listing every manifest media type the corpus uses.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A running `docker-registry serve` process; see the module docs.
pub struct Registry {
    child: Child,
    port: u16,
    storage: PathBuf,
    log_path: PathBuf,
    creds: Option<(String, String)>,
    // Declared last: removed only after the process is gone (see `Drop`).
    dir: tempfile::TempDir,
}

enum Startup {
    Ready,
    Exited(ExitStatus),
    TimedOut,
}

impl Registry {
    /// Start an anonymous (no auth) registry. Panics (with the registry log)
    /// if it does not answer `GET /v2/` within 20 s.
    pub fn start() -> Registry {
        Self::launch(None, String::new())
    }

    /// Start an anonymous registry that posts a notification for every event to
    /// `url` (distribution's `notifications: endpoints:`), with an
    /// `Authorization: AUTHORIZATION` header when given.
    pub fn start_with_notifications(url: &str, authorization: Option<&str>) -> Registry {
        let headers = match authorization {
            Some(a) => format!(
                "      headers:\n        Authorization: [{}]\n",
                serde_json::to_string(a).expect("json string")
            ),
            None => String::new(),
        };
        Self::launch(
            None,
            format!(
                "notifications:\n  endpoints:\n    - name: ferry\n      url: {}\n{headers}      \
                 timeout: 2s\n      threshold: 3\n      backoff: 1s\n",
                serde_json::to_string(url).expect("json string")
            ),
        )
    }

    /// Start a registry requiring HTTP basic auth (htpasswd, bcrypt) for the
    /// single user `user`. The helpers on `Registry` (catalog, tags, get) and
    /// the corpus push functions send these credentials automatically.
    pub fn start_with_htpasswd(user: &str, password: &str) -> Registry {
        Self::launch(
            Some((user.to_string(), password.to_string())),
            String::new(),
        )
    }

    /// `extra`: more top-level sections of the registry's config file.
    fn launch(creds: Option<(String, String)>, extra: String) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("ferry-registry-")
            .tempdir()
            .expect("creating registry tempdir");
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("creating registry storage dir");
        let log_path = dir.path().join("registry.log");
        let config_path = dir.path().join("config.yml");

        let auth_section = match &creds {
            None => String::new(),
            Some((user, password)) => {
                assert!(
                    !user.contains(':') && !user.contains('\n'),
                    "htpasswd user must not contain ':' or newlines"
                );
                // Cost 4 is the minimum bcrypt accepts; keeps the registry's
                // per-request password check cheap.
                let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
                let htpasswd = dir.path().join("htpasswd");
                fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("writing htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
                    yaml_str(&htpasswd)
                )
            }
        };

        let mut last_log = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let port = free_port();
            let nonce = format!(
                "{}-{}-{}",
                std::process::id(),
                STARTED.fetch_add(1, Ordering::Relaxed),
                port
            );
            let config = format!(
                "version: 0.1\n\
                 log:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Ferry-Test-Registry: [\"{nonce}\"]\n\
                 {auth_section}{extra}",
                storage = yaml_str(&storage),
            );
            fs::write(&config_path, config).expect("writing registry config");

            let log = File::create(&log_path).expect("creating registry log");
            let mut cmd = Command::new(REGISTRY_BIN);
            cmd.arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log fd"))
                .stderr(log);
            // distribution lets REGISTRY_* variables override the config file.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(key);
                }
            }
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawning {REGISTRY_BIN} (is it installed?): {e}"));

            match wait_ready(&mut child, port, &nonce) {
                Startup::Ready => {
                    return Registry {
                        child,
                        port,
                        storage,
                        log_path,
                        creds,
                        dir,
                    };
                }
                Startup::Exited(status) => {
                    last_log = fs::read_to_string(&log_path).unwrap_or_default();
                    if last_log.contains("address already in use") {
                        // Someone took the port between our probe and the
                        // registry's bind: pick another one.
                        continue;
                    }
                    panic!(
                        "{REGISTRY_BIN} exited with {status} on attempt {attempt}; log:\n{last_log}"
                    );
                }
                Startup::TimedOut => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    panic!(
                        "{REGISTRY_BIN} on 127.0.0.1:{port} did not answer GET /v2/ within {:?}; log:\n{log}",
                        START_TIMEOUT
                    );
                }
            }
        }
        panic!("{REGISTRY_BIN}: no free port after {MAX_ATTEMPTS} attempts; last log:\n{last_log}");
    }

    /// `"127.0.0.1:PORT"`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the registry (e.g. to check it is gone after drop).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Filesystem storage root; blobs live under
    /// `docker/registry/v2/blobs/sha256/XX/HEX/data`.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// The temp directory holding config, log and storage.
    pub fn work_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the file holding blob `digest` (`"sha256:HEX"`). The file
    /// exists only if the blob was pushed. Overwrite it to corrupt the blob:
    /// the registry serves the file as is.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
        assert!(hex.len() == 64, "not a sha256 digest: {digest}");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Credentials if started with [`Registry::start_with_htpasswd`].
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// `"user:password"` for skopeo's `--creds`/`--src-creds`/`--dest-creds`.
    pub fn creds_arg(&self) -> Option<String> {
        self.creds.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    /// `"127.0.0.1:PORT/repo:tag"`.
    pub fn reference(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host())
    }

    /// Contents of the registry log (errors only).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// `GET {url}{path}` (path starts with `/`), with the registry's
    /// credentials if it has any. Panics on transport errors only.
    pub fn get(&self, path: &str) -> HttpResponse {
        http_get(&format!("{}{path}", self.url()), self.creds())
    }

    /// Any request against the registry, with its credentials if any.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> HttpResponse {
        let url = format!("{}{path}", self.url());
        http_request(
            method,
            &url,
            self.creds(),
            headers,
            body,
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// `GET /v2/{repo}/manifests/{reference}` accepting all four manifest
    /// media types (without an Accept header distribution answers 404 for
    /// OCI manifests).
    pub fn get_manifest(&self, repo: &str, reference: &str) -> HttpResponse {
        self.request(
            "GET",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", MANIFEST_ACCEPT)],
            None,
        )
    }

    /// Repositories, from `GET /v2/_catalog?n=1000` (sorted by the registry).
    pub fn catalog(&self) -> Vec<String> {
        let resp = self.get("/v2/_catalog?n=1000");
        assert_eq!(resp.status, 200, "GET /v2/_catalog: {}", resp.text());
        string_list(&resp.json(), "repositories")
    }

    /// Tags of `repo`, sorted; empty if the repository does not exist.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self.get(&format!("/v2/{repo}/tags/list?n=1000"));
        if resp.status == 404 {
            return Vec::new();
        }
        assert_eq!(resp.status, 200, "GET tags of {repo}: {}", resp.text());
        let mut tags = string_list(&resp.json(), "tags");
        tags.sort();
        tags
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Let the kernel pick a free loopback port, then release it.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

fn wait_ready(child: &mut Child, port: u16, nonce: &str) -> Startup {
    let deadline = Instant::now() + START_TIMEOUT;
    let url = format!("http://127.0.0.1:{port}/v2/");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Startup::Exited(status);
        }
        // Any answer (200, or 401 when auth is on) from *our* process counts.
        if let Ok(resp) = http_request("GET", &url, None, &[], None, Duration::from_secs(2)) {
            if resp.header(NONCE_HEADER) == Some(nonce) {
                return Startup::Ready;
            }
        }
        if Instant::now() >= deadline {
            return Startup::TimedOut;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A path as a double-quoted YAML scalar (JSON string syntax is valid YAML).
fn yaml_str(path: &Path) -> String {
    serde_json::to_string(path.to_str().expect("utf-8 temp path")).expect("json string")
}

fn string_list(v: &serde_json::Value, key: &str) -> Vec<String> {
    match &v[key] {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .unwrap_or_else(|| panic!("non-string in {key}: {v}"))
                    .to_string()
            })
            .collect(),
        other => panic!("unexpected {key}: {other}"),
    }
}
