//! `mapbench`: the command map in a real headless Chromium against a real
//! `dispatcher` process (issue #18). Prints, never asserts:
//!
//! 1. time to first full paint of the sample city: from the login form's
//!    submit to every area of the city drawn, with its roster and a few
//!    incidents;
//! 2. with `--people` (50,000) simulated people reporting their positions
//!    at 1 Hz (the `loadgen` binary, each a real agent session) and
//!    `--incidents` (1,000) open incidents: frame time p50/p99 (the
//!    intervals between the page's animation frames), event-to-screen
//!    latency p50/p99 (an incident's `reported_at_ms`, when its event was
//!    appended at the dispatcher, to the first frame that has its mark on
//!    the map), the people drawn, and the page's JS heap (DevTools
//!    `Runtime.getHeapUsage`).
//!
//! ```sh
//! cargo build --release -p pingji-dispatcher --bin dispatcher -p pingji-tests --bin loadgen --bin mapbench
//! target/release/mapbench [--people 50000] [--incidents 1000] [--seconds 30]
//! ```
//!
//! The dispatcher and loadgen are the release binaries next to this one;
//! the browser is `/usr/bin/chromium`. Everything runs on one machine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use chromiumoxide::cdp::js_protocol::profiler;
use chromiumoxide::cdp::js_protocol::runtime::GetHeapUsageParams;
use chromiumoxide::page::Page;
use pingji_proto::v1 as pb;
use pingji_tests::browser::{self, TestBrowser, eval, wait_for};
use pingji_tests::load::{free_address, percentile, sorted};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Areas of the sample city drawn on the map (all but the city itself).
const SAMPLE_AREAS_DRAWN: usize = 46;
/// Paints of the sample city measured (each in a new tab).
const PAINTS: usize = 5;

struct Args {
    people: usize,
    incidents: usize,
    seconds: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args { people: 50_000, incidents: 1_000, seconds: 30 };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--people" => args.people = value()?.parse()?,
            "--incidents" => args.incidents = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--help" | "-h" => {
                println!("mapbench [--people 50000] [--incidents 1000] [--seconds 30]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    Ok(args)
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let binary = std::env::current_exe()?.with_file_name(name);
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing; cargo build --release -p pingji-dispatcher --bin dispatcher -p pingji-tests --bin loadgen first",
        binary.display()
    );
    Ok(binary)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as i64)
}

/// A dispatcher process with the sample city (and roster) and the web port.
async fn start_dispatcher(dir: &Path) -> anyhow::Result<(Child, String, std::net::SocketAddr)> {
    let (grpc, web) = (free_address()?, free_address()?);
    let maps = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/maps");
    let log = std::fs::File::create(dir.join("dispatcher.log"))?;
    let child = Command::new(sibling("dispatcher")?)
        .args(["--listen", &grpc.to_string(), "--web", &web.to_string(), "--data"])
        .arg(dir.join("mapbench.db"))
        .arg("--areas")
        .arg(maps.join("sample-city.geojson"))
        .arg("--agents")
        .arg(maps.join("sample-roster.csv"))
        .env("PINGJI_BOOTSTRAP_ADMIN_TOKEN", pingji_tests::ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the dispatcher")?;
    Ok((child, format!("http://{grpc}"), web))
}

/// Logs in on a new tab and returns the milliseconds from the form's
/// submit to the first frame with every area of the city drawn.
async fn paint_once(browser: &TestBrowser, url: &str) -> anyhow::Result<(Page, f64)> {
    let page = browser.open(url).await?;
    wait_for(&page, "the login form", "!document.getElementById('login-view').hidden").await?;
    eval::<bool>(
        &page,
        &format!(
            "(() => {{ document.getElementById('login-form').addEventListener('submit', () => {{ \
               window.__submitted = performance.now(); \
               const check = () => {{ \
                 if (document.querySelectorAll('#map path.area').length === {SAMPLE_AREAS_DRAWN}) {{ window.__painted = performance.now(); }} \
                 else {{ requestAnimationFrame(check); }} }}; \
               requestAnimationFrame(check); }}, {{ capture: true }}); return true; }})()"
        ),
    )
    .await?;
    page.find_element("#token").await?.click().await?.type_str(pingji_tests::ADMIN_TOKEN).await?.press_key("Enter").await?;
    // Under load this may take far longer than a test would wait.
    tokio::time::timeout(Duration::from_secs(600), wait_until_true(&page, "window.__painted !== undefined"))
        .await
        .context("the city was not painted within 600 s")?;
    let took: f64 = eval(&page, "window.__painted - window.__submitted").await?;
    Ok((page, took))
}

/// Starts recording animation frames and when the incidents in
/// `window.__waiting` first have a mark on the map.
async fn record_frames(page: &Page) -> anyhow::Result<()> {
    eval::<bool>(
        page,
        "(() => { window.__frames = []; window.__waiting = new Set(); window.__drawn = {}; let last = performance.now(); \
           const frame = (at) => { window.__frames.push(at - last); last = at; \
             for (const id of window.__waiting) { \
               if (document.querySelector(`[data-incident-id=\"${id}\"]`)) { window.__drawn[id] = Date.now(); window.__waiting.delete(id); } } \
             requestAnimationFrame(frame); }; \
           requestAnimationFrame(frame); return true; })()",
    )
    .await?;
    Ok(())
}

async fn heap_mb(page: &Page) -> anyhow::Result<(f64, f64)> {
    let usage = page.execute(GetHeapUsageParams::default()).await.context("Runtime.getHeapUsage")?;
    Ok((usage.result.used_size / 1e6, usage.result.total_size / 1e6))
}

fn incident(n: usize, skill: &str) -> pb::CreateIncidentRequest {
    // Spread over the sample city's box.
    let (west, east, south, north) = (120.0876, 120.2124, 30.2250, 30.3150);
    let x = (n as f64 * 0.618_034) % 1.0;
    let y = (n as f64 * 0.754_878) % 1.0;
    pb::CreateIncidentRequest {
        location: Some(pb::Location::wgs84(west + (east - west) * (0.05 + 0.9 * x), south + (north - south) * (0.05 + 0.9 * y))),
        category: "flooding".to_string(),
        priority: 1 + (n % 4) as i32,
        // A skill nobody has: the incidents stay open, on the map.
        required_skills: vec![skill.to_string()],
        headcount: 1,
        force: true,
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let chromium = browser::chromium()?.context("no browser: apt-get install chromium")?;
    let dir = tempfile::tempdir()?;
    let (mut dispatcher, grpc, web) = start_dispatcher(dir.path()).await?;
    let url = format!("http://{web}/");
    let channel = pingji_tests::connect_with_retry(grpc.trim_start_matches("http://").parse()?, Duration::from_secs(60)).await?;
    let mut commands = pingji_tests::commands_with(channel, Some(pingji_tests::ADMIN_TOKEN));
    let deadline = Instant::now() + Duration::from_secs(60);
    while commands.who_am_i(pb::WhoAmIRequest {}).await.is_err() {
        anyhow::ensure!(Instant::now() < deadline, "the dispatcher did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 0..5 {
        commands.create_incident(incident(n, "first_aid")).await?;
    }
    let uptime = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", uptime().trim());

    // 1. First full paint of the sample city (320 people on the roster, 5 incidents).
    let browser = TestBrowser::launch(&chromium).await?;
    let mut paints = Vec::new();
    for _ in 0..PAINTS {
        let (page, took) = paint_once(&browser, &url).await?;
        paints.push(took);
        page.close().await?;
    }
    let paints = sorted(paints);
    println!(
        "first full paint of the sample city (submit to all {SAMPLE_AREAS_DRAWN} areas drawn), {PAINTS} tabs: p50 {:.0} ms, min {:.0} ms, max {:.0} ms",
        percentile(&paints, 0.5),
        paints[0],
        paints[paints.len() - 1]
    );

    // 2. Load: open incidents, then people moving at 1 Hz (loadgen).
    let created = Instant::now();
    for n in 0..args.incidents {
        commands.create_incident(incident(n, "diving")).await?;
    }
    println!("{} incidents created in {:.1} s", args.incidents, created.elapsed().as_secs_f64());
    let mut loadgen = Command::new(sibling("loadgen")?)
        .args(["--server", &grpc, "--sessions", &args.people.to_string(), "--rate-hz", "1"])
        // 50 people to a connection (a phone has one of its own): with 500,
        // one connection's many small location frames, waiting while the
        // dispatcher was busy, ran out h2's budget for small DATA frames,
        // and the server closed it (GOAWAY ENHANCE_YOUR_CALM
        // "too_many_data_frames") with its 500 sessions.
        .args(["--connections", &(args.people / 50).max(10).to_string(), "--incidents-per-s", "0"])
        .args(["--seconds", &(args.seconds + 600).to_string()])
        .env("PINGJI_TOKEN", pingji_tests::ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start loadgen")?;
    let mut loadgen_lines = BufReader::new(loadgen.stdout.take().context("no loadgen stdout")?).lines();
    let opened = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some(line) = loadgen_lines.next_line().await? {
            if line.contains("sessions open") {
                return anyhow::Ok(line);
            }
        }
        anyhow::bail!("loadgen ended before its sessions opened")
    })
    .await
    .context("loadgen did not open its sessions within 600 s")??;
    println!("loadgen: {opened}");
    tokio::spawn(async move {
        while let Ok(Some(line)) = loadgen_lines.next_line().await {
            println!("loadgen: {line}");
        }
    });

    let (page, loaded_ms) = paint_once(&browser, &url).await?;
    println!("under load, submit to the city drawn: {loaded_ms:.0} ms");
    // People in view, drawn as dots or (at city zoom) in clusters.
    let people_in_view = "Number(document.getElementById('map').dataset.people ?? 0)";
    let shown = format!("{people_in_view} >= {}", args.people * 9 / 10);
    let people_wait = Instant::now();
    let people_drawn = tokio::time::timeout(Duration::from_secs(300), wait_until_true(&page, &shown)).await.is_ok();
    let drawn: usize = eval(&page, people_in_view).await?;
    let marks: usize = eval(&page, "document.querySelectorAll('#map circle.incident').length").await?;
    println!(
        "people drawn: {drawn} of {} ({}after {:.1} s); incident marks: {marks}",
        args.people,
        if people_drawn { "" } else { "not all, " },
        people_wait.elapsed().as_secs_f64()
    );
    let (used, total) = heap_mb(&page).await?;
    println!("JS heap with everything drawn: {used:.1} MB used of {total:.1} MB");

    // The measured window: frames, and new incidents from append to drawn,
    // with the page's JavaScript CPU profile (DevTools' sampling profiler).
    page.execute(profiler::EnableParams::default()).await.context("Profiler.enable")?;
    page.execute(profiler::SetSamplingIntervalParams::new(1000)).await.context("Profiler.setSamplingInterval")?;
    page.execute(profiler::StartParams::default()).await.context("Profiler.start")?;
    record_frames(&page).await?;
    let window = Instant::now();
    let mut appended: Vec<(String, i64)> = Vec::new();
    let mut n = args.incidents;
    while window.elapsed() < Duration::from_secs(args.seconds) {
        let incident = commands.create_incident(incident(n, "diving")).await?.into_inner();
        n += 1;
        eval::<bool>(&page, &format!("(window.__waiting.add({:?}), true)", incident.id)).await?;
        appended.push((incident.id, incident.reported_at_ms));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Late ones get a moment to be drawn.
    let _ = tokio::time::timeout(Duration::from_secs(30), wait_until_true(&page, "window.__waiting.size === 0")).await;
    let profile = page.execute(profiler::StopParams::default()).await.context("Profiler.stop")?.result.profile;
    print_profile(&profile);
    let frames: Vec<f64> = eval(&page, "window.__frames.slice(1)").await?;
    let drawn_at: std::collections::HashMap<String, i64> = eval(&page, "window.__drawn").await?;
    let (used_after, total_after) = heap_mb(&page).await?;
    let frames = sorted(frames);
    let latencies = sorted(appended.iter().filter_map(|(id, at)| drawn_at.get(id).map(|drawn| (drawn - at) as f64)).collect());
    println!(
        "frames in {} s: {} ({:.1}/s); frame time p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.seconds,
        frames.len(),
        frames.len() as f64 / args.seconds as f64,
        percentile(&frames, 0.5),
        percentile(&frames, 0.99),
        frames.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "event to screen (incident appended -> its mark in a frame): {} of {} drawn, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        appended.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!("JS heap after the window: {used_after:.1} MB used of {total_after:.1} MB");
    println!("load average after: {}; now {}", uptime().trim(), now_ms());

    browser.close().await?;
    let _ = loadgen.kill().await;
    let _ = dispatcher.kill().await;
    Ok(())
}

/// Polls the JavaScript `condition` every 100 ms until it is true.
async fn wait_until_true(page: &Page, condition: &str) {
    let expression = format!("Boolean({condition})");
    loop {
        if eval::<bool>(page, &expression).await.unwrap_or(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The functions that took the page's main thread longest in `profile`
/// (self time: the samples in which each was on top), as shares of all
/// samples, idle and the page's own functions alike.
fn print_profile(profile: &profiler::Profile) {
    let total: i64 = profile.nodes.iter().filter_map(|node| node.hit_count).sum();
    let mut by_function: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for node in &profile.nodes {
        let frame = &node.call_frame;
        let file = frame.url.rsplit('/').next().unwrap_or_default();
        let name = if frame.function_name.is_empty() { "(anonymous)" } else { frame.function_name.as_str() };
        *by_function.entry(format!("{name} {file}:{}", frame.line_number + 1)).or_default() += node.hit_count.unwrap_or(0);
    }
    let mut ranked: Vec<(String, i64)> = by_function.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1));
    println!("page CPU profile over the window ({total} samples of 1 ms), self time:");
    for (function, hits) in ranked.iter().take(12) {
        println!("  {:5.1} %  {function}", 100.0 * *hits as f64 / total.max(1) as f64);
    }
}
