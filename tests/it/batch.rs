//! Batch jobs: image-transmit's cfg.yaml and command line, credentials (cfg,
//! `${VAR}`, `ferry login`), TLS with a private CA, platform filters, data file
//! size caps, renames, shell completions.
//!
//! Every test works in its own temporary folder (ferry's working directory, so
//! `./cfg.yaml` and `./data/` are its own) with its own `DOCKER_CONFIG`, and
//! starts its own registries, seeded and checked with skopeo.

use crate::common::*;

use base64::Engine as _;
use ferry::bundle::meta::Meta;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Running ferry in a work folder

const SRC_USER: &str = "srcrobot";
const SRC_PW: &str = "Src-Secret-7f3a9c2e41";
const DST_USER: &str = "dstrobot";
const DST_PW: &str = "Dst-Secret-d41e0b9a77";

/// A finished ferry process.
type Run = Output;

/// A temporary working folder for ferry, with its own docker config folder,
/// keeping the transcript of every ferry run made in it.
struct Work {
    dir: tempfile::TempDir,
    transcript: RefCell<Vec<String>>,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::Builder::new()
            .prefix("ferry-batch-")
            .tempdir()
            .expect("work tempdir");
        fs::create_dir_all(dir.path().join("home")).unwrap();
        Work {
            dir,
            transcript: RefCell::new(Vec::new()),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `DOCKER_CONFIG` of every ferry run here (it may not exist).
    fn docker_config(&self) -> PathBuf {
        self.path().join("docker")
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, text).unwrap();
        p
    }

    fn command(&self, args: &[&str]) -> FerryCmd {
        let mut cmd = FerryCmd::new();
        cmd.args(args)
            .current_dir(self.path())
            .env("DOCKER_CONFIG", self.docker_config())
            .env("HOME", self.path().join("home"))
            .env_remove("REGISTRY_AUTH_FILE");
        cmd
    }

    fn run(&self, cmd: &mut FerryCmd) -> Run {
        let run = cmd.output();
        self.transcript.borrow_mut().push(run.to_string());
        run
    }

    fn ferry(&self, args: &[&str]) -> Run {
        self.run(&mut self.command(args))
    }

    fn ferry_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.run(&mut cmd)
    }

    fn ferry_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(stdin);
        self.run(&mut cmd)
    }

    /// The meta path a successful save printed (last line of stdout), resolved
    /// against the work folder.
    fn meta_of(&self, run: &Run) -> PathBuf {
        let p = self.path().join(run.meta());
        assert!(p.is_file(), "printed meta {p:?} is not a file: {run}");
        p
    }

    /// Everything ferry printed here so far.
    fn transcript(&self) -> String {
        self.transcript.borrow().join("\n")
    }
}

fn load_meta(path: &Path) -> Meta {
    Meta::load(path)
        .unwrap_or_else(|e| panic!("cannot load {path:?}: {e}"))
        .0
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The data files (`*.tar`) of a bundle, as the meta lists them, checked
/// against the folder: sizes as recorded, nothing else left over.
fn data_files(meta_path: &Path) -> Vec<(PathBuf, u64)> {
    let meta = load_meta(meta_path);
    let dir = meta_path.parent().unwrap();
    meta.files
        .iter()
        .map(|f| {
            let p = dir.join(&f.name);
            let len = fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{p:?}: {e}"))
                .len();
            assert_eq!(len, f.size, "{p:?}: size differs from the meta");
            (p, len)
        })
        .collect()
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The secrets and their `user:password` base64 forms (as in an
/// `Authorization: Basic` header) appear in no text and no file below `roots`
/// (except `allowed` files, e.g. the cfg.yaml that holds a password).
fn assert_no_secrets(texts: &str, roots: &[&Path], allowed: &[&Path], creds: &[(&str, &str)]) {
    let mut needles: Vec<String> = Vec::new();
    for (u, p) in creds {
        needles.push(p.to_string());
        needles.push(base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
    }
    for n in &needles {
        assert!(
            !texts.contains(n.as_str()),
            "secret {n:?} appears in ferry's output:\n{texts}"
        );
    }
    let mut checked = 0;
    for root in roots {
        for f in files_under(root) {
            if allowed.iter().any(|a| *a == f) {
                continue;
            }
            let bytes = fs::read(&f).unwrap();
            checked += 1;
            for n in &needles {
                assert!(
                    !contains_bytes(&bytes, n.as_bytes()),
                    "secret {n:?} appears in {f:?}"
                );
            }
        }
    }
    assert!(checked > 0, "no files were checked for secrets");
}

fn today() -> String {
    chrono::Local::now().format("%Y%m%d").to_string()
}

/// `data/YYYYMMDD/PREFIX_full_YYYYMMDDHHMM[-n]_meta.yaml` below `work`.
fn assert_legacy_bundle_path(work: &Path, meta: &Path, prefix: &str, days: &[String]) {
    let rel = meta
        .strip_prefix(work)
        .expect("bundle inside the work folder");
    let parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(parts.len(), 3, "bundle path {rel:?} is not data/DAY/FILE");
    assert_eq!(parts[0], "data", "bundle path {rel:?}");
    assert!(days.iter().any(|d| d == parts[1]), "day folder of {rel:?}");
    let stamp = parts[2]
        .strip_prefix(&format!("{prefix}_full_"))
        .and_then(|s| s.strip_suffix("_meta.yaml"))
        .unwrap_or_else(|| panic!("{rel:?} is not {prefix}_full_..._meta.yaml"));
    let minute = stamp.split('-').next().unwrap();
    assert!(
        minute.len() == 12 && minute.bytes().all(|b| b.is_ascii_digit()),
        "{rel:?}: time stamp {stamp:?}"
    );
    assert!(
        minute.starts_with(parts[1]),
        "{rel:?}: stamp is not of its day"
    );
}

/// A cfg.yaml entry for a plain-HTTP test registry.
fn http_entry(reg: &Registry) -> String {
    format!("- registry: \"http://{}\"\n", reg.host())
}

// ---------------------------------------------------------------------------
// The image-transmit job, end to end

/// An image-transmit cfg.yaml with an authenticated source and an
/// authenticated HTTPS target with its own CA and a `repository:` rewrite,
/// driven by image-transmit's command line; digests checked at the target with
/// skopeo (TLS verified against the CA); no password anywhere.
#[test]
fn image_transmit_job_from_authenticated_source_to_https_target_with_ca() {
    let (src, dst) = std::thread::scope(|s| {
        let src = s.spawn(|| Registry::start_with_htpasswd(SRC_USER, SRC_PW));
        let dst = s.spawn(|| TlsRegistry::start(Some((DST_USER, DST_PW))));
        (src.join().unwrap(), dst.join().unwrap())
    });
    let app = push_image(
        &src,
        "xxxx/app",
        "1",
        Format::Docker,
        &[
            layer("batch-e2e-base", 24 * 1024),
            layer("batch-e2e-app", 8 * 1024),
        ],
        "batch-e2e-app",
        false,
    );
    let tool = push_index(
        &src,
        "xxxx/sub/tool",
        "2",
        Format::Oci,
        &[
            ("linux/amd64", vec![layer("batch-e2e-tool-amd64", 8 * 1024)]),
            ("linux/arm64", vec![layer("batch-e2e-tool-arm64", 8 * 1024)]),
        ],
    );

    let work = Work::new();
    // Decoys first: names pick the entries, not their order.
    let cfg = work.write(
        "cfg.yaml",
        &format!(
            "# image-transmit batch job\n\
             source:\n\
             - registry: \"http://127.0.0.1:1\"\n  user:\n  password:\n  name: decoy\n\
             - registry: \"http://{src}\"\n  user: {SRC_USER}\n  password: \"${{FERRY_BATCH_SRC_PW}}\"\n  name: hq\n\
             target:\n\
             - registry: \"http://127.0.0.1:1\"\n  name: decoy\n\
             - registry: \"https://{dst}\"\n  user: {DST_USER}\n  password: \"{DST_PW}\"\n  repository: yyyy\n  ca: {ca}\n\
             maxconn: 4\n\
             retries: 1\n\
             singlefile: false\n\
             compressor: tar\n\
             lang: en_US\n\
             outprefix: nightly\n",
            src = src.host(),
            dst = dst.host(),
            ca = path_str(dst.ca_pem()),
        ),
    );
    work.write(
        "images.lst",
        "# nightly\n\nxxxx/app:1\n  xxxx/sub/tool:2  \n",
    );
    let env = [("FERRY_BATCH_SRC_PW", SRC_PW)];

    let days_before = today();
    let save = work.ferry_env(&["-src=hq", "-lst=images.lst", "-out=team", "-v"], &env);
    save.assert_ok();
    let days = vec![days_before, today()];
    let meta_path = work.meta_of(&save);
    // -out=team is the file prefix (it overrides cfg outprefix).
    assert_legacy_bundle_path(work.path(), &meta_path, "team", &days);

    let meta = load_meta(&meta_path);
    let got: BTreeSet<(String, String, Option<String>, String)> = meta
        .images
        .iter()
        .map(|i| {
            (
                i.registry.clone(),
                i.repository.clone(),
                i.tag.clone(),
                i.digest.to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, Option<String>, String)> = [
        (
            src.host(),
            "xxxx/app".to_string(),
            Some("1".to_string()),
            app.digest.clone(),
        ),
        (
            src.host(),
            "xxxx/sub/tool".to_string(),
            Some("2".to_string()),
            tool.digest.clone(),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "images recorded in {meta_path:?}");
    assert!(meta.failed.is_empty(), "failed: {:?}", meta.failed);

    // An unnamed target is named host-repository.
    let target_name = format!("{}-yyyy", dst.host());
    let img = format!("-img={}", path_str(&meta_path));
    work.ferry_env(&[&format!("-dst={target_name}"), &img, "-v"], &env)
        .assert_ok();

    // At the target: yyyy/IMAGE:TAG, exact bytes, over verified TLS.
    assert_eq!(
        dst.inspect_raw(&dst.reference("yyyy/app", "1")).unwrap(),
        app.manifest,
        "yyyy/app:1 at the target"
    );
    assert_eq!(
        dst.inspect_raw(&dst.reference("yyyy/tool", "2")).unwrap(),
        tool.manifest,
        "yyyy/tool:2 at the target"
    );
    for child in &tool.children {
        let by_digest = format!("{}/yyyy/tool@{}", dst.host(), child.digest);
        assert_eq!(dst.inspect_raw(&by_digest).unwrap(), child.manifest);
    }
    assert!(
        dst.inspect_raw(&dst.reference("xxxx/app", "1")).is_err(),
        "the source path was kept at the target despite `repository: yyyy`"
    );

    // Again, with the config found in ./data/cfg.yaml and at normal
    // verbosity: everything is there already and nothing fails.
    fs::rename(&cfg, work.path().join("data/cfg.yaml")).unwrap();
    work.ferry_env(&[&format!("-dst={target_name}"), &img], &env)
        .assert_ok();

    assert_no_secrets(
        &work.transcript(),
        &[work.path()],
        &[&work.path().join("data/cfg.yaml")],
        &[(SRC_USER, SRC_PW), (DST_USER, DST_PW)],
    );
}

/// The same HTTPS upload without `ca:` is refused, names `ca`/`insecure`, and
/// pushes nothing; `insecure: true` is the explicit way around it.
#[test]
fn https_target_without_ca_is_refused() {
    let (src, dst) = std::thread::scope(|s| {
        let src = s.spawn(Registry::start);
        let dst = s.spawn(|| TlsRegistry::start(Some((DST_USER, DST_PW))));
        (src.join().unwrap(), dst.join().unwrap())
    });
    let app = push_image(
        &src,
        "xxxx/app",
        "1",
        Format::Oci,
        &[layer("batch-noca-app", 8 * 1024)],
        "batch-noca-app",
        false,
    );
    let work = Work::new();
    let cfg = |extra: &str| {
        format!(
            "source:\n{}  name: hq\n\
             target:\n- registry: \"https://{}\"\n  user: {DST_USER}\n  password: \"{DST_PW}\"\n  name: site\n{extra}\
             retries: 0\n",
            http_entry(&src),
            dst.host()
        )
    };
    work.write("cfg.yaml", &cfg(""));
    work.write("images.lst", "xxxx/app:1\n");
    let save = work.ferry(&["-src=hq", "-lst=images.lst"]);
    save.assert_ok();
    let meta_path = work.meta_of(&save);
    let img = format!("-img={}", path_str(&meta_path));

    let refused = work.ferry(&["-dst=site", &img]);
    refused
        .assert_failed()
        .assert_stderr_has(&["ca:", "insecure"]);
    assert!(
        dst.inspect_raw(&dst.reference("xxxx/app", "1")).is_err(),
        "something was pushed over an unverified connection"
    );

    work.write("cfg.yaml", &cfg("  insecure: true\n"));
    work.ferry(&["-dst=site", &img]).assert_ok();
    assert_eq!(
        dst.inspect_raw(&dst.reference("xxxx/app", "1")).unwrap(),
        app.manifest
    );
    assert_no_secrets(
        &work.transcript(),
        &[work.path()],
        &[&work.path().join("cfg.yaml")],
        &[(DST_USER, DST_PW)],
    );
}

// ---------------------------------------------------------------------------
// Lists

/// `ferry -src=NAME` without `-lst` reads the list from stdin; lines are
/// relative to the chosen source, and a full reference naming another host is
/// fetched from the chosen source with a note. Without `--src`, the first
/// source is used. Keys ferry does not support yet are reported.
#[test]
fn lists_from_stdin_are_relative_to_the_chosen_source() {
    let src = Registry::start();
    let app = push_image(
        &src,
        "team/app",
        "1",
        Format::Docker,
        &[layer("batch-stdin-app", 8 * 1024)],
        "batch-stdin-app",
        false,
    );
    let base = push_image(
        &src,
        "lib/base",
        "2",
        Format::Oci,
        &[layer("batch-stdin-base", 8 * 1024)],
        "batch-stdin-base",
        false,
    );
    let work = Work::new();
    work.write(
        "cfg.yaml",
        &format!(
            "source:\n{}\
             - registry: \"http://127.0.0.1:1\"\n  name: other\n\
             interval: 60\n\
             cache:\n  pathname: cache\n  keepdays: 7\n  keepsize: 10\n\
             dockerfile: true\n\
             keeptemp: true\n\
             dingtalk:\n- token: t0k3n\n  secret: s3cr3t\n",
            http_entry(&src)
        ),
    );
    // An unnamed source is named after its host.
    let save = work.ferry_stdin(
        &[&format!("-src={}", src.host())],
        "team/app:1\n# a comment\n\nregistry.example.com:5000/lib/base:2\n",
    );
    save.assert_ok().assert_stderr_has(&[
        "registry.example.com:5000",
        "dockerfile",
        "keeptemp",
        "not supported",
    ]);
    assert!(
        !work.transcript().contains("s3cr3t"),
        "the dingtalk secret was printed"
    );
    let meta = load_meta(&work.meta_of(&save));
    let got: BTreeSet<(String, String)> = meta
        .images
        .iter()
        .map(|i| (i.repository.clone(), i.digest.to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("team/app".to_string(), app.digest.clone()),
        ("lib/base".to_string(), base.digest.clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    assert!(meta.images.iter().all(|i| i.registry == src.host()));

    // ferry save without --src: the first source; the list on stdin.
    let save = work.ferry_stdin(&["save", "--out", "out2"], "lib/base:2\n");
    save.assert_ok();
    let meta = load_meta(&work.meta_of(&save));
    assert_eq!(meta.images.len(), 1);
    assert_eq!(meta.images[0].digest.to_string(), base.digest);
    assert!(work.meta_of(&save).starts_with(work.path().join("out2")));
}

/// `SOURCE -> TARGET` list lines rename: recorded in the meta as `target:`,
/// applied on upload.
#[test]
fn renames_with_arrows_are_applied_on_upload() {
    let (src, dst) = std::thread::scope(|s| {
        let src = s.spawn(Registry::start);
        let dst = s.spawn(Registry::start);
        (src.join().unwrap(), dst.join().unwrap())
    });
    let app = push_image(
        &src,
        "team/app",
        "1",
        Format::Docker,
        &[layer("batch-rename-app", 8 * 1024)],
        "batch-rename-app",
        false,
    );
    let base = push_image(
        &src,
        "lib/base",
        "2",
        Format::Oci,
        &[layer("batch-rename-base", 8 * 1024)],
        "batch-rename-base",
        false,
    );
    let work = Work::new();
    work.write(
        "cfg.yaml",
        &format!(
            "source:\n{}  name: hq\ntarget:\n{}  name: site\n",
            http_entry(&src),
            http_entry(&dst)
        ),
    );
    work.write("images.lst", "team/app:1 -> renamed/web:2.0\nlib/base:2\n");
    let save = work.ferry(&["-src=hq", "-lst=images.lst", "-opt=singlefile=true"]);
    save.assert_ok();
    let meta_path = work.meta_of(&save);
    assert_eq!(data_files(&meta_path).len(), 1, "-opt=singlefile=true");
    let meta = load_meta(&meta_path);
    let renamed = meta
        .images
        .iter()
        .find(|i| i.repository == "team/app")
        .expect("team/app in the meta");
    assert_eq!(renamed.digest.to_string(), app.digest);
    assert_eq!(renamed.target.as_deref(), Some("renamed/web:2.0"));
    let kept = meta
        .images
        .iter()
        .find(|i| i.repository == "lib/base")
        .expect("lib/base in the meta");
    assert_eq!(kept.target, None);

    work.ferry(&["-dst=site", &format!("-img={}", path_str(&meta_path))])
        .assert_ok();
    assert_eq!(
        skopeo_inspect_raw(&dst.reference("renamed/web", "2.0")),
        app.manifest
    );
    assert_eq!(
        skopeo_inspect_raw(&dst.reference("lib/base", "2")),
        base.manifest
    );
    assert!(
        dst.tags("team/app").is_empty(),
        "the renamed image was also pushed under its source name"
    );
}

// ---------------------------------------------------------------------------
// Credentials

/// `${VAR}` in a password takes the environment's value; an unset variable is
/// an error naming it and the file, before anything is written.
#[test]
fn passwords_come_from_environment_variables() {
    let src = Registry::start_with_htpasswd(SRC_USER, SRC_PW);
    let app = push_image(
        &src,
        "env/app",
        "1",
        Format::Oci,
        &[layer("batch-env-app", 8 * 1024)],
        "batch-env-app",
        false,
    );
    let work = Work::new();
    // The password is "Src-" followed by the variable's value.
    let rest = SRC_PW.strip_prefix("Src-").unwrap();
    work.write(
        "cfg.yaml",
        &format!(
            "source:\n- registry: \"http://{}\"\n  user: \"${{FERRY_BATCH_USER}}\"\n  password: \"Src-${{FERRY_BATCH_PW}}\"\n  name: hq\n",
            src.host()
        ),
    );
    work.write("images.lst", "env/app:1\n");

    let missing = work.ferry_env(
        &["-src=hq", "-lst=images.lst"],
        &[("FERRY_BATCH_USER", SRC_USER)],
    );
    missing
        .assert_failed()
        .assert_stderr_has(&["FERRY_BATCH_PW", "cfg.yaml"]);
    assert!(
        files_under(&work.path().join("data")).is_empty(),
        "a failed cfg left files behind"
    );

    // The value is really used: with a wrong one, the registry refuses.
    let wrong = work.ferry_env(
        &["-src=hq", "-lst=images.lst"],
        &[("FERRY_BATCH_USER", SRC_USER), ("FERRY_BATCH_PW", "nope")],
    );
    wrong.assert_code(1);

    let save = work.ferry_env(
        &["-src=hq", "-lst=images.lst"],
        &[("FERRY_BATCH_USER", SRC_USER), ("FERRY_BATCH_PW", rest)],
    );
    save.assert_ok();
    let meta = load_meta(&work.meta_of(&save));
    assert_eq!(meta.images.len(), 1);
    assert_eq!(meta.images[0].digest.to_string(), app.digest);
    assert_no_secrets(
        &work.transcript(),
        &[work.path()],
        &[],
        &[(SRC_USER, SRC_PW), (SRC_USER, "Src-nope")],
    );
}

/// `ferry login` checks the credentials and writes docker's config.json,
/// which skopeo can use and ferry reads when cfg.yaml has no credentials;
/// `ferry logout` removes them.
#[test]
fn login_and_logout_share_docker_config_json() {
    let reg = Registry::start_with_htpasswd(SRC_USER, SRC_PW);
    let app = push_image(
        &reg,
        "priv/app",
        "1",
        Format::Docker,
        &[layer("batch-login-app", 8 * 1024)],
        "batch-login-app",
        false,
    );
    let work = Work::new();
    let config_json = work.docker_config().join("config.json");
    let host = reg.host();
    let authfile = format!("--authfile={}", path_str(&config_json));
    let reference = docker_ref(&reg.reference("priv/app", "1"));
    let skopeo_with_authfile = || {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &authfile,
            &reference,
        ])
    };

    // A wrong password is refused and stores nothing.
    let wrong = work.ferry_stdin(
        &["login", &host, "-u", SRC_USER, "--password-stdin"],
        "Wrong-Password-123\n",
    );
    wrong.assert_failed().assert_stderr_has(&[&host]);
    let stored = fs::read_to_string(&config_json).unwrap_or_default();
    assert!(
        !stored.contains(&host),
        "a refused login was stored: {stored}"
    );

    work.ferry_stdin(
        &["login", &host, "-u", SRC_USER, "--password-stdin"],
        &format!("{SRC_PW}\n"),
    )
    .assert_ok();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config_json).unwrap()).unwrap();
    let auth = json["auths"][&host]["auth"]
        .as_str()
        .unwrap_or_else(|| panic!("no auths.{host}.auth in {json}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .expect("auth is base64");
    assert_eq!(decoded, format!("{SRC_USER}:{SRC_PW}").as_bytes());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&config_json).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode & 0o077,
            0,
            "config.json is readable by others: {mode:o}"
        );
    }

    // skopeo uses the same file (and needs it: the registry wants auth).
    assert!(
        try_skopeo_inspect_raw(&reg.reference("priv/app", "1"), None).is_err(),
        "the registry does not require auth"
    );
    assert_eq!(skopeo_with_authfile().unwrap(), app.manifest);

    // ferry reads config.json: with a plain reference...
    let save = work.ferry(&["save", &reg.reference("priv/app", "1"), "--out", "a"]);
    save.assert_ok();
    assert_eq!(
        load_meta(&work.meta_of(&save)).images[0].digest.to_string(),
        app.digest
    );
    // ...and for a cfg.yaml source without credentials.
    work.write(
        "cfg.yaml",
        &format!(
            "source:\n{}  user:\n  password:\n  name: hq\n",
            http_entry(&reg)
        ),
    );
    work.write("images.lst", "priv/app:1\n");
    let save = work.ferry(&["-src=hq", "-lst=images.lst"]);
    save.assert_ok();
    assert_eq!(
        load_meta(&work.meta_of(&save)).images[0].digest.to_string(),
        app.digest
    );

    work.ferry(&["logout", &host]).assert_ok();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&config_json).unwrap()).unwrap();
    assert!(
        json["auths"].get(&host).is_none(),
        "logout left the credentials: {json}"
    );
    assert!(skopeo_with_authfile().is_err(), "skopeo still logged in");
    let denied = work.ferry(&["save", &reg.reference("priv/app", "1"), "--out", "b"]);
    denied.assert_code(1).assert_stderr_has(&["priv/app"]);

    assert_no_secrets(
        &work.transcript(),
        &[work.path()],
        &[],
        &[(SRC_USER, SRC_PW), (SRC_USER, "Wrong-Password-123")],
    );
}

// ---------------------------------------------------------------------------
// Platforms

/// `--platform linux/arm64` on an OCI index saves that platform's manifest
/// alone (the meta's digest is the child's, the target's tag points at it);
/// cfg `platform:` does the same; a platform the index lacks fails that image
/// with a reason.
/// `ferry logout` removes the login from every file ferry reads logins from:
/// docker's config.json and the containers auth.json files that skopeo and podman
/// write (`$REGISTRY_AUTH_FILE`, `$XDG_CONFIG_HOME/containers/auth.json`), whatever
/// the key's scheme; other registries' logins stay, and no older login is left to
/// take over.
#[test]
fn logout_removes_the_login_from_containers_auth_files_too() {
    let work = Work::new();
    let host = "127.0.0.1:5999";
    let other = "registry.example:5000";
    let entry =
        serde_json::json!({ "auth": base64::engine::general_purpose::STANDARD.encode("u:pw") });
    let runtime_auth = work.write(
        "run/containers/auth.json",
        &serde_json::json!({ "auths": { host: entry, other: entry } }).to_string(),
    );
    let config_auth = work.write(
        "xdg/containers/auth.json",
        &serde_json::json!({ "auths": { format!("https://{host}"): entry, other: entry } })
            .to_string(),
    );
    let env = [
        ("REGISTRY_AUTH_FILE", path_str(&runtime_auth).to_string()),
        (
            "XDG_CONFIG_HOME",
            path_str(&work.path().join("xdg")).to_string(),
        ),
    ];
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = work.command(args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        if let Some(input) = stdin {
            cmd.stdin(input);
        }
        work.run(&mut cmd)
    };
    run(
        &["login", host, "-u", "u", "--password-stdin", "--no-check"],
        Some("pw\n"),
    )
    .assert_ok();
    let config_json = work.docker_config().join("config.json");
    let hosts = |file: &Path| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(file).unwrap()).unwrap();
        v["auths"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(hosts(&config_json), vec![host.to_string()]);

    let out = run(&["logout", host], None);
    out.assert_ok().assert_stderr_has(&[
        path_str(&config_json),
        path_str(&runtime_auth),
        path_str(&config_auth),
    ]);
    assert!(hosts(&config_json).is_empty(), "{out}");
    assert_eq!(hosts(&runtime_auth), vec![other.to_string()], "{out}");
    assert_eq!(hosts(&config_auth), vec![other.to_string()], "{out}");
    run(&["logout", host], None)
        .assert_ok()
        .assert_stderr_has(&["no stored credentials"]);
}

#[test]
fn one_platform_of_an_oci_index() {
    let (src, dst) = std::thread::scope(|s| {
        let src = s.spawn(Registry::start);
        let dst = s.spawn(Registry::start);
        (src.join().unwrap(), dst.join().unwrap())
    });
    let index = push_index(
        &src,
        "multi/idx",
        "v1",
        Format::Oci,
        &[
            (
                "linux/amd64",
                vec![layer("batch-platform-amd64", 16 * 1024)],
            ),
            (
                "linux/arm64",
                vec![layer("batch-platform-arm64", 16 * 1024)],
            ),
        ],
    );
    let arm = index
        .children
        .iter()
        .find(|c| c.platform.as_deref() == Some("linux/arm64"))
        .unwrap();
    let amd = index
        .children
        .iter()
        .find(|c| c.platform.as_deref() == Some("linux/amd64"))
        .unwrap();
    let reference = src.reference("multi/idx", "v1");
    let work = Work::new();

    let check = |meta_path: &Path| {
        let meta = load_meta(meta_path);
        assert_eq!(meta.platforms, vec!["linux/arm64".to_string()]);
        assert_eq!(meta.images.len(), 1);
        let img = &meta.images[0];
        assert_eq!(img.digest.to_string(), arm.digest, "meta image digest");
        assert_eq!(img.media_type, media_types::OCI_MANIFEST);
        let blobs: BTreeSet<String> = meta.blobs.iter().map(|b| b.digest.to_string()).collect();
        for b in &arm.blobs {
            assert!(blobs.contains(&b.digest), "arm64 blob {} missing", b.digest);
        }
        for b in &amd.blobs {
            assert!(!blobs.contains(&b.digest), "amd64 blob {} saved", b.digest);
        }
        assert!(!blobs.contains(&index.digest), "the index was saved");
        assert!(!blobs.contains(&amd.digest), "the amd64 manifest was saved");
    };

    let save = work.ferry(&[
        "save",
        "--platform",
        "linux/arm64",
        &reference,
        "--out",
        "a",
    ]);
    save.assert_ok();
    let meta_path = work.meta_of(&save);
    check(&meta_path);

    work.ferry(&["upload", path_str(&meta_path), "--dst", &dst.host()])
        .assert_ok();
    assert_eq!(
        skopeo_inspect_raw(&dst.reference("multi/idx", "v1")),
        arm.manifest,
        "the target tag does not point at the arm64 manifest"
    );

    // cfg.yaml `platform:`.
    work.write("cfg.yaml", "platform: linux/arm64\n");
    let save = work.ferry(&["save", &reference, "--out", "b"]);
    save.assert_ok();
    check(&work.meta_of(&save));

    // No such platform in the index: that image fails, with why; with nothing
    // left to save, no bundle is written and no meta path printed.
    let none = work.ferry(&[
        "save",
        "--platform",
        "linux/s390x",
        &reference,
        "--out",
        "c",
    ]);
    none.assert_code(1)
        .assert_stderr_has(&["multi/idx", "linux/s390x", "no bundle was written"]);
    assert!(none.stdout.trim().is_empty(), "{}", none.to_string());
}

// ---------------------------------------------------------------------------
// Data file sizes

/// `--max-file-size`: no data file exceeds it, as many files as needed; a
/// blob larger than the cap is an error naming it before any download, with
/// no bundle. cfg `singlefile: true` gives one data file; `--opt` overrides.
#[test]
fn max_file_size_caps_every_data_file() {
    let (src, dst) = std::thread::scope(|s| {
        let src = s.spawn(Registry::start);
        let dst = s.spawn(Registry::start);
        (src.join().unwrap(), dst.join().unwrap())
    });
    let layers: Vec<Vec<u8>> = [120, 140, 160, 180]
        .iter()
        .map(|k| layer(&format!("batch-maxsize-{k}"), k * 1024))
        .collect();
    let largest = sha256_digest(&layers[3]);
    let app = push_image(
        &src,
        "big/app",
        "1",
        Format::Oci,
        &layers,
        "batch-maxsize",
        false,
    );
    let reference = src.reference("big/app", "1");
    let work = Work::new();
    const CAP: u64 = 256 * 1024;

    let save = work.ferry(&["save", &reference, "--max-file-size", "256K", "--out", "a"]);
    save.assert_ok();
    let meta_path = work.meta_of(&save);
    let files = data_files(&meta_path);
    let total: u64 = app.blobs.iter().map(|b| b.size).sum();
    assert!(
        files.len() as u64 >= total.div_ceil(CAP),
        "{} data files cannot hold {total} bytes under {CAP}",
        files.len()
    );
    for (p, size) in &files {
        assert!(*size <= CAP, "{p:?} is {size} bytes, over the {CAP} cap");
    }
    work.ferry(&["verify", path_str(&meta_path)]).assert_ok();
    work.ferry(&["upload", path_str(&meta_path), "--dst", &dst.host()])
        .assert_ok();
    assert_eq!(
        skopeo_inspect_raw(&dst.reference("big/app", "1")),
        app.manifest
    );

    // A blob larger than the cap: refused up front, naming the blob.
    let refused = work.ferry(&["save", &reference, "--max-file-size", "100K", "--out", "b"]);
    refused.assert_failed().assert_stderr_has(&[&largest]);
    assert!(
        files_under(&work.path().join("b")).is_empty(),
        "files left behind: {:?}",
        files_under(&work.path().join("b"))
    );

    // cfg singlefile: one data file; --opt overrides cfg keys for one run.
    work.write("cfg.yaml", "singlefile: true\nfiles: 3\n");
    let save = work.ferry(&["save", &reference, "--out", "c"]);
    save.assert_ok();
    assert_eq!(
        data_files(&work.meta_of(&save)).len(),
        1,
        "singlefile: true"
    );
    let save = work.ferry(&[
        "save",
        &reference,
        "--out",
        "d",
        "--opt",
        "maxfilesize=256K",
    ]);
    save.assert_ok();
    let files = data_files(&work.meta_of(&save));
    assert!(
        files.len() >= 3,
        "maxfilesize=256K gave {} files",
        files.len()
    );
    assert!(files.iter().all(|(_, s)| *s <= CAP), "{files:?}");
}

// ---------------------------------------------------------------------------
// Bad configuration

/// Unknown keys, wrong types, unknown `-src`/`-dst` names and bad `--opt`
/// keys are errors that name the key, the name or the file; which cfg file is
/// read: `--config`, else ./cfg.yaml, else ./data/cfg.yaml.
#[test]
fn bad_cfg_files_give_clear_errors() {
    let work = Work::new();
    work.write("images.lst", "team/app:1\n");
    let save = ["-src=a", "-lst=images.lst"];

    // Unknown key at the top level, and inside a registry entry.
    work.write(
        "cfg.yaml",
        "source:\n- registry: http://127.0.0.1:1\n  name: a\nmaxconns: 3\n",
    );
    work.ferry(&save)
        .assert_failed()
        .assert_stderr_has(&["maxconns", "cfg.yaml"]);
    work.write(
        "cfg.yaml",
        "source:\n- registry: http://127.0.0.1:1\n  name: a\n  passwd: x\n",
    );
    work.ferry(&save)
        .assert_failed()
        .assert_stderr_has(&["passwd", "cfg.yaml"]);

    // Wrong types.
    for bad in [
        "maxconn: lots\n",
        "singlefile: maybe\n",
        "source: http://x\n",
    ] {
        work.write(
            "cfg.yaml",
            &format!("target:\n- registry: http://127.0.0.1:1\n  name: a\n{bad}"),
        );
        let r = work.ferry(&save);
        r.assert_failed().assert_stderr_has(&["cfg.yaml"]);
        assert!(
            !r.stderr.contains("no source registry named"),
            "{bad:?} was accepted: {r}"
        );
    }

    // Names no registry has.
    work.write(
        "cfg.yaml",
        "source:\n- registry: http://127.0.0.1:1\n  name: a\n- registry: http://127.0.0.1:2\n  name: b\n\
         target:\n- registry: http://127.0.0.1:3\n  name: site\n",
    );
    work.ferry(&["-src=nope", "-lst=images.lst"])
        .assert_failed()
        .assert_stderr_has(&["nope", "cfg.yaml", "a, b"]);

    // --opt keys are checked.
    work.ferry(&["-src=a", "-lst=images.lst", "-opt=bogus=1"])
        .assert_failed()
        .assert_stderr_has(&["bogus"]);
    work.ferry(&["-src=a", "-lst=images.lst", "-opt=maxconn=many"])
        .assert_failed()
        .assert_stderr_has(&["maxconn"]);

    // Which file is read: names tell them apart.
    let names = |n: &str| format!("source:\n- registry: http://127.0.0.1:1\n  name: {n}\n");
    work.write("cfg.yaml", &names("here"));
    work.write("data/cfg.yaml", &names("indata"));
    work.write("other.yaml", &names("other"));
    work.ferry(&["-src=indata", "-lst=images.lst"])
        .assert_failed()
        .assert_stderr_has(&["indata", "here"]);
    work.ferry(&["-src=here", "-lst=images.lst", "--config", "other.yaml"])
        .assert_failed()
        .assert_stderr_has(&["here", "other.yaml"]);
    fs::remove_file(work.path().join("cfg.yaml")).unwrap();
    work.write("data/cfg.yaml", "source: []\nbogus_key: 1\n");
    work.ferry(&["-src=here", "-lst=images.lst"])
        .assert_failed()
        .assert_stderr_has(&["bogus_key", "data/cfg.yaml"]);

    // No cfg at all: -src names nothing.
    fs::remove_file(work.path().join("data/cfg.yaml")).unwrap();
    work.ferry(&save)
        .assert_failed()
        .assert_stderr_has(&["cfg.yaml"]);
}

// ---------------------------------------------------------------------------
// Shell completions

#[test]
fn completions_for_bash_zsh_and_fish() {
    let work = Work::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = work.ferry(&["completions", shell]);
        r.assert_ok();
        for word in ["ferry", "upload", "max-file-size", "platform"] {
            assert!(r.stdout.contains(word), "{shell} script lacks {word:?}");
        }
    }
    work.ferry(&["completions", "tcsh"]).assert_failed();
}

/// `-dst=NAME` naming no target of cfg.yaml: the error says so, naming the
/// file and the targets it has, as `-src=NAME` does.
#[test]
fn unknown_dst_name_names_the_cfg_targets() {
    let work = Work::new();
    let meta = work.write("m_meta.yaml", "format: ferry-bundle\n");
    work.write(
        "cfg.yaml",
        "target:\n- registry: http://127.0.0.1:3\n  name: site\n- registry: http://127.0.0.1:4\n  name: dr\n",
    );
    let img = format!("-img={}", path_str(&meta));
    work.ferry(&["-dst=nope", &img])
        .assert_failed()
        .assert_stderr_has(&["nope", "cfg.yaml", "site, dr"]);
    // A name with a dot is no less a name.
    work.ferry(&["-dst=gz.prod", &img])
        .assert_failed()
        .assert_stderr_has(&["gz.prod", "cfg.yaml", "site, dr"]);
}

/// On the upload side of the air gap, the source's `${VAR}` is not set: a
/// cfg.yaml shared by both sides must still upload (only the registries a
/// command uses need their variables).
#[test]
fn upload_does_not_need_the_source_password_variable() {
    let (src, dst) = std::thread::scope(|s| {
        let src = s.spawn(Registry::start);
        let dst = s.spawn(Registry::start);
        (src.join().unwrap(), dst.join().unwrap())
    });
    let app = push_image(
        &src,
        "team/app",
        "1",
        Format::Oci,
        &[layer("batch-lazyvar-app", 8 * 1024)],
        "batch-lazyvar-app",
        false,
    );
    let work = Work::new();
    // The (anonymous) source ignores the credentials it is given.
    work.write(
        "cfg.yaml",
        &format!(
            "source:\n{}  user: robot\n  password: \"${{FERRY_BATCH_LAZY_PW}}\"\n  name: hq\n\
             target:\n{}  name: site\n",
            http_entry(&src),
            http_entry(&dst)
        ),
    );
    work.write("images.lst", "team/app:1\n");
    let save = work.ferry_env(
        &["-src=hq", "-lst=images.lst"],
        &[("FERRY_BATCH_LAZY_PW", "x")],
    );
    save.assert_ok();
    let img = format!("-img={}", path_str(&work.meta_of(&save)));
    work.ferry(&["-dst=site", &img]).assert_ok();
    assert_eq!(
        skopeo_inspect_raw(&dst.reference("team/app", "1")),
        app.manifest
    );
}

/// A certificate the client does not trust will not become trusted by
/// asking again: it is not retried like a transient network error.
#[test]
fn untrusted_certificate_is_not_retried() {
    let (src, dst) = std::thread::scope(|s| {
        let src = s.spawn(Registry::start);
        let dst = s.spawn(|| TlsRegistry::start(None));
        (src.join().unwrap(), dst.join().unwrap())
    });
    push_image(
        &src,
        "xxxx/app",
        "1",
        Format::Oci,
        &[layer("batch-noretry-app", 8 * 1024)],
        "batch-noretry-app",
        false,
    );
    let work = Work::new();
    work.write(
        "cfg.yaml",
        &format!(
            "source:\n{}  name: hq\ntarget:\n- registry: \"https://{}\"\n  name: site\nretries: 2\n",
            http_entry(&src),
            dst.host()
        ),
    );
    work.write("images.lst", "xxxx/app:1\n");
    let save = work.ferry(&["-src=hq", "-lst=images.lst"]);
    save.assert_ok();
    let img = format!("-img={}", path_str(&work.meta_of(&save)));
    let refused = work.ferry(&["-dst=site", &img]);
    refused
        .assert_failed()
        .assert_stderr_has(&["ca:", "insecure"]);
    assert!(
        !refused.stderr.contains("retrying"),
        "a certificate error was retried: {refused}"
    );
}

/// Two cfg entries for one registry host (a read robot as source, a push
/// robot as target): each name uses its own credentials.
#[test]
fn entries_for_the_same_host_keep_their_own_credentials() {
    let src = Registry::start_with_htpasswd(SRC_USER, SRC_PW);
    let app = push_image(
        &src,
        "team/app",
        "1",
        Format::Oci,
        &[layer("batch-samehost-app", 8 * 1024)],
        "batch-samehost-app",
        false,
    );
    let work = Work::new();
    work.write(
        "cfg.yaml",
        &format!(
            "source:\n{e}  user: {SRC_USER}\n  password: \"{SRC_PW}\"\n  name: hq\n\
             target:\n{e}  user: pusher\n  password: \"stale-password\"\n  name: mirror\n",
            e = http_entry(&src)
        ),
    );
    work.write("images.lst", "team/app:1\n");
    let save = work.ferry(&["-src=hq", "-lst=images.lst"]);
    save.assert_ok();
    assert_eq!(
        load_meta(&work.meta_of(&save)).images[0].digest.to_string(),
        app.digest
    );
}

/// Docker Hub logins live under docker's own key (`https://index.docker.io/v1/`),
/// so `docker`, skopeo and ferry find each other's; logout removes that entry too.
#[test]
fn docker_hub_logins_use_dockers_key() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.json");
    ferry()
        .env("DOCKER_CONFIG", home.path())
        .args([
            "login",
            "docker.io",
            "-u",
            "hubuser",
            "--password-stdin",
            "--no-check",
        ])
        .write_stdin("hubpass\n")
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(
        v["auths"]["https://index.docker.io/v1/"]["auth"].is_string(),
        "{v}"
    );
    assert!(v["auths"].get("docker.io").is_none(), "{v}");
    ferry()
        .env("DOCKER_CONFIG", home.path())
        .args(["logout", "docker.io"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(v["auths"], serde_json::json!({}), "{v}");
}
