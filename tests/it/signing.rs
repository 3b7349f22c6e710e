//! Signed bundles (`save --sign`, `ferry sign`, `--trust`) and the cosign policy
//! (`--require-cosign`). Keys are made by `ssh-keygen` and signatures are checked by
//! `ssh-keygen -Y verify` exactly as the README tells people to; cosign signatures
//! are made with `openssl` (the same ECDSA P-256 over the simple-signing payload that
//! cosign makes) and laid out as cosign lays them out; a signature made by real
//! cosign (tests/data/cosign) is checked too. Every refusal is checked at the target
//! registry with skopeo: nothing may arrive.

use crate::common::*;
use crate::referrers::{cosign_manifest, push_raw};
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `ssh-keygen -t TYPE` into DIR/NAME (and NAME.pub), with a passphrase or none.
fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
        .arg(&path);
    if kind == "ecdsa" {
        cmd.args(["-b", "256"]);
    }
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    let out = cmd.output().expect("ssh-keygen runs");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
    path
}

/// An allowed_signers file: `principal namespaces="ferry-bundle" KEY`, one a line.
fn allowed_signers(dir: &Path, name: &str, signers: &[(&str, &Path)]) -> PathBuf {
    let mut text = String::from("# who may sign ferry bundles\n");
    for (principal, key) in signers {
        let public = std::fs::read_to_string(format!("{}.pub", key.display())).unwrap();
        text.push_str(&format!(
            "{principal} namespaces=\"ferry-bundle\" {}\n",
            public.trim()
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `ssh-keygen -Y verify -f ALLOWED -I ID -n ferry-bundle -s META.sig < META`.
fn ssh_verify(allowed: &Path, id: &str, meta: &Path) -> bool {
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", id, "-n", "ferry-bundle", "-s"])
        .arg(format!("{}.sig", meta.display()))
        .stdin(Stdio::from(std::fs::File::open(meta).unwrap()))
        .output()
        .expect("ssh-keygen runs");
    out.status.success()
}

fn stdout_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stdout)
        .trim()
        .to_string()
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).to_string()
}

/// `ferry save` in `work` (its cfg.yaml applies); returns the meta's absolute path.
fn save(work: &Path, out: &str, extra: &[&str], refs: &[&str]) -> PathBuf {
    FerryCmd::new()
        .current_dir(work)
        .arg("save")
        .args(refs)
        .arg("--out")
        .arg(work.join(out))
        .arg("-q")
        .args(extra)
        .ok()
        .meta_only()
}

fn one_image(src: &Registry, repo: &str, seed: &str) -> PushedImage {
    push_image(
        src,
        repo,
        "1.0",
        Format::Oci,
        &[layer(seed, 20_000)],
        seed,
        false,
    )
}

/// Copies a bundle (meta, signature when there is one, data files) into `dir`.
fn copy_bundle(meta: &Path, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let m = ferry::bundle::meta::Meta::load(meta).unwrap().0;
    let from = meta.parent().unwrap();
    for f in &m.files {
        std::fs::copy(from.join(&f.name), dir.join(&f.name)).unwrap();
    }
    let name = meta.file_name().unwrap();
    std::fs::copy(meta, dir.join(name)).unwrap();
    let sig = PathBuf::from(format!("{}.sig", meta.display()));
    if sig.exists() {
        std::fs::copy(&sig, dir.join(sig.file_name().unwrap())).unwrap();
    }
    dir.join(name)
}

/// Runs every command that takes --trust against `meta`; each must refuse it, say
/// `why`, and leave the target registry empty (checked with skopeo).
fn refused_everywhere(meta: &Path, trust: &Path, dst: &Registry, image: &str, why: &str) {
    let work = meta.parent().unwrap();
    let oci = work.join("refused-oci");
    let runs: Vec<(&str, Vec<String>)> = vec![
        ("verify", vec![]),
        ("upload", vec!["--dst".into(), dst.host()]),
        ("export", vec!["--oci".into(), oci.display().to_string()]),
        ("serve", vec!["--listen".into(), "127.0.0.1:0".into()]),
    ];
    for (cmd, extra) in runs {
        let a = ferry()
            .current_dir(work)
            .arg(cmd)
            .arg(meta)
            .arg("--trust")
            .arg(trust)
            .args(&extra)
            .env_remove("LANG")
            .timeout(Duration::from_secs(60))
            .assert()
            .failure();
        let err = stderr_of(&a);
        assert!(
            err.contains(why),
            "ferry {cmd} says {why:?} for {}:\n{err}",
            meta.display()
        );
        assert!(
            !err.contains("serving bundle"),
            "serve must not start: {err}"
        );
    }
    // copy reads the bundle through the same check.
    let a = ferry()
        .current_dir(work)
        .arg("copy")
        .arg(format!("bundle:{}", meta.display()))
        .arg(format!("docker://{}", dst.host()))
        .arg("--trust")
        .arg(trust)
        .env_remove("LANG")
        .timeout(Duration::from_secs(60))
        .assert()
        .failure();
    let err = stderr_of(&a);
    assert!(err.contains(why), "ferry copy says {why:?}:\n{err}");
    assert!(!oci.exists(), "export wrote nothing");
    assert!(
        try_skopeo_inspect_raw(&docker_ref(&format!("{}/{image}", dst.host())), None).is_err(),
        "nothing of {image} reached the target"
    );
    assert!(
        dst.catalog().is_empty(),
        "target is empty: {:?}",
        dst.catalog()
    );
}

#[test]
fn signatures_by_every_key_type_verify_with_ssh_keygen_and_with_ferry() {
    let src = Registry::start();
    let img = one_image(&src, "sig/app", "sig-app");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ed = keygen(w, "ed25519", "ed25519", "");
    let ec = keygen(w, "ecdsa", "ecdsa", "");
    let rsa = keygen(w, "rsa", "rsa", "");
    let locked = keygen(w, "locked", "ed25519", "correct horse");
    let allowed = allowed_signers(
        w,
        "allowed_signers",
        &[
            ("ed@example.com", &ed),
            ("ec@example.com", &ec),
            ("rsa@example.com", &rsa),
            ("locked@example.com", &locked),
        ],
    );

    // save --sign: the signature is there when the meta is.
    let meta = save(
        w,
        "out",
        &["--sign", ed.to_str().unwrap()],
        &[&img.reference],
    );
    assert!(ssh_verify(&allowed, "ed@example.com", &meta));
    assert!(
        !ssh_verify(&allowed, "ec@example.com", &meta),
        "ssh-keygen ties the signature to its principal"
    );
    let a = ferry()
        .current_dir(w)
        .args(["verify", meta.to_str().unwrap(), "--trust"])
        .arg(&allowed)
        .env_remove("LANG")
        .assert()
        .success();
    let err = stderr_of(&a);
    assert!(
        err.contains("signature good") && err.contains("ed@example.com (ED25519 SHA256:"),
        "{err}"
    );

    // ferry sign with each key type re-signs the same bundle.
    for (key, id, alg) in [
        (&ec, "ec@example.com", "ECDSA"),
        (&rsa, "rsa@example.com", "RSA"),
    ] {
        ferry()
            .current_dir(w)
            .args(["sign", meta.to_str().unwrap(), "--key"])
            .arg(key)
            .assert()
            .success();
        assert!(ssh_verify(&allowed, id, &meta), "{alg} signature");
        let a = ferry()
            .current_dir(w)
            .args(["ls", meta.to_str().unwrap(), "--trust"])
            .arg(&allowed)
            .env_remove("LANG")
            .assert()
            .success();
        let out = stdout_of(&a);
        assert!(
            out.contains(&format!("signature: good, signed by {id} ({alg} SHA256:")),
            "{out}"
        );
    }

    // An encrypted key: the passphrase comes from the variable cfg names; without
    // it (and no terminal) ferry says so before anything is downloaded.
    let cfg = w.join("cfg.yaml");
    std::fs::write(
        &cfg,
        format!(
            "sign:\n  key: {}\n  passphrase_env: FERRY_TEST_PASSPHRASE\n",
            locked.display()
        ),
    )
    .unwrap();
    let a = ferry()
        .current_dir(w)
        .args(["save", &img.reference, "--out", "locked-out", "-q"])
        .env_remove("LANG")
        .env_remove("FERRY_TEST_PASSPHRASE")
        .assert()
        .failure();
    assert!(
        stderr_of(&a).contains("FERRY_TEST_PASSPHRASE"),
        "{}",
        stderr_of(&a)
    );
    assert!(
        !w.join("locked-out").exists(),
        "nothing saved without the key"
    );
    let a = ferry()
        .current_dir(w)
        .args(["save", &img.reference, "--out", "locked-out", "-q"])
        .env("FERRY_TEST_PASSPHRASE", "wrong")
        .env_remove("LANG")
        .assert()
        .failure();
    assert!(
        stderr_of(&a).contains("wrong passphrase"),
        "{}",
        stderr_of(&a)
    );
    let a = ferry()
        .current_dir(w)
        .args(["save", &img.reference, "--out", "locked-out", "-q"])
        .env("FERRY_TEST_PASSPHRASE", "correct horse")
        .assert()
        .success();
    let locked_meta = w.join(stdout_of(&a));
    assert!(ssh_verify(&allowed, "locked@example.com", &locked_meta));
    std::fs::remove_file(&cfg).unwrap();

    // The other way round: a signature made by ssh-keygen itself satisfies ferry.
    std::fs::remove_file(format!("{}.sig", meta.display())).unwrap();
    let out = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", "ferry-bundle", "-f"])
        .arg(&rsa)
        .arg(&meta)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let a = ferry()
        .current_dir(w)
        .args(["verify", meta.to_str().unwrap(), "--trust"])
        .arg(&allowed)
        .env_remove("LANG")
        .assert()
        .success();
    assert!(
        stderr_of(&a).contains("rsa@example.com"),
        "{}",
        stderr_of(&a)
    );
}

#[test]
fn changed_swapped_untrusted_or_missing_signatures_are_refused_by_every_command() {
    let src = Registry::start();
    let dst = Registry::start();
    let img = one_image(&src, "gate/app", "gate-app");
    let other = one_image(&src, "gate/other", "gate-other");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let trusted = keygen(w, "trusted", "ed25519", "");
    let stranger = keygen(w, "stranger", "ecdsa", "");
    let allowed = allowed_signers(w, "allowed_signers", &[("release@example.com", &trusted)]);
    let meta = save(
        w,
        "good",
        &["--sign", trusted.to_str().unwrap()],
        &[&img.reference],
    );
    let other_meta = save(
        w,
        "other",
        &["--sign", trusted.to_str().unwrap()],
        &[&other.reference],
    );

    // One byte of the meta changed (the tag the image is pushed under).
    let changed = copy_bundle(&meta, &w.join("changed"));
    let text = std::fs::read_to_string(&changed).unwrap();
    assert!(
        text.contains("tag: '1.0'") || text.contains("tag: \"1.0\"") || text.contains("tag: 1.0")
    );
    let at = text.find("tag: ").unwrap() + text[text.find("tag: ").unwrap()..].find("1.0").unwrap();
    let mut bytes = text.into_bytes();
    bytes[at] = b'9';
    std::fs::write(&changed, &bytes).unwrap();
    assert!(!ssh_verify(&allowed, "release@example.com", &changed));
    refused_everywhere(
        &changed,
        &allowed,
        &dst,
        "gate/app:1.0",
        "does not match the meta",
    );
    assert!(
        try_skopeo_inspect_raw(&docker_ref(&format!("{}/gate/app:9.0", dst.host())), None).is_err()
    );

    // The .sig of another bundle, by the same trusted key.
    let swapped = copy_bundle(&meta, &w.join("swapped"));
    std::fs::copy(
        format!("{}.sig", other_meta.display()),
        format!("{}.sig", swapped.display()),
    )
    .unwrap();
    assert!(!ssh_verify(&allowed, "release@example.com", &swapped));
    refused_everywhere(
        &swapped,
        &allowed,
        &dst,
        "gate/app:1.0",
        "does not match the meta",
    );

    // Signed by a key that is not in the file.
    let untrusted = copy_bundle(&meta, &w.join("untrusted"));
    ferry()
        .args(["sign", untrusted.to_str().unwrap(), "--key"])
        .arg(&stranger)
        .assert()
        .success();
    refused_everywhere(
        &untrusted,
        &allowed,
        &dst,
        "gate/app:1.0",
        "not in the allowed signers file",
    );

    // Not signed at all.
    let unsigned = copy_bundle(&meta, &w.join("unsigned"));
    std::fs::remove_file(format!("{}.sig", unsigned.display())).unwrap();
    refused_everywhere(&unsigned, &allowed, &dst, "gate/app:1.0", "is not signed");
    let a = ferry()
        .args(["ls", unsigned.to_str().unwrap()])
        .env_remove("LANG")
        .assert()
        .success();
    assert!(
        stdout_of(&a).contains("signature: none"),
        "{}",
        stdout_of(&a)
    );

    // cfg `trust:` works like --trust.
    std::fs::write(
        w.join("cfg.yaml"),
        format!("trust: {}\n", allowed.display()),
    )
    .unwrap();
    ferry()
        .current_dir(w)
        .args(["upload", unsigned.to_str().unwrap(), "--dst", &dst.host()])
        .assert()
        .failure();
    assert!(dst.catalog().is_empty());

    // The good bundle goes through every command, and upload names the signer.
    let a = ferry()
        .current_dir(w)
        .args(["upload", meta.to_str().unwrap(), "--dst", &dst.host()])
        .env_remove("LANG")
        .assert()
        .success();
    assert!(
        stderr_of(&a).contains("signed by release@example.com"),
        "{}",
        stderr_of(&a)
    );
    assert_eq!(
        skopeo_inspect_raw(&docker_ref(&format!("{}/gate/app:1.0", dst.host()))),
        img.manifest
    );
    let oci = w.join("good-oci");
    ferry()
        .current_dir(w)
        .args([
            "export",
            meta.to_str().unwrap(),
            "--oci",
            oci.to_str().unwrap(),
        ])
        .assert()
        .success();
    assert!(oci.join("index.json").is_file());

    // Every message of this in Chinese.
    std::fs::remove_file(w.join("cfg.yaml")).unwrap();
    let zh = |args: &[&str]| {
        let out = ferry()
            .current_dir(w)
            .args(args)
            .env("LANG", "zh_CN.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let english = crate::lang::english_phrases(&text);
        assert!(english.is_empty(), "{args:?}: {english:?}\n{text}");
        text
    };
    let t = allowed.to_str().unwrap();
    let d = dst.host();
    for (args, expect) in [
        (
            vec!["verify", changed.to_str().unwrap(), "--trust", t],
            "不符",
        ),
        (
            vec!["verify", unsigned.to_str().unwrap(), "--trust", t],
            "没有签名",
        ),
        (
            vec![
                "upload",
                untrusted.to_str().unwrap(),
                "--dst",
                &d,
                "--trust",
                t,
            ],
            "不在可信签名者文件",
        ),
        (
            vec!["ls", untrusted.to_str().unwrap(), "--trust", t],
            "不受信任",
        ),
        (
            vec!["ls", meta.to_str().unwrap(), "--trust", t],
            "签名: 有效",
        ),
        (vec!["ls", meta.to_str().unwrap()], "签名: 与元数据相符"),
        (
            vec!["verify", meta.to_str().unwrap(), "--trust", t],
            "签名有效",
        ),
        (vec!["sign", meta.to_str().unwrap()], "没有密钥"),
        (
            vec![
                "sign",
                meta.to_str().unwrap(),
                "--key",
                trusted.to_str().unwrap(),
            ],
            "签名",
        ),
    ] {
        let text = zh(&args);
        assert!(text.contains(expect), "{args:?}: {expect:?} in\n{text}");
    }
}

#[test]
fn a_signed_increment_uploads_under_trust_with_only_the_increment_at_hand() {
    let src = Registry::start();
    let dst = Registry::start();
    let base_layer = layer("inc-base", 40_000);
    let v1 = push_image(
        &src,
        "inc/app",
        "1.0",
        Format::Oci,
        &[base_layer.clone(), layer("inc-v1", 10_000)],
        "inc-v1",
        false,
    );
    let v2 = push_image(
        &src,
        "inc/app",
        "2.0",
        Format::Oci,
        &[base_layer, layer("inc-v2", 10_000)],
        "inc-v2",
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let key = keygen(w, "release", "ed25519", "");
    let stranger = keygen(w, "stranger", "ed25519", "");
    let allowed = allowed_signers(w, "allowed_signers", &[("release@example.com", &key)]);
    let k = key.to_str().unwrap();
    let t = allowed.to_str().unwrap();

    let full = save(w, "full", &["--sign", k], &[&v1.reference]);
    ferry()
        .args([
            "upload",
            full.to_str().unwrap(),
            "--dst",
            &dst.host(),
            "--trust",
            t,
        ])
        .assert()
        .success();

    // save --inc under --trust refuses an unsigned base, and one by a stranger,
    // before anything is downloaded.
    let unsigned = copy_bundle(&full, &w.join("unsigned-base"));
    std::fs::remove_file(format!("{}.sig", unsigned.display())).unwrap();
    let strange = copy_bundle(&full, &w.join("strange-base"));
    ferry()
        .args(["sign", strange.to_str().unwrap(), "--key"])
        .arg(&stranger)
        .assert()
        .success();
    for (base, why) in [
        (&unsigned, "is not signed"),
        (&strange, "not in the allowed signers file"),
    ] {
        let a = ferry()
            .current_dir(w)
            .args([
                "save",
                &v2.reference,
                "--out",
                "refused",
                "-q",
                "--sign",
                k,
                "--trust",
                t,
                "--inc",
            ])
            .arg(base)
            .env_remove("LANG")
            .assert()
            .failure();
        let err = stderr_of(&a);
        assert!(
            err.contains("refusing the base bundle") && err.contains(why),
            "{err}"
        );
        assert!(!w.join("refused").exists(), "nothing was saved");
    }

    let inc = save(
        w,
        "inc",
        &["--sign", k, "--trust", t, "--inc", full.to_str().unwrap()],
        &[&v2.reference],
    );
    // Only the increment crosses: its files alone, in a folder of their own.
    let alone = copy_bundle(&inc, &w.join("alone"));
    let a = ferry()
        .args([
            "upload",
            alone.to_str().unwrap(),
            "--dst",
            &dst.host(),
            "--trust",
            t,
        ])
        .env_remove("LANG")
        .assert()
        .success();
    assert!(
        stderr_of(&a).contains("signed by release@example.com"),
        "{}",
        stderr_of(&a)
    );
    assert_eq!(
        skopeo_inspect_raw(&docker_ref(&format!("{}/inc/app:2.0", dst.host()))),
        v2.manifest
    );
    skopeo_copy(
        &docker_ref(&format!("{}/inc/app:2.0", dst.host())),
        &format!("dir:{}", w.join("pulled").display()),
        &[],
    )
    .expect("the uploaded increment pulls whole");

    // Reading the bases (export) under --trust: the base the increment's signed
    // meta records is accepted; a base changed by one byte is refused.
    let with_base = copy_bundle(&inc, &w.join("with-base"));
    copy_bundle(&full, &w.join("with-base"));
    ferry()
        .args(["export", with_base.to_str().unwrap(), "--oci"])
        .arg(w.join("inc-oci"))
        .args(["--trust", t])
        .assert()
        .success();
    let base_copy = w.join("with-base").join(full.file_name().unwrap());
    let mut text = std::fs::read(&base_copy).unwrap();
    let at = text.iter().position(|&b| b == b'\n').unwrap();
    text.insert(at, b' ');
    std::fs::write(&base_copy, text).unwrap();
    let a = ferry()
        .args(["export", with_base.to_str().unwrap(), "--oci"])
        .arg(w.join("inc-oci-2"))
        .args(["--trust", t])
        .env_remove("LANG")
        .assert()
        .failure();
    let err = stderr_of(&a);
    assert!(
        err.contains("base bundle") && err.contains("sha256 differs"),
        "{err}"
    );
    assert!(!w.join("inc-oci-2").exists());
}

/// A P-256 key pair made by openssl: (private PEM path, public PEM path).
fn cosign_keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        private.to_str().unwrap(),
    ]);
    run(&[
        "ec",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    (private, public)
}

/// cosign's simple-signing payload for an image, as cosign writes it.
fn payload(reference: &str, digest: &str) -> Vec<u8> {
    format!("{{\"critical\":{{\"identity\":{{\"docker-reference\":\"{reference}\"}},\"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}").into_bytes()
}

/// ECDSA P-256/SHA-256 over `data` with openssl, base64 of the DER signature.
fn openssl_sign(key: &Path, data: &[u8], dir: &Path) -> String {
    let input = dir.join("to-sign");
    std::fs::write(&input, data).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    base64::engine::general_purpose::STANDARD.encode(out.stdout)
}

/// Pushes a cosign signature image (`sha256-<hex>.sig`) for `image`: the payload
/// layer and the signature annotation over `signed` (normally the payload itself).
fn push_cosign(reg: &Registry, repo: &str, image: &PushedImage, layer: &[u8], signature: &str) {
    let (manifest, config) = cosign_manifest(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        layer,
        signature,
    );
    let tag = format!("sha256-{}.sig", image.digest.trim_start_matches("sha256:"));
    push_raw(
        reg,
        repo,
        &tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
        &[&config, layer],
    );
}

#[test]
fn a_signature_made_by_real_cosign_verifies_and_changes_are_refused() {
    use ferry::sign::cosign::{CosignKey, LayerProblem};
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cosign");
    let key = CosignKey::load(&data.join("sigstore-rs.pub")).unwrap();
    let other = CosignKey::load(&data.join("other.pub")).unwrap();
    let payload = std::fs::read(data.join("sigstore-rs.payload.json")).unwrap();
    let sig = std::fs::read_to_string(data.join("sigstore-rs.sig")).unwrap();
    let digest = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b"
        .parse()
        .unwrap();
    assert_eq!(key.verify_payload(&payload, &sig, &digest), Ok(()));
    let tampered = String::from_utf8(payload.clone())
        .unwrap()
        .replace("busybox", "busyb0x");
    assert_eq!(
        key.verify_payload(tampered.as_bytes(), &sig, &digest),
        Err(LayerProblem::WrongKeyOrChanged)
    );
    assert_eq!(
        other.verify_payload(&payload, &sig, &digest),
        Err(LayerProblem::WrongKeyOrChanged)
    );
}

#[test]
fn require_cosign_pushes_signed_images_and_refuses_the_rest() {
    let src = Registry::start();
    let dst = Registry::start();
    let synced = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (key, public) = cosign_keypair(w, "cosign");
    let (other_key, _) = cosign_keypair(w, "other");

    let signed = one_image(&src, "policy/signed", "cs-signed");
    let unsigned = one_image(&src, "policy/unsigned", "cs-unsigned");
    let stranger = one_image(&src, "policy/stranger", "cs-stranger");
    let tampered = one_image(&src, "policy/tampered", "cs-tampered");
    let elsewhere = one_image(&src, "policy/elsewhere", "cs-elsewhere");

    let p = payload(&format!("{}/policy/signed", src.host()), &signed.digest);
    push_cosign(
        &src,
        "policy/signed",
        &signed,
        &p,
        &openssl_sign(&key, &p, w),
    );
    let p = payload(&format!("{}/policy/stranger", src.host()), &stranger.digest);
    push_cosign(
        &src,
        "policy/stranger",
        &stranger,
        &p,
        &openssl_sign(&other_key, &p, w),
    );
    // A good signature over one payload, carried with another payload.
    let p = payload(&format!("{}/policy/tampered", src.host()), &tampered.digest);
    let sig = openssl_sign(&key, &p, w);
    let changed = payload(&format!("{}/policy/tampered", src.host()), &signed.digest);
    push_cosign(&src, "policy/tampered", &tampered, &changed, &sig);
    // A signature by the right key for another image, copied next to this one.
    let p = payload(&format!("{}/policy/signed", src.host()), &signed.digest);
    push_cosign(
        &src,
        "policy/elsewhere",
        &elsewhere,
        &p,
        &openssl_sign(&key, &p, w),
    );

    let all = [&signed, &unsigned, &stranger, &tampered, &elsewhere];
    let refs: Vec<&str> = all.iter().map(|i| i.reference.as_str()).collect();
    let meta = save(w, "out", &["--with-referrers"], &refs);
    let a = ferry()
        .args([
            "upload",
            meta.to_str().unwrap(),
            "--dst",
            &dst.host(),
            "--require-cosign",
        ])
        .arg(&public)
        .env_remove("LANG")
        .assert()
        .code(1);
    let err = stderr_of(&a);
    assert_eq!(
        skopeo_inspect_raw(&docker_ref(&format!("{}/policy/signed:1.0", dst.host()))),
        signed.manifest
    );
    let sig_tag = format!(
        "{}/policy/signed:sha256-{}.sig",
        dst.host(),
        signed.digest.trim_start_matches("sha256:")
    );
    assert!(
        try_skopeo_inspect_raw(&docker_ref(&sig_tag), None).is_ok(),
        "its signature went along"
    );
    for (img, why) in [
        (&unsigned, "not signed"),
        (&stranger, "does not verify with this key"),
        (&tampered, "does not verify with this key"),
        (&elsewhere, "for another manifest"),
    ] {
        let repo = img.reference.split_once('/').unwrap().1;
        assert!(
            try_skopeo_inspect_raw(&docker_ref(&format!("{}/{repo}", dst.host())), None).is_err(),
            "{repo} was refused"
        );
        let line = err
            .lines()
            .find(|l| l.contains(&img.reference))
            .unwrap_or_else(|| panic!("{} is named:\n{err}", img.reference));
        assert!(line.contains(why), "{repo}: {why:?} in {line}");
    }
    assert_eq!(dst.catalog(), vec!["policy/signed".to_string()]);

    // sync applies the same policy at the source registry.
    let a = ferry()
        .arg("sync")
        .args(&refs)
        .args(["--dst", &synced.host(), "--require-cosign"])
        .arg(&public)
        .env_remove("LANG")
        .assert()
        .code(1);
    let err = stderr_of(&a);
    assert_eq!(
        skopeo_inspect_raw(&docker_ref(&format!("{}/policy/signed:1.0", synced.host()))),
        signed.manifest
    );
    assert_eq!(synced.catalog(), vec!["policy/signed".to_string()], "{err}");
    assert!(err.contains("not signed"), "{err}");

    // A public key that is not a cosign key stops the upload before anything.
    let bad = w.join("bad.pub");
    std::fs::write(&bad, "not a key").unwrap();
    let empty = Registry::start();
    ferry()
        .args([
            "upload",
            meta.to_str().unwrap(),
            "--dst",
            &empty.host(),
            "--require-cosign",
        ])
        .arg(&bad)
        .assert()
        .failure();
    assert!(empty.catalog().is_empty());
}
