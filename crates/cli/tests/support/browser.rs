//! A headless Chromium driven over W3C WebDriver (Debian's `chromium` and `chromium-driver`),
//! for the browser tests. One chromedriver per test: it starts in milliseconds next to the
//! browser it launches, and owning both makes killing them on drop simple.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

/// How long an explicit wait polls before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);
/// The window's size; screenshots stretch it to the page's height.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1000;

/// Flags that keep Chromium headless, sandbox-free (the test runs as root in a container) and
/// quiet: without the background-networking ones it keeps dialling Google on a closed network.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-default-apps",
    "--disable-extensions",
];

/// Where screenshots go: `test-output/screenshots/` at the workspace root.
pub fn screenshot_dir() -> PathBuf {
    crate::support::repo().join("test-output/screenshots")
}

fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A browser session on a `baton server`, ended (and its processes killed) on drop.
pub struct Browser {
    pub client: Client,
    /// The server's `http://127.0.0.1:PORT`, which `goto` paths are relative to.
    base: String,
    /// The test's name, for failure screenshots.
    name: String,
    driver: Driver,
    driver_addr: String,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or returns `None` after saying why on
    /// stderr when they are not installed. With `BATON_REQUIRE_BROWSER=1` (set by `.ci/run`) a
    /// missing browser fails the test instead.
    pub async fn start(name: &str, base: &str) -> Option<Self> {
        Self::start_with(name, base, &[]).await
    }

    /// [`start`](Self::start) with the page script switched off, as some users browse.
    pub async fn start_without_script(name: &str, base: &str) -> Option<Self> {
        Self::start_with(name, base, &["--blink-settings=scriptEnabled=false"]).await
    }

    async fn start_with(name: &str, base: &str, extra_flags: &[&str]) -> Option<Self> {
        let driver_bin = binary("BATON_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium_bin = binary("BATON_CHROMIUM", "/usr/bin/chromium");
        for bin in [&driver_bin, &chromium_bin] {
            if !bin.exists() {
                crate::support::skip::skipped(
                    &format!("browser test `{name}`"),
                    &bin.display().to_string(),
                    "BATON_REQUIRE_BROWSER",
                    "apt-get install -y chromium chromium-driver",
                );
                return None;
            }
        }
        // A failure screenshot from an earlier run would mislead whoever looks next.
        let _ = std::fs::remove_file(screenshot_dir().join(format!("failed-{name}.png")));
        let profile = tempfile::tempdir().expect("profile dir");
        // Its own process group, so that drop can kill chromedriver and every browser process
        // it started at once, even after a panic left the session open.
        let mut driver = Driver(
            Command::new(&driver_bin)
                .arg("--port=0")
                .arg(format!(
                    "--log-path={}",
                    profile.path().join("chromedriver.log").display()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("spawn chromedriver"),
        );
        let port = driver_port(&mut driver.0);
        let driver_addr = format!("127.0.0.1:{port}");

        let mut args: Vec<String> = CHROMIUM_FLAGS
            .iter()
            .chain(extra_flags)
            .map(|f| (*f).to_owned())
            .collect();
        args.push(format!("--window-size={WIDTH},{HEIGHT}"));
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": chromium_bin, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://{driver_addr}"))
            .await
            .expect("start a chromium session");
        // Drop ends the session itself (synchronously); the client must not race it.
        client.persist().await.expect("persist");
        let session = client.session_id().await.expect("session id");
        Some(Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            name: name.to_owned(),
            driver,
            driver_addr,
            session,
            _profile: profile,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&self.url(path)).await.expect("navigate");
    }

    /// The current page's path and query, e.g. `/runs/01J...?task=a`.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Polls `look` until it gives a value; fails the test saying `what` after [`WAIT`].
    /// Everything that touches an element goes through here, finding it afresh each time:
    /// the run page replaces parts of itself live, so an element found a moment ago may be
    /// gone (stale) by the time it is clicked.
    pub async fn until<T>(&self, what: &str, look: impl AsyncFn() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = look().await {
                return v;
            }
            if Instant::now() > deadline {
                self.fail(what).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Does `op` to the first element matching `css` once it can.
    pub async fn on<T>(&self, css: &str, op: impl AsyncFn(&Element) -> Option<T>) -> T {
        self.until(&format!("no usable element matches `{css}`"), async || {
            let el = self.client.find(Locator::Css(css)).await.ok()?;
            op(&el).await
        })
        .await
    }

    /// Waits until `css` matches an element.
    pub async fn wait(&self, css: &str) {
        self.on(css, async |_| Some(())).await;
    }

    /// Waits until the page's path (with query) satisfies `ok`, and returns it.
    pub async fn wait_path(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.until(&format!("the page never reached {what}"), async || {
            let path = self.path().await;
            ok(&path).then_some(path)
        })
        .await
    }

    /// Waits until an element matching `css` has a text containing `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        self.until(&format!("no `{css}` contains {needle:?}"), async || {
            for el in self.client.find_all(Locator::Css(css)).await.ok()? {
                if el.text().await.is_ok_and(|t| t.contains(needle)) {
                    return Some(());
                }
            }
            None
        })
        .await;
    }

    /// Waits until nothing matches `css`, loading the page again between looks (for lists
    /// that change on the server, like the approvals inbox).
    pub async fn wait_absent_after_reload(&self, css: &str) {
        self.wait_reloading(&format!("`{css}` still matches"), css, false)
            .await;
    }

    /// Waits until `css` matches, loading the page again between looks (for a page without
    /// its script, which does not follow changes by itself).
    pub async fn wait_present_after_reload(&self, css: &str) {
        self.wait_reloading(&format!("no element matches `{css}`"), css, true)
            .await;
    }

    async fn wait_reloading(&self, what: &str, css: &str, present: bool) {
        self.until(what, async || {
            if self.exists(css).await == present {
                Some(())
            } else {
                self.client.refresh().await.ok()?;
                None
            }
        })
        .await;
    }

    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find all")
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self.all(css).await.is_empty()
    }

    pub async fn click(&self, css: &str) {
        self.on(css, async |el| el.click().await.ok()).await;
    }

    /// Does an action as a person would: [`ask`](Self::ask), then, unless the action asks
    /// nothing (pause, unpause), [`confirm`](Self::confirm), then waits for the page the
    /// server sends back, so that the action is done before the test moves on.
    pub async fn act(&self, scope: &str, verb: &str) {
        self.ask(scope, verb).await;
        if !matches!(verb, "pause" | "unpause") {
            self.confirm(verb).await;
        }
        self.wait_for_next_page(verb).await;
    }

    /// Clicks the action button `[data-action=VERB]` inside `scope` (a CSS selector; `"body"`
    /// for the whole page). A destructive action opens its `<dialog>`.
    pub async fn ask(&self, scope: &str, verb: &str) {
        self.mark_document().await;
        self.click(&format!("{scope} [data-action={verb}]")).await;
    }

    /// Confirms an action in its open `<dialog>` by the `[data-confirm=VERB]` button.
    pub async fn confirm(&self, verb: &str) {
        let button = format!("dialog[open] button[data-confirm={verb}]");
        self.on(&button, async |el| {
            if el.is_displayed().await.ok()? {
                el.click().await.ok()
            } else {
                None
            }
        })
        .await;
    }

    /// Waits until the document marked by [`ask`](Self::ask) has been replaced by a loaded one.
    async fn wait_for_next_page(&self, verb: &str) {
        self.until(&format!("the page after `{verb}`"), async || {
            let js =
                "return window.__batonTestMark !== true && document.readyState === 'complete';";
            (self.client.execute(js, vec![]).await.ok()? == serde_json::Value::Bool(true))
                .then_some(())
        })
        .await;
    }

    /// Sets a text or number field: clears it, then types as a person would.
    pub async fn fill(&self, css: &str, text: &str) {
        self.on(css, async |el| {
            el.clear().await.ok()?;
            el.send_keys(text).await.ok()
        })
        .await;
    }

    /// Chooses the option of value `value` in a `<select>`.
    pub async fn select(&self, css: &str, value: &str) {
        self.on(css, async |el| el.select_by_value(value).await.ok())
            .await;
    }

    /// A property of the first element matching `css` (`value`, `checked`, `href`, ...).
    pub async fn prop(&self, css: &str, name: &str) -> Option<String> {
        self.on(css, async |el| el.prop(name).await.ok()).await
    }

    /// Marks the current document, so that `same_document` can tell it was updated in place
    /// rather than reloaded.
    pub async fn mark_document(&self) {
        self.eval("window.__batonTestMark = true;").await;
    }

    pub async fn same_document(&self) -> bool {
        self.eval("return window.__batonTestMark === true;").await == serde_json::Value::Bool(true)
    }

    /// The HTTP status the current document came with (Navigation Timing).
    pub async fn status(&self) -> u64 {
        let js = "return performance.getEntriesByType('navigation')[0].responseStatus;";
        self.eval(js).await.as_u64().expect("a status")
    }

    pub async fn eval(&self, js: &str) -> serde_json::Value {
        self.client.execute(js, vec![]).await.expect("execute")
    }

    /// Saves a PNG of the whole page (up to 4000 pixels down) as
    /// `test-output/screenshots/NAME.png`: the window grows to the page for the picture.
    pub async fn screenshot(&self, name: &str) {
        // The window is taller than the page's viewport by the browser's own frame.
        let js = "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;";
        let height = self
            .client
            .execute(js, vec![])
            .await
            .ok()
            .and_then(|h| h.as_u64());
        let height =
            u32::try_from(height.unwrap_or(0).clamp(u64::from(HEIGHT), 4000)).unwrap_or(HEIGHT);
        let _ = self.client.set_window_size(WIDTH, height).await;
        let png = self.client.screenshot().await.expect("screenshot");
        let _ = self.client.set_window_size(WIDTH, HEIGHT).await;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// Fails the test with the page it was on, keeping a screenshot of it.
    async fn fail(&self, what: &str) -> ! {
        let path = self.path().await;
        let failed = format!("failed-{}", self.name);
        self.screenshot(&failed).await;
        let text = match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let excerpt: String = text.chars().take(2000).collect();
        panic!(
            "timed out after {WAIT:?}: {what}\npage: {path}\nscreenshot: {}\n--- page text ---\n{excerpt}",
            screenshot_dir().join(format!("{failed}.png")).display()
        );
    }
}

/// Reads chromedriver's port from its start-up line, then keeps draining its stdout so that
/// it never blocks on a full pipe.
fn driver_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("chromedriver stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { return };
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let _ = tx.send(rest.trim_end_matches('.').trim().parse::<u16>());
                break;
            }
        }
        for _ in lines {}
    });
    match rx.recv_timeout(WAIT) {
        Ok(Ok(port)) => port,
        other => panic!("chromedriver did not report its port: {other:?}"),
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session makes chromedriver quit Chromium and wait for it; the async client
        // cannot be awaited here, so this is one plain HTTP request.
        if let Some(session) = &self.session
            && let Ok(mut s) = TcpStream::connect(&self.driver_addr)
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{session} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.driver_addr
            );
            // chromedriver answers once Chromium has quit, and may keep the connection open
            // after that, so the first bytes of the answer are all there is to wait for.
            let _ = s.read(&mut [0; 512]);
        }
        // `driver` drops next, killing what is left.
    }
}

/// A chromedriver process, killed with every process of its group (the browser it started)
/// when dropped, also when a test fails before its session exists.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).expect("pid"));
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.wait();
    }
}
