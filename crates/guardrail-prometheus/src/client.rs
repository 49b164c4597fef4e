//! A small blocking client for Prometheus's `/api/v1/query`, with a per-request timeout and
//! bounded retries.
//!
//! Retried: connection errors, timeouts and HTTP 5xx (with a short, growing pause: 50 ms,
//! 100 ms, …). Not retried: HTTP 4xx (a bad query stays bad), a server certificate that is
//! not trusted (it will not become trusted) and a response that is not a Prometheus answer.
//! Proxies from the environment are not used. Do not call from inside an async runtime
//! (reqwest's blocking client refuses to).
//!
//! TLS: `https://` URLs go through rustls (ring), trusting the Mozilla roots compiled in
//! (webpki-roots: the same on every host, whatever its certificate store) plus, when given,
//! the CA certificates of a PEM file ([`Client::with_ca`]). Verification is never turned off.

use std::time::Duration;

use jiff::Timestamp;

use crate::query::{ResponseError, Sample, parse_vector};

/// Why a query gave no samples (recorded in the snapshot as text: no data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryFailure {
    /// The request did not get an answer.
    #[error("{endpoint} {what}: {cause}")]
    Request {
        /// The query URL.
        endpoint: String,
        /// What happened.
        what: RequestFailure,
        /// The client's error chain.
        cause: String,
    },
    /// The answer's body could not be read.
    #[error("{endpoint}: reading the response failed: {cause}")]
    Body {
        /// The query URL.
        endpoint: String,
        /// The client's error chain.
        cause: String,
    },
    /// A 5xx (Prometheus starting, overloaded); retried.
    #[error("{}", format!("{endpoint}: HTTP {status} {}", detail.as_ref().map(ToString::to_string).unwrap_or_default()).trim_end())]
    ServerError {
        /// The query URL.
        endpoint: String,
        /// The HTTP status.
        status: String,
        /// Prometheus's error in the body, if it sent one.
        detail: Option<ResponseError>,
    },
    /// A non-success status with a well-formed body.
    #[error("{endpoint}: HTTP {status}")]
    Status {
        /// The query URL.
        endpoint: String,
        /// The HTTP status.
        status: String,
    },
    /// A body that holds no samples.
    #[error("{endpoint}: HTTP {status}: {error}")]
    Response {
        /// The query URL.
        endpoint: String,
        /// The HTTP status.
        status: String,
        /// What is wrong with it.
        error: ResponseError,
    },
    /// The thread running the query panicked.
    #[error("the query thread panicked")]
    Panicked,
}

/// How a request failed to get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestFailure {
    /// The server's certificate is not trusted (never retried).
    #[error(
        "failed TLS verification, the server's certificate is not trusted (give its CA with ca_file or --prometheus-ca)"
    )]
    Untrusted,
    /// No answer within the timeout.
    #[error("timed out")]
    TimedOut,
    /// No connection.
    #[error("could not connect")]
    Connect,
    /// Anything else.
    #[error("request failed")]
    Other,
}

/// Outcome of one query, with how many attempts it took.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Samples, or why there are none.
    pub result: Result<Vec<Sample>, QueryFailure>,
    /// HTTP attempts made (1 + retries used).
    pub attempts: u32,
}

/// A client bound to one Prometheus.
#[derive(Debug)]
pub struct Client {
    http: reqwest::blocking::Client,
    endpoint: String,
    retries: u32,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("could not set up the HTTP client: {0}")]
pub struct ClientError(String);

impl Client {
    /// A client for `base_url` (e.g. `http://127.0.0.1:9090` or `https://prom.internal`),
    /// trusting the built-in roots only.
    pub fn new(base_url: &str, timeout_ms: u64, retries: u32) -> Result<Client, ClientError> {
        Client::with_ca(base_url, timeout_ms, retries, None)
    }

    /// A client for `base_url` that also trusts the CA certificates in `ca_pem` (the text of a
    /// PEM file), for a Prometheus behind an internal CA. `ca_pem` without a certificate, or
    /// with one the TLS library refuses, is an error.
    pub fn with_ca(
        base_url: &str,
        timeout_ms: u64,
        retries: u32,
        ca_pem: Option<&[u8]>,
    ) -> Result<Client, ClientError> {
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError(format!("the CA file is not PEM: {}", root_cause(&e))))?;
            if certs.is_empty() {
                return Err(ClientError("the CA file holds no certificate".into()));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| ClientError(root_cause(&e)))?;
        let endpoint = format!("{}/api/v1/query", base_url.trim_end_matches('/'));
        Ok(Client { http, endpoint, retries })
    }

    /// Runs one instant query evaluated at `at`.
    pub fn query(&self, expr: &str, at: Timestamp) -> Answer {
        let time = format!("{}.{:03}", at.as_second(), at.subsec_millisecond().unsigned_abs());
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (result, retryable) = self.once(expr, &time);
            if result.is_ok() || !retryable || attempts > self.retries {
                return Answer { result, attempts };
            }
            std::thread::sleep(Duration::from_millis(50 * u64::from(attempts)));
        }
    }

    fn once(&self, expr: &str, time: &str) -> (Result<Vec<Sample>, QueryFailure>, bool) {
        let endpoint = self.endpoint.clone();
        let sent = self.http.post(&self.endpoint).form(&[("query", expr), ("time", time)]).send();
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // rustls refused the certificate (UnknownIssuer, NotValidForName, Expired…):
                // recognised by type, not by the message.
                let what = if untrusted_certificate(&e) {
                    RequestFailure::Untrusted
                } else if e.is_timeout() {
                    RequestFailure::TimedOut
                } else if e.is_connect() {
                    RequestFailure::Connect
                } else {
                    RequestFailure::Other
                };
                let retry = what != RequestFailure::Untrusted;
                return (Err(QueryFailure::Request { endpoint, what, cause: root_cause(&e) }), retry);
            }
        };
        let status = resp.status().to_string();
        let server_error = resp.status().is_server_error();
        let success = resp.status().is_success();
        let body = match resp.text() {
            Ok(b) => b,
            Err(e) => return (Err(QueryFailure::Body { endpoint, cause: root_cause(&e) }), true),
        };
        if server_error {
            // Prometheus answers 503 while starting and 422/400 for bad queries.
            let detail = parse_vector(&body).err();
            return (Err(QueryFailure::ServerError { endpoint, status, detail }), true);
        }
        match parse_vector(&body) {
            Ok(s) if success => (Ok(s), false),
            Ok(_) => (Err(QueryFailure::Status { endpoint, status }), false),
            Err(error) => (Err(QueryFailure::Response { endpoint, status, error }), false),
        }
    }
}

/// Whether `e`, or an error in its source chain, is rustls refusing the server's certificate
/// (`rustls::Error::InvalidCertificate`: unknown issuer, wrong name, expired…). I/O errors are
/// looked into (`io::Error::get_ref`, nested: the TLS stream's `InvalidData` error arrives inside
/// the connector's `Other` one), since `io::Error::source` skips the error it wraps.
pub fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if matches!(err.downcast_ref::<rustls::Error>(), Some(rustls::Error::InvalidCertificate(_))) {
            return true;
        }
        next = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose source is another, as hyper wraps the TLS stream's I/O error.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("request failed")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_refused_certificate_is_recognised_by_type_through_the_io_error() {
        let refused = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, refused);
        // As reqwest delivers it: Other(InvalidData(rustls)) inside the client's error.
        assert!(untrusted_certificate(&Wrapped(std::io::Error::other(io))));
        // Other TLS failures and plain I/O errors are not "untrusted" (they are retried).
        let other = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(!untrusted_certificate(&Wrapped(other)));
        let refused_text = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert!(!untrusted_certificate(&Wrapped(refused_text)), "the text alone proves nothing");
        assert!(!untrusted_certificate(&std::io::Error::from(std::io::ErrorKind::ConnectionRefused)));
    }
}
