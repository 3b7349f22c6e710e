//! Tag selection (issue 19): `repo:*`, `repo:~REGEX`, `repo:semver(RANGE)`,
//! `|newest(N)` and `!` exclusions, expanded against a real registry's tag list for
//! `save` (recorded in the meta) and `sync`, from arguments, list files and cfg
//! `images:`; the sync daemon picks up a later tag that a regex selects.

use crate::common::*;
use ferry::bundle::meta::Meta;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tags of `sel/app` in a seeded registry (each its own small image).
const TAGS: &[&str] = &[
    "1.0.0",
    "1.2.0",
    "1.2.1",
    "1.2.5-rc1",
    "1.3.0",
    "2.0.0",
    "latest",
];

fn seed(reg: &Registry, repo: &str, tags: &[&str]) {
    for t in tags {
        push_image(
            reg,
            repo,
            t,
            Format::Oci,
            &[layer(&format!("{repo}-{t}"), 3_000)],
            &format!("{repo}-{t}"),
            false,
        );
    }
}

fn run_ok(cmd: &mut FerryCmd) -> (String, String) {
    let out = cmd.ok();
    (out.stdout, out.stderr)
}

fn meta_of(dir: &Path, stdout: &str) -> (PathBuf, Meta) {
    let path = dir.join(stdout.lines().last().unwrap().trim());
    let meta = Meta::load(&path).unwrap().0;
    (path, meta)
}

fn saved_tags(meta: &Meta) -> Vec<String> {
    let mut t: Vec<String> = meta.images.iter().filter_map(|i| i.tag.clone()).collect();
    t.sort();
    t
}

#[test]
fn selectors_expand_against_the_registry_and_are_recorded_in_the_meta() {
    let src = Registry::start();
    seed(&src, "sel/app", TAGS);
    let work = tempfile::tempdir().unwrap();
    let h = src.host();
    let list = work.path().join("list.txt");
    std::fs::write(
        &list,
        format!(
            "# semver range, the newest two, release candidates left out\n\
             {h}/sel/app:semver(>=1.2 <2)|newest(2)\n\
             !{h}/sel/app:~-rc\n\
             {h}/sel/app:latest\n"
        ),
    )
    .unwrap();
    let (stdout, _) = run_ok(
        FerryCmd::new()
            .current_dir(work.path())
            .args(["save", "--list", "list.txt", "-o", "out"]),
    );
    let (_, meta) = meta_of(work.path(), &stdout);
    assert_eq!(saved_tags(&meta), vec!["1.2.1", "1.3.0", "latest"]);
    assert_eq!(meta.selections.len(), 1, "{:?}", meta.selections);
    let sel = &meta.selections[0];
    assert_eq!(
        sel.selector,
        format!("{h}/sel/app:semver(>=1.2 <2)|newest(2)")
    );
    assert_eq!(sel.repository, format!("{h}/sel/app"));
    assert_eq!(sel.tags, vec!["1.3.0", "1.2.1"]);
    assert_eq!(
        sel.excluded,
        Vec::<String>::new(),
        "a pre-release is outside the range anyway"
    );
    // The images of a selector are recorded as plain references.
    assert!(meta
        .images
        .iter()
        .any(|i| i.reference == format!("{h}/sel/app:1.3.0")));

    // A regular expression with an exclusion, and every tag, from arguments.
    let (stdout, _) = run_ok(FerryCmd::new().current_dir(work.path()).args([
        "save",
        "-o",
        "out2",
        &format!(r"{h}/sel/app:~^1\.2\."),
        &format!("!{h}/sel/app:~-rc"),
    ]));
    let (_, meta) = meta_of(work.path(), &stdout);
    assert_eq!(saved_tags(&meta), vec!["1.2.0", "1.2.1"]);
    assert_eq!(meta.selections[0].excluded, vec!["1.2.5-rc1"]);
    let (stdout, _) = run_ok(FerryCmd::new().current_dir(work.path()).args([
        "save",
        "-o",
        "out3",
        &format!("{h}/sel/app:*|newest(3)"),
    ]));
    let (_, meta) = meta_of(work.path(), &stdout);
    assert_eq!(saved_tags(&meta), vec!["1.2.5-rc1", "1.3.0", "2.0.0"]);
    let (stdout, _) = run_ok(FerryCmd::new().current_dir(work.path()).args([
        "save",
        "-o",
        "out4",
        &format!("{h}/sel/app:*"),
    ]));
    let (_, meta) = meta_of(work.path(), &stdout);
    let mut all: Vec<String> = TAGS.iter().map(|t| t.to_string()).collect();
    all.sort();
    assert_eq!(saved_tags(&meta), all);
    assert_eq!(meta.selections[0].tags.len(), TAGS.len());
}

#[test]
fn bad_selectors_and_missing_repositories_fail_their_line_only() {
    let src = Registry::start();
    seed(&src, "sel/ok", &["1.0"]);
    let work = tempfile::tempdir().unwrap();
    let h = src.host();
    let out = ferry()
        .current_dir(work.path())
        .args([
            "save",
            "-o",
            "out",
            &format!("{h}/sel/ok:~^1"),
            &format!("{h}/sel/ok:~(unclosed"),
            &format!("{h}/sel/none:*"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid regular expression"), "{stderr}");
    assert!(stderr.contains("sel/none:*"), "{stderr}");
    let (_, meta) = meta_of(work.path(), &String::from_utf8_lossy(&out.stdout));
    assert_eq!(saved_tags(&meta), vec!["1.0"]);
    let failed: Vec<&str> = meta.failed.iter().map(|f| f.reference.as_str()).collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed.iter().any(|f| f.ends_with("sel/none:*")),
        "{failed:?}"
    );
}

#[test]
fn sync_expands_selectors_from_cfg_images_with_renames() {
    let src = Registry::start();
    let dst = Registry::start();
    seed(&src, "sel/app", TAGS);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("cfg.yaml"),
        format!(
            "source:\n- registry: http://{}\n  name: hq\n\
             images:\n\
             - 'sel/app:semver(^1.2) -> mirror/app'\n\
             - '!sel/app:1.2.0'\n\
             - 'sel/app:semver(>=1)|newest(1) -> mirror/app:stable'\n",
            src.host()
        ),
    )
    .unwrap();
    run_ok(
        FerryCmd::new()
            .current_dir(work.path())
            .args(["sync", "--dst", &dst.host()]),
    );
    assert_eq!(
        dst.tags("mirror/app"),
        vec!["1.2.1", "1.3.0", "stable"],
        "1.2.0 excluded, the rc outside ^1.2, 2.0.0 is the newest: stable"
    );
    assert_eq!(
        skopeo_inspect_raw(&dst.reference("mirror/app", "stable")),
        skopeo_inspect_raw(&src.reference("sel/app", "2.0.0"))
    );
}

/// Killed on drop.
struct Daemon {
    child: std::process::Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, log: &Path, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ferry_sync_events_total{result="ignored"}` from the daemon's metrics.
fn ignored_events(port: u16) -> f64 {
    let Ok(r) = http_request(
        "GET",
        &format!("http://127.0.0.1:{port}/metrics"),
        None,
        &[],
        None,
        Duration::from_secs(10),
    ) else {
        return 0.0;
    };
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix("ferry_sync_events_total{result=\"ignored\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_daemon_picks_up_a_later_tag_a_regex_selects_and_ignores_others() {
    let port = free_port();
    let src = Registry::start_with_notifications(&format!("http://127.0.0.1:{port}/events"), None);
    let dst = Registry::start();
    seed(&src, "ev/sel", &["v2.0"]);
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("sync.log");
    let child = Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .current_dir(work.path())
        .args([
            "sync",
            &format!(r"{}/ev/sel:~^v2\.", src.host()),
            &format!("!{}/ev/sel:~-rc$", src.host()),
            "--dst",
            &dst.host(),
        ])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--interval", "1h"])
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(work.path().join("rounds.jsonl")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _daemon = Daemon { child };
    // The first full round expands the selector: v2.0 is there.
    wait_for("the first round copies v2.0", &log, || {
        dst.tags("ev/sel") == vec!["v2.0".to_string()]
    });
    // Later pushes: one the regex takes, one it does not, one an exclusion removes.
    seed(&src, "ev/sel", &["v3.0", "v2.1-rc", "v2.1"]);
    wait_for("the event for v2.1 reaches the target", &log, || {
        dst.tags("ev/sel").contains(&"v2.1".to_string())
    });
    // Both other pushes were heard and left alone.
    wait_for("the other two pushes are ignored", &log, || {
        ignored_events(port) >= 2.0
    });
    assert_eq!(
        dst.tags("ev/sel"),
        vec!["v2.0".to_string(), "v2.1".to_string()],
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        skopeo_inspect_raw(&dst.reference("ev/sel", "v2.1")),
        skopeo_inspect_raw(&src.reference("ev/sel", "v2.1"))
    );
    // --json: one document a round, each on its own line; the event's round copied v2.1.
    let rounds = work.path().join("rounds.jsonl");
    let copied_v21 = || {
        std::fs::read_to_string(&rounds)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .any(|d| {
                d["command"] == "sync"
                    && d["images"].as_array().unwrap().iter().any(|i| {
                        i["state"] == "copied"
                            && i["source"].as_str().unwrap().ends_with("ev/sel:v2.1")
                    })
            })
    };
    wait_for("the round that copied v2.1 is reported", &log, copied_v21);
    let text = std::fs::read_to_string(&rounds).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["selections"][0]["tags"], serde_json::json!(["v2.0"]));
}

#[test]
fn log_format_json_writes_one_object_a_line() {
    let src = Registry::start();
    seed(&src, "log/app", &["1"]);
    let work = tempfile::tempdir().unwrap();
    let out = ferry()
        .current_dir(work.path())
        .args(["--log-format", "json", "-v", "save", "-o", "out"])
        .arg(format!("{}/log/app:*", src.host()))
        .arg(format!("{}/log/missing:1", src.host()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{stderr}")))
        .collect();
    assert!(lines.len() >= 2, "{stderr}");
    for l in &lines {
        assert!(l["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        assert!(
            ["info", "warn", "debug", "error"].contains(&l["level"].as_str().unwrap_or("")),
            "{l}"
        );
        assert!(l["message"].is_string(), "{l}");
    }
    assert!(
        lines.iter().any(|l| l["level"] == "info"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("1 succeeded, 1 failed"))),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("log/missing:1"))),
        "{stderr}"
    );
    // A run that stops with an error says so in JSON too.
    let out = ferry()
        .current_dir(work.path())
        .args([
            "--log-format",
            "json",
            "upload",
            "no-such-meta.yaml",
            "--dst",
        ])
        .arg(src.host())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error", "{stderr}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("no-such-meta.yaml"),
        "{stderr}"
    );
}

/// Every file below `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn json_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: not one JSON document:\n{stdout}"))
}

/// The keys every `--json` document has (README, "JSON output").
fn assert_common_keys(doc: &serde_json::Value, command: &str) {
    assert_eq!(doc["command"], command, "{doc}");
    for key in [
        "ok",
        "dry_run",
        "started",
        "elapsed_seconds",
        "totals",
        "images",
    ] {
        assert!(doc.get(key).is_some(), "{key} missing: {doc}");
    }
    for key in ["images", "succeeded", "failed", "invalid", "bytes"] {
        assert!(doc["totals"][key].is_u64(), "totals.{key}: {doc}");
    }
    for img in doc["images"].as_array().unwrap() {
        for key in ["source", "target", "digest", "bytes", "state", "reason"] {
            assert!(img.get(key).is_some(), "image {key} missing: {img}");
        }
    }
}

#[test]
fn save_dry_run_writes_nothing_and_names_what_it_would_fetch() {
    let src = Registry::start();
    seed(&src, "dry/app", &["1.0", "1.1", "2.0-rc"]);
    let work = tempfile::tempdir().unwrap();
    let h = src.host();
    let (stdout, _) = run_ok(FerryCmd::new().current_dir(work.path()).args([
        "save",
        "--dry-run",
        "-o",
        "out",
        "--cache",
        "cache",
        &format!(r"{h}/dry/app:~^\d"),
        &format!("!{h}/dry/app:~-rc"),
    ]));
    assert!(
        files_under(work.path()).is_empty(),
        "{:?}",
        files_under(work.path())
    );
    assert!(stdout.contains("nothing was written"), "{stdout}");
    assert!(stdout.contains(&format!("{h}/dry/app:1.0")), "{stdout}");
    assert!(stdout.contains(&format!("{h}/dry/app:1.1")), "{stdout}");
    assert!(
        !stdout.contains(&format!("{h}/dry/app:2.0-rc ")),
        "{stdout}"
    );
    assert!(stdout.contains("excluded: 2.0-rc"), "{stdout}");
    // Two images of one layer and one config each: four blobs to fetch.
    assert!(stdout.contains("4 to fetch"), "{stdout}");

    // The same as JSON.
    let (stdout, _) = run_ok(FerryCmd::new().current_dir(work.path()).args([
        "save",
        "--dry-run",
        "--json",
        "-o",
        "out",
        &format!(r"{h}/dry/app:~^\d"),
        &format!("!{h}/dry/app:~-rc"),
    ]));
    assert!(files_under(work.path()).is_empty());
    let doc = json_of(&stdout);
    assert_common_keys(&doc, "save");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["plan"]["fetch"]["blobs"], 4, "{doc}");
    assert!(
        doc["plan"]["fetch"]["bytes"].as_u64().unwrap() > 4_000,
        "{doc}"
    );
    assert_eq!(doc["plan"]["files"].as_array().unwrap().len(), 2, "{doc}");
    let states: Vec<&str> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, vec!["planned", "planned"], "{doc}");
    assert_eq!(doc["selections"][0]["excluded"][0], "2.0-rc", "{doc}");
}

#[test]
fn save_verify_ls_and_tags_print_json_documents() {
    let src = Registry::start();
    seed(&src, "js/app", &["1", "2"]);
    let work = tempfile::tempdir().unwrap();
    let h = src.host();
    let out = ferry()
        .current_dir(work.path())
        .args(["save", "--json", "-o", "out"])
        .arg(format!("{h}/js/app:*"))
        .arg(format!("{h}/js/missing:1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc = json_of(&String::from_utf8_lossy(&out.stdout));
    assert_common_keys(&doc, "save");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["source"], h, "the one registry of the images: {doc}");
    assert_eq!(doc["totals"]["images"], 3, "{doc}");
    assert_eq!(doc["totals"]["succeeded"], 2, "{doc}");
    assert_eq!(doc["totals"]["failed"], 1, "{doc}");
    let images = doc["images"].as_array().unwrap();
    let saved: Vec<&serde_json::Value> = images.iter().filter(|i| i["state"] == "saved").collect();
    assert_eq!(saved.len(), 2, "{doc}");
    for i in &saved {
        assert!(i["digest"].as_str().unwrap().starts_with("sha256:"), "{i}");
        assert!(i["bytes"].as_u64().unwrap() > 2_000, "{i}");
    }
    let failed = images.iter().find(|i| i["state"] == "failed").unwrap();
    assert_eq!(failed["source"], format!("{h}/js/missing:1"));
    assert!(
        failed["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{failed}"
    );
    let meta = work.path().join(doc["meta"].as_str().unwrap());
    assert!(meta.is_file(), "{doc}");
    assert_eq!(doc["files"].as_array().unwrap().len(), 2, "{doc}");
    assert!(
        doc["files"][0]["headers_sha256"].as_str().unwrap().len() == 64,
        "{doc}"
    );

    for command in ["ls", "verify"] {
        let (stdout, _) = run_ok(FerryCmd::new().args([command, "--json"]).arg(&meta));
        let d = json_of(&stdout);
        assert_common_keys(&d, command);
        assert_eq!(d["ok"], true, "{d}");
        assert_eq!(d["images"].as_array().unwrap().len(), 3, "{d}");
        assert_eq!(d["files"], doc["files"], "{d}");
    }
    // A broken data file: verify says which, in the document.
    let data = work.path().join(
        doc["files"][0]["name"]
            .as_str()
            .map(|n| meta.with_file_name(n))
            .unwrap(),
    );
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let out = ferry()
        .args(["verify", "--json"])
        .arg(&meta)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let d = json_of(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(d["ok"], false);
    let problems = d["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p
            .as_str()
            .unwrap()
            .contains(doc["files"][0]["name"].as_str().unwrap())),
        "{d}"
    );

    let (stdout, _) = run_ok(
        FerryCmd::new()
            .args(["tags", "--json"])
            .arg(format!("{h}/js/app")),
    );
    let d = json_of(&stdout);
    assert_eq!(d["command"], "tags");
    let mut tags: Vec<&str> = d["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, vec!["1", "2"], "{d}");
    assert_eq!(d["source"], format!("{h}/js/app"));
}

/// `dr/a:1`, `dr/b:1`, `dr/c:1` at `src` sharing one layer; `dr/a:1` already at `dst`.
fn seed_shared(src: &Registry, dst: &Registry) {
    for name in ["a", "b", "c"] {
        push_image(
            src,
            &format!("dr/{name}"),
            "1",
            Format::Oci,
            &[
                layer("dr-shared", 20_000),
                layer(&format!("dr-{name}"), 5_000),
            ],
            &format!("dr-{name}"),
            false,
        );
    }
    skopeo_copy(
        &docker_ref(&src.reference("dr/a", "1")),
        &docker_ref(&dst.reference("dr/a", "1")),
        &[],
    )
    .unwrap();
}

fn states(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let source = i["source"].as_str().unwrap();
            let short = source.rsplit('/').next().unwrap().to_string();
            (short, i["state"].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn sync_dry_run_plans_against_the_target_and_pushes_nothing() {
    let (src, dst) = (Registry::start(), Registry::start());
    seed_shared(&src, &dst);
    // What the target stores, file by file: a dry run changes none of it.
    let stored = |r: &Registry| {
        let mut f = files_under(r.storage_dir());
        f.sort();
        f
    };
    let seeded = stored(&dst);
    assert!(!seeded.is_empty());
    let work = tempfile::tempdir().unwrap();
    let images: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| src.reference(&format!("dr/{n}"), "1"))
        .collect();
    let (stdout, _) = run_ok(
        FerryCmd::new()
            .current_dir(work.path())
            .args(["sync", "--dry-run", "--dst", &dst.host()])
            .args(&images),
    );
    assert!(stdout.contains("nothing was written"), "{stdout}");
    assert!(stdout.contains("2 to copy, 1 already there"), "{stdout}");
    // Two configs, two own layers, the shared layer once: pushed to dr/b, mounted to dr/c.
    assert!(stdout.contains("5 to push"), "{stdout}");
    assert!(stdout.contains("1 to mount"), "{stdout}");
    assert!(stdout.contains("2 manifests"), "{stdout}");
    assert!(dst.tags("dr/b").is_empty() && dst.tags("dr/c").is_empty());

    let (stdout, _) = run_ok(
        FerryCmd::new()
            .current_dir(work.path())
            .args(["sync", "--dry-run", "--json", "--dst", &dst.host()])
            .args(&images),
    );
    let doc = json_of(&stdout);
    assert_common_keys(&doc, "sync");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["target"], dst.host());
    assert_eq!(
        states(&doc),
        vec![
            ("a:1".into(), "present".into()),
            ("b:1".into(), "planned".into()),
            ("c:1".into(), "planned".into())
        ]
    );
    assert_eq!(doc["plan"]["push"]["blobs"], 5, "{doc}");
    assert_eq!(doc["plan"]["mount"]["blobs"], 1, "{doc}");
    assert_eq!(doc["plan"]["fetch"]["blobs"], 5, "{doc}");
    assert_eq!(doc["plan"]["manifests"], 2, "{doc}");
    assert!(
        doc["plan"]["push"]["bytes"].as_u64().unwrap() > 10_000,
        "{doc}"
    );
    assert_eq!(doc["totals"]["bytes"], 0);
    assert!(dst.tags("dr/b").is_empty() && dst.tags("dr/c").is_empty());
    assert_eq!(stored(&dst), seeded, "a dry run wrote");
    assert!(try_skopeo_inspect_raw(&dst.reference("dr/b", "1"), None).is_err());

    // For real, as JSON: what it did.
    let (stdout, _) = run_ok(
        FerryCmd::new()
            .current_dir(work.path())
            .args(["sync", "--json", "--dst", &dst.host()])
            .args(&images),
    );
    let doc = json_of(&stdout);
    assert!(stored(&dst).len() > seeded.len());
    assert_common_keys(&doc, "sync");
    assert_eq!(doc["ok"], true);
    assert_eq!(
        states(&doc),
        vec![
            ("a:1".into(), "present".into()),
            ("b:1".into(), "copied".into()),
            ("c:1".into(), "copied".into())
        ]
    );
    let b = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == images[1])
        .unwrap();
    assert_eq!(b["target"], "dr/b:1");
    assert_eq!(
        b["digest"].as_str().unwrap(),
        manifest_digest(&skopeo_inspect_raw(&dst.reference("dr/b", "1")))
    );
    assert!(doc["totals"]["bytes"].as_u64().unwrap() > 10_000, "{doc}");
}

#[test]
fn upload_and_copy_dry_runs_write_nothing_and_report_in_json() {
    let (src, dst) = (Registry::start(), Registry::start());
    seed_shared(&src, &dst);
    let work = tempfile::tempdir().unwrap();
    let (stdout, _) = run_ok(
        FerryCmd::new()
            .current_dir(work.path())
            .args(["save", "-o", "out", "--files", "1"])
            .arg(src.reference("dr/a", "1"))
            .arg(src.reference("dr/b", "1")),
    );
    let (meta, _) = meta_of(work.path(), &stdout);
    let (stdout, _) = run_ok(
        FerryCmd::new()
            .args(["upload", "--dry-run", "--json", "--dst", &dst.host()])
            .arg(&meta),
    );
    let doc = json_of(&stdout);
    assert_common_keys(&doc, "upload");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(
        states(&doc),
        vec![
            ("a:1".into(), "present".into()),
            ("b:1".into(), "planned".into())
        ]
    );
    assert_eq!(doc["plan"]["push"]["blobs"], 3, "{doc}");
    assert!(dst.tags("dr/b").is_empty());
    let (stdout, _) = run_ok(
        FerryCmd::new()
            .args(["upload", "--dry-run", "--dst", &dst.host()])
            .arg(&meta),
    );
    assert!(stdout.contains("3 to push"), "{stdout}");
    assert!(dst.tags("dr/b").is_empty());

    // copy into an OCI layout that is not there: no folder appears.
    let layout = work.path().join("layout");
    let (stdout, _) = run_ok(FerryCmd::new().args([
        "copy",
        "--dry-run",
        "--json",
        &format!("docker://{}", src.reference("dr/c", "1")),
        &format!("oci:{}", layout.display()),
    ]));
    assert!(!layout.exists());
    let doc = json_of(&stdout);
    assert_common_keys(&doc, "copy");
    assert_eq!(states(&doc), vec![("c:1".into(), "planned".into())]);
    assert_eq!(doc["plan"]["push"]["blobs"], 3, "{doc}");
    // ...and for real.
    let (stdout, _) = run_ok(FerryCmd::new().args([
        "copy",
        "--json",
        &format!("docker://{}", src.reference("dr/c", "1")),
        &format!("oci:{}", layout.display()),
    ]));
    let doc = json_of(&stdout);
    assert_eq!(states(&doc), vec![("c:1".into(), "copied".into())]);
    assert!(layout.join("index.json").is_file());
}

#[test]
fn plans_and_selector_messages_are_chinese_under_zh_cn() {
    let (src, dst) = (Registry::start(), Registry::start());
    seed_shared(&src, &dst);
    let work = tempfile::tempdir().unwrap();
    let out = ferry()
        .current_dir(work.path())
        .env("LANG", "zh_CN.UTF-8")
        .env_remove("LC_ALL")
        .args(["sync", "--dry-run", "--dst", &dst.host()])
        .arg(format!("{}/dr/a:*", src.host()))
        .arg(format!("{}/dr/b:~^1$", src.host()))
        .arg(format!("!{}/dr/b:~1", src.host()))
        .arg(format!("{}/dr/c:~(", src.host()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("没有写入任何内容") && text.contains("无效的正则表达式"),
        "{text}"
    );
    assert!(text.contains("已排除: 1"), "{text}");
    let english = crate::lang::english_phrases(&text);
    assert!(
        english.is_empty(),
        "English under zh_CN: {english:?}\n{text}"
    );
}

#[test]
fn interval_rounds_list_again_and_pick_up_a_new_matching_tag() {
    let (src, dst) = (Registry::start(), Registry::start());
    seed(&src, "iv/app", &["v1.0"]);
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("sync.log");
    let child = Command::new(assert_cmd::cargo::cargo_bin("ferry"))
        .current_dir(work.path())
        .args(["sync", &format!(r"{}/iv/app:~^v1\.", src.host())])
        .args(["--dst", &dst.host(), "--interval", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _daemon = Daemon { child };
    wait_for("the first round copies v1.0", &log, || {
        dst.tags("iv/app") == vec!["v1.0".to_string()]
    });
    // No notifications here: only a later round's listing can find these.
    seed(&src, "iv/app", &["v1.1", "v2.0"]);
    wait_for("a later round copies v1.1", &log, || {
        dst.tags("iv/app").contains(&"v1.1".to_string())
    });
    // Rounds go on; v2.0 is never taken.
    let rounds_then = std::fs::read_to_string(&log).unwrap().lines().count();
    wait_for("two more rounds", &log, || {
        std::fs::read_to_string(&log).unwrap().lines().count() >= rounds_then + 2
    });
    assert_eq!(
        dst.tags("iv/app"),
        vec!["v1.0".to_string(), "v1.1".to_string()]
    );
}
