//! What a new user meets: usage errors that name what was typed, image-transmit's
//! cfg and list edges, plain wording, and how daemons and interrupted runs end.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A finished ferry run.
type Out = Output;

/// Runs ferry in `dir` (so no cfg.yaml of the checkout is read), in English unless
/// `env` says otherwise.
fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = FerryCmd::new();
    cmd.current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
}

fn small_image(reg: &Registry, repo: &str, seed: &str) -> PushedImage {
    push_image(
        reg,
        repo,
        "1",
        Format::Oci,
        &[layer(seed, 20_000)],
        seed,
        false,
    )
}

/// Saves `refs` into `dir/out` as one data file; returns the meta path.
fn save(dir: &Path, refs: &[&str]) -> PathBuf {
    let mut args = vec!["save", "--out", "out", "--files", "1"];
    args.extend_from_slice(refs);
    let out = run_in(dir, &args, &[]);
    assert_eq!(out.code, Some(0), "{out}");
    dir.join(out.stdout.trim())
}

/// A ferry process spawned by the test itself (so it gets signals with their default
/// disposition), its stderr going to a file.
struct Spawned {
    child: std::process::Child,
    stderr: PathBuf,
}

impl Spawned {
    fn start(dir: &Path, args: &[&str]) -> Spawned {
        let stderr = dir.join("spawned.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(dir)
            .args(args)
            .env("LANG", "C.UTF-8")
            .env_remove("LC_ALL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawning ferry");
        Spawned { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `ready` holds (panics if ferry ends first, or after a minute).
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(&self.stderr()) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("ferry ended ({status}) before {what}:\n{}", self.stderr());
            }
            assert!(Instant::now() < deadline, "{what}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGNAL and waits for the exit code.
    fn stop(&mut self, signal: &str) -> Option<i32> {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "ferry did not stop on SIG{signal}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn usage_errors_name_what_was_typed_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A misspelt image-transmit flag is named as written, not as `-s`.
    let out = run_in(d, &["-srcc=hq"], &[]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("-srcc=hq"), "{out}");
    assert!(out.stderr.contains("-src?"), "suggests -src: {out}");
    assert!(!out.stderr.contains("'-s'"), "{out}");

    // A bad cfg value names its key and line.
    std::fs::write(d.join("cfg.yaml"), "source: []\nmaxconn: eight\n").unwrap();
    let out = run_in(d, &["save", "x:1"], &[]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("maxconn") && out.stderr.contains("line 2"),
        "{out}"
    );
    assert!(!out.stderr.contains("u64"), "no parser jargon: {out}");

    // An empty list is a usage error (README: usage errors exit 2).
    std::fs::write(
        d.join("cfg.yaml"),
        "source:\n- registry: http://127.0.0.1:9\n  name: hq\n",
    )
    .unwrap();
    std::fs::write(d.join("empty.lst"), "# nothing yet\n\n").unwrap();
    let out = run_in(d, &["-src=hq", "-lst=empty.lst"], &[]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("empty.lst"), "names the list: {out}");

    // clap's "did you mean" survives in Chinese.
    std::fs::remove_file(d.join("cfg.yaml")).unwrap();
    let out = run_in(d, &["save", "--lisst", "x"], &[("LANG", "zh_CN.UTF-8")]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr.contains("提示") && out.stderr.contains("'--list'"),
        "{out}"
    );
}

#[test]
fn harmless_cfg_keys_are_silent_repeated_lines_count_once_and_counts_read_right() {
    let src = Registry::start();
    let img = small_image(&src, "ux/once", "ux-once");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("cfg.yaml"),
        format!(
            "source:\n- registry: http://{}\n  name: hq\nfiles: 1\nkeeptemp: false\nsquashfs: false\n",
            src.host()
        ),
    )
    .unwrap();
    std::fs::write(d.join("images.lst"), "ux/once:1\nux/once:1\n").unwrap();
    let out = run_in(d, &["-src=hq", "-lst=images.lst"], &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr.contains("not supported"), "{out}");
    assert!(out.stderr.contains("listed 2 times"), "a note: {out}");
    assert!(
        out.stderr.contains("1 image, 1 succeeded"),
        "counted once: {out}"
    );
    let meta = d.join(out.stdout.trim());
    let (recorded, _) = ferry::bundle::meta::Meta::load(&meta).unwrap();
    assert_eq!(recorded.images.len(), 1, "one image record");
    assert_eq!(recorded.images[0].digest.to_string(), img.digest);

    // Singular counts read as such.
    let meta = meta.to_str().unwrap();
    let out = run_in(d, &["verify", meta], &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("1 data file,") && out.stderr.contains("1 image"),
        "{out}"
    );
    assert!(!out.stderr.contains("1 images"), "{out}");
    let out = run_in(d, &["export", meta, "--oci", "layout"], &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("wrote 1 image to"), "{out}");
    let out = run_in(d, &["ls", meta], &[]);
    assert!(!out.stdout.contains(" 1 blobs"), "{out}");
}

/// A daemon stopped with SIGTERM says it stopped; "run the same command again to
/// resume" is for jobs that were cut short.
#[test]
fn a_terminated_serve_says_stopped_not_resume() {
    let src = Registry::start();
    let img = small_image(&src, "ux/serve", "ux-serve");
    let dir = tempfile::tempdir().unwrap();
    let meta = save(dir.path(), &[&img.reference]);
    let mut serve = Spawned::start(
        dir.path(),
        &["serve", meta.to_str().unwrap(), "--listen", "127.0.0.1:0"],
    );
    serve.wait_until("serving", |e| e.contains("serving bundle"));
    // Ready means answering: the listening line names the URL, which must serve.
    let stderr = serve.stderr();
    let url = stderr
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.ends_with("/v2/"))
        .unwrap_or_else(|| panic!("no URL in the listening line:\n{stderr}"));
    assert_eq!(http_get(url, None).status, 200, "{url}");
    assert_eq!(serve.stop("TERM"), Some(0), "{}", serve.stderr());
    let stderr = serve.stderr();
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(!stderr.contains("again to resume"), "{stderr}");
}

/// A save cut short says "interrupted" once, with what to do.
#[test]
fn an_interrupted_save_says_so_once() {
    let src = Registry::start();
    let big = push_image(
        &src,
        "ux/big",
        "1",
        Format::Oci,
        &[layer("ux-big", 1024 * 1024)],
        "ux-big",
        false,
    );
    let proxy = Proxy::start_with(&src.host(), Faults::none().throttle(256 * 1024));
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/{}:{}", proxy.host(), big.repo, big.tag);
    let mut save = Spawned::start(dir.path(), &["save", "--out", "out", &reference]);
    save.wait_until("bytes served", |_| proxy.stats().blob_bytes >= 64 * 1024);
    assert_eq!(save.stop("TERM"), Some(130), "{}", save.stderr());
    let stderr = save.stderr();
    assert_eq!(
        stderr.matches("interrupted").count(),
        1,
        "said once:\n{stderr}"
    );
    assert!(stderr.contains("again to resume"), "{stderr}");
}

/// A bundle may be named by its folder: the one meta in it (or one level down, as in
/// `data/`); a folder with several bundles is a usage error that lists them.
#[test]
fn a_bundle_folder_stands_for_its_meta() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = small_image(&src, "ux/folder", "ux-folder");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let meta = save(d, &[&img.reference]);
    let day = meta.parent().unwrap().to_str().unwrap().to_string();

    let out = run_in(d, &["upload", &day, "--dst", &dst.host()], &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        skopeo_inspect_raw(&format!("{}/ux/folder:1", dst.host())),
        img.manifest
    );
    // image-transmit's -img=DIR too, and `out/` (one folder per day) for ls.
    std::fs::write(
        d.join("cfg.yaml"),
        format!("target:\n- registry: http://{}\n  name: gz\n", dst.host()),
    )
    .unwrap();
    let out = run_in(d, &["-dst=gz", &format!("-img={day}")], &[]);
    assert_eq!(out.code, Some(0), "{out}");
    let out = run_in(d, &["ls", "out"], &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout.contains("ux/folder"), "{out}");

    // Two bundles: none is picked silently.
    let second = small_image(&src, "ux/folder2", "ux-folder2");
    let meta2 = save(d, &[&second.reference]);
    assert_eq!(meta2.parent(), meta.parent(), "same day folder");
    let out = run_in(d, &["verify", &day], &[]);
    assert_eq!(out.code, Some(2), "{out}");
    let name = |m: &Path| m.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        out.stderr.contains(&name(&meta)) && out.stderr.contains(&name(&meta2)),
        "lists both: {out}"
    );
}

/// An increment uploaded under another namespace than its base: the error says
/// where the base's blobs were looked for.
#[test]
fn a_missing_base_names_the_namespace_checked() {
    let src = Registry::start();
    let dst = Registry::start();
    let base_layer = layer("ux-ns-base", 30_000);
    let v1 = push_image(
        &src,
        "ux/ns",
        "1",
        Format::Oci,
        std::slice::from_ref(&base_layer),
        "ux-ns-1",
        false,
    );
    let v2 = push_image(
        &src,
        "ux/ns",
        "2",
        Format::Oci,
        &[base_layer, layer("ux-ns-top", 10_000)],
        "ux-ns-2",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let full = save(d, &[&v1.reference]);
    let full = full.to_str().unwrap();
    let out = run_in(
        d,
        &["upload", full, "--dst", &format!("{}/one", dst.host())],
        &[],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let out = run_in(
        d,
        &["save", "--out", "out", "--inc", full, &v2.reference],
        &[],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let inc = out.stdout.trim().to_string();
    let out = run_in(
        d,
        &["upload", &inc, "--dst", &format!("{}/two", dst.host())],
        &[],
    );
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr.contains(&format!("{}/two/ux/ns", dst.host())),
        "names where it looked: {out}"
    );
    assert!(out.stderr.contains("namespace"), "{out}");
}

/// Two images that a cfg `repository:` rewrite folds onto one tag are warned about
/// at save time, before the bundle crosses the gap.
#[test]
fn a_rewrite_that_folds_two_images_onto_one_tag_is_warned_about_at_save() {
    let src = Registry::start();
    let a = small_image(&src, "xxxx/app", "ux-fold-a");
    let b = small_image(&src, "zzzz/app", "ux-fold-b");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("cfg.yaml"),
        format!(
            "source:\n- registry: http://{}\n  name: hq\ntarget:\n- registry: http://127.0.0.1:9\n  name: gz\n  repository: yyyy\n",
            src.host()
        ),
    )
    .unwrap();
    std::fs::write(d.join("images.lst"), "xxxx/app:1\nzzzz/app:1\n").unwrap();
    let out = run_in(d, &["-src=hq", "-lst=images.lst"], &[]);
    assert_eq!(out.code, Some(0), "the save itself succeeds: {out}");
    assert!(
        out.stderr.contains("xxxx/app:1")
            && out.stderr.contains("zzzz/app:1")
            && out.stderr.contains("yyyy/app:1"),
        "names both images and the tag: {out}"
    );
    assert!(out.stderr.contains("gz"), "names the target: {out}");
    let _ = (a, b);
}

/// Without a terminal a long save logs its progress at a steady interval; `-v` shows
/// each blob and image as it completes, and after an upload each reference pushed.
#[test]
fn progress_lines_without_a_terminal_and_verbose_detail() {
    let src = Registry::start();
    let img = push_image(
        &src,
        "ux/slow",
        "1",
        Format::Oci,
        &[layer("ux-slow", 768 * 1024)],
        "ux-slow",
        false,
    );
    // About three seconds of transfer: a few lines at one a second.
    let proxy = Proxy::start_with(&src.host(), Faults::none().throttle(256 * 1024));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reference = format!("{}/{}:{}", proxy.host(), img.repo, img.tag);
    let out = run_in(
        d,
        &[
            "save",
            "-v",
            "--progress-interval",
            "1",
            "--out",
            "out",
            &reference,
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{out}");
    let progress: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(" save: ") && l.contains("ETA"))
        .collect();
    assert!(!progress.is_empty(), "no progress line: {out}");
    assert!(
        progress
            .iter()
            .any(|l| l.contains('%') && l.contains("/s") && l.contains("images 0/1")),
        "bytes, percent, speed, images done: {progress:#?}"
    );
    for blob in &img.blobs {
        assert!(
            out.stderr.contains(&format!("blob {} saved", blob.digest)),
            "-v names each blob: {out}"
        );
    }
    assert!(out.stderr.contains("every blob saved"), "{out}");

    // --quiet, or --progress-interval 0: no progress lines.
    let out_q = run_in(
        d,
        &[
            "save",
            "-q",
            "--progress-interval",
            "1",
            "--out",
            "q",
            &reference,
        ],
        &[],
    );
    assert_eq!(out_q.code, Some(0), "{out_q}");
    assert!(!out_q.stderr.contains("ETA"), "{out_q}");

    let dst = Registry::start();
    let meta = out.stdout.trim().to_string();
    let up = run_in(d, &["upload", "-v", &meta, "--dst", &dst.host()], &[]);
    assert_eq!(up.code, Some(0), "{up}");
    assert!(
        up.stderr
            .contains(&format!("pushed {}/ux/slow:1 {}", dst.host(), img.digest)),
        "lists each reference pushed: {up}"
    );
    assert!(up.stderr.contains("sent ("), "-v names each blob: {up}");
}

/// `export --oci` of docker-typed images says that skopeo and podman read only
/// OCI-typed entries; `--oci-media-types` converts them (new digests, said so), and
/// skopeo then copies them out of the layout with the same config and layers.
#[test]
fn export_oci_media_types_converts_docker_images_for_skopeo() {
    let src = Registry::start();
    let single = push_image(
        &src,
        "ux/dock",
        "1",
        Format::Docker,
        &[layer("ux-dock", 20_000)],
        "ux-dock",
        false,
    );
    let list = push_index(
        &src,
        "ux/multi",
        "1",
        Format::Docker,
        &[
            ("linux/amd64", vec![layer("ux-multi-amd64", 10_000)]),
            ("linux/arm64", vec![layer("ux-multi-arm64", 10_000)]),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let meta = save(d, &[&single.reference, &list.reference]);
    let meta = meta.to_str().unwrap();

    let out = run_in(d, &["export", meta, "--oci", "plain"], &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(
        out.stderr.contains("skopeo and podman read only OCI-typed")
            && out.stderr.contains("--oci-media-types"),
        "{out}"
    );

    let out = run_in(
        d,
        &["export", meta, "--oci", "layout", "--oci-media-types"],
        &[],
    );
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr.contains("digests changed"), "{out}");
    assert!(
        out.stderr.contains(&single.digest) && out.stderr.contains(&list.digest),
        "names the old digests: {out}"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("layout/index.json")).unwrap()).unwrap();
    let mut types: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["mediaType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(
        types,
        vec![media_types::OCI_INDEX, media_types::OCI_MANIFEST],
        "{index}"
    );

    // skopeo reads the converted entries: same config and layers, OCI-typed.
    let layout = d.join("layout");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:ux/dock:1", layout.display()),
    ])
    .expect("skopeo reads the converted image");
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["mediaType"], media_types::OCI_MANIFEST);
    let original: serde_json::Value = serde_json::from_slice(&single.manifest).unwrap();
    assert_eq!(manifest["config"]["digest"], original["config"]["digest"]);
    assert_eq!(
        manifest["layers"][0]["digest"],
        original["layers"][0]["digest"]
    );
    let copy = tempfile::tempdir().unwrap();
    skopeo_copy(
        &format!("oci:{}:ux/multi:1", layout.display()),
        &format!("oci:{}:m", copy.path().display()),
        &["--all"],
    )
    .expect("skopeo copies the converted index with its children");
}

/// The repository's `data/` folder: a cfg.yaml that changes nothing as shipped and is
/// valid once uncommented, the demo's list, and bundles kept out of git.
#[test]
fn the_data_folder_starts_a_job_and_keeps_bundles_out_of_git() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = root.join("data");
    assert!(data.join("README.md").is_file());

    let shipped = ferry::config::Config::load(&data.join("cfg.yaml")).expect("data/cfg.yaml");
    assert!(
        shipped.sources.is_empty()
            && shipped.targets.is_empty()
            && shipped.unsupported().is_empty(),
        "inert as shipped"
    );
    // Uncommented (`#key` and `#  key` lines, not `# prose`), it is a working
    // configuration.
    let text = std::fs::read_to_string(data.join("cfg.yaml")).unwrap();
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with("  ") || !rest.starts_with([' ', '#']) => rest,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = ferry::config::Config::parse(&uncommented, "data/cfg.yaml", &|_| None)
        .expect("data/cfg.yaml uncommented");
    assert_eq!(cfg.sources.len(), 1);
    assert_eq!(cfg.targets.len(), 1);
    assert!(cfg.file.maxconn.is_some() && cfg.file.cache.is_some());

    // The demo's list names the images the demo pushes.
    let pushed = std::fs::read_to_string(root.join("scripts/make-demo-images.sh")).unwrap();
    let list = std::fs::read_to_string(data.join("demo.lst")).unwrap();
    let lines = ferry::cli::run::parse_list(&list);
    assert!(!lines.is_empty());
    for line in lines {
        let (repo, tag) = line.rsplit_once(':').unwrap();
        let quoted = format!("image {repo} \"{tag}\"");
        let plain = format!("image {repo} {tag} ");
        assert!(
            pushed.contains(&quoted) || pushed.contains(&plain),
            "{line} is not pushed by make-demo-images.sh"
        );
    }

    // Bundles under data/ stay out of git; the folder's own files do not.
    let ignored = |p: &str| {
        Command::new("git")
            .current_dir(root)
            .args(["check-ignore", "-q", "--no-index", p])
            .status()
            .expect("git")
            .success()
    };
    for p in [
        "data/20261124/img_full_202611241530_1.tar",
        "data/20261124/img_full_202611241530_meta.yaml",
        "data/cache/sha256/ab",
        "data/img_full_202611241530_meta.yaml",
        "data/img_full_202611241530_1.tar",
    ] {
        assert!(ignored(p), "{p} should be ignored");
    }
    for p in ["data/README.md", "data/cfg.yaml", "data/demo.lst"] {
        assert!(!ignored(p), "{p} should be tracked");
    }
}

/// scripts/install.sh puts the binary at PREFIX/bin/ferry and says where.
#[test]
fn the_install_script_says_where_the_binary_lands() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let prefix = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root.join("scripts/install.sh"))
        .args(["--prefix", prefix.path().to_str().unwrap()])
        .args(["--bin", env!("CARGO_BIN_EXE_ferry")])
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = prefix.path().join("bin/ferry");
    assert!(stdout.contains(installed.to_str().unwrap()), "{stdout}");
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ferry "));
}
