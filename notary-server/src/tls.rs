//! TLS for the HTTP listener: configured PEM files, or a self-signed CA and server certificate
//! created in the data folder on first start.

use std::path::{Path, PathBuf};

use chrono::Datelike;
use notary_common::tls::TlsError;
use std::sync::Arc;

pub use notary_common::tls::ReloadingCert;

/// The files `ensure_tls_files` made (or found).
pub struct Generated {
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    /// The certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

/// Create (once) `<dir>/tls/{ca.crt,server.crt,server.key}`: a local CA and a server
/// certificate for localhost, 127.0.0.1, ::1 and this host's name.
pub fn ensure_self_signed(dir: &Path) -> Result<Generated, TlsError> {
    ensure_tls_files(&dir.join("tls"))
}

/// Create (once) `<tls>/{ca.crt,server.crt,server.key}`.
pub fn ensure_tls_files(tls: &Path) -> Result<Generated, TlsError> {
    let tls = tls.to_path_buf();
    let out = Generated {
        ca: tls.join("ca.crt"),
        cert: tls.join("server.crt"),
        key: tls.join("server.key"),
    };
    if out.ca.exists() && out.cert.exists() && out.key.exists() {
        return Ok(out);
    }
    notary_common::private::create_dir(&tls)
        .map_err(|e| TlsError::Io(format!("creating {}", tls.display()), e))?;
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let now = chrono::Utc::now();
    let (from, to) = (
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(3650),
    );
    let date = |d: chrono::DateTime<chrono::Utc>| {
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };

    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "notary-server local CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = date(from);
    ca_params.not_after = date(to);
    let ca_key = rcgen::KeyPair::generate().map_err(gen)?;
    let ca = ca_params.self_signed(&ca_key).map_err(gen)?;

    let mut names: Vec<String> = [
        "localhost",
        "127.0.0.1",
        "::1",
        "notary-server",
        "notaryserver",
        "notary-signer",
        "notarysigner",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() && !names.iter().any(|n| n == h) {
            names.push(h.to_string());
        }
    }
    let mut leaf = rcgen::CertificateParams::new(names).map_err(gen)?;
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "notary-server");
    // Server and client authentication: the same pair serves HTTPS and authenticates the server
    // to its signer (mutual TLS), as the Go fixtures do.
    leaf.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.not_before = date(from);
    leaf.not_after = date(to);
    let leaf_key = rcgen::KeyPair::generate().map_err(gen)?;
    let cert = leaf.signed_by(&leaf_key, &ca, &ca_key).map_err(gen)?;

    use notary_common::private::write_file;
    for (path, data, mode) in [
        (&out.key, leaf_key.serialize_pem(), 0o600),
        (&out.cert, cert.pem(), 0o644),
        (&out.ca, ca.pem(), 0o644),
    ] {
        write_file(path, data.as_bytes(), mode)
            .map_err(|e| TlsError::Io(format!("writing {}", path.display()), e))?;
    }
    Ok(out)
}

/// The HTTPS configuration, with a certificate that reloads (see [`ReloadingCert`]; call
/// `spawn_watch` on the returned resolver inside the runtime).
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(rustls::ServerConfig, Arc<ReloadingCert>), TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = ReloadingCert::load(cert, key, provider.clone())?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rustls("TLS versions", e))?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((cfg, resolver))
}
