//! `pingji account whoami|rotate|add|list|token|revoke|remove`: operator
//! accounts and their tokens.
//!
//! A token is printed only by the command that issues it (`rotate`, `add`,
//! `token --rotate`), once; the dispatcher keeps only its hash. Every
//! operator token expires (90 days unless `--expires` says otherwise).

use pingji_proto::v1 as pb;
use serde_json::json;

use crate::connection::Client;
use crate::error::ConsoleError;
use crate::table::Table;
use pingji_client::labels;

use crate::{json, output};

pub async fn whoami(client: &mut Client, as_json: bool) -> Result<(), ConsoleError> {
    let operator = client.who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
    if as_json {
        return output::json_document(&json::operator(&operator));
    }
    output::line(&format!(
        "{} ({}); {}",
        operator.name,
        labels::operator_role_name(operator.role),
        token_standing_text(&operator, labels::now_ms())
    ))
}

/// When an account's token stops or stopped working, in words.
pub fn token_standing_text(operator: &pb::Operator, now_ms: i64) -> String {
    if operator.token_revoked_at_ms != 0 {
        return format!("token revoked {}", labels::utc_time(operator.token_revoked_at_ms));
    }
    match operator.token_expires_at_ms {
        0 => "token never expires (issued before tokens expired: rotate it)".to_string(),
        at if at <= now_ms => format!("token expired {}", labels::utc_time(at)),
        at => format!("token expires {} (in {})", labels::utc_time(at), labels::duration((at - now_ms) / 1000)),
    }
}

pub async fn rotate(client: &mut Client, expires_in_s: u64, as_json: bool) -> Result<(), ConsoleError> {
    let issued = client.rotate_own_token(pb::RotateOwnTokenRequest { expires_in_s }).await?.into_inner();
    if as_json {
        return output::json_document(&json::issued_token(&issued));
    }
    output::secret(&issued.token, &rotated_text(&issued))
}

/// The new token of `rotate`, with what became of the old one.
pub fn rotated_text(issued: &pb::IssuedToken) -> String {
    format!(
        "new token for {} on stdout, shown once; it expires {}; your old token no longer works: use the new one with \
         --token or PINGJI_TOKEN\n",
        issued.subject,
        labels::utc_time(issued.expires_at_ms)
    )
}

pub async fn add(
    client: &mut Client,
    name: &str,
    role: pb::OperatorRole,
    expires_in_s: u64,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let request = pb::AddOperatorRequest { name: name.to_string(), role: role as i32, expires_in_s };
    let issued = client.add_operator(request).await?.into_inner();
    if as_json {
        return output::json_document(&json!({
            "name": issued.subject,
            "role": labels::operator_role_name(role as i32),
            "token": issued.token,
            "expires_at_ms": issued.expires_at_ms,
        }));
    }
    output::secret(&issued.token, &added_text(&issued, role))
}

/// The token of a new account, shown once.
pub fn added_text(issued: &pb::IssuedToken, role: pb::OperatorRole) -> String {
    format!(
        "added {} as {}; their token is on stdout, shown once: hand it over by a safe channel, it cannot be shown again; \
         it expires {}\n",
        issued.subject,
        labels::operator_role_name(role as i32),
        labels::utc_time(issued.expires_at_ms)
    )
}

/// A new token for another operator (admin).
pub async fn issue_token(client: &mut Client, name: &str, expires_in_s: u64, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::IssueOperatorTokenRequest { name: name.to_string(), expires_in_s };
    let issued = client.issue_operator_token(request).await?.into_inner();
    if as_json {
        return output::json_document(&json::issued_token(&issued));
    }
    output::secret(&issued.token, &issued_text(&issued))
}

pub fn issued_text(issued: &pb::IssuedToken) -> String {
    format!(
        "new token for {} on stdout, shown once: hand it over by a safe channel; it expires {}; their old token no \
         longer works\n",
        issued.subject,
        labels::utc_time(issued.expires_at_ms)
    )
}

/// Revokes an operator's token at once.
pub async fn revoke(client: &mut Client, name: &str, as_json: bool) -> Result<(), ConsoleError> {
    let revoked = client.revoke_operator_token(pb::RevokeOperatorTokenRequest { name: name.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&json::operator(&revoked));
    }
    output::text(&format!(
        "revoked the token of {}: it no longer works, and their open streams end; the account stays (a new token: \
         pingji account token {} --rotate; gone for good: pingji account remove {})\n",
        revoked.name, revoked.name, revoked.name
    ))
}

pub async fn list(client: &mut Client, as_json: bool) -> Result<(), ConsoleError> {
    let mut operators = client.list_operators(pb::ListOperatorsRequest {}).await?.into_inner().operators;
    operators.sort_by(|a, b| a.name.cmp(&b.name));
    if as_json {
        return output::json_document(&json!({ "operators": operators.iter().map(json::operator).collect::<Vec<_>>() }));
    }
    output::text(&operators_text(&operators, labels::now_ms()))
}

pub fn operators_text(operators: &[pb::Operator], now_ms: i64) -> String {
    if operators.is_empty() {
        return "no operator accounts\n".to_string();
    }
    let mut table = Table::new(&["NAME", "ROLE", "CREATED", "TOKEN EXPIRES"]);
    for operator in operators {
        table.row(vec![
            operator.name.clone(),
            labels::operator_role_name(operator.role).to_string(),
            labels::utc_time(operator.created_at_ms),
            expiry_cell(operator, now_ms),
        ]);
    }
    table.render()
}

/// The list's expiry column: when, or that it expired, was revoked, or
/// never expires.
fn expiry_cell(operator: &pb::Operator, now_ms: i64) -> String {
    if operator.token_revoked_at_ms != 0 {
        return format!("revoked {}", labels::utc_time(operator.token_revoked_at_ms));
    }
    match operator.token_expires_at_ms {
        0 => "never (rotate it)".to_string(),
        at if at <= now_ms => format!("expired {}", labels::utc_time(at)),
        at => labels::utc_time(at),
    }
}

pub async fn remove(client: &mut Client, name: &str, as_json: bool) -> Result<(), ConsoleError> {
    let removed = client.remove_operator(pb::RemoveOperatorRequest { name: name.to_string() }).await?.into_inner();
    if as_json {
        return output::json_document(&json::operator(&removed));
    }
    output::text(&removed_text(&removed))
}

pub fn removed_text(removed: &pb::Operator) -> String {
    // The dispatcher may not say which role the account had.
    let role = match labels::operator_role_name(removed.role) {
        "unspecified" => String::new(),
        name => format!(" ({name})"),
    };
    format!("removed {}{role}; their token no longer works\n", removed.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_listed_with_role_and_creation_time() {
        let created = 1_738_310_709_000;
        let day = 86_400_000;
        let operators = [
            pb::Operator {
                name: "admin".into(),
                role: pb::OperatorRole::Admin as i32,
                created_at_ms: created,
                token_expires_at_ms: created + 90 * day,
                ..Default::default()
            },
            pb::Operator {
                name: "li.na".into(),
                role: pb::OperatorRole::Viewer as i32,
                created_at_ms: 0,
                token_expires_at_ms: created + day,
                ..Default::default()
            },
            pb::Operator {
                name: "old".into(),
                role: pb::OperatorRole::Viewer as i32,
                created_at_ms: created,
                token_revoked_at_ms: created + day,
                ..Default::default()
            },
            pb::Operator {
                name: "wang".into(),
                role: pb::OperatorRole::Viewer as i32,
                created_at_ms: created,
                ..Default::default()
            },
        ];
        let text = operators_text(&operators, created + 2 * day);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME   ROLE    CREATED               TOKEN EXPIRES");
        assert_eq!(lines[1], "admin  admin   2025-01-31 08:05:09Z  2025-05-01 08:05:09Z");
        assert_eq!(lines[2].trim_end(), "li.na  viewer                        expired 2025-02-01 08:05:09Z");
        assert_eq!(lines[3].trim_end(), "old    viewer  2025-01-31 08:05:09Z  revoked 2025-02-01 08:05:09Z");
        assert_eq!(lines[4].trim_end(), "wang   viewer  2025-01-31 08:05:09Z  never (rotate it)");
        assert!(!text.contains("pjo_"), "never a token");
        assert_eq!(operators_text(&[], 0), "no operator accounts\n");
    }

    #[test]
    fn a_removed_account_is_named_with_its_role_when_known() {
        let mut removed = pb::Operator { name: "li.na".into(), role: pb::OperatorRole::Viewer as i32, ..Default::default() };
        assert_eq!(removed_text(&removed), "removed li.na (viewer); their token no longer works\n");
        removed.role = pb::OperatorRole::Unspecified as i32;
        assert_eq!(removed_text(&removed), "removed li.na; their token no longer works\n");
    }

    #[test]
    fn an_issued_token_is_shown_once_with_what_to_do() {
        let issued =
            pb::IssuedToken { subject: "li.na".into(), token: "pjo_li.na_00ff".into(), expires_at_ms: 1_738_310_709_000 };
        let added = added_text(&issued, pb::OperatorRole::Commander);
        assert_eq!(
            added,
            "added li.na as commander; their token is on stdout, shown once: hand it over by a safe channel, it cannot be \
             shown again; it expires 2025-01-31 08:05:09Z\n"
        );
        let rotated = rotated_text(&issued);
        assert!(rotated.starts_with("new token for li.na on stdout, shown once"), "{rotated}");
        assert!(!rotated.contains("pjo_li.na_00ff") && !added.contains("pjo_li.na_00ff"));
        assert!(rotated.contains("old token no longer works"), "{rotated}");
    }
}
