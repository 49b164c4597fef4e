//! Answers a read-only SQLite knowledge base already gave, kept while the file is unchanged.
//!
//! A long-running server (`guardrail serve`) plans many incidents over one knowledge base, and
//! incidents repeat (the same alert fires again, one service's incidents share symptoms): the
//! same runbook and evidence searches run again and again over a file nothing writes. Searches
//! were ~40 % of a proposal's server CPU (FTS5 parsing the query, walking the doclists, ranking).
//!
//! **Exactly what SQLite would answer.** Every answer is tagged with the connection's
//! `PRAGMA data_version`, read before the answer is computed; a lookup reads it again and
//! serves a kept answer only when it is unchanged, i.e. when no connection (of this or another
//! process) committed anything to the file since that answer's tag was read — so the kept
//! answer is what the search would return now. The pragma starts a read transaction, which is
//! where SQLite itself notices another connection's commit (its page cache relies on the same
//! check), so nothing is missed that a fresh search would see. A commit between reading the tag
//! and computing the answer only makes the tag older than the answer: the next lookup sees a
//! newer version and drops everything. Only read-only connections keep answers (a connection's
//! own commits do not move its `data_version`, and a read-only one makes none); errors are
//! never kept. The answers are the values a search returned, cloned: the same ids, order and
//! score bits.
//!
//! Inside a read transaction held for one request ([`crate::SqliteKnowledgeStore::begin_read`])
//! the version is read once, when it begins: nothing can commit while it is held. An evidence
//! search of one stance that misses finds both stances with one query and keeps both (the
//! stress phase asks for the other next).
//!
//! **Words the index does not hold.** Inside a held read transaction a search's words that no
//! document of the table holds are dropped before the search and before the lookup
//! ([`crate::SqliteKnowledgeStore`]'s `effective_query`): such a word matches no row and adds
//! exactly 0.0 to every score, so the answer is the same, and an incident text with a word of its
//! own (an id, a host name, a number) finds the answer kept for the same text without it. Whether
//! the table holds a word is asked of FTS5 once per word and kept here, at the same version.
//!
//! Bounded: at most [`MAX_BYTES`] of document text per connection; a full cache is emptied
//! (the working set of a server is a few searches per service, refilled in one proposal each).

use std::collections::HashMap;

use guardrail_core::remediation::{ActionPolicy, Stance};

use crate::{EvidenceHit, KnowledgeStats, RunbookHit};

/// Most bytes of document text (ids, titles, bodies, texts) kept per connection: 1 MiB, so a
/// server's pool (at most 64 idle connections per file) keeps at most 64 MiB; a proposal's
/// searches are a few KB, so this is a few hundred distinct incidents' worth.
pub(crate) const MAX_BYTES: usize = 1 << 20;

/// What a search was asked: the query as given, or the FTS5 query it comes to once the words
/// the index does not hold are dropped. Two kinds, so that a text never stands for another
/// text's FTS5 query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Query {
    /// The query text as given.
    Text(String),
    /// The FTS5 query searched (quoted words, OR-ed).
    Fts(String),
}

impl Query {
    fn len(&self) -> usize {
        match self {
            Query::Text(q) | Query::Fts(q) => q.len(),
        }
    }
}

/// A searched FTS5 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `runbooks_fts`.
    Runbooks,
    /// `evidence_fts`.
    Evidence,
}

/// A runbook search: the query, the service, `k`.
type RunbookKey = (Query, String, usize);
/// An evidence search: the query, the service, `k`, the stance.
type EvidenceKey = (Query, String, usize, Option<Stance>);

/// Kept answers of one connection, all read at one `data_version`.
#[derive(Debug, Default)]
pub(crate) struct SearchCache {
    /// The `data_version` every kept answer was read at (or after, see the module doc).
    version: Option<i64>,
    runbooks: HashMap<RunbookKey, Vec<RunbookHit>>,
    evidence: HashMap<EvidenceKey, Vec<EvidenceHit>>,
    policies: HashMap<String, Vec<ActionPolicy>>,
    /// What a runbook search's text comes to: its FTS5 query without the words the table
    /// does not hold (`None`: it holds none of them).
    runbook_texts: HashMap<String, Option<String>>,
    /// The same for evidence searches.
    evidence_texts: HashMap<String, Option<String>>,
    /// Whether `runbooks_fts` holds a word.
    runbook_words: HashMap<String, bool>,
    /// Whether `evidence_fts` holds a word.
    evidence_words: HashMap<String, bool>,
    stats: Option<KnowledgeStats>,
    bytes: usize,
    /// Lookups answered from the cache (tests).
    pub(crate) hits: u64,
}

impl SearchCache {
    /// Makes the cache hold answers of `version` only: anything kept at another version is
    /// dropped.
    pub(crate) fn at_version(&mut self, version: i64) {
        if self.version != Some(version) {
            self.clear();
            self.version = Some(version);
        }
    }

    fn clear(&mut self) {
        self.runbooks.clear();
        self.evidence.clear();
        self.policies.clear();
        self.runbook_texts.clear();
        self.evidence_texts.clear();
        self.runbook_words.clear();
        self.evidence_words.clear();
        self.stats = None;
        self.bytes = 0;
    }

    /// Room for `bytes` more: a full cache is emptied (same version).
    fn make_room(&mut self, bytes: usize) -> bool {
        if bytes > MAX_BYTES {
            return false;
        }
        if self.bytes + bytes > MAX_BYTES {
            self.clear();
        }
        self.bytes += bytes;
        true
    }

    pub(crate) fn runbooks(&mut self, query: &Query, service: &str, k: usize) -> Option<Vec<RunbookHit>> {
        // The key borrows nothing: building it costs two short copies, far less than a search.
        let hit = self.runbooks.get(&(query.clone(), service.to_string(), k)).cloned();
        self.hits += u64::from(hit.is_some());
        hit
    }

    pub(crate) fn keep_runbooks(&mut self, query: &Query, service: &str, k: usize, hits: &[RunbookHit]) {
        let bytes = query.len()
            + hits
                .iter()
                .map(|h| h.runbook.id.len() + h.runbook.title.len() + h.runbook.body.len() + 64)
                .sum::<usize>();
        if self.make_room(bytes) {
            self.runbooks.insert((query.clone(), service.to_string(), k), hits.to_vec());
        }
    }

    pub(crate) fn evidence(
        &mut self,
        query: &Query,
        service: &str,
        k: usize,
        stance: Option<Stance>,
    ) -> Option<Vec<EvidenceHit>> {
        let hit = self.evidence.get(&(query.clone(), service.to_string(), k, stance)).cloned();
        self.hits += u64::from(hit.is_some());
        hit
    }

    pub(crate) fn keep_evidence(
        &mut self,
        query: &Query,
        service: &str,
        k: usize,
        stance: Option<Stance>,
        hits: &[EvidenceHit],
    ) {
        let bytes = query.len() + hits.iter().map(|h| h.doc.id.len() + h.doc.text.len() + 64).sum::<usize>();
        if self.make_room(bytes) {
            self.evidence.insert((query.clone(), service.to_string(), k, stance), hits.to_vec());
        }
    }

    /// The FTS5 query a text came to at this version, if worked out before (a text repeats:
    /// the same alert, the same claim), so that its words are not looked up again.
    pub(crate) fn text(&self, table: Table, text: &str) -> Option<Option<String>> {
        match table {
            Table::Runbooks => self.runbook_texts.get(text),
            Table::Evidence => self.evidence_texts.get(text),
        }
        .cloned()
    }

    pub(crate) fn keep_text(&mut self, table: Table, text: &str, fts: Option<&str>) {
        if self.make_room(text.len() + fts.map_or(0, str::len) + 64) {
            let fts = fts.map(str::to_string);
            match table {
                Table::Runbooks => self.runbook_texts.insert(text.to_string(), fts),
                Table::Evidence => self.evidence_texts.insert(text.to_string(), fts),
            };
        }
    }

    /// Whether `table` holds `word`, if asked before at this version. Looked up by the word
    /// itself (no key is built: a claim's thirty words are thirty lookups per search).
    pub(crate) fn word(&self, table: Table, word: &str) -> Option<bool> {
        match table {
            Table::Runbooks => self.runbook_words.get(word),
            Table::Evidence => self.evidence_words.get(word),
        }
        .copied()
    }

    pub(crate) fn keep_word(&mut self, table: Table, word: &str, held: bool) {
        if self.make_room(word.len() + 32) {
            match table {
                Table::Runbooks => self.runbook_words.insert(word.to_string(), held),
                Table::Evidence => self.evidence_words.insert(word.to_string(), held),
            };
        }
    }

    pub(crate) fn policies(&mut self, service: &str) -> Option<Vec<ActionPolicy>> {
        let hit = self.policies.get(service).cloned();
        self.hits += u64::from(hit.is_some());
        hit
    }

    pub(crate) fn keep_policies(&mut self, service: &str, policies: &[ActionPolicy]) {
        let bytes = service.len()
            + policies
                .iter()
                .map(|p| p.id.len() + p.rule.len() + p.blocked_actions.iter().map(String::len).sum::<usize>() + 64)
                .sum::<usize>();
        if self.make_room(bytes) {
            self.policies.insert(service.to_string(), policies.to_vec());
        }
    }

    pub(crate) fn stats(&mut self) -> Option<KnowledgeStats> {
        self.hits += u64::from(self.stats.is_some());
        self.stats
    }

    pub(crate) fn keep_stats(&mut self, stats: KnowledgeStats) {
        self.stats = Some(stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EvidenceDoc;

    fn q(text: &str) -> Query {
        Query::Text(text.to_string())
    }

    fn hits(n: usize, text_len: usize) -> Vec<EvidenceHit> {
        (0..n)
            .map(|i| EvidenceHit {
                doc: EvidenceDoc {
                    id: format!("ev-{i}"),
                    service: "*".into(),
                    stance: Stance::Support,
                    text: "x".repeat(text_len),
                },
                score: 1.5,
            })
            .collect()
    }

    /// The kept text never exceeds [`MAX_BYTES`]: a full cache is emptied before the next
    /// answer is kept, an answer larger than the bound is not kept, and another version drops
    /// everything.
    #[test]
    fn the_cache_stays_within_its_bound() {
        let mut c = SearchCache::default();
        c.at_version(1);
        let big = hits(3, 100_000);
        for i in 0..100 {
            c.keep_evidence(&q(&format!("q{i}")), "svc", 3, Some(Stance::Support), &big);
            assert!(c.bytes <= MAX_BYTES, "{} bytes after {i}", c.bytes);
        }
        assert!(c.evidence(&q("q99"), "svc", 3, Some(Stance::Support)).is_some(), "the latest is kept");
        assert!(c.evidence(&q("q0"), "svc", 3, Some(Stance::Support)).is_none(), "the oldest were dropped");
        assert!(c.evidence(&q("q99"), "svc", 3, Some(Stance::Contradict)).is_none(), "the stance is part of the key");
        c.keep_evidence(&q("huge"), "svc", 3, None, &hits(1, MAX_BYTES + 1));
        assert!(c.evidence(&q("huge"), "svc", 3, None).is_none(), "larger than the bound: not kept");
        c.at_version(1);
        assert!(c.evidence(&q("q99"), "svc", 3, Some(Stance::Support)).is_some(), "same version: kept");
        c.at_version(2);
        assert!(c.evidence(&q("q99"), "svc", 3, Some(Stance::Support)).is_none(), "another version: dropped");
        assert_eq!(c.bytes, 0);
    }
}
