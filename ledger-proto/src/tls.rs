//! The cluster's mutual TLS (docs/SECURITY.md): every lognode and gateway holds the cluster CA's
//! certificate and a certificate of its own signed by that CA. A lognode's gRPC server (Raft and
//! the client API) asks every caller for its certificate and refuses one the CA did not sign;
//! callers check the server's certificate against the CA and the name [`SERVER_NAME`].

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The DNS name every lognode certificate carries (as a subject alternative name) and every
/// caller checks: lognodes are told apart by their CA, not by their host names, so certificates
/// survive address changes.
pub const SERVER_NAME: &str = "lognode";

/// The cluster CA's certificate and this process's own certificate and key, as PEM.
#[derive(Clone)]
pub struct ClusterTls {
    ca_pem: Vec<u8>,
    ca: Certificate,
    identity: Identity,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterTls(..)")
    }
}

/// Reads a PEM file that must hold a `what` block; the error names the flag and the file.
fn read_pem(flag: &str, path: &Path, what: &[&str]) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    if !what.iter().any(|w| text.contains(&format!("-----BEGIN {w}-----"))) {
        return Err(format!("{flag} {}: no PEM block of {} in it", path.display(), what.join(" or ")));
    }
    Ok(bytes)
}

impl ClusterTls {
    /// Reads the CA certificate, the certificate and the private key (PEM files). `flags` names
    /// the three flags, for the errors (`["--tls-ca", "--tls-cert", "--tls-key"]`).
    pub fn load(flags: [&str; 3], ca: &Path, cert: &Path, key: &Path) -> Result<ClusterTls, String> {
        let ca_pem = read_pem(flags[0], ca, &["CERTIFICATE"])?;
        let cert_pem = read_pem(flags[1], cert, &["CERTIFICATE"])?;
        let key_pem = read_pem(flags[2], key, &["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"])?;
        Ok(Self::from_pem(&ca_pem, &cert_pem, &key_pem))
    }

    /// From PEM bytes already read.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> ClusterTls {
        ClusterTls { ca_pem: ca.to_vec(), ca: Certificate::from_pem(ca), identity: Identity::from_pem(cert, key) }
    }

    /// The CA certificate's PEM (what the gossip key is derived from when none is given).
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// A lognode's server side: its certificate, and a client certificate signed by the CA
    /// required of every caller; a handshake longer than `handshake_timeout` is dropped.
    pub fn server(&self, handshake_timeout: Duration) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .timeout(handshake_timeout)
    }

    /// A caller's side: the server must show a certificate for [`SERVER_NAME`] signed by the CA;
    /// this process shows its own.
    pub fn client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(self.ca.clone()).identity(self.identity.clone()).domain_name(SERVER_NAME)
    }
}

/// The URI of a gRPC endpoint at `addr` (`host:port`): `https` with TLS, `http` without.
pub fn endpoint_uri(addr: &str, tls: bool) -> String {
    if tls { format!("https://{addr}") } else { format!("http://{addr}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_without_their_pem_block_are_named() {
        let dir = std::env::temp_dir().join(format!("ledger-proto-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (ca, cert, key) = (dir.join("ca.pem"), dir.join("node.pem"), dir.join("node.key"));
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n").expect("write");
        std::fs::write(&cert, "not pem").expect("write");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n").expect("write");
        let flags = ["--tls-ca", "--tls-cert", "--tls-key"];
        let e = ClusterTls::load(flags, &ca, &cert, &key).expect_err("cert is not PEM");
        assert!(e.starts_with("--tls-cert ") && e.contains("node.pem") && e.contains("CERTIFICATE"), "{e}");
        let e = ClusterTls::load(flags, &ca, &ca, &dir.join("missing.key")).expect_err("missing key");
        assert!(e.starts_with("--tls-key ") && e.contains("missing.key"), "{e}");
        assert!(ClusterTls::load(flags, &ca, &ca, &key).is_ok(), "PEM blocks found (parsed when used)");
        assert_eq!(endpoint_uri("127.0.0.1:1", true), "https://127.0.0.1:1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
