//! Certificates for mutual TLS: the network's CA, the certificates it issues
//! to the gateway, registries and courts, what a certificate says about its
//! holder, and the development PKI that `assetgw dev` creates.
//!
//! A certificate names its holder in the subject: `OU` is the role
//! (`gateway`, `registry` or `court`) and `CN` the name (the gateway's name,
//! the registry's configured name, or the court code such as `京0105`, as a
//! UTF-8 string). A registry's certificate also carries its name as a DNS
//! subject-alternative name, which the gateway checks when it connects.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use chrono::Datelike;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::core::{
    clock::{Clock, SystemClock},
    identifiers,
};

/// Whose certificate it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The gateway: serves courts, calls registries.
    Gateway,
    /// A registry, by its configured name.
    Registry(String),
    /// A court, by its court code (R20).
    Court(String),
}

impl Role {
    fn unit(&self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Registry(_) => "registry",
            Role::Court(_) => "court",
        }
    }

    fn name(&self) -> &str {
        match self {
            Role::Gateway => "gateway",
            Role::Registry(n) | Role::Court(n) => n,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.unit(), self.name())
    }
}

/// A certificate or key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("{0}")]
    Cert(#[from] rcgen::Error),
    /// What was asked for cannot be issued.
    #[error("{0}")]
    Invalid(String),
    /// The files do not make a TLS configuration (unreadable PEM, key not matching).
    #[error("{0}")]
    Tls(String),
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io { path: path.into(), source })
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), PkiError> {
    let io = |source| PkiError::Io { path: path.into(), source };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    fs::write(path, text).map_err(io)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    Ok(())
}

/// Where a holder's certificate and key live under a PKI directory:
/// `gateway.pem`, `registries/<name>.pem`, `courts/<code>.pem` (keys `.key`).
pub fn paths(dir: &Path, role: &Role) -> (PathBuf, PathBuf) {
    let base = match role {
        Role::Gateway => dir.join("gateway"),
        Role::Registry(n) => dir.join("registries").join(n),
        Role::Court(c) => dir.join("courts").join(c),
    };
    (base.with_extension("pem"), base.with_extension("key"))
}

/// The validity of an issued certificate, in whole days around today.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    /// First valid day, relative to today (negative: in the past).
    pub from_days: i64,
    /// Last valid day, relative to today.
    pub until_days: i64,
}

impl Validity {
    /// From yesterday (clock skew) for `days` days.
    pub fn days(days: i64) -> Self {
        Self { from_days: -1, until_days: days }
    }
}

fn day(offset: i64) -> time::OffsetDateTime {
    let d = SystemClock.now().date_naive() + chrono::Duration::days(offset);
    rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
}

/// The network's certificate authority.
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
}

impl Ca {
    /// A new CA, written to `dir/ca.pem` and `dir/ca.key`.
    pub fn create(dir: &Path, name: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::OrganizationName, "assetgw");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = day(-1);
        params.not_after = day(3650);
        let cert = params.self_signed(&key)?;
        write(&dir.join("ca.pem"), &cert.pem(), false)?;
        write(&dir.join("ca.key"), &key.serialize_pem(), true)?;
        Ok(Ca { cert_pem: cert.pem(), key })
    }

    /// The CA in `dir`.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let cert_pem = read(&dir.join("ca.pem"))?;
        let key = KeyPair::from_pem(&read(&dir.join("ca.key"))?)?;
        Ok(Ca { cert_pem, key })
    }

    /// The CA certificate (PEM), the trust anchor every party installs.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a certificate and key (PEM) for `role`; `hosts` are the DNS
    /// names or IP addresses a server is reached at.
    pub fn issue(&self, role: &Role, hosts: &[String], validity: Validity) -> Result<(String, String), PkiError> {
        if let Role::Court(code) = role {
            identifiers::parse_court_code(code).map_err(PkiError::Invalid)?;
        }
        let mut names: Vec<String> = hosts.to_vec();
        if let Role::Registry(name) = role {
            names.insert(0, name.clone());
        }
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::OrganizationName, "assetgw");
        params.distinguished_name.push(DnType::OrganizationalUnitName, role.unit());
        params.distinguished_name.push(DnType::CommonName, DnValue::Utf8String(role.name().to_string()));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // A court may only be a client; a registry only a server; the gateway is both.
        params.extended_key_usages = match role {
            Role::Court(_) => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Role::Registry(_) => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Role::Gateway => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.not_before = day(validity.from_days);
        params.not_after = day(validity.until_days);
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Issues for `role` and writes the files at [`paths`] under `dir`.
    pub fn issue_into(
        &self,
        dir: &Path,
        role: &Role,
        hosts: &[String],
        validity: Validity,
    ) -> Result<(PathBuf, PathBuf), PkiError> {
        let (cert, key) = self.issue(role, hosts, validity)?;
        let (cert_path, key_path) = paths(dir, role);
        write(&cert_path, &cert, false)?;
        write(&key_path, &key, true)?;
        Ok((cert_path, key_path))
    }
}

/// Courts that get a development certificate.
pub const DEV_COURTS: [&str; 5] = ["京0105", "粤0304", "粤0305", "沪0101", "京"];

/// Makes the development PKI under `dir` unless it exists: a CA, the
/// gateway's certificate (for localhost), one per registry and one per
/// [`DEV_COURTS`] court. Returns whether it was created.
pub fn ensure_dev(dir: &Path, registries: &[&str]) -> Result<bool, PkiError> {
    let ca = match Ca::load(dir) {
        Ok(ca) => ca,
        Err(PkiError::Io { .. }) => Ca::create(dir, "assetgw development CA")?,
        Err(e) => return Err(e),
    };
    let mut roles = vec![Role::Gateway];
    roles.extend(registries.iter().map(|r| Role::Registry(r.to_string())));
    roles.extend(DEV_COURTS.iter().map(|c| Role::Court(c.to_string())));
    let mut created = false;
    let loopback = ["localhost".to_string(), "127.0.0.1".to_string()];
    for role in roles {
        if !paths(dir, &role).0.exists() {
            ca.issue_into(dir, &role, &loopback, Validity::days(365))?;
            created = true;
        }
    }
    Ok(created)
}

/// Who a (verified) certificate belongs to, from its subject's OU and CN.
pub fn holder(der: &[u8]) -> Result<Role, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let subject = cert.subject();
    let unit = subject.iter_organizational_unit().next().and_then(|a| a.as_str().ok());
    let name = subject.iter_common_name().next().and_then(|a| a.as_str().ok()).map(str::to_string);
    match (unit, name) {
        (Some("gateway"), Some(_)) => Ok(Role::Gateway),
        (Some("registry"), Some(n)) => Ok(Role::Registry(n)),
        (Some("court"), Some(code)) => identifiers::parse_court_code(&code)
            .map(Role::Court)
            .map_err(|_| format!("the court certificate's CN `{code}` is not a court code such as 京0105")),
        _ => Err("the certificate names no assetgw role (subject OU gateway, registry or court, with a CN)".into()),
    }
}

/// The PEM files a TLS party uses: the CA it trusts, its own certificate and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// Our certificate.
    pub cert: PathBuf,
    /// Our private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files of `role` under a PKI directory.
    pub fn of(dir: &Path, role: &Role) -> Self {
        let (cert, key) = paths(dir, role);
        Self { ca: dir.join("ca.pem"), cert, key }
    }

    fn identity(&self) -> Result<Identity, PkiError> {
        Ok(Identity::from_pem(read(&self.cert)?, read(&self.key)?))
    }

    fn ca(&self) -> Result<Certificate, PkiError> {
        Ok(Certificate::from_pem(read(&self.ca)?))
    }

    /// A server that requires a client certificate signed by our CA and speaks HTTP/2.
    pub fn server(&self) -> Result<Arc<ServerConfig>, PkiError> {
        let key = PrivateKeyDer::from_pem_slice(read(&self.key)?.as_bytes()).map_err(|e| bad(&self.key, &e))?;
        let config = verifying_clients(&self.ca)?.with_single_cert(pems(&self.cert)?, key);
        Ok(h2(config.map_err(|e| bad(&self.cert, &e))?))
    }

    /// A client config that presents our certificate, trusts the CA and speaks HTTP/2, for any
    /// number of servers (each connection names its own), resuming up to `sessions` of them.
    pub fn client_config(&self, sessions: usize) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        let roots = roots(&self.ca)?;
        let key = PrivateKeyDer::from_pem_slice(read(&self.key)?.as_bytes()).map_err(|e| bad(&self.key, &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&self.ca, &e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(pems(&self.cert)?, key)
            .map_err(|e| bad(&self.cert, &e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        config.resumption = rustls::client::Resumption::in_memory_sessions(sessions);
        Ok(Arc::new(config))
    }

    /// A client that presents our certificate and expects the server to be `server_name`.
    pub fn client(&self, server_name: &str) -> Result<ClientTlsConfig, PkiError> {
        Ok(ClientTlsConfig::new().ca_certificate(self.ca()?).identity(self.identity()?).domain_name(server_name))
    }
}

/// A server config for many registries behind one socket: each client gets
/// the certificate of the registry it names (SNI) from the PKI in `dir`, and
/// must present one of the CA's, as for [`TlsFiles::server`].
pub fn sni_server(dir: &Path, registries: &[String]) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = rustls::crypto::ring::default_provider();
    let mut resolver = rustls::server::ResolvesServerCertUsingSni::new();
    for name in registries {
        let (cert, key) = paths(dir, &Role::Registry(name.clone()));
        let der = PrivateKeyDer::from_pem_slice(read(&key)?.as_bytes()).map_err(|e| bad(&key, &e))?;
        let signing = provider.key_provider.load_private_key(der).map_err(|e| bad(&key, &e))?;
        let certified = rustls::sign::CertifiedKey::new(pems(&cert)?, signing);
        resolver.add(name, certified).map_err(|e| bad(&cert, &e))?;
    }
    Ok(h2(verifying_clients(&dir.join("ca.pem"))?.with_cert_resolver(Arc::new(resolver))))
}

/// A server config builder that requires a client certificate from the CA in `ca`.
fn verifying_clients(
    ca: &Path,
) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::server::WantsServerCert>, PkiError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone()).build().map_err(|e| bad(ca, &e))?;
    Ok(ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier))
}

/// Whether the certificate in `cert` is one a registry called `name` may
/// present: it chains to the CA in `ca`, is valid now and names `name`. The
/// reason, when it is not.
pub fn check_certificate(cert: &Path, ca: &Path, name: &str) -> Result<(), String> {
    let roots = roots(ca).map_err(|e| e.to_string())?;
    let chain = pems(cert).map_err(|e| e.to_string())?;
    let (leaf, intermediates) =
        chain.split_first().ok_or_else(|| format!("{}: no certificate in it", cert.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    let server = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|_| format!("`{name}` is not a DNS name, which a registry's certificate must carry"))?;
    let now = rustls::pki_types::UnixTime::now();
    rustls::client::danger::ServerCertVerifier::verify_server_cert(&*verifier, leaf, intermediates, &server, &[], now)
        .map(|_| ())
        .map_err(|e| format!("{} is not a certificate of `{name}` from {}: {e}", cert.display(), ca.display()))
}

impl TlsFiles {
    /// When each certificate expires (Unix seconds): the gateway's own (`cert`) and the network CA's (`ca`).
    pub fn expiries(&self) -> Result<Vec<(&'static str, i64)>, PkiError> {
        let expiry = |path: &Path| -> Result<i64, PkiError> {
            let first = pems(path)?.into_iter().next().ok_or_else(|| bad(path, &"no certificate in it"))?;
            let (_, cert) = x509_parser::parse_x509_certificate(&first).map_err(|e| bad(path, &e))?;
            Ok(cert.validity().not_after.timestamp())
        };
        Ok(vec![("cert", expiry(&self.cert)?), ("ca", expiry(&self.ca)?)])
    }
}

/// Every certificate in the PEM file at `ca`, as trust anchors.
fn roots(ca: &Path) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    for cert in pems(ca)? {
        roots.add(cert).map_err(|e| bad(ca, &e))?;
    }
    Ok(Arc::new(roots))
}

/// The config, speaking HTTP/2 (gRPC) only.
fn h2(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

fn bad(path: &Path, e: &dyn std::fmt::Display) -> PkiError {
    PkiError::Tls(format!("{}: {e}", path.display()))
}

/// Every certificate in the PEM file at `path`.
fn pems(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    CertificateDer::pem_slice_iter(read(path)?.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(|e| bad(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem_text: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).unwrap().1.contents
    }

    #[test]
    fn certificates_name_their_holder() {
        let dir = std::env::temp_dir().join(format!("assetgw-pki-{}", uuid::Uuid::new_v4()));
        let ca = Ca::create(&dir, "test CA").unwrap();
        for role in [Role::Gateway, Role::Registry("bank-icbc".into()), Role::Court("京0105".into())] {
            let (cert, _) = ca.issue(&role, &[], Validity::days(1)).unwrap();
            assert_eq!(holder(&der(&cert)).unwrap(), role);
        }
        assert!(ca.issue(&Role::Court("not a court".into()), &[], Validity::days(1)).is_err());
        assert!(holder(b"garbage").is_err());
        assert_eq!(Ca::load(&dir).unwrap().cert_pem(), ca.cert_pem());
        let _ = fs::remove_dir_all(dir);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_as_a_certificate_are_refused_without_panicking(bytes in proptest::collection::vec(0u8.., 0..600)) {
            proptest::prop_assert!(holder(&bytes).is_err());
        }
    }
}
