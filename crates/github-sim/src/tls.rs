//! HTTPS: the rustls server configuration from a PEM certificate chain and key, as a
//! GitHub Enterprise Server behind a private CA would present.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

fn invalid(path: &Path, what: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {what}: {error}", path.display()),
    )
}

/// A TLS acceptor serving the certificate chain in `cert_file` (PEM, leaf first) with the
/// private key in `key_file` (PEM: PKCS#8, PKCS#1 or SEC1), HTTP/1.1 over ALPN.
///
/// # Errors
/// A file that cannot be read, holds no certificate or key, or a key that does not fit.
pub(crate) fn acceptor(cert_file: &Path, key_file: &Path) -> io::Result<TlsAcceptor> {
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| invalid(cert_file, "cannot read the certificates", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert_file, "malformed PEM certificate", e))?;
    if chain.is_empty() {
        return Err(invalid(cert_file, "no certificate", "the file holds none"));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| invalid(key_file, "cannot read the private key", e))?;
    // ring, as everywhere in the workspace: no reliance on a process-wide default provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(key_file, "the key does not fit the certificate", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
