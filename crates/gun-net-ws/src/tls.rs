//! TLS (`wss://`, `https://`) through rustls with the `ring` provider. Feature `tls`.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Error;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(reason: &'static str) -> impl FnOnce(rustls::Error) -> Error {
    move |e| Error::Tls {
        reason,
        source: Box::new(e),
    }
}

fn pem_err(
    path: &Path,
    reason: &'static str,
) -> impl FnOnce(rustls::pki_types::pem::Error) -> Error {
    let path = path.to_path_buf();
    move |e| Error::Pem {
        path,
        reason,
        source: Some(Box::new(e)),
    }
}

/// A server certificate chain and private key, for [`ServerOptions::tls`](crate::ServerOptions).
///
/// Clones share one swappable cell: [`replace`](Self::replace) on any clone changes the
/// certificate every clone (and so a running [`Server`](crate::Server)) hands to the
/// connections it accepts from then on, e.g. to reload a renewed certificate without a restart.
#[derive(Clone)]
pub struct TlsServerConfig(Arc<RwLock<Arc<ServerConfig>>>);

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsServerConfig(..)")
    }
}

impl TlsServerConfig {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1), e.g. the `fullchain.pem` and `privkey.pem` of Let's Encrypt.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, Error> {
        let (cert, key) = (cert.as_ref(), key.as_ref());
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(pem_err(cert, "cannot read certificate file"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err(cert, "invalid certificate PEM"))?;
        if chain.is_empty() {
            return Err(Error::Pem {
                path: cert.to_path_buf(),
                reason: "no certificate found",
                source: None,
            });
        }
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(pem_err(key, "no usable private key"))?;
        Self::from_der(chain, key)
    }

    /// Like [`from_pem_files`](Self::from_pem_files) with the PEM text in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let mem = Path::new("<memory>");
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err(mem, "invalid certificate PEM"))?;
        if chain.is_empty() {
            return Err(Error::Pem {
                path: mem.to_path_buf(),
                reason: "no certificate found",
                source: None,
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(pem_err(mem, "no usable private key"))?;
        Self::from_der(chain, key)
    }

    fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, Error> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err("protocol versions"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(tls_err(
                "certificate and key do not match or are unsupported",
            ))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(Arc::new(RwLock::new(Arc::new(config)))))
    }

    /// Makes this config (and every clone of it) use the certificate and key of `new` from
    /// now on: TLS handshakes that start afterwards present them; connections already
    /// established keep the certificate they were served with.
    pub fn replace(&self, new: &TlsServerConfig) {
        let config = new.config();
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = config;
    }

    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The roots a client trusts for `wss://`, for [`ClientOptions::tls`](crate::ClientOptions)
/// (which, when `None`, uses [`TlsClientConfig::webpki_roots`]).
#[derive(Clone)]
pub struct TlsClientConfig(Arc<ClientConfig>);

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsClientConfig(..)")
    }
}

impl TlsClientConfig {
    /// Trusts the Mozilla root certificates shipped by the `webpki-roots` crate.
    pub fn webpki_roots() -> Result<Self, Error> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(roots)
    }

    /// Trusts only the certificates in `pem` (e.g. a private CA or a self-signed relay
    /// certificate).
    pub fn from_root_pem(pem: &[u8]) -> Result<Self, Error> {
        let mem = Path::new("<memory>");
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err(mem, "invalid certificate PEM"))?;
        Self::from_roots(mem, certs)
    }

    /// Like [`from_root_pem`](Self::from_root_pem), reading a file.
    pub fn from_root_pem_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(pem_err(path, "cannot read certificate file"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_err(path, "invalid certificate PEM"))?;
        Self::from_roots(path, certs)
    }

    fn from_roots(path: &Path, certs: Vec<CertificateDer<'static>>) -> Result<Self, Error> {
        if certs.is_empty() {
            return Err(Error::Pem {
                path: path.to_path_buf(),
                reason: "no certificate found",
                source: None,
            });
        }
        let mut roots = RootCertStore::empty();
        for cert in certs {
            roots
                .add(cert)
                .map_err(tls_err("root certificate rejected"))?;
        }
        Self::with_roots(roots)
    }

    fn with_roots(roots: RootCertStore) -> Result<Self, Error> {
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err("protocol versions"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self(Arc::new(config)))
    }

    /// TLS handshake with `host` (a DNS name or an IP address) over `tcp`.
    pub(crate) async fn connect(
        &self,
        host: &str,
        tcp: TcpStream,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(self.0.clone()).connect(name, tcp).await
    }
}
