//! A real headless Chromium (Debian's `chromium` package) driven over the
//! DevTools protocol with `chromiumoxide`, for the command map's tests.
//!
//! Without the browser the tests skip with a message saying how to install
//! it; with `CI=true` they fail instead, so that CI never passes by skipping.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::layout::Point;
use chromiumoxide::page::{Page, ScreenshotParams};
use serde::de::DeserializeOwned;
use tokio_stream::StreamExt;

use crate::wait::wait_until;

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the page may take to show what a test waits for.
pub const SHOWN_WITHIN: Duration = Duration::from_secs(20);
/// The vendored axe-core (MPL-2.0), injected to check accessibility.
const AXE: &str = include_str!("../web/axe.min.js");

/// A desk in the command room, and a phone.
pub const DESK: (u32, u32) = (1440, 900);
pub const PHONE: (u32, u32) = (390, 844);

/// The browser to run, or `None` (after saying how to install it) when it
/// is missing outside CI; an error when it is missing in CI.
pub fn chromium() -> anyhow::Result<Option<PathBuf>> {
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        return Ok(Some(path));
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        anyhow::bail!("no browser at {CHROMIUM}, and CI=true does not skip browser tests: apt-get install chromium");
    }
    eprintln!("skipped: no browser at {CHROMIUM}; to run the command map's browser tests: apt-get install chromium");
    Ok(None)
}

/// A headless Chromium with a profile of its own, closed by [`TestBrowser::close`].
pub struct TestBrowser {
    browser: Browser,
    events: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl TestBrowser {
    pub async fn launch(executable: &Path) -> anyhow::Result<TestBrowser> {
        let profile = tempfile::tempdir()?;
        let config = BrowserConfig::builder()
            .chrome_executable(executable)
            .user_data_dir(profile.path())
            // Root in a container has no user namespaces for the sandbox.
            .no_sandbox()
            .window_size(DESK.0, DESK.1)
            .viewport(None)
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .arg("--lang=zh-CN")
            .launch_timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| anyhow::anyhow!("browser config: {error}"))?;
        let (browser, mut handler) = Browser::launch(config).await.context("cannot start chromium")?;
        // The DevTools connection works only while its events are read. A
        // message this chromiumoxide cannot parse (a newer browser) is an
        // error of that one message, not of the connection: keep reading.
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Ok(TestBrowser { browser, events, _profile: profile })
    }

    /// A new tab (its own sessionStorage) showing `url` at desk size.
    pub async fn open(&self, url: &str) -> anyhow::Result<Page> {
        let page = self.browser.new_page("about:blank").await.context("cannot open a tab")?;
        resize(&page, DESK).await?;
        page.goto(url).await.with_context(|| format!("cannot open {url}"))?;
        Ok(page)
    }

    /// Evaluates `expression` (awaited, returned by value) in the service
    /// worker whose script URL starts with `script`, e.g. to dispatch the
    /// events DevTools cannot (a click on a notification's action).
    ///
    /// The worker is reached through a session of its own that is not
    /// flattened (`Target.sendMessageToTarget`): chromiumoxide offers no
    /// page for a worker, and its browser-level events carry the answers.
    pub async fn eval_in_worker(&self, script: &str, expression: &str) -> anyhow::Result<serde_json::Value> {
        use chromiumoxide::cdp::browser_protocol::target::{
            AttachToTargetParams, EventReceivedMessageFromTarget, GetTargetsParams,
        };
        let targets = self.browser.execute(GetTargetsParams::default()).await.context("cannot list targets")?;
        let worker = targets
            .result
            .target_infos
            .iter()
            .find(|target| target.r#type == "service_worker" && target.url.starts_with(script))
            .with_context(|| format!("no service worker runs {script}"))?;
        let mut answers = self.browser.event_listener::<EventReceivedMessageFromTarget>().await.context("target messages")?;
        let attach = AttachToTargetParams::builder()
            .target_id(worker.target_id.clone())
            .flatten(false)
            .build()
            .map_err(anyhow::Error::msg)?;
        let session = self.browser.execute(attach).await.context("cannot attach to the worker")?.result.session_id;
        let message = serde_json::json!({
            "id": 1,
            "method": "Runtime.evaluate",
            "params": { "expression": expression, "awaitPromise": true, "returnByValue": true },
        });
        let send = SendMessageToTarget { message: message.to_string(), session_id: session.as_ref().to_string() };
        self.browser.execute(send).await.context("cannot send to the worker")?;
        let answer = tokio::time::timeout(SHOWN_WITHIN, async {
            while let Some(event) = answers.next().await {
                let Ok(reply) = serde_json::from_str::<serde_json::Value>(&event.message) else { continue };
                if event.session_id == session && reply["id"] == 1 {
                    return Some(reply);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .with_context(|| format!("the worker did not answer {expression}"))?;
        let result = &answer["result"];
        if let Some(thrown) = result.get("exceptionDetails") {
            anyhow::bail!("{expression} threw in the worker: {thrown}");
        }
        anyhow::ensure!(answer.get("error").is_none(), "{expression}: {}", answer["error"]);
        Ok(result["result"]["value"].clone())
    }

    pub async fn close(mut self) -> anyhow::Result<()> {
        let closed = self.browser.close().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.browser.wait()).await;
        self.events.abort();
        let _ = self.events.await;
        closed.map(|_| ()).context("cannot close chromium")
    }
}

/// Shows the page as on a screen of `size` (a phone with touch and scale 2).
pub async fn resize(page: &Page, size: (u32, u32)) -> anyhow::Result<()> {
    let phone = size.0 < 600;
    let metrics = SetDeviceMetricsOverrideParams::builder()
        .width(size.0)
        .height(size.1)
        .device_scale_factor(if phone { 2.0 } else { 1.0 })
        .mobile(phone)
        .build()
        .map_err(|error| anyhow::anyhow!("device metrics: {error}"))?;
    page.execute(metrics).await.context("cannot resize the page")?;
    Ok(())
}

/// The value of a JavaScript expression (awaited when it is a promise).
pub async fn eval<T: DeserializeOwned>(page: &Page, expression: &str) -> anyhow::Result<T> {
    let params = EvaluateParams::builder()
        .expression(expression)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(|error| anyhow::anyhow!("evaluate: {error}"))?;
    let result = page.evaluate_expression(params).await.with_context(|| format!("cannot evaluate {expression}"))?;
    result.into_value().with_context(|| format!("unexpected value of {expression}"))
}

/// Waits until the JavaScript `condition` is true on the page.
pub async fn wait_for(page: &Page, what: &str, condition: &str) -> anyhow::Result<()> {
    let expression = format!("Boolean({condition})");
    wait_until(SHOWN_WITHIN, what, async || eval::<bool>(page, &expression).await).await
}

/// The text of the first element `selector` finds ("" when none).
pub async fn text(page: &Page, selector: &str) -> anyhow::Result<String> {
    let selector = serde_json::to_string(selector)?;
    eval(page, &format!("document.querySelector({selector})?.textContent ?? ''")).await
}

/// Clicks what matches `selector` now, found and clicked in one step in
/// the page: a list drawn again as events arrive cannot leave the test
/// holding a node that is gone ("Could not find node with given id").
pub async fn click_now(page: &Page, selector: &str) -> anyhow::Result<()> {
    let quoted = serde_json::to_string(selector)?;
    let clicked: bool = eval(
        page,
        &format!("(() => {{ const node = document.querySelector({quoted}); if (node) node.click(); return !!node; }})()"),
    )
    .await?;
    anyhow::ensure!(clicked, "nothing to click at {selector}");
    Ok(())
}

/// Clicks with the mouse in the middle of what `selector` finds, as a
/// person would (an SVG shape, which the DevTools' element click refuses).
pub async fn click_middle(page: &Page, selector: &str) -> anyhow::Result<()> {
    let quoted = serde_json::to_string(selector)?;
    let (x, y): (f64, f64) = eval(
        page,
        &format!(
            "(() => {{ const box = document.querySelector({quoted}).getBoundingClientRect(); \
             return [box.x + box.width / 2, box.y + box.height / 2]; }})()"
        ),
    )
    .await
    .with_context(|| format!("nothing to click at {selector}"))?;
    page.click(Point { x, y }).await.with_context(|| format!("cannot click {selector}"))?;
    Ok(())
}

/// Saves a PNG of what the page shows now to `path`.
pub async fn screenshot(page: &Page, path: &Path) -> anyhow::Result<()> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    page.save_screenshot(ScreenshotParams::builder().build(), path)
        .await
        .with_context(|| format!("cannot save a screenshot to {}", path.display()))?;
    Ok(())
}

/// axe-core's serious and critical violations on the page as it is now,
/// one line each (rule, impact, help, the first elements).
pub async fn accessibility_problems(page: &Page) -> anyhow::Result<Vec<String>> {
    // Evaluated through the DevTools protocol, which the page's
    // Content-Security-Policy does not apply to.
    eval::<bool>(page, &format!("{AXE};\ntrue")).await.context("cannot inject axe-core")?;
    let script = r#"(async () => {
        const results = await axe.run(document, { resultTypes: ["violations"] });
        return results.violations
            .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
            .map((violation) => `${violation.id} (${violation.impact}): ${violation.help}: `
                + violation.nodes.slice(0, 3).map((node) => node.target.join(" ")).join(", "));
    })()"#;
    eval(page, script).await
}

/// Where screenshots go: `target/web-screenshots/` of the workspace.
pub fn screenshot_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots")
}

// ---------------------------------------------------------------- the phone app's helpers

impl TestBrowser {
    /// Lets pages of `origin` (e.g. `http://127.0.0.1:1234`) read the
    /// position without asking, as after the person allowed it once.
    pub async fn allow_geolocation(&self, origin: &str) -> anyhow::Result<()> {
        use chromiumoxide::cdp::browser_protocol::browser::{PermissionDescriptor, PermissionSetting, SetPermissionParams};
        let permission = SetPermissionParams::builder()
            .permission(PermissionDescriptor::new("geolocation"))
            .setting(PermissionSetting::Granted)
            .origin(origin)
            .build()
            .map_err(|error| anyhow::anyhow!("permission: {error}"))?;
        self.browser.execute(permission).await.context("cannot allow geolocation")?;
        Ok(())
    }

    /// Lets pages of `origin` show notifications, as after the person
    /// allowed them once (the app's "接收通知").
    pub async fn allow_notifications(&self, origin: &str) -> anyhow::Result<()> {
        use chromiumoxide::cdp::browser_protocol::browser::{PermissionDescriptor, PermissionSetting, SetPermissionParams};
        let permission = SetPermissionParams::builder()
            .permission(PermissionDescriptor::new("notifications"))
            .setting(PermissionSetting::Granted)
            .origin(origin)
            .build()
            .map_err(|error| anyhow::anyhow!("permission: {error}"))?;
        self.browser.execute(permission).await.context("cannot allow notifications")?;
        Ok(())
    }

    /// A new tab as a phone (390×844, touch) at (lon, lat), showing `url`.
    pub async fn open_phone(&self, url: &str, lon: f64, lat: f64) -> anyhow::Result<Page> {
        self.open_phone_page(url, lon, lat, false).await
    }

    /// As [`TestBrowser::open_phone`], with the page's service worker
    /// running. chromiumoxide attaches to every new target of a page with
    /// `waitForDebuggerOnStart` and does not always release a worker
    /// started by the page's first load: it stays "new", never installed.
    /// Here the page stops auto-attaching before it loads, so its worker
    /// starts as in a browser without DevTools.
    pub async fn open_phone_with_worker(&self, url: &str, lon: f64, lat: f64) -> anyhow::Result<Page> {
        self.open_phone_page(url, lon, lat, true).await
    }

    async fn open_phone_page(&self, url: &str, lon: f64, lat: f64, worker: bool) -> anyhow::Result<Page> {
        use chromiumoxide::cdp::browser_protocol::emulation::SetTouchEmulationEnabledParams;
        use chromiumoxide::cdp::browser_protocol::target::SetAutoAttachParams;
        let page = self.browser.new_page("about:blank").await.context("cannot open a tab")?;
        if worker {
            let attach = SetAutoAttachParams::builder()
                .auto_attach(false)
                .wait_for_debugger_on_start(false)
                .flatten(true)
                .build()
                .map_err(anyhow::Error::msg)?;
            page.execute(attach).await.context("cannot stop auto-attaching")?;
        }
        resize(&page, PHONE).await?;
        page.execute(
            SetTouchEmulationEnabledParams::builder()
                .enabled(true)
                .max_touch_points(5)
                .build()
                .map_err(|error| anyhow::anyhow!("touch: {error}"))?,
        )
        .await
        .context("cannot emulate touch")?;
        set_position(&page, lon, lat).await?;
        page.goto(url).await.with_context(|| format!("cannot open {url}"))?;
        Ok(page)
    }
}

/// Delivers `data` as a push message to the service worker of `origin`
/// registered for `scope` (the DevTools protocol's stand-in for a push
/// service: the worker gets a `push` event whose data is `data`, not
/// encrypted).
pub async fn deliver_push(page: &Page, origin: &str, scope: &str, data: &str) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::service_worker::{
        DeliverPushMessageParams, EnableParams, EventWorkerVersionUpdated, RegistrationId,
    };
    // The versions name their registration (the registrations' own event
    // does not reach this chromiumoxide).
    let mut updates = page.event_listener::<EventWorkerVersionUpdated>().await.context("service worker events")?;
    page.execute(EnableParams::default()).await.context("cannot enable the service worker domain")?;
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(update) = updates.next().await {
            for version in &update.versions {
                if version.script_url.starts_with(scope) {
                    return Some(version.registration_id.clone());
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    // Without the event (the page's target is not auto-attached to its
    // workers), the first registration of a new profile has id 0.
    let registration = found.unwrap_or_else(|| RegistrationId::new("0"));
    let push = DeliverPushMessageParams::builder()
        .origin(origin)
        .registration_id(registration)
        .data(data)
        .build()
        .map_err(|error| anyhow::anyhow!("push message: {error}"))?;
    page.execute(push).await.context("cannot deliver the push message")?;
    Ok(())
}

/// The position the page's geolocation reports from now on.
pub async fn set_position(page: &Page, lon: f64, lat: f64) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::emulation::SetGeolocationOverrideParams;
    let position = SetGeolocationOverrideParams::builder().longitude(lon).latitude(lat).accuracy(10.0).build();
    page.execute(position).await.context("cannot set the position")?;
    Ok(())
}

/// Cuts the page off the network (`offline`), or gives it back; open
/// connections fail as they would on a phone that lost its signal.
// The older command, deprecated for a pair of newer ones, is the one that
// also tells the page (navigator.onLine, the offline event), and Debian's
// Chromium still carries it.
#[allow(deprecated)]
pub async fn set_offline(page: &Page, offline: bool) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::network::{EmulateNetworkConditionsParams, EnableParams};
    page.execute(EnableParams::default()).await.context("cannot enable the network domain")?;
    let conditions = EmulateNetworkConditionsParams::builder()
        .offline(offline)
        .latency(0.0)
        .download_throughput(-1.0)
        .upload_throughput(-1.0)
        .build()
        .map_err(|error| anyhow::anyhow!("network conditions: {error}"))?;
    page.execute(conditions).await.context("cannot change the network conditions")?;
    Ok(())
}

/// Chooses `files` in the file input `selector`, as the camera or the
/// photo picker would.
pub async fn choose_files(page: &Page, selector: &str, files: &[&Path]) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::dom::SetFileInputFilesParams;
    let input = page.find_element(selector).await.with_context(|| format!("no file input {selector}"))?;
    let mut choose = SetFileInputFilesParams::new(files.iter().map(|file| file.display().to_string()).collect::<Vec<_>>());
    choose.backend_node_id = Some(input.backend_node_id);
    page.execute(choose).await.with_context(|| format!("cannot choose files in {selector}"))?;
    Ok(())
}

/// Taps the middle of what `selector` finds (a touch, not a mouse click).
pub async fn tap(page: &Page, selector: &str) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::input::{DispatchTouchEventParams, DispatchTouchEventType, TouchPoint};
    let quoted = serde_json::to_string(selector)?;
    let (x, y): (f64, f64) = eval(
        page,
        &format!(
            "(() => {{ const node = document.querySelector({quoted}); node.scrollIntoView({{ block: 'center' }}); \
             const box = node.getBoundingClientRect(); return [box.x + box.width / 2, box.y + box.height / 2]; }})()"
        ),
    )
    .await
    .with_context(|| format!("nothing to tap at {selector}"))?;
    let start = DispatchTouchEventParams::new(DispatchTouchEventType::TouchStart, vec![TouchPoint::new(x, y)]);
    page.execute(start).await.with_context(|| format!("cannot touch {selector}"))?;
    page.execute(TouchEnd::default()).await.with_context(|| format!("cannot lift the finger from {selector}"))?;
    Ok(())
}

/// `Input.dispatchTouchEvent` of type `touchEnd`, which must carry an empty
/// `touchPoints`: chromiumoxide's own params leave an empty list out, and
/// Chromium then refuses the call.
#[derive(Debug, serde::Serialize)]
struct TouchEnd {
    r#type: &'static str,
    #[serde(rename = "touchPoints")]
    touch_points: Vec<()>,
}

impl Default for TouchEnd {
    fn default() -> Self {
        TouchEnd { r#type: "touchEnd", touch_points: Vec::new() }
    }
}

impl chromiumoxide::Method for TouchEnd {
    fn identifier(&self) -> chromiumoxide::types::MethodId {
        "Input.dispatchTouchEvent".into()
    }
}

impl chromiumoxide::Command for TouchEnd {
    type Response = chromiumoxide::cdp::browser_protocol::input::DispatchTouchEventReturns;
}

/// Types `text` into what `selector` finds, as a phone's keyboard (or its
/// Chinese input method) would: any characters, not only a US keyboard's.
pub async fn type_text(page: &Page, selector: &str, text: &str) -> anyhow::Result<()> {
    use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
    page.find_element(selector).await.with_context(|| format!("nothing to type into at {selector}"))?.focus().await?;
    page.execute(InsertTextParams::new(text)).await.with_context(|| format!("cannot type into {selector}"))?;
    Ok(())
}

/// `Target.sendMessageToTarget`, deprecated in the protocol and so absent
/// from chromiumoxide's generated commands: a message for a session that is
/// not flattened.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SendMessageToTarget {
    message: String,
    session_id: String,
}

impl chromiumoxide::Method for SendMessageToTarget {
    fn identifier(&self) -> chromiumoxide::types::MethodId {
        "Target.sendMessageToTarget".into()
    }
}

impl chromiumoxide::Command for SendMessageToTarget {
    type Response = serde_json::Value;
}
