//! TLS for the PostgreSQL store: libpq's `sslmode` and `sslrootcert`, through rustls (*ring*).
//!
//! | `sslmode` | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | no | — |
//! | `prefer` (default) | if the server offers TLS, else plain | no; the chain when `sslrootcert` is given |
//! | `require` | yes | no; the chain when `sslrootcert` is given (libpq: "behaves like verify-ca") |
//! | `verify-ca` | yes | chain to `sslrootcert` |
//! | `verify-full` | yes | chain to `sslrootcert` and the host name (or IP) in the certificate |
//!
//! `prefer` falls back to plain text only when the server answers that it does not speak TLS;
//! a TLS handshake that fails (a certificate that does not verify) is an error, never a
//! silent downgrade. `verify-ca` and `verify-full` need `sslrootcert` (libpq's default
//! `~/.postgresql/root.crt` is not read: trust is stated in the connection string). A Unix
//! socket never uses TLS (as libpq: the mode is ignored there).
//!
//! The `postgres` crate parses `sslmode` itself but knows only disable/prefer/require and
//! rejects `sslrootcert`, so both are taken out of the connection string here and the crate is
//! told the mode to use on the wire.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode` values (`allow` is not supported: it tries plain text first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it.
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is not checked unless `sslrootcert` is given.
    Require,
    /// TLS with the certificate chain checked against `sslrootcert`.
    VerifyCa,
    /// `VerifyCa` plus the server's name.
    VerifyFull,
}

/// A TLS parameter of a PostgreSQL connection string that cannot be used; the message names the
/// parameter (`sslmode: …`, `sslrootcert: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsParamError {
    /// An `sslmode` other than libpq's (`allow` included: it tries plain text first).
    #[error("sslmode: {value:?} is not one of disable, prefer, require, verify-ca, verify-full")]
    UnknownMode {
        /// The value given.
        value: String,
    },
    /// `sslmode` or `sslrootcert` twice.
    #[error("{key}: given more than once")]
    Repeated {
        /// The parameter.
        key: String,
    },
    /// `sslrootcert=` with nothing.
    #[error("sslrootcert: is empty: give the path of a PEM file of CA certificates")]
    EmptyRootCert,
    /// `sslrootcert=system`.
    #[error("sslrootcert: \"system\" (the host's CA store) is not supported: give a PEM file")]
    SystemRootCert,
    /// `verify-ca` / `verify-full` without `sslrootcert`.
    #[error("sslmode: {mode} needs sslrootcert=PATH (a PEM file of the CA certificates to trust)")]
    RootCertNeeded {
        /// `verify-ca` or `verify-full`.
        mode: &'static str,
    },
    /// The `sslrootcert` file cannot be read or used.
    #[error("sslrootcert: {}: {reason}", path.display())]
    RootCert {
        /// The file.
        path: PathBuf,
        /// Why (cannot be read, not PEM, not a usable CA, no certificate).
        reason: String,
    },
    /// rustls refused the protocol set-up.
    #[error("TLS set-up: {reason}")]
    Setup {
        /// rustls's reason.
        reason: String,
    },
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, TlsParamError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TlsParamError::UnknownMode { value: other.to_string() }),
        })
    }
}

/// The TLS settings of one connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The mode (default `prefer`, as libpq).
    pub mode: SslMode,
    /// `sslrootcert`: a PEM file of the CA certificates to trust.
    pub root_cert: Option<PathBuf>,
}

/// What the TLS layer checks, derived from the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Encrypt, accept any certificate (libpq `require`/`prefer` without a root certificate).
    Nothing,
    /// The chain to a root of `sslrootcert`, not the name.
    Chain,
    /// The chain and the name.
    ChainAndName,
}

impl TlsOptions {
    /// The mode the `postgres` crate negotiates with (it verifies nothing itself).
    pub fn wire_mode(&self) -> postgres::config::SslMode {
        match self.mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => postgres::config::SslMode::Require,
        }
    }

    fn check(&self) -> Result<Option<Check>, TlsParamError> {
        Ok(match (self.mode, &self.root_cert) {
            (SslMode::Disable, _) => None,
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                let mode = if self.mode == SslMode::VerifyCa { "verify-ca" } else { "verify-full" };
                return Err(TlsParamError::RootCertNeeded { mode });
            }
            (SslMode::Prefer | SslMode::Require, None) => Some(Check::Nothing),
            (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, Some(_)) => Some(Check::Chain),
            (SslMode::VerifyFull, Some(_)) => Some(Check::ChainAndName),
        })
    }

    /// The rustls client configuration for these options; `None` for `disable`. Reads
    /// `sslrootcert`; errors name the field.
    pub fn client_config(&self) -> Result<Option<rustls::ClientConfig>, TlsParamError> {
        let Some(check) = self.check()? else { return Ok(None) };
        // The provider is chosen here, not taken from the process default: nothing else has
        // to install one, and no other backend (aws-lc) can be picked up by accident.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(AnyCertificate { algorithms: provider.signature_verification_algorithms }),
            Check::Chain | Check::ChainAndName => {
                // check() gives Chain only with a root certificate; refuse rather than panic.
                let mode = if self.mode == SslMode::VerifyFull { "verify-full" } else { "verify-ca" };
                let path = self.root_cert.as_ref().ok_or(TlsParamError::RootCertNeeded { mode })?;
                let roots = read_roots(path)?;
                Arc::new(CaVerifier {
                    roots: Arc::new(roots),
                    algorithms: provider.signature_verification_algorithms,
                    check_name: check == Check::ChainAndName,
                })
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsParamError::Setup { reason: e.to_string() })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(config))
    }
}

/// Reads the CA certificates of a PEM file.
fn read_roots(path: &std::path::Path) -> Result<RootCertStore, TlsParamError> {
    let what = |reason: String| TlsParamError::RootCert { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| what(format!("cannot be read: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| what(format!("not a PEM file of certificates: {e}")))?;
        roots.add(cert).map_err(|e| what(format!("a certificate is not usable as a CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(what("holds no CERTIFICATE block".into()));
    }
    Ok(roots)
}

/// `sslmode=require`/`prefer` without a root certificate: encrypted, unauthenticated (libpq's
/// documented meaning). The handshake signature is still checked against the certificate's key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca` (chain only) and `verify-full` (chain and name) against `sslrootcert`. rustls's
/// own WebPKI verifier always checks the name, so the two steps are called separately.
#[derive(Debug)]
struct CaVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    check_name: bool,
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.check_name {
            rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL query or key=value form)
/// and returns the rest, for `postgres::Config`, with the options. Errors name the field.
pub fn split_tls_params(conn: &str) -> Result<(String, TlsOptions), TlsParamError> {
    let (rest, pairs) = if conn.contains("://") { split_url(conn) } else { split_key_value(conn) };
    let mut options = TlsOptions::default();
    let (mut mode_seen, mut root_seen) = (false, false);
    for (key, value) in pairs {
        let seen = if key == "sslmode" { &mut mode_seen } else { &mut root_seen };
        if std::mem::replace(seen, true) {
            return Err(TlsParamError::Repeated { key });
        }
        if key == "sslmode" {
            options.mode = SslMode::parse(&value)?;
        } else if value.is_empty() {
            return Err(TlsParamError::EmptyRootCert);
        } else if value == "system" {
            return Err(TlsParamError::SystemRootCert);
        } else {
            options.root_cert = Some(PathBuf::from(value));
        }
    }
    Ok((rest, options))
}

const KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

/// `postgres://…?a=1&sslmode=x&b=2` → (`postgres://…?a=1&b=2`, [(sslmode, x)]), values
/// percent-decoded.
fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_string(), Vec::new()) };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((k, v)) if KEYS.contains(&k) => taken.push((k.to_string(), percent_decode(v))),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    (rest, taken)
}

fn percent_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The key=value form (`host=db sslmode=verify-full sslrootcert='/a b/ca.pem'`): values may be
/// single-quoted, with `\'` and `\\`. Pairs that are not ours are kept as written; a string
/// this cannot read is returned whole, for `postgres::Config` to report.
fn split_key_value(s: &str) -> (String, Vec<(String, String)>) {
    let mut kept: Vec<&str> = Vec::new();
    let mut taken = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        i = skip_ws(i);
        if bytes.get(i) != Some(&b'=') {
            return (s.to_string(), Vec::new());
        }
        i = skip_ws(i + 1);
        let mut value = Vec::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return (s.to_string(), Vec::new()),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        if KEYS.contains(&key) {
            taken.push((key.to_string(), String::from_utf8_lossy(&value).into_owned()));
        } else {
            kept.push(&s[start..i]);
        }
    }
    (kept.join(" "), taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_taken_out() {
        let (rest, o) =
            split_tls_params("postgres://u@h/db?connect_timeout=3&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca%20x.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=3");
        assert_eq!(o, TlsOptions { mode: SslMode::VerifyFull, root_cert: Some("/tmp/ca x.pem".into()) });
        let (rest, o) = split_tls_params("postgres://u@h/db").unwrap();
        assert_eq!((rest.as_str(), o), ("postgres://u@h/db", TlsOptions::default()));
        assert_eq!(TlsOptions::default().mode, SslMode::Prefer);
        let (rest, o) = split_tls_params("postgres://u@h/db?sslmode=disable").unwrap();
        assert_eq!((rest.as_str(), o.mode), ("postgres://u@h/db", SslMode::Disable));
    }

    #[test]
    fn key_value_parameters_are_taken_out() {
        let (rest, o) =
            split_tls_params("host=h sslmode = verify-ca user=u sslrootcert='/a b/c\\'a.pem' password='x y'").unwrap();
        assert_eq!(rest, "host=h user=u password='x y'");
        assert_eq!(o, TlsOptions { mode: SslMode::VerifyCa, root_cert: Some("/a b/c'a.pem".into()) });
    }

    #[test]
    fn errors_name_the_field() {
        let e = split_tls_params("postgres://h/db?sslmode=verify_full").unwrap_err();
        assert_eq!(e, TlsParamError::UnknownMode { value: "verify_full".into() });
        let e = e.to_string();
        assert!(e.starts_with("sslmode: \"verify_full\" is not one of"), "{e}");
        let e = split_tls_params("postgres://h/db?sslmode=allow").unwrap_err().to_string();
        assert!(e.starts_with("sslmode:"), "{e}");
        let e = split_tls_params("postgres://h/db?sslmode=require&sslmode=disable").unwrap_err();
        assert_eq!(e, TlsParamError::Repeated { key: "sslmode".into() });
        assert_eq!(e.to_string(), "sslmode: given more than once");
        let e = split_tls_params("postgres://h/db?sslrootcert=").unwrap_err().to_string();
        assert!(e.starts_with("sslrootcert: is empty"), "{e}");
        let (_, o) = split_tls_params("postgres://h/db?sslmode=verify-full").unwrap();
        let e = o.client_config().unwrap_err();
        assert_eq!(e, TlsParamError::RootCertNeeded { mode: "verify-full" });
        let e = e.to_string();
        assert!(e.starts_with("sslmode: verify-full needs sslrootcert"), "{e}");
        let (_, o) = split_tls_params("postgres://h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").unwrap();
        let e = o.client_config().unwrap_err().to_string();
        assert!(e.starts_with("sslrootcert: /nonexistent/ca.pem: cannot be read"), "{e}");
        let dir = std::env::temp_dir().join(format!("gr-pg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let o = TlsOptions { mode: SslMode::Require, root_cert: Some(empty.clone()) };
        let e = o.client_config().unwrap_err().to_string();
        assert!(e.contains("holds no CERTIFICATE block"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn what_each_mode_checks() {
        let with = |mode, root: bool| TlsOptions { mode, root_cert: root.then(|| PathBuf::from("/ca.pem")) }.check();
        assert_eq!(with(SslMode::Disable, true), Ok(None));
        assert_eq!(with(SslMode::Prefer, false), Ok(Some(Check::Nothing)));
        assert_eq!(with(SslMode::Require, false), Ok(Some(Check::Nothing)));
        // libpq: with a root certificate, require (and prefer) check the chain like verify-ca.
        assert_eq!(with(SslMode::Require, true), Ok(Some(Check::Chain)));
        assert_eq!(with(SslMode::Prefer, true), Ok(Some(Check::Chain)));
        assert_eq!(with(SslMode::VerifyCa, true), Ok(Some(Check::Chain)));
        assert_eq!(with(SslMode::VerifyFull, true), Ok(Some(Check::ChainAndName)));
        assert!(with(SslMode::VerifyCa, false).is_err());
    }
}
