//! `--tls-cert/--tls-key`: a rustls server configuration from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}", crate::tr!("TLS certificate {}: {}", "TLS 证书 {}: {}", .path.display(), .reason))]
    Certificate { path: PathBuf, reason: String },
    #[error("{}", crate::tr!("TLS key {}: {}", "TLS 私钥 {}: {}", .path.display(), .reason))]
    Key { path: PathBuf, reason: String },
    #[error("{}", crate::tr!("TLS setup: {}", "TLS 设置: {}", .0))]
    Config(String),
}

/// An acceptor serving the certificate chain in `cert` (PEM, leaf first) with the
/// private key in `key` (PEM: PKCS#8, PKCS#1 or SEC1), HTTP/1.1 only.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_path_buf(),
            reason: crate::i18n::t("no certificate in the file", "文件中没有证书").to_string(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError::Key {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
