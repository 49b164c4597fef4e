//! An error's message with its causes, for adapters whose errors say little on their own.

/// `e`'s message followed by each source's that it does not already contain, joined by `": "`.
/// Transport and database errors keep the useful part in their sources (reqwest's own text is
/// "error sending request", `postgres::Error`'s "db error"; the cause — "Connection refused", the
/// server's message — is in the chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct E(&'static str, #[source] Option<Box<E>>);

    #[test]
    fn joins_sources_once_each() {
        let e = E("error sending request", Some(Box::new(E("Connection refused", None))));
        assert_eq!(error_chain(&e), "error sending request: Connection refused");
        let repeated = E("db error: deadlock detected", Some(Box::new(E("deadlock detected", None))));
        assert_eq!(error_chain(&repeated), "db error: deadlock detected");
    }
}
