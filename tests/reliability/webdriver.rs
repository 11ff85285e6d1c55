//! A minimal WebDriver client (W3C protocol, JSON over HTTP) over the suite's own HTTP client,
//! and a `chromedriver` process driving headless Chromium. Only what the console's browser
//! test needs: sessions, navigation, elements, clicks, typing, text, screenshots, a script.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

/// chromedriver keeps connections open whatever the request asks: read an answer up to its
/// `Content-Length` instead of until the connection closes.
#[derive(Clone, Copy)]
struct Client {
    addr: SocketAddr,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Client {
    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Answer> {
        use std::io::{Read, Write};
        let data = body.map(Value::to_string).unwrap_or_default();
        let mut stream = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            data.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(data.as_bytes())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            // Other tests of this binary start and kill processes: a signal may interrupt a read.
            let n = match stream.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => other?,
            };
            buf.extend_from_slice(&chunk[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                match len {
                    Some(len) if buf.len() >= end + 4 + len => {
                        return Ok(Answer { status, body: buf[end + 4..end + 4 + len].to_vec() });
                    }
                    None if n == 0 => return Ok(Answer { status, body: buf[end + 4..].to_vec() }),
                    _ => {}
                }
            }
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "answer cut short"));
            }
        }
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian's `chromium` and `chromium-driver` packages put the binaries.
const DRIVERS: &[&str] = &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];
const BROWSERS: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/lib/chromium/chromium"];

fn found(candidates: &[&str], env: &str) -> Option<String> {
    if let Ok(p) = std::env::var(env) {
        return Some(p);
    }
    candidates.iter().find(|p| Path::new(p).exists()).map(|p| (*p).to_owned())
}

/// `chromedriver` on a loopback port, killed when dropped.
pub struct Driver {
    child: Child,
    client: Client,
    browser: String,
}

impl Driver {
    /// Starts chromedriver; `None` (said loudly) when it or Chromium is missing and
    /// `GRIDLIGHT_TEST_SKIP_BROWSER=1`; a failure that says what to install otherwise.
    pub fn start() -> Option<Driver> {
        let (driver, browser) = match (found(DRIVERS, "CHROMEDRIVER"), found(BROWSERS, "CHROMIUM")) {
            (Some(d), Some(b)) => (d, b),
            _ if std::env::var("GRIDLIGHT_TEST_SKIP_BROWSER").as_deref() == Ok("1") => {
                eprintln!("\n!!! SKIPPING the browser test: chromedriver or chromium is not installed\n");
                return None;
            }
            _ => panic!(
                "the console's browser test needs Chromium and its WebDriver: \
                 `apt-get install chromium chromium-driver` (or set CHROMEDRIVER and CHROMIUM to \
                 their paths), or set GRIDLIGHT_TEST_SKIP_BROWSER=1 to skip it (CI never does)"
            ),
        };
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        // A process group of its own: dropping the driver ends the browsers it started too,
        // even one whose session never got going.
        let child = Command::new(&driver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {driver}: {e}"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let d = Driver { child, client: Client { addr }, browser };
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.client.send("GET", "/status", None).map(|r| r.json()["value"]["ready"] != true).unwrap_or(true) {
            assert!(Instant::now() < deadline, "chromedriver did not get ready within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(d)
    }

    /// A new headless browser; `mobile`: a phone's 390×844 viewport (device emulation).
    pub fn session(&self, mobile: bool) -> Browser<'_> {
        let mut options = json!({
            "binary": self.browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=zh-CN", "--hide-scrollbars"],
        });
        if mobile {
            options["mobileEmulation"] = json!({"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2.0}});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}});
        let res = self.client.send("POST", "/session", Some(&caps)).expect("create a WebDriver session");
        let body = res.json();
        assert!(res.is_success(), "new session: {body}");
        let id = body["value"]["sessionId"].as_str().expect("a session id").to_owned();
        Browser { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session, closed when dropped.
pub struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

#[derive(Clone)]
pub struct Element(String);

impl Browser<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.id);
        let c = &self.driver.client;
        let res = c.send(method, &path, body.as_ref()).unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let value = res.json();
        assert!(res.is_success(), "WebDriver {method} {path}: {} {value}", res.status);
        value["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap_or_default().to_owned()
    }

    /// The first element matching a CSS selector (panics with the page's text when none).
    pub fn find(&self, css: &str) -> Element {
        self.try_find(css).unwrap_or_else(|| panic!("no element `{css}` on {}:\n{}", self.url(), self.page_text()))
    }

    pub fn try_find(&self, css: &str) -> Option<Element> {
        self.find_all(css).into_iter().next()
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.call("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found
            .as_array()
            .map(|a| a.iter().map(|e| Element(e[ELEMENT].as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default()
    }

    pub fn find_in(&self, parent: &Element, css: &str) -> Element {
        let e = self.call(
            "POST",
            &format!("/element/{}/element", parent.0),
            Some(json!({"using": "css selector", "value": css})),
        );
        Element(e[ELEMENT].as_str().unwrap_or_default().to_owned())
    }

    pub fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Clicks a form's button and waits (up to 20 s) until the page the submission leads to is
    /// loaded: a click answers as soon as the navigation starts, so what a caller looks for next
    /// could otherwise be looked for on the old page (seen on a loaded machine).
    pub fn submit(&self, e: &Element) {
        self.script("window.__glOldPage = true; return null");
        self.click(e);
        let deadline = Instant::now() + Duration::from_secs(20);
        let path = format!("/session/{}/execute/sync", self.id);
        let probe = json!({"script": "return window.__glOldPage === undefined && document.readyState === 'complete'", "args": []});
        loop {
            // While the navigation runs, the script may fail (no document yet): that is "not yet".
            let done = self.driver.client.send("POST", &path, Some(&probe)).map(|a| a.json()["value"] == json!(true));
            if done.unwrap_or(false) {
                return;
            }
            assert!(Instant::now() < deadline, "the submission did not lead to a loaded page: {}", self.url());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn type_into(&self, e: &Element, text: &str) {
        self.call("POST", &format!("/element/{}/value", e.0), Some(json!({ "text": text })));
    }

    pub fn text(&self, e: &Element) -> String {
        self.call("GET", &format!("/element/{}/text", e.0), None).as_str().unwrap_or_default().to_owned()
    }

    pub fn attribute(&self, e: &Element, name: &str) -> String {
        self.call("GET", &format!("/element/{}/attribute/{name}", e.0), None).as_str().unwrap_or_default().to_owned()
    }

    pub fn page_text(&self) -> String {
        match self.try_find_body() {
            Some(b) => self.text(&b),
            None => String::new(),
        }
    }

    fn try_find_body(&self) -> Option<Element> {
        self.find_all("body").into_iter().next()
    }

    /// Runs a script in the page and returns its value.
    pub fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Saves a screenshot of the whole page (PNG), for people to look at.
    pub fn screenshot(&self, path: &Path) {
        // The document's full height, so that a screenshot shows the whole page.
        let h = self.script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)");
        let w = self.script("return window.innerWidth").as_i64().unwrap_or(1280);
        let inner = self.script("return window.innerHeight").as_i64().unwrap_or(900);
        let h = h.as_i64().unwrap_or(900).clamp(inner, 4000);
        let cdp = json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": w < 500}});
        let full = format!("/session/{}/goog/cdp/execute", self.id);
        let _ = self.driver.client.send("POST", &full, Some(&cdp));
        let png = self.call("GET", "/screenshot", None);
        let back = json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {"width": w, "height": inner, "deviceScaleFactor": if w < 500 { 2 } else { 1 }, "mobile": w < 500}});
        let _ = self.driver.client.send("POST", &full, Some(&back));
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).expect("a PNG");
        std::fs::write(path, bytes).expect("write the screenshot");
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.id);
        let _ = self.driver.client.send("DELETE", &path, None);
    }
}
