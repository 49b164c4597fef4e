//! PostgreSQL backend against a real server: `postgres://postgres@127.0.0.1:5432/test` or
//! `GUARDRAIL_TEST_PG_URL`. Every test works in its own schema, dropped at the end. There is no
//! skipping: if the server is down these tests fail, and `scripts/test` is what starts it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use guardrail_store::{AuditStore, PostgresStore, StoreError, open_store};

fn pg_url() -> String {
    std::env::var("GUARDRAIL_TEST_PG_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A fresh schema, dropped (with everything in it) when the test ends, pass or fail.
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    fn new() -> Self {
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
    fn raw(&self) -> impl FnMut(&str) + use<> {
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
        Err(StoreError::InvalidSpec { reason, .. }) => assert!(reason.contains("schema name"), "{reason}"),
        other => panic!("expected InvalidSpec, got {other:?}"),
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
struct TestRole {
    url: String,
    name: String,
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
         GRANT SELECT ON guardrail_schema TO {r}"
    ));
    let sep = if schema.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}user={r}&password=appender-pw", schema.url);
    let mut store = PostgresStore::connect_with_schema(&url, s).unwrap_or_else(|e| panic!("connect as {r}: {e}"));
    assert!(!store.describe().contains("appender-pw"), "{}", store.describe());
    assert_eq!(store.append(common::draft(2)).unwrap().seq, 3);
    assert_eq!(store.find("3").unwrap().map(|r| r.seq), Some(3));
    assert!(store.verify().unwrap().ok());
    // …and that role cannot rewrite history.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let denied = c.batch_execute(&format!("DELETE FROM \"{s}\".audit_records WHERE seq = 1")).unwrap_err();
    assert!(format!("{denied:?}").contains("permission denied"), "{denied:?}");
}
