//! A VFS that coalesces contiguous writes of the WAL (being written; see /tmp/coord/brief-W.md).
