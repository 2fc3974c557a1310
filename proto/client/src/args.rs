//! The connection flags every client binary takes (`pingji`, `field-agent`,
//! `drill live`), defined once: `#[command(flatten)]` a [`ConnectArgs`].
//! The token stays out: the console's is an operator's (`--token`,
//! `PINGJI_TOKEN`), the field agent's a person's (`PINGJI_AGENT_TOKEN`).

use std::path::PathBuf;
use std::time::Duration;

use crate::connect::{ConnectOptions, DEFAULT_SERVER};
use crate::tls::{ClientTlsFiles, TlsFileError};

/// Where the dispatcher is and how to reach it. The flags may come before
/// or after a subcommand.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct ConnectArgs {
    /// The dispatcher: http://host:port, https://host:port, or host:port
    /// (https with --ca or a client certificate); or several, comma
    /// separated, when dispatchers share a Redis store (the one that owns
    /// the shard is found)
    #[arg(long, global = true, env = "PINGJI_SERVER", default_value = DEFAULT_SERVER, value_name = "URL")]
    pub server: String,
    /// CA certificate (PEM) that signed the dispatcher's certificate, for
    /// https://; without it, https:// trusts the system's roots
    #[arg(long, global = true, env = "PINGJI_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), for a dispatcher that requires one (mTLS)
    #[arg(long, global = true, env = "PINGJI_CLIENT_CERT", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert
    #[arg(long, global = true, env = "PINGJI_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// Seconds connecting may take before a dispatcher counts as unreachable
    #[arg(long, global = true, env = "PINGJI_CONNECT_TIMEOUT", default_value = "5", value_name = "SECONDS", value_parser = seconds)]
    pub connect_timeout: Duration,
    /// Seconds to wait for the dispatcher's answer to a call (the field
    /// agent: to its hello, 20 by default); streams of events are not cut.
    /// Default: no limit
    #[arg(long, global = true, env = "PINGJI_TIMEOUT", value_name = "SECONDS", value_parser = seconds)]
    pub timeout: Option<Duration>,
}

impl ConnectArgs {
    /// The options these flags say, with the TLS files read and checked;
    /// no token (see [`crate::auth::BearerToken`]).
    pub fn options(&self) -> Result<ConnectOptions, TlsFileError> {
        let files = ClientTlsFiles { ca: self.ca.clone(), cert: self.client_cert.clone(), key: self.client_key.clone() };
        let mut options = ConnectOptions::new(&self.server);
        options.tls = files.load()?;
        options.connect_timeout = self.connect_timeout;
        options.request_timeout = self.timeout;
        Ok(options)
    }
}

/// A number of seconds above 0 and at most a day, fractions allowed.
fn seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 && value <= 86_400.0 => Ok(Duration::from_secs_f64(value)),
        _ => Err(format!("{text:?} is not a number of seconds above 0 and at most 86400")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Program {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        List,
    }

    fn parse(args: &[&str]) -> Result<ConnectArgs, clap::Error> {
        Program::try_parse_from(std::iter::once("program").chain(args.iter().copied())).map(|program| program.connect)
    }

    #[test]
    fn flags_go_before_or_after_a_subcommand_and_timeouts_are_seconds() {
        let before = parse(&["--server", "a:1,b:2", "--timeout", "2.5", "list"]).expect("valid");
        let after = parse(&["list", "--server", "a:1,b:2", "--timeout", "2.5"]).expect("valid");
        assert_eq!(before, after);
        assert_eq!(before.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(before.connect_timeout, Duration::from_secs(5));
        let options = before.options().expect("no files");
        assert_eq!(options.servers, ["a:1", "b:2"]);
        assert_eq!(options.request_timeout, Some(Duration::from_millis(2500)));
        assert!(parse(&["--connect-timeout", "0"]).is_err());
        assert!(parse(&["--timeout", "soon"]).is_err());
    }

    #[test]
    fn half_a_client_certificate_is_refused_naming_both_flags() {
        let half = parse(&["--client-cert", "c.pem"]).expect("parses");
        assert_eq!(half.options().expect_err("half"), TlsFileError::HalfIdentity);
    }
}
