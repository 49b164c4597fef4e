//! `guardrail_bm25`: FTS5's `bm25()` with its document frequencies read from a table.
//!
//! FTS5's `bm25()` computes, once per query, each phrase's document frequency `nHit` by running
//! the phrase over the whole index (`xQueryPhrase`): at 100,000 runbooks a word in a quarter of
//! them is 25,000 postings walked per word per query — most of an incident run's time, even when
//! only one service's ~200 documents are scored. This function is the same computation, line for
//! line (SQLite 3.54's `fts5Bm25GetData` / `fts5Bm25Function`: k1 = 1.2, b = 0.75,
//! `idf = ln((N − nHit + 0.5) / (nHit + 0.5))` floored at 1e-6, phrase frequencies weighted by
//! column, `−score`), except that for a one-token phrase `nHit` is read from `fts_df` — the
//! per-term document counts `SqliteKnowledgeStore` rebuilds from `fts5vocab` after every write —
//! when `fts_df_state` says the table matches the index (same row and token counts as FTS5
//! reports now). Anything else (a multi-token phrase, no or stale table, an older file) takes
//! `xQueryPhrase` exactly as `bm25()` does. Same inputs, same operations in the same order: the
//! scores are `bm25()`'s to the bit (`sqlite::tests` compares them over a corpus).
//!
//! Arguments: `guardrail_bm25(fts_table, kind, weight_col0, weight_col1, …)`, `kind` the
//! `fts_df.tbl` name (`runbooks`, `evidence`); missing weights are 1.0 as in `bm25()`.

use std::ffi::{c_char, c_int, c_void};
use std::ptr::null_mut;

use rusqlite::Connection;
use rusqlite::ffi;

/// The function's SQL name.
pub(crate) const NAME: &str = "guardrail_bm25";

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Registers [`NAME`] on `conn` (through the `fts5_api` pointer FTS5 hands out for `SELECT
/// fts5(?)`). Fails when this SQLite's FTS5 is too old (the extension API version 3 has
/// `xQueryToken`).
///
/// The function is given `conn`'s address, to read `fts_df` through its cached statements
/// ([`Df`]): `conn` must stay at that address for as long as it is open (the store keeps it
/// boxed), since FTS5 may call the function until the connection closes.
pub(crate) fn register(conn: &Connection) -> Result<(), String> {
    // SAFETY: `handle` is the live connection's pointer, used only while `conn` is borrowed;
    // the statement is finalised on every path; `api` is written by FTS5 during the step and
    // read only after it; the function pointer registered is an `extern "C"` fn with the
    // `fts5_extension_function` signature.
    unsafe {
        let db = conn.handle();
        let mut stmt: *mut ffi::sqlite3_stmt = null_mut();
        let rc = ffi::sqlite3_prepare_v2(db, c"SELECT fts5(?1)".as_ptr(), -1, &mut stmt, null_mut());
        if rc != ffi::SQLITE_OK {
            return Err(format!("preparing SELECT fts5(?1): code {rc}"));
        }
        let mut api: *mut ffi::fts5_api = null_mut();
        ffi::sqlite3_bind_pointer(
            stmt,
            1,
            (&mut api as *mut *mut ffi::fts5_api).cast::<c_void>(),
            c"fts5_api_ptr".as_ptr(),
            None,
        );
        ffi::sqlite3_step(stmt);
        ffi::sqlite3_finalize(stmt);
        if api.is_null() || (*api).iVersion < 2 {
            return Err("this SQLite has no FTS5 extension API".into());
        }
        let Some(create) = (*api).xCreateFunction else {
            return Err("FTS5 offers no xCreateFunction".into());
        };
        let user = (conn as *const Connection).cast_mut().cast::<c_void>();
        let rc = create(api, c"guardrail_bm25".as_ptr(), user, Some(guardrail_bm25), None);
        if rc != ffi::SQLITE_OK {
            return Err(format!("registering {NAME}: code {rc}"));
        }
    }
    Ok(())
}

/// Per-query data, as `bm25()`'s `Fts5Bm25Data`.
struct Data {
    idf: Vec<f64>,
    avgdl: f64,
    freq: Vec<f64>,
}

unsafe extern "C" fn free_data(p: *mut c_void) {
    if !p.is_null() {
        // SAFETY: `p` came from `Box::into_raw` in `data` and FTS5 frees it once.
        drop(unsafe { Box::from_raw(p.cast::<Data>()) });
    }
}

unsafe extern "C" fn count_cb(_: *const ffi::Fts5ExtensionApi, _: *mut ffi::Fts5Context, user: *mut c_void) -> c_int {
    // SAFETY: `user` is the `&mut i64` passed to xQueryPhrase below.
    unsafe { *user.cast::<i64>() += 1 };
    ffi::SQLITE_OK
}

/// The `fts_df_state` row of a kind.
pub(crate) const DF_STATE: &str = "SELECT rows, tokens FROM fts_df_state WHERE tbl = ?1";
/// A term's document count.
pub(crate) const DF_DOCS: &str = "SELECT docs FROM fts_df WHERE tbl = ?1 AND term = ?2";

/// Document counts from `fts_df` for one query, when the table matches the index. Read through
/// the connection's cached statements: preparing the two statements afresh for every query was
/// ~4 % of a proposal's server CPU (SQLite's parser and planner, for five searches each).
struct Df<'c> {
    kind: &'c str,
    lookup: rusqlite::CachedStatement<'c>,
}

impl<'c> Df<'c> {
    /// Opens the lookup for `kind` if `fts_df_state` records exactly `rows` rows and `tokens`
    /// tokens for it; `None` otherwise (no table, stale, any error).
    fn open(conn: &'c Connection, kind: &'c str, rows: i64, tokens: i64) -> Option<Df<'c>> {
        let state = conn
            .prepare_cached(DF_STATE)
            .and_then(|mut st| st.query_row([kind], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))))
            .ok()?;
        if state != (rows, tokens) {
            return None;
        }
        let lookup = conn.prepare_cached(DF_DOCS).ok()?;
        Some(Df { kind, lookup })
    }

    /// The documents holding `token`: 0 when the (current) table has no row for it.
    fn docs(&mut self, token: &str) -> Option<i64> {
        let mut rows = self.lookup.query([self.kind, token]).ok()?;
        match rows.next() {
            Ok(Some(row)) => row.get::<_, i64>(0).ok(),
            Ok(None) => Some(0),
            Err(_) => None,
        }
    }
}

/// `fts5Bm25GetData`, with `nHit` from [`Df`] where it can.
///
/// # Safety
/// Called from [`guardrail_bm25`] with FTS5's pointers.
unsafe fn data(
    api: &ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    conn: Option<&Connection>,
    kind: Option<&str>,
) -> Result<*mut Data, c_int> {
    // SAFETY: FTS5's API functions with its own context, as `bm25()` calls them.
    unsafe {
        let get = api.xGetAuxdata.ok_or(ffi::SQLITE_ERROR)?;
        let existing = get(fts, 0).cast::<Data>();
        if !existing.is_null() {
            return Ok(existing);
        }
        let n_phrase = api.xPhraseCount.ok_or(ffi::SQLITE_ERROR)?(fts).max(0) as usize;
        let mut n_row: i64 = 0;
        let mut n_token: i64 = 0;
        let rc = api.xRowCount.ok_or(ffi::SQLITE_ERROR)?(fts, &mut n_row);
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        let rc = api.xColumnTotalSize.ok_or(ffi::SQLITE_ERROR)?(fts, -1, &mut n_token);
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        let avgdl = n_token as f64 / n_row as f64;
        let mut df = match (conn, kind, api.iVersion >= 3) {
            (Some(c), Some(k), true) => Df::open(c, k, n_row, n_token),
            _ => None,
        };
        let mut idf = Vec::with_capacity(n_phrase);
        for i in 0..n_phrase as c_int {
            let mut n_hit: Option<i64> = None;
            if let (Some(df), Some(size), Some(token_of)) = (df.as_mut(), api.xPhraseSize, api.xQueryToken)
                && size(fts, i) == 1
            {
                let mut tok: *const c_char = std::ptr::null();
                let mut len: c_int = 0;
                if token_of(fts, i, 0, &mut tok, &mut len) == ffi::SQLITE_OK && !tok.is_null() {
                    let bytes = std::slice::from_raw_parts(tok.cast::<u8>(), len.max(0) as usize);
                    // A token that is not UTF-8 (none from this tokenizer) is counted by FTS5.
                    n_hit = std::str::from_utf8(bytes).ok().and_then(|t| df.docs(t));
                }
            }
            let n_hit = match n_hit {
                Some(n) => n,
                None => {
                    let mut n: i64 = 0;
                    let query = api.xQueryPhrase.ok_or(ffi::SQLITE_ERROR)?;
                    let rc = query(fts, i, (&mut n as *mut i64).cast::<c_void>(), Some(count_cb));
                    if rc != ffi::SQLITE_OK {
                        return Err(rc);
                    }
                    n
                }
            };
            // As bm25(): (nRow - nHit) in integers, then + 0.5.
            let mut x = (((n_row - n_hit) as f64 + 0.5) / (n_hit as f64 + 0.5)).ln();
            if x <= 0.0 {
                x = 1e-6;
            }
            idf.push(x);
        }
        drop(df);
        let p = Box::into_raw(Box::new(Data { idf, avgdl, freq: vec![0.0; n_phrase] }));
        let set = api.xSetAuxdata.ok_or(ffi::SQLITE_ERROR)?;
        let rc = set(fts, p.cast::<c_void>(), Some(free_data));
        if rc != ffi::SQLITE_OK {
            // FTS5 calls xDelete on failure too (fts5ApiSetAuxdata), so `p` is gone.
            return Err(rc);
        }
        Ok(p)
    }
}

/// `fts5Bm25Function` with [`data`].
unsafe extern "C" fn guardrail_bm25(
    api: *const ffi::Fts5ExtensionApi,
    fts: *mut ffi::Fts5Context,
    ctx: *mut ffi::sqlite3_context,
    n_val: c_int,
    ap_val: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: FTS5 passes a valid API, context and `n_val` argument values.
    unsafe {
        let Some(api) = api.as_ref() else {
            ffi::sqlite3_result_error_code(ctx, ffi::SQLITE_ERROR);
            return;
        };
        let args: &[*mut ffi::sqlite3_value] =
            if n_val > 0 && !ap_val.is_null() { std::slice::from_raw_parts(ap_val, n_val as usize) } else { &[] };
        let kind = args.first().and_then(|v| {
            let p = ffi::sqlite3_value_text(*v);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, ffi::sqlite3_value_bytes(*v).max(0) as usize))
        });
        let kind = kind.and_then(|k| std::str::from_utf8(k).ok());
        // The connection [`register`] was given (it outlives every query on it); used on this
        // thread only, inside this call, as the query running it uses it.
        let conn = api.xUserData.map(|user| user(fts)).and_then(|p| p.cast::<Connection>().cast_const().as_ref());
        let weights = args.get(1..).unwrap_or(&[]);
        let p = match data(api, fts, conn, kind) {
            Ok(p) => p,
            Err(rc) => {
                ffi::sqlite3_result_error_code(ctx, rc);
                return;
            }
        };
        let d = &mut *p;
        d.freq.iter_mut().for_each(|f| *f = 0.0);
        let mut n_inst: c_int = 0;
        let (Some(inst_count), Some(inst), Some(column_size)) = (api.xInstCount, api.xInst, api.xColumnSize) else {
            ffi::sqlite3_result_error_code(ctx, ffi::SQLITE_ERROR);
            return;
        };
        let mut rc = inst_count(fts, &mut n_inst);
        let mut i = 0;
        while rc == ffi::SQLITE_OK && i < n_inst {
            let (mut ip, mut ic, mut io) = (0, 0, 0);
            rc = inst(fts, i, &mut ip, &mut ic, &mut io);
            if rc == ffi::SQLITE_OK {
                let w = match weights.get(ic.max(0) as usize) {
                    Some(v) if ic >= 0 => ffi::sqlite3_value_double(*v),
                    _ => 1.0,
                };
                if let Some(f) = d.freq.get_mut(ip.max(0) as usize) {
                    *f += w;
                }
            }
            i += 1;
        }
        let mut d_len = 0.0;
        if rc == ffi::SQLITE_OK {
            let mut n_tok: c_int = 0;
            rc = column_size(fts, -1, &mut n_tok);
            d_len = n_tok as f64;
        }
        if rc != ffi::SQLITE_OK {
            ffi::sqlite3_result_error_code(ctx, rc);
            return;
        }
        let mut score = 0.0;
        for (idf, f) in d.idf.iter().zip(&d.freq) {
            score += idf * ((f * (K1 + 1.0)) / (f + K1 * (1.0 - B + B * d_len / d.avgdl)));
        }
        // bm25() returns -1.0 * score; negation is the same bits.
        ffi::sqlite3_result_double(ctx, -score);
    }
}
