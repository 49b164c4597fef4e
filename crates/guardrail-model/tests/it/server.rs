//! What the model tests share: the scripted loopback server (from `guardrail-test-support`),
//! the key that must never show, short limits, request readers.

use std::time::Duration;

use guardrail_model::{ApiKey, Limits, ModelConfig};
use guardrail_test_support::http::Request;

/// A key that must never appear in an error, a Debug or a log line.
pub const KEY: &str = "sk-test-SECRET-0123456789abcdef";

/// The scripted loopback server every model test uses (answers in order, the last repeats;
/// requests kept): the one in `guardrail-test-support`.
pub use guardrail_test_support::model::{Reply, serve};

/// Short bounds, so the failure tests finish quickly.
pub fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(5),
        max_retries: 2,
        max_retry_wait: Duration::from_secs(2),
    }
}

pub fn config(base_url: String, model: &str) -> ModelConfig {
    ModelConfig { base_url, api_key: ApiKey::new(KEY).unwrap(), model: model.to_string(), limits: limits() }
}

/// The request's body as JSON.
pub fn body(r: &Request) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap()
}

/// The value of header `name` (lower-case) in `r`.
pub fn header(r: &Request, name: &str) -> Option<String> {
    r.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Asserts the key is in none of an error's renderings.
pub fn assert_no_key(e: &guardrail_model::ModelError) {
    assert!(!e.to_string().contains(KEY), "Display shows the key: {e}");
    assert!(!format!("{e:?}").contains(KEY), "Debug shows the key: {e:?}");
}
