//! Shared helpers for the HTTP tests: a scratch copy of the bundled example data, a server on
//! an ephemeral loopback port, and a client.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use guardrail_gate::inputs::InputArgs;
use guardrail_server::{AppState, Role, ServerConfig, Tokens, hash_token};

/// Token with role `deployer`, identity `ci-pipeline`.
pub const DEPLOYER: &str = "deployer-token-0123456789";
/// Token with role `approver` (may not deploy).
pub const APPROVER: &str = "approver-token-0123456789";
/// Token with role `admin`.
pub const ADMIN: &str = "admin-token-0123456789";
/// Token with role `viewer` (may call no write endpoint).
pub const VIEWER: &str = "viewer-token-0123456789";

pub fn examples() -> PathBuf {
    guardrail_test_support::examples("deploy-gate")
}

/// A scratch directory holding config/ and data/ copied from the examples.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        guardrail_test_support::copy_deploy_gate_inputs(dir.path());
        Scratch { dir }
    }
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// Replaces a file atomically (write + rename), as a careful deploy tool would.
    pub fn write(&self, rel: &str, text: &str) {
        let tmp = self.path(&format!("{rel}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.path(rel)).unwrap();
    }
    /// Rewrites a file in place with `text` (which must be as long as the old text) and puts
    /// its modification time back: the stamp a file system with coarse times shows for a
    /// same-size rewrite within one tick.
    pub fn rewrite_keeping_mtime(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        let before = std::fs::metadata(&p).unwrap();
        assert_eq!(before.len(), text.len() as u64, "{rel}: a same-size rewrite");
        let mtime = before.modified().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        std::io::Write::write_all(&mut &f, text.as_bytes()).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime);
    }
    pub fn store(&self) -> String {
        self.path("audit.db").display().to_string()
    }
    /// A configuration on this scratch copy, evaluated as of 2026-02-21, with the four test
    /// tokens (one per role) and a fast reload.
    pub fn config(&self) -> ServerConfig {
        let inputs = InputArgs {
            root: Some(self.root().to_path_buf()),
            now: Some("2026-02-21T00:00:00Z".into()),
            ..InputArgs::default()
        };
        let mut cfg = ServerConfig::new(inputs, self.store());
        cfg.tokens = Some(Tokens::from_hashes(&[
            (&hash_token(DEPLOYER), "ci-pipeline", Role::Deployer),
            (&hash_token(APPROVER), "alice", Role::Approver),
            (&hash_token(ADMIN), "root", Role::Admin),
            (&hash_token(VIEWER), "reader", Role::Viewer),
        ]));
        cfg.reload_interval = Duration::from_millis(50);
        cfg
    }
}

/// How long a test waits for something that happens in the background (a reload, an event)
/// before it fails: generous, since CI runs these on two loaded cores.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How often a waiting test looks again.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` until it holds, failing after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {DEADLINE:?} waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// A server running on 127.0.0.1:0 until dropped.
pub struct Server {
    pub base: String,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub client: reqwest::Client,
}

impl Server {
    pub async fn start(cfg: ServerConfig) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Off the async threads, as `guardrail serve` does: the first read may query Prometheus
        // with a blocking client.
        let state = tokio::task::spawn_blocking(move || AppState::new(cfg)).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        tokio::spawn(async move {
            guardrail_server::serve(listener, st, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Server { base: format!("http://{addr}"), state, stop: Some(tx), client: reqwest::Client::new() }
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
    }
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
    /// POST with a JSON body and, when given, a bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let mut req =
            self.client.post(self.url(path)).header("content-type", "application/json").body(body.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
    }
    /// Waits until the snapshot's version reaches `v` (the refresher runs every 50 ms; on a
    /// loaded machine a tick can be late by seconds, so the deadline is [`DEADLINE`]).
    pub async fn wait_version(&self, v: u64) {
        let state = self.state.clone();
        wait_until(&format!("snapshot version {v}"), || {
            let ok = state.snapshot().version >= v;
            async move { ok }
        })
        .await;
    }

    /// Waits until `GET path` answers with `status` and a body for which `check` holds, and
    /// returns that body. For a change that takes more than one refresh to show (two files
    /// written one after the other), waiting on a version number could stop half-way.
    pub async fn wait_for(
        &self,
        path: &str,
        status: u16,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let (st, v) = self.get(path).await;
            if st == status && check(&v) {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "GET {path} never gave {status} as expected: {st} {v}");
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
