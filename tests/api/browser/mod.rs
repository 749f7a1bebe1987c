//! The apps in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`), through a small W3C
//! WebDriver client on reqwest. Without a browser these tests say they were
//! skipped, unless `TANDEM_TEST_BROWSER=required` (as `.ci/run` sets), where
//! a missing browser fails them.

mod journeys;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait for something on a page may take.
pub const WAIT: Duration = Duration::from_secs(15);
/// A phone-sized viewport (the member app is mobile-first) and a desktop one.
pub const PHONE: (u32, u32) = (390, 844);
pub const DESKTOP: (u32, u32) = (1280, 900);

/// Whether a browser is installed; when not and not required, the caller
/// returns early after this printed why.
pub fn available() -> bool {
    let present =
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
    let required = std::env::var("TANDEM_TEST_BROWSER").is_ok_and(|v| v == "required");
    assert!(
        present || !required,
        "TANDEM_TEST_BROWSER=required but {CHROMIUM} or {CHROMEDRIVER} is missing"
    );
    if !present {
        eprintln!("SKIPPED: no Chromium/ChromeDriver ({CHROMIUM}, {CHROMEDRIVER}); install chromium and chromium-driver to run the browser journeys");
    }
    present
}

/// One chromedriver process; each [`Browser`] is a session of it with its
/// own profile (own localStorage, so its own signed-in member).
pub struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
    /// Session paths (`/session/{id}`), ended when the driver is dropped.
    sessions: std::sync::Mutex<Vec<String>>,
    profiles: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Driver {
    pub async fn start() -> Driver {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{url}/status")).send().await.ok();
            if let Some(r) = ready {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profiles = std::env::temp_dir().join(format!(
            "tandem-browser-{}",
            crate::helpers::random_suffix()
        ));
        std::fs::create_dir_all(&profiles).expect("profiles dir");
        Driver {
            child,
            url,
            http,
            sessions: Default::default(),
            profiles: tempdir::Dir(profiles),
        }
    }

    /// A new browser window (its own profile) at `size`.
    pub async fn browser(&self, size: (u32, u32)) -> Browser {
        let profile = self.profiles.0.join(crate::helpers::random_suffix());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--lang=en-US", format!("--user-data-dir={}", profile.display()),
                         format!("--window-size={},{}", size.0, size.1)]
            }
        }}});
        let r = self
            .http
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await
            .expect("new session");
        let v: Value = r.json().await.expect("session json");
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        self.sessions
            .lock()
            .expect("sessions")
            .push(format!("/session/{id}"));
        let b = Browser {
            base: format!("{}/session/{id}", self.url),
            http: self.http.clone(),
        };
        b.call(
            "POST",
            "/window/rect",
            json!({"width": size.0, "height": size.1}),
        )
        .await;
        b
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // End every session first, so each Chromium exits with it (killing
        // chromedriver alone would leave them running). Plain blocking HTTP:
        // this runs inside the test's runtime, where reqwest cannot block.
        let addr = self.url.trim_start_matches("http://").to_owned();
        for path in self.sessions.lock().map(|s| s.clone()).unwrap_or_default() {
            delete_session(&addr, &path);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser {
    base: String,
    http: reqwest::Client,
}

/// An element of the page.
#[derive(Clone)]
pub struct El(String);

impl Browser {
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let v: Value = req
            .send()
            .await
            .expect("webdriver call")
            .json()
            .await
            .expect("webdriver json");
        v["value"].clone()
    }

    async fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let v = self.call(method, path, body).await;
        match v.get("error") {
            Some(e) => Err(format!("{e}: {}", v["message"])),
            None => Ok(v),
        }
    }

    pub async fn goto(&self, url: &str) {
        self.try_call("POST", "/url", json!({"url": url}))
            .await
            .expect("navigate");
    }

    pub async fn resize(&self, size: (u32, u32)) {
        self.call(
            "POST",
            "/window/rect",
            json!({"width": size.0, "height": size.1}),
        )
        .await;
    }

    /// Runs JavaScript in the page; its return value.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.try_call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
        .expect("script")
    }

    async fn find_now(&self, css: &str) -> Option<El> {
        let v = self
            .try_call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await
            .ok()?;
        v[ELEMENT].as_str().map(|s| El(s.to_owned()))
    }

    /// Waits for an element to be on the page.
    pub async fn find(&self, css: &str) -> El {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_now(css).await {
                return e;
            }
            if Instant::now() > deadline {
                panic!(
                    "no element {css} on {}\n{}",
                    self.url().await,
                    self.body_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        let deadline = Instant::now() + WAIT;
        // An element just rendered may not be interactable yet, or sit under
        // a fixed bar: bring it to the middle and try again, as a person would.
        while let Err(err) = self
            .try_call("POST", &format!("/element/{}/click", e.0), json!({}))
            .await
        {
            assert!(Instant::now() < deadline, "cannot click {css}: {err}");
            let reference = json!({ELEMENT: e.0});
            let _ = self.try_call("POST", "/execute/sync", json!({"script": "arguments[0].scrollIntoView({block: 'center'})", "args": [reference]})).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clears a field and types into it, as a person would.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.try_call("POST", &format!("/element/{}/clear", e.0), json!({}))
            .await
            .expect("clear");
        self.try_call(
            "POST",
            &format!("/element/{}/value", e.0),
            json!({"text": text}),
        )
        .await
        .expect("type");
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call("GET", &format!("/element/{}/text", e.0), json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub async fn body_text(&self) -> String {
        self.js(
            "return document.body ? document.body.innerText : ''",
            json!([]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    pub async fn url(&self) -> String {
        self.call("GET", "/url", json!({}))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the element's text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_now(css).await {
                let text = self
                    .call("GET", &format!("/element/{}/text", e.0), json!({}))
                    .await;
                let text = text.as_str().unwrap_or_default();
                if text.contains(needle) {
                    return text.to_owned();
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{css} never showed {needle:?} on {}\n{}",
                    self.url().await,
                    self.body_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `script` (a function body returning a value) returns true.
    pub async fn wait_js(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        while self.js(script, json!([])).await != Value::Bool(true) {
            if Instant::now() > deadline {
                panic!(
                    "never true: {what} on {}\n{}",
                    self.url().await,
                    self.body_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Chromium's network emulation: offline fires the page's `offline`
    /// event and fails new connections, as a phone losing its signal.
    pub async fn set_offline(&self, offline: bool) {
        let conditions = json!({"network_conditions": {"offline": offline, "latency": 0,
            "download_throughput": -1, "upload_throughput": -1}});
        self.try_call("POST", "/chromium/network_conditions", conditions)
            .await
            .expect("network conditions");
    }

    /// Saves a PNG of the page to `$TANDEM_SCREENSHOTS_DIR/{name}.png` when
    /// that variable is set (scripts/screenshots.sh).
    pub async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("TANDEM_SCREENSHOTS_DIR") else {
            return;
        };
        use base64::Engine as _;
        let v = self.call("GET", "/screenshot", json!({})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("screenshot base64");
        std::fs::create_dir_all(&dir).expect("screenshots dir");
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png)
            .expect("write screenshot");
    }
}

fn delete_session(addr: &str, path: &str) {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if c.write_all(req.as_bytes()).is_ok() {
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    }
}
