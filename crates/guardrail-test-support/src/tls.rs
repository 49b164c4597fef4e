//! A certificate authority made at test time (rcgen), for loopback TLS servers (PostgreSQL,
//! HTTPS webhooks, an HTTPS Prometheus) and the clients that must trust, or refuse, them.

use std::sync::Arc;

/// A self-signed CA certificate and its key.
pub struct TestCa {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

/// A leaf certificate issued by a [`TestCa`], and its key.
pub struct Issued {
    /// The certificate.
    pub cert: rcgen::Certificate,
    /// Its private key.
    pub key: rcgen::KeyPair,
}

impl TestCa {
    /// A new CA named `common_name`, allowed to sign certificates.
    pub fn new(common_name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { key, cert }
    }

    /// The CA certificate, PEM (what a client's `ca_file` / `sslrootcert` holds).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate.
    pub fn cert(&self) -> &rcgen::Certificate {
        &self.cert
    }

    /// A server certificate for `names` (DNS names or IP addresses, e.g. `127.0.0.1`, which
    /// rcgen puts in the subject alternative names as such), with `common_name` when given.
    pub fn issue(&self, names: &[&str], common_name: Option<&str>) -> Issued {
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("params");
        if let Some(cn) = common_name {
            params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("server certificate");
        Issued { cert, key }
    }
}

impl Issued {
    /// The certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A rustls (ring) server configuration presenting this certificate, followed by `chain`
    /// (e.g. the CA certificate, as a server that sends its whole chain does).
    pub fn server_config(&self, chain: &[&rcgen::Certificate]) -> Arc<rustls::ServerConfig> {
        let mut certs = vec![self.cert.der().clone()];
        certs.extend(chain.iter().map(|c| c.der().clone()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, rustls::pki_types::PrivateKeyDer::Pkcs8(self.key.serialize_der().into()))
            .expect("server configuration");
        Arc::new(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_is_signed_by_its_ca_and_serves() {
        let ca = TestCa::new("Guardrail test CA");
        let leaf = ca.issue(&["127.0.0.1", "localhost"], Some("localhost"));
        assert!(ca.pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(leaf.cert_pem(), ca.pem());
        // rustls accepts the pair (the key matches the certificate).
        let _ = leaf.server_config(&[ca.cert()]);
    }
}
