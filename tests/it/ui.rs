//! `ferry ui` driven in a real browser: Debian's headless Chromium through
//! chromedriver's WebDriver API (a small client below over the harness's HTTP
//! helper), against real registries. A user saves a list (one tag missing),
//! cancels and resumes it, watches it finish, sees the bundle and the failure with
//! its reason, adds a target registry and tests it, uploads, verifies, reads the
//! history and switches to Chinese; the target's digests are checked with skopeo.
//! Screenshots of every screen are kept in target/ui-screenshots/.
//!
//! Chromium and chromedriver are installed by scripts/setup.sh. When they are
//! missing or cannot start, these tests fail, saying why: they never skip.

use crate::common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The key of a WebDriver element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// ferry ui

/// A `ferry ui` process in a folder of its own (cfg.yaml and data/ live there).
struct UiServer {
    child: Child,
    /// `http://127.0.0.1:PORT/?token=...` as printed.
    url: String,
    /// `http://127.0.0.1:PORT`.
    base: String,
    token: String,
    dir: tempfile::TempDir,
    stdout: Arc<Mutex<String>>,
}

impl UiServer {
    fn start() -> UiServer {
        Self::start_in(tempfile::tempdir().expect("temp dir"))
    }

    /// Starts in `dir` (a folder an earlier `ferry ui` used keeps its history).
    fn start_in(dir: tempfile::TempDir) -> UiServer {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("ui.log"))
            .expect("log file");
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("ferry"))
            .args(["ui", "--listen", "127.0.0.1:0", "--out", "data"])
            .current_dir(dir.path())
            .env("LANG", "C.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting ferry ui");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut url = String::new();
        out.read_line(&mut url).expect("reading the address");
        let url = url.trim().to_string();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
            "ferry ui printed {url:?}; log: {}",
            std::fs::read_to_string(dir.path().join("ui.log")).unwrap_or_default()
        );
        // Keep reading standard output (save prints the meta path there).
        let stdout = Arc::new(Mutex::new(String::new()));
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let (base, token) = url.split_once("/?token=").expect("token in the URL");
        UiServer {
            base: base.to_string(),
            token: token.to_string(),
            url: url.clone(),
            child,
            dir,
            stdout,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ui.log")).unwrap_or_default()
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// WebDriver

/// A headless Chromium session through chromedriver.
struct Browser {
    driver: Child,
    endpoint: String,
    session: String,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn installed(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Browser {
    fn start() -> Browser {
        for tool in ["chromium", "chromedriver"] {
            assert!(
                installed(tool),
                "{tool} is not installed: the browser tests need Debian's chromium and \
                 chromium-driver (scripts/setup.sh installs them)"
            );
        }
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http_request(
                "GET",
                &format!("{endpoint}/status"),
                None,
                &[],
                None,
                Duration::from_secs(5),
            )
            .ok()
            .filter(|r| r.status == 200)
            .is_some_and(|r| r.json()["value"]["ready"] == json!(true));
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let resp = http_request(
            "POST",
            &format!("{endpoint}/session"),
            None,
            &[("content-type", "application/json")],
            Some(caps.to_string().into_bytes()),
            Duration::from_secs(90),
        )
        .expect("chromedriver: new session");
        let session = resp.json()["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "headless Chromium did not start (status {}): {}",
                    resp.status,
                    resp.text()
                )
            })
            .to_string();
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Browser {
            driver,
            endpoint,
            session,
            shots,
            _profile: profile,
        }
    }

    /// One WebDriver command; `Err` carries the WebDriver error code.
    fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}/session/{}{path}", self.endpoint, self.session);
        let body = body.map(|b| b.to_string().into_bytes());
        let resp = http_request(
            method,
            &url,
            None,
            &[("content-type", "application/json")],
            body,
            Duration::from_secs(60),
        )?;
        let v = resp.json();
        if resp.status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{}: {}",
                v["value"]["error"].as_str().unwrap_or("?"),
                v["value"]["message"].as_str().unwrap_or("")
            ))
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> Option<String> {
        self.try_cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
    }

    /// Runs `script` in the page and returns its value.
    fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The text of the first element matching `css`, read at one moment (the
    /// Progress screen redraws itself several times a second).
    fn text(&self, css: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            json!([css]),
        )
        .as_str()
        .map(str::to_string)
    }

    fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;",
            json!([css, name]),
        )
        .as_str()
        .map(str::to_string)
    }

    fn count(&self, css: &str) -> usize {
        self.js(
            "return document.querySelectorAll(arguments[0]).length;",
            json!([css]),
        )
        .as_u64()
        .unwrap_or(0) as usize
    }

    /// Waits until `ok` holds, for at most [`WAIT`]; panics naming `what`.
    fn wait_for(&self, what: &str, mut ok: impl FnMut(&Browser) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ok(self) {
            if Instant::now() > deadline {
                self.screenshot(&format!("failed-{}", what.replace([' ', '/'], "-")));
                panic!(
                    "timed out waiting for {what}; page text:\n{}",
                    self.text("body").unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn wait_element(&self, css: &str) {
        self.wait_for(&format!("element {css}"), |b| b.find(css).is_some());
    }

    /// Clicks like a user (a real pointer event); tries again when the element was
    /// redrawn between finding and clicking.
    fn click(&self, css: &str) {
        self.wait_element(css);
        let mut last = String::new();
        for _ in 0..20 {
            let Some(id) = self.find(css) else {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            };
            match self.try_cmd("POST", &format!("/element/{id}/click"), Some(json!({}))) {
                Ok(_) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cannot click {css}: {last}");
    }

    /// Types `text` into an input or textarea, as keystrokes.
    fn type_into(&self, css: &str, text: &str) {
        self.wait_element(css);
        let id = self.find(css).expect("element");
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Answers a `prompt()` with `text`.
    fn answer_prompt(&self, text: &str) {
        self.cmd("POST", "/alert/text", Some(json!({ "text": text })));
        self.accept_alert();
    }

    fn accept_alert(&self) {
        self.cmd("POST", "/alert/accept", Some(json!({})));
    }

    fn refresh(&self) {
        self.cmd("POST", "/refresh", Some(json!({})));
    }

    fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        if let Ok(v) = self.try_cmd("GET", "/screenshot", None) {
            if let Some(png) = v
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            {
                let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
            }
        }
    }

    /// The state of the job the Progress screen shows.
    fn job_state(&self) -> Option<String> {
        self.attr("#job-state [data-state]", "data-state")
    }

    fn wait_job(&self, state: &str) {
        self.wait_for(&format!("the job to be {state}"), |b| {
            b.job_state().as_deref() == Some(state)
        });
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.try_cmd("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

// ---------------------------------------------------------------------------
// helpers

fn find_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with(".ferry-ui") {
                out.extend(find_files(&p, suffix));
            }
        } else if p.to_string_lossy().ends_with(suffix) {
            out.push(p);
        }
    }
    out
}

fn percent(b: &Browser) -> u32 {
    b.text("#stat-percent")
        .and_then(|t| t.trim_end_matches([' ', '%']).trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// tests

#[test]
fn a_user_saves_resumes_uploads_and_sees_failures_in_a_real_browser() {
    let src = Registry::start();
    let mut corpus = seed_corpus(&src);
    // Three layers of 1.5 MB: the bars move in steps a screenshot can catch.
    let big: Vec<Vec<u8>> = (1..=3)
        .map(|i| layer(&format!("ui-big-{i}"), 1536 * 1024))
        .collect();
    corpus.push(push_image(
        &src,
        "big/app",
        "2.0",
        Format::Docker,
        &big,
        "ui-big",
        false,
    ));
    let dst = Registry::start();
    // Slow enough to watch (and cancel) the save of about 6 MB.
    let proxy = Proxy::start_with(&src.host(), Faults::none().throttle(300 * 1024));
    let ui = UiServer::start();
    let b = Browser::start();

    // The first screen is Save, and says what to do.
    b.goto(&ui.url);
    b.wait_element("#list");
    assert!(
        b.text("#intro")
            .unwrap_or_default()
            .contains("Paste the images"),
        "the first screen explains itself"
    );
    assert!(
        b.attr("#jobbar", "hidden").is_some(),
        "no job bar before any job"
    );
    b.screenshot("01-save");

    let saved = [
        ("big/app", "2.0"),
        ("docker/v2s2", "1.0"),
        ("oci/image", "latest"),
        ("multi/oci-index", "v1"),
    ];
    let missing = proxy.reference("docker/v2s2", "no-such-tag");
    let mut list = String::from("# images for the air gap\n");
    for (repo, tag) in saved {
        list.push_str(&proxy.reference(repo, tag));
        list.push('\n');
    }
    list.push_str(&missing);
    b.type_into("#list", &list);
    b.wait_for("the command preview", |b| {
        b.text("#command")
            .is_some_and(|c| c.starts_with("ferry save --list ") && c.contains("--out data"))
    });
    b.click("#start");

    // Progress: watch it move, then cancel it as Ctrl-C would.
    b.wait_element("#progress #job-state");
    b.wait_for("the save to transfer something", |b| {
        b.job_state().as_deref() == Some("running") && percent(b) >= 15
    });
    b.screenshot("02-progress-running");
    b.click("#cancel");
    b.accept_alert();
    b.wait_job("cancelled");
    let journals = find_files(&ui.data(), ".journal");
    assert_eq!(journals.len(), 1, "one partial bundle: {journals:?}");
    let name = journals[0]
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".journal"))
        .expect("journal name")
        .to_string();
    assert!(
        find_files(&ui.data(), "_meta.yaml").is_empty(),
        "a cancelled save leaves no meta"
    );
    assert!(
        b.text("#job-error").unwrap_or_default().contains(&name),
        "the page says where the partial bundle is: {:?}",
        b.text("#job-error")
    );
    b.screenshot("03-progress-cancelled");

    // Run it again: it resumes the same bundle. A reload reattaches to it.
    b.click("#again");
    b.wait_for("the second run to start", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#2"))
            && b.job_state().as_deref() == Some("running")
    });
    b.refresh();
    b.wait_for("the reloaded page to show the running job", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#2"))
    });
    assert!(
        b.attr("#nav-progress", "class")
            .unwrap_or_default()
            .contains("active"),
        "a reload while a job runs opens Progress"
    );
    b.wait_for("bars on the reloaded page", |b| {
        b.count("#bars .barrow") > 0
    });
    b.screenshot("04-progress-reloaded");
    b.wait_job("partial");
    b.screenshot("05-progress-done");

    // The missing tag failed, with its reason; the others are done.
    let failed_row = format!("#images tr[data-ref=\"{missing}\"]");
    assert_eq!(
        b.attr(&format!("{failed_row} [data-state]"), "data-state")
            .as_deref(),
        Some("failed"),
        "{}",
        b.text("#images").unwrap_or_default()
    );
    let reason = b
        .text(&format!("{failed_row} td.error"))
        .unwrap_or_default();
    assert!(!reason.trim().is_empty(), "the failure has its reason");
    for (repo, tag) in saved {
        let row = format!(
            "#images tr[data-ref=\"{}\"] [data-state]",
            proxy.reference(repo, tag)
        );
        assert_eq!(
            b.attr(&row, "data-state").as_deref(),
            Some("done"),
            "{repo}:{tag}"
        );
    }
    assert!(b.text("#summary").unwrap_or_default().contains(&missing));
    let metas = find_files(&ui.data(), "_meta.yaml");
    assert_eq!(metas.len(), 1, "{metas:?}");
    assert!(
        metas[0].ends_with(format!("{name}_meta.yaml")),
        "the second run finished the cancelled bundle {name}: {metas:?}"
    );

    // Bundles: the bundle, its images, the failure and the bytes chart.
    b.click("#nav-bundles");
    let card = format!(".bundle[data-name=\"{name}\"]");
    b.wait_element(&card);
    let text = b.text(&card).unwrap_or_default();
    assert!(text.contains("4 images"), "{text}");
    assert!(
        text.contains(&missing) && text.contains(reason.trim()),
        "{text}"
    );
    assert!(b.count(&format!("{card} .bytes-chart .chart > div")) >= 2);
    assert!(b.find(&format!("{card} .badge.unsigned")).is_some());

    // Sign it from its card with an SSH key: the card then says it is signed.
    let key = ui.dir.path().join("ferry_key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ui-test", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (scripts/setup.sh installs openssh-client)");
    assert!(made.success());
    b.click(&format!("{card} .act-sign"));
    b.answer_prompt(&key.display().to_string());
    b.wait_for("the signing job to succeed", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#3"))
            && b.job_state().as_deref() == Some("succeeded")
    });
    b.click("#nav-bundles");
    b.wait_element(&format!("{card} .badge.signed"));
    b.screenshot("06-bundles");

    // Registries: add the target, test it, and a wrong address fails the test.
    b.click("#nav-registries");
    b.click("#add-target");
    b.type_into("#e-registry", "http://127.0.0.1:1");
    b.type_into("#e-name", "airgap");
    b.click("#e-test");
    b.wait_for("the failed connection test", |b| {
        b.attr("#reg-msg", "class")
            .is_some_and(|c| c.contains("error"))
    });
    b.type_into("#e-registry", &dst.url());
    b.click("#e-save");
    b.wait_element("#reg-target tr[data-name=\"airgap\"]");
    b.click("#reg-target tr[data-name=\"airgap\"] button.test");
    b.wait_for("the connection test", |b| {
        b.text("#reg-target tr[data-name=\"airgap\"] .test-result")
            .is_some_and(|t| t.contains("answers"))
    });
    let cfg = std::fs::read_to_string(ui.dir.path().join("cfg.yaml")).expect("cfg.yaml written");
    assert!(cfg.contains(&dst.url()) && cfg.contains("airgap"), "{cfg}");
    b.screenshot("07-registries");

    // Upload to the target by its cfg name.
    b.click("#nav-upload");
    b.wait_for("the upload command", |b| {
        b.text("#command")
            .is_some_and(|c| c.starts_with("ferry upload ") && c.contains("--dst airgap"))
    });
    // The bundle lacks the failed image: the page says so, and the operator agrees.
    assert!(
        b.text("#partial-box").is_some_and(|t| t.contains(&missing)),
        "the upload screen names the image the bundle lacks"
    );
    b.click("#allow_partial");
    b.wait_for("the --allow-partial command", |b| {
        b.text("#command")
            .is_some_and(|c| c.ends_with("--allow-partial"))
    });
    b.screenshot("08-upload");
    b.click("#start");
    b.wait_for("the upload to succeed", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#4"))
            && b.job_state().as_deref() == Some("succeeded")
    });
    for (repo, tag) in saved {
        let want = corpus
            .iter()
            .find(|p| p.repo == repo && p.tag == tag)
            .expect("corpus image");
        let got = skopeo_inspect_raw(&dst.reference(repo, tag));
        assert_eq!(
            manifest_digest(&got),
            want.digest,
            "{repo}:{tag} at the target"
        );
    }

    // Verify from the Bundles screen.
    b.click("#nav-bundles");
    b.click(&format!("{card} .act-verify"));
    b.wait_for("the verification to succeed", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#5"))
            && b.job_state().as_deref() == Some("succeeded")
    });

    // Copy, with skopeo's syntax, from the source registry into an OCI layout.
    proxy.set_faults(Faults::none());
    let layout = ui.dir.path().join("layout");
    b.click("#nav-copy");
    b.type_into(
        "#src",
        &format!("docker://{}", proxy.reference("oci/image", "latest")),
    );
    b.type_into("#dst", &format!("oci:{}", layout.display()));
    b.wait_for("the copy command", |b| {
        b.text("#command")
            .is_some_and(|c| c.starts_with("ferry copy docker://"))
    });
    b.click("#start");
    b.wait_for("the copy to succeed", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#6"))
            && b.job_state().as_deref() == Some("succeeded")
    });
    assert!(
        layout.join("index.json").is_file(),
        "the OCI layout was written"
    );

    // Sync, registry to registry, to the cfg target by name.
    b.click("#nav-sync");
    b.type_into("#list", &proxy.reference("team/sub/app", "latest"));
    b.wait_for("the sync command", |b| {
        b.text("#command")
            .is_some_and(|c| c.starts_with("ferry sync --list ") && c.contains("--dst airgap"))
    });
    b.click("#start");
    b.wait_for("the sync to succeed", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#7"))
            && b.job_state().as_deref() == Some("succeeded")
    });
    let app = corpus
        .iter()
        .find(|p| p.repo == "team/sub/app" && p.tag == "latest")
        .expect("corpus image");
    let got = skopeo_inspect_raw(&dst.reference("team/sub/app", "latest"));
    assert_eq!(manifest_digest(&got), app.digest, "synced at the target");

    // Export the bundle as an OCI layout from its card.
    let exported = ui.dir.path().join("exported");
    b.click("#nav-bundles");
    b.click(&format!("{card} .act-export"));
    b.answer_prompt(&exported.display().to_string());
    b.wait_for("the export to succeed", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#8"))
            && b.job_state().as_deref() == Some("succeeded")
    });
    assert!(
        exported.join("index.json").is_file(),
        "the export wrote a layout"
    );

    // An increment on the bundle, from its card: the chain and the bytes left to
    // the base are shown.
    b.click("#nav-bundles");
    b.click(&format!("{card} .act-base"));
    b.wait_element("#mode-inc:checked");
    let increment_list = format!(
        "{}\n{}\n",
        proxy.reference("docker/v2s2", "1.0"),
        proxy.reference("team/sub/app", "v0.1-rc.1_x")
    );
    b.type_into("#list", &increment_list);
    b.wait_for("the incremental save command", |b| {
        b.text("#command")
            .is_some_and(|c| c.contains("--inc data/") && c.contains(&name))
    });
    b.click("#start");
    b.wait_for("the increment to succeed", |b| {
        b.text("#job-title").is_some_and(|t| t.starts_with("#9"))
            && b.job_state().as_deref() == Some("succeeded")
    });
    b.click("#nav-bundles");
    b.wait_for("two bundles", |b| b.count(".bundle") == 2);
    let increment = ".bundle:not([data-name=\"".to_string() + &name + "\"])";
    b.wait_element(&format!("{increment} .chain .node.me"));
    assert_eq!(
        b.text(&format!("{increment} .chain .node:not(.me)"))
            .as_deref(),
        Some(name.as_str()),
        "the increment's chain starts at its base"
    );
    assert!(
        b.text(&format!("{increment} .bytes-chart"))
            .is_some_and(|t| t.contains("layers in base bundles")),
        "the chart shows the bytes left to the base"
    );
    b.screenshot("09-bundles-increment");

    // History: every job, with the failure of the save.
    b.click("#nav-history");
    b.wait_element("#history tr[data-job=\"2\"]");
    assert_eq!(b.count("#history tr[data-job]"), 9);
    assert_eq!(
        b.attr("#history tr[data-job=\"1\"] [data-state]", "data-state")
            .as_deref(),
        Some("cancelled")
    );
    b.click("#history tr[data-job=\"2\"] .act-details");
    b.wait_for("the job's details", |b| {
        b.text("#history tr.detail")
            .is_some_and(|t| t.contains(&missing))
    });
    b.screenshot("10-history");

    // Chinese, switched on the page.
    b.click("#lang-zh");
    b.wait_for("the Chinese page", |b| {
        b.text("#nav-save").as_deref() == Some("保存")
    });
    b.click("#nav-bundles");
    b.wait_element(&card);
    b.screenshot("11-bundles-zh");
    b.click("#nav-progress");
    b.wait_element("#job-state");
    b.screenshot("12-progress-zh");
    assert!(
        ui.stdout
            .lock()
            .unwrap()
            .contains(&format!("{name}_meta.yaml")),
        "save printed its meta on standard output; log:\n{}",
        ui.log()
    );
}

#[test]
fn requests_without_the_token_and_cross_site_changes_are_refused() {
    let ui = UiServer::start();
    let json_type = ("content-type", "application/json");
    let form = br#"{"kind":"verify","meta":"nowhere_meta.yaml"}"#.to_vec();
    let send = |method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>| {
        http_request(
            method,
            &format!("{}{path}", ui.base),
            None,
            headers,
            body,
            Duration::from_secs(30),
        )
        .expect("request")
    };

    // No token, a wrong one, or one that only starts right: 401, page and API alike.
    for path in ["/", "/app.js", "/api/state", "/api/jobs", "/api/events"] {
        assert_eq!(send("GET", path, &[], None).status, 401, "{path}");
    }
    let wrong = format!("/api/state?token={}", "0".repeat(64));
    assert_eq!(send("GET", &wrong, &[], None).status, 401);
    let short = format!("/api/state?token={}", &ui.token[..10]);
    assert_eq!(send("GET", &short, &[], None).status, 401);
    assert_eq!(
        send("POST", "/api/jobs", &[json_type], Some(form.clone())).status,
        401,
        "a job without the token"
    );

    // The token in the URL opens the page and sets an HttpOnly, SameSite cookie.
    let page = send("GET", &format!("/?token={}", ui.token), &[], None);
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("cookie pair").to_string();
    assert_eq!(
        send("GET", "/api/state", &[("cookie", &pair)], None).status,
        200
    );

    // A cross-site request that would change something is refused, cookie or not.
    let token = ("x-ferry-token", ui.token.as_str());
    let attacks: [&[(&str, &str)]; 4] = [
        &[
            json_type,
            ("cookie", &pair),
            ("origin", "http://evil.example"),
        ],
        &[json_type, token, ("origin", "http://evil.example")],
        &[
            json_type,
            ("cookie", &pair),
            ("sec-fetch-site", "cross-site"),
        ],
        &[json_type, token, ("origin", "null")],
    ];
    for headers in attacks {
        for path in ["/api/jobs", "/api/registries", "/api/lang"] {
            let r = send("POST", path, headers, Some(form.clone()));
            assert_eq!(r.status, 403, "{path} {headers:?}: {}", r.text());
        }
    }
    let jobs = send("GET", "/api/jobs", &[token], None).json();
    assert_eq!(jobs["jobs"], json!([]), "no refused request queued a job");
    assert!(
        !ui.dir.path().join("cfg.yaml").exists(),
        "no refused request wrote cfg.yaml"
    );

    // The page itself (same origin) may.
    let origin = ui.base.clone();
    let ok = send(
        "POST",
        "/api/jobs",
        &[
            json_type,
            token,
            ("origin", &origin),
            ("sec-fetch-site", "same-origin"),
        ],
        Some(form),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        ok.json()["job"]["argv"],
        json!(["ferry", "verify", "nowhere_meta.yaml"])
    );
}

/// The API as the page calls it: JSON, with the token and this server's origin.
fn api(ui: &UiServer, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
    let origin = ui.base.clone();
    http_request(
        method,
        &format!("{}{path}", ui.base),
        None,
        &[
            ("content-type", "application/json"),
            ("x-ferry-token", &ui.token),
            ("origin", &origin),
        ],
        body.map(|b| b.to_string().into_bytes()),
        Duration::from_secs(30),
    )
    .expect("ferry ui answers")
}

fn job_states(ui: &UiServer) -> Vec<(u64, String)> {
    let jobs = api(ui, "GET", "/api/jobs", None).json();
    jobs["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["id"].as_u64().expect("id"),
                j["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn jobs_queue_one_at_a_time_and_ctrl_c_stops_the_running_one_resumably() {
    let src = Registry::start();
    let big = vec![layer("ui-queue", 2 * 1024 * 1024)];
    push_image(&src, "slow/app", "1", Format::Oci, &big, "ui-queue", false);
    let proxy = Proxy::start_with(&src.host(), Faults::none().throttle(64 * 1024));
    let mut ui = UiServer::start();

    let save = json!({"kind": "save", "list": proxy.reference("slow/app", "1")});
    let first = api(&ui, "POST", "/api/jobs", Some(save));
    assert_eq!(first.status, 200, "{}", first.text());
    wait_until("the save to run", || {
        job_states(&ui).contains(&(1, "running".to_string()))
    });
    let verify = json!({"kind": "verify", "meta": "data/none_meta.yaml"});
    assert_eq!(api(&ui, "POST", "/api/jobs", Some(verify)).status, 200);
    assert_eq!(
        job_states(&ui),
        [(2, "queued".to_string()), (1, "running".to_string())],
        "the second job waits for the first"
    );
    wait_until("some bytes saved", || {
        find_files(&ui.data(), ".partial")
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
    });

    // Ctrl-C: the running save stops as in a terminal, and both jobs are recorded.
    let pid = ui.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    let status = ui.child.wait().expect("ferry ui exits");
    assert!(
        status.success(),
        "ferry ui stopped cleanly: {status:?}\n{}",
        ui.log()
    );
    let history: Value = serde_json::from_slice(
        &std::fs::read(ui.data().join(".ferry-ui/history.json")).expect("history file"),
    )
    .expect("history JSON");
    let states: Vec<(u64, &str)> = history["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["id"].as_u64().unwrap_or(0),
                j["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        states,
        [(1, "cancelled"), (2, "interrupted")],
        "{history:#}"
    );
    assert_eq!(
        find_files(&ui.data(), ".journal").len(),
        1,
        "the partial bundle stays"
    );
    assert!(find_files(&ui.data(), "_meta.yaml").is_empty());

    // A new ferry ui in the same folder shows the history and resumes the save.
    let dir = std::mem::replace(&mut ui.dir, tempfile::tempdir().expect("temp dir"));
    drop(ui);
    proxy.set_faults(Faults::none());
    let ui = UiServer::start_in(dir);
    assert_eq!(
        job_states(&ui),
        [(2, "interrupted".to_string()), (1, "cancelled".to_string())]
    );
    let again = api(&ui, "POST", "/api/jobs/1/again", Some(json!({})));
    assert_eq!(again.status, 200, "{}", again.text());
    wait_until("the resumed save to finish", || {
        job_states(&ui).first() == Some(&(3, "succeeded".to_string()))
    });
    let job = api(&ui, "GET", "/api/jobs/3", None).json();
    let log: Vec<&str> = job["log_tail"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert!(
        log.iter().any(|l| l.starts_with("resuming ")),
        "the same command resumed the partial bundle: {log:?}"
    );
    assert_eq!(find_files(&ui.data(), "_meta.yaml").len(), 1);
}
