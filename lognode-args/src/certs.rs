//! A throwaway cluster CA and its certificates (feature `certs`): what `ledger dev` and the tests
//! give lognodes (`--tls-*`) and gateways (`--cluster-*`) for mutual TLS (docs/SECURITY.md). Not
//! for production: an operator's CA belongs to the operator.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// The DNS name lognode certificates carry and callers check (`ledger_proto::tls::SERVER_NAME`).
pub const SERVER_NAME: &str = "lognode";
/// Common name of the CA.
const CA_NAME: &str = "Ledger cluster CA";

/// A CA able to sign certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn err(e: rcgen::Error) -> String {
    format!("certificate: {e}")
}

fn ca_params() -> Result<CertificateParams, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(p)
}

impl Ca {
    /// A new CA with a new key.
    pub fn new() -> Result<Ca, String> {
        let key = KeyPair::generate().map_err(err)?;
        Ok(Ca { cert: ca_params()?.self_signed(&key).map_err(err)?, key })
    }

    /// The CA whose key is `key_pem`: what it signs verifies against the CA certificate made
    /// with that key (same name, same key).
    pub fn from_key_pem(key_pem: &str) -> Result<Ca, String> {
        let key = KeyPair::from_pem(key_pem).map_err(err)?;
        Ok(Ca { cert: ca_params()?.self_signed(&key).map_err(err)?, key })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA's private key (PEM).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate for `common_name`, valid for [`SERVER_NAME`], `localhost` and `127.0.0.1`
    /// (a local gateway's HTTPS), for server and client authentication alike: (certificate PEM,
    /// private key PEM).
    pub fn issue(&self, common_name: &str) -> Result<(String, String), String> {
        let key = KeyPair::generate().map_err(err)?;
        let names = vec![SERVER_NAME.to_owned(), "localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut p = CertificateParams::new(names).map_err(err)?;
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages =
            vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.cert, &self.key).map_err(err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The files of one member: the CA certificate, its certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// The member's certificate.
    pub cert: PathBuf,
    /// The member's private key (mode 0600).
    pub key: PathBuf,
}

impl TlsFiles {
    fn flags(&self, names: [&str; 3]) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            names[0].to_owned(),
            path(&self.ca),
            names[1].to_owned(),
            path(&self.cert),
            names[2].to_owned(),
            path(&self.key),
        ]
    }

    /// `--tls-ca .. --tls-cert .. --tls-key ..` (lognode).
    pub fn lognode_flags(&self) -> Vec<String> {
        self.flags(["--tls-ca", "--tls-cert", "--tls-key"])
    }

    /// `--cluster-ca .. --cluster-cert .. --cluster-key ..` (gateway).
    pub fn gateway_flags(&self) -> Vec<String> {
        self.flags(["--cluster-ca", "--cluster-cert", "--cluster-key"])
    }
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    // Through logstore: private (0600), synced, renamed into place (only logstore syncs).
    logstore::write_atomic(&logstore::OsSyncer, dir, name, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))
}

fn read(path: &Path) -> Result<Option<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The CA of `dir` (`ca.pem`, `ca.key`), made if missing, and a certificate for each of
/// `members` (`<member>.pem`, `<member>.key`), made if missing; existing files are reused, so a
/// restarted system keeps its certificates.
pub fn ensure(dir: &Path, members: &[&str]) -> Result<Vec<TlsFiles>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let ca = match (read(&dir.join("ca.pem"))?, read(&dir.join("ca.key"))?) {
        (Some(_), Some(key)) => Ca::from_key_pem(&key)?,
        _ => {
            let ca = Ca::new()?;
            write(dir, "ca.key", &ca.key_pem())?;
            write(dir, "ca.pem", &ca.cert_pem())?;
            ca
        }
    };
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let (cert, key) = (dir.join(format!("{m}.pem")), dir.join(format!("{m}.key")));
        if !(cert.exists() && key.exists()) {
            let (c, k) = ca.issue(m)?;
            write(dir, &format!("{m}.key"), &k)?;
            write(dir, &format!("{m}.pem"), &c)?;
        }
        out.push(TlsFiles { ca: dir.join("ca.pem"), cert, key });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_made_once_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("lognode-args-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = ensure(&dir, &["node1", "gateway"]).expect("made");
        let ca = std::fs::read_to_string(&first[0].ca).expect("ca");
        let node = std::fs::read_to_string(&first[0].cert).expect("cert");
        assert!(ca.contains("BEGIN CERTIFICATE") && node.contains("BEGIN CERTIFICATE"));
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&first[0].key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "private keys are private");
        let again = ensure(&dir, &["node1", "node2"]).expect("reused");
        assert_eq!(std::fs::read_to_string(&again[0].ca).expect("ca"), ca, "the CA is kept");
        assert_eq!(std::fs::read_to_string(&again[0].cert).expect("cert"), node, "certificates are kept");
        assert!(again[1].cert.exists(), "a new member gets a certificate of the same CA");
        assert_eq!(first[1].gateway_flags()[0], "--cluster-ca");
        assert_eq!(first[0].lognode_flags()[2], "--tls-cert");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
