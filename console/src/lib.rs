//! Pingji operator console: the `pingji` command for operators in the
//! command centre. Every command is thin over the dispatcher's gRPC
//! `CommandService`, made with the operator's token (`--token` or
//! `PINGJI_TOKEN`); results are tables for people or JSON for scripts, and
//! `pingji watch` is a full-screen live view. Tokens are printed only by the
//! commands that issue them, once.
//!
//! Connecting (TLS, the token, following the shard's owner), the resuming
//! event stream, event lines, labels and the roster CSV reader come from
//! `pingji-client`; the console has nothing of the dispatcher.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and the parsers of its values.
//! - [`connection`]: the operator's token, and failed calls in the console's
//!   words (connecting is `pingji_client::connect`).
//! - [`error`]: [`ConsoleError`], one line per failure, and the exit codes.
//! - [`commands`]: one module per command group, sending requests and
//!   printing results (accounts and tokens in [`commands::account`] and
//!   [`commands::roster`]).
//! - [`table`]: aligned text tables, measured in terminal columns (CJK).
//! - [`json`]: the proto messages as JSON for `--json`.
//! - [`output`]: writing to stdout.
//! - [`watch`]: `pingji watch`, the live view (state, drawing, I/O).

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod connection;
pub mod error;
pub mod json;
pub mod output;
pub mod table;
pub mod watch;

use clap::CommandFactory;
use pingji_client::tls::TlsFileError;

use crate::cli::{
    AccountCommand, AgentsCommand, AreasCommand, CallupCommand, CapCommand, Cli, Command, IncidentCommand, MessageCommand,
    ModeCommand, PhotoCommand, PlanCommand, ReportCommand, RosterCommand, RostersCommand, SheltersCommand, SuppliesCommand,
    WebhooksCommand,
};
use crate::commands::roster::ListFilter;
use crate::connection::Connection;
pub use crate::error::ConsoleError;

/// Carries out one command line.
pub async fn run(cli: Cli) -> Result<(), ConsoleError> {
    // Checks clap cannot express come before connecting, so that a usage
    // error does not depend on the dispatcher being up.
    let requested_mode = match &cli.command {
        Command::Mode(ModeCommand::Set(args)) => Some(
            cli::requested_mode(args.mode, args.grade)
                .map_err(|message| usage_error(clap::error::ErrorKind::ArgumentConflict, &message))?,
        ),
        _ => None,
    };
    if let Command::Roster(RosterCommand::Token { id, rotate: false, link: false, .. }) = &cli.command {
        let message = format!(
            "a person's token is shown only once, when it is issued, so the current one cannot be shown again; \
             `pingji roster token {id} --rotate` issues a new one, which stops the old one and ends their live session"
        );
        return Err(usage_error(clap::error::ErrorKind::MissingRequiredArgument, &message));
    }
    if let Command::Account(AccountCommand::Token { name, rotate: false, .. }) = &cli.command {
        let message = format!(
            "an operator's token is shown only once, when it is issued, so the current one cannot be shown again; \
             `pingji account token {name} --rotate` issues a new one, which stops the old one at once"
        );
        return Err(usage_error(clap::error::ErrorKind::MissingRequiredArgument, &message));
    }
    if cli.global.operator.is_some() {
        let message = "--operator is no longer used: the dispatcher records you as the account your token belongs to; \
                       pass your operator token with --token or set PINGJI_TOKEN";
        return Err(usage_error(clap::error::ErrorKind::UnknownArgument, message));
    }
    let global = cli.global;
    let mut token = connection::bearer(global.token.as_ref().map(cli::OperatorToken::expose))?;
    if let Some(shard) = &global.shard {
        token = token.for_shard(shard).map_err(|message| usage_error(clap::error::ErrorKind::InvalidValue, &message))?;
    }
    let mut options = global.connect.options().map_err(|error| match error {
        TlsFileError::HalfIdentity => usage_error(clap::error::ErrorKind::MissingRequiredArgument, &error.to_string()),
        other => ConsoleError::Tls(other.to_string()),
    })?;
    options.bearer = token;
    let mut connection = Connection::open(options).await?;
    // A dispatcher that does not own the shard the command is for names its
    // owner: the command is carried out there (a refusal that names an
    // owner changed nothing, so this cannot do anything twice).
    let command = cli.command;
    let as_json = global.json;
    let result = connection.call(|connection| execute(connection.clone(), command.clone(), requested_mode, as_json)).await;
    result.map_err(|error| tls_explained(&connection, error))
}

/// A failed call whose transport error shows a TLS mismatch is told with
/// what to do about it.
fn tls_explained(connection: &Connection, error: ConsoleError) -> ConsoleError {
    match error {
        ConsoleError::Server(status) => connection::call_error(connection, status),
        other => other,
    }
}

/// Carries out `command` against the dispatcher `connection` reached.
async fn execute(
    connection: Connection,
    command: Command,
    requested_mode: Option<pingji_proto::v1::Mode>,
    as_json: bool,
) -> Result<(), ConsoleError> {
    let mut client = connection.commands();
    let client = &mut client;
    match command {
        Command::Areas(AreasCommand::Import {
            file,
            dry_run,
            replace,
            id_property,
            name_property,
            level_property,
            parent_property,
            level,
        }) => {
            let properties = pingji_proto::v1::MapProperties {
                id: id_property.unwrap_or_default(),
                name: name_property.unwrap_or_default(),
                level: level_property.unwrap_or_default(),
                parent: parent_property.unwrap_or_default(),
                default_level: level.map_or(pingji_proto::v1::AreaLevel::Unspecified, cli::LevelChoice::to_pb) as i32,
            };
            let how = commands::areas::ImportHow { dry_run, replace, properties };
            commands::areas::import(client, &file, how, as_json).await
        }
        Command::Areas(AreasCommand::Retire { area, with_children, dry_run }) => {
            commands::areas::retire(client, &area, with_children, dry_run, as_json).await
        }
        Command::Areas(AreasCommand::List { level }) => {
            commands::areas::list(client, level.map(cli::LevelChoice::to_pb), as_json).await
        }
        Command::Roster(RosterCommand::Import { file, skip_bad, tokens_out }) => {
            commands::roster::import(client, &file, skip_bad, tokens_out.as_deref(), as_json).await
        }
        Command::Roster(RosterCommand::Add(args)) => {
            commands::roster::add(client, commands::roster::spec_from_args(args), as_json).await
        }
        Command::Roster(RosterCommand::Token { id, link: true, web_url, .. }) => {
            commands::roster::sign_in_link(client, &id, web_url.as_deref(), as_json).await
        }
        Command::Roster(RosterCommand::Token { id, .. }) => commands::roster::rotate_token(client, &id, as_json).await,
        Command::Roster(RosterCommand::List { area, status, connected, limit }) => {
            let filter =
                ListFilter { area_id: area, status: status.map(cli::StatusChoice::to_pb), connected_only: connected, limit };
            commands::roster::list(client, &filter, as_json).await
        }
        Command::Roster(RosterCommand::Tokens { without_token, ids, out, rotate }) => {
            let whose = match ids {
                Some(file) => commands::roster::Whose::Named { file, replace: rotate },
                None => {
                    debug_assert!(without_token, "clap requires --without-token or --ids");
                    commands::roster::Whose::WithoutToken
                }
            };
            commands::roster::issue_tokens(client, &whose, &out, as_json).await
        }
        Command::Roster(RosterCommand::Show { id }) => commands::roster::show(client, &id, as_json).await,
        Command::Incident(IncidentCommand::Create(args)) => commands::incident::create(client, args, as_json).await,
        Command::Incident(IncidentCommand::List { open }) => commands::incident::list(client, open, as_json).await,
        Command::Incident(IncidentCommand::Show { id }) => commands::incident::show(client, &id, as_json).await,
        Command::Incident(IncidentCommand::Timeline { id }) => commands::incident::timeline(client, &id, as_json).await,
        Command::Incident(IncidentCommand::Why { id, agent, candidates, passed_over }) => {
            commands::why::why(client, &id, agent, candidates, passed_over, as_json).await
        }
        Command::Incident(IncidentCommand::Merge { id, into }) => commands::why::merge(client, &id, &into, as_json).await,
        Command::Incident(IncidentCommand::ExportEido { id, output }) => {
            commands::incident::export_eido(client, &id, output.as_deref()).await
        }
        Command::Incident(IncidentCommand::ImportEido { file, default_category, force }) => {
            commands::incident::import_eido(client, &file, default_category.unwrap_or_default(), force, as_json).await
        }
        Command::Incident(IncidentCommand::Cancel { id, reason }) => {
            commands::incident::cancel(client, &id, &reason, as_json).await
        }
        Command::Incident(IncidentCommand::Close { id, feedback }) => {
            commands::incident::close(client, &id, &feedback, as_json).await
        }
        Command::Mode(ModeCommand::Set(args)) => {
            let mode = requested_mode.unwrap_or(pingji_proto::v1::Mode::Unspecified);
            commands::mode::set(client, &args.area, mode, &args.reason, as_json).await
        }
        Command::Mode(ModeCommand::Show) => commands::mode::show(client, as_json).await,
        Command::Agents(AgentsCommand::Nearby { at, k, skills, available }) => {
            commands::agents::nearby(client, at, k, skills, available, as_json).await
        }
        Command::Plan(PlanCommand::Import { files }) => match commands::city::districts_for(&connection, None).await? {
            Some(districts) => {
                let request = commands::plan::import_request(&files)?;
                let imported =
                    commands::city::import_plans(&connection, &districts, &request).await.map_err(|error| match error {
                        ConsoleError::Server(status) => commands::plan::plan_error(status, &files),
                        other => other,
                    })?;
                commands::plan::show_imported(&imported, &files, as_json)
            }
            None => commands::plan::import(client, &files, as_json).await,
        },
        Command::Plan(PlanCommand::List) => commands::plan::list(client, as_json).await,
        Command::Plan(PlanCommand::Activate { plan_id, area, reason }) => {
            match commands::city::districts_for(&connection, Some(&area)).await? {
                Some(districts) => {
                    let request = pingji_proto::v1::ActivatePlanRequest { plan_id, area_id: area, reason };
                    let activations = commands::city::activate(&connection, &districts, &request).await?;
                    commands::plan::show_activations(&activations, as_json)
                }
                None => commands::plan::activate(client, &plan_id, &area, &reason, as_json).await,
            }
        }
        Command::Plan(PlanCommand::Deactivate { activation_id, reason }) => {
            commands::plan::deactivate(client, &activation_id, &reason, as_json).await
        }
        Command::Callup(CallupCommand::Issue { area, reason, roles, deadline_s }) => {
            let request = pingji_proto::v1::CallUpRequest {
                area_id: area,
                roles: roles.into_iter().map(|role| role as i32).collect(),
                reason,
                deadline_s: deadline_s.unwrap_or(0),
            };
            match commands::city::districts_for(&connection, Some(&request.area_id)).await? {
                Some(districts) => {
                    let callups = commands::city::call_up(&connection, &districts, &request).await?;
                    commands::callup::show_issued(&commands::city::merge(callups), as_json)
                }
                None => commands::callup::issue(client, request, as_json).await,
            }
        }
        Command::Callup(CallupCommand::Status { area, open }) => {
            match commands::city::districts_for(&connection, area.as_deref()).await? {
                Some(districts) => {
                    let request = pingji_proto::v1::CallupStatusRequest { area_id: area.unwrap_or_default(), open_only: open };
                    let callups = commands::city::roll_call(&connection, &districts, &request).await?;
                    commands::callup::show_roll_call(callups, as_json)
                }
                None => commands::callup::status(client, area.as_deref(), open, as_json).await,
            }
        }
        Command::Message(MessageCommand::Send { to_agent, incident, area, text }) => {
            commands::message::send(client, to_agent, incident, area, &text, as_json).await
        }
        Command::Message(MessageCommand::List { agent, incident, limit }) => {
            commands::message::list(client, agent, incident, limit.unwrap_or(0), as_json).await
        }
        Command::Photo(PhotoCommand::Get { photo_ref, output }) => {
            commands::photo::get(client, &photo_ref, &output, as_json).await
        }
        Command::Report(ReportCommand::Triage(args)) => commands::report::triage(client, &args.id, args.action, as_json).await,
        Command::Report(ReportCommand::Activity(args)) => {
            let activity = commands::activity::ActivityArgs {
                from_ms: args.from,
                to_ms: args.to.unwrap_or_else(pingji_client::labels::now_ms),
                area: args.area.as_deref(),
                within_s: args.within.unwrap_or(0),
                csv: args.csv,
                svg_dir: args.svg.as_deref(),
            };
            commands::activity::show(client, activity, as_json).await
        }
        Command::Coverage(args) => commands::coverage::show(client, args.area.as_deref(), as_json).await,
        Command::Events(args) if args.follow => commands::events::follow(client, args.from.unwrap_or(0), as_json).await,
        Command::Events(args) => commands::events::history(client, args.from.unwrap_or(1), as_json).await,
        Command::Watch(args) => watch::run(connection.clone(), args.feed_start()).await,
        Command::Account(AccountCommand::Whoami) => commands::account::whoami(client, as_json).await,
        Command::Account(AccountCommand::Rotate { expires }) => {
            commands::account::rotate(client, expires.unwrap_or(0), as_json).await
        }
        Command::Account(AccountCommand::Add { name, role, expires }) => {
            commands::account::add(client, &name, role.to_pb(), expires.unwrap_or(0), as_json).await
        }
        Command::Account(AccountCommand::List) => commands::account::list(client, as_json).await,
        Command::Account(AccountCommand::Token { name, expires, .. }) => {
            commands::account::issue_token(client, &name, expires.unwrap_or(0), as_json).await
        }
        Command::Account(AccountCommand::Revoke { name }) => commands::account::revoke(client, &name, as_json).await,
        Command::Account(AccountCommand::Remove { name }) => commands::account::remove(client, &name, as_json).await,
        Command::Webhooks(command) => {
            let mut webhooks = connection.webhooks();
            let webhooks = &mut webhooks;
            match command {
                WebhooksCommand::Add { url, kinds, areas, secret, precise, from } => {
                    let new = commands::webhooks::NewWebhook { url, kinds, areas, secret, precise, from: from.unwrap_or(0) };
                    commands::webhooks::add(webhooks, new, as_json).await
                }
                WebhooksCommand::List => commands::webhooks::list(webhooks, as_json).await,
                WebhooksCommand::Remove { id } => commands::webhooks::remove(webhooks, &id, as_json).await,
                WebhooksCommand::DeadLetters { id, limit } => {
                    commands::webhooks::dead_letters(webhooks, &id, limit.unwrap_or(0), as_json).await
                }
                WebhooksCommand::Replay { id, from } => commands::webhooks::replay(webhooks, &id, from, as_json).await,
            }
        }
        Command::Cap(command) => {
            let mut cap = connection.cap();
            let cap = &mut cap;
            match command {
                CapCommand::Alerts => commands::cap::alerts(cap, as_json).await,
                CapCommand::Suggestions { all } => commands::cap::suggestions(cap, all, as_json).await,
                CapCommand::Approve { id } => commands::cap::approve(cap, &id, as_json).await,
                CapCommand::Dismiss { id, reason } => commands::cap::dismiss(cap, &id, &reason, as_json).await,
                CapCommand::TokenHash { feed_token } => commands::cap::token_hash(&feed_token),
            }
        }
        Command::Shelters(command) => {
            let mut shelters = connection.shelters();
            let client = &mut shelters;
            use commands::shelters as h;
            match command {
                SheltersCommand::Import { file } => h::import(client, &file, as_json).await,
                SheltersCommand::Export { file, area } => h::export(client, &file, &area).await,
                SheltersCommand::List { area, open } => h::list(client, &area, open, as_json).await,
                SheltersCommand::Open { shelter } => h::open(client, &shelter, as_json).await,
                SheltersCommand::Close { shelter, reason } => h::close(client, &shelter, &reason, as_json).await,
                SheltersCommand::Propose { incident, residents, needs } => {
                    h::propose(client, &incident, residents, &needs, as_json).await
                }
                SheltersCommand::Evacuate { incident, residents, needs, shelter, id } => {
                    h::evacuate(client, &incident, residents, &needs, &shelter, &id, as_json).await
                }
                SheltersCommand::CheckIn { count, evacuation, shelter, names } => {
                    h::check_in(client, count, &evacuation, &shelter, names, as_json).await
                }
                SheltersCommand::CheckOut { shelter, count } => h::check_out(client, &shelter, count, as_json).await,
                SheltersCommand::Release { evacuation, reason } => h::release(client, &evacuation, &reason, as_json).await,
                SheltersCommand::Evacuations { incident, shelter, holding } => {
                    h::evacuations(client, &incident, &shelter, holding, as_json).await
                }
                SheltersCommand::Occupancy { shelter } => h::occupancy(client, &shelter, as_json).await,
            }
        }
        Command::Supplies(command) => {
            let mut supplies = connection.supplies();
            let client = &mut supplies;
            use commands::supplies as s;
            match command {
                SuppliesCommand::Import { depots, stock } => s::import(client, depots, stock, as_json).await,
                SuppliesCommand::Export { depots, stock, area } => s::export(client, &depots, &stock, &area).await,
                SuppliesCommand::Depots { area } => s::depots(client, &area, as_json).await,
                SuppliesCommand::Levels { area } => s::levels(client, &area, as_json).await,
                SuppliesCommand::Request { incident, items, id } => s::request(client, &incident, &items, &id, as_json).await,
                SuppliesCommand::Propose { request } => s::propose(client, &request, as_json).await,
                SuppliesCommand::Confirm { request } => s::confirm(client, &request, as_json).await,
                SuppliesCommand::Dispatch { request, carrier } => s::dispatch(client, &request, &carrier, as_json).await,
                SuppliesCommand::Deliver { request } => s::deliver(client, &request, as_json).await,
                SuppliesCommand::Return { request, returned, in_repair } => {
                    s::settle(client, &request, &returned, in_repair, as_json).await
                }
                SuppliesCommand::Cancel { request, reason } => s::cancel(client, &request, &reason, as_json).await,
                SuppliesCommand::Requests { incident, open } => s::requests(client, &incident, open, as_json).await,
                SuppliesCommand::Move { from, to, item, quantity } => {
                    s::move_stock(client, &from, &to, &item, quantity, as_json).await
                }
                SuppliesCommand::Repair { unit, back } => s::repair(client, &unit, back, as_json).await,
            }
        }
        Command::Rosters(command) => {
            let mut rosters = connection.rosters();
            let client = &mut rosters;
            use commands::rosters as r;
            match command {
                RostersCommand::Now { area } => r::now(client, &area, as_json).await,
                RostersCommand::Shifts { area } => r::shifts(client, &area, as_json).await,
                RostersCommand::SetShift { id, area, duty, days, start, hours, people } => {
                    r::set_shift(client, r::ShiftArgs { id, area, duty, days, start, hours, people }, as_json).await
                }
                RostersCommand::RemoveShift { id } => r::remove_shift(client, &id, as_json).await,
                RostersCommand::Swap { shift, from, to, day } => r::swap(client, &shift, &from, &to, day, as_json).await,
                RostersCommand::Approve { swap } => r::decide(client, &swap, true, "", as_json).await,
                RostersCommand::Reject { swap, reason } => r::decide(client, &swap, false, &reason, as_json).await,
                RostersCommand::Swaps { agent } => r::swaps(client, &agent, as_json).await,
                RostersCommand::CheckIn { agent, shift } => r::check_in(client, &agent, &shift, as_json).await,
                RostersCommand::CheckOut { agent } => r::check_out(client, &agent, as_json).await,
                RostersCommand::Ics { agent, days, output } => r::ics(client, &agent, days, output.as_deref()).await,
            }
        }
    }
}

/// A usage error shown the way clap shows its own (exit code 2).
fn usage_error(kind: clap::error::ErrorKind, message: &str) -> ConsoleError {
    ConsoleError::Usage(Cli::command().error(kind, message))
}
