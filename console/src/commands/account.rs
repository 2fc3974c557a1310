//! `pingji account whoami|rotate|add|list|remove`: operator accounts and
//! one's own token.
//!
//! A token is printed only by the command that issues it (`rotate`, `add`),
//! once; the dispatcher keeps only its hash.

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
    output::line(&format!("{} ({})", operator.name, labels::operator_role_name(operator.role)))
}

pub async fn rotate(client: &mut Client, as_json: bool) -> Result<(), ConsoleError> {
    let issued = client.rotate_own_token(pb::RotateOwnTokenRequest {}).await?.into_inner();
    if as_json {
        return output::json_document(&json::issued_token(&issued));
    }
    output::secret(&issued.token, &rotated_text(&issued))
}

/// The new token of `rotate`, with what became of the old one.
pub fn rotated_text(issued: &pb::IssuedToken) -> String {
    format!(
        "new token for {} on stdout, shown once; your old token no longer works: use the new one with --token or PINGJI_TOKEN\n",
        issued.subject
    )
}

pub async fn add(client: &mut Client, name: &str, role: pb::OperatorRole, as_json: bool) -> Result<(), ConsoleError> {
    let request = pb::AddOperatorRequest { name: name.to_string(), role: role as i32 };
    let issued = client.add_operator(request).await?.into_inner();
    if as_json {
        return output::json_document(&json!({
            "name": issued.subject,
            "role": labels::operator_role_name(role as i32),
            "token": issued.token,
        }));
    }
    output::secret(&issued.token, &added_text(&issued, role))
}

/// The token of a new account, shown once.
pub fn added_text(issued: &pb::IssuedToken, role: pb::OperatorRole) -> String {
    format!(
        "added {} as {}; their token is on stdout, shown once: hand it over by a safe channel, it cannot be shown again\n",
        issued.subject,
        labels::operator_role_name(role as i32)
    )
}

pub async fn list(client: &mut Client, as_json: bool) -> Result<(), ConsoleError> {
    let mut operators = client.list_operators(pb::ListOperatorsRequest {}).await?.into_inner().operators;
    operators.sort_by(|a, b| a.name.cmp(&b.name));
    if as_json {
        return output::json_document(&json!({ "operators": operators.iter().map(json::operator).collect::<Vec<_>>() }));
    }
    output::text(&operators_text(&operators))
}

pub fn operators_text(operators: &[pb::Operator]) -> String {
    if operators.is_empty() {
        return "no operator accounts\n".to_string();
    }
    let mut table = Table::new(&["NAME", "ROLE", "CREATED"]);
    for operator in operators {
        table.row(vec![
            operator.name.clone(),
            labels::operator_role_name(operator.role).to_string(),
            labels::utc_time(operator.created_at_ms),
        ]);
    }
    table.render()
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
        let operators = [
            pb::Operator { name: "admin".into(), role: pb::OperatorRole::Admin as i32, created_at_ms: 1_738_310_709_000 },
            pb::Operator { name: "li.na".into(), role: pb::OperatorRole::Viewer as i32, created_at_ms: 0 },
        ];
        let text = operators_text(&operators);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAME   ROLE    CREATED");
        assert_eq!(lines[1], "admin  admin   2025-01-31 08:05:09Z");
        assert_eq!(lines[2].trim_end(), "li.na  viewer");
        assert_eq!(operators_text(&[]), "no operator accounts\n");
    }

    #[test]
    fn a_removed_account_is_named_with_its_role_when_known() {
        let mut removed = pb::Operator { name: "li.na".into(), role: pb::OperatorRole::Viewer as i32, created_at_ms: 0 };
        assert_eq!(removed_text(&removed), "removed li.na (viewer); their token no longer works\n");
        removed.role = pb::OperatorRole::Unspecified as i32;
        assert_eq!(removed_text(&removed), "removed li.na; their token no longer works\n");
    }

    #[test]
    fn an_issued_token_is_shown_once_with_what_to_do() {
        let issued = pb::IssuedToken { subject: "li.na".into(), token: "pjo_li.na_00ff".into() };
        let added = added_text(&issued, pb::OperatorRole::Commander);
        assert_eq!(
            added,
            "added li.na as commander; their token is on stdout, shown once: hand it over by a safe channel, it cannot be \
             shown again\n"
        );
        let rotated = rotated_text(&issued);
        assert!(rotated.starts_with("new token for li.na on stdout, shown once"), "{rotated}");
        assert!(!rotated.contains("pjo_li.na_00ff") && !added.contains("pjo_li.na_00ff"));
        assert!(rotated.contains("old token no longer works"), "{rotated}");
    }
}
