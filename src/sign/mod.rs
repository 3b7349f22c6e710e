//! Bundle signatures and image signature policy.
//!
//! A bundle's meta records the sha256 of every data file and every image's manifest
//! digest, so one SSH signature over the meta's exact bytes (`<meta>.sig`, namespace
//! `ferry-bundle`) covers the whole bundle, and an increment's covers its chain (its
//! meta records each base's meta sha256). Anyone can check it with
//! `ssh-keygen -Y verify`; ferry checks it against an OpenSSH allowed_signers file
//! (`--trust`) before it reads or pushes anything of the bundle.
//!
//! * [`sshsig`]: keys, signing, checking one signature.
//! * [`allowed`]: the allowed_signers file.
//! * [`cosign`]: `--require-cosign`, images must carry a cosign signature by a key.
//!
//! Entry points for commands: [`Trust::load`], then [`open_trusted`] (verify, upload,
//! export, serve, copy from a bundle), [`check_bases`] (before an increment's bases
//! are read), [`check_meta`] (a meta given to `save --inc`), [`sign_bundle`]
//! (`save --sign`, `ferry sign`), [`state`] (`ferry ls`).

pub mod allowed;
pub mod cosign;
pub mod sshsig;

use crate::bundle::reader::{Bundle, BundleError};
use allowed::{AllowedError, AllowedSigners};
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use sshsig::{Passphrase, Signer, SigningKey};

/// The sshsig namespace of ferry bundle signatures (`ssh-keygen -Y ... -n ferry-bundle`).
pub const NAMESPACE: &str = "ferry-bundle";

/// Where a meta's signature lives: `<meta>.sig` beside it.
pub fn sig_path(meta: &Path) -> PathBuf {
    let mut name = meta.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{0}")]
    Trust(#[from] AllowedError),
    #[error("{}", crate::tr!("the bundle is not signed: {} is missing (sign it with `ferry sign META --key KEY`, or leave out --trust)", "镜像包没有签名: 缺少 {} (可用 `ferry sign META --key KEY` 签名, 或去掉 --trust)", .sig.display()))]
    Missing { sig: PathBuf },
    #[error("{}", crate::tr!("cannot read the signature {}: {}", "无法读取签名 {}: {}", .path.display(), crate::i18n::io_error(.source)))]
    SigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", crate::tr!("{} is not an SSH signature: {}", "{} 不是 SSH 签名: {}", .path.display(), .detail))]
    SigFormat { path: PathBuf, detail: String },
    #[error("{}", crate::tr!("the signature {} is for the namespace {:?}, not {:?}: it was not made for a ferry bundle", "签名 {} 的命名空间是 {:?}, 不是 {:?}: 它不是为 ferry 镜像包生成的", .sig.display(), .found, NAMESPACE))]
    Namespace { sig: PathBuf, found: String },
    #[error("{}", crate::tr!("the signature {} does not match the meta's bytes: the meta was changed after signing, or the signature belongs to another bundle", "签名 {} 与元数据的内容不符: 元数据在签名后被修改过, 或者签名属于另一个镜像包", .sig.display()))]
    Invalid { sig: PathBuf },
    #[error("{}", crate::tr!("the bundle is signed by {}, a key that is not in the allowed signers file {}", "镜像包由 {} 签名, 该密钥不在可信签名者文件 {} 中", .signer, .trust.display()))]
    Untrusted { signer: Signer, trust: PathBuf },
    #[error("{}", crate::tr!("the bundle is signed by {}, but the allowed signers file {} does not let it sign now: {}", "镜像包由 {} 签名, 但可信签名者文件 {} 不允许它此时签名: {}", .signer, .trust.display(), .why))]
    Refused {
        signer: Signer,
        trust: PathBuf,
        why: String,
    },
    #[error("{}", crate::tr!("cannot read the meta {}: {}", "无法读取元数据 {}: {}", .path.display(), crate::i18n::io_error(.source)))]
    MetaRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", crate::tr!("the meta {} changed while it was being checked", "元数据 {} 在校验过程中被修改", .path.display()))]
    MetaChanged { path: PathBuf },
    #[error("{0}")]
    Bundle(#[from] BundleError),
    #[error("{}", crate::tr!("base bundle {} ({}): {}", "基础包 {} ({}): {}", .name, .path.display(), .detail))]
    Base {
        name: String,
        path: PathBuf,
        detail: String,
    },
    #[error("{}", crate::tr!("cannot read the key {}: {}", "无法读取密钥 {}: {}", .path.display(), crate::i18n::io_error(.source)))]
    KeyRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", crate::tr!("{} is not an OpenSSH private key: {}", "{} 不是 OpenSSH 私钥: {}", .path.display(), .detail))]
    KeyFormat { path: PathBuf, detail: String },
    #[error("{}", crate::tr!("wrong passphrase for the key {}", "密钥 {} 的密码错误", .path.display()))]
    Passphrase { path: PathBuf },
    #[error("{}", crate::tr!("the key {} is encrypted and the environment variable {} that should hold its passphrase is not set", "密钥 {} 已加密, 但应存放其密码的环境变量 {} 未设置", .path.display(), .var))]
    PassphraseEnv { path: PathBuf, var: String },
    #[error("{}", crate::tr!("the key {} is encrypted: run on a terminal to type its passphrase, or name an environment variable holding it (cfg `sign: {{passphrase_env: NAME}}`, or --passphrase-env NAME)", "密钥 {} 已加密: 请在终端上运行以输入密码, 或指定存放密码的环境变量 (cfg `sign: {{passphrase_env: NAME}}`, 或 --passphrase-env NAME)", .path.display()))]
    NoPassphrase { path: PathBuf },
    #[error("{}", crate::tr!("signing with {} failed: {}", "用 {} 签名失败: {}", .path.display(), .detail))]
    Sign { path: PathBuf, detail: String },
    #[error("{}", crate::tr!("cannot write the signature {}: {}", "无法写入签名 {}: {}", .path.display(), crate::i18n::io_error(.source)))]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An allowed_signers file, read once for a run.
#[derive(Clone, Debug)]
pub struct Trust {
    pub signers: AllowedSigners,
}

impl Trust {
    pub fn load(path: &Path) -> Result<Trust, SignError> {
        Ok(Trust {
            signers: AllowedSigners::load(path)?,
        })
    }

    pub fn path(&self) -> &Path {
        &self.signers.path
    }

    /// Who, by this file, made a signature whose key is `key`.
    fn vouch(&self, key: &ssh_key::public::KeyData) -> Result<Signer, SignError> {
        let signer = sshsig::key_signer(key);
        match self.signers.vouch(key, NAMESPACE, chrono::Utc::now()) {
            Ok(entries) => {
                let principals: BTreeSet<&str> =
                    entries.iter().map(|e| e.principals.as_str()).collect();
                Ok(Signer {
                    principals: principals.into_iter().collect::<Vec<_>>().join(","),
                    ..signer
                })
            }
            Err(refusals) if refusals.is_empty() => Err(SignError::Untrusted {
                signer,
                trust: self.path().to_path_buf(),
            }),
            Err(refusals) => Err(SignError::Refused {
                signer,
                trust: self.path().to_path_buf(),
                why: refusals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
}

/// A meta whose signature checked out: who signed it, and the sha256 of the exact
/// bytes that were checked (what an increment records of its base).
#[derive(Clone, Debug)]
pub struct Verified {
    pub signer: Signer,
    pub meta_sha256: String,
}

/// A meta's bytes, bounded as the meta reader bounds them (this is read before
/// the signature is checked, so it is hostile).
fn read_meta(path: &Path) -> Result<Vec<u8>, SignError> {
    use std::io::Read;
    let limit = crate::bundle::meta::MAX_META_BYTES;
    let mut bytes = Vec::new();
    crate::transport::file_io::open_regular(path)
        .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes))
        .and_then(|_| {
            if bytes.len() as u64 > limit {
                Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    crate::tr!("larger than {} bytes", "超过 {} 字节", limit),
                ))
            } else {
                Ok(())
            }
        })
        .map_err(|source| SignError::MetaRead {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// Checks `bytes` (a meta's content) against the signature at `sig` and the trust
/// file; the signature is checked before the signer is looked up, so a forged
/// signature is called invalid, not untrusted.
fn check_bytes(bytes: &[u8], sig: &Path, trust: &Trust) -> Result<Verified, SignError> {
    let signature = sshsig::read_signature(sig)?;
    sshsig::verify(&signature, bytes, sig)?;
    let signer = trust.vouch(signature.public_key())?;
    Ok(Verified {
        signer,
        meta_sha256: hex::encode(sha2::Sha256::digest(bytes)),
    })
}

/// Checks a meta file's signature (`<meta>.sig`) against the trust file.
pub fn check_meta(meta_path: &Path, trust: &Trust) -> Result<Verified, SignError> {
    let bytes = read_meta(meta_path)?;
    check_bytes(&bytes, &sig_path(meta_path), trust)
}

/// Opens a bundle only when its meta's signature verifies against the trust file;
/// the bundle opened is the one whose bytes were checked. Nothing else of the
/// bundle (data files, bases) has been read when this returns an error. This is
/// what every command that reads a bundle under `--trust` calls first (`ferry copy`
/// from a bundle too).
pub fn open_trusted(meta_path: &Path, trust: &Trust) -> Result<(Bundle, Signer), SignError> {
    let verified = check_meta(meta_path, trust)?;
    let bundle = Bundle::open(meta_path)?;
    if bundle.meta_sha256 != verified.meta_sha256 {
        return Err(SignError::MetaChanged {
            path: meta_path.to_path_buf(),
        });
    }
    Ok((bundle, verified.signer))
}

/// Before the base bundles of an increment are read (export, serve): each base that
/// will be read must be the one the signed chain names (its meta sha256 is recorded
/// by a meta already trusted), or carry a trusted signature of its own. Looks for
/// bases where [`crate::engine::export::locate_all`] does: beside the bundle, then
/// in `base_dirs`; a base found nowhere is left to that function to report.
/// Returns each base read with how it was vouched for.
pub fn check_bases(
    bundle: &Bundle,
    base_dirs: &[PathBuf],
    trust: &Trust,
) -> Result<Vec<(String, BaseTrust)>, SignError> {
    let mut dirs = vec![bundle.dir.clone()];
    dirs.extend(base_dirs.iter().cloned());
    // name -> meta sha256, as recorded by trusted metas.
    let mut recorded: BTreeMap<String, String> = bundle
        .meta
        .bases
        .iter()
        .map(|b| (b.name.clone(), b.meta_sha256.clone()))
        .collect();
    let mut pending: BTreeSet<String> = bundle
        .meta
        .blobs
        .iter()
        .filter_map(|b| b.base.clone())
        .collect();
    pending.extend(bundle.meta.bases.iter().map(|b| b.name.clone()));
    let mut done = Vec::new();
    let mut found: BTreeMap<String, (PathBuf, Vec<u8>)> = BTreeMap::new();
    for name in &pending {
        if let Some(path) = dirs
            .iter()
            .map(|d| d.join(format!("{name}_meta.yaml")))
            .find(|p| p.is_file())
        {
            let bytes = read_meta(&path)?;
            found.insert(name.clone(), (path, bytes));
        }
    }
    // Resolve by recorded hashes first (a chain), then by the bases' own signatures.
    while !found.is_empty() {
        let by_chain = found.iter().find_map(|(name, (_, bytes))| {
            let sha = hex::encode(sha2::Sha256::digest(bytes));
            (recorded.get(name) == Some(&sha)).then(|| name.clone())
        });
        let (name, how) = match by_chain {
            Some(name) => (name, BaseTrust::Chain),
            None => {
                let Some((name, (path, bytes))) = found.iter().next() else {
                    break;
                };
                let why_not_chain = match recorded.get(name) {
                    Some(_) => crate::tr!(
                        "its meta is not the one the signed increment names (its sha256 differs)",
                        "其元数据不是已签名增量包所记录的那一份 (sha256 不同)"
                    ),
                    None => crate::tr!(
                        "no signed meta records its sha256",
                        "没有已签名的元数据记录其 sha256"
                    ),
                };
                match check_bytes(bytes, &sig_path(path), trust) {
                    Ok(v) => (name.clone(), BaseTrust::Signed(v.signer)),
                    Err(e) => {
                        return Err(SignError::Base {
                            name: name.clone(),
                            path: path.clone(),
                            detail: format!("{why_not_chain}; {e}"),
                        })
                    }
                }
            }
        };
        let Some((path, bytes)) = found.remove(&name) else {
            break;
        };
        let meta = crate::bundle::meta::Meta::parse(&bytes, &path.display().to_string())
            .map_err(|e| SignError::Bundle(e.into()))?;
        for b in &meta.bases {
            recorded
                .entry(b.name.clone())
                .or_insert_with(|| b.meta_sha256.clone());
        }
        done.push((name, how));
    }
    Ok(done)
}

/// How a base bundle came to be trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseTrust {
    /// Its meta's sha256 is the one a trusted meta records.
    Chain,
    /// Its own signature verifies against the trust file.
    Signed(Signer),
}

/// Signs a meta: writes `<meta>.sig` (through a temporary file, renamed into place,
/// so a reader never sees half a signature). Returns its path.
pub fn sign_bundle(meta_path: &Path, key: &SigningKey) -> Result<PathBuf, SignError> {
    let bytes = read_meta(meta_path)?;
    let armored = key.sign(&bytes)?;
    let sig = sig_path(meta_path);
    let mut tmp = sig.clone().into_os_string();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let write = |p: &Path| -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(p)?;
        f.write_all(armored.as_bytes())?;
        f.sync_all()
    };
    write(&tmp)
        .and_then(|()| std::fs::rename(&tmp, &sig))
        .map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            SignError::Write {
                path: sig.clone(),
                source,
            }
        })?;
    Ok(sig)
}

/// What `ferry ls` says about a bundle's signature.
#[derive(Debug)]
pub enum State {
    /// No `<meta>.sig`.
    Unsigned,
    /// The signature matches the meta; made by this key (with principals when a
    /// trust file vouched for it).
    Good(Signer),
    /// The signature matches the meta, but the trust file refuses its key.
    Untrusted(SignError),
    /// The signature is there but does not match, or cannot be read.
    Bad(SignError),
}

/// The signature state of a meta, checked against `trust` when given.
pub fn state(meta_path: &Path, trust: Option<&Trust>) -> State {
    let sig = sig_path(meta_path);
    let bytes = match read_meta(meta_path) {
        Ok(b) => b,
        Err(e) => return State::Bad(e),
    };
    let signature = match sshsig::read_signature(&sig) {
        Ok(s) => s,
        Err(SignError::Missing { .. }) => return State::Unsigned,
        Err(e) => return State::Bad(e),
    };
    let signer = match sshsig::verify(&signature, &bytes, &sig) {
        Ok(s) => s,
        Err(e) => return State::Bad(e),
    };
    match trust {
        None => State::Good(signer),
        Some(t) => match t.vouch(signature.public_key()) {
            Ok(s) => State::Good(s),
            Err(e) => State::Untrusted(e),
        },
    }
}
