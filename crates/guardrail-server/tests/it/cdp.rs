//! Headless Chromium driven over the DevTools protocol (a minimal WebSocket client, no extra
//! crates), shared by the browser tests: open a page, evaluate script in it, capture it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Chromium on `PATH`, if installed.
pub fn chromium() -> Option<PathBuf> {
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

/// A WebSocket connection, client side (text frames, masked with a zero key).
struct Ws {
    stream: BufReader<TcpStream>,
}

impl Ws {
    fn connect(port: u16, path: &str) -> Ws {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Longer than the page flow's own waits (60 s each), which one evaluate call awaits.
        s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.contains(" 101 "), "websocket handshake: {status}");
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l == "\r\n" || l.is_empty() {
                break;
            }
        }
        Ws { stream: r }
    }

    fn send(&mut self, text: &str) {
        let b = text.as_bytes();
        let mut f = vec![0x81u8];
        match b.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(b);
        self.stream.get_mut().write_all(&f).unwrap();
    }

    fn recv(&mut self) -> String {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.stream.read_exact(&mut h).unwrap();
            let fin = h[0] & 0x80 != 0;
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut e = [0u8; 2];
                self.stream.read_exact(&mut e).unwrap();
                len = u64::from(u16::from_be_bytes(e));
            } else if len == 127 {
                let mut e = [0u8; 8];
                self.stream.read_exact(&mut e).unwrap();
                len = u64::from_be_bytes(e);
            }
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).unwrap();
            msg.extend_from_slice(&payload);
            if fin {
                return String::from_utf8(msg).unwrap();
            }
        }
    }
}

/// The DevTools protocol over one browser connection, flattened sessions.
struct Cdp {
    ws: Ws,
    next: u64,
}

impl Cdp {
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        match self.try_call(session, method, params) {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    fn try_call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, Value> {
        self.next += 1;
        let mut m = json!({"id": self.next, "method": method, "params": params});
        if let Some(s) = session {
            m["sessionId"] = s.into();
        }
        self.ws.send(&m.to_string());
        loop {
            let v: Value = serde_json::from_str(&self.ws.recv()).unwrap();
            if v["id"] == self.next {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|c| u32::from(val(*c))).collect();
        let n = v.iter().enumerate().fold(0u32, |acc, (i, x)| acc | (x << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if v.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if v.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// One page in a headless Chromium of its own, killed on drop.
pub struct Page {
    cdp: Cdp,
    session: String,
    child: std::process::Child,
    // Kept so the profile outlives the browser.
    _profile: tempfile::TempDir,
}

impl Page {
    /// Opens `url` in a `width`×`height` viewport and waits (up to a minute) until the document
    /// has loaded.
    pub fn open(browser: &Path, url: &str, width: u32, height: u32) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(browser)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"])
            .args(["--no-first-run", "--remote-debugging-port=0"])
            // The machine's network is closed: no background fetches to be refused.
            .args(["--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let port_file = profile.path().join("DevToolsActivePort");
        let start = Instant::now();
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&port_file)
                && t.lines().count() >= 2
            {
                break t;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "chromium did not open its DevTools port");
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut lines = text.lines();
        let port: u16 = lines.next().unwrap().trim().parse().unwrap();
        let path = lines.next().unwrap().trim().to_string();
        let mut cdp = Cdp { ws: Ws::connect(port, &path), next: 0 };
        let target = cdp.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let attached =
            cdp.call(None, "Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true}));
        let session = attached["sessionId"].as_str().unwrap().to_string();
        // The screenshot's size is the viewport's, whatever the window manager of a headless
        // browser made of --window-size.
        cdp.call(
            Some(&session),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        cdp.call(Some(&session), "Page.navigate", json!({"url": url}));
        let mut page = Page { cdp, session, child, _profile: profile };
        let start = Instant::now();
        loop {
            let probe = page.try_eval("location.protocol === 'http:' && document.readyState === 'complete'");
            if probe.is_ok_and(|v| v == true) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "the page did not load");
            std::thread::sleep(Duration::from_millis(100));
        }
        page
    }

    fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let r = self.cdp.try_call(
            Some(&self.session),
            "Runtime.evaluate",
            json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
        )?;
        match r.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    /// The value of `expression` (a promise is awaited); a thrown exception as its JSON.
    pub fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).unwrap_or_else(|e| json!({ "exception": e }))
    }

    /// Polls `expression` every 50 ms until it is `true` or `within` has passed; whether it
    /// became true.
    pub fn wait_for(&mut self, expression: &str, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.try_eval(expression).is_ok_and(|v| v == true) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// A PNG of the viewport, as drawn now.
    pub fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.cdp.call(Some(&self.session), "Page.captureScreenshot", json!({"format": "png"}));
        base64_decode(shot["data"].as_str().unwrap())
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
