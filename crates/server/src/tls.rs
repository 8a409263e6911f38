//! TLS on the client port (rustls): the node's certificate and key from PEM files, and optionally
//! a CA whose certificates clients must present.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
pub use transport::TlsError;

/// Where the client port's TLS material is.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The node's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// If given, clients must present a certificate signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
}

/// The acceptor for the client port's connections.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let chain = transport::certificates(&files.cert)?;
    let key = transport::private_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let config = match &files.client_ca {
        Some(path) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(transport::roots(path)?, provider).build()?;
            builder.with_client_cert_verifier(verifier).with_single_cert(chain, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(chain, key)?,
    };
    Ok(TlsAcceptor::from(Arc::new(config)))
}
