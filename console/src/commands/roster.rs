//! `pingji roster import FILE.csv [--skip-bad] [--tokens-out FILE]`,
//! `pingji roster add ID ...`, `pingji roster token ID --rotate`,
//! `pingji roster tokens (--without-token | --ids FILE) --out FILE`,
//! `pingji roster list`, `pingji roster show ID`.
//!
//! Adding people issues each new person a token for their field agent. The
//! dispatcher keeps only its hash, so the answer that issues it is the only
//! time it can be seen: these commands print it (or write it to the file
//! asked for) and nothing else keeps it.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use pingji_client::roster_csv::{RosterCsvError, parse_roster_csv_rows};
use pingji_proto::v1 as pb;
use pingji_rules::quote;
use serde_json::json;

use crate::cli::AddPersonArgs;
use crate::connection::Client;
use crate::error::{ConsoleError, bad_line_count, import_error, problem_lines};
use crate::table::Table;
use pingji_client::labels;

use crate::{json, output};

/// People asked for per `ListAgents` call (the dispatcher's own maximum page).
const PAGE: u32 = 1000;

/// Reads the roster, refuses it whole when a row is bad (unless
/// `skip_bad`), and imports it in one request: the dispatcher applies it
/// all or nothing. A row naming a home area that is not on the
/// dispatcher's map is a bad row too, told with its line. The people's
/// tokens go to `tokens_out`, a new file made
/// before the import so that tokens are never issued with nowhere to go;
/// without it they are printed to stdout as CSV, the summary and a warning
/// going to stderr so that `> tokens.csv` catches the CSV alone.
pub async fn import(
    client: &mut Client,
    file: &Path,
    skip_bad: bool,
    tokens_out: Option<&Path>,
    as_json: bool,
) -> Result<(), ConsoleError> {
    // Bytes, not text: a row that is not UTF-8 is a bad row with its line.
    let data = std::fs::read(file).map_err(|source| ConsoleError::ReadFile { path: file.to_path_buf(), source })?;
    let (rows, mut problems) = parse_roster_csv_rows(&data);
    let agents = homed_on_the_map(client, rows, &mut problems).await?;
    if !problems.is_empty() && !skip_bad {
        return Err(ConsoleError::BadRoster { path: file.to_path_buf(), problems });
    }
    if agents.is_empty() {
        return Err(ConsoleError::EmptyRoster { path: file.to_path_buf(), problems });
    }
    let tokens_file = match tokens_out {
        Some(path) => Some((create_tokens_file(path, "nothing imported")?, path)),
        None => None,
    };
    let response = match client.import_agents(pb::ImportAgentsRequest { agents }).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            if let Some((file_made, path)) = tokens_file {
                // Empty and made by us a moment ago: nothing is lost.
                drop(file_made);
                let _ = std::fs::remove_file(path);
            }
            return Err(import_error(status, file));
        }
    };
    let skipped: Vec<_> = problems.iter().map(|problem| json!({ "line": problem.line, "message": problem.message })).collect();
    let csv = tokens_csv(&response.tokens);
    let Some((mut file_made, path)) = tokens_file else {
        output::warning(&format!(
            "no --tokens-out: the tokens of the {} people imported are printed on stdout, this once only; keep them \
             safe, give each person their own, and prefer --tokens-out FILE next time",
            response.tokens.len()
        ))?;
        if as_json {
            let tokens: Vec<_> =
                response.tokens.iter().map(|issued| json!({ "agent_id": issued.subject, "token": issued.token })).collect();
            return output::json_document(&json!({ "imported": response.imported, "skipped": skipped, "tokens": tokens }));
        }
        output::to_stderr(&import_text(file, response.imported, &problems))?;
        return output::text(&csv);
    };
    if let Err(error) = file_made.write_all(csv.as_bytes()).and_then(|()| file_made.sync_all()) {
        // The tokens exist nowhere else: show them rather than lose them.
        output::warning(&format!(
            "cannot write the tokens to {}: {error}; they are printed on stdout instead, this once only",
            path.display()
        ))?;
        output::text(&csv)?;
        return Err(ConsoleError::TokensNotWritten { path: path.to_path_buf(), imported: response.imported });
    }
    if as_json {
        return output::json_document(&json!({
            "imported": response.imported,
            "skipped": skipped,
            "tokens_file": path.display().to_string(),
        }));
    }
    let mut text = import_text(file, response.imported, &problems);
    text.push_str(&format!(
        "wrote their {} tokens to {} (readable only by you): give each person their own, then delete the file\n",
        response.tokens.len(),
        path.display()
    ));
    output::text(&text)
}

/// The people of `rows` whose home area (if any) is on the dispatcher's
/// map; each of the others becomes a problem on its line (the dispatcher
/// would refuse the whole import for them, without a line).
async fn homed_on_the_map(
    client: &mut Client,
    rows: Vec<(usize, pb::AgentSpec)>,
    problems: &mut Vec<RosterCsvError>,
) -> Result<Vec<pb::AgentSpec>, ConsoleError> {
    if rows.iter().all(|(_, agent)| agent.home_area_id.is_empty()) {
        return Ok(rows.into_iter().map(|(_, agent)| agent).collect());
    }
    let map = client.list_areas(pb::ListAreasRequest { level: 0, with_geometry: false }).await?.into_inner();
    let known: HashSet<String> = map.areas.into_iter().map(|area| area.id).collect();
    let mut agents = Vec::new();
    for (line, agent) in rows {
        if agent.home_area_id.is_empty() || known.contains(&agent.home_area_id) {
            agents.push(agent);
            continue;
        }
        let message = format!(
            "home_area_id \"{}\" is not on the dispatcher's map; fix the id, or import the areas first (pingji areas import FILE)",
            quote(&agent.home_area_id)
        );
        problems.push(RosterCsvError { line, message });
    }
    problems.sort_by_key(|problem| problem.line);
    Ok(agents)
}

/// A new file for tokens, readable and writable by its owner only. An
/// existing file is refused: it may hold tokens not yet handed out.
fn create_tokens_file(path: &Path, undone: &'static str) -> Result<File, ConsoleError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|error| {
        let reason = if error.kind() == std::io::ErrorKind::AlreadyExists {
            "it already exists, and tokens are never written over a file; name a new file or move the old one away".to_string()
        } else {
            error.to_string()
        };
        ConsoleError::TokensFile { path: path.to_path_buf(), reason, undone }
    })
}

/// The tokens as CSV with a header: `agent_id,token`.
pub fn tokens_csv(tokens: &[pb::IssuedToken]) -> String {
    let mut csv = String::from("agent_id,token\n");
    for issued in tokens {
        csv.push_str(&format!("{},{}\n", csv_field(&issued.subject), csv_field(&issued.token)));
    }
    csv
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// The record `roster add` sends.
pub fn spec_from_args(args: AddPersonArgs) -> pb::AgentSpec {
    pb::AgentSpec {
        id: args.id,
        name: args.name,
        role: args.role as i32,
        skills: args.skills,
        phone: args.phone,
        home_area_id: args.home_area,
        travel_mode: args.travel_mode as i32,
        on_duty: !args.off_duty,
        home: args.home,
    }
}

/// Adds or replaces one person; a person new to the roster comes back with
/// their token, printed here once.
pub async fn add(client: &mut Client, spec: pb::AgentSpec, as_json: bool) -> Result<(), ConsoleError> {
    let agent = client.upsert_agent(pb::UpsertAgentRequest { agent: Some(spec) }).await?.into_inner();
    if as_json {
        let mut value = json::agent_detail(&agent);
        if let Some(object) = value.as_object_mut()
            && !agent.issued_token.is_empty()
        {
            object.insert("issued_token".into(), json!(agent.issued_token));
        }
        return output::json_document(&value);
    }
    if agent.issued_token.is_empty() {
        return output::text(&added_text(&agent));
    }
    output::secret(&agent.issued_token, &added_text(&agent))
}

pub fn added_text(agent: &pb::Agent) -> String {
    let spec = agent.spec.clone().unwrap_or_default();
    if agent.issued_token.is_empty() {
        return format!("saved {} ({}); they were already on the roster, so they keep their token\n", spec.id, spec.name);
    }
    format!(
        "added {} ({}); their token is on stdout, shown once: give it to them for their field agent, it cannot be shown again\n",
        spec.id, spec.name
    )
}

/// Issues a person a new token; the old one stops working and their live
/// session ends.
pub async fn rotate_token(client: &mut Client, id: &str, as_json: bool) -> Result<(), ConsoleError> {
    let issued = client.issue_agent_token(pb::IssueAgentTokenRequest { agent_id: id.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&json!({ "agent_id": issued.subject, "token": issued.token }));
    }
    output::secret(&issued.token, &rotated_text(&issued))
}

/// Issues a person a new token and prints their sign-in link to the phone
/// app, with its QR code: the token is in the link's fragment (after `#`),
/// which browsers never send to a server, so it stays out of every log.
pub async fn sign_in_link(client: &mut Client, id: &str, web_url: Option<&str>, as_json: bool) -> Result<(), ConsoleError> {
    let Some(web_url) = web_url else {
        return Err(ConsoleError::SignInLink(
            "--link needs the web port's address as the phone reaches it: give --web-url https://HOST:PORT (or set \
             PINGJI_WEB_URL); no token was issued"
                .to_string(),
        ));
    };
    let base = field_app_url(web_url).map_err(ConsoleError::SignInLink)?;
    let issued = client.issue_agent_token(pb::IssueAgentTokenRequest { agent_id: id.to_string() }).await?.into_inner();
    let link = format!("{base}#a={}&t={}", fragment_escape(&issued.subject), fragment_escape(&issued.token));
    if as_json {
        return output::json_document(&json!({ "agent_id": issued.subject, "link": link }));
    }
    let code = qr_text(&link).map_err(ConsoleError::SignInLink)?;
    output::secret(
        &link,
        &format!(
            "{code}\nsign-in link for {} above (on stdout), shown once. It holds their new token: it is a secret. Let them \
             scan the code from this screen, or send the link to them alone; anyone with it can act as them until the \
             token is replaced. Their old token no longer works and their live session, if any, was ended\n",
            issued.subject
        ),
    )
}

/// The phone app's address on the web port: `URL/field/`.
pub fn field_app_url(web_url: &str) -> Result<String, String> {
    let web_url = web_url.trim().trim_end_matches('/');
    let Some(rest) = web_url.strip_prefix("https://").or_else(|| web_url.strip_prefix("http://")) else {
        return Err(format!("--web-url {web_url:?} is not an address; give one such as https://pingji.example.gov.cn:8443"));
    };
    if rest.is_empty() || rest.contains(['#', '?', ' ']) {
        return Err(format!(
            "--web-url {web_url:?} is not an address; give the scheme, host and port only, e.g. https://HOST:8443"
        ));
    }
    Ok(format!("{web_url}/field/"))
}

/// `text` safe in a URL fragment's `key=value` pair.
fn fragment_escape(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The link as a QR code of unicode half blocks, dark on light, with the
/// quiet zone scanners need.
pub fn qr_text(link: &str) -> Result<String, String> {
    let code = qrcode::QrCode::with_error_correction_level(link.as_bytes(), qrcode::EcLevel::L)
        .map_err(|error| format!("the link cannot be drawn as a QR code ({error}); send the link itself"))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

pub fn rotated_text(issued: &pb::IssuedToken) -> String {
    format!(
        "new token for {} on stdout, shown once; it replaces the old one, which no longer works; their live session, if \
         any, was ended: they reconnect with the new token\n",
        issued.subject
    )
}

/// Whose tokens `roster tokens` issues.
#[derive(Debug, Clone)]
pub enum Whose {
    /// Everyone on the roster who has none.
    WithoutToken,
    /// The people a CSV file names; with `replace`, those who have a token
    /// get a new one.
    Named { file: PathBuf, replace: bool },
}

/// People sent in one `IssueAgentTokens` call: the dispatcher's maximum.
const TOKENS_A_CALL: usize = 1000;

/// Issues tokens for many people, a thousand a call, writing each call's
/// tokens to `out` (a new file, mode 0600) before asking for more, so that
/// an interrupted run leaves in the file every token it issued. Stdout says
/// how many and where; the tokens go to the file only.
pub async fn issue_tokens(client: &mut Client, whose: &Whose, out: &Path, as_json: bool) -> Result<(), ConsoleError> {
    let named = match whose {
        Whose::Named { file, .. } => Some(read_ids(file)?),
        Whose::WithoutToken => None,
    };
    let mut file_made = create_tokens_file(out, "no token issued")?;
    let written = |file_made: &mut File, tokens: &[pb::IssuedToken], first: bool| -> std::io::Result<()> {
        let csv = tokens_csv(tokens);
        let rows = if first { csv.as_str() } else { csv.split_once('\n').map_or("", |(_, rows)| rows) };
        file_made.write_all(rows.as_bytes())?;
        file_made.sync_all()
    };
    let mut issued = 0usize;
    let mut kept: Vec<String> = Vec::new();
    let mut without_token = 0u32;
    let mut batches = named.as_ref().map(|ids| ids.chunks(TOKENS_A_CALL));
    loop {
        let request = match &mut batches {
            Some(batches) => match batches.next() {
                Some(batch) => pb::IssueAgentTokensRequest {
                    agent_ids: batch.to_vec(),
                    replace: matches!(whose, Whose::Named { replace: true, .. }),
                    ..Default::default()
                },
                None => break,
            },
            None => pb::IssueAgentTokensRequest { without_token: true, limit: TOKENS_A_CALL as u32, ..Default::default() },
        };
        let response = match client.issue_agent_tokens(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if issued == 0 => {
                // Nothing issued: the file is empty and ours.
                drop(file_made);
                let _ = std::fs::remove_file(out);
                return Err(status.into());
            }
            Err(status) => {
                output::warning(&format!(
                    "stopped after {issued} tokens, all written to {}; run again to go on (people given a token are \
                     not given another without --rotate)",
                    out.display()
                ))?;
                return Err(status.into());
            }
        };
        if let Err(error) = written(&mut file_made, &response.tokens, issued == 0) {
            // The tokens exist nowhere else: show them rather than lose them.
            output::warning(&format!(
                "cannot write the tokens to {}: {error}; the last {} are printed on stdout instead, this once only",
                out.display(),
                response.tokens.len()
            ))?;
            output::text(&tokens_csv(&response.tokens))?;
            return Err(ConsoleError::IssuedTokensNotWritten {
                path: out.to_path_buf(),
                issued: issued + response.tokens.len(),
                printed: response.tokens.len(),
            });
        }
        issued += response.tokens.len();
        kept.extend(response.kept_ids);
        without_token = response.without_token;
        if batches.is_none() && response.tokens.is_empty() {
            break;
        }
    }
    if issued == 0 {
        // The header alone: nobody's token is in it.
        let _ = written(&mut file_made, &[], true);
    }
    if as_json {
        return output::json_document(&json!({
            "issued": issued,
            "tokens_file": out.display().to_string(),
            "kept_ids": kept,
            "without_token": without_token,
        }));
    }
    output::text(&issued_tokens_text(issued, out, &kept, without_token))
}

pub fn issued_tokens_text(issued: usize, out: &Path, kept: &[String], without_token: u32) -> String {
    let noun = if issued == 1 { "token" } else { "tokens" };
    let mut text = format!(
        "issued {issued} {noun}, written to {} (readable only by you, shown this once): give each person their own, then \
         delete the file\n",
        out.display()
    );
    if !kept.is_empty() {
        let shown: Vec<&str> = kept.iter().take(10).map(String::as_str).collect();
        let more = if kept.len() > shown.len() { format!(" and {} more", kept.len() - shown.len()) } else { String::new() };
        text.push_str(&format!(
            "{} already had a token and kept it (--rotate replaces theirs): {}{more}\n",
            people_count(kept.len()),
            shown.join(", ")
        ));
    }
    if without_token > 0 {
        text.push_str(&format!("{} on the roster still have no token\n", people_count(without_token as usize)));
    }
    text
}

fn people_count(count: usize) -> String {
    if count == 1 { "1 person".to_string() } else { format!("{count} people") }
}

/// The ids in the first column of a CSV file, in order, each once; a header
/// row (`id` or `agent_id`) and empty rows are skipped.
pub fn read_ids(file: &Path) -> Result<Vec<String>, ConsoleError> {
    let data = std::fs::read(file).map_err(|source| ConsoleError::ReadFile { path: file.to_path_buf(), source })?;
    let text = String::from_utf8(data)
        .map_err(|_| ConsoleError::InFile { path: file.to_path_buf(), message: "is not UTF-8 text".to_string() })?;
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let first = line.split(',').next().unwrap_or_default().trim().trim_matches('"').trim();
        if first.is_empty() || (index == 0 && matches!(first.to_ascii_lowercase().as_str(), "id" | "agent_id")) {
            continue;
        }
        if seen.insert(first.to_string()) {
            ids.push(first.to_string());
        }
    }
    if ids.is_empty() {
        return Err(ConsoleError::InFile {
            path: file.to_path_buf(),
            message: "names nobody: put one person's id in the first column of each row".to_string(),
        });
    }
    Ok(ids)
}

pub fn import_text(file: &Path, imported: u32, skipped: &[RosterCsvError]) -> String {
    let mut text = format!("imported {imported} people from {}\n", file.display());
    if !skipped.is_empty() {
        let lines = bad_line_count(skipped);
        let noun = if lines == 1 { "line" } else { "lines" };
        text.push_str(&format!("skipped {lines} {noun} with problems:{}\n", problem_lines(skipped)));
    }
    text
}

/// What `roster list` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub area_id: Option<String>,
    pub status: Option<pb::AgentStatus>,
    pub connected_only: bool,
    /// At most this many people; `None`: all of them.
    pub limit: Option<usize>,
}

/// Every person matching `filter`, page by page. With `say_shard`, a split
/// city's shard is named on stderr (not for a full-screen view).
pub async fn fetch_people(client: &mut Client, filter: &ListFilter, say_shard: bool) -> Result<Vec<pb::Agent>, ConsoleError> {
    let mut people = Vec::new();
    let mut after_id = String::new();
    loop {
        let wanted = filter.limit.map_or(PAGE as usize, |limit| limit.saturating_sub(people.len()).min(PAGE as usize));
        if wanted == 0 {
            break;
        }
        let request = pb::ListAgentsRequest {
            area_id: filter.area_id.clone().unwrap_or_default(),
            status: filter.status.unwrap_or(pb::AgentStatus::Unspecified) as i32,
            connected_only: filter.connected_only,
            limit: wanted as u32,
            after_id: after_id.clone(),
        };
        let answer = client.list_agents(request).await?;
        if say_shard && people.is_empty() {
            output::shard_note(&answer, "people")?;
        }
        let page = answer.into_inner().agents;
        let full = page.len() == wanted;
        match page.last().and_then(|agent| agent.spec.as_ref()) {
            Some(spec) => after_id = spec.id.clone(),
            None => break,
        }
        people.extend(page);
        if !full {
            break;
        }
    }
    Ok(people)
}

pub async fn list(client: &mut Client, filter: &ListFilter, as_json: bool) -> Result<(), ConsoleError> {
    let people = fetch_people(client, filter, true).await?;
    if as_json {
        return output::json_document(&json!({ "agents": people.iter().map(json::agent).collect::<Vec<_>>() }));
    }
    output::text(&people_text(&people))
}

pub fn people_text(people: &[pb::Agent]) -> String {
    if people.is_empty() {
        return "no people match\n".to_string();
    }
    let mut table = Table::new(&["ID", "NAME", "ROLE", "STATUS", "CONNECTED", "HOME", "SKILLS", "INCIDENT"]);
    for agent in people {
        let Some(spec) = agent.spec.as_ref() else {
            continue;
        };
        table.row(vec![
            spec.id.clone(),
            spec.name.clone(),
            labels::role_key(spec.role).to_string(),
            labels::agent_status_name(agent.status).to_string(),
            if agent.connected { "yes" } else { "" }.to_string(),
            spec.home_area_id.clone(),
            spec.skills.join(","),
            agent.current_incident_id.clone(),
        ]);
    }
    let mut text = table.render();
    text.push_str(&format!("{} people\n", people.len()));
    text
}

pub async fn show(client: &mut Client, id: &str, as_json: bool) -> Result<(), ConsoleError> {
    let agent = client.get_agent(pb::GetAgentRequest { id: id.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&json::agent_detail(&agent));
    }
    output::text(&person_text(&agent, labels::now_ms()))
}

/// One person in full, phone included: `roster show` is an operator's tool.
pub fn person_text(agent: &pb::Agent, now_ms: i64) -> String {
    let spec = agent.spec.clone().unwrap_or_default();
    let live = match (&agent.location, agent.connected) {
        (Some(_), _) => {
            format!("{} ({} ago)", labels::location_text(agent.location.as_ref()), labels::age(agent.location_at_ms, now_ms))
        }
        (None, true) => "not reported yet".to_string(),
        (None, false) => String::new(),
    };
    let fields = [
        ("id", spec.id.clone()),
        ("name", spec.name.clone()),
        ("role", labels::role_key(spec.role).to_string()),
        ("status", labels::agent_status_name(agent.status).to_string()),
        ("skills", spec.skills.join(", ")),
        ("phone", spec.phone.clone()),
        ("home area", spec.home_area_id.clone()),
        ("home", labels::location_text(spec.home.as_ref())),
        ("travel mode", labels::travel_mode_key(spec.travel_mode).to_string()),
        ("on duty at start", if spec.on_duty { "yes" } else { "no" }.to_string()),
        ("connected", if agent.connected { "yes" } else { "no" }.to_string()),
        ("live location", live),
        ("in grid", agent.grid_id.clone()),
        ("current incident", agent.current_incident_id.clone()),
        ("recent assignments", agent.assignments_recent.to_string()),
    ];
    key_values(&fields)
}

/// `key: value` lines with the values aligned.
pub fn key_values(fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    fields.iter().map(|(key, value)| format!("{:<width$} {value}", format!("{key}:")).trim_end().to_string() + "\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, name: &str) -> pb::Agent {
        pb::Agent {
            spec: Some(pb::AgentSpec {
                id: id.into(),
                name: name.into(),
                role: pb::Role::Volunteer as i32,
                skills: vec!["first_aid".into(), "driving".into()],
                phone: "13900000000".into(),
                home_area_id: "d1-s1-c1-g1".into(),
                ..Default::default()
            }),
            status: pb::AgentStatus::Available as i32,
            connected: true,
            ..Default::default()
        }
    }

    #[test]
    fn the_people_table_aligns_chinese_names_and_hides_phones() {
        let text = people_text(&[person("p0001", "黄磊"), person("p0002", "欧阳桂英")]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID     NAME      ROLE       STATUS     CONNECTED  HOME         SKILLS             INCIDENT");
        assert_eq!(lines[1], "p0001  黄磊      volunteer  available  yes        d1-s1-c1-g1  first_aid,driving");
        assert_eq!(lines[2], "p0002  欧阳桂英  volunteer  available  yes        d1-s1-c1-g1  first_aid,driving");
        assert_eq!(lines[3], "2 people");
        assert!(!text.contains("139"));
    }

    #[test]
    fn showing_one_person_includes_the_phone() {
        let text = person_text(&person("p0001", "黄磊"), 0);
        assert!(text.contains("phone:              13900000000\n"), "{text}");
        assert!(text.contains("live location:      not reported yet\n"), "{text}");
    }

    #[test]
    fn tokens_are_csv_with_a_header() {
        let tokens = [
            pb::IssuedToken { subject: "p0001".into(), token: "pja_00".into(), expires_at_ms: 0 },
            pb::IssuedToken { subject: "p,2".into(), token: "pja_11".into(), expires_at_ms: 0 },
        ];
        assert_eq!(tokens_csv(&tokens), "agent_id,token\np0001,pja_00\n\"p,2\",pja_11\n");
    }

    #[test]
    fn a_tokens_file_is_new_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokens.csv");
        let file = create_tokens_file(&path, "nothing imported").expect("created");
        drop(file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        }
        let again = create_tokens_file(&path, "nothing imported").expect_err("an existing file is refused");
        assert!(again.to_string().contains("already exists"), "{again}");
    }

    #[test]
    fn a_new_person_gets_their_token_once_and_an_existing_one_keeps_theirs() {
        let mut agent = person("p0101", "黄磊");
        agent.issued_token = "pja_ab".into();
        assert_eq!(
            added_text(&agent),
            "added p0101 (黄磊); their token is on stdout, shown once: give it to them for their field agent, it cannot be shown again\n"
        );
        assert!(!added_text(&agent).contains("pja_ab"), "the note on stderr leaves the token out");
        agent.issued_token.clear();
        assert!(added_text(&agent).contains("keep their token"));
        let rotated = rotated_text(&pb::IssuedToken { subject: "p0101".into(), token: "pja_cd".into(), expires_at_ms: 0 });
        assert!(rotated.starts_with("new token for p0101 on stdout, shown once; it replaces the old one"), "{rotated}");
        assert!(!rotated.contains("pja_cd"));
        assert!(rotated.contains("live session"), "{rotated}");
    }

    #[test]
    fn skipped_rows_are_listed_by_line() {
        let skipped = [
            RosterCsvError { line: 3, message: "unknown role \"boss\"".into() },
            RosterCsvError { line: 3, message: "name is empty".into() },
        ];
        assert_eq!(
            import_text(Path::new("r.csv"), 5, &skipped),
            "imported 5 people from r.csv\nskipped 1 line with problems:\n  line 3: unknown role \"boss\"\n  line 3: name is empty\n"
        );
    }
}

#[cfg(test)]
mod sign_in_link_tests {
    use super::*;

    #[test]
    fn the_link_puts_the_token_in_the_fragment_and_draws_as_a_qr_code() {
        assert_eq!(field_app_url("https://pingji.example:8443/").as_deref(), Ok("https://pingji.example:8443/field/"));
        assert!(field_app_url("pingji.example:8443").is_err());
        assert!(field_app_url("https://host:8443/?x=1").is_err());
        let link = format!("{}#a={}&t={}", "https://h:8443/field/", fragment_escape("p 1"), fragment_escape("pja_00ff"));
        assert_eq!(link, "https://h:8443/field/#a=p%201&t=pja_00ff");
        let code = qr_text(&link).expect("drawn");
        assert!(code.lines().count() > 10, "{code}");
        assert!(code.contains('█') || code.contains('▀') || code.contains('▄'), "{code}");
    }
}
