//! PostgreSQL backend against a real server: `postgres://postgres@127.0.0.1:5432/test` or
//! `GUARDRAIL_TEST_PG_URL`. Every test works in its own schema, dropped at the end. There is no
//! skipping: if the server is down these tests fail, and `scripts/test` is what starts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use guardrail_store::{AuditStore, PostgresStore, StoreError, open_store};

use crate::common;

pub(crate) fn pg_url() -> String {
    std::env::var("GUARDRAIL_TEST_PG_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh schema, dropped (with everything in it) when the test ends, pass or fail.
pub(crate) struct TestSchema {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl TestSchema {
    pub(crate) fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("gr_test_{}_{}_{}", std::process::id(), nanos, N.fetch_add(1, Ordering::Relaxed));
        let url = pg_url();
        // Fail loudly (never skip) when the server is not there.
        if let Err(e) = postgres::Client::connect(&url, postgres::NoTls) {
            panic!(
                "PostgreSQL test server not reachable at {}: {e:?}\n\
                 Start it (scripts/test does: pg_ctlcluster --skip-systemctl-redirect <version> main start) \
                 or point GUARDRAIL_TEST_PG_URL at one.",
                guardrail_store::redact_url(&url)
            );
        }
        TestSchema { url, name }
    }

    fn open(&self) -> PostgresStore {
        PostgresStore::connect_with_schema(&self.url, &self.name).unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// Raw SQL in the test schema, bypassing the store.
    pub(crate) fn raw(&self) -> impl FnMut(&str) + use<> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        client.batch_execute(&format!("SET search_path TO \"{}\"", self.name)).unwrap();
        move |sql: &str| client.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&self.url, postgres::NoTls)
            .and_then(|mut c| c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name)));
        if let Err(e) = dropped {
            eprintln!("could not drop test schema {}: {e:?}", self.name);
        }
    }
}

fn with_tampering(case: common::TamperCase) {
    let schema = TestSchema::new();
    let mut store = schema.open();
    let mut exec = schema.raw();
    case(&mut store, &mut exec);
}

#[test]
fn pg_round_trip() {
    let schema = TestSchema::new();
    let mut store = schema.open();
    common::round_trip(&mut store);
    assert_eq!(store.schema(), Some(schema.name.as_str()));
    assert!(store.describe().ends_with(&format!("?schema={}", schema.name)), "{}", store.describe());
}

#[test]
fn pg_hash_at() {
    let schema = TestSchema::new();
    common::hash_at_is_the_records_hash(&mut schema.open());
}

#[test]
fn pg_rejects_invalid_drafts() {
    let schema = TestSchema::new();
    common::rejects_invalid_drafts(&mut schema.open());
}

#[test]
fn pg_floats_and_odd_values_round_trip_exactly() {
    let schema = TestSchema::new();
    let (url, name) = (schema.url.clone(), schema.name.clone());
    common::floats_round_trip(&mut schema.open(), &move || {
        Box::new(PostgresStore::connect_with_schema(&url, &name).unwrap())
    });
}

#[test]
fn pg_body_is_stored_as_exact_text() {
    let schema = TestSchema::new();
    let mut store = schema.open();
    let rec = store.append(common::draft(0)).unwrap();
    let mut c = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
    let row = c
        .query_one(
            &format!("SELECT body, pg_typeof(body)::text FROM \"{}\".audit_records WHERE seq = 1", schema.name),
            &[],
        )
        .unwrap();
    let (text, ty): (String, String) = (row.get(0), row.get(1));
    assert_eq!(ty, "text");
    assert_eq!(text, serde_json::to_string(&rec.body).unwrap());
}

#[test]
fn pg_open_store_with_schema_param_and_reconnect() {
    let schema = TestSchema::new();
    let spec = format!("{}?schema={}", schema.url, schema.name);
    let first = common::fill(&mut *open_store(&spec).unwrap(), 3);
    let mut again = open_store(&spec).unwrap();
    assert_eq!(again.all().unwrap(), first);
    assert_eq!(again.append(common::draft(3)).unwrap().seq, 4);
    // describe() is itself a usable spec (here there is no password to redact).
    let described = again.describe();
    assert_eq!(open_store(&described).unwrap().all().unwrap().len(), 4);
}

#[test]
fn pg_refuses_newer_schema() {
    let schema = TestSchema::new();
    drop(schema.open());
    schema.raw()("UPDATE guardrail_schema SET version = 99");
    match PostgresStore::connect_with_schema(&schema.url, &schema.name) {
        Err(StoreError::Schema { reason, .. }) => assert!(reason.contains("newer"), "{reason}"),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn pg_connection_errors_are_clear_and_redacted() {
    // Nothing listens on port 1.
    let e = PostgresStore::connect("postgres://someone:hunter2@127.0.0.1:1/db").unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("someone:***@127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.to_lowercase().contains("connect"), "{msg}");
    match PostgresStore::connect_with_schema(&pg_url(), "bad-name") {
        Err(StoreError::SchemaName { problem, .. }) => assert_eq!(problem.name, "bad-name"),
        other => panic!("expected SchemaName, got {other:?}"),
    }
}

#[test]
fn pg_tamper_edit_body() {
    with_tampering(common::tamper_edit_body);
}

#[test]
fn pg_tamper_edit_other_columns() {
    with_tampering(common::tamper_edit_other_columns);
}

#[test]
fn pg_tamper_body_not_json() {
    with_tampering(common::tamper_body_not_json);
}

#[test]
fn pg_tamper_delete_middle() {
    with_tampering(common::tamper_delete_middle);
}

#[test]
fn pg_tamper_swap() {
    with_tampering(common::tamper_swap);
}

#[test]
fn pg_tamper_truncate_tail() {
    with_tampering(common::tamper_truncate_tail);
}

#[test]
fn pg_tamper_anchor() {
    with_tampering(common::tamper_anchor);
}

#[test]
fn pg_tamper_rebuild() {
    with_tampering(common::tamper_rebuild);
}

#[test]
fn pg_concurrent_claims_one_winner() {
    let schema = TestSchema::new();
    let (url, name) = (schema.url.clone(), schema.name.clone());
    common::concurrent_claims(
        Arc::new(move || {
            Box::new(PostgresStore::connect_with_schema(&url, &name).unwrap_or_else(|e| panic!("connect: {e}")))
                as Box<dyn AuditStore>
        }),
        12,
    );
}

#[test]
fn pg_concurrent_threads_with_own_connections() {
    // The schema does not exist yet: the 8 first connections also race to create it.
    let schema = TestSchema::new();
    let (url, name) = (schema.url.clone(), schema.name.clone());
    common::concurrent_appends(
        Arc::new(move || {
            Box::new(PostgresStore::connect_with_schema(&url, &name).unwrap_or_else(|e| panic!("connect: {e}")))
                as Box<dyn AuditStore>
        }),
        8,
        50,
    );
}

/// Drops a test role (and its grants) when the test ends.
pub(crate) struct TestRole {
    pub(crate) url: String,
    pub(crate) name: String,
}

impl Drop for TestRole {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}", self.name));
        }
    }
}

#[test]
fn pg_append_only_role_is_enough() {
    let schema = TestSchema::new();
    common::fill(&mut schema.open(), 2);
    let role = TestRole { url: schema.url.clone(), name: format!("{}_appender", schema.name) };
    let (r, s) = (&role.name, &schema.name);
    schema.raw()(&format!(
        "CREATE ROLE {r} LOGIN PASSWORD 'appender-pw'; GRANT USAGE ON SCHEMA {s} TO {r}; \
         GRANT SELECT, INSERT ON audit_records TO {r}; GRANT SELECT, UPDATE ON chain_head TO {r}; \
         GRANT SELECT, INSERT ON audit_claims, audit_claim_kinds TO {r}; GRANT SELECT ON guardrail_schema TO {r}"
    ));
    let sep = if schema.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}user={r}&password=appender-pw", schema.url);
    let mut store = PostgresStore::connect_with_schema(&url, s).unwrap_or_else(|e| panic!("connect as {r}: {e}"));
    assert!(!store.describe().contains("appender-pw"), "{}", store.describe());
    assert_eq!(store.append(common::draft(2)).unwrap().seq, 3);
    assert_eq!(store.find("3").unwrap().map(|r| r.seq), Some(3));
    // Claims too (the claim index: its kinds are indexed by this role when first claimed).
    let claim = |who: &str| guardrail_core::audit::RecordDraft {
        kind: "execution_claim".into(),
        recorded_at: "2026-11-24T10:00:00Z".into(),
        body: serde_json::json!({"claim": "k#0", "who": who}),
    };
    assert!(matches!(store.append_claim(claim("a"), "k#0").unwrap(), guardrail_store::Claim::Won(_)));
    assert!(matches!(store.append_claim(claim("b"), "k#0").unwrap(), guardrail_store::Claim::Held(_)));
    assert!(store.verify().unwrap().ok());
    // …and that role cannot rewrite history.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let denied = c.batch_execute(&format!("DELETE FROM \"{s}\".audit_records WHERE seq = 1")).unwrap_err();
    assert!(format!("{denied:?}").contains("permission denied"), "{denied:?}");
}

/// TLS (`sslmode`, `sslrootcert`) against a throwaway PostgreSQL (the newest installed) started
/// here: its own data directory and port, `ssl = on` with a certificate made by an rcgen CA for
/// `localhost` and `127.0.0.1`, and a `pg_hba.conf` that accepts TCP only over TLS (`hostssl`).
/// The shared server on 5432 is not touched. Missing PostgreSQL binaries fail the test (never a
/// skip).
mod tls {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use guardrail_store::{AuditStore, PostgresStore, StoreError};
    use guardrail_test_support::tls::TestCa;

    /// The newest installed PostgreSQL's binaries (`/usr/lib/postgresql/<version>/bin`, as
    /// Debian's `postgresql` package, which scripts/test installs, lays them out).
    fn bin_dir() -> PathBuf {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
                    .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        match versions.pop() {
            Some((_, bin)) => bin,
            None => {
                panic!("no /usr/lib/postgresql/<version>/bin with initdb and pg_ctl: scripts/test installs PostgreSQL")
            }
        }
    }

    /// A PostgreSQL cluster in a temporary directory, stopped (immediately) on drop.
    struct Server {
        /// The PostgreSQL binaries.
        bin: PathBuf,
        dir: tempfile::TempDir,
        data: PathBuf,
        port: u16,
        /// The CA that signed the server certificate, PEM file.
        ca_file: PathBuf,
        /// Another CA, which signed nothing the server has.
        wrong_ca_file: PathBuf,
        as_postgres: bool,
    }

    impl Server {
        fn start() -> Server {
            let bin = bin_dir();
            // initdb refuses to run as root: then the cluster belongs to the `postgres` account.
            let as_postgres = run_output(Command::new("id").arg("-u")).trim() == "0";
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let server = Server {
                bin,
                ca_file: dir.path().join("ca.pem"),
                wrong_ca_file: dir.path().join("wrong-ca.pem"),
                dir,
                data,
                port,
                as_postgres,
            };
            if as_postgres {
                chown_to_postgres(server.dir.path());
            }
            server.pg("initdb", &["-D", path(&server.data), "-A", "trust", "-U", "postgres", "--no-sync"]);

            let ca = TestCa::new("Guardrail test PostgreSQL CA");
            let leaf = ca.issue(&["localhost", "127.0.0.1"], Some("localhost"));
            std::fs::write(&server.ca_file, ca.pem()).unwrap();
            std::fs::write(&server.wrong_ca_file, TestCa::new("Some other CA").pem()).unwrap();
            let (crt, pem_key) = (server.data.join("server.crt"), server.data.join("server.key"));
            std::fs::write(&crt, leaf.cert_pem()).unwrap();
            std::fs::write(&pem_key, leaf.key_pem()).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pem_key, std::fs::Permissions::from_mode(0o600)).unwrap();
            let mut conf = std::fs::read_to_string(server.data.join("postgresql.conf")).unwrap();
            conf.push_str(&format!(
                "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nssl = on\n\
                 ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\n",
                server.port,
                server.dir.path().display()
            ));
            std::fs::write(server.data.join("postgresql.conf"), conf).unwrap();
            // TCP only over TLS: a plain connection finds no pg_hba.conf entry.
            std::fs::write(
                server.data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
            if as_postgres {
                chown_to_postgres(server.dir.path());
            }
            let log = server.dir.path().join("log");
            server.pg("pg_ctl", &["-D", path(&server.data), "-l", path(&log), "-w", "-t", "60", "start"]);
            server
        }

        /// Restarts the server with `ssl = off` and a `pg_hba.conf` that takes plain TCP.
        fn restart_without_tls(&self) {
            let data = path(&self.data).to_string();
            self.pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
            let conf = self.data.join("postgresql.conf");
            let text = std::fs::read_to_string(&conf).unwrap().replace("\nssl = on\n", "\nssl = off\n");
            std::fs::write(&conf, text).unwrap();
            std::fs::write(self.data.join("pg_hba.conf"), "local all all trust\nhost all all 127.0.0.1/32 trust\n")
                .unwrap();
            let log = path(&self.dir.path().join("log")).to_string();
            self.pg("pg_ctl", &["-D", &data, "-l", &log, "-w", "-t", "60", "start"]);
        }

        /// Runs a PostgreSQL tool (as `postgres` when we are root); panics with its output on failure.
        fn pg(&self, tool: &str, args: &[&str]) {
            let program = self.bin.join(tool);
            let mut cmd = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&program);
                c
            } else {
                Command::new(&program)
            };
            cmd.args(args).current_dir(self.dir.path());
            let out = cmd.output().unwrap_or_else(|e| panic!("{tool}: {e}"));
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            assert!(
                out.status.success(),
                "{tool} failed: {}\n{}\nserver log:\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }

        /// A connection string for user postgres, database postgres, over TCP, plus `params`.
        fn url(&self, params: &str) -> String {
            format!("postgres://postgres@127.0.0.1:{}/postgres?connect_timeout=20&{params}", self.port)
        }

        /// Whether the backend named `application_name` is on TLS, asked over the Unix socket.
        fn ssl_of(&self, application_name: &str) -> Vec<bool> {
            let admin = format!("host={} port={} user=postgres dbname=postgres", self.dir.path().display(), self.port);
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            c.query(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
                &[&application_name],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let data = self.data.display().to_string();
            let stop = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
            }));
            if stop.is_err() {
                eprintln!("could not stop the test PostgreSQL in {data}");
            }
        }
    }

    fn path(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn run_output(cmd: &mut Command) -> String {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn chown_to_postgres(dir: &Path) {
        run_output(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir));
    }

    fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(url)
    }

    fn refused(url: &str, expect: &str) {
        match connect(url) {
            Ok(_) => panic!("{url}: connected, expected a refusal mentioning {expect:?}"),
            Err(e) => assert!(e.to_string().contains(expect), "{url}: expected {expect:?} in: {e}"),
        }
    }

    #[test]
    fn pg_sslmodes_against_a_tls_server() {
        let server = Server::start();
        let ca = server.ca_file.display().to_string();
        let wrong = server.wrong_ca_file.display().to_string();

        // verify-full: the right CA and a name in the certificate (an IP, then a DNS name
        // reached through hostaddr).
        let mut store = connect(&server.url(&format!("sslmode=verify-full&sslrootcert={ca}&application_name=vfull")))
            .unwrap_or_else(|e| panic!("verify-full with the right CA: {e}"));
        assert_eq!(server.ssl_of("vfull"), [true]);
        store.append(super::common::draft(0)).unwrap();
        assert!(store.verify().unwrap().ok());
        drop(store);
        let by_name = format!(
            "postgres://postgres@localhost:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}",
            server.port
        );
        connect(&by_name).unwrap_or_else(|e| panic!("verify-full by name: {e}"));

        // verify-full, wrong CA: refused, and so is verify-ca and require with that root.
        refused(&server.url(&format!("sslmode=verify-full&sslrootcert={wrong}")), "UnknownIssuer");
        refused(&server.url(&format!("sslmode=verify-ca&sslrootcert={wrong}")), "UnknownIssuer");
        refused(&server.url(&format!("sslmode=require&sslrootcert={wrong}")), "UnknownIssuer");
        // …and prefer with a root certificate does not fall back to plain text after a failed check.
        refused(&server.url(&format!("sslmode=prefer&sslrootcert={wrong}")), "UnknownIssuer");

        // Host name mismatch: the certificate is for localhost/127.0.0.1, not otherhost.
        let other = |mode: &str| {
            format!(
                "postgres://postgres@otherhost:{}/postgres?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}",
                server.port
            )
        };
        refused(&other("verify-full"), "certificate not valid for name \"otherhost\"");
        // verify-ca checks the chain only.
        connect(&other("verify-ca")).unwrap_or_else(|e| panic!("verify-ca ignores the name: {e}"));

        // require: encrypted, certificate not checked (libpq).
        connect(&server.url("sslmode=require&application_name=req")).unwrap_or_else(|e| panic!("require: {e}"));
        // disable against a hostssl-only server: no pg_hba.conf entry for a plain connection.
        refused(&server.url("sslmode=disable"), "no encryption");
        // prefer (the default): TLS when the server offers it.
        let _store = connect(&server.url("application_name=pref")).unwrap_or_else(|e| panic!("prefer: {e}"));
        assert_eq!(server.ssl_of("pref"), [true]);

        // Bad values are refused before connecting, naming the field.
        match connect(&server.url("sslmode=verify-full")) {
            Err(StoreError::Tls { problem: guardrail_store::TlsParamError::RootCertNeeded { mode }, .. }) => {
                assert_eq!(mode, "verify-full")
            }
            other => panic!("expected Tls RootCertNeeded, got {other:?}"),
        }
        match connect(&server.url("sslmode=verify_full")) {
            Err(StoreError::Tls { problem: guardrail_store::TlsParamError::UnknownMode { value }, .. }) => {
                assert_eq!(value, "verify_full")
            }
            other => panic!("expected Tls UnknownMode, got {other:?}"),
        }

        // The same server without TLS: prefer falls back to plain text, require refuses, and
        // prefer with a root certificate is plain too (libpq: the server offered no TLS to check).
        drop(_store);
        server.restart_without_tls();
        let _plain = connect(&server.url("application_name=pref-plain")).unwrap_or_else(|e| panic!("prefer: {e}"));
        assert_eq!(server.ssl_of("pref-plain"), [false]);
        refused(&server.url("sslmode=require"), "server does not support TLS");
        refused(&server.url(&format!("sslmode=verify-full&sslrootcert={ca}")), "server does not support TLS");
        let _plain_too = connect(&server.url(&format!("sslrootcert={ca}&application_name=pref-root")))
            .unwrap_or_else(|e| panic!("prefer with a root certificate: {e}"));
        assert_eq!(server.ssl_of("pref-root"), [false]);
    }
}
