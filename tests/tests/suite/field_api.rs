//! The browser-shaped agent API (`FieldService`, issue #19): a person's
//! session as a server stream plus unary actions with a session id and an
//! idempotency key, operators' messages, and photos. Real dispatchers over
//! loopback gRPC, one test through grpc-web on the web port (HTTP/1.1
//! framed by hand, as a browser sends it), and one killing the real binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use pingji_client::errors::reason;
use pingji_client::field::{AgentCredentials, FieldClient};
use pingji_proto::v1::dispatch_message::Body as Incoming;
use pingji_tests::{
    Commands, DispatcherProcess, ProcessOptions, TestServer, add_operator, agent_token, area_box, available_people,
    commands_with, offset_m, pb, person, quick_policy, quick_policy_toml, sample_city, sample_roster, wait_until,
};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::codec::Streaming;

const PROMPTLY: Duration = Duration::from_secs(20);
const GRID: &str = "d1-s1-c1-g1";

/// A dispatcher with the quick policy (offers time out after 2 s), the web
/// port, and photos in a temporary directory (kept while the test runs).
async fn server() -> anyhow::Result<(TestServer, tempfile::TempDir)> {
    let photos = tempfile::tempdir()?;
    let photos_dir = photos.path().to_path_buf();
    let server = TestServer::start_with_web(move |config| {
        config.policy = quick_policy();
        config.photos_dir = Some(photos_dir);
    })
    .await?;
    Ok((server, photos))
}

/// `id` on the roster in the test grid, with a new token, as a browser client.
async fn person_on_the_phone(server: &TestServer, command: &mut Commands, id: &str) -> anyhow::Result<(FieldClient, String)> {
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person(id, GRID, &["first_aid"])) }).await?;
    let token = agent_token(command, id).await?;
    let client = FieldClient::new(server.channel().await?, AgentCredentials::new(id, &token).map_err(anyhow::Error::msg)?);
    Ok((client, token))
}

/// Signs in (opens Listen), reports (lon, lat) and waits until the
/// dispatcher has placed the person there.
async fn sign_in_at(
    client: &FieldClient,
    command: &mut Commands,
    id: &str,
    (lon, lat): (f64, f64),
) -> anyhow::Result<(pb::Welcome, Streaming<pb::DispatchMessage>)> {
    let (welcome, stream) = client.listen().await?;
    anyhow::ensure!(welcome.session_id > 0, "the welcome names the session: {welcome:?}");
    client.report_location(lon, lat).await?;
    wait_until(PROMPTLY, &format!("{id} is located"), async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: id.to_string() }).await?.into_inner();
        Ok(agent.connected && agent.location.is_some_and(|at| at.lon == lon && at.lat == lat))
    })
    .await?;
    Ok((welcome, stream))
}

async fn next_message(stream: &mut Streaming<pb::DispatchMessage>) -> anyhow::Result<Incoming> {
    let message = tokio::time::timeout(PROMPTLY, stream.message())
        .await
        .context("no message from the dispatcher in time")??
        .context("the session's stream ended")?;
    message.body.context("a message with no body")
}

/// The next message that `pick` takes, skipping others (location
/// interval notices and the like).
async fn expect<T>(
    stream: &mut Streaming<pb::DispatchMessage>,
    what: &str,
    pick: impl Fn(Incoming) -> Option<T>,
) -> anyhow::Result<T> {
    for _ in 0..20 {
        let message = next_message(stream).await.with_context(|| format!("waiting for {what}"))?;
        if let Some(found) = pick(message) {
            return Ok(found);
        }
    }
    anyhow::bail!("no {what} among the next 20 messages")
}

async fn incident_near(command: &mut Commands, (lon, lat): (f64, f64)) -> anyhow::Result<pb::Incident> {
    let (incident_lon, incident_lat) = offset_m(lon, lat, 150.0, 0.0);
    let request = pb::CreateIncidentRequest {
        location: Some(pb::Location::wgs84(incident_lon, incident_lat)),
        category: "fall".into(),
        priority: 2,
        required_skills: vec!["first_aid".into()],
        headcount: 1,
        description: "an elderly resident fell".into(),
        ..Default::default()
    };
    Ok(command.create_incident(request).await?.into_inner())
}

/// A JPEG's first segments with an EXIF block holding a GPS position, then
/// a start of scan: enough for the type check and the EXIF removal.
fn jpeg_with_gps(marker: u8) -> Vec<u8> {
    let mut exif = b"Exif\0\0GPS 30.2741N 120.1551E".to_vec();
    exif.push(marker);
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
    jpeg.extend_from_slice(&u16::try_from(exif.len() + 2).unwrap_or(0).to_be_bytes());
    jpeg.extend_from_slice(&exif);
    jpeg.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, marker, 0xFF, 0xD9]);
    jpeg
}

fn files_in(dir: &Path) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(dir)?.count())
}

#[tokio::test]
async fn a_person_takes_an_offer_arrives_and_completes_with_a_photo_and_a_repeated_accept_is_applied_once() -> anyhow::Result<()>
{
    let (server, photos) = server().await?;
    let mut command = server.command().await?;
    let (client, _) = person_on_the_phone(&server, &mut command, "phone-1").await?;
    let (lon, lat) = area_box(&mut command, GRID).await?.centre();
    let (_, mut stream) = sign_in_at(&client, &mut command, "phone-1", (lon, lat)).await?;
    let incident = incident_near(&mut command, (lon, lat)).await?;

    let offer = expect(&mut stream, "the offer", |message| match message {
        Incoming::Offer(offer) => Some(offer),
        _ => None,
    })
    .await?;
    assert_eq!(offer.incident_id, incident.id);
    assert!(offer.distance_m > 100.0 && offer.distance_m < 200.0, "distance {}", offer.distance_m);

    // The app queued the accept offline and sends it twice with one key.
    let key = client.new_key();
    let first = client.accept_offer(&offer.offer_id, &key).await?;
    let again = client.accept_offer(&offer.offer_id, &key).await?;
    assert!(!first.duplicate, "the first accept is applied");
    assert!(again.duplicate, "the same key again is not applied again");
    expect(&mut stream, "the confirmation", |message| match message {
        Incoming::AssignmentConfirmed(confirmed) => confirmed.offer,
        _ => None,
    })
    .await?;
    let held = command.get_incident(pb::GetIncidentRequest { id: incident.id.clone() }).await?.into_inner();
    assert_eq!(held.assignments.len(), 1, "one assignment: {held:?}");
    // Without the key, a second accept is the engine's to refuse: the offer is answered.
    let fresh = client.accept_offer(&offer.offer_id, &client.new_key()).await.expect_err("answered already");
    assert_eq!(reason(&fresh), Some(pb::ErrorReason::OfferNotOpen), "{fresh:?}");

    client.report_arrival(&incident.id).await?;
    let uploaded = client.upload_photo(jpeg_with_gps(1)).await?;
    assert!(uploaded.photo_ref.starts_with("sha256:") && uploaded.photo_ref.len() == 71, "{uploaded:?}");
    assert_eq!(uploaded.content_type, "image/jpeg");
    assert!(uploaded.location_removed && !uploaded.already_stored, "{uploaded:?}");
    client.complete_assignment(&incident.id, "helped her up; no injury", std::slice::from_ref(&uploaded.photo_ref)).await?;

    let done = command.get_incident(pb::GetIncidentRequest { id: incident.id.clone() }).await?.into_inner();
    let assignment = done.assignments.first().context("the assignment")?;
    assert!(assignment.arrived_at_ms > 0 && assignment.completed_at_ms > 0, "{assignment:?}");
    assert_eq!(assignment.photo_refs, vec![uploaded.photo_ref.clone()]);
    let photo = command.get_photo(pb::GetPhotoRequest { photo_ref: uploaded.photo_ref.clone() }).await?.into_inner();
    assert_eq!(photo.content_type, "image/jpeg");
    assert!(!photo.data.windows(4).any(|window| window == b"Exif"), "the EXIF block (GPS) is gone");
    assert!(!photo.data.windows(3).any(|window| window == b"GPS"));

    // A viewer may not see photos.
    let viewer_token = add_operator(&mut command, "viewer-photos", pb::OperatorRole::Viewer).await?;
    let mut viewer = commands_with(server.channel().await?, Some(&viewer_token));
    let refused = viewer.get_photo(pb::GetPhotoRequest { photo_ref: uploaded.photo_ref.clone() }).await.expect_err("a viewer");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(reason(&refused), Some(pb::ErrorReason::RoleTooLow));
    assert_eq!(files_in(photos.path())?, 1, "one photo stored");

    drop(stream);
    server.shutdown().await
}

#[tokio::test]
async fn a_late_accept_of_an_expired_offer_is_refused_clearly_and_changes_nothing() -> anyhow::Result<()> {
    let (server, _photos) = server().await?;
    let mut command = server.command().await?;
    let (client, _) = person_on_the_phone(&server, &mut command, "phone-late").await?;
    let (lon, lat) = area_box(&mut command, GRID).await?.centre();
    let (_, mut stream) = sign_in_at(&client, &mut command, "phone-late", (lon, lat)).await?;
    let incident = incident_near(&mut command, (lon, lat)).await?;
    let offer = expect(&mut stream, "the offer", |message| match message {
        Incoming::Offer(offer) => Some(offer),
        _ => None,
    })
    .await?;
    // The phone was offline while the 2 s answer window passed.
    let withdrawn = expect(&mut stream, "the offer timing out", |message| match message {
        Incoming::OfferWithdrawn(withdrawn) => Some(withdrawn),
        _ => None,
    })
    .await?;
    assert_eq!(withdrawn.cause, pb::WithdrawReason::TimedOut as i32);
    let late = client.accept_offer(&offer.offer_id, &client.new_key()).await.expect_err("expired");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert_eq!(reason(&late), Some(pb::ErrorReason::OfferNotOpen), "{late:?}");
    assert!(late.message().contains("expired"), "{}", late.message());
    let after = command.get_incident(pb::GetIncidentRequest { id: incident.id }).await?.into_inner();
    assert!(after.assignments.is_empty(), "nobody holds it: {after:?}");

    drop(stream);
    server.shutdown().await
}

#[tokio::test]
async fn signing_in_on_another_phone_replaces_the_session_and_the_old_one_is_told_why() -> anyhow::Result<()> {
    let (server, _photos) = server().await?;
    let mut command = server.command().await?;
    let (old_phone, token) = person_on_the_phone(&server, &mut command, "phone-two").await?;
    let (_, mut old_stream) = old_phone.listen().await?;
    let old_session = old_phone.session_id();
    let new_phone =
        FieldClient::new(server.channel().await?, AgentCredentials::new("phone-two", &token).map_err(anyhow::Error::msg)?);
    let (welcome, mut new_stream) = new_phone.listen().await?;
    assert_ne!(welcome.session_id, old_session);

    let told = expect(&mut old_stream, "the replacement notice", |message| match message {
        Incoming::Refused(refused) => Some(refused),
        _ => None,
    })
    .await?;
    assert_eq!(told.reason, pb::ErrorReason::SessionReplaced as i32, "{told:?}");
    assert!(told.message.contains("newer session"), "{}", told.message);
    let ended = tokio::time::timeout(PROMPTLY, old_stream.message()).await.context("the old stream did not end")?;
    assert!(matches!(ended, Ok(None)), "the old stream ends: {ended:?}");

    // The old phone's queued action is refused; the new phone's goes through.
    let stale = old_phone.set_status(pb::AgentStatus::OffDuty).await.expect_err("replaced");
    assert_eq!(reason(&stale), Some(pb::ErrorReason::NoSession), "{stale:?}");
    let agent = command.get_agent(pb::GetAgentRequest { id: "phone-two".into() }).await?.into_inner();
    assert_eq!(agent.status, pb::AgentStatus::Available as i32, "the refused call changed nothing");
    new_phone.set_status(pb::AgentStatus::OffDuty).await?;

    // A native session replaces the browser's the same way.
    let mut native = pingji_tests::AgentSession::open(&mut server.agents().await?, "phone-two", &token).await?;
    let told = expect(&mut new_stream, "the replacement notice", |message| match message {
        Incoming::Refused(refused) => Some(refused),
        _ => None,
    })
    .await?;
    assert_eq!(told.reason, pb::ErrorReason::SessionReplaced as i32);
    native.expect_silence_for(Duration::from_millis(200)).await?;

    // A wrong token is refused before anything opens.
    let impostor = FieldClient::new(
        server.channel().await?,
        AgentCredentials::new("phone-two", "pja_0000000000000000000000000000000000000000000000000000000000000000")
            .map_err(anyhow::Error::msg)?,
    );
    let refused = impostor.listen().await.expect_err("wrong token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    drop((native, new_stream));
    server.shutdown().await
}

#[tokio::test]
async fn a_message_reaches_the_person_who_reads_and_replies_and_the_operator_sees_both() -> anyhow::Result<()> {
    let (server, _photos) = server().await?;
    let mut command = server.command().await?;
    let (client, token) = person_on_the_phone(&server, &mut command, "phone-msg").await?;
    let (_, mut stream) = client.listen().await?;

    let to_person = pb::MessageAudience { to: Some(pb::message_audience::To::AgentId("phone-msg".into())) };
    let sent = command
        .send_message(pb::SendMessageRequest { to: Some(to_person), text: "stand by at the service centre".into() })
        .await?
        .into_inner();
    assert_eq!(sent.recipient_ids, vec!["phone-msg".to_string()]);
    let received = expect(&mut stream, "the message", |message| match message {
        Incoming::Message(message) => Some(message),
        _ => None,
    })
    .await?;
    assert_eq!((received.id.as_str(), received.text.as_str()), (sent.id.as_str(), "stand by at the service centre"));
    assert!(received.from.starts_with("operator:"), "{received:?}");
    assert!(received.recipient_ids.is_empty(), "a person is not told who else it reached");

    // Unread, it is in the welcome of a new sign-in (a phone that was away).
    let again =
        FieldClient::new(server.channel().await?, AgentCredentials::new("phone-msg", &token).map_err(anyhow::Error::msg)?);
    let (welcome, _stream) = again.listen().await?;
    assert_eq!(welcome.unread_messages.iter().map(|message| message.id.as_str()).collect::<Vec<_>>(), vec![sent.id.as_str()]);
    again.mark_message_read(&sent.id).await?;
    again.mark_message_read(&sent.id).await?;
    again.reply_to_message(&sent.id, "on my way, 5 minutes").await?;
    let unknown = again.reply_to_message("msg-999999", "?").await.expect_err("no such message");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    let listed =
        command.list_messages(pb::ListMessagesRequest { agent_id: "phone-msg".into(), ..Default::default() }).await?.into_inner();
    let message = listed.messages.first().context("the message is listed")?;
    assert_eq!(message.read_by.len(), 1, "read once: {message:?}");
    assert_eq!(message.read_by[0].agent_id, "phone-msg");
    assert_eq!(message.replies.len(), 1);
    assert_eq!(message.replies[0].text, "on my way, 5 minutes");

    // A viewer sees that messages were exchanged, not what they said.
    let viewer_token = add_operator(&mut command, "viewer-messages", pb::OperatorRole::Viewer).await?;
    let mut viewer = commands_with(server.channel().await?, Some(&viewer_token));
    let masked = viewer.list_messages(pb::ListMessagesRequest::default()).await?.into_inner();
    let first = masked.messages.first().context("listed for a viewer")?;
    assert!(!first.text.contains("stand by") && !first.replies[0].text.contains("on my way"), "{first:?}");
    let refused = viewer
        .send_message(pb::SendMessageRequest {
            to: Some(pb::MessageAudience { to: Some(pb::message_audience::To::AreaId(GRID.into())) }),
            text: "hello".into(),
        })
        .await
        .expect_err("a viewer may not send");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // To an area: everyone at home there; to nobody: refused, nothing sent.
    let to_area = pb::MessageAudience { to: Some(pb::message_audience::To::AreaId(GRID.into())) };
    let area_message = command
        .send_message(pb::SendMessageRequest { to: Some(to_area), text: "not needed, thank you".into() })
        .await?
        .into_inner();
    assert!(area_message.recipient_ids.contains(&"phone-msg".to_string()), "{area_message:?}");
    let empty = command.send_message(pb::SendMessageRequest { to: None, text: "nobody".into() }).await.expect_err("no audience");
    assert_eq!(empty.code(), Code::InvalidArgument);

    server.shutdown().await
}

#[tokio::test]
async fn an_oversized_or_non_image_upload_is_refused_clearly_and_stores_nothing() -> anyhow::Result<()> {
    let (server, photos) = server().await?;
    let mut command = server.command().await?;
    let (client, _) = person_on_the_phone(&server, &mut command, "phone-up").await?;

    let too_large = {
        let mut bytes = jpeg_with_gps(2);
        bytes.resize(10 * 1024 * 1024 + 1, 0);
        client.upload_photo(bytes).await.expect_err("over 10 MiB")
    };
    assert_eq!(too_large.code(), Code::ResourceExhausted, "{too_large:?}");
    assert_eq!(reason(&too_large), Some(pb::ErrorReason::LimitExceeded));
    assert!(too_large.message().contains("10 MiB"), "{}", too_large.message());

    let not_an_image = client.upload_photo(b"%PDF-1.7 a document".to_vec()).await.expect_err("a PDF");
    assert_eq!(not_an_image.code(), Code::InvalidArgument, "{not_an_image:?}");
    assert_eq!(reason(&not_an_image), Some(pb::ErrorReason::NotAnImage));
    assert_eq!(files_in(photos.path())?, 0, "nothing stored");

    // A report naming a photo that was never uploaded is refused, and no report is made.
    let (lon, lat) = area_box(&mut command, GRID).await?.centre();
    let (_, _stream) = sign_in_at(&client, &mut command, "phone-up", (lon, lat)).await?;
    let missing = format!("sha256:{}", "ab".repeat(32));
    let refused =
        client.submit_field_report((lon, lat), "flooding", "water over the road", &[missing]).await.expect_err("unknown photo");
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    let reports = command.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner();
    assert!(reports.incidents.is_empty(), "no report was made: {reports:?}");

    // With the photo uploaded first, the report carries it.
    let uploaded = client.upload_photo(jpeg_with_gps(3)).await?;
    client.submit_field_report((lon, lat), "flooding", "water over the road", std::slice::from_ref(&uploaded.photo_ref)).await?;
    let reports = command.list_incidents(pb::ListIncidentsRequest::default()).await?.into_inner();
    let report = reports.incidents.first().context("the report")?;
    assert_eq!(report.photo_refs, vec![uploaded.photo_ref.clone()]);
    assert_eq!(report.photo_ref, uploaded.photo_ref);

    server.shutdown().await
}

/// What a grpc-web call answered so far: the head, the data frames
/// (messages), the trailers if it ended, and the connection (a stream
/// lasts as long as it is open).
type WebAnswer = (String, Vec<Vec<u8>>, String, tokio::net::TcpStream);

/// One grpc-web call over HTTP/1.1 as a browser makes it, read until it
/// ends or `messages` messages have come.
async fn grpc_web(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    message: &[u8],
    messages: usize,
) -> anyhow::Result<WebAnswer> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let mut body = vec![0u8];
    body.extend_from_slice(&u32::try_from(message.len())?.to_be_bytes());
    body.extend_from_slice(message);
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let (head, frames, trailers) = parse_grpc_web(&raw);
        if trailers.is_some() || frames.len() >= messages {
            return Ok((head, frames, trailers.unwrap_or_default(), stream));
        }
        let read = tokio::time::timeout(PROMPTLY, stream.read(&mut buffer)).await.context("no grpc-web answer in time")??;
        anyhow::ensure!(read > 0, "the connection closed; got {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buffer[..read]);
    }
}

/// The head, the whole data frames and the trailers (if there) of what an
/// HTTP/1.1 grpc-web answer has sent so far (chunked or not).
fn parse_grpc_web(raw: &[u8]) -> (String, Vec<Vec<u8>>, Option<String>) {
    let Some(end) = raw.windows(4).position(|window| window == b"\r\n\r\n") else {
        return (String::new(), Vec::new(), None);
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let mut body = Vec::new();
    let rest = &raw[end + 4..];
    if head.contains("transfer-encoding: chunked") {
        let mut at = 0;
        while let Some(line_end) = rest[at..].windows(2).position(|window| window == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[at..at + line_end]).trim(), 16).unwrap_or(0);
            let start = at + line_end + 2;
            if size == 0 || start + size > rest.len() {
                break;
            }
            body.extend_from_slice(&rest[start..start + size]);
            at = start + size + 2;
            if at > rest.len() {
                break;
            }
        }
    } else {
        body.extend_from_slice(rest);
    }
    let mut frames = Vec::new();
    let mut trailers = None;
    let mut at = 0;
    while at + 5 <= body.len() {
        let length = u32::from_be_bytes([body[at + 1], body[at + 2], body[at + 3], body[at + 4]]) as usize;
        if at + 5 + length > body.len() {
            break;
        }
        let payload = body[at + 5..at + 5 + length].to_vec();
        if body[at] & 0x80 != 0 {
            trailers = Some(String::from_utf8_lossy(&payload).to_ascii_lowercase());
        } else {
            frames.push(payload);
        }
        at += 5 + length;
    }
    // A trailers-only answer (an error) has its status in the head.
    if trailers.is_none() && head.contains("grpc-status:") {
        trailers = Some(head.clone());
    }
    (head, frames, trailers)
}

#[tokio::test]
async fn the_field_api_works_over_grpc_web_on_the_web_port() -> anyhow::Result<()> {
    let (server, _photos) = server().await?;
    let web = server.web_address().context("the web port")?;
    let mut command = server.command().await?;
    let (_, token) = person_on_the_phone(&server, &mut command, "phone-web").await?;
    let bearer = format!("Bearer {token}");
    let headers = [("authorization", bearer.as_str()), ("x-pingji-agent-id", "phone-web")];

    // Listen: a server stream over grpc-web; its first message is the welcome.
    let (head, frames, _, listening) =
        grpc_web(web, "/pingji.v1.FieldService/Listen", &headers, &pb::ListenRequest {}.encode_to_vec(), 1).await?;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let first = pb::DispatchMessage::decode(frames.first().context("a message")?.as_slice())?;
    let Some(Incoming::Welcome(welcome)) = first.body else { anyhow::bail!("not a welcome: {first:?}") };
    assert!(welcome.session_id > 0);
    let connected = command.get_agent(pb::GetAgentRequest { id: "phone-web".into() }).await?.into_inner();
    assert!(connected.connected, "the browser's stream is a session");

    // A unary action in the session, and a photo.
    let status = pb::SetStatusRequest {
        session_id: welcome.session_id,
        idempotency_key: "web-1".into(),
        status: pb::AgentStatus::Busy as i32,
    };
    let (_, frames, trailers, _) =
        grpc_web(web, "/pingji.v1.FieldService/SetStatus", &headers, &status.encode_to_vec(), 2).await?;
    assert!(trailers.contains("grpc-status: 0") || trailers.contains("grpc-status:0"), "{trailers}");
    assert!(!pb::FieldActionResponse::decode(frames.first().context("an answer")?.as_slice())?.duplicate);
    let upload = pb::UploadPhotoRequest { data: jpeg_with_gps(4) };
    let (_, frames, _, _) = grpc_web(web, "/pingji.v1.FieldService/UploadPhoto", &headers, &upload.encode_to_vec(), 1).await?;
    let uploaded = pb::UploadPhotoResponse::decode(frames.first().context("an answer")?.as_slice())?;
    let photo = command.get_photo(pb::GetPhotoRequest { photo_ref: uploaded.photo_ref }).await?.into_inner();
    assert_eq!(photo.content_type, "image/jpeg");

    // A wrong token: refused with the status a browser reads.
    let wrong = [("authorization", "Bearer pja_wrong"), ("x-pingji-agent-id", "phone-web")];
    let (_, frames, trailers, _) =
        grpc_web(web, "/pingji.v1.FieldService/UploadPhoto", &wrong, &upload.encode_to_vec(), 1).await?;
    assert!(frames.is_empty());
    assert!(trailers.contains("grpc-status: 16") || trailers.contains("grpc-status:16"), "{trailers}");

    // The browser goes away: its session ends.
    drop(listening);
    wait_until(PROMPTLY, "the session ends with the browser's stream", async || {
        let agent = command.get_agent(pb::GetAgentRequest { id: "phone-web".into() }).await?.into_inner();
        Ok(!agent.connected)
    })
    .await?;

    server.shutdown().await
}

fn process_options(dir: &Path) -> anyhow::Result<ProcessOptions> {
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, quick_policy_toml(30))?;
    Ok(ProcessOptions {
        data: dir.join("p.db"),
        policy: Some(policy),
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: Some(40),
        log: dir.join("dispatcher.log"),
    })
}

#[tokio::test]
async fn a_photo_uploaded_survives_a_kill_9_and_a_retry_after_it_stores_nothing_twice() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = process_options(dir.path())?;
    let dispatcher = DispatcherProcess::start(&options).await?;
    let mut command = dispatcher.command().await?;
    let id = available_people(&mut command, "d1", 1).await?.pop().context("someone on the roster")?;
    let token = agent_token(&mut command, &id).await?;
    let client = FieldClient::new(dispatcher.channel().await?, AgentCredentials::new(&id, &token).map_err(anyhow::Error::msg)?);
    let uploaded = client.upload_photo(jpeg_with_gps(5)).await?;
    dispatcher.kill().await?;

    // photos/ beside the journal, by default.
    let photos: PathBuf = dir.path().join("photos");
    assert_eq!(files_in(&photos)?, 1, "the photo is on disk, no half-written file");
    let restarted = DispatcherProcess::start(&options).await?;
    let mut command = restarted.command().await?;
    let photo = command.get_photo(pb::GetPhotoRequest { photo_ref: uploaded.photo_ref.clone() }).await?.into_inner();
    assert_eq!(photo.data.len() as u64, uploaded.size);
    // The phone never got the first answer and sends the photo again.
    let client = FieldClient::new(restarted.channel().await?, AgentCredentials::new(&id, &token).map_err(anyhow::Error::msg)?);
    let again = client.upload_photo(jpeg_with_gps(5)).await?;
    assert_eq!(again.photo_ref, uploaded.photo_ref);
    assert!(again.already_stored);
    assert_eq!(files_in(&photos)?, 1);
    restarted.kill().await
}

#[tokio::test]
async fn the_console_issues_a_sign_in_link_and_sends_and_lists_messages() -> anyhow::Result<()> {
    use pingji_tests::cli::run_pingji;
    let (server, _photos) = server().await?;
    let url = format!("http://{}", server.address());
    let web = format!("http://{}", server.web_address().context("the web port")?);
    let mut command = server.command().await?;
    command.upsert_agent(pb::UpsertAgentRequest { agent: Some(person("phone-cli", GRID, &[])) }).await?;

    let missing = run_pingji(&url, &["roster", "token", "phone-cli", "--link"]).await?;
    assert_eq!(missing.code(), Some(1), "{missing:?}");
    assert!(missing.stderr.contains("--web-url"), "{}", missing.stderr);

    let issued = run_pingji(&url, &["roster", "token", "phone-cli", "--link", "--web-url", &web]).await?.success()?;
    let link = issued.stdout.trim();
    let prefix = format!("{web}/field/#a=phone-cli&t=");
    let token = link.strip_prefix(&prefix).with_context(|| format!("a sign-in link with the token in the fragment: {link}"))?;
    assert!(token.starts_with("pja_"), "{link}");
    assert!(issued.stderr.contains("secret"), "{}", issued.stderr);
    assert!(issued.stderr.contains('█') || issued.stderr.contains('▀'), "a QR code: {}", issued.stderr);
    assert!(!issued.stderr.contains(token), "the token is not repeated on stderr");

    // The token from the link signs the person in.
    let phone = FieldClient::new(server.channel().await?, AgentCredentials::new("phone-cli", token).map_err(anyhow::Error::msg)?);
    let (_, mut stream) = phone.listen().await?;

    let sent = run_pingji(&url, &["message", "send", "--to-agent", "phone-cli", "stand by"]).await?.success()?;
    assert!(sent.stdout.contains("to person phone-cli: reached 1 person"), "{}", sent.stdout);
    let message = expect(&mut stream, "the message", |message| match message {
        Incoming::Message(message) => Some(message),
        _ => None,
    })
    .await?;
    phone.mark_message_read(&message.id).await?;
    phone.reply_to_message(&message.id, "standing by").await?;
    let listed = run_pingji(&url, &["message", "list", "--agent", "phone-cli"]).await?.success()?;
    assert!(listed.stdout.contains("stand by"), "{}", listed.stdout);
    assert!(listed.stdout.contains("read by 1 of 1 (phone-cli)"), "{}", listed.stdout);
    assert!(listed.stdout.contains("phone-cli replied: standing by"), "{}", listed.stdout);
    let neither = run_pingji(&url, &["message", "send", "stand by"]).await?;
    assert_eq!(neither.code(), Some(2), "clap says who it is for: {neither:?}");

    drop(stream);
    server.shutdown().await
}

#[tokio::test]
async fn a_phone_over_its_rate_limit_is_refused_with_when_to_retry_and_its_accept_is_not_lost() -> anyhow::Result<()> {
    use pingji_client::errors::retry_after;
    // 5 calls a second, bursts of 10, in each of the person's two budgets.
    let server = TestServer::start_with_web(|config| config.limits.agent_messages_per_s = 5).await?;
    let mut command = server.command().await?;
    let (client, _) = person_on_the_phone(&server, &mut command, "looping").await?;
    let (neighbour, _) = person_on_the_phone(&server, &mut command, "neighbour").await?;
    let (lon, lat) = area_box(&mut command, GRID).await?.centre();
    let (_, mut stream) = sign_in_at(&client, &mut command, "looping", (lon, lat)).await?;
    let (_, _neighbours_stream) = sign_in_at(&neighbour, &mut command, "neighbour", offset_m(lon, lat, 2_000.0, 0.0)).await?;

    // A phone stuck sending its location: the reports over the budget are
    // refused with when to send again, and are not applied.
    let mut refused = 0;
    let started = std::time::Instant::now();
    for step in 0..40 {
        let (step_lon, step_lat) = offset_m(lon, lat, 1.0 + f64::from(step), 0.0);
        match client.report_location(step_lon, step_lat).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(reason(&status), Some(pb::ErrorReason::LimitExceeded), "{status:?}");
                let wait = retry_after(&status).context("a RetryInfo")?;
                assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "retry after {wait:?}");
                assert!(status.message().contains("location reports"), "{}", status.message());
                refused += 1;
            }
        }
    }
    // A burst of 10, then 5 a second.
    let allowed = 10.0 + 5.0 * started.elapsed().as_secs_f64() + 1.0;
    assert!(refused > 0 && f64::from(40 - refused) <= allowed, "{refused} of 40 location reports refused; {allowed:.0} allowed");
    // Everyone else is served as before.
    neighbour.report_location(lon, lat).await?;

    // The stuck phone's answers are in their own budget: its accept goes through.
    let incident = incident_near(&mut command, (lon, lat)).await?;
    let offer = expect(&mut stream, "the offer", |message| match message {
        Incoming::Offer(offer) if offer.incident_id == incident.id => Some(offer),
        _ => None,
    })
    .await?;
    // That budget spent (messages that are not there), an accept is refused
    // and changes nothing; sent again with its key after the delay, it is applied.
    let mut spent = false;
    for _ in 0..40 {
        if let Err(status) = client.mark_message_read("no-such-message").await
            && status.code() == Code::ResourceExhausted
        {
            spent = true;
            break;
        }
    }
    assert!(spent, "40 calls at once go over 5 a second");
    let key = client.new_key();
    let over = client.accept_offer(&offer.offer_id, &key).await.expect_err("over the budget");
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    let wait = retry_after(&over).context("a RetryInfo")?;
    let held = command.get_incident(pb::GetIncidentRequest { id: incident.id.clone() }).await?.into_inner();
    assert!(held.assignments.is_empty(), "a refused accept assigns no one: {held:?}");
    tokio::time::sleep(wait).await;
    let accepted = client.accept_offer(&offer.offer_id, &key).await?;
    assert!(!accepted.duplicate, "the refused accept was not applied, so this one is");
    expect(&mut stream, "the confirmation", |message| match message {
        Incoming::AssignmentConfirmed(confirmed) => confirmed.offer,
        _ => None,
    })
    .await?;
    drop(stream);
    server.shutdown().await
}
