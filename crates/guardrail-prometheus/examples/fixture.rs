//! Serves the test fixture's known history on a local Prometheus until standard input closes:
//! `cargo run -p guardrail-prometheus --example fixture`. Prints the URL and the end of the
//! history (pass it as `guardrail gate --now`).

use std::io::BufRead;

fn main() {
    match guardrail_prometheus::fixture::LocalPrometheus::start() {
        Ok(p) => {
            println!("url {}\nend {}", p.url, p.end);
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
