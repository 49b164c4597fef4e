//! The dashboard in a real browser: headless Chromium loads the page from a real server, and
//! the screenshot is checked for the decision banner and the drawn cost chart (by their exact
//! colours), then again with broken inputs. Screenshots are kept in
//! `target/guardrail-server-screenshots/`.
//!
//! Needs `chromium` (Debian's package; `scripts/test` installs it). Without it the test says so
//! and passes, unless `GUARDRAIL_REQUIRE_BROWSER=1` (set by `scripts/test`), where it fails.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Scratch, Server};

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guardrail-server-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

type Image = (u32, u32, Vec<u8>);

/// Takes a 1400×1400 screenshot after the page has had `wait_ms` to load and draw.
fn screenshot(browser: &Path, url: &str, out: &Path, wait_ms: u32) -> Image {
    let profile = tempfile::tempdir().unwrap();
    let status = Command::new(browser)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
        .args(["--no-first-run", "--window-size=1400,1400"])
        .arg(format!("--timeout={wait_ms}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium failed: {status}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = info.color_type.samples();
    let rgb: Vec<u8> = buf.chunks(channels).flat_map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, rgb)
}

/// Pixels of exactly this colour inside the rectangle [x0, x1) × [y0, y1).
fn count(img: &Image, rgb: [u8; 3], x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
    let (w, h, data) = img;
    let mut n = 0;
    for y in y0..y1.min(*h) {
        for x in x0..x1.min(*w) {
            let i = ((y * w + x) * 3) as usize;
            if data[i..i + 3] == rgb {
                n += 1;
            }
        }
    }
    n
}

/// Screenshots until `check` passes, waiting longer each time (a loaded machine can take more
/// than a few seconds to start the browser and run the page's requests): about two and a half
/// minutes in all before it fails, but a page that draws in time passes at the first shot.
/// Headless Chromium may take the shot at the page's load event, before its fetches have
/// answered: on a CI machine running every server test at once that happened on every one of
/// five quick attempts (an empty or half-drawn page), so there are more attempts, a second apart.
async fn shot_until(browser: &Path, url: &str, out: &Path, check: impl Fn(&Image) -> Result<(), String>) {
    let mut last = String::new();
    for (attempt, wait_ms) in [4000, 4000, 8000, 8000, 16000, 16000, 32000, 60000].into_iter().enumerate() {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let (b, u, o) = (browser.to_path_buf(), url.to_string(), out.to_path_buf());
        let img = tokio::task::spawn_blocking(move || screenshot(&b, &u, &o, wait_ms)).await.unwrap();
        match check(&img) {
            Ok(()) => return,
            Err(e) => last = e,
        }
    }
    panic!("{}: {last}", out.display());
}

const DELAY_ORANGE: [u8; 3] = [0xdb, 0x8b, 0x2c];
const BLOCK_RED: [u8; 3] = [0xf8, 0x51, 0x49];
const CURRENT_WEEK_BAR: [u8; 3] = [0x58, 0xa6, 0xff];
const EARLIER_BAR: [u8; 3] = [0x3b, 0x4b, 0x5e];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_draws_the_banner_and_the_cost_chart() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("GUARDRAIL_REQUIRE_BROWSER").is_err(),
            "chromium is not installed (apt-get install chromium)"
        );
        eprintln!("browser test skipped: chromium is not installed (scripts/test installs it)");
        return;
    };
    let s = Scratch::new();
    let srv = Server::start(s.config()).await;
    let dir = screenshot_dir();
    let url = srv.url("/");

    shot_until(&browser, &url, &dir.join("dashboard-delay.png"), |img| {
        if (img.0, img.1) != (1400, 1400) {
            return Err(format!("size {}x{}", img.0, img.1));
        }
        // The banner (top of the page, full width): its 6 px left border and the action in orange.
        let banner = count(img, DELAY_ORANGE, 0, 60, 1400, 280);
        // The cost card is the right half below the banner: current-week bars in blue, earlier
        // days in slate, thousands of pixels each when the chart is drawn.
        let blue = count(img, CURRENT_WEEK_BAR, 700, 280, 1400, 720);
        let slate = count(img, EARLIER_BAR, 700, 280, 1400, 720);
        // The SLO card (left half) has no bar chart.
        let slo_slate = count(img, EARLIER_BAR, 0, 280, 700, 720);
        if banner > 500 && blue > 3000 && slate > 5000 && slo_slate < 500 {
            Ok(())
        } else {
            Err(format!("banner {banner} orange; cost chart {blue} blue, {slate} slate; SLO card {slo_slate} slate"))
        }
    })
    .await;

    // Broken metrics: no decision, a red banner, and no DELAY anywhere near the top.
    s.write("data/metrics.json", "{ bad");
    srv.wait_version(2).await;
    shot_until(&browser, &url, &dir.join("dashboard-no-decision.png"), |img| {
        let red = count(img, BLOCK_RED, 0, 60, 1400, 280);
        let orange = count(img, DELAY_ORANGE, 0, 60, 1400, 280);
        // The cost block does not need the metrics: its chart is still drawn.
        let blue = count(img, CURRENT_WEEK_BAR, 700, 280, 1400, 900);
        if red > 500 && orange < 50 && blue > 3000 {
            Ok(())
        } else {
            Err(format!("banner {red} red, {orange} orange; cost chart {blue} blue"))
        }
    })
    .await;
}
