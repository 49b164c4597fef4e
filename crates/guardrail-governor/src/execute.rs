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
//! - [`WebhookExecutor`]: an HTTP/1.1 POST of a JSON body to an `http://` URL, written over
//!   `std::net` (no TLS: put it behind a local relay), with a timeout; a 2xx answer is success.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use guardrail_core::approval::{ExecutionMismatch, binding_hash, render_template};
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
        let argv = self.commands.get(&a.action).map(|t| render_template(t, &a.params()));
        let detail = match argv {
            None => json!({"would_run": a.action, "command": null}),
            Some(Ok(argv)) => json!({"would_run": a.action, "command": argv}),
            Some(Err(e)) => json!({"would_run": a.action, "command": null, "command_error": e}),
        };
        Ok(report("dry-run", a, true, true, detail))
    }
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
        let argv = render_template(template, &a.params())
            .map_err(|message| ExecutionError::NotConfigured { executor: NAME, message })?;
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
                    return Err(ExecutionError::Failed {
                        executor: NAME,
                        message: format!("{program} did not finish within {} s and was killed", self.timeout.as_secs()),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(ExecutionError::Failed { executor: NAME, message: format!("waiting: {e}") }),
            }
        };
        let stdout = out_t.join().unwrap_or_default();
        let stderr = err_t.join().unwrap_or_default();
        let detail = json!({
            "argv": argv,
            "exit_code": status.code(),
            "stdout": capped(&stdout),
            "stderr": capped(&stderr),
        });
        Ok(report(NAME, a, false, status.success(), detail))
    }
}

/// POSTs the action as JSON.
#[derive(Debug, Clone)]
pub struct WebhookExecutor {
    /// `http://host[:port]/path`.
    pub url: String,
    /// Connect, write and read timeout.
    pub timeout: Duration,
}

/// `(host, port, path)` of an `http://` URL.
pub fn parse_http_url(url: &str) -> Result<(String, u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("{url:?} has no host (or carries credentials, which are not supported)"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h.to_string(), p.parse::<u16>().map_err(|_| format!("{url:?} has an invalid port {p:?}"))?)
        }
        _ => (authority.to_string(), 80),
    };
    if path.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("{url:?} has spaces or control characters in its path"));
    }
    Ok((host, port, path.to_string()))
}

impl Executor for WebhookExecutor {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn execute(&self, a: &AuthorisedAction) -> Result<ExecutionReport, ExecutionError> {
        const NAME: &str = "webhook";
        let fail = |message: String| ExecutionError::Failed { executor: NAME, message };
        let (host, port, path) =
            parse_http_url(&self.url).map_err(|message| ExecutionError::NotConfigured { executor: NAME, message })?;
        let body = serde_json::to_string(&json!({
            "incident_id": a.incident.id,
            "service": a.incident.service,
            "severity": a.incident.severity,
            "action": a.action,
            "binding_hash": a.binding_hash,
        }))
        .map_err(|e| fail(e.to_string()))?;
        let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("{}: cannot resolve: {e}", self.url)))?
            .next()
            .ok_or_else(|| fail(format!("{}: no address", self.url)))?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| fail(format!("{}: {e}", self.url)))?;
        s.set_read_timeout(Some(self.timeout)).map_err(|e| fail(e.to_string()))?;
        s.set_write_timeout(Some(self.timeout)).map_err(|e| fail(e.to_string()))?;
        let host_header = if port == 80 { host.clone() } else { format!("{host}:{port}") };
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nUser-Agent: guardrail\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).map_err(|e| fail(format!("{}: sending: {e}", self.url)))?;
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response.len() > 64 * 1024 {
                        break;
                    }
                }
                Err(e) if response.is_empty() => return Err(fail(format!("{}: reading the answer: {e}", self.url))),
                // A server that answered and then kept the connection open: what we have is it.
                Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&response);
        let status_line = text.lines().next().unwrap_or_default().to_string();
        let status: Option<u16> = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
        let Some(status) = status.filter(|_| status_line.starts_with("HTTP/1.")) else {
            return Err(fail(format!("{}: not an HTTP answer: {status_line:?}", self.url)));
        };
        let answer = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let detail = json!({
            "url": self.url,
            "http_status": status,
            "response": capped(answer.as_bytes()),
        });
        Ok(report(NAME, a, false, (200..300).contains(&status), detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_http_url("http://127.0.0.1:8080/x/y").unwrap(), ("127.0.0.1".into(), 8080, "/x/y".into()));
        assert_eq!(parse_http_url("http://example.invalid").unwrap(), ("example.invalid".into(), 80, "/".into()));
        assert!(parse_http_url("https://x/").is_err());
        assert!(parse_http_url("http://u:p@x/").is_err());
        assert!(parse_http_url("http://x:99999/").is_err());
        assert!(parse_http_url("http://x/a b").is_err());
    }
}
