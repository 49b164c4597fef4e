//! `guardrail serve`'s notification delivery: a thread with its own store connection that
//! delivers the outbox (`guardrail_notify::outbox`) every `notify.interval_seconds` (default
//! 5 s) and keeps `/metrics`' outbox gauges current.
//!
//! It also decides which of this server's records get outbox rows: the routing table
//! (`guardrail_notify::routing::Routes`) built from the governor config in force (`slack:`,
//! `jira:`, `JIRA_URL`, and the Elasticsearch audit mirror of `audit_mirror:` /
//! `GUARDRAIL_AUDIT_ES`) is installed for this server's store
//! (`guardrail_store::install_router_for`), so every append path — `POST /api/gate`, the
//! governor endpoints, Slack approvals — writes the rows in the record's own transaction
//! without knowing about notifications. A changed config is picked up at the next tick.
//!
//! Delivery runs on this thread only: a slow, failing or rate-limited Slack or Jira never
//! holds a request, a decision or an execution (nor does an unreachable audit mirror). With
//! nothing routed the thread only watches the config (it does not open the store).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use guardrail_notify::outbox::{Deliverer, RetryPolicy};
use guardrail_notify::routing::{Routes, deliverer_from, mirror_channel, mirror_config};
use guardrail_store::AuditStore;

use crate::state::{AppState, GovernorBlocks};

/// The tick when the config does not say (`notify.interval_seconds`).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The longest one delivery pass may run before the thread looks at its stop signal again.
const PASS_DEADLINE: Duration = Duration::from_secs(20);

/// The running delivery thread; dropping it stops it (after the delivery in progress).
#[derive(Debug)]
pub struct OutboxWorker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OutboxWorker {
    /// Starts delivery for `state`'s store. The routing table of the config in force at start
    /// is installed before this returns, so no record appended after it misses its rows.
    pub fn spawn(state: AppState) -> std::io::Result<OutboxWorker> {
        // The environment `serve` captured at start (as the /slack endpoints read it), so a test
        // server in one process gets its own JIRA_*/SLACK_* values.
        let env: BTreeMap<String, String> = state.config().env.clone();
        let mut worker = Worker { state, env, store: None, described: None, current: None };
        worker.reconfigure();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new().name("outbox".into()).spawn(move || worker.run(&rx))?;
        Ok(OutboxWorker { stop: Some(tx), thread: Some(thread) })
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OutboxWorker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    state: AppState,
    env: BTreeMap<String, String>,
    store: Option<Box<dyn AuditStore>>,
    /// The store's description, once opened (the key its router is installed under).
    described: Option<String>,
    /// The blocks the routes and destinations were built from, and the deliverer (`None`
    /// until built on the thread: it holds blocking HTTP clients).
    current: Option<(GovernorBlocks, Routes, Option<Deliverer>)>,
}

impl Worker {
    fn run(mut self, stop: &mpsc::Receiver<()>) {
        loop {
            self.reconfigure();
            let behind = self.tick();
            // A pass that ended with rows still due (a backlog: the audit mirror at thousands of
            // records a second) goes on at once instead of sleeping a whole interval.
            let every = if behind {
                Duration::ZERO
            } else {
                self.current
                    .as_ref()
                    .and_then(|(b, _, _)| b.notify.as_ref())
                    .map_or(DEFAULT_INTERVAL, |n| Duration::from_secs(n.interval_seconds))
            };
            match stop.recv_timeout(every) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => break,
            }
        }
        if let Some(d) = &self.described {
            guardrail_store::install_router_for(d, None);
        }
    }

    /// Rebuilds the routes (and drops the deliverer) when the config's blocks changed.
    fn reconfigure(&mut self) {
        let blocks = self.state.refresh_governor().blocks.clone();
        if self.current.as_ref().is_some_and(|(b, _, _)| *b == blocks) {
            return;
        }
        let routes = Routes::from_blocks(blocks.slack.as_ref(), blocks.jira.as_ref(), &self.env)
            .with_mirror(mirror_config(blocks.audit_mirror.as_ref(), &self.env));
        if let Some(d) = &self.described {
            guardrail_store::install_router_for(d, routes.router());
        }
        self.current = Some((blocks, routes, None));
        self.ensure_store();
    }

    /// Opens the store when something is routed and it is not open (at start, after a config
    /// change, after an error), and installs the routes for it.
    fn ensure_store(&mut self) {
        let Some((_, routes, _)) = &self.current else { return };
        if routes.is_empty() || self.store.is_some() {
            return;
        }
        // StoreError messages name the store with any password redacted.
        match guardrail_store::open_store(&self.state.config().store) {
            Ok(s) => {
                let d = s.describe();
                guardrail_store::install_router_for(&d, routes.router());
                self.described = Some(d);
                self.store = Some(s);
            }
            Err(e) => eprintln!("guardrail serve: outbox: {e}; notifications wait"),
        }
    }

    /// One pass; `true` when it stopped with rows still due.
    fn tick(&mut self) -> bool {
        self.ensure_store();
        let Some((blocks, routes, deliverer)) = &mut self.current else { return false };
        let Some(store) = self.store.as_mut() else { return false };
        let mut behind = false;
        if deliverer.is_none() {
            let built =
                deliverer_from(blocks.slack.as_ref(), blocks.jira.as_ref(), blocks.notify.as_ref(), &self.env, None)
                    .and_then(|d| {
                        Ok(match mirror_channel(routes.mirror(), &self.env, None)? {
                            Some(c) => d.with_channel(c),
                            None => d,
                        })
                    });
            *deliverer = Some(match built {
                Ok(d) => d,
                Err(e) => {
                    // Rows keep accumulating (they are routed by config) and are delivered
                    // once the destination can be set up; the gauges show them waiting.
                    eprintln!("guardrail serve: outbox: {e}; notifications wait");
                    Deliverer::new(Vec::new(), blocks.notify.as_ref().map(RetryPolicy::from).unwrap_or_default())
                }
            });
        }
        if let Some(d) = deliverer.as_ref() {
            // Bounded, so a long backlog to a slow destination still lets the server stop (and
            // the gauges refresh) between passes; the rest is due again at the next tick.
            let deadline = std::time::Instant::now() + PASS_DEADLINE;
            match d.deliver_due(store.as_mut(), &jiff::Timestamp::now, Some(deadline)) {
                Ok(report) => {
                    for p in &report.problems {
                        eprintln!("guardrail serve: outbox: {p}");
                    }
                    // Only when rows went out: rows that all wait for a retry time are not a
                    // reason to spin.
                    behind = (report.stopped_at_deadline || report.more_due) && report.delivered > 0;
                }
                Err(e) => {
                    eprintln!("guardrail serve: outbox: {e}; reconnecting at the next tick");
                    self.store = None;
                    return false;
                }
            }
        }
        match store.outbox_status() {
            Ok(st) => self.state.metrics().outbox(&st, jiff::Timestamp::now().as_millisecond()),
            Err(e) => eprintln!("guardrail serve: outbox: status: {e}"),
        }
        behind
    }
}
