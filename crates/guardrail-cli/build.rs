//! Link settings for the `guardrail` binary.
//!
//! A CI pipeline starts `guardrail gate` once per deploy, so process start-up is most of its
//! cost (the decision itself takes microseconds; see BENCHMARKS.md). Two link-time settings cut
//! it without touching any code, on x86_64 Linux (glibc) only:
//!
//! - **Packed relative relocations** (`-z pack-relative-relocs`, DT_RELR). The binary stays
//!   position-independent (ASLR covers its code too: it parses files and serves HTTP), but its
//!   ~16,000 relative relocations are stored as a 5 KiB bitmap instead of 390 KiB of
//!   `Elf64_Rela` entries that the dynamic loader reads on every start. Needs glibc ≥ 2.36 at
//!   run time; it is only turned on when the build machine's glibc has it.
//! - **Function order.** `link-order.txt` lists the functions a `gate`, an `incident run` and
//!   a `--version` execute (written by `scripts/link-order` from callgrind runs). The
//!   linker puts them together at the start of `.text`, so the kernel maps about 1.5 MiB of
//!   contiguous code instead of faulting in 64 KiB blocks scattered over the 13 MiB of
//!   server, MCP and HTTP-client code a gate never runs. Names the file lists that a build does
//!   not have (after a refactor) are ignored; the order only affects speed, never behaviour.
//!   This needs LLD, the default linker of Rust ≥ 1.90 on this target.
//!
//! Set `GUARDRAIL_PLAIN_LINK=1` to build without either (e.g. for an older glibc, or another
//! linker).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=GUARDRAIL_PLAIN_LINK");
    if env::var_os("GUARDRAIL_PLAIN_LINK").is_some_and(|v| !v.is_empty() && v != "0") {
        return;
    }
    let target = env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" {
        return;
    }
    if glibc_has_dt_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }

    // Someone who picked another linker (GNU ld, mold, a cross linker) gets the default layout:
    // `--symbol-ordering-file` is an LLD option.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let custom_linker = flags.contains("linker-features")
        || flags.contains("link-self-contained")
        || flags.contains("linker=")
        || flags.contains("fuse-ld");
    if custom_linker || !rustc_defaults_to_lld() {
        return;
    }
    let manifest = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = std::path::Path::new(&manifest).join("link-order.txt");
    if order.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Rust 1.90 made the bundled LLD the default linker for x86_64-unknown-linux-gnu.
fn rustc_defaults_to_lld() -> bool {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut parts = text.split_whitespace().nth(1).unwrap_or("").split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 90)
}

/// Whether the C library the binary links against understands DT_RELR (glibc 2.36 added the
/// `GLIBC_ABI_DT_RELR` version that LLD then requires, so the binary refuses to start on an
/// older one instead of crashing).
fn glibc_has_dt_relr() -> bool {
    ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .is_some_and(|bytes| bytes.windows(17).any(|w| w == b"GLIBC_ABI_DT_RELR"))
}
