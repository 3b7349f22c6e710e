//! SSH signatures over a meta file, byte-compatible with `ssh-keygen -Y sign` and
//! `ssh-keygen -Y verify` (OpenSSH's PROTOCOL.sshsig): an armored `SSH SIGNATURE`
//! holding the signer's public key, the namespace, the hash algorithm (sha512, as
//! ssh-keygen uses) and the signature. Keys are OpenSSH private key files as
//! ssh-keygen writes them (Ed25519, ECDSA, RSA), encrypted or not.

use super::SignError;
use ssh_key::{HashAlg, LineEnding, PrivateKey, SshSig};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Who made a signature: the key, and (when checked against an allowed_signers
/// file) the principals that file gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    /// The principals field of the allowed_signers line; empty when unchecked.
    pub principals: String,
    /// `ED25519`, `ECDSA`, `RSA`...
    pub algorithm: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.principals.is_empty() {
            write!(f, "{} {}", self.algorithm, self.fingerprint)
        } else {
            write!(
                f,
                "{} ({} {})",
                self.principals, self.algorithm, self.fingerprint
            )
        }
    }
}

/// A short name for a key's algorithm, as `ssh-keygen -l` prints it.
pub fn algorithm_name(key: &ssh_key::public::KeyData) -> String {
    use ssh_key::Algorithm;
    match key.algorithm() {
        Algorithm::Ed25519 => "ED25519".into(),
        Algorithm::Ecdsa { .. } => "ECDSA".into(),
        Algorithm::Rsa { .. } => "RSA".into(),
        Algorithm::Dsa => "DSA".into(),
        Algorithm::SkEd25519 => "ED25519-SK".into(),
        Algorithm::SkEcdsaSha2NistP256 => "ECDSA-SK".into(),
        other => other.as_str().to_string(),
    }
}

/// The signer of a key, without principals.
pub fn key_signer(key: &ssh_key::public::KeyData) -> Signer {
    Signer {
        principals: String::new(),
        algorithm: algorithm_name(key),
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
    }
}

/// Where the passphrase of an encrypted key comes from.
#[derive(Clone, Debug, Default)]
pub struct Passphrase {
    /// The name of an environment variable holding it (cfg `sign.passphrase_env`).
    pub env: Option<String>,
}

/// A private key ready to sign (decrypted).
pub struct SigningKey {
    pub path: PathBuf,
    key: PrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.path.display())
    }
}

impl SigningKey {
    /// Reads an OpenSSH private key; an encrypted one is decrypted with the
    /// passphrase from the environment variable, else asked for on the terminal.
    /// Done before any work starts, so a wrong passphrase costs nothing.
    pub fn load(path: &Path, passphrase: &Passphrase) -> Result<SigningKey, SignError> {
        let text = std::fs::read(path).map_err(|source| SignError::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        let key = PrivateKey::from_openssh(&text).map_err(|e| SignError::KeyFormat {
            path: path.to_path_buf(),
            detail: if text.starts_with(b"ssh-") || text.starts_with(b"ecdsa-") {
                crate::tr!(
                    "this is a public key; give the private key (the file without .pub)",
                    "这是公钥; 请给出私钥 (不带 .pub 的文件)"
                )
            } else {
                e.to_string()
            },
        })?;
        let key = if key.is_encrypted() {
            let secret = read_passphrase(path, passphrase)?;
            key.decrypt(secret.as_bytes())
                .map_err(|_| SignError::Passphrase {
                    path: path.to_path_buf(),
                })?
        } else {
            key
        };
        Ok(SigningKey {
            path: path.to_path_buf(),
            key,
        })
    }

    pub fn signer(&self) -> Signer {
        key_signer(self.key.public_key().key_data())
    }

    /// Signs `message` in ferry's namespace; returns the armored signature.
    pub fn sign(&self, message: &[u8]) -> Result<String, SignError> {
        let failed = |detail: String| SignError::Sign {
            path: self.path.clone(),
            detail,
        };
        let sig = match self.key.key_data() {
            ssh_key::private::KeypairData::Rsa(rsa) => {
                sign_rsa(rsa, self.key.public_key().key_data(), message).map_err(failed)?
            }
            _ => self
                .key
                .sign(super::NAMESPACE, HashAlg::Sha512, message)
                .map_err(|e| failed(e.to_string()))?,
        };
        sig.to_pem(LineEnding::LF).map_err(|e| SignError::Sign {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }
}

/// An RSA sshsig as ssh-keygen makes it (rsa-sha2-512, PKCS#1 v1.5, sha512 message
/// hash), signed here because ssh-key 0.6.7 rebuilds RSA private keys wrongly.
fn sign_rsa(
    kp: &ssh_key::private::RsaKeypair,
    public: &ssh_key::public::KeyData,
    message: &[u8],
) -> Result<SshSig, String> {
    use rsa::signature::RandomizedSigner as _;
    use rsa::signature::SignatureEncoding as _;
    let int = |m: &ssh_key::Mpint| -> Result<rsa::BigUint, String> {
        m.as_positive_bytes()
            .map(rsa::BigUint::from_bytes_be)
            .ok_or_else(|| "negative RSA key component".to_string())
    };
    let key = rsa::RsaPrivateKey::from_components(
        int(&kp.public.n)?,
        int(&kp.public.e)?,
        int(&kp.private.d)?,
        vec![int(&kp.private.p)?, int(&kp.private.q)?],
    )
    .map_err(|e| e.to_string())?;
    let data = SshSig::signed_data(super::NAMESPACE, HashAlg::Sha512, message)
        .map_err(|e| e.to_string())?;
    let signer = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha512>::new(key);
    // Randomized: RSA blinding, against timing side channels.
    let signature = signer
        .try_sign_with_rng(&mut rsa::rand_core::OsRng, &data)
        .map_err(|e| e.to_string())?;
    let signature = ssh_key::Signature::new(
        ssh_key::Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        signature.to_vec(),
    )
    .map_err(|e| e.to_string())?;
    SshSig::new(public.clone(), super::NAMESPACE, HashAlg::Sha512, signature)
        .map_err(|e| e.to_string())
}

fn read_passphrase(path: &Path, how: &Passphrase) -> Result<String, SignError> {
    if let Some(var) = how.env.as_deref().filter(|v| !v.is_empty()) {
        return std::env::var(var).map_err(|_| SignError::PassphraseEnv {
            path: path.to_path_buf(),
            var: var.to_string(),
        });
    }
    if !std::io::stdin().is_terminal() {
        return Err(SignError::NoPassphrase {
            path: path.to_path_buf(),
        });
    }
    rpassword::prompt_password(crate::tr!(
        "Enter passphrase for {}: ",
        "请输入 {} 的密码: ",
        path.display()
    ))
    .map_err(|source| SignError::KeyRead {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads an armored SSH signature, bounded (a real one is under 2 KiB; RSA 16384
/// stays under 8 KiB).
pub fn read_signature(path: &Path) -> Result<SshSig, SignError> {
    use std::io::Read;
    const LIMIT: u64 = 64 * 1024;
    let file = match crate::transport::file_io::open_regular(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignError::Missing {
                sig: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(SignError::SigRead {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut text = Vec::new();
    file.take(LIMIT + 1)
        .read_to_end(&mut text)
        .map_err(|source| SignError::SigRead {
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > LIMIT {
        return Err(SignError::SigFormat {
            path: path.to_path_buf(),
            detail: crate::tr!(
                "over {LIMIT} bytes, not an SSH signature",
                "超过 {LIMIT} 字节, 不是 SSH 签名"
            ),
        });
    }
    SshSig::from_pem(&text).map_err(|e| SignError::SigFormat {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Checks that `sig` is a signature over `message` in ferry's namespace by the key
/// it carries. Who that key belongs to is the allowed_signers file's business.
pub fn verify(sig: &SshSig, message: &[u8], sig_path: &Path) -> Result<Signer, SignError> {
    if sig.namespace() != super::NAMESPACE {
        return Err(SignError::Namespace {
            sig: sig_path.to_path_buf(),
            found: sig.namespace().to_string(),
        });
    }
    let key = ssh_key::PublicKey::new(sig.public_key().clone(), "");
    key.verify(super::NAMESPACE, message, sig)
        .map_err(|_| SignError::Invalid {
            sig: sig_path.to_path_buf(),
        })?;
    Ok(key_signer(sig.public_key()))
}
