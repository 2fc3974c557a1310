//! The command line: every command and flag of `pingji`, and the parsers of
//! the values that clap cannot check by itself (coordinates, grades).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pingji_client::args::ConnectArgs;
use pingji_client::roster_csv::{ROLES, role_from_name, role_name, travel_mode_from_name};
use pingji_proto::v1 as pb;

/// Pingji operator console: areas, roster, incidents, modes, plans,
/// call-ups, field reports, coverage and the event record of a running
/// dispatcher, and `pingji watch`, a live view.
#[derive(Debug, Parser)]
#[command(name = "pingji", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, before or after the command name.
#[derive(Debug, Args, Clone)]
pub struct GlobalArgs {
    /// --server, --ca, --client-cert, --client-key, --connect-timeout,
    /// --timeout: the same flags as the field agent's and `drill live`'s.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Your operator token (pjo_NAME_…), sent as `authorization: Bearer` on
    /// every call; the dispatcher records you as the actor of what you
    /// change. Prefer the environment variable: a flag shows in the process
    /// list and the shell history
    #[arg(long, global = true, env = "PINGJI_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<OperatorToken>,
    /// With one shard per district: the district whose shard the command is
    /// for (lists, watches, switches); any dispatcher sends it to that
    /// shard's owner. Commands naming a place or an id find their shard
    /// without it
    #[arg(long, global = true, value_name = "DISTRICT")]
    pub shard: Option<String>,
    /// Gone: the dispatcher records the account of the token. Kept hidden so
    /// that an old script is told what to use instead
    #[arg(long, global = true, hide = true, value_name = "NAME")]
    pub operator: Option<String>,
    /// Print JSON for scripts instead of tables (`events --follow`: one JSON
    /// object per line)
    #[arg(long, global = true)]
    pub json: bool,
}

/// An operator token as given on the command line: a secret, so its debug
/// form hides it. Checked only when it is sent (see
/// [`crate::connection::BearerToken`]), so that a refusal never echoes it the
/// way clap echoes a bad value.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorToken(String);

impl OperatorToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for OperatorToken {
    fn from(token: String) -> Self {
        OperatorToken(token)
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("OperatorToken(<redacted>)")
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The area hierarchy (city, districts, streets, communities, grids)
    #[command(subcommand)]
    Areas(AreasCommand),
    /// The roster: who can be dispatched
    #[command(subcommand)]
    Roster(RosterCommand),
    /// Incidents: create, list, show, cancel, close
    #[command(subcommand)]
    Incident(IncidentCommand),
    /// Normal / emergency mode of areas
    #[command(subcommand)]
    Mode(ModeCommand),
    /// People near a point
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Emergency plans (应急预案): import, list, activate, deactivate
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Call-ups of reserves and the roll-call
    #[command(subcommand)]
    Callup(CallupCommand),
    /// Field reports waiting for triage: accept, merge or reject
    #[command(subcommand)]
    Report(ReportCommand),
    /// Service centres' 15-minute circle per community, and people available
    /// per grid against its minimum
    Coverage(CoverageArgs),
    /// The event record: history, or follow it live
    Events(EventsArgs),
    /// Full-screen live view: map, open incidents, event feed
    Watch(WatchArgs),
    /// Messages to people in the field: send, list (with replies and who read them)
    #[command(subcommand)]
    Message(MessageCommand),
    /// Photos people sent with completions and field reports (dispatcher):
    /// `incident show` lists their references
    #[command(subcommand)]
    Photo(PhotoCommand),
    /// Operator accounts and their tokens: whoami, rotate, add, list,
    /// token, revoke, remove
    #[command(subcommand)]
    Account(AccountCommand),
    /// Partner systems' webhooks (admin): add, list, remove, dead-letters,
    /// replay
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// CAP 1.2 alerts: those issued and received, and the suggestions
    /// received alerts became (approve and dismiss: commander)
    #[command(subcommand)]
    Cap(CapCommand),
    /// Supplies and equipment: depots and stock (import, export, levels),
    /// incidents' requests (request, propose, confirm, dispatch, deliver,
    /// return, cancel)
    #[command(subcommand)]
    Supplies(SuppliesCommand),
    /// Duty rosters (值班排班): who is on duty now, shifts, swaps,
    /// check-in and check-out, a person's calendar (.ics)
    #[command(subcommand)]
    Rosters(RostersCommand),
    /// Shelters (避难场所): import, export, list, open, close; evacuations
    /// of residents to them (propose, evacuate, check-in, check-out,
    /// release) and occupancy over time
    #[command(subcommand)]
    Shelters(SheltersCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum RostersCommand {
    /// Who is on duty now, per shift running (in an area and below it)
    Now {
        #[arg(long, default_value = "")]
        area: String,
    },
    /// The shifts of an area and below it, or all
    Shifts {
        #[arg(long, default_value = "")]
        area: String,
    },
    /// Add or replace a shift (commander): `--days 1-5 --start 08:00 --hours 24`
    SetShift {
        id: String,
        #[arg(long)]
        area: String,
        /// duty_officer, on_call_grid_leader, ...
        #[arg(long)]
        duty: String,
        /// ISO weekdays: 1-7, mon-fri, 1,3,5, daily
        #[arg(long, default_value = "daily")]
        days: String,
        /// Local start time, HH:MM
        #[arg(long)]
        start: String,
        /// Length in hours (up to 24)
        #[arg(long)]
        hours: f64,
        /// Who works it: ids separated by commas
        #[arg(long, default_value = "")]
        people: String,
    },
    RemoveShift {
        id: String,
    },
    /// Ask for a swap of today's (or `--day`'s) occurrence: FROM gives it to TO
    Swap {
        shift: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// The occurrence's local date as days since 1970-01-01 (default: today)
        #[arg(long)]
        day: Option<i64>,
    },
    /// Approve a swap (commander)
    Approve {
        swap: String,
    },
    /// Reject a swap (commander)
    Reject {
        swap: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    Swaps {
        #[arg(long, default_value = "")]
        agent: String,
    },
    /// Record that a person started their shift
    CheckIn {
        agent: String,
        #[arg(long)]
        shift: String,
    },
    CheckOut {
        agent: String,
    },
    /// A person's shifts as an iCalendar file (RFC 5545)
    Ics {
        agent: String,
        #[arg(long, default_value_t = 28)]
        days: u32,
        /// Write it here instead of to standard output
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SheltersCommand {
    /// Import shelters from CSV (commander); a bad line imports nothing
    Import {
        /// id,name,lon,lat,area_id,capacity,facilities (accessible;medical;kitchen;power;pets)
        file: PathBuf,
    },
    /// Export shelters to CSV (the import's format)
    Export {
        file: PathBuf,
        /// Only the shelters in this area
        #[arg(long, default_value = "")]
        area: String,
    },
    /// Shelters with their occupancy
    List {
        #[arg(long, default_value = "")]
        area: String,
        /// Open shelters only
        #[arg(long)]
        open: bool,
    },
    /// Open a shelter (commander)
    Open { shelter: String },
    /// Close a shelter to new evacuations (commander)
    Close {
        shelter: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The open shelters for a group, nearest first (changes nothing)
    Propose {
        incident: String,
        residents: u32,
        /// What the group needs: accessible (wheelchair), medical, ...
        #[arg(long, default_value = "")]
        needs: String,
    },
    /// Reserve places for a group at the nearest open shelter with room (or --shelter)
    Evacuate {
        incident: String,
        residents: u32,
        #[arg(long, default_value = "")]
        needs: String,
        #[arg(long, default_value = "")]
        shelter: String,
        /// Name the evacuation: the same command again (a retry) makes it once
        #[arg(long, default_value = "")]
        id: String,
    },
    /// Check arrivals in: of an evacuation, or walk-ins at a shelter
    CheckIn {
        count: u32,
        #[arg(long, default_value = "")]
        evacuation: String,
        #[arg(long, default_value = "")]
        shelter: String,
        /// A resident's name (optional, personal data: masked everywhere)
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// People leaving a shelter
    CheckOut { shelter: String, count: u32 },
    /// Give back the places an evacuation still holds
    Release {
        evacuation: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Evacuations (all, or an incident's or a shelter's)
    Evacuations {
        #[arg(long, default_value = "")]
        incident: String,
        #[arg(long, default_value = "")]
        shelter: String,
        /// Only those still holding places
        #[arg(long)]
        holding: bool,
    },
    /// A shelter's occupancy over time
    Occupancy { shelter: String },
}

#[derive(Debug, Clone, Subcommand)]
pub enum SuppliesCommand {
    /// Import depots and stock from CSV (commander); a bad line imports nothing
    Import {
        /// id,name,lon,lat,area_id,keeper
        #[arg(long)]
        depots: Option<PathBuf>,
        /// depot_id,item_id,kind,quantity,minimum,unit_id,status,capacity
        #[arg(long)]
        stock: Option<PathBuf>,
    },
    /// Export depots and stock to CSV files (the import's format)
    Export {
        #[arg(long)]
        depots: PathBuf,
        #[arg(long)]
        stock: PathBuf,
        /// Only the depots in this area
        #[arg(long, default_value = "")]
        area: String,
    },
    /// Depots with their stock and units
    Depots {
        #[arg(long, default_value = "")]
        area: String,
    },
    /// Each item's total over an area's depots
    Levels {
        #[arg(long, default_value = "")]
        area: String,
    },
    /// An incident asks for items: ITEM=QUANTITY ...
    Request {
        incident: String,
        #[arg(required = true)]
        items: Vec<String>,
        /// Name the request: the same command again (a retry) makes it once
        #[arg(long, default_value = "")]
        id: String,
    },
    /// The nearest depots that have a request's items (changes nothing)
    Propose {
        request: String,
    },
    /// Reserve the proposal of now
    Confirm {
        request: String,
    },
    /// The items leave their depots (with the person carrying them)
    Dispatch {
        request: String,
        #[arg(long, default_value = "")]
        carrier: String,
    },
    Deliver {
        request: String,
    },
    /// Settle a request: ITEM=QUANTITY of consumables coming back (the rest were used)
    Return {
        request: String,
        returned: Vec<String>,
        /// Units coming back broken
        #[arg(long = "in-repair")]
        in_repair: Vec<String>,
    },
    Cancel {
        request: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Supply requests (all, or one incident's)
    Requests {
        #[arg(long, default_value = "")]
        incident: String,
        #[arg(long)]
        open: bool,
    },
    /// Move a consumable between depots (commander)
    Move {
        from: String,
        to: String,
        item: String,
        quantity: u64,
    },
    /// Take a unit out for repair (--back: in service again)
    Repair {
        unit: String,
        #[arg(long)]
        back: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum CapCommand {
    /// The CAP alerts issued (by public plans) and received (from feeds)
    Alerts,
    /// Suggestions made of received alerts (pending ones; --all for every one)
    Suggestions {
        #[arg(long)]
        all: bool,
    },
    /// Approve a suggestion: its streets switch to the grade and its plan activates
    Approve {
        /// The suggestion's id (cap-0001)
        id: String,
    },
    /// Dismiss a suggestion: nothing changes but the record of it
    Dismiss {
        id: String,
        /// Why (journaled)
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Print the SHA-256 of a feed's token, for `[[cap.feeds]] token_sha256`
    TokenHash {
        /// The token the feed will send as `Authorization: Bearer TOKEN`
        #[arg(value_name = "TOKEN", env = "PINGJI_CAP_FEED_TOKEN", hide_env_values = true)]
        feed_token: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksCommand {
    /// Register a partner's endpoint: the matching events are posted to it
    /// as signed CloudEvents, in order (see docs/integrations.md)
    Add {
        /// The endpoint, http:// or https://
        url: String,
        /// Only these event kinds, comma-separated (e.g.
        /// incident_reported,assigned,incident_closed); default every kind
        /// sent to partners
        #[arg(long, value_name = "KIND,..", value_delimiter = ',')]
        kinds: Vec<String>,
        /// Only events in or above these areas, comma-separated; default everywhere
        #[arg(long, value_name = "AREA,..", value_delimiter = ',')]
        areas: Vec<String>,
        /// The signing secret (at least 16 characters); default: one is
        /// made and printed once
        #[arg(long, value_name = "SECRET", env = "PINGJI_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Send people's positions as recorded, not to about 1 km
        #[arg(long)]
        precise: bool,
        /// Start from this journal seq (default: new events only)
        #[arg(long, value_name = "SEQ")]
        from: Option<u64>,
    },
    /// The registered webhooks, their cursors and failures
    List,
    /// Stop delivering to a webhook and forget it
    Remove {
        /// The webhook's id (wh_…)
        id: String,
    },
    /// The events given up on for a webhook, oldest first
    DeadLetters {
        id: String,
        /// At most this many (default and most 1000)
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Deliver again from a seq on, in order (after the partner is fixed)
    Replay {
        id: String,
        #[arg(long, value_name = "SEQ")]
        from: u64,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum AccountCommand {
    /// Who your token says you are, your role, and when your token expires
    Whoami,
    /// Replace your own token: the new one is printed once and the old one
    /// stops working at once
    Rotate {
        /// How long the new token works: 90d, 12h, 30m, 2w (default 90
        /// days, at most 1098 days)
        #[arg(long, value_name = "LIFETIME", value_parser = parse_lifetime)]
        expires: Option<u64>,
    },
    /// Add an operator account (admin); its token is printed once: hand it
    /// over by a safe channel
    Add {
        /// The account's name: ASCII letters, digits, '.', '-' or '@', e.g.
        /// li.na
        name: String,
        /// What the account may do; each role may do all the ones before it
        /// may
        #[arg(long, value_enum)]
        role: OperatorRoleChoice,
        /// How long the token works: 90d, 12h, 30m, 2w (default 90 days, at
        /// most 1098 days)
        #[arg(long, value_name = "LIFETIME", value_parser = parse_lifetime)]
        expires: Option<u64>,
    },
    /// The operator accounts: role, when made, when their token expires
    /// (admin); never the tokens
    List,
    /// Issue another operator a new token (admin), e.g. when theirs expired
    /// or was revoked: printed once; the old one stops working at once
    Token {
        /// The account's name
        name: String,
        /// Confirm: issue a new token, replacing the old one
        #[arg(long)]
        rotate: bool,
        /// How long the new token works: 90d, 12h, 30m, 2w (default 90
        /// days, at most 1098 days)
        #[arg(long, value_name = "LIFETIME", value_parser = parse_lifetime)]
        expires: Option<u64>,
    },
    /// Revoke an operator's token (admin): it stops working at once, their
    /// open streams (watch, events --follow) end; the account stays until
    /// given a new token or removed
    Revoke {
        /// The account's name
        name: String,
    },
    /// Remove an operator account (admin); its token stops working at once
    Remove {
        /// The account's name
        name: String,
    },
}

/// The operator roles, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OperatorRoleChoice {
    /// Reads; people's phones masked, locations to about 1 km
    Viewer,
    /// Also precise personal data (audited), incidents, field reports
    Dispatcher,
    /// Also modes, plans, call-ups
    Commander,
    /// Also the map, the roster, plan files, accounts and tokens
    Admin,
}

impl OperatorRoleChoice {
    pub fn to_pb(self) -> pb::OperatorRole {
        match self {
            OperatorRoleChoice::Viewer => pb::OperatorRole::Viewer,
            OperatorRoleChoice::Dispatcher => pb::OperatorRole::Dispatcher,
            OperatorRoleChoice::Commander => pb::OperatorRole::Commander,
            OperatorRoleChoice::Admin => pb::OperatorRole::Admin,
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum AreasCommand {
    /// Import areas and service centres from a GeoJSON FeatureCollection.
    /// Prints what changes (added, changed, retired) and every problem of
    /// the file at once; errors import nothing
    Import {
        /// The GeoJSON file (contract in scenarios/maps/README.md)
        file: PathBuf,
        /// Check the file and print what would change; change nothing
        #[arg(long)]
        dry_run: bool,
        /// The file is the whole map: retire the known areas it lacks
        /// (people at home in them are re-homed by their home position)
        #[arg(long)]
        replace: bool,
        /// The feature property holding the area id (e.g. adcode)
        #[arg(long, value_name = "PROPERTY")]
        id_property: Option<String>,
        /// The feature property holding the name
        #[arg(long, value_name = "PROPERTY")]
        name_property: Option<String>,
        /// The feature property holding the level
        #[arg(long, value_name = "PROPERTY")]
        level_property: Option<String>,
        /// The feature property holding the parent's id (parents left out
        /// are found by containment)
        #[arg(long, value_name = "PROPERTY")]
        parent_property: Option<String>,
        /// The level of features that have none (e.g. district for a file
        /// of district boundaries)
        #[arg(long, value_enum)]
        level: Option<LevelChoice>,
    },
    /// Retire an area: kept for history, nothing is placed in it any more;
    /// people at home in it are re-homed by their home position
    Retire {
        /// The area's id
        area: String,
        /// Retire every area below it too
        #[arg(long)]
        with_children: bool,
        /// Print what would be retired; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List areas with their modes
    List {
        /// Only areas of this level
        #[arg(long, value_enum)]
        level: Option<LevelChoice>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum RosterCommand {
    /// Import people from a roster CSV (columns in scenarios/maps/README.md).
    /// Each person imported gets a token for their field agent, shown only
    /// this once: with --tokens-out they are written to a new file readable
    /// only by you; without it stdout gets only the tokens as CSV
    /// (agent_id,token), and the summary and a warning go to stderr, so
    /// that `> tokens.csv` keeps them (with --json: a `tokens` list)
    Import {
        /// The CSV file (UTF-8)
        file: PathBuf,
        /// Import the good rows and list the bad ones instead of importing
        /// nothing when a row is bad
        #[arg(long)]
        skip_bad: bool,
        /// Write the people's tokens to this new file as CSV
        /// (agent_id,token), created readable by you only (mode 0600); an
        /// existing file is never overwritten. It is created before the
        /// import, so that tokens are never issued with nowhere to go
        #[arg(long, value_name = "FILE")]
        tokens_out: Option<PathBuf>,
    },
    /// Add one person to the roster, or replace the record of the person
    /// with this id. A new person's token is printed once; a person already
    /// on the roster keeps theirs
    Add(AddPersonArgs),
    /// Issue a new token for a person (admin): the old one stops working and
    /// their live session, if any, is ended. Tokens are shown only once, so
    /// there is no way to see a current one: --rotate (or --link) is required.
    /// With --link: a sign-in link for the phone app and its QR code instead
    /// of the bare token. The link holds the token: it is a secret, give it
    /// to the person alone (scanned from this screen, or sent to them only)
    Token {
        /// The person's id, e.g. p0001
        id: String,
        /// Confirm: issue a new token, replacing the old one
        #[arg(long)]
        rotate: bool,
        /// Issue a new token (as --rotate) and print the sign-in link to the
        /// phone app on the dispatcher's web port, with a QR code
        #[arg(long)]
        link: bool,
        /// The web port's address as the phone reaches it, e.g.
        /// https://pingji.example.gov.cn:8443 (the dispatcher's --web)
        #[arg(long, env = "PINGJI_WEB_URL", value_name = "URL", requires = "link")]
        web_url: Option<String>,
    },
    /// List people on the roster
    List {
        /// Only people whose home is in this area (or below it)
        #[arg(long, value_name = "ID")]
        area: Option<String>,
        /// Only people with this status
        #[arg(long, value_enum)]
        status: Option<StatusChoice>,
        /// Only people connected now
        #[arg(long)]
        connected: bool,
        /// At most this many people (default: all)
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Issue tokens for many people at once (admin), written to a new file
    /// readable only by you (mode 0600) as CSV (agent_id,token), shown this
    /// once: people without a token (loaded with the dispatcher's --agents),
    /// or the people a CSV names. Stdout says how many and where, never the
    /// tokens
    Tokens {
        /// Everyone on the roster who has no token yet
        #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
        without_token: bool,
        /// A CSV file whose first column holds the people's ids (a header
        /// row `id` or `agent_id` is skipped)
        #[arg(long, value_name = "FILE")]
        ids: Option<PathBuf>,
        /// The new file to write the tokens to (an existing file is never
        /// overwritten)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// With --ids: replace the tokens of people who have one (their old
        /// token stops working and their live session ends); without it they
        /// keep theirs and are listed
        #[arg(long, conflicts_with = "without_token")]
        rotate: bool,
    },
    /// Show one person, with phone and live location
    Show {
        /// The person's id, e.g. p0001
        id: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AddPersonArgs {
    /// The person's id, e.g. p0101
    pub id: String,
    /// Their name
    #[arg(long)]
    pub name: String,
    /// Their role, as in the roster CSV: sunk_cadre, registered_member,
    /// volunteer, ...
    #[arg(long, value_parser = parse_role)]
    pub role: pb::Role,
    /// A skill they have (repeat for several)
    #[arg(long = "skill", value_name = "SKILL")]
    pub skills: Vec<String>,
    /// Their phone number
    #[arg(long, default_value = "")]
    pub phone: String,
    /// The grid (or community) they live in, e.g. d1-s1-c1-g1
    #[arg(long, value_name = "ID", default_value = "")]
    pub home_area: String,
    /// Their home, as LON,LAT in degrees
    #[arg(long, value_name = "LON,LAT", value_parser = parse_location, allow_hyphen_values = true)]
    pub home: Option<pb::Location>,
    /// How they get about: walk (the default), bike or car
    #[arg(long, value_parser = parse_travel_mode, default_value = "walk")]
    pub travel_mode: pb::TravelMode,
    /// Start them off duty instead of available
    #[arg(long)]
    pub off_duty: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum IncidentCommand {
    /// Report an incident; the dispatcher starts offering it at once
    Create(CreateIncidentArgs),
    /// List incidents
    List {
        /// Only open incidents (not cancelled or closed)
        #[arg(long)]
        open: bool,
    },
    /// Show one incident with its offers and assignments
    Show {
        /// The incident's id, e.g. inc-000001
        id: String,
    },
    /// Why these people were offered the incident and the others were not:
    /// the ranked candidates, and the nearest people passed over with the reason
    Why {
        /// The incident's id, e.g. inc-000001
        id: String,
        /// Answer for this one person only
        #[arg(long, value_name = "AGENT_ID")]
        agent: Option<String>,
        /// How many candidates to list, best first (at most 200)
        #[arg(long, default_value_t = 10)]
        candidates: u32,
        /// How many of the people passed over to list, nearest first (at most 500)
        #[arg(long = "passed-over", default_value_t = 20)]
        passed_over: u32,
    },
    /// Merge an open incident that repeats another into it (the other goes on
    /// with both reporters and one timeline)
    Merge {
        /// The duplicate, e.g. inc-000002: it ends as merged
        id: String,
        /// The open incident that goes on
        #[arg(long)]
        into: String,
    },
    /// Every event of one incident, oldest first, from the journal
    Timeline {
        /// The incident's id, e.g. inc-000001
        id: String,
    },
    /// Write an incident and its timeline as a NENA EIDO (JSON) for another system
    ExportEido {
        /// The incident's id, e.g. inc-000001
        id: String,
        /// Write the EIDO to this file instead of stdout
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Report a NENA EIDO (JSON) from another system as a new incident
    ImportEido {
        /// The EIDO file
        file: std::path::PathBuf,
        /// The category for an incident type not in the mapping table (docs/integrations.md)
        #[arg(long)]
        default_category: Option<String>,
        /// Report it even where nobody could be offered it
        #[arg(long)]
        force: bool,
    },
    /// Cancel an open incident (releases the people assigned)
    Cancel {
        id: String,
        /// Why it is cancelled
        #[arg(long)]
        reason: String,
    },
    /// Close an open incident with feedback (the result of the handling)
    Close {
        id: String,
        /// What was done: the result feedback
        #[arg(long)]
        feedback: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CreateIncidentArgs {
    /// Where, as LON,LAT in degrees (WGS84), e.g. 120.15,30.27
    #[arg(long, value_name = "LON,LAT", value_parser = parse_location, allow_hyphen_values = true)]
    pub at: pb::Location,
    /// What kind of incident, e.g. fire, flood, medical, elder_care
    #[arg(long)]
    pub category: String,
    /// 1 (most urgent) to 4
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=4))]
    pub priority: i32,
    /// A skill every person sent must have (repeat for several)
    #[arg(long = "skill", value_name = "SKILL")]
    pub skills: Vec<String>,
    /// How many people are needed
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub need: u32,
    /// What is going on, for the people offered the incident
    #[arg(long, default_value = "")]
    pub description: String,
    /// Choose the id yourself (default: the dispatcher assigns inc-NNNNNN)
    #[arg(long)]
    pub id: Option<String>,
    /// Report it even where nobody could be offered it: a place outside
    /// every area of the map, or a skill nobody on the roster has (both
    /// refused otherwise, as likely typing mistakes)
    #[arg(long)]
    pub force: bool,
    /// Create it even if open incidents nearby may be the same one (the
    /// console looks for them first and otherwise asks)
    #[arg(long, conflicts_with = "merge_into")]
    pub anyway: bool,
    /// The report repeats this open incident: record it merged into that
    /// one, offered to nobody
    #[arg(long, value_name = "INCIDENT_ID")]
    pub merge_into: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ModeCommand {
    /// Switch an area to normal or to an emergency grade
    Set(SetModeArgs),
    /// Areas not in normal mode, with their own and effective mode
    Show,
}

#[derive(Debug, Clone, Args)]
pub struct SetModeArgs {
    /// The area's id, e.g. d1 or d1-s1
    pub area: String,
    /// normal or emergency
    #[arg(value_enum)]
    pub mode: ModeChoice,
    /// The emergency grade: I (red, most severe), II (orange), III (yellow)
    /// or IV (blue); required for emergency, refused for normal
    #[arg(long, value_parser = parse_grade)]
    pub grade: Option<Grade>,
    /// Why: recorded with the switch
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AgentsCommand {
    /// The nearest people to a point, by estimated arrival time
    Nearby {
        /// Where, as LON,LAT in degrees
        #[arg(long, value_name = "LON,LAT", value_parser = parse_location, allow_hyphen_values = true)]
        at: pb::Location,
        /// How many people
        #[arg(short, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        k: u32,
        /// A skill they must have (repeat for several)
        #[arg(long = "skill", value_name = "SKILL")]
        skills: Vec<String>,
        /// Only people available now
        #[arg(long)]
        available: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum PlanCommand {
    /// Load plan files (TOML, format in docs/plans.md); a plan already
    /// loaded under the same id is replaced
    Import {
        /// One or more plan files
        #[arg(required = true, value_name = "FILE.toml")]
        files: Vec<PathBuf>,
    },
    /// The plans loaded, and their activations (open ones first)
    List,
    /// Activate a plan on an area: its tasks become incidents at once and its
    /// call-up goes out
    Activate {
        /// The plan's id, e.g. flood-ii
        plan_id: String,
        /// The area's id, e.g. d1-s1
        area: String,
        /// Why: recorded with the activation
        #[arg(long)]
        reason: String,
    },
    /// End a plan activation: its open tasks are cancelled, their people
    /// released, its call-up stood down
    Deactivate {
        /// The activation's id, as `plan list` shows it
        activation_id: String,
        /// Why: recorded, and told to the people released
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum CallupCommand {
    /// Call up the reserves whose home is in an area
    Issue {
        /// The area's id, e.g. d1-s1-c1
        area: String,
        /// Why: sent to the people called up
        #[arg(long)]
        reason: String,
        /// A role to call up (repeat for several), as in the roster CSV:
        /// sunk_cadre, registered_member, ... Default: the reserves the
        /// dispatcher's policy names
        #[arg(long = "role", value_name = "ROLE", value_parser = parse_role)]
        roles: Vec<pb::Role>,
        /// Seconds to check in (default: the policy's deadline for the mode
        /// in force there)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=86_400))]
        deadline_s: Option<u32>,
    },
    /// The roll-call: who was called, who checked in and when, who is missing
    Status {
        /// Only call-ups of this area or of an area inside it
        area: Option<String>,
        /// Only call-ups not yet stood down
        #[arg(long)]
        open: bool,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum MessageCommand {
    /// Send a message (dispatcher): to one person, an incident's team (the
    /// people holding or offered it now) or everyone in an area
    Send {
        /// To this person
        #[arg(long, value_name = "ID", group = "to", required = true)]
        to_agent: Option<String>,
        /// To the people on this incident
        #[arg(long, value_name = "ID", group = "to")]
        incident: Option<String>,
        /// To everyone at home in or located in this area
        #[arg(long, value_name = "ID", group = "to")]
        area: Option<String>,
        /// What to say (at most 2,000 characters), e.g. "stand by"
        text: String,
    },
    /// The messages sent, newest last, with replies and read receipts
    List {
        /// Only messages that reached this person
        #[arg(long, value_name = "ID")]
        agent: Option<String>,
        /// Only messages to this incident's team
        #[arg(long, value_name = "ID")]
        incident: Option<String>,
        /// At most this many (default 100, at most 1000)
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum PhotoCommand {
    /// Save a photo to a file (never over an existing one)
    Get {
        /// The photo's reference, as `incident show` lists it (sha256:…)
        photo_ref: String,
        /// The file to write; - for stdout
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: std::path::PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum ReportCommand {
    /// Decide on a field report: accept it (it is dispatched), merge it into
    /// an open incident, or reject it with a reason
    Triage(TriageArgs),
    /// Who served (网格员考核): per person and per community and grid, from
    /// the journal; per-person figures for commanders and admins only
    Activity(ActivityReportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ActivityReportArgs {
    /// The period's start, UTC: 2026-03-01, 2026-03-01T08:00 or ms since 1970
    #[arg(long, value_name = "TIME", value_parser = crate::commands::activity::parse_utc_time)]
    pub from: i64,
    /// The period's end (not included), UTC (default: now)
    #[arg(long, value_name = "TIME", value_parser = crate::commands::activity::parse_utc_time)]
    pub to: Option<i64>,
    /// An area (with its sub-areas), e.g. d1-s1-c1 (default: everywhere)
    #[arg(long, value_name = "AREA")]
    pub area: Option<String>,
    /// The target for "staffed in time", in seconds (default: 600)
    #[arg(long, value_name = "SECONDS")]
    pub within: Option<u32>,
    /// Print CSV: the people's table, a blank line, the areas' table
    #[arg(long)]
    pub csv: bool,
    /// Also write the charts (offers.svg, accept.svg, staffed.svg) and
    /// people.csv, areas.csv into this directory
    #[arg(long, value_name = "DIR")]
    pub svg: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct TriageArgs {
    /// The report's id (the incident it became), e.g. inc-000007
    pub id: String,
    #[command(subcommand)]
    pub action: TriageAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TriageAction {
    /// Dispatch it; the reporter is told
    Accept {
        /// 1 (most urgent) to 4 (default: keep the report's, 3)
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..=4))]
        priority: Option<i32>,
        /// How many people are needed (default: keep, 1)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        need: Option<u32>,
        /// A skill every person sent must have (repeat for several)
        #[arg(long = "skill", value_name = "SKILL")]
        skills: Vec<String>,
    },
    /// It is about an incident already open: merge it into that one
    Merge {
        /// The open incident it is about
        into_id: String,
    },
    /// Do nothing about it; the reporter is told why
    Reject {
        /// Why: sent to the reporter
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct CoverageArgs {
    /// Only communities and grids in this area (default: the whole map)
    pub area: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Keep printing new events as they happen (stop with Ctrl-C)
    #[arg(long)]
    pub follow: bool,
    /// First sequence number to print. Default: 1 (the whole record); with
    /// --follow the default is only events from now on
    #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..))]
    pub from: Option<u64>,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Replay the record from this sequence number into the feed first
    /// (1: all of it, which also gives the reasons of earlier mode
    /// switches). Default: the last --last events
    #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "last")]
    pub from: Option<u64>,
    /// Start the feed with the most recent events, read from this many
    /// back (0: only events from now on). The audit of reads of personal
    /// data is left out of the feed, and an open watch adds one every 2 s
    /// (its own reads of people's locations): hence a long way back
    #[arg(long, value_name = "N", default_value_t = crate::watch::app::FEED_LINES as u64)]
    pub last: u64,
}

impl WatchArgs {
    /// Where the live view's feed starts.
    pub fn feed_start(&self) -> FeedStart {
        match self.from {
            Some(seq) => FeedStart::From(seq),
            None => FeedStart::Last(self.last),
        }
    }
}

/// Where the event feed of `pingji watch` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedStart {
    /// From this sequence number on.
    From(u64),
    /// The most recent this many events, then new ones.
    Last(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LevelChoice {
    City,
    District,
    Street,
    Community,
    Grid,
    Building,
}

impl LevelChoice {
    pub fn to_pb(self) -> pb::AreaLevel {
        match self {
            LevelChoice::City => pb::AreaLevel::City,
            LevelChoice::District => pb::AreaLevel::District,
            LevelChoice::Street => pb::AreaLevel::Street,
            LevelChoice::Community => pb::AreaLevel::Community,
            LevelChoice::Grid => pb::AreaLevel::Grid,
            LevelChoice::Building => pb::AreaLevel::Building,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusChoice {
    Available,
    Busy,
    OffDuty,
}

impl StatusChoice {
    pub fn to_pb(self) -> pb::AgentStatus {
        match self {
            StatusChoice::Available => pb::AgentStatus::Available,
            StatusChoice::Busy => pb::AgentStatus::Busy,
            StatusChoice::OffDuty => pb::AgentStatus::OffDuty,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeChoice {
    Normal,
    Emergency,
}

/// China's four emergency grades; I is the most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grade {
    I,
    Ii,
    Iii,
    Iv,
}

impl Grade {
    pub fn to_pb(self) -> pb::Mode {
        match self {
            Grade::I => pb::Mode::EmergencyI,
            Grade::Ii => pb::Mode::EmergencyIi,
            Grade::Iii => pb::Mode::EmergencyIii,
            Grade::Iv => pb::Mode::EmergencyIv,
        }
    }
}

/// The mode to ask for: an emergency needs a grade, normal takes none.
pub fn requested_mode(mode: ModeChoice, grade: Option<Grade>) -> Result<pb::Mode, String> {
    match (mode, grade) {
        (ModeChoice::Emergency, Some(grade)) => Ok(grade.to_pb()),
        (ModeChoice::Emergency, None) => {
            Err("an emergency needs a grade: add --grade I, II, III or IV (I is the most severe)".to_string())
        }
        (ModeChoice::Normal, None) => Ok(pb::Mode::Normal),
        (ModeChoice::Normal, Some(_)) => {
            Err("normal mode has no grade: drop --grade, or say `emergency` to switch to an emergency grade".to_string())
        }
    }
}

/// Parses "LON,LAT" in degrees (spaces around either number are allowed).
pub fn parse_location(text: &str) -> Result<pb::Location, String> {
    let example = "give LON,LAT in degrees, e.g. 120.15,30.27";
    let Some((lon_text, lat_text)) = text.split_once(',') else {
        return Err(format!("\"{text}\" is not LON,LAT; {example}"));
    };
    let parse = |what: &str, part: &str| -> Result<f64, String> {
        let value: f64 = part.trim().parse().map_err(|_| format!("{what} \"{}\" is not a number; {example}", part.trim()))?;
        if !value.is_finite() {
            return Err(format!("{what} \"{}\" is not a finite number; {example}", part.trim()));
        }
        Ok(value)
    };
    let lon = parse("longitude", lon_text)?;
    let lat = parse("latitude", lat_text)?;
    if !(-90.0..=90.0).contains(&lat) {
        let hint = if (-90.0..=90.0).contains(&lon) && (-180.0..=180.0).contains(&lat) {
            " (did you give LAT,LON? longitude comes first)"
        } else {
            ""
        };
        return Err(format!("latitude {lat} is outside -90..90{hint}; {example}"));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(format!("longitude {lon} is outside -180..180; {example}"));
    }
    Ok(pb::Location::wgs84(lon, lat))
}

/// Parses a token lifetime, a whole number with a unit: `s`, `m`, `h`, `d`
/// or `w` (`90d`, `12h`); returns seconds. The dispatcher checks the bounds.
pub fn parse_lifetime(text: &str) -> Result<u64, String> {
    let example = "give a number with a unit, e.g. 90d, 12h, 30m or 2w";
    let text = text.trim();
    let split = text.find(|character: char| !character.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("\"{text}\" is not a lifetime; {example}"))?;
    let seconds_per = match unit.to_ascii_lowercase().as_str() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "" => return Err(format!("\"{text}\" has no unit; {example}")),
        _ => return Err(format!("\"{text}\" has an unknown unit \"{unit}\"; {example}")),
    };
    match number.checked_mul(seconds_per) {
        Some(0) => Err(format!("a token that expires at once is no use; {example}")),
        Some(seconds) => Ok(seconds),
        None => Err(format!("\"{text}\" is too long; {example}")),
    }
}

/// Parses an emergency grade: I, II, III, IV (any case), 1-4, or the grade's
/// colour (red, orange, yellow, blue).
pub fn parse_grade(text: &str) -> Result<Grade, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "i" | "1" | "red" => Ok(Grade::I),
        "ii" | "2" | "orange" => Ok(Grade::Ii),
        "iii" | "3" | "yellow" => Ok(Grade::Iii),
        "iv" | "4" | "blue" => Ok(Grade::Iv),
        _ => {
            Err(format!("\"{text}\" is not an emergency grade; use I (red, most severe), II (orange), III (yellow) or IV (blue)"))
        }
    }
}

/// Parses a role as the roster CSV names it (`sunk_cadre`,
/// `registered_member`, ...; any case, `-` for `_`).
pub fn parse_role(text: &str) -> Result<pb::Role, String> {
    let name = text.trim().to_ascii_lowercase().replace('-', "_");
    role_from_name(&name).ok_or_else(|| format!("\"{text}\" is not a role; use one of {}", ROLES.map(role_name).join(", ")))
}

/// Parses a travel mode as the roster CSV names it (walk, bike, car; any
/// case).
pub fn parse_travel_mode(text: &str) -> Result<pb::TravelMode, String> {
    travel_mode_from_name(&text.trim().to_ascii_lowercase())
        .ok_or_else(|| format!("\"{text}\" is not a travel mode; use walk, bike or car"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pingji").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_lifetime_has_a_unit() {
        assert_eq!(parse_lifetime("90d"), Ok(90 * 86_400));
        assert_eq!(parse_lifetime("12h"), Ok(12 * 3600));
        assert_eq!(parse_lifetime(" 30M "), Ok(1800));
        assert_eq!(parse_lifetime("2w"), Ok(14 * 86_400));
        assert!(parse_lifetime("90").unwrap_err().contains("no unit"));
        assert!(parse_lifetime("3y").unwrap_err().contains("unknown unit"));
        assert!(parse_lifetime("0d").unwrap_err().contains("at once"));
        assert!(parse_lifetime("d").unwrap_err().contains("is not a lifetime"));
    }

    #[test]
    fn a_location_is_lon_then_lat() {
        let location = parse_location("120.15,30.27").expect("valid");
        assert_eq!((location.lon, location.lat), (120.15, 30.27));
        let spaced = parse_location(" -73.98 , 40.75 ").expect("valid with spaces");
        assert_eq!((spaced.lon, spaced.lat), (-73.98, 40.75));
    }

    #[test]
    fn a_bad_location_says_what_is_wrong() {
        assert!(parse_location("120.15").unwrap_err().contains("is not LON,LAT"));
        assert!(parse_location("abc,30").unwrap_err().contains("longitude \"abc\" is not a number"));
        assert!(parse_location("120,north").unwrap_err().contains("latitude \"north\" is not a number"));
        assert!(parse_location("200,30").unwrap_err().contains("longitude 200 is outside -180..180"));
        assert!(parse_location("120,NaN").unwrap_err().contains("not a finite number"));
        // Latitude first is a common slip: say so.
        assert!(parse_location("30.27,120.15").unwrap_err().contains("did you give LAT,LON?"));
    }

    #[test]
    fn grades_are_roman_numerals_digits_or_colours() {
        assert_eq!(parse_grade("I"), Ok(Grade::I));
        assert_eq!(parse_grade("ii"), Ok(Grade::Ii));
        assert_eq!(parse_grade("III"), Ok(Grade::Iii));
        assert_eq!(parse_grade("4"), Ok(Grade::Iv));
        assert_eq!(parse_grade("orange"), Ok(Grade::Ii));
        assert!(parse_grade("V").unwrap_err().contains("is not an emergency grade"));
        assert_eq!(Grade::I.to_pb(), pb::Mode::EmergencyI);
        assert_eq!(Grade::Iv.to_pb(), pb::Mode::EmergencyIv);
    }

    #[test]
    fn an_emergency_needs_a_grade_and_normal_refuses_one() {
        assert_eq!(requested_mode(ModeChoice::Emergency, Some(Grade::Ii)), Ok(pb::Mode::EmergencyIi));
        assert_eq!(requested_mode(ModeChoice::Normal, None), Ok(pb::Mode::Normal));
        assert!(requested_mode(ModeChoice::Emergency, None).unwrap_err().contains("needs a grade"));
        assert!(requested_mode(ModeChoice::Normal, Some(Grade::I)).unwrap_err().contains("normal mode has no grade"));
    }

    #[test]
    fn incident_create_takes_every_flag() {
        let cli = parse(&[
            "incident",
            "create",
            "--at",
            "120.15,30.27",
            "--category",
            "medical",
            "--priority",
            "1",
            "--skill",
            "first_aid",
            "--skill",
            "driving",
            "--need",
            "2",
            "--description",
            "老人摔倒",
            "--id",
            "inc-a",
            "--force",
        ])
        .expect("valid");
        let Command::Incident(IncidentCommand::Create(args)) = cli.command else {
            panic!("expected incident create, got {:?}", cli.command);
        };
        assert_eq!((args.at.lon, args.at.lat), (120.15, 30.27));
        assert_eq!(args.category, "medical");
        assert_eq!(args.priority, 1);
        assert_eq!(args.skills, ["first_aid", "driving"]);
        assert_eq!(args.need, 2);
        assert_eq!(args.description, "老人摔倒");
        assert_eq!(args.id.as_deref(), Some("inc-a"));
        assert!(args.force);
    }

    #[test]
    fn watch_starts_with_the_recent_events_unless_told_otherwise() {
        let start = |args: &[&str]| match parse(args).map(|cli| cli.command) {
            Ok(Command::Watch(watch)) => Ok(watch.feed_start()),
            Ok(other) => panic!("expected watch, got {other:?}"),
            Err(error) => Err(error.kind()),
        };
        assert_eq!(start(&["watch"]), Ok(FeedStart::Last(500)));
        assert_eq!(start(&["watch", "--last", "0"]), Ok(FeedStart::Last(0)));
        assert_eq!(start(&["watch", "--from", "1"]), Ok(FeedStart::From(1)));
        assert_eq!(start(&["watch", "--from", "1", "--last", "5"]), Err(clap::error::ErrorKind::ArgumentConflict));
    }

    #[test]
    fn a_negative_longitude_is_not_a_flag() {
        let cli = parse(&["agents", "nearby", "--at", "-73.98,40.75"]).expect("valid");
        let Command::Agents(AgentsCommand::Nearby { at, k, .. }) = cli.command else {
            panic!("expected agents nearby");
        };
        assert_eq!((at.lon, at.lat, k), (-73.98, 40.75, 5));
    }

    #[test]
    fn usage_errors_come_from_clap() {
        let bad_location = parse(&["incident", "create", "--at", "x", "--category", "c", "--priority", "1", "--need", "1"]);
        assert_eq!(bad_location.unwrap_err().kind(), clap::error::ErrorKind::ValueValidation);
        let bad_priority = parse(&["incident", "create", "--at", "1,2", "--category", "c", "--priority", "5", "--need", "1"]);
        assert_eq!(bad_priority.unwrap_err().kind(), clap::error::ErrorKind::ValueValidation);
        let no_need = parse(&["incident", "create", "--at", "1,2", "--category", "c", "--priority", "1"]);
        assert_eq!(no_need.unwrap_err().kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let bad_grade = parse(&["mode", "set", "d1", "emergency", "--grade", "V", "--reason", "r"]);
        assert_eq!(bad_grade.unwrap_err().kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let after =
            parse(&["incident", "list", "--open", "--json", "--server", "http://h:1", "--token", "pjo_li_00"]).expect("valid");
        assert!(after.global.json);
        assert_eq!(after.global.connect.server, "http://h:1");
        assert_eq!(after.global.token.as_ref().map(OperatorToken::expose), Some("pjo_li_00"));
        let before = parse(&["--json", "mode", "show"]).expect("valid");
        assert!(before.global.json);
    }

    #[test]
    fn the_old_operator_flag_still_parses_so_that_it_can_be_explained() {
        let cli = parse(&["--operator", "li.na", "incident", "list"]).expect("valid");
        assert_eq!(cli.global.operator.as_deref(), Some("li.na"));
        assert!(!Cli::command().render_long_help().to_string().contains("--operator"));
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let cli = parse(&["--token", "pjo_li_secret", "account", "whoami"]).expect("valid");
        let shown = format!("{cli:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn the_token_variable_is_hidden_in_help() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("PINGJI_TOKEN"), "{help}");
        let token_argument = Cli::command().get_arguments().find(|argument| argument.get_id() == "token").cloned();
        assert!(token_argument.is_some_and(|argument| argument.is_hide_env_values_set()));
    }

    #[test]
    fn account_commands_parse() {
        let cli = parse(&["account", "add", "li.na", "--role", "viewer"]).expect("valid");
        let Command::Account(AccountCommand::Add { name, role, .. }) = cli.command else {
            panic!("expected account add");
        };
        assert_eq!((name.as_str(), role.to_pb()), ("li.na", pb::OperatorRole::Viewer));
        assert_eq!(parse(&["account", "add", "li.na"]).unwrap_err().kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert_eq!(
            parse(&["account", "add", "li.na", "--role", "boss"]).unwrap_err().kind(),
            clap::error::ErrorKind::InvalidValue
        );
        assert!(matches!(parse(&["account", "whoami"]).expect("valid").command, Command::Account(AccountCommand::Whoami)));
        assert!(matches!(
            parse(&["account", "rotate"]).expect("valid").command,
            Command::Account(AccountCommand::Rotate { expires: None })
        ));
        assert!(matches!(parse(&["account", "list"]).expect("valid").command, Command::Account(AccountCommand::List)));
        let removed = parse(&["account", "remove", "li.na"]).expect("valid");
        assert!(matches!(removed.command, Command::Account(AccountCommand::Remove { ref name }) if name == "li.na"));
        let expiring = parse(&["account", "add", "li.na", "--role", "viewer", "--expires", "30d"]).expect("valid");
        assert!(matches!(expiring.command, Command::Account(AccountCommand::Add { expires: Some(2_592_000), .. })));
        let token = parse(&["account", "token", "li.na", "--rotate", "--expires", "12h"]).expect("valid");
        assert!(matches!(token.command, Command::Account(AccountCommand::Token { rotate: true, expires: Some(43_200), .. })));
        let revoked = parse(&["account", "revoke", "li.na"]).expect("valid");
        assert!(matches!(revoked.command, Command::Account(AccountCommand::Revoke { ref name }) if name == "li.na"));
        assert_eq!(parse(&["account", "rotate", "--expires", "90"]).unwrap_err().kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn roster_tokens_say_whose_and_where() {
        let all = parse(&["roster", "tokens", "--without-token", "--out", "t.csv"]).expect("valid");
        assert!(matches!(
            all.command,
            Command::Roster(RosterCommand::Tokens { without_token: true, ids: None, rotate: false, .. })
        ));
        let named = parse(&["roster", "tokens", "--ids", "ids.csv", "--out", "t.csv", "--rotate"]).expect("valid");
        assert!(matches!(named.command, Command::Roster(RosterCommand::Tokens { ids: Some(_), rotate: true, .. })));
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(kind(&["roster", "tokens", "--out", "t.csv"]), clap::error::ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["roster", "tokens", "--without-token"]), clap::error::ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["roster", "tokens", "--without-token", "--ids", "i.csv", "--out", "t.csv"]),
            clap::error::ErrorKind::ArgumentConflict
        );
        assert_eq!(
            kind(&["roster", "tokens", "--without-token", "--rotate", "--out", "t.csv"]),
            clap::error::ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn roster_add_and_token_parse() {
        let cli = parse(&[
            "roster",
            "add",
            "p0101",
            "--name",
            "黄磊",
            "--role",
            "volunteer",
            "--skill",
            "first_aid",
            "--home",
            "120.1,30.2",
            "--travel-mode",
            "Bike",
            "--off-duty",
        ])
        .expect("valid");
        let Command::Roster(RosterCommand::Add(args)) = cli.command else {
            panic!("expected roster add");
        };
        assert_eq!((args.id.as_str(), args.name.as_str(), args.role), ("p0101", "黄磊", pb::Role::Volunteer));
        assert_eq!(args.skills, ["first_aid"]);
        assert_eq!(args.travel_mode, pb::TravelMode::Bike);
        assert!(args.off_duty);
        let walking = parse(&["roster", "add", "p1", "--name", "n", "--role", "volunteer"]).expect("valid");
        assert!(matches!(
            walking.command,
            Command::Roster(RosterCommand::Add(AddPersonArgs { travel_mode: pb::TravelMode::Walk, .. }))
        ));
        assert!(parse_travel_mode("plane").unwrap_err().contains("walk, bike or car"));
        let token = parse(&["roster", "token", "p0001", "--rotate"]).expect("valid");
        assert!(matches!(token.command, Command::Roster(RosterCommand::Token { rotate: true, .. })));
        let import = parse(&["roster", "import", "r.csv", "--tokens-out", "t.csv"]).expect("valid");
        assert!(matches!(
            import.command,
            Command::Roster(RosterCommand::Import { tokens_out: Some(ref path), .. }) if path == &PathBuf::from("t.csv")
        ));
    }

    #[test]
    fn mode_set_parses_area_mode_grade_and_reason() {
        let cli = parse(&["mode", "set", "d1", "emergency", "--grade", "II", "--reason", "台风"]).expect("valid");
        let Command::Mode(ModeCommand::Set(args)) = cli.command else {
            panic!("expected mode set");
        };
        assert_eq!(args.area, "d1");
        assert_eq!(args.mode, ModeChoice::Emergency);
        assert_eq!(args.grade, Some(Grade::Ii));
        assert_eq!(args.reason, "台风");
    }

    #[test]
    fn plan_commands_parse() {
        let cli = parse(&["plan", "import", "a.toml", "b.toml"]).expect("valid");
        let Command::Plan(PlanCommand::Import { files }) = cli.command else {
            panic!("expected plan import");
        };
        assert_eq!(files, [PathBuf::from("a.toml"), PathBuf::from("b.toml")]);
        assert_eq!(parse(&["plan", "import"]).unwrap_err().kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let cli = parse(&["plan", "activate", "flood-ii", "d1-s1", "--reason", "暴雨"]).expect("valid");
        let Command::Plan(PlanCommand::Activate { plan_id, area, reason }) = cli.command else {
            panic!("expected plan activate");
        };
        assert_eq!((plan_id.as_str(), area.as_str(), reason.as_str()), ("flood-ii", "d1-s1", "暴雨"));
        assert_eq!(
            parse(&["plan", "deactivate", "flood-ii@d1-s1-1"]).unwrap_err().kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn callup_issue_takes_roles_as_in_the_roster() {
        let cli = parse(&[
            "callup",
            "issue",
            "d1",
            "--reason",
            "台风",
            "--role",
            "sunk_cadre",
            "--role",
            "Registered-Member",
            "--deadline-s",
            "600",
        ])
        .expect("valid");
        let Command::Callup(CallupCommand::Issue { area, roles, deadline_s, .. }) = cli.command else {
            panic!("expected callup issue");
        };
        assert_eq!(area, "d1");
        assert_eq!(roles, [pb::Role::SunkCadre, pb::Role::RegisteredMember]);
        assert_eq!(deadline_s, Some(600));
        assert!(parse_role("boss").unwrap_err().contains("sunk_cadre"));
        let bad = parse(&["callup", "issue", "d1", "--reason", "r", "--deadline-s", "0"]);
        assert_eq!(bad.unwrap_err().kind(), clap::error::ErrorKind::ValueValidation);
        let cli = parse(&["callup", "status", "--open"]).expect("valid");
        assert!(matches!(cli.command, Command::Callup(CallupCommand::Status { area: None, open: true })));
    }

    #[test]
    fn report_triage_takes_the_id_then_the_decision() {
        let cli = parse(&["report", "triage", "inc-000004", "accept", "--priority", "1", "--need", "2", "--skill", "rescue"])
            .expect("valid");
        let Command::Report(ReportCommand::Triage(args)) = cli.command else {
            panic!("expected report triage");
        };
        assert_eq!(args.id, "inc-000004");
        let TriageAction::Accept { priority, need, skills } = args.action else {
            panic!("expected accept");
        };
        assert_eq!((priority, need), (Some(1), Some(2)));
        assert_eq!(skills, ["rescue"]);
        let merge = parse(&["report", "triage", "inc-4", "merge", "inc-1"]).expect("valid");
        assert!(matches!(
            merge.command,
            Command::Report(ReportCommand::Triage(TriageArgs { action: TriageAction::Merge { .. }, .. }))
        ));
        assert_eq!(
            parse(&["report", "triage", "inc-4", "reject"]).unwrap_err().kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            parse(&["report", "triage", "inc-4", "accept", "--priority", "9"]).unwrap_err().kind(),
            clap::error::ErrorKind::ValueValidation
        );
    }

    #[test]
    fn coverage_takes_an_optional_area() {
        let everywhere = parse(&["coverage"]).expect("valid");
        assert!(matches!(everywhere.command, Command::Coverage(CoverageArgs { area: None })));
        let one = parse(&["coverage", "d1-s1", "--json"]).expect("valid");
        assert!(one.global.json);
        assert!(matches!(
            one.command,
            Command::Coverage(CoverageArgs { area: Some(ref area) }) if area == "d1-s1"
        ));
    }
}
