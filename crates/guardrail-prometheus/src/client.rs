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

use crate::query::{Sample, parse_vector};

/// Outcome of one query, with how many attempts it took.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Samples, or why there are none.
    pub result: Result<Vec<Sample>, String>,
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

    fn once(&self, expr: &str, time: &str) -> (Result<Vec<Sample>, String>, bool) {
        let sent = self.http.post(&self.endpoint).form(&[("query", expr), ("time", time)]).send();
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let cause = root_cause(&e);
                // rustls: "invalid peer certificate: UnknownIssuer" (or NotValidForName, Expired…).
                let untrusted = cause.contains("invalid peer certificate");
                let what = if untrusted {
                    "failed TLS verification, the server's certificate is not trusted (give its CA with ca_file or \
                     --prometheus-ca)"
                } else if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                };
                return (Err(format!("{} {what}: {cause}", self.endpoint)), !untrusted);
            }
        };
        let status = resp.status();
        let body = match resp.text() {
            Ok(b) => b,
            Err(e) => {
                return (Err(format!("{}: reading the response failed: {}", self.endpoint, root_cause(&e))), true);
            }
        };
        if status.is_server_error() {
            // Prometheus answers 503 while starting and 422/400 for bad queries.
            let detail = parse_vector(&body).err().unwrap_or_default();
            return (Err(format!("{}: HTTP {status} {detail}", self.endpoint).trim_end().to_string()), true);
        }
        match parse_vector(&body) {
            Ok(s) if status.is_success() => (Ok(s), false),
            Ok(_) => (Err(format!("{}: HTTP {status}", self.endpoint)), false),
            Err(e) => (Err(format!("{}: HTTP {status}: {e}", self.endpoint)), false),
        }
    }
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
