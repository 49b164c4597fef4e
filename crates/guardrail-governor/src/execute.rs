//! Execution: only the action that was gated (or approved), checked against its hash at the
//! moment it runs.
//!
//! [`authorise`] recomputes [`binding_hash`] of the incident, plan and action about to run and
//! compares it with the authorised hash (from the gate's execute decision, or from an approval
//! bound to a blocked one). Only then is an [`AuthorisedAction`] made — its fields are private,
//! so an [`Executor`] can never be handed an action that skipped the check. A different action
//! fails the check ([`ExecutionError::Mismatch`]); the caller sends it back through the gate.
//!
//! Executors:
//! - [`DryRunExecutor`] (the default): runs nothing; reports what would run (the rendered
//!   command, when a template exists).
//! - [`CommandExecutor`]: the action's command template from the governor config, rendered
//!   with allow-listed parameters ([`guardrail_core::approval::TEMPLATE_PARAMS`]) and run as an
//!   argv (no shell), with a clean environment (only `PATH`) and a timeout.
//! - [`WebhookExecutor`]: a POST of a JSON body to an `http://` or `https://` URL (reqwest,
//!   rustls), under one deadline; a 2xx answer is success.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guardrail_core::error_text::error_chain;
use serde::Serialize;
use serde_json::Value;

use guardrail_core::approval::{ExecutionMismatch, binding_hash, fill_template};
use guardrail_core::remediation::{Incident, PlanOutput};

/// An action that passed the hash check. Only [`authorise`] makes one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthorisedAction {
    incident: Incident,
    action: String,
    binding_hash: String,
}

impl AuthorisedAction {
    /// The incident.
    pub fn incident(&self) -> &Incident {
        &self.incident
    }
    /// The action id.
    pub fn action(&self) -> &str {
        &self.action
    }
    /// The hash it was authorised under.
    pub fn binding_hash(&self) -> &str {
        &self.binding_hash
    }
    /// The template parameters: `incident_id`, `service`, `severity`, `action`.
    pub fn params(&self) -> BTreeMap<&str, &str> {
        BTreeMap::from([
            ("incident_id", self.incident.id.as_str()),
            ("service", self.incident.service.as_str()),
            ("severity", self.incident.severity.as_str()),
            ("action", self.action.as_str()),
        ])
    }
}

/// Checks `action` against the authorised hash (see [`guardrail_core::approval::authorise_execution`]).
pub fn authorise(
    authorised_hash: &str,
    incident: &Incident,
    plan: &PlanOutput,
    action: &str,
) -> Result<AuthorisedAction, ExecutionMismatch> {
    let found = binding_hash(incident, plan, action);
    if found != authorised_hash {
        return Err(ExecutionMismatch { action: action.to_string(), found, authorised: authorised_hash.to_string() });
    }
    Ok(AuthorisedAction { incident: incident.clone(), action: action.to_string(), binding_hash: found })
}

/// What an execution did. Serialises into the audit record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionReport {
    /// `dry-run`, `command` or `webhook`.
    pub executor: String,
    /// The action.
    pub action: String,
    /// The hash it ran under.
    pub binding_hash: String,
    /// True when nothing was actually run.
    pub dry_run: bool,
    /// True when it ran and succeeded (or, for a dry run, would have been run).
    pub ok: bool,
    /// Executor-specific detail: argv and exit status, HTTP status, …
    pub detail: Value,
}

/// Why an execution could not happen (it may also have run and failed: see
/// [`ExecutionReport::ok`]).
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    /// The action is not the authorised one.
    #[error(transparent)]
    Mismatch(#[from] ExecutionMismatch),
    /// The executor has no configuration for this action.
    #[error("{executor} executor: {message}")]
    NotConfigured {
        /// Which executor.
        executor: &'static str,
        /// What is missing.
        message: String,
    },
    /// The executor could not run it (spawn failed, connection refused, timeout).
    #[error("{executor} executor: {message}")]
    Failed {
        /// Which executor.
        executor: &'static str,
        /// What happened.
        message: String,
    },
}

/// Runs authorised actions.
pub trait Executor {
    /// `dry-run`, `command`, `webhook`, …
    fn name(&self) -> &'static str;
    /// Runs one action.
    fn execute(&self, action: &AuthorisedAction) -> Result<ExecutionReport, ExecutionError>;
}

/// Checks the hash, then runs the action on `executor`.
pub fn execute_checked(
    executor: &dyn Executor,
    authorised_hash: &str,
    incident: &Incident,
    plan: &PlanOutput,
    action: &str,
) -> Result<ExecutionReport, ExecutionError> {
    let a = authorise(authorised_hash, incident, plan, action)?;
    executor.execute(&a)
}

fn report(executor: &str, a: &AuthorisedAction, dry_run: bool, ok: bool, detail: Value) -> ExecutionReport {
    ExecutionReport {
        executor: executor.to_string(),
        action: a.action.clone(),
        binding_hash: a.binding_hash.clone(),
        dry_run,
        ok,
        detail,
    }
}

/// Records what would run; runs nothing.
#[derive(Debug, Clone, Default)]
pub struct DryRunExecutor {
    /// Command templates, to show the command that would run.
    pub commands: BTreeMap<String, Vec<String>>,
}

impl Executor for DryRunExecutor {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn execute(&self, a: &AuthorisedAction) -> Result<ExecutionReport, ExecutionError> {
        let argv = self.commands.get(&a.action).map(|t| fill_template(t, &a.params()));
        let (command, command_error) = match argv {
            None => (None, None),
            Some(Ok(argv)) => (Some(argv), None),
            Some(Err(e)) => (None, Some(e.to_string())),
        };
        let detail = DryRunDetail { would_run: &a.action, command, command_error };
        Ok(report("dry-run", a, true, true, encode(&detail)))
    }
}

/// The report detail of a dry run: what would run (`command` `null` without a template).
#[derive(Serialize)]
struct DryRunDetail<'a> {
    would_run: &'a str,
    command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_error: Option<String>,
}

/// The report detail of a command: its argv, exit code and captured output; or, when its
/// outcome is not known (killed at the timeout, its status unreadable), why.
#[derive(Serialize)]
struct CommandDetail<'a> {
    argv: &'a [String],
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    outcome_unknown: bool,
}

/// The report detail of a webhook: where, the answer's status and body, and why the
/// exchange did not complete, if it did not.
#[derive(Serialize)]
struct WebhookDetail<'a> {
    url: &'a str,
    http_status: Option<u16>,
    response: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    outcome_unknown: bool,
}

/// What a webhook is sent: the authorised action and what it is bound to.
#[derive(Serialize)]
struct WebhookRequest<'a> {
    incident_id: &'a str,
    service: &'a str,
    severity: guardrail_core::remediation::Severity,
    action: &'a str,
    binding_hash: &'a str,
}

fn encode<T: Serialize>(detail: &T) -> Value {
    // Strings, numbers, booleans: nothing in a detail can fail to encode.
    serde_json::to_value(detail).unwrap_or(Value::Null)
}

/// Most bytes of output or response kept for the record.
pub const MAX_CAPTURE: usize = 4096;

fn capped(bytes: &[u8]) -> String {
    let end = bytes.len().min(MAX_CAPTURE);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Runs the action's command template as an argv.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    /// Templates per action id.
    pub commands: BTreeMap<String, Vec<String>>,
    /// Timeout.
    pub timeout: Duration,
}

impl Executor for CommandExecutor {
    fn name(&self) -> &'static str {
        "command"
    }

    fn execute(&self, a: &AuthorisedAction) -> Result<ExecutionReport, ExecutionError> {
        const NAME: &str = "command";
        let template = self.commands.get(&a.action).ok_or_else(|| ExecutionError::NotConfigured {
            executor: NAME,
            message: format!("no command template for action {} (executor.commands in the governor config)", a.action),
        })?;
        let argv = fill_template(template, &a.params())
            .map_err(|e| ExecutionError::NotConfigured { executor: NAME, message: e.to_string() })?;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| ExecutionError::NotConfigured { executor: NAME, message: "the command is empty".into() })?;
        let mut cmd = Command::new(program);
        cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let mut child = cmd.spawn().map_err(|e| ExecutionError::Failed {
            executor: NAME,
            message: format!("could not start {program}: {e}"),
        })?;
        let mut out = child.stdout.take();
        let mut err = child.stderr.take();
        let out_t = std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut b);
            }
            b
        });
        let err_t = std::thread::spawn(move || {
            let mut b = Vec::new();
            if let Some(o) = err.as_mut() {
                let _ = o.read_to_end(&mut b);
            }
            b
        });
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if start.elapsed() >= self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // The command started and may have acted before it was killed: a run that
                    // failed with an unknown outcome, never "did not start" (which would leave
                    // the authorisation open for a second run). The output readers are not
                    // joined: a grandchild may still hold the pipes open.
                    let error =
                        format!("{program} did not finish within {} ms and was killed", self.timeout.as_millis());
                    return Ok(report(NAME, a, false, false, unknown_outcome(&argv, error)));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    let _ = child.kill();
                    return Ok(report(
                        NAME,
                        a,
                        false,
                        false,
                        unknown_outcome(&argv, format!("waiting for {program}: {e}")),
                    ));
                }
            }
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        let detail = CommandDetail {
            argv: &argv,
            exit_code: status.code(),
            stdout: Some(capped(&stdout)),
            stderr: Some(capped(&stderr)),
            error: None,
            outcome_unknown: false,
        };
        Ok(report(NAME, a, false, status.success(), encode(&detail)))
    }
}

/// The detail of a command that started but whose result is not known (killed at the
/// timeout, or its status could not be read).
fn unknown_outcome(argv: &[String], error: String) -> Value {
    let detail =
        CommandDetail { argv, exit_code: None, stdout: None, stderr: None, error: Some(error), outcome_unknown: true };
    encode(&detail)
}

/// POSTs the action as JSON through reqwest (rustls with *ring*): `http://` or
/// `https://`, trusting the compiled-in Mozilla roots plus, when given, the CA certificates of
/// `ca_file` (verification is never turned off). One deadline, `timeout`, covers name
/// resolution, connecting, TLS, sending and reading the whole answer (chunked or not).
/// Redirects are not followed (a 3xx is not success) and proxies from the environment are not
/// used. A 2xx answer is success. A request that may have reached the server but got no
/// complete answer in time is a report with `ok: false` and `detail.outcome_unknown` (it
/// counts as run: the webhook may have acted), not an error. Blocking: do not call from an async task (the server calls
/// executors from blocking tasks).
#[derive(Debug, Clone)]
pub struct WebhookExecutor {
    /// `http://` or `https://host[:port]/path`.
    pub url: String,
    /// The deadline for the whole exchange.
    pub timeout: Duration,
    /// A PEM file of CA certificates to trust besides the built-in roots
    /// (`executor.webhook_ca_file`).
    pub ca_file: Option<PathBuf>,
}

/// Most bytes of a webhook's answer read (the record keeps [`MAX_CAPTURE`] of them).
const MAX_WEBHOOK_ANSWER: usize = 64 * 1024;

/// Checks a webhook URL: `http://` or `https://`, a host, no credentials (they would be
/// recorded).
pub fn check_webhook_url(url: &str) -> Result<(), WebhookUrlError> {
    let url_text = || url.to_string();
    let parsed =
        reqwest::Url::parse(url).map_err(|e| WebhookUrlError::NotAUrl { url: url_text(), reason: e.to_string() })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(WebhookUrlError::NotHttp { url: url_text() });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(WebhookUrlError::NoHost { url: url_text() });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(WebhookUrlError::Credentials { url: url_text() });
    }
    Ok(())
}

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    /// It does not parse.
    #[error("{url:?} is not a URL: {reason}")]
    NotAUrl {
        /// As given.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// Another scheme than http or https.
    #[error("{url:?} is not an http:// or https:// URL")]
    NotHttp {
        /// As given.
        url: String,
    },
    /// No host.
    #[error("{url:?} has no host")]
    NoHost {
        /// As given.
        url: String,
    },
    /// User or password in the URL (it would be recorded).
    #[error("{url:?} carries credentials, which are not supported (they would be recorded)")]
    Credentials {
        /// As given.
        url: String,
    },
}

impl WebhookExecutor {
    fn client(&self, timeout: Duration) -> Result<reqwest::Client, ExecutionError> {
        let not_configured = |message: String| ExecutionError::NotConfigured { executor: "webhook", message };
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            // A little under the deadline, so a connection (name resolution included) that
            // cannot be made in time is reported as such, not as an exchange of unknown outcome.
            .connect_timeout(timeout.mul_f64(0.9))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("guardrail/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| not_configured(format!("executor.webhook_ca_file {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                not_configured(format!("executor.webhook_ca_file {}: not PEM: {}", path.display(), error_chain(&e)))
            })?;
            if certs.is_empty() {
                return Err(not_configured(format!(
                    "executor.webhook_ca_file {}: holds no certificate",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        builder.build().map_err(|e| not_configured(format!("could not set up the HTTP client: {}", error_chain(&e))))
    }

    /// The POST and the answer's status and first [`MAX_WEBHOOK_ANSWER`] bytes, all under one
    /// deadline. reqwest's blocking client applies its timeout per read of the body, so a
    /// server trickling bytes would never time out: the exchange runs on a small
    /// current-thread runtime instead, inside `tokio::time::timeout_at`.
    ///
    /// `Err` only when the request cannot have reached the server (no connection: refused,
    /// name not resolved, TLS refused); the authorisation then stays open. Once connected, a
    /// timeout or a broken answer is an [`Exchange`] with `error` set: the webhook may have
    /// acted, so this counts as run (and failed), never as "did not start", and is not retried.
    fn exchange(&self, body: String) -> Result<Exchange, ExecutionError> {
        let fail = |message: String| ExecutionError::Failed { executor: "webhook", message };
        let timeout = self.timeout.max(Duration::from_millis(1));
        let client = self.client(timeout)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("could not start the HTTP runtime: {e}")))?;
        let late = || format!("no complete answer within {} ms", timeout.as_millis());
        runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + timeout;
            let request =
                client.post(&self.url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body).send();
            let mut response = match tokio::time::timeout_at(deadline, request).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) if !e.is_connect() => {
                    let error = if e.is_timeout() { late() } else { error_chain(&e) };
                    return Ok(Exchange { status: None, answer: Vec::new(), error: Some(error) });
                }
                Ok(Err(e)) => {
                    let cause = error_chain(&e);
                    // rustls's InvalidCertificate (UnknownIssuer, NotValidForName, Expired…),
                    // found by type anywhere in the error's source chain.
                    let what = if guardrail_gate::prometheus::client::untrusted_certificate(&e) {
                        "failed TLS verification, the server's certificate is not trusted (give its CA with \
                         executor.webhook_ca_file)"
                    } else {
                        "could not connect"
                    };
                    return Err(fail(format!("{} {what}: {cause}", self.url)));
                }
                // Connecting, sending or waiting: which one is not known, so the request may
                // have been delivered.
                Err(_elapsed) => return Ok(Exchange { status: None, answer: Vec::new(), error: Some(late()) }),
            };
            let status = Some(response.status().as_u16());
            let mut answer = Vec::new();
            loop {
                // A chunked answer arrives decoded.
                match tokio::time::timeout_at(deadline, response.chunk()).await {
                    Ok(Ok(Some(chunk))) => {
                        let room = MAX_WEBHOOK_ANSWER - answer.len();
                        answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
                        if answer.len() >= MAX_WEBHOOK_ANSWER {
                            return Ok(Exchange { status, answer, error: None });
                        }
                    }
                    Ok(Ok(None)) => return Ok(Exchange { status, answer, error: None }),
                    Ok(Err(e)) => {
                        let error =
                            if e.is_timeout() { late() } else { format!("reading the answer: {}", error_chain(&e)) };
                        return Ok(Exchange { status, answer, error: Some(error) });
                    }
                    Err(_elapsed) => return Ok(Exchange { status, answer, error: Some(late()) }),
                }
            }
        })
    }
}

/// What came back from a webhook the request may have reached.
struct Exchange {
    /// The HTTP status, when the answer's head arrived.
    status: Option<u16>,
    /// The first bytes of the body.
    answer: Vec<u8>,
    /// Why the exchange did not complete (a timeout, a broken answer).
    error: Option<String>,
}

impl Executor for WebhookExecutor {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn execute(&self, a: &AuthorisedAction) -> Result<ExecutionReport, ExecutionError> {
        const NAME: &str = "webhook";
        check_webhook_url(&self.url)
            .map_err(|e| ExecutionError::NotConfigured { executor: NAME, message: e.to_string() })?;
        let body = serde_json::to_string(&encode(&WebhookRequest {
            incident_id: &a.incident.id,
            service: &a.incident.service,
            severity: a.incident.severity,
            action: &a.action,
            binding_hash: &a.binding_hash,
        }))
        .map_err(|e| ExecutionError::Failed { executor: NAME, message: e.to_string() })?;
        let exchange = self.exchange(body)?;
        let ok = exchange.error.is_none() && exchange.status.is_some_and(|s| (200..300).contains(&s));
        let detail = WebhookDetail {
            url: &self.url,
            http_status: exchange.status,
            response: capped(&exchange.answer),
            outcome_unknown: exchange.error.is_some(),
            error: exchange.error.map(|error| format!("{}: {error}", self.url)),
        };
        Ok(report(NAME, a, false, ok, encode(&detail)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_webhook_url("http://127.0.0.1:8080/x/y").is_ok());
        assert!(check_webhook_url("https://hooks.internal/x").is_ok());
        assert!(check_webhook_url("ftp://x/").is_err());
        assert!(check_webhook_url("http://u:p@x/").is_err());
        assert!(check_webhook_url("http://x:99999/").is_err());
        assert!(check_webhook_url("not a url").is_err());
    }
}
