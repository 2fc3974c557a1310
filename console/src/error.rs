//! What can go wrong in a command, and how it is told: one line on stderr
//! (a bad roster adds one line per problem) and the exit code.

use std::path::PathBuf;

use pingji_client::connect::{CallError, ConnectError};
use pingji_client::errors;
use pingji_client::roster_csv::RosterCsvError;
use pingji_proto::v1::ErrorReason;
use tonic::Code;

/// Exit code for anything that went wrong after the command line was read.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a command line that cannot be carried out (clap uses it too).
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The command line parsed but makes no sense (e.g. normal mode with a
    /// grade); shown the way clap shows its own usage errors.
    #[error("{0}")]
    Usage(clap::Error),
    #[error("{0:?} is not a server address; give one such as http://127.0.0.1:50051")]
    BadServerAddress(String),
    /// The token given cannot be sent; the reason never repeats it.
    #[error("the token from --token or PINGJI_TOKEN cannot be used: {0}")]
    BadToken(String),
    #[error("cannot reach the dispatcher at {0} (is it running?)")]
    Unreachable(String),
    /// The connection was made but TLS (or its absence) did not match.
    #[error("cannot talk to the dispatcher at {server}: {reason}")]
    Connect { server: String, reason: String },
    /// A TLS file or setting cannot be used.
    #[error("{0}")]
    Tls(String),
    #[error("{}: {}{}", code_words(.0.code()), .0.message(), access_hint(.0))]
    Server(tonic::Status),
    #[error("the dispatcher closed the event stream")]
    StreamEnded,
    /// A sign-in link could not be made (what to give, or why).
    #[error("{0}")]
    SignInLink(String),
    #[error("cannot read {}: {source}", .path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    /// A file the user named is wrong, or the dispatcher refused what it holds.
    #[error("{}: {message}", .path.display())]
    InFile { path: PathBuf, message: String },
    #[error("{} has problems on {} {}; nothing imported. Fix them and import again, or use --skip-bad to import the good rows:{}",
        .path.display(), bad_line_count(.problems), lines_noun(bad_line_count(.problems)), problem_lines(.problems))]
    BadRoster { path: PathBuf, problems: Vec<RosterCsvError> },
    #[error("{} has no people to import{}", .path.display(), problem_lines(.problems))]
    EmptyRoster { path: PathBuf, problems: Vec<RosterCsvError> },
    #[error(
        "{what} is too large for one request to the dispatcher ({detail}); split it into smaller files and import them one by one"
    )]
    TooLarge { what: String, detail: String },
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    /// The tokens file cannot be created; nothing was done (`undone` says
    /// what: "nothing imported", "no token issued").
    #[error("cannot create the tokens file {}: {reason}; {undone}", .path.display())]
    TokensFile { path: PathBuf, reason: String, undone: &'static str },
    /// The import was done but its tokens could not be written to the
    /// file; they were printed instead.
    #[error("imported {imported} people, but their tokens could not be written to {}; they were printed on stdout", .path.display())]
    TokensNotWritten { path: PathBuf, imported: u32 },
    /// `roster tokens` issued tokens that could not be written to the
    /// file; the last call's were printed instead.
    #[error("issued {issued} tokens, but the last {printed} could not be written to {}; they were printed on stdout", .path.display())]
    IssuedTokensNotWritten { path: PathBuf, issued: usize, printed: usize },
    #[error("the terminal cannot be used: {0}")]
    Terminal(std::io::Error),
    /// `incident create` found open incidents the report may repeat and
    /// could not ask (no terminal), or the operator stopped.
    #[error("{0}")]
    PossibleDuplicate(String),
}

impl ConsoleError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ConsoleError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// Whether the reader of our output went away (`pingji events | head`):
    /// not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ConsoleError::Output(error) if error.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<tonic::Status> for ConsoleError {
    fn from(status: tonic::Status) -> Self {
        ConsoleError::Server(status)
    }
}

impl From<ConnectError> for ConsoleError {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::NoServer => ConsoleError::BadServerAddress(String::new()),
            ConnectError::BadAddress { address, .. } => ConsoleError::BadServerAddress(address),
            ConnectError::Tls(message) => ConsoleError::Tls(message),
            ConnectError::Unreachable { server, .. } => ConsoleError::Unreachable(server),
            ConnectError::Handshake { server, reason } => ConsoleError::Connect { server, reason },
        }
    }
}

/// A command's error may be the dispatcher's status, which may send the
/// command to the shard's owner (`Connection::call`).
impl CallError for ConsoleError {
    fn status(&self) -> Option<&tonic::Status> {
        match self {
            ConsoleError::Server(status) => Some(status),
            _ => None,
        }
    }
}

/// The error for a failed import: a request over the dispatcher's message
/// size limit gets advice instead of the transport's wording. The
/// dispatcher answers `resource_exhausted`; tonic's own limits, on this side
/// or at an older dispatcher, answer `out_of_range`.
pub fn import_error(status: tonic::Status, file: &std::path::Path) -> ConsoleError {
    let message = status.message();
    // The dispatcher's own statuses name a reason; one without is the
    // transport's, here its limit on the size of a request.
    let over_a_limit = matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange);
    if over_a_limit && (errors::reason(&status).is_none() || errors::reason(&status) == Some(ErrorReason::LimitExceeded)) {
        let detail = message.split_once("too large: ").map_or(message, |(_, detail)| detail);
        let detail = detail.split(';').next().unwrap_or(detail);
        return ConsoleError::TooLarge { what: file.display().to_string(), detail: detail.to_string() };
    }
    ConsoleError::Server(status)
}

/// What to do about a refused token or a role too low, after the
/// dispatcher's own words (empty for other statuses).
fn access_hint(status: &tonic::Status) -> &'static str {
    match status.code() {
        // The dispatcher already says so when no token came at all, and
        // when no token could be right (it has no accounts yet).
        Code::Unauthenticated
            if matches!(errors::reason(status), Some(ErrorReason::TokenMissing | ErrorReason::NoOperatorAccounts)) =>
        {
            ""
        }
        Code::Unauthenticated => " (the console sends the token from --token or PINGJI_TOKEN)",
        Code::PermissionDenied => {
            " (use the token of an account with that role via --token or PINGJI_TOKEN, or ask an admin: \
             pingji account add NAME --role ROLE)"
        }
        _ => "",
    }
}

/// A gRPC code in words: "not found", "invalid argument".
pub fn code_words(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not implemented by this dispatcher",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

fn lines_noun(count: usize) -> &'static str {
    if count == 1 { "line" } else { "lines" }
}

/// Each problem on its own indented line.
pub fn problem_lines(problems: &[RosterCsvError]) -> String {
    problems.iter().map(|problem| format!("\n  line {}: {}", problem.line, problem.message)).collect()
}

/// How many distinct lines of the file have a problem (one row may have
/// several; problems come in file order).
pub fn bad_line_count(problems: &[RosterCsvError]) -> usize {
    let mut lines: Vec<usize> = problems.iter().map(|problem| problem.line).collect();
    lines.dedup();
    lines.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_is_one_line_with_the_code_in_words() {
        let error = ConsoleError::from(tonic::Status::not_found("incident inc-9 does not exist; list incidents to find its id"));
        assert_eq!(error.to_string(), "not found: incident inc-9 does not exist; list incidents to find its id");
        assert_eq!(error.exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn an_import_over_the_size_limit_gets_advice() {
        let status = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 6228890 bytes, the limit is: 4194304 bytes",
        );
        let error = import_error(status, std::path::Path::new("big.csv"));
        assert_eq!(
            error.to_string(),
            "big.csv is too large for one request to the dispatcher (found 6228890 bytes, the limit is: 4194304 bytes); \
             split it into smaller files and import them one by one"
        );
        let status = tonic::Status::resource_exhausted(
            "decoded message length too large: found 300000000 bytes, the limit is: 268435456 bytes; a command message \
             may be at most 256 MiB: split the request (a roster or a map into parts)",
        );
        assert_eq!(
            import_error(status, std::path::Path::new("big.csv")).to_string(),
            "big.csv is too large for one request to the dispatcher (found 300000000 bytes, the limit is: 268435456 bytes); \
             split it into smaller files and import them one by one"
        );
        let other = import_error(tonic::Status::not_found("area x"), std::path::Path::new("r.csv"));
        assert_eq!(other.to_string(), "not found: area x");
    }

    #[test]
    fn a_refused_token_or_role_says_what_to_do() {
        use tonic_types::{ErrorDetails, StatusExt};
        let details = ErrorDetails::with_error_info("TOKEN_MISSING", errors::DOMAIN, std::collections::HashMap::new());
        let no_token = ConsoleError::from(tonic::Status::with_error_details(
            Code::Unauthenticated,
            "no operator token: pass --token or set PINGJI_TOKEN",
            details,
        ));
        assert_eq!(no_token.to_string(), "unauthenticated: no operator token: pass --token or set PINGJI_TOKEN");
        let details = ErrorDetails::with_error_info("NO_OPERATOR_ACCOUNTS", errors::DOMAIN, std::collections::HashMap::new());
        let no_accounts = ConsoleError::from(tonic::Status::with_error_details(
            Code::Unauthenticated,
            "this dispatcher has no operator accounts yet",
            details,
        ));
        assert_eq!(no_accounts.to_string(), "unauthenticated: this dispatcher has no operator accounts yet");
        let wrong = ConsoleError::from(tonic::Status::unauthenticated("the operator token is wrong"));
        assert_eq!(
            wrong.to_string(),
            "unauthenticated: the operator token is wrong (the console sends the token from --token or PINGJI_TOKEN)"
        );
        let too_low = ConsoleError::from(tonic::Status::permission_denied("SetMode needs the commander role or higher"));
        let shown = too_low.to_string();
        assert!(shown.starts_with("permission denied: SetMode needs the commander role or higher (use the token"), "{shown}");
        assert!(shown.contains("pingji account add NAME --role ROLE"), "{shown}");
        assert!(!shown.contains('\n'));
    }

    #[test]
    fn an_unreachable_server_says_so() {
        let error = ConsoleError::Unreachable("http://127.0.0.1:1".into());
        assert_eq!(error.to_string(), "cannot reach the dispatcher at http://127.0.0.1:1 (is it running?)");
    }

    #[test]
    fn a_bad_roster_lists_every_problem_with_its_line() {
        let problems = vec![
            RosterCsvError { line: 3, message: "unknown role \"boss\"".into() },
            RosterCsvError { line: 5, message: "name is empty".into() },
            RosterCsvError { line: 5, message: "id is empty".into() },
        ];
        let error = ConsoleError::BadRoster { path: "r.csv".into(), problems };
        assert_eq!(
            error.to_string(),
            "r.csv has problems on 2 lines; nothing imported. Fix them and import again, or use --skip-bad to import the good rows:\n  \
             line 3: unknown role \"boss\"\n  line 5: name is empty\n  line 5: id is empty"
        );
    }
}
