//! `fieldload`: many phones on the browser API (`FieldService` over
//! grpc-web on the web port, HTTP/1.1 as a browser speaks it) against a real
//! `dispatcher` process: each phone holds `Listen` open on one connection
//! and sends `ReportLocation` at a fixed rate over a second, kept-alive
//! connection, while an operator creates incidents next to some of them.
//! Prints the time from each offer's event at the dispatcher (the
//! `offer_sent` event's `at_ms`, read from `WatchEvents`) to the offer
//! arriving on the phone's `Listen` stream, p50/p99, and the
//! `ReportLocation` round trip (issue #19). Figures are printed, never
//! asserted.
//!
//! ```sh
//! cargo build --release -p pingji-dispatcher --bin dispatcher
//! cargo run --release -p pingji-tests --bin fieldload -- --phones 1000 --rate-hz 1 --seconds 60
//! ```
//!
//! It starts `target/release/dispatcher` (next to this binary) with a
//! SQLite journal in a temporary folder, the sample city and a web port on
//! free ports. Phones accept each offer and complete it at once (two more
//! unary calls), so they stay available. Among them, one real phone: the
//! app in a headless Chromium (`/usr/bin/chromium`, skipped without it),
//! for which incidents are made one at a time, timing each offer's event to
//! its offer screen painted. The generator runs on the same machine (same
//! clock as the dispatcher's events); its CPU is printed too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use pingji_proto::v1 as pb;
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::load::{cpu_seconds, free_address, percentile, point};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

struct Args {
    phones: usize,
    rate_hz: f64,
    seconds: u64,
    incidents_per_s: f64,
    /// Offers timed on the real browser's screen (0: no browser).
    browser_offers: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args { phones: 1000, rate_hz: 1.0, seconds: 60, incidents_per_s: 2.0, browser_offers: 10 };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let mut value = || words.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--phones" => args.phones = value()?.parse()?,
            "--rate-hz" => args.rate_hz = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--incidents-per-s" => args.incidents_per_s = value()?.parse()?,
            "--browser-offers" => args.browser_offers = value()?.parse()?,
            "--help" | "-h" => {
                println!("fieldload [--phones 1000] [--rate-hz 1] [--seconds 60] [--incidents-per-s 2] [--browser-offers 10]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown flag {other}; see --help"),
        }
    }
    anyhow::ensure!(args.phones > 0 && args.rate_hz > 0.0, "phones and rate must be positive");
    Ok(args)
}

fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64() * 1e3)
}

#[derive(Default)]
struct Shared {
    welcomed: AtomicUsize,
    locations_sent: AtomicU64,
    locations_failed: AtomicU64,
    /// `ReportLocation` round trips, µs.
    location_round_trips: Mutex<Vec<u64>>,
    /// When each offer reached its phone (ms since the epoch), by offer id.
    offers_arrived: Mutex<HashMap<String, f64>>,
    /// Each offer's event time at the dispatcher (ms since the epoch).
    offers_sent: Mutex<HashMap<String, i64>>,
    measuring: std::sync::atomic::AtomicBool,
}

/// One phone's identity on the web port.
#[derive(Clone)]
struct Phone {
    web: SocketAddr,
    agent_id: String,
    token: String,
}

impl Phone {
    fn request_head(&self, method: &str, length: usize) -> String {
        format!(
            "POST /pingji.v1.FieldService/{method} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/grpc-web+proto\r\n\
             x-grpc-web: 1\r\naccept: application/grpc-web+proto\r\nauthorization: Bearer {}\r\nx-pingji-agent-id: {}\r\n\
             content-length: {length}\r\n\r\n",
            self.web, self.token, self.agent_id
        )
    }
}

fn framed(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut body = Vec::with_capacity(5 + bytes.len());
    body.push(0);
    body.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    body.extend_from_slice(&bytes);
    body
}

/// An HTTP/1.1 answer's head: whether it is chunked, its length, and its grpc-status if given there.
struct Head {
    chunked: bool,
    length: Option<usize>,
    grpc_status: Option<i32>,
}

async fn read_head(reader: &mut BufReader<TcpStream>) -> anyhow::Result<Head> {
    let mut head = Head { chunked: false, length: None, grpc_status: None };
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        anyhow::ensure!(reader.read_line(&mut line).await? > 0, "the connection closed before the answer");
        let text = line.trim_end();
        if first {
            anyhow::ensure!(text.contains(" 200"), "answered {text}");
            first = false;
            continue;
        }
        if text.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = text.split_once(':') else { continue };
        match name.trim().to_ascii_lowercase().as_str() {
            "transfer-encoding" => head.chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-length" => head.length = value.trim().parse().ok(),
            "grpc-status" => head.grpc_status = value.trim().parse().ok(),
            _ => {}
        }
    }
}

/// The next chunk of a chunked body; `None` at its end (trailers read).
async fn read_chunk(reader: &mut BufReader<TcpStream>) -> anyhow::Result<Option<Vec<u8>>> {
    let mut line = String::new();
    anyhow::ensure!(reader.read_line(&mut line).await? > 0, "the connection closed mid-answer");
    let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or_default(), 16)
        .with_context(|| format!("bad chunk size {line:?}"))?;
    if size == 0 {
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                return Ok(None);
            }
        }
    }
    let mut chunk = vec![0; size + 2];
    reader.read_exact(&mut chunk).await?;
    chunk.truncate(size);
    Ok(Some(chunk))
}

/// Takes the whole grpc-web frames off the front of `buffer`: (is trailer, bytes).
fn frames(buffer: &mut Vec<u8>) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    while buffer.len() >= 5 {
        let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
        if buffer.len() < 5 + length {
            break;
        }
        let trailer = buffer[0] & 0x80 != 0;
        out.push((trailer, buffer[5..5 + length].to_vec()));
        buffer.drain(..5 + length);
    }
    out
}

fn trailer_status(trailer: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(trailer).split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("grpc-status").then(|| value.trim().parse().ok())?
    })
}

/// One unary call on a kept-alive connection; its grpc-status.
async fn unary(reader: &mut BufReader<TcpStream>, phone: &Phone, method: &str, request: &impl Message) -> anyhow::Result<i32> {
    let body = framed(request);
    let head = phone.request_head(method, body.len());
    let stream = reader.get_mut();
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    let answer = read_head(reader).await?;
    let mut bytes = Vec::new();
    if answer.chunked {
        while let Some(chunk) = read_chunk(reader).await? {
            bytes.extend_from_slice(&chunk);
        }
    } else if let Some(length) = answer.length {
        bytes.resize(length, 0);
        reader.read_exact(&mut bytes).await?;
    }
    let status = frames(&mut bytes).into_iter().filter(|(trailer, _)| *trailer).find_map(|(_, bytes)| trailer_status(&bytes));
    status.or(answer.grpc_status).context("no grpc-status in the answer")
}

async fn connect(web: SocketAddr) -> anyhow::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(web).await?;
    stream.set_nodelay(true)?;
    Ok(BufReader::new(stream))
}

/// What the phone's stream asks its calls to do.
enum Todo {
    Accept(String),
    Complete(String),
}

/// One phone: `Listen` on its own connection; locations every `period`,
/// and accept and complete, on another.
async fn phone(n: usize, phone: Phone, shared: Arc<Shared>, period: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let (todo, mut todos) = mpsc::channel::<Todo>(16);
    let (session, mut session_id) = tokio::sync::watch::channel(0u64);
    let listener_phone = phone.clone();
    let listener_shared = shared.clone();
    let listener = tokio::spawn(async move {
        let listen = async {
            let mut reader = connect(listener_phone.web).await?;
            let body = framed(&pb::ListenRequest::default());
            let head = listener_phone.request_head("Listen", body.len());
            reader.get_mut().write_all(head.as_bytes()).await?;
            reader.get_mut().write_all(&body).await?;
            let answer = read_head(&mut reader).await?;
            anyhow::ensure!(answer.chunked, "Listen's answer is not a stream");
            let mut buffer = Vec::new();
            while let Some(chunk) = read_chunk(&mut reader).await? {
                let arrived_ms = wall_ms();
                buffer.extend_from_slice(&chunk);
                for (trailer, bytes) in frames(&mut buffer) {
                    anyhow::ensure!(!trailer, "Listen ended: {}", String::from_utf8_lossy(&bytes));
                    match pb::DispatchMessage::decode(bytes.as_slice())?.body {
                        Some(Incoming::Welcome(welcome)) => {
                            let _ = session.send(welcome.session_id);
                            listener_shared.welcomed.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Incoming::Offer(offer)) => {
                            if listener_shared.measuring.load(Ordering::Relaxed) {
                                let mut arrived = listener_shared.offers_arrived.lock().unwrap_or_else(|p| p.into_inner());
                                arrived.insert(offer.offer_id.clone(), arrived_ms);
                            }
                            let _ = todo.send(Todo::Accept(offer.offer_id)).await;
                        }
                        Some(Incoming::AssignmentConfirmed(confirmed)) => {
                            let incident = confirmed.offer.map(|offer| offer.incident_id).unwrap_or_default();
                            let _ = todo.send(Todo::Complete(incident)).await;
                        }
                        _ => {}
                    }
                }
            }
            anyhow::Ok(())
        };
        if let Err(error) = listen.await {
            eprintln!("phone {}: {error:#}", listener_phone.agent_id);
        }
    });
    if session_id.wait_for(|id| *id > 0).await.is_err() {
        return;
    }
    let session_id = *session_id.borrow();
    let Ok(mut calls) = connect(phone.web).await else {
        listener.abort();
        return;
    };
    let offset = period.mul_f64((n as f64 * 0.618_033_988_7).fract());
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut step = 0u64;
    let mut keys = 0u64;
    loop {
        let mut key = || {
            keys += 1;
            format!("{}-{keys}", phone.agent_id)
        };
        let result = tokio::select! {
            _ = stop.changed() => break,
            _ = ticker.tick() => {
                step += 1;
                let request = pb::ReportLocationRequest { session_id, idempotency_key: String::new(), location: Some(point(n, step)) };
                let started = Instant::now();
                let status = unary(&mut calls, &phone, "ReportLocation", &request).await;
                if matches!(status, Ok(0)) {
                    shared.locations_sent.fetch_add(1, Ordering::Relaxed);
                    if shared.measuring.load(Ordering::Relaxed) {
                        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                        shared.location_round_trips.lock().unwrap_or_else(|p| p.into_inner()).push(micros);
                    }
                } else {
                    shared.locations_failed.fetch_add(1, Ordering::Relaxed);
                }
                status
            }
            Some(todo) = todos.recv() => match todo {
                Todo::Accept(offer_id) => {
                    let request = pb::AcceptOfferRequest { session_id, idempotency_key: key(), offer_id };
                    unary(&mut calls, &phone, "AcceptOffer", &request).await
                }
                Todo::Complete(incident_id) => {
                    let request = pb::CompleteAssignmentRequest {
                        session_id, idempotency_key: key(), incident_id, feedback: "done".into(), photo_refs: Vec::new(),
                    };
                    unary(&mut calls, &phone, "CompleteAssignment", &request).await
                }
            },
        };
        // A refused accept (the offer went elsewhere) is an answer; a broken connection is not.
        if result.is_err() {
            match connect(phone.web).await {
                Ok(fresh) => calls = fresh,
                Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }
    listener.abort();
}

/// The person whose phone is a real browser.
const BROWSER_PERSON: &str = "browser-phone";

/// Records, in the page, when each offer was drawn: the offer screen shown
/// for it, after the next frame was painted.
const DRAWN_WATCH: &str = "(() => {
  window.__drawn = {};
  const view = document.getElementById('offer-view');
  new MutationObserver(() => {
    const id = view.dataset.offerId;
    if (!view.hidden && id && !(id in window.__drawn)) {
      window.__drawn[id] = 0;
      requestAnimationFrame(() => setTimeout(() => { window.__drawn[id] = Date.now(); }, 0));
    }
  }).observe(view, { attributes: true });
  return true;
})()";

/// One real phone: the app in a headless Chromium (390×844, touch, an
/// emulated position), signed in by its link; `offers` incidents made next
/// to it one after the other (each cancelled once drawn); the time from each
/// offer's event at the dispatcher to its offer screen painted, ms.
async fn browser_phone(
    web: SocketAddr,
    token: String,
    mut commands: pingji_tests::Commands,
    shared: Arc<Shared>,
    offers: usize,
) -> anyhow::Result<Option<Vec<f64>>> {
    use pingji_tests::browser::{self, TestBrowser, eval, wait_for};
    if offers == 0 {
        return Ok(None);
    }
    let Some(chromium) = browser::chromium()? else {
        return Ok(None);
    };
    let (lon, lat) = (120.15, 30.27);
    let browser = TestBrowser::launch(&chromium).await?;
    let origin = format!("http://{web}");
    browser.allow_geolocation(&origin).await?;
    let page = browser.open_phone(&format!("{origin}/field/#t={token}&a={BROWSER_PERSON}"), lon, lat).await?;
    wait_for(&page, "the session opens", "document.getElementById('connection').dataset.state === 'online'").await?;
    let _: bool = eval(&page, DRAWN_WATCH).await?;
    // Its position reaches the dispatcher.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut drawn = Vec::new();
    for _ in 0..offers {
        let (incident_lon, incident_lat) = pingji_tests::offset_m(lon, lat, 100.0, 80.0);
        let request = pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(incident_lon, incident_lat)),
            category: "fall".into(),
            priority: 2,
            headcount: 1,
            required_skills: vec!["first_aid".into()],
            description: "timed on the phone's screen".into(),
            ..Default::default()
        };
        let incident = commands.create_incident(request).await?.into_inner();
        let deadline = Instant::now() + Duration::from_secs(20);
        let shown = loop {
            let shown: Vec<(String, f64)> = eval(&page, "Object.entries(window.__drawn).filter(([, at]) => at > 0)").await?;
            let sent_at = shared.offers_sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let fresh: Vec<f64> =
                shown.iter().filter_map(|(offer, at)| sent_at.get(offer).map(|sent| at - *sent as f64)).collect();
            if fresh.len() > drawn.len() {
                break fresh.last().copied();
            }
            anyhow::ensure!(Instant::now() < deadline, "the offer for {} was not drawn within 20 s", incident.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        drawn.extend(shown);
        let cancel = pb::CancelIncidentRequest { id: incident.id, reason: "timed".into() };
        commands.cancel_incident(cancel).await?;
        wait_for(&page, "the offer screen closes", "document.getElementById('offer-view').hidden").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    browser.close().await?;
    Ok(Some(drawn))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = tempfile::tempdir()?;
    let binary = std::env::current_exe()?.with_file_name("dispatcher");
    anyhow::ensure!(
        binary.is_file(),
        "{} is missing; run cargo build --release -p pingji-dispatcher --bin dispatcher first",
        binary.display()
    );
    let address = free_address()?;
    let web = free_address()?;
    let areas = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/maps/sample-city.geojson");
    let log = std::fs::File::create(dir.path().join("dispatcher.log"))?;
    let mut child = tokio::process::Command::new(&binary)
        .arg("--listen")
        .arg(address.to_string())
        .arg("--web")
        .arg(web.to_string())
        .arg("--data")
        .arg(dir.path().join("fieldload.db"))
        .arg("--areas")
        .arg(areas)
        .env("PINGJI_BOOTSTRAP_ADMIN_TOKEN", pingji_tests::ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the dispatcher")?;
    let pid = child.id().map(|pid| pid.to_string()).unwrap_or_default();
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?.connect_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let channel = loop {
        match endpoint.connect().await {
            Ok(channel) => break channel,
            Err(_) if started.elapsed() < Duration::from_secs(60) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(error) => return Err(error).context("the dispatcher did not answer within 60 s"),
        }
    };
    let mut commands = pingji_tests::commands_with(channel.clone(), Some(pingji_tests::ADMIN_TOKEN));
    let roster: Vec<pb::AgentSpec> = (0..args.phones)
        .map(|n| pb::AgentSpec {
            id: format!("phone{n:05}"),
            name: format!("phone {n}"),
            role: pb::Role::Volunteer as i32,
            // The generator's incidents need driving, which the browser's person lacks.
            skills: vec!["driving".into()],
            phone: String::new(),
            home_area_id: String::new(),
            travel_mode: pb::TravelMode::Bike as i32,
            on_duty: true,
            home: None,
        })
        .chain(std::iter::once(pb::AgentSpec {
            id: BROWSER_PERSON.into(),
            name: "the browser's phone".into(),
            role: pb::Role::Volunteer as i32,
            // Incidents for the browser need first aid, which only this person has.
            skills: vec!["first_aid".into()],
            phone: String::new(),
            home_area_id: String::new(),
            travel_mode: pb::TravelMode::Walk as i32,
            on_duty: true,
            home: None,
        }))
        .collect();
    let mut tokens: HashMap<String, String> = HashMap::new();
    for chunk in roster.chunks(1000) {
        let request = pb::ImportAgentsRequest { agents: chunk.to_vec() };
        let mut attempts = 0;
        loop {
            match commands.import_agents(request.clone()).await {
                Ok(imported) => {
                    tokens.extend(imported.into_inner().tokens.into_iter().map(|issued| (issued.subject, issued.token)));
                    break;
                }
                Err(status) if attempts < 100 && status.code() == tonic::Code::Unavailable => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => return Err(status).context("import the phones' people"),
            }
        }
    }

    let shared = Arc::new(Shared::default());
    // Every offer's event time, from the operator's event stream.
    let mut events = commands
        .watch_events(pb::WatchEventsRequest { from_seq: 0, ..Default::default() })
        .await
        .context("watch events")?
        .into_inner();
    let events_shared = shared.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(Some(event)) = events.message().await {
            if event.kind == "offer_sent" && !event.offer_id.is_empty() {
                events_shared.offers_sent.lock().unwrap_or_else(|p| p.into_inner()).insert(event.offer_id, event.at_ms);
            }
        }
    });

    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let period = Duration::from_secs_f64(1.0 / args.rate_hz);
    let opening = Instant::now();
    let mut phones = Vec::new();
    for n in 0..args.phones {
        let agent_id = format!("phone{n:05}");
        let token = tokens.remove(&agent_id).unwrap_or_default();
        let identity = Phone { web, agent_id, token };
        phones.push(tokio::spawn(phone(n, identity, shared.clone(), period, stop.clone())));
        // Not all at once: a thousand browsers do not open in one millisecond.
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let open_within = Duration::from_secs(120);
    while shared.welcomed.load(Ordering::Relaxed) < args.phones {
        anyhow::ensure!(
            opening.elapsed() < open_within,
            "only {} of {} phones were welcomed within {open_within:?}",
            shared.welcomed.load(Ordering::Relaxed),
            args.phones
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{} phones listening over grpc-web (2 HTTP/1.1 connections each) in {:.1} s; each reports every {:.0} ms",
        args.phones,
        opening.elapsed().as_secs_f64(),
        period.as_secs_f64() * 1000.0
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let browser_token = tokens.remove(BROWSER_PERSON).unwrap_or_default();
    // Polled beside the window's loop (not spawned: the browser's futures are not Send).
    let browser = browser_phone(
        web,
        browser_token,
        pingji_tests::commands_with(channel.clone(), Some(pingji_tests::ADMIN_TOKEN)),
        shared.clone(),
        args.browser_offers,
    );

    let sent_before = shared.locations_sent.load(Ordering::Relaxed);
    let failed_before = shared.locations_failed.load(Ordering::Relaxed);
    let server_cpu_before = cpu_seconds(&pid);
    let own_cpu_before = cpu_seconds("self");
    shared.measuring.store(true, Ordering::Relaxed);
    let window_started = Instant::now();
    let incident_period = Duration::from_secs_f64(1.0 / args.incidents_per_s.max(0.001));
    let mut next = Instant::now();
    let window_loop = async {
        let (mut created, mut create_failures, mut n) = (0u64, 0u64, 0u64);
        while window_started.elapsed() < Duration::from_secs(args.seconds) {
            n += 1;
            // Next to a phone (within ~50 m of where it walks).
            let near = (n as usize * 31) % args.phones;
            let request = pb::CreateIncidentRequest {
                location: Some(point(near, n)),
                category: "fieldload".into(),
                priority: 2,
                headcount: 1,
                required_skills: vec!["driving".into()],
                ..Default::default()
            };
            match commands.create_incident(request).await {
                Ok(_) => created += 1,
                Err(_) => create_failures += 1,
            }
            next += incident_period;
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
        }
        (created, create_failures)
    };
    let ((created, create_failures), browser) = tokio::join!(window_loop, browser);
    let window = window_started.elapsed().as_secs_f64();
    let sent = shared.locations_sent.load(Ordering::Relaxed) - sent_before;
    let failed = shared.locations_failed.load(Ordering::Relaxed) - failed_before;
    let server_cpu = cpu_seconds(&pid) - server_cpu_before;
    let own_cpu = cpu_seconds("self") - own_cpu_before;
    // Offers made at the window's end still arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let _ = stop_sender.send(true);

    println!(
        "ReportLocation answered OK: {sent} in {window:.1} s = {:.0}/s (offered {:.0}/s); failed {failed}",
        sent as f64 / window,
        args.phones as f64 * args.rate_hz
    );
    let mut round_trips: Vec<f64> =
        shared.location_round_trips.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|micros| *micros as f64 / 1e3).collect();
    round_trips.sort_by(f64::total_cmp);
    println!(
        "ReportLocation round trip (grpc-web, kept-alive HTTP/1.1): p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        percentile(&round_trips, 0.5),
        percentile(&round_trips, 0.99),
        percentile(&round_trips, 1.0)
    );
    println!(
        "dispatcher cpu: {server_cpu:.2} s = {:.0}% of one core; fieldload cpu {own_cpu:.2} s = {:.0}% of one core",
        100.0 * server_cpu / window,
        100.0 * own_cpu / window
    );
    let arrived = shared.offers_arrived.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let sent_at = shared.offers_sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut latencies: Vec<f64> =
        arrived.iter().filter_map(|(offer, at)| sent_at.get(offer).map(|sent| at - *sent as f64)).collect();
    latencies.sort_by(f64::total_cmp);
    println!(
        "offer event at the dispatcher -> offer on the phone's Listen stream: {created} incidents ({create_failures} create errors), {} offers timed: p50 {:.1} ms p99 {:.1} ms max {:.1} ms (event times are whole ms)",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    match browser {
        Ok(Some(mut drawn)) => {
            drawn.sort_by(f64::total_cmp);
            println!(
                "offer event at the dispatcher -> offer drawn on a real headless Chromium phone (390x844, among the others): {} offers: p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
                drawn.len(),
                percentile(&drawn, 0.5),
                percentile(&drawn, 0.99),
                percentile(&drawn, 1.0)
            );
        }
        Ok(None) => println!("no browser phone (no Chromium, or --browser-offers 0)"),
        Err(error) => println!("the browser phone failed: {error:#}"),
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at the end: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    }
    watcher.abort();
    for handle in phones {
        handle.abort();
    }
    let _ = child.kill().await;
    Ok(())
}
