//! The one POST both adapters make: JSON out, JSON text back, within the deadline, with bounded
//! retries that honour `Retry-After`.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};

use crate::{ApiKey, ChatResponse, Limits, ModelError, Provider, shown_url};

/// The most of a success body read (a chat answer is kilobytes; a runaway server is cut off).
const MAX_BODY: u64 = 16 * 1024 * 1024;
/// The most of an error message kept (an HTML error page is not worth more).
const MAX_MESSAGE: usize = 500;

/// Reads the provider's error object: `(type or code, message)`, `None` when the body is not one.
pub(crate) type ErrorParser = fn(&str) -> Option<(Option<String>, String)>;

/// A client bound to one endpoint and key.
#[derive(Debug)]
pub(crate) struct Transport {
    http: reqwest::blocking::Client,
    provider: Provider,
    url: String,
    limits: Limits,
    key: ApiKey,
}

impl Transport {
    pub(crate) fn new(provider: Provider, url: String, key: ApiKey, limits: Limits) -> Result<Transport, ModelError> {
        // Proxies from the environment are honoured (HTTPS_PROXY, NO_PROXY): a model API is
        // usually outside, reached the way the host reaches the internet.
        let http = reqwest::blocking::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.deadline)
            .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Client { provider, reason: root_cause(&e) })?;
        Ok(Transport { http, provider, url, limits, key })
    }

    pub(crate) fn key(&self) -> &ApiKey {
        &self.key
    }

    /// One chat exchange: encodes `body`, POSTs it with `headers`, reads the 2xx answer with
    /// `read`, and names the configured `model` when the answer does not.
    pub(crate) fn exchange(
        &self,
        headers: HeaderMap,
        body: &impl serde::Serialize,
        parse_error: ErrorParser,
        read: fn(&str, u32) -> Result<ChatResponse, ModelError>,
        model: &str,
    ) -> Result<ChatResponse, ModelError> {
        let provider = self.provider;
        let body = serde_json::to_vec(body)
            .map_err(|e| ModelError::Client { provider, reason: format!("request not encodable: {e}") })?;
        let (text, attempts) = self.post(headers, body, parse_error)?;
        let mut answer = read(&text, attempts)?;
        if answer.model.is_empty() {
            answer.model = model.to_string();
        }
        Ok(answer)
    }

    /// POSTs `body` with `headers` (the key's header among them, marked sensitive) and returns
    /// the 2xx body text and the attempts it took.
    fn post(
        &self,
        mut headers: HeaderMap,
        body: Vec<u8>,
        parse_error: ErrorParser,
    ) -> Result<(String, u32), ModelError> {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let start = Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let remaining = self.limits.deadline.saturating_sub(start.elapsed());
            if remaining.is_zero() {
                return Err(self.timeout());
            }
            let failure = match self.once(&headers, &body, remaining, parse_error) {
                Ok(text) => return Ok((text, attempts)),
                Err(e) => e,
            };
            if matches!(failure, ModelError::Timeout { .. }) || !failure.retryable() {
                return Err(wrap(self.provider, attempts, failure));
            }
            if attempts > self.limits.max_retries {
                return Err(wrap(self.provider, attempts, failure));
            }
            let pause = match &failure {
                ModelError::Api { retry_after: Some(d), .. } => *d,
                _ => backoff(attempts),
            }
            .min(self.limits.max_retry_wait);
            // A pause that would end past the deadline is not taken: the answer would come too
            // late anyway, and the caller learns now.
            if start.elapsed() + pause >= self.limits.deadline {
                return Err(wrap(self.provider, attempts, failure));
            }
            std::thread::sleep(pause);
        }
    }

    fn once(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        remaining: Duration,
        parse_error: ErrorParser,
    ) -> Result<String, ModelError> {
        let sent = self.http.post(&self.url).headers(headers.clone()).timeout(remaining).body(body.to_vec()).send();
        let resp = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() && !e.is_connect() => return Err(self.timeout()),
            Err(e) => return Err(self.transport(&e)),
        };
        let status = resp.status();
        let retry_after = retry_after(resp.headers(), jiff::Timestamp::now());
        let mut text = String::new();
        if let Err(e) = resp.take(MAX_BODY).read_to_string(&mut text) {
            // The deadline also bounds reading the body: a server that sends headers and then
            // stalls times out here.
            let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                || std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<reqwest::Error>())
                    .is_some_and(reqwest::Error::is_timeout);
            return Err(if timed_out { self.timeout() } else { self.transport(&e) });
        }
        if status.is_success() {
            return Ok(text);
        }
        let (kind, message) = match parse_error(&text) {
            Some((kind, message)) => (kind, message),
            None => (None, snippet(&text)),
        };
        Err(ModelError::Api {
            provider: self.provider,
            status: status.as_u16(),
            kind: kind.map(|k| self.key.redact(&k)),
            message: truncate(&self.key.redact(&message)),
            retry_after,
        })
    }

    fn timeout(&self) -> ModelError {
        ModelError::Timeout { provider: self.provider, url: shown_url(&self.url), deadline: self.limits.deadline }
    }

    fn transport(&self, e: &dyn std::error::Error) -> ModelError {
        ModelError::Transport {
            provider: self.provider,
            url: shown_url(&self.url),
            reason: truncate(&self.key.redact(&root_cause(e))),
        }
    }
}

/// A header value that carries the key: marked sensitive so reqwest's and http's `Debug` hide
/// it. A key with bytes a header cannot hold is refused as missing rather than half-sent.
pub(crate) fn secret_header(provider: Provider, value: &str) -> Result<HeaderValue, ModelError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| ModelError::Client {
        provider,
        reason: format!("{} holds bytes an HTTP header cannot carry", provider.key_var()),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn wrap(provider: Provider, attempts: u32, last: ModelError) -> ModelError {
    if attempts > 1 { ModelError::Exhausted { provider, attempts, last: Box::new(last) } } else { last }
}

/// 0.5 s, 1 s, 2 s, … when the server does not say (the official SDKs' start).
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.saturating_sub(1).min(10)))
}

/// The pause the server asked for: `retry-after-ms` (OpenAI, Anthropic), else `Retry-After` in
/// seconds or as an HTTP date. `None` when absent or unreadable.
pub(crate) fn retry_after(h: &HeaderMap, now: jiff::Timestamp) -> Option<Duration> {
    let header = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(ms) = header("retry-after-ms").and_then(guardrail_core::retry_after::parse_millis) {
        return Some(ms);
    }
    guardrail_core::retry_after::parse(header(RETRY_AFTER.as_str())?, now)
}

pub(crate) fn truncate(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

pub(crate) fn snippet(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.is_empty() { "(empty body)".to_string() } else { truncate(&one_line) }
}

pub(crate) fn root_cause(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg = format!("{msg}: {s_text}");
        }
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_reads_ms_seconds_and_http_dates() {
        let now: jiff::Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        assert_eq!(retry_after(&headers(&[("retry-after-ms", "250")]), now), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&headers(&[("retry-after", "2")]), now), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&headers(&[("retry-after", "1.5")]), now), Some(Duration::from_millis(1500)));
        assert_eq!(
            retry_after(&headers(&[("retry-after", "Sun, 06 Dec 2026 10:00:07 GMT")]), now),
            Some(Duration::from_secs(7))
        );
        // A date in the past means "now"; nonsense and negatives mean "not said".
        assert_eq!(
            retry_after(&headers(&[("retry-after", "Sun, 06 Dec 2026 09:00:00 GMT")]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-3")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
        // retry-after-ms wins over retry-after (more precise, same server).
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "100"), ("retry-after", "9")]), now),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn backoff_grows_from_half_a_second() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert!(backoff(u32::MAX) > Duration::ZERO);
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(2000);
        assert_eq!(truncate(&long).chars().count(), MAX_MESSAGE + 1);
        assert_eq!(snippet("  <html>\n  <b>bad</b>  "), "<html> <b>bad</b>");
        assert_eq!(snippet(""), "(empty body)");
    }
}
