//! The command-line side of signatures: which key and trust file a run uses (flags,
//! else cfg.yaml), `ferry sign`, and the lines
//! `ferry ls` prints about a signature.

use super::args::{GlobalArgs, SignArgs};
use super::run::{load_config, Outcome};
use crate::config::Config;
use crate::engine::report::Reporter;
use crate::sign::cosign::CosignKey;
use crate::sign::{self, Passphrase, SigningKey, State, Trust};
use anyhow::{anyhow, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The allowed_signers file of a run: `--trust`, else cfg `trust`.
pub fn trust_file(arg: Option<&Path>, cfg: Option<&Config>) -> Option<PathBuf> {
    arg.map(Path::to_path_buf)
        .or_else(|| cfg.and_then(|c| c.file.trust.clone()))
        .filter(|p| !p.as_os_str().is_empty())
}

/// Reads the trust file of a run, when there is one.
pub fn load_trust(arg: Option<&Path>, cfg: Option<&Config>) -> Result<Option<Trust>> {
    trust_file(arg, cfg)
        .map(|p| Trust::load(&p).map_err(anyhow::Error::from))
        .transpose()
}

/// For commands that otherwise read no cfg.yaml (verify, export, serve, ls): the
/// trust file from `--trust` or the cfg in force.
pub fn trust_for(g: &GlobalArgs, arg: Option<&Path>, reporter: &Reporter) -> Result<Option<Trust>> {
    let cfg = load_config(g, reporter)?;
    load_trust(arg, cfg.as_ref())
}

/// The key that signs: `--sign`/`--key`, else cfg `sign.key`; decrypted now.
pub fn signing_key(
    arg: Option<&Path>,
    passphrase_env: Option<&str>,
    cfg: Option<&Config>,
) -> Result<Option<SigningKey>> {
    let entry = cfg.and_then(|c| c.file.sign.as_ref());
    let Some(path) = arg
        .map(Path::to_path_buf)
        .or_else(|| entry.map(|e| e.key.clone()))
        .filter(|p| !p.as_os_str().is_empty())
    else {
        return Ok(None);
    };
    let passphrase = Passphrase {
        env: passphrase_env
            .map(str::to_string)
            .or_else(|| entry.and_then(|e| e.passphrase_env.clone())),
    };
    Ok(Some(SigningKey::load(&path, &passphrase)?))
}

/// Signs a saved meta and says so.
pub fn sign_saved(meta: &Path, key: &SigningKey, reporter: &Reporter) -> Result<PathBuf> {
    let sig = sign::sign_bundle(meta, key)?;
    reporter.warn(&crate::tr!(
        "signed {} with {}: {}",
        "已用 {} 签名 {}: {}",
        meta.display(),
        key.signer(),
        sig.display()
    ));
    Ok(sig)
}

/// `save --inc` under a trust file: every base must carry a good, trusted signature.
pub fn check_save_bases(
    bases: &[PathBuf],
    trust: Option<&Trust>,
    reporter: &Reporter,
) -> Result<()> {
    let Some(trust) = trust else {
        return Ok(());
    };
    for base in bases {
        let v = sign::check_meta(base, trust).with_context(|| {
            crate::tr!(
                "refusing the base bundle {} (nothing was downloaded)",
                "拒绝基础包 {} (没有下载任何内容)",
                base.display()
            )
        })?;
        reporter.warn(&crate::tr!(
            "signature good: base bundle {} signed by {}",
            "签名有效: 基础包 {} 由 {} 签名",
            base.display(),
            v.signer
        ));
    }
    Ok(())
}

/// `--require-cosign KEY.pub`, read before anything is pushed.
pub fn cosign_key(arg: Option<&Path>) -> Result<Option<Arc<CosignKey>>> {
    arg.map(|p| {
        CosignKey::load(p)
            .map(Arc::new)
            .map_err(anyhow::Error::from)
    })
    .transpose()
}

/// `ferry sign META [--key KEY]`.
pub fn run_sign(args: SignArgs, g: &GlobalArgs, reporter: &Reporter) -> Result<Outcome> {
    let cfg = load_config(g, reporter)?;
    // Only a ferry meta (or an image-transmit one) is signed: a typo'd path must not
    // get a signature that looks like a bundle's.
    crate::bundle::meta::Meta::load_any(&args.meta)
        .with_context(|| crate::tr!("cannot sign", "无法签名"))?;
    let key = signing_key(
        args.key.as_deref(),
        args.passphrase_env.as_deref(),
        cfg.as_ref(),
    )?
    .ok_or_else(|| {
        anyhow!(super::run::UsageError(crate::tr!(
            "no key: give --key KEY (an OpenSSH private key), or set cfg `sign: {{key: PATH}}`",
            "没有密钥: 请用 --key KEY 指定 (OpenSSH 私钥), 或在 cfg 中设置 `sign: {{key: PATH}}`"
        )))
    })?;
    let sig = sign_saved(&args.meta, &key, reporter)?;
    println!("{}", sig.display());
    Ok(Outcome::Success)
}

/// The `signature:` line of `ferry ls`.
pub fn signature_line(meta: &Path, trust: Option<&Trust>) -> String {
    match sign::state(meta, trust) {
        State::Unsigned => crate::tr!(
            "signature: none ({} is missing)\n",
            "签名: 无 (缺少 {})\n",
            sign::sig_path(meta).display()
        ),
        State::Good(s) if trust.is_some() => crate::tr!(
            "signature: good, signed by {s} (trusted by {})\n",
            "签名: 有效, 由 {s} 签名 (受 {} 信任)\n",
            trust.map(|t| t.path().display().to_string()).unwrap_or_default()
        ),
        State::Good(s) => crate::tr!(
            "signature: matches the meta, made by the key {s} (give --trust FILE to check who that is)\n",
            "签名: 与元数据相符, 由密钥 {s} 生成 (用 --trust FILE 可核对签名者身份)\n"
        ),
        State::Untrusted(e) => crate::tr!(
            "signature: UNTRUSTED: {e}\n",
            "签名: 不受信任: {e}\n"
        ),
        State::Bad(e) => crate::tr!("signature: BAD: {e}\n", "签名: 无效: {e}\n"),
    }
}
