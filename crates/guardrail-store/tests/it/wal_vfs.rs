//! The WAL write-coalescing VFS.
