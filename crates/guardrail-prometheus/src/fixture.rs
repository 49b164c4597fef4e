//! A local Prometheus with a known history, for the tests and the benchmark.
//!
//! [`openmetrics`] writes 30 days (plus a day of margin) of counters and histogram buckets for
//! four services, ending at a given instant; [`LocalPrometheus::start`] turns it into a TSDB
//! with `promtool tsdb create-blocks-from openmetrics` and serves it on a free loopback port.
//! The binaries are `prometheus` and `promtool` from `PATH`, or
//! `GUARDRAIL_TEST_PROMETHEUS_BIN` / `GUARDRAIL_TEST_PROMTOOL_BIN`; `scripts/test` installs
//! Debian's `prometheus` package when they are missing. Nothing here skips: no binary, no
//! server, an error.
//!
//! The history, per 2-minute step (all counters are linear between the changes below):
//!
//! | service | requests | errors (`code="500"`) | latency buckets ≤0.1/0.25/0.5/1/+Inf s |
//! |---|---|---|---|
//! | `healthy` | 2400 | 1 | 1440/720/192/48/0 |
//! | `burning` | 2400 | 1; 48 during the last hour | 240/480/960/648/72 |
//! | `low-traffic` | 2 | 0; 1 during the last 30 minutes | 1/1/0/0/0 |
//! | `silent` | as `healthy`, but no sample after `end − 2h` | | |
//!
//! Samples are a day apart up to `end − 1d`, 2 hours apart up to `end − 3h` and 2 minutes
//! apart to `end` (few samples far back keep `promtool`'s 2-hour blocks few): every window boundary except `end − 5m` falls on a sample, so Prometheus
//! (2.x: ranges include their start) computes `increase` as the exact difference, and the
//! 5-minute window, extrapolated from 4 minutes of a straight line, is exact too.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;

/// Seconds between samples near the end.
pub const STEP: i64 = 120;

/// Services in the history.
pub const SERVICES: [&str; 4] = ["healthy", "burning", "low-traffic", "silent"];

/// Latency bucket bounds (seconds), `+Inf` last.
pub const BUCKETS: [&str; 5] = ["0.1", "0.25", "0.5", "1", "+Inf"];

const DAY: i64 = 86_400;
const HOUR: i64 = 3600;

/// The sample times, oldest first, for a history ending at `end` (Unix seconds).
pub fn sample_times(end: i64) -> Vec<i64> {
    let start = end - 31 * DAY;
    let mut t = start;
    let mut out = Vec::new();
    while t < end - DAY {
        out.push(t);
        t += DAY;
    }
    t = end - DAY;
    while t < end - 3 * HOUR {
        out.push(t);
        t += 2 * HOUR;
    }
    t = end - 3 * HOUR;
    while t <= end {
        out.push(t);
        t += STEP;
    }
    out
}

/// Counter values of one service at `t`: (requests with code 200, requests with code 500,
/// cumulative latency buckets).
fn values(service: &str, t: i64, end: i64) -> (i64, i64, [i64; 5]) {
    let start = end - 31 * DAY;
    let steps = (t - start) / STEP;
    let since = |before_end: i64| ((t - (end - before_end)) / STEP).max(0);
    let (total, errors, per_step): (i64, i64, [i64; 5]) = match service {
        "burning" => (2400 * steps, steps + 47 * since(HOUR), [240, 480, 960, 648, 72]),
        "low-traffic" => (2 * steps, since(30 * 60), [1, 1, 0, 0, 0]),
        _ => (2400 * steps, steps, [1440, 720, 192, 48, 0]),
    };
    let per_total: i64 = per_step.iter().sum();
    let mut cum = [0i64; 5];
    let mut acc = 0;
    for (i, n) in per_step.iter().enumerate() {
        acc += n;
        cum[i] = 1_000 + acc * (total / per_total.max(1));
    }
    (1_000_000 + total - errors, 1_000 + errors, cum)
}

/// The OpenMetrics text of the whole history ending at `end` (Unix seconds).
pub fn openmetrics(end: i64) -> String {
    let times = sample_times(end);
    let mut s = String::with_capacity(times.len() * 1200);
    let live = |svc: &str, t: i64| svc != "silent" || t <= end - 2 * HOUR;
    s.push_str("# HELP http_requests Requests served.\n# TYPE http_requests counter\n");
    for &t in &times {
        for svc in SERVICES.iter().filter(|svc| live(svc, t)) {
            let (ok, err, _) = values(svc, t, end);
            let _ = writeln!(s, "http_requests_total{{service=\"{svc}\",code=\"200\"}} {ok} {t}");
            let _ = writeln!(s, "http_requests_total{{service=\"{svc}\",code=\"500\"}} {err} {t}");
        }
    }
    s.push_str(
        "# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n",
    );
    for &t in &times {
        for svc in SERVICES.iter().filter(|svc| live(svc, t)) {
            let (_, _, cum) = values(svc, t, end);
            for (le, c) in BUCKETS.iter().zip(cum) {
                let _ = writeln!(s, "http_request_duration_seconds_bucket{{service=\"{svc}\",le=\"{le}\"}} {c} {t}");
            }
            let _ = writeln!(s, "http_request_duration_seconds_count{{service=\"{svc}\"}} {} {t}", cum[4]);
            let _ = writeln!(s, "http_request_duration_seconds_sum{{service=\"{svc}\"}} {} {t}", cum[4] / 5);
        }
    }
    s.push_str("# EOF\n");
    s
}

fn binary(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_string())
}

/// Why the local Prometheus could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FixtureError {
    /// `promtool`, `prometheus` or `sh` could not be run.
    #[error(
        "{bin} could not be run ({reason}). The Prometheus tests need Debian's prometheus package \
         (scripts/test installs it: apt-get install -y prometheus), or set \
         GUARDRAIL_TEST_PROMETHEUS_BIN / GUARDRAIL_TEST_PROMTOOL_BIN"
    )]
    Missing {
        /// The program.
        bin: String,
        /// The operating system's reason.
        reason: String,
    },
    /// A file or directory of the fixture could not be written.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// `promtool` refused the history.
    #[error("promtool tsdb create-blocks-from openmetrics failed: {stderr}")]
    Promtool {
        /// Its standard error.
        stderr: String,
    },
    /// No loopback port to listen on.
    #[error("no free loopback port: {reason}")]
    NoPort {
        /// The operating system's reason.
        reason: String,
    },
    /// Something else on the way (the clock, the HTTP client).
    #[error("{0}")]
    Setup(String),
    /// Prometheus started but did not answer `/-/ready`.
    #[error("{prometheus} did not become ready: {reason}\n{log}")]
    NotReady {
        /// The program.
        prometheus: String,
        /// Why.
        reason: NotReady,
        /// Its log.
        log: String,
    },
}

/// Why Prometheus did not become ready.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// It exited.
    #[error("prometheus exited with {status}")]
    Exited {
        /// Its exit status.
        status: String,
    },
    /// No successful answer in time.
    #[error("no answer from {url} within {seconds}s")]
    NoAnswer {
        /// The readiness URL.
        url: String,
        /// How long it was given.
        seconds: u64,
    },
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(String),
}

/// A running Prometheus serving the known history; stopped and deleted on drop.
#[derive(Debug)]
pub struct LocalPrometheus {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The end of the history (the newest samples), a multiple of [`STEP`].
    pub end: Timestamp,
    child: Child,
    dir: PathBuf,
}

impl LocalPrometheus {
    /// Builds the TSDB for a history ending at the last multiple of [`STEP`] before now and
    /// starts Prometheus on it. `Err` says what is missing or what failed.
    pub fn start() -> Result<LocalPrometheus, FixtureError> {
        let now = Timestamp::now().as_second();
        let end = now - now.rem_euclid(STEP);
        let promtool = binary("GUARDRAIL_TEST_PROMTOOL_BIN", "promtool");
        let prometheus = binary("GUARDRAIL_TEST_PROMETHEUS_BIN", "prometheus");
        let missing =
            |bin: &str, e: std::io::Error| FixtureError::Missing { bin: bin.to_string(), reason: e.to_string() };
        let io = |path: &Path, e: std::io::Error| FixtureError::Io { path: path.to_path_buf(), reason: e.to_string() };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "guardrail-prometheus-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let input = dir.join("history.om");
        std::fs::write(&input, openmetrics(end)).map_err(|e| io(&input, e))?;
        let data = dir.join("data");
        let out = Command::new(&promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
            .arg(&input)
            .arg(&data)
            .output()
            .map_err(|e| missing(&promtool, e))?;
        if !out.status.success() {
            return Err(FixtureError::Promtool { stderr: String::from_utf8_lossy(&out.stderr).into_owned() });
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\nscrape_configs: []\n").map_err(|e| io(&config, e))?;
        let port = free_port()?;
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).map_err(|e| io(&log_path, e))?;
        // Started through a small shell watchdog that stops Prometheus (and deletes the
        // directory) when this process is gone, so a shared instance held in a static, which
        // is never dropped, does not outlive the test run.
        let child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(&prometheus)
            .env("GR_PARENT", std::process::id().to_string())
            .env("GR_DIR", &dir)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=3650d")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| missing("sh", e))?;
        let mut p = LocalPrometheus {
            url: format!("http://127.0.0.1:{port}"),
            end: Timestamp::from_second(end).map_err(|e| FixtureError::Setup(e.to_string()))?,
            child,
            dir,
        };
        match p.wait_ready(Duration::from_secs(60)) {
            Ok(()) => Ok(p),
            Err(e) => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                Err(FixtureError::NotReady { prometheus, reason: e, log })
            }
        }
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), NotReady> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .map_err(|e| NotReady::Client(e.to_string()))?;
        let started = Instant::now();
        let ready = format!("{}/-/ready", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(NotReady::Exited { status: status.to_string() });
            }
            if http.get(&ready).send().is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(NotReady::NoAnswer { url: ready, seconds: limit.as_secs() });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The directory holding the history and the TSDB.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `sh -c WATCHDOG prometheus ARGS…`: runs Prometheus, writes its pid to `$GR_DIR/pid`, and
/// stops it and removes `$GR_DIR` once `$GR_PARENT` has exited or on SIGTERM.
const WATCHDOG: &str = r#"
"$0" "$@" & child=$!
echo "$child" > "$GR_DIR/pid"
stop() { kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; rm -rf "$GR_DIR"; exit 0; }
trap stop TERM INT
while kill -0 "$GR_PARENT" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 0.5; done
stop
"#;

impl LocalPrometheus {
    /// One instance per process, started on first use and stopped when the process exits.
    pub fn shared() -> Result<&'static LocalPrometheus, FixtureError> {
        static CELL: std::sync::OnceLock<Result<LocalPrometheus, FixtureError>> = std::sync::OnceLock::new();
        CELL.get_or_init(LocalPrometheus::start).as_ref().map_err(Clone::clone)
    }

    fn stop_server(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

impl Drop for LocalPrometheus {
    fn drop(&mut self) {
        self.stop_server();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, FixtureError> {
    let no_port = |e: std::io::Error| FixtureError::NoPort { reason: e.to_string() };
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(no_port)?;
    l.local_addr().map(|a| a.port()).map_err(no_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_window_boundary_but_5m_is_a_sample() {
        let end = 1_796_104_800;
        let times = sample_times(end);
        for w in [1800, 3600, 7200, 21_600, 86_400, 259_200, 30 * 86_400] {
            assert!(times.contains(&(end - w)), "{w}");
        }
        assert!(!times.contains(&(end - 300)));
        assert_eq!(*times.last().unwrap(), end);
        assert!(times.windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn counters_follow_the_table() {
        let end = 1_796_104_800;
        let d = |svc: &str, w: i64| {
            let (a1, e1, _) = values(svc, end, end);
            let (a0, e0, _) = values(svc, end - w, end);
            (e1 - e0, (a1 + e1) - (a0 + e0))
        };
        assert_eq!(d("healthy", 3600), (30, 72_000));
        assert_eq!(d("burning", 3600), (1440, 72_000));
        assert_eq!(d("burning", 7200), (1470, 144_000));
        assert_eq!(d("low-traffic", 3600), (15, 60));
        assert_eq!(d("low-traffic", 30 * 86_400), (15, 43_200));
        let (_, _, cum) = values("healthy", end, end);
        let (_, _, cum0) = values("healthy", end - 3600, end);
        let inc: Vec<i64> = cum.iter().zip(cum0).map(|(a, b)| a - b).collect();
        assert_eq!(inc, [43_200, 64_800, 70_560, 72_000, 72_000]);
    }
}
