//! The dashboard in a real browser: headless Chromium (driven over the DevTools protocol,
//! [`crate::cdp`]) loads the page from a real server, and, once the DOM shows it drawn, its
//! screenshot is checked for the decision banner and the drawn cost chart (by their exact
//! colours), then again with broken inputs. Screenshots are kept in
//! `target/guardrail-server-screenshots/`.
//!
//! Needs `chromium` (Debian's package; `scripts/test` installs it). Without it the test says so
//! and passes, unless `GUARDRAIL_REQUIRE_BROWSER=1` (set by `scripts/test`), where it fails.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cdp::{Page, chromium};

use common::{Scratch, Server};

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guardrail-server-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

type Image = (u32, u32, Vec<u8>);

fn decode_png(png_bytes: &[u8]) -> Image {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
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

/// Captures the page until `check` passes, kept at `out` (the last capture when none does).
/// The page loads its data with fetches after the load event and redraws on live events, so a
/// capture is only judged once the DOM says the dashboard is drawn (`drawn`), and then again
/// every quarter second: one browser for the whole wait, up to two minutes on a loaded machine,
/// while a page that draws in time passes at the first capture.
fn capture_until(page: &mut Page, drawn: &str, out: &Path, check: impl Fn(&Image) -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::from("the page never said it was drawn");
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if !page.wait_for(drawn, left) {
            break;
        }
        let png = page.screenshot();
        std::fs::write(out, &png).unwrap();
        match check(&decode_png(&png)) {
            Ok(()) => return,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{}: {last}", out.display());
}

/// The dashboard has shown a decision (or its absence) and drawn the cost chart's bars.
const DRAWN: &str = r#"(() => {
  const action = document.getElementById("action");
  const cost = document.getElementById("cost-chart");
  return !!action && action.textContent !== "…" && !!cost && cost.querySelectorAll("rect").length > 3;
})()"#;

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
    // One browser for both views: the second is the same page redrawn on the live event.
    let mut page = tokio::task::spawn_blocking(move || Page::open(&browser, &url, 1400, 1400)).await.unwrap();

    let out = dir.join("dashboard-delay.png");
    page = tokio::task::spawn_blocking(move || {
        capture_until(&mut page, DRAWN, &out, delay_banner_and_cost_chart);
        page
    })
    .await
    .unwrap();

    // Broken metrics: no decision, a red banner, and no DELAY anywhere near the top.
    s.write("data/metrics.json", "{ bad");
    srv.wait_version(2).await;
    let out = dir.join("dashboard-no-decision.png");
    let slo_figures = tokio::task::spawn_blocking(move || {
        capture_until(&mut page, DRAWN, &out, no_decision_and_cost_chart);
        page.eval(r##"Array.from(document.querySelectorAll("#slo-card .row span:not(.k)")).map((e) => e.textContent)"##)
    })
    .await
    .unwrap();
    // The SLO card's figures came from the metrics that no longer read: none is left showing.
    let figures = slo_figures.as_array().unwrap_or_else(|| panic!("{slo_figures}"));
    assert_eq!(figures.len(), 6, "{slo_figures}");
    assert!(figures.iter().all(|f| f == "—"), "stale SLO figures: {slo_figures}");
}

fn delay_banner_and_cost_chart(img: &Image) -> Result<(), String> {
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
}

fn no_decision_and_cost_chart(img: &Image) -> Result<(), String> {
    let red = count(img, BLOCK_RED, 0, 60, 1400, 280);
    let orange = count(img, DELAY_ORANGE, 0, 60, 1400, 280);
    // The cost block does not need the metrics: its chart is still drawn.
    let blue = count(img, CURRENT_WEEK_BAR, 700, 280, 1400, 900);
    if red > 500 && orange < 50 && blue > 3000 {
        Ok(())
    } else {
        Err(format!("banner {red} red, {orange} orange; cost chart {blue} blue"))
    }
}
