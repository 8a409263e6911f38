//! Mutual TLS on peer links: every node presents a certificate signed by the cluster's CA and
//! requires one from its peer, and a certificate must name the node id its Hello claims
//! (`node-<id>`, as `raftkv certs` makes them). A process without a certificate of the cluster's CA,
//! or with one of another node, is refused before any of its frames is read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::NodeId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A peer connection, in plaintext or TLS.
pub(crate) trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}

pub(crate) type PeerStream = Box<dyn PeerIo>;

/// This node's side of mutual TLS with its peers.
#[derive(Clone)]
pub struct PeerTls {
    pub(crate) connector: TlsConnector,
    pub(crate) acceptor: TlsAcceptor,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

/// Why TLS material could not be loaded (peer links here, the client port in `server`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the CA: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The certificates of a PEM file (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem { path: path.to_path_buf(), source };
    let certificates = CertificateDer::pem_file_iter(path).map_err(pem)?.collect::<Result<Vec<_>, _>>().map_err(pem)?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certificates)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem { path: path.to_path_buf(), source })
}

/// The certificates of a CA's PEM file, as the roots a verifier trusts.
pub fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(path)? {
        roots.add(certificate)?;
    }
    Ok(Arc::new(roots))
}

/// The name a node's certificate carries: `node-<id>`.
pub(crate) fn node_name(id: NodeId) -> ServerName<'static> {
    ServerName::try_from(format!("node-{}", id.0)).expect("node-<number> is a valid DNS name")
}

/// Whether `certificate` (already verified against the cluster CA) names node `id`.
pub(crate) fn names_node(certificate: &CertificateDer<'_>, id: NodeId) -> bool {
    ParsedCertificate::try_from(certificate).is_ok_and(|parsed| rustls::client::verify_server_name(&parsed, &node_name(id)).is_ok())
}

impl PeerTls {
    /// From a directory as `raftkv certs` writes it: `ca.pem`, and `node-<id>.pem` and
    /// `node-<id>-key.pem` for this node.
    pub fn from_dir(dir: &Path, me: NodeId) -> Result<PeerTls, TlsError> {
        let roots = roots(&dir.join("ca.pem"))?;
        let chain = certificates(&dir.join(format!("node-{}.pem", me.0)))?;
        let key = private_key(&dir.join(format!("node-{}-key.pem", me.0)))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        Ok(PeerTls { connector: TlsConnector::from(Arc::new(client)), acceptor: TlsAcceptor::from(Arc::new(server)) })
    }
}
