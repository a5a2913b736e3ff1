//! The web UI end to end, in a real headless Chromium driven over WebDriver: each test starts
//! its own `baton server` over its own pipelines directory and clicks through it as a person
//! would. Screenshots of the main pages land in `test-output/screenshots/`.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` each test says so on stderr and
//! passes; `.ci/run` installs both and sets `BATON_REQUIRE_BROWSER=1`, which makes a missing
//! browser a failure.

#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::Browser;
use support::Test;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_reaches_the_server() {
    let t = Test::new().file(
        "pipelines/hello.yaml",
        "name: hello\ntasks:\n  a:\n    run: \"true\"\n",
    );
    let server = t.server();
    let Some(b) = Browser::start("smoke", &server.url).await else {
        return;
    };
    b.goto("/api/v1/pipelines").await;
    b.wait_text("body", "\"default/hello\"").await;
}
