//! A tampered bundle or a lying registry gets a clear error, never a foothold
//! (#16): each test performs the attack against real registries and checks that
//! ferry refuses it, exits 1 (not a panic, not a hang) and touches nothing.

use crate::common::*;
use ferry::bundle::meta::Meta;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// No command here may run longer: the attacks used to loop forever.
const LIMIT: Duration = Duration::from_secs(120);

fn run(args: &[&str]) -> Output {
    FerryCmd::new().args(args).timeout(LIMIT).output()
}

fn stderr(o: &Output) -> String {
    o.stderr.clone()
}

fn stdout(o: &Output) -> String {
    o.stdout.clone()
}

/// Exit status 1 with `needle` in stderr: a refusal, not a crash (101) or a kill.
fn assert_refused(o: &Output, what: &str, needle: &str) {
    assert_eq!(o.code, Some(1), "{what}: expected exit 1: {o}");
    assert!(
        o.stderr.contains(needle),
        "{what}: stderr does not say {needle:?}: {o}"
    );
}

fn save(refs: &[&str], out: &Path, extra: &[&str]) -> PathBuf {
    save_bundle(refs, out, extra)
}

fn load(meta: &Path) -> Meta {
    Meta::load(meta).unwrap().0
}

fn edit(meta: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(meta).unwrap();
    let edited = f(text.clone());
    assert_ne!(edited, text, "the edit changed nothing");
    std::fs::write(meta, edited).unwrap();
}

fn two_layer_image(reg: &Registry, repo: &str) -> PushedImage {
    push_image(
        reg,
        repo,
        "1",
        Format::Oci,
        &[
            layer(&format!("{repo}-a"), 60_000),
            layer(&format!("{repo}-b"), 30_000),
        ],
        repo,
        false,
    )
}

/// Every command that reads a bundle refuses it with `needle`, and nothing
/// reaches the target.
fn every_reader_refuses(meta: &Path, dst: &Registry, needle: &str, levels: &[&str]) {
    let m = meta.to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let oci = work.path().join("oci");
    for level in levels {
        let o = match *level {
            "size" => run(&["verify", "--size-only", m]),
            _ => run(&["verify", m]),
        };
        assert_refused(&o, &format!("verify ({level})"), needle);
        let o = run(&["upload", m, "--dst", &dst.host(), "--verify", level]);
        assert_refused(&o, &format!("upload --verify {level}"), needle);
    }
    let o = run(&["export", m, "--oci", oci.to_str().unwrap()]);
    assert_refused(&o, "export", needle);
    // serve checks the bundle before it listens; a serve that started would run
    // until the time limit and be killed (no exit code).
    let o = run(&["serve", m, "--listen", "127.0.0.1:0"]);
    assert_refused(&o, "serve", needle);
    assert!(dst.catalog().is_empty(), "pushed: {:?}", dst.catalog());
}

/// #16.3: a tar header whose size field says near 2^64 wrapped the offset
/// arithmetic; the size-only scans (verify, upload, serve, export) looped forever.
#[test]
fn a_forged_tar_size_is_refused_by_every_reader() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = two_layer_image(&src, "forge/size");
    let out = tempfile::tempdir().unwrap();
    let meta = save(&[&img.reference], out.path(), &["--files", "1"]);
    let data = meta.parent().unwrap().join(&load(&meta).files[0].name);
    let mut bytes = std::fs::read(&data).unwrap();
    // Base-256 size field 2^64 - 512: with the data offset, exactly a wrap to 0.
    let header = &mut bytes[..512];
    header[124..136].fill(0);
    header[124] = 0x80;
    header[128..136].copy_from_slice(&(u64::MAX - 511).to_be_bytes());
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    std::fs::write(&data, &bytes).unwrap();

    every_reader_refuses(&meta, &dst, "past the end", &["size"]);
    // A full check reads the file and fails on it too.
    let o = run(&["verify", meta.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{}", stderr(&o));
    let o = run(&["ls", meta.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "ls still lists: {}", stderr(&o));
}

/// #16.4: names from a meta became registry paths: `../../` in a repository left
/// the `--dst HOST/NAMESPACE` prefix and could overwrite any repository.
#[test]
fn names_in_a_meta_cannot_leave_the_namespace() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = two_layer_image(&src, "names/app");
    let out = tempfile::tempdir().unwrap();
    let meta = save(&[&img.reference], out.path(), &[]);
    let m = meta.to_str().unwrap();
    let original = std::fs::read_to_string(&meta).unwrap();

    edit(&meta, |t| {
        t.replace(
            "repository: names/app\n",
            "repository: ../../escaped/pwned\n",
        )
    });
    let o = run(&["upload", m, "--dst", &format!("{}/mirror/team", dst.host())]);
    assert_refused(&o, "upload", "refused");
    assert!(
        stderr(&o).contains("../../escaped/pwned"),
        "names the bad repository: {}",
        stderr(&o)
    );
    assert!(dst.catalog().is_empty(), "pushed: {:?}", dst.catalog());
    every_reader_refuses(&meta, &dst, "refused", &["size", "full"]);
    let o = run(&["ls", m]);
    assert_refused(&o, "ls", "refused");

    // A tag with ../ and a data file outside the bundle's folder: the same.
    std::fs::write(&meta, &original).unwrap();
    edit(&meta, |t| {
        t.replace("tag: '1'\n", "tag: ../../../../x\n")
            .replace("tag: \"1\"\n", "tag: ../../../../x\n")
    });
    assert_refused(&run(&["verify", m]), "verify (tag)", "refused");
    std::fs::write(&meta, &original).unwrap();
    let file = load(&meta).files[0].name.clone();
    edit(&meta, |t| t.replace(&file, "../../../etc/hostname"));
    assert_refused(&run(&["verify", m]), "verify (data file)", "refused");

    std::fs::write(&meta, &original).unwrap();
    let o = run(&["upload", m, "--dst", &format!("{}/mirror/team", dst.host())]);
    assert_eq!(o.code, Some(0), "{}", stderr(&o));
    assert_eq!(dst.catalog(), vec!["mirror/team/names/app".to_string()]);
}

/// #16.6: in a `.tar.zst`, a meta offset pointing at another blob's frame passed
/// verify; serve then sent the wrong body and upload failed half-way.
#[test]
fn a_zstd_offset_must_name_its_own_frame() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = two_layer_image(&src, "zoff/app");
    let out = tempfile::tempdir().unwrap();
    let meta = save(
        &[&img.reference],
        out.path(),
        &["--files", "1", "--compress", "zstd"],
    );
    let m = load(&meta);
    let layers: Vec<_> = m
        .blobs
        .iter()
        .filter(|b| b.kind == ferry::bundle::meta::BlobKind::Layer)
        .collect();
    assert_eq!(layers.len(), 2);
    let (a, b) = (layers[0].offset.unwrap(), layers[1].offset.unwrap());
    edit(&meta, |t| {
        t.replace(&format!("offset: {a}\n"), "offset: SWAP\n")
            .replace(&format!("offset: {b}\n"), &format!("offset: {a}\n"))
            .replace("offset: SWAP\n", &format!("offset: {b}\n"))
    });
    every_reader_refuses(&meta, &dst, "frame", &["size", "full"]);
}

/// #16.5: a registry that declares a layer of 2^64-1 bytes overflowed the data
/// file layout; one that declares more than the disk holds filled it. Both are
/// refused before the first byte.
#[test]
fn a_declared_layer_size_is_checked_before_the_first_byte() {
    let out = tempfile::tempdir().unwrap();
    let free = ferry::bundle::space::free_space(out.path()).unwrap();
    for (declared, needle) in [(u64::MAX, "declares"), (free + (1 << 30), "free space")] {
        let liar = LyingRegistry::start(declared);
        let o = run(&[
            "save",
            &liar.reference(),
            "--out",
            out.path().to_str().unwrap(),
        ]);
        assert_refused(&o, &format!("save of a {declared}-byte layer"), needle);
        assert!(stdout(&o).trim().is_empty(), "no meta: {}", stdout(&o));
        assert_eq!(liar.layer_gets(), 0, "no byte of the layer was asked for");
        if needle == "free space" {
            let e = stderr(&o);
            assert!(
                e.contains("needs") && e.contains("are free"),
                "names both numbers: {e}"
            );
        }
    }
    let left: Vec<_> = walk(out.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tar"))
        .collect();
    assert!(left.is_empty(), "no data file was created: {left:?}");
}

/// #16.17: a meta's `failed:` reasons went to the terminal raw.
#[test]
fn failure_reasons_reach_no_terminal_raw() {
    let src = Registry::start();
    let img = two_layer_image(&src, "esc/app");
    let missing = format!("{}/esc/missing:1", src.host());
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "save",
        &img.reference,
        &missing,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.code, Some(1), "{}", stderr(&o));
    let meta = PathBuf::from(stdout(&o).trim());
    let reason = load(&meta).failed[0].reason.clone();
    edit(&meta, |t| {
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with("reason:"))
            .unwrap()
            .to_string();
        t.replace(
            &line,
            "  reason: \"\\e]0;owned\\a\\e[2J\\e[31mgone\\e[0m\\r\\nfake: line\"",
        )
    });
    let _ = reason;
    let m = meta.to_str().unwrap();
    for (what, o) in [
        ("ls", run(&["ls", m])),
        ("verify", run(&["verify", m])),
        ("upload", run(&["upload", m, "--dst", &src.host()])),
    ] {
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}'),
            "{what}: {all:?}"
        );
        assert!(
            all.contains("gone fake: line"),
            "{what} shows the reason: {all}"
        );
    }
}

/// Nothing silently lost: the images that failed at save time are shown by ls,
/// verify and upload; upload refuses the bundle unless --allow-partial; a save in
/// which every image failed writes no bundle.
#[test]
fn images_that_failed_at_save_time_are_never_silently_lost() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = two_layer_image(&src, "lost/app");
    let missing = format!("{}/lost/missing:1", src.host());
    let out = tempfile::tempdir().unwrap();
    let o = run(&[
        "save",
        &img.reference,
        &missing,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.code, Some(1), "{}", stderr(&o));
    let meta = PathBuf::from(stdout(&o).trim());
    let m = meta.to_str().unwrap();

    let ls = run(&["ls", m]);
    assert_eq!(ls.code, Some(0));
    let text = stdout(&ls);
    let lacks = text.find("lacks 1 image").expect(&text);
    assert!(
        lacks < text.find("images (").unwrap() && text[lacks..].contains(&missing),
        "ls shows what is missing first: {text}"
    );
    let v = run(&["verify", m]);
    assert_eq!(v.code, Some(0), "{}", stderr(&v));
    assert!(stderr(&v).contains("lacks 1 image") && stderr(&v).contains(&missing));

    let up = run(&["upload", m, "--dst", &dst.host()]);
    assert_refused(&up, "upload", &missing);
    assert!(stderr(&up).contains("--allow-partial"), "{}", stderr(&up));
    assert!(
        dst.catalog().is_empty(),
        "nothing pushed: {:?}",
        dst.catalog()
    );
    let up = run(&["upload", m, "--dst", &dst.host(), "--allow-partial"]);
    assert_eq!(up.code, Some(0), "{}", stderr(&up));
    assert!(stderr(&up).contains(&missing), "{}", stderr(&up));
    assert_eq!(dst.catalog(), vec!["lost/app".to_string()]);

    // Every image failed at resolution: no bundle, no meta path.
    let empty = tempfile::tempdir().unwrap();
    let o = run(&["save", &missing, "--out", empty.path().to_str().unwrap()]);
    assert_refused(&o, "save of nothing", &missing);
    assert!(stdout(&o).trim().is_empty(), "{}", stdout(&o));
    assert_eq!(walk(empty.path()), Vec::<PathBuf>::new());

    // Every image failed while downloading: the partial files go too.
    let layer = img.layers()[0].digest.clone();
    let proxy = Proxy::start_with(&src.host(), Faults::none().corrupt_blob(&layer));
    let o = run(&[
        "save",
        &proxy.reference("lost/app", "1"),
        "--out",
        empty.path().to_str().unwrap(),
        "--retries",
        "0",
    ]);
    assert_refused(&o, "save of a corrupt image", "no bundle was written");
    assert!(stdout(&o).trim().is_empty(), "{}", stdout(&o));
    assert_eq!(walk(empty.path()), Vec::<PathBuf>::new());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A registry that lies about one image: its manifest declares a layer of
/// `declared` bytes; a request for the layer gets zeros (1 MiB at most) and is
/// counted. Plain HTTP on loopback, one request per connection.
struct LyingRegistry {
    port: u16,
    layer_gets: Arc<AtomicU64>,
}

impl LyingRegistry {
    fn start(declared: u64) -> LyingRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let layer_gets = Arc::new(AtomicU64::new(0));
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let config_digest = sha256_digest(&config);
        let layer_digest = sha256_digest(b"the layer that never ends");
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{},"digest":"{config_digest}"}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":{declared},"digest":"{layer_digest}"}}]}}"#,
            config.len()
        )
        .into_bytes();
        let gets = layer_gets.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (manifest, config, config_digest, gets) = (
                    manifest.clone(),
                    config.clone(),
                    config_digest.clone(),
                    gets.clone(),
                );
                std::thread::spawn(move || {
                    let _ = answer(stream, &manifest, &config, &config_digest, &gets);
                });
            }
        });
        LyingRegistry { port, layer_gets }
    }

    fn reference(&self) -> String {
        format!("127.0.0.1:{}/lie/app:1", self.port)
    }

    fn layer_gets(&self) -> u64 {
        self.layer_gets.load(Ordering::SeqCst)
    }
}

fn answer(
    stream: TcpStream,
    manifest: &[u8],
    config: &[u8],
    config_digest: &str,
    layer_gets: &AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut w = stream;
    let send = |w: &mut TcpStream, status: &str, ctype: &str, body: &[u8], extra: &str| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        w.write_all(head.as_bytes())?;
        if method != "HEAD" {
            w.write_all(body)?;
        }
        Ok::<(), std::io::Error>(())
    };
    if path == "/v2/" || path == "/v2" {
        send(&mut w, "200 OK", "application/json", b"{}", "")?;
    } else if path.starts_with("/v2/lie/app/manifests/") {
        let digest = sha256_digest(manifest);
        send(
            &mut w,
            "200 OK",
            "application/vnd.oci.image.manifest.v1+json",
            manifest,
            &format!("Docker-Content-Digest: {digest}\r\n"),
        )?;
    } else if path == format!("/v2/lie/app/blobs/{config_digest}") {
        send(&mut w, "200 OK", "application/octet-stream", config, "")?;
    } else if path.starts_with("/v2/lie/app/blobs/") {
        layer_gets.fetch_add(1, Ordering::SeqCst);
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")?;
        let zeros = vec![0u8; 64 * 1024];
        for _ in 0..16 {
            w.write_all(&zeros)?;
        }
    } else {
        send(&mut w, "404 Not Found", "application/json", b"{}", "")?;
    }
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(())
}
