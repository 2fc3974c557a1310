//! Supplies and equipment (#22) on real dispatchers over real gRPC: depots
//! and stock imported (from CSV too, a bad line refused with its number and
//! nothing imported), a request proposed from the nearest depot and split
//! when it is short, two incidents racing for the last pump (one gets it,
//! the other a clear error and no change), stock that cannot go below
//! zero, a low-stock alert, a plan that pre-positions sandbags when it
//! activates, role checks, the whole lifecycle journaled in SQLite and
//! there after a SIGKILL, and the command map's depots and an incident's
//! requests in a real headless Chromium (screenshots of a desk and a phone
//! in `target/web-screenshots/`).

use std::time::Duration;

use pingji_client::auth::BearerToken;
use pingji_client::supplies::{depots_csv, locate_rows, parse_supply_csv, stock_csv};
use pingji_proto::v1::supply_service_client::SupplyServiceClient;
use pingji_tests::browser::{
    self, DESK, PHONE, TestBrowser, accessibility_problems, eval, resize, screenshot, screenshot_folder, wait_for,
};
use pingji_tests::cli::run_pingji;
use pingji_tests::{
    ADMIN_TOKEN, Commands, DispatcherProcess, EventWatch, ProcessOptions, TestServer, add_operator, pb, sample_city,
    sample_roster,
};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Supplies = SupplyServiceClient<InterceptedService<Channel, BearerToken>>;

const WITHIN: Duration = Duration::from_secs(20);

fn supplies_with(channel: Channel, token: &str) -> Supplies {
    SupplyServiceClient::with_interceptor(channel, BearerToken::new(Some(token)).unwrap_or_default())
}

/// The incident's place: the middle of the sample city.
const INCIDENT: (f64, f64) = (120.15, 30.27);

fn depot(id: &str, lon: f64) -> pb::Depot {
    pb::Depot {
        id: id.to_string(),
        name: format!("Depot {id}"),
        location: Some(pb::Location::wgs84(lon, 30.27)),
        keeper: "Li Wei".to_string(),
        ..Default::default()
    }
}

fn stock(depot: &str, item: &str, quantity: u64, minimum: u64) -> pb::StockRow {
    pb::StockRow { depot_id: depot.into(), item_id: item.into(), quantity, minimum }
}

fn pump(id: &str, depot: &str) -> pb::UnitRow {
    pb::UnitRow {
        unit_id: id.into(),
        item_id: "pump".into(),
        kind: pb::ItemKind::Equipment.into(),
        depot_id: depot.into(),
        ..Default::default()
    }
}

fn line(item: &str, quantity: u64) -> pb::SupplyLine {
    pb::SupplyLine { item_id: item.into(), quantity }
}

/// `near` is 1 km east of the incident with 300 sandbags (minimum 100),
/// `far` 5 km east with 1,000 and the only pump, P-07.
async fn stock_two_depots(supplies: &mut Supplies) -> anyhow::Result<()> {
    supplies
        .import_supplies(pb::ImportSuppliesRequest {
            depots: vec![depot("near", 120.16), depot("far", 120.2)],
            stock: vec![stock("near", "sandbag", 300, 100), stock("far", "sandbag", 1000, 0)],
            units: vec![pump("P-07", "far")],
        })
        .await?;
    Ok(())
}

async fn incident(command: &mut Commands, (lon, lat): (f64, f64), category: &str) -> anyhow::Result<String> {
    let created = command
        .create_incident(pb::CreateIncidentRequest {
            location: Some(pb::Location::wgs84(lon, lat)),
            category: category.into(),
            priority: 2,
            headcount: 1,
            force: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(created.id)
}

async fn request(supplies: &mut Supplies, incident: &str, lines: Vec<pb::SupplyLine>) -> anyhow::Result<pb::SupplyRequest> {
    let asked = pb::RequestSuppliesRequest { incident_id: incident.into(), lines, ..Default::default() };
    Ok(supplies.request_supplies(asked).await?.into_inner())
}

async fn requests_of(supplies: &mut Supplies, incident: &str) -> anyhow::Result<Vec<pb::SupplyRequest>> {
    let asked = pb::ListSupplyRequestsRequest { incident_id: incident.into(), ..Default::default() };
    Ok(supplies.list_supply_requests(asked).await?.into_inner().requests)
}

async fn depot_stock(supplies: &mut Supplies, depot: &str, item: &str) -> anyhow::Result<pb::DepotStock> {
    let depots = supplies.list_depots(pb::ListDepotsRequest::default()).await?.into_inner().depots;
    let depot = depots.iter().find(|record| record.id == depot).ok_or_else(|| anyhow::anyhow!("no depot {depot}"))?;
    depot.stock.iter().find(|stock| stock.item_id == item).cloned().ok_or_else(|| anyhow::anyhow!("no {item} at {}", depot.id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proposal_takes_the_nearest_depot_first_and_splits_when_it_is_short() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut supplies = supplies_with(server.channel().await?, ADMIN_TOKEN);
    stock_two_depots(&mut supplies).await?;
    let incident = incident(&mut command, INCIDENT, "flood").await?;
    let made = request(&mut supplies, &incident, vec![line("sandbag", 500), line("pump", 1), line("sandbag-x", 0)]).await;
    let refused = made.expect_err("an unknown item");
    assert!(refused.to_string().contains("sandbag-x"), "{refused}");
    let made = request(&mut supplies, &incident, vec![line("sandbag", 1500), line("pump", 1)]).await?;
    assert_eq!(made.status, pb::SupplyRequestStatus::Requested as i32);
    let proposal = supplies.propose_supplies(pb::ProposeSuppliesRequest { request_id: made.id.clone() }).await?.into_inner();
    let taken: Vec<(&str, &str, u64)> = proposal
        .allocations
        .iter()
        .map(|allocation| (allocation.depot_id.as_str(), allocation.item_id.as_str(), allocation.quantity))
        .collect();
    assert_eq!(taken, [("near", "sandbag", 300), ("far", "sandbag", 1000), ("far", "pump", 1)]);
    assert!(proposal.allocations[0].travel_s < proposal.allocations[1].travel_s, "{proposal:?}");
    assert_eq!(proposal.short, [line("sandbag", 200)]);
    assert_eq!(proposal.allocations[2].unit_ids, ["P-07"]);

    let confirmed = supplies
        .confirm_supplies(pb::ConfirmSuppliesRequest { request_id: made.id.clone(), allocations: proposal.allocations.clone() })
        .await?
        .into_inner();
    assert_eq!(confirmed.status, pb::SupplyRequestStatus::Reserved as i32);
    assert_eq!(confirmed.short, [line("sandbag", 200)]);
    assert_eq!(depot_stock(&mut supplies, "near", "sandbag").await?.reserved, 300);
    let levels = supplies.stock_levels(pb::StockLevelsRequest::default()).await?.into_inner().levels;
    let sandbags = levels.iter().find(|level| level.item_id == "sandbag").expect("sandbags counted");
    assert_eq!((sandbags.on_hand, sandbags.reserved, sandbags.available), (1300, 1300, 0));
    server.shutdown().await
}

/// A request named by the caller is made once: the same request again (a
/// retry after a lost answer, the items in another order) answers the
/// request made; the name used for other items is refused, changing
/// nothing; and the name survives a restart from the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supply_request_named_by_the_caller_is_made_once_however_often_it_is_sent() -> anyhow::Result<()> {
    let journal = tempfile::tempdir()?;
    let path = journal.path().join("journal.sqlite");
    let start =
        |path: std::path::PathBuf| TestServer::start(move |config| config.store = pingji_dispatcher::server::Store::Sqlite(path));
    let server = start(path.clone()).await?;
    let mut command = server.command().await?;
    let mut supplies = supplies_with(server.channel().await?, ADMIN_TOKEN);
    stock_two_depots(&mut supplies).await?;
    let incident = incident(&mut command, INCIDENT, "flood").await?;
    let asked = pb::RequestSuppliesRequest {
        incident_id: incident.clone(),
        lines: vec![line("sandbag", 100), line("pump", 1)],
        id: "flood-7-bags".into(),
    };
    let made = supplies.request_supplies(asked.clone()).await?.into_inner();
    assert_eq!(made.id, "flood-7-bags");
    let reordered = pb::RequestSuppliesRequest { lines: vec![line("pump", 1), line("sandbag", 100)], ..asked.clone() };
    assert_eq!(supplies.request_supplies(reordered).await?.into_inner(), made, "a retry answers the request made");
    let other = pb::RequestSuppliesRequest { lines: vec![line("sandbag", 200)], ..asked.clone() };
    let refused = supplies.request_supplies(other).await.expect_err("other items under the same id");
    assert_eq!(refused.code(), tonic::Code::AlreadyExists, "{refused:?}");
    assert_eq!(requests_of(&mut supplies, &incident).await?.len(), 1);
    server.shutdown().await?;

    let server = start(path).await?;
    let mut supplies = supplies_with(server.channel().await?, ADMIN_TOKEN);
    assert_eq!(supplies.request_supplies(asked).await?.into_inner().id, "flood-7-bags", "still one after a restart");
    assert_eq!(requests_of(&mut supplies, &incident).await?.len(), 1);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_incidents_racing_for_the_last_pump_one_gets_it_and_the_other_changes_nothing() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut supplies = supplies_with(server.channel().await?, ADMIN_TOKEN);
    stock_two_depots(&mut supplies).await?;
    let mut requests = Vec::new();
    for (index, at) in [INCIDENT, (120.19, 30.27)].into_iter().enumerate() {
        let incident = incident(&mut command, at, &format!("pumping-{index}")).await?;
        let made = request(&mut supplies, &incident, vec![line("pump", 1)]).await?;
        // Both operators see the same proposal: the one pump, P-07.
        let proposal = supplies.propose_supplies(pb::ProposeSuppliesRequest { request_id: made.id.clone() }).await?.into_inner();
        assert_eq!(proposal.allocations[0].unit_ids, ["P-07"]);
        requests.push((made.id, proposal.allocations));
    }
    let mut first = supplies.clone();
    let mut second = supplies.clone();
    let (one, two) = tokio::join!(
        first.confirm_supplies(pb::ConfirmSuppliesRequest {
            request_id: requests[0].0.clone(),
            allocations: requests[0].1.clone()
        }),
        second.confirm_supplies(pb::ConfirmSuppliesRequest {
            request_id: requests[1].0.clone(),
            allocations: requests[1].1.clone()
        }),
    );
    let (won, lost, refusal) = match (one, two) {
        (Ok(won), Err(refusal)) => (won.into_inner(), &requests[1].0, refusal),
        (Err(refusal), Ok(won)) => (won.into_inner(), &requests[0].0, refusal),
        other => anyhow::bail!("exactly one confirmation should win: {other:?}"),
    };
    assert_eq!(refusal.code(), Code::FailedPrecondition, "{refusal:?}");
    assert!(refusal.message().contains(&format!("unit P-07 is already held by request {}", won.id)), "{}", refusal.message());
    let all = supplies.list_supply_requests(pb::ListSupplyRequestsRequest::default()).await?.into_inner().requests;
    let loser = all.iter().find(|record| &record.id == lost).expect("the losing request is listed");
    assert_eq!(loser.status, pb::SupplyRequestStatus::Requested as i32, "the refused confirmation changed nothing");
    assert!(loser.allocations.is_empty());
    let depots = supplies.list_depots(pb::ListDepotsRequest::default()).await?.into_inner().depots;
    let pump = depots.iter().flat_map(|depot| depot.units.iter()).find(|unit| unit.id == "P-07").expect("P-07 listed");
    assert_eq!((pump.status, pump.request_id.as_str()), (pb::SupplyUnitStatus::Reserved as i32, won.id.as_str()));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_cannot_go_below_zero_and_a_low_stock_alert_goes_out() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut supplies = supplies_with(server.channel().await?, ADMIN_TOKEN);
    stock_two_depots(&mut supplies).await?;
    let mut watch = EventWatch::start(&mut command, 0).await?;
    let incident = incident(&mut command, INCIDENT, "flood").await?;
    let made = request(&mut supplies, &incident, vec![line("sandbag", 250)]).await?;
    let too_many =
        pb::SupplyAllocation { depot_id: "near".into(), item_id: "sandbag".into(), quantity: 301, ..Default::default() };
    let refused = supplies
        .confirm_supplies(pb::ConfirmSuppliesRequest { request_id: made.id.clone(), allocations: vec![too_many] })
        .await
        .expect_err("more than the depot holds");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("depot near has 300 sandbag free, fewer than the 301"), "{}", refused.message());
    let over_stock =
        pb::SupplyAllocation { depot_id: "near".into(), item_id: "sandbag".into(), quantity: 250, ..Default::default() };
    supplies.confirm_supplies(pb::ConfirmSuppliesRequest { request_id: made.id.clone(), allocations: vec![over_stock] }).await?;
    let low = watch.wait_for(WITHIN, "stock_low", |event| event.kind == "stock_low").await?;
    let Some(pb::event::Body::StockLow(low)) = low.body else { anyhow::bail!("stock_low without its body") };
    assert_eq!((low.depot_id.as_str(), low.item_id.as_str(), low.available, low.minimum), ("near", "sandbag", 50, 100));
    assert!(depot_stock(&mut supplies, "near", "sandbag").await?.low);

    // The 50 left cannot cover another 60 from this depot.
    let other = request(&mut supplies, &incident, vec![line("sandbag", 60)]).await?;
    let sixty = pb::SupplyAllocation { depot_id: "near".into(), item_id: "sandbag".into(), quantity: 60, ..Default::default() };
    let refused = supplies
        .confirm_supplies(pb::ConfirmSuppliesRequest { request_id: other.id.clone(), allocations: vec![sixty] })
        .await
        .expect_err("beyond the stock");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("stock cannot go below zero"), "{}", refused.message());
    let refused = supplies
        .import_supplies(pb::ImportSuppliesRequest { stock: vec![stock("near", "sandbag", 100, 100)], ..Default::default() })
        .await
        .expect_err("below what is reserved");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("250 sandbag reserved"), "{}", refused.message());
    assert_eq!(depot_stock(&mut supplies, "near", "sandbag").await?.on_hand, 300, "the refused import changed nothing");

    // Cancelling the incident frees its reservation, and the alert ends.
    command.cancel_incident(pb::CancelIncidentRequest { id: incident.clone(), reason: "false alarm".into() }).await?;
    watch.wait_for(WITHIN, "stock_restored", |event| event.kind == "stock_restored").await?;
    let near = depot_stock(&mut supplies, "near", "sandbag").await?;
    assert_eq!((near.reserved, near.low), (0, false));
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_pre_positions_sandbags_at_the_riverside_depots_when_it_activates() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut supplies = supplies_with(server.channel().await?, ADMIN_TOKEN);
    stock_two_depots(&mut supplies).await?;
    supplies
        .import_supplies(pb::ImportSuppliesRequest {
            depots: vec![depot("riverside-1", 120.1), depot("riverside-2", 120.11)],
            ..Default::default()
        })
        .await?;
    let plan = r#"
id = "typhoon-ii"
name = "Typhoon, grade II"
category = "typhoon"
grade = "II"

[[supply]]
item = "sandbag"
quantity = 1000
to = ["riverside-1", "riverside-2"]
"#;
    command.import_plans(pb::ImportPlansRequest { plans_toml: vec![plan.to_string()] }).await?;
    let mut watch = EventWatch::start(&mut command, 0).await?;
    command
        .activate_plan(pb::ActivatePlanRequest { plan_id: "typhoon-ii".into(), area_id: "d1".into(), reason: "typhoon".into() })
        .await?;
    let moved = watch.wait_for(WITHIN, "stock_moved", |event| event.kind == "stock_moved").await?;
    let Some(pb::event::Body::StockMoved(moved)) = moved.body else { anyhow::bail!("stock_moved without its body") };
    assert!(moved.activation_id.starts_with("typhoon-ii@d1"), "{moved:?}");
    assert_eq!(depot_stock(&mut supplies, "riverside-1", "sandbag").await?.on_hand, 500);
    assert_eq!(depot_stock(&mut supplies, "riverside-2", "sandbag").await?.on_hand, 500);
    assert_eq!(depot_stock(&mut supplies, "near", "sandbag").await?.on_hand, 0, "the nearest source gave all it had");
    assert_eq!(depot_stock(&mut supplies, "far", "sandbag").await?.on_hand, 300);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depots_and_stock_round_trip_through_csv_and_a_bad_line_imports_nothing() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut supplies = supplies_with(server.channel().await?, ADMIN_TOKEN);
    let depots = "id,name,lon,lat,area_id,keeper\nriverside-1,Riverside 1,120.1,30.27,,Li Wei\nhill,Hill depot,120.2,30.3,d2,\n";
    let stock = "depot_id,item_id,kind,quantity,minimum,unit_id,status,capacity\n\
                 riverside-1,sandbag,consumable,2000,500,,,\n\
                 riverside-1,pump,equipment,,,P-07,available,\n\
                 hill,boat,vehicle,,,B-02,in_repair,8\n\
                 hill,water,consumable,300,0,,,\n";
    let read = parse_supply_csv(Some(depots), Some(stock)).map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let imported = supplies.import_supplies(read.request.clone()).await?.into_inner();
    assert_eq!((imported.depots, imported.stock_rows, imported.units), (2, 2, 2));
    let listed = supplies.list_depots(pb::ListDepotsRequest::default()).await?.into_inner().depots;
    let riverside = listed.iter().find(|depot| depot.id == "riverside-1").expect("listed");
    assert!(!riverside.area_id.is_empty(), "placed in the area at its position");
    let again = parse_supply_csv(Some(&depots_csv(&listed)), Some(&stock_csv(&listed)))
        .map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let mut expected = read.request.clone();
    expected.depots[0].area_id = riverside.area_id.clone();
    let key = |request: &mut pb::ImportSuppliesRequest| {
        request.depots.sort_by(|a, b| a.id.cmp(&b.id));
        request.stock.sort_by(|a, b| (&a.depot_id, &a.item_id).cmp(&(&b.depot_id, &b.item_id)));
        request.units.sort_by(|a, b| a.unit_id.cmp(&b.unit_id));
    };
    let mut exported = again.request.clone();
    key(&mut expected);
    key(&mut exported);
    assert_eq!(exported, expected, "export then import gives the same depots and stock");

    // A bad line in the file: named by its line, nothing read.
    let bad = format!("{stock}hill,rope,consumable,-5,,,,\n");
    let problems = parse_supply_csv(Some(depots), Some(&bad)).expect_err("a negative quantity");
    assert_eq!(problems, ["stock csv line 6: quantity \"-5\" is not a number"]);
    // A line the dispatcher refuses (a depot it does not know): the whole
    // import is refused, and the row is told as the file's line.
    let unknown = "depot_id,item_id,kind,quantity,minimum,unit_id,status,capacity\n\
                   hill,water,consumable,999,0,,,\n\
                   nowhere,water,consumable,5,0,,,\n";
    let read = parse_supply_csv(None, Some(unknown)).map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    let refused = supplies.import_supplies(read.request.clone()).await.expect_err("an unknown depot");
    assert_eq!(refused.code(), Code::InvalidArgument);
    let told = locate_rows(refused.message(), &read);
    assert!(told.starts_with("stock csv line 3 (stock row 2): depot nowhere"), "{told}");
    let listed = supplies.list_depots(pb::ListDepotsRequest::default()).await?.into_inner().depots;
    let hill = listed.iter().find(|depot| depot.id == "hill").expect("listed");
    assert_eq!(
        hill.stock.iter().find(|stock| stock.item_id == "water").map(|stock| stock.on_hand),
        Some(300),
        "nothing imported"
    );
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_stock_dispatchers_handle_requests_and_commanders_import() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let mut command = server.command().await?;
    let mut admin = supplies_with(server.channel().await?, ADMIN_TOKEN);
    stock_two_depots(&mut admin).await?;
    let incident = incident(&mut command, INCIDENT, "flood").await?;
    let viewer_token = add_operator(&mut command, "viewer-1", pb::OperatorRole::Viewer).await?;
    let dispatcher_token = add_operator(&mut command, "dispatcher-1", pb::OperatorRole::Dispatcher).await?;
    let mut viewer = supplies_with(server.channel().await?, &viewer_token);
    let mut dispatcher = supplies_with(server.channel().await?, &dispatcher_token);

    viewer.list_depots(pb::ListDepotsRequest::default()).await?;
    viewer.stock_levels(pb::StockLevelsRequest { area_id: "d1".into() }).await?;
    let refused = request(&mut viewer, &incident, vec![line("sandbag", 10)]).await.expect_err("a viewer cannot request");
    assert!(refused.to_string().contains("RequestSupplies needs the dispatcher role"), "{refused}");

    let made = request(&mut dispatcher, &incident, vec![line("sandbag", 10)]).await?;
    dispatcher.confirm_supplies(pb::ConfirmSuppliesRequest { request_id: made.id.clone(), allocations: vec![] }).await?;
    let refused = dispatcher
        .import_supplies(pb::ImportSuppliesRequest { stock: vec![stock("near", "sandbag", 5000, 0)], ..Default::default() })
        .await
        .expect_err("a dispatcher cannot import");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = admin.stock_levels(pb::StockLevelsRequest { area_id: "atlantis".into() }).await.expect_err("an unknown area");
    assert_eq!(refused.code(), Code::NotFound);
    server.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_is_journaled_and_there_after_a_sigkill() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let options = ProcessOptions {
        data: dir.path().join("p.db"),
        policy: None,
        areas: Some(sample_city()),
        agents: Some(sample_roster()),
        snapshot_every: Some(5),
        log: dir.path().join("dispatcher.log"),
    };
    let first = DispatcherProcess::start(&options).await?;
    let mut command = first.command().await?;
    let mut supplies = supplies_with(first.channel().await?, ADMIN_TOKEN);
    stock_two_depots(&mut supplies).await?;
    let carrier = command
        .list_agents(pb::ListAgentsRequest { limit: 1, ..Default::default() })
        .await?
        .into_inner()
        .agents
        .first()
        .and_then(|agent| agent.spec.as_ref())
        .map(|spec| spec.id.clone())
        .expect("the sample roster has people");
    let incident = incident(&mut command, INCIDENT, "flood").await?;
    let made = request(&mut supplies, &incident, vec![line("sandbag", 500), line("pump", 1)]).await?;
    supplies.confirm_supplies(pb::ConfirmSuppliesRequest { request_id: made.id.clone(), allocations: vec![] }).await?;
    supplies
        .dispatch_supplies(pb::DispatchSuppliesRequest { request_id: made.id.clone(), carrier_agent_id: carrier.clone() })
        .await?;
    supplies.deliver_supplies(pb::DeliverSuppliesRequest { request_id: made.id.clone() }).await?;
    first.kill().await?;

    let second = DispatcherProcess::start(&options).await?;
    let mut supplies = supplies_with(second.channel().await?, ADMIN_TOKEN);
    let listed =
        supplies.list_supply_requests(pb::ListSupplyRequestsRequest { incident_id: incident.clone(), open_only: true }).await?;
    let record = listed.into_inner().requests.into_iter().next().expect("the request survived");
    assert_eq!(record.status, pb::SupplyRequestStatus::Delivered as i32);
    assert_eq!(record.carrier_agent_id, carrier);
    assert_eq!(depot_stock(&mut supplies, "near", "sandbag").await?.on_hand, 0, "300 left near");
    assert_eq!(depot_stock(&mut supplies, "far", "sandbag").await?.on_hand, 800, "200 left far");
    let returned = supplies
        .return_supplies(pb::ReturnSuppliesRequest {
            request_id: made.id.clone(),
            returned: vec![line("sandbag", 100)],
            in_repair_unit_ids: vec!["P-07".into()],
        })
        .await?
        .into_inner();
    assert_eq!(returned.status, pb::SupplyRequestStatus::Returned as i32);
    assert_eq!(returned.consumed, [line("sandbag", 400)]);
    second.kill().await?;

    let third = DispatcherProcess::start(&options).await?;
    let mut supplies = supplies_with(third.channel().await?, ADMIN_TOKEN);
    assert_eq!(depot_stock(&mut supplies, "near", "sandbag").await?.on_hand, 100);
    let depots = supplies.list_depots(pb::ListDepotsRequest::default()).await?.into_inner().depots;
    let pump = depots.iter().flat_map(|depot| depot.units.iter()).find(|unit| unit.id == "P-07").expect("P-07 listed");
    assert_eq!(pump.status, pb::SupplyUnitStatus::InRepair as i32);
    let mut command = third.command().await?;
    let mut watch = EventWatch::start(&mut command, 1).await?;
    let settled = watch.wait_for(WITHIN, "supplies_returned", |event| event.kind == "supplies_returned").await?;
    assert_eq!(settled.incident_id, incident);
    third.kill().await
}

/// The command map shows the depots (a diamond each, red when an item is
/// below its minimum) with their stock, and an incident's supply requests
/// in its panel, on a desk and on a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_map_shows_depots_with_stock_and_an_incidents_supply_requests() -> anyhow::Result<()> {
    let Some(chromium) = browser::chromium()? else {
        return Ok(());
    };
    let server = TestServer::start_with_web(|_| {}).await?;
    let url = format!("http://{}/", server.web_address().ok_or_else(|| anyhow::anyhow!("no web port"))?);
    let mut command = server.command().await?;
    let mut supplies = supplies_with(server.channel().await?, ADMIN_TOKEN);
    stock_two_depots(&mut supplies).await?;
    let incident = incident(&mut command, INCIDENT, "flood").await?;
    let made = request(&mut supplies, &incident, vec![line("sandbag", 1500), line("pump", 1)]).await?;
    supplies.confirm_supplies(pb::ConfirmSuppliesRequest { request_id: made.id.clone(), allocations: vec![] }).await?;

    let browser = TestBrowser::launch(&chromium).await?;
    let page = browser.open(&url).await?;
    wait_for(&page, "the login form shows", "!document.getElementById('login-view').hidden").await?;
    page.find_element("#token").await?.click().await?.type_str(ADMIN_TOKEN).await?.press_key("Enter").await?;
    wait_for(&page, "both depots are drawn, the near one low", "document.querySelectorAll('#map path.depot').length === 2 && document.querySelectorAll('#map path.depot.low').length === 1").await?;
    wait_for(
        &page,
        "the supplies panel lists the depots",
        "document.querySelectorAll('#depot-list li[data-depot-id]').length === 2",
    )
    .await?;
    let near: String = eval(&page, "document.querySelector('#depot-list li[data-depot-id=near]').textContent").await?;
    assert!(near.contains("sandbag 0/300"), "the near depot's sandbags are all reserved: {near}");
    let button = format!("#incident-list button[data-incident-id='{incident}']");
    wait_for(&page, "the incident is listed", &format!("!!document.querySelector({})", serde_json::to_string(&button)?)).await?;
    let pressed: bool = eval(
        &page,
        &format!(
            "(() => {{ const found = document.querySelector({}); found?.click(); return !!found; }})()",
            serde_json::to_string(&button)?
        ),
    )
    .await?;
    anyhow::ensure!(pressed, "the incident's button is there");
    wait_for(
        &page,
        "the incident's supply request is in its panel",
        &format!("!!document.querySelector('#detail-supplies li[data-request-id=\"{}\"]')", made.id),
    )
    .await?;
    let shown: String = eval(&page, "document.getElementById('detail-supplies').textContent").await?;
    assert!(
        shown.contains("sandbag 300 ← near") && shown.contains("sandbag 1000 ← far") && shown.contains("pump 1 ← far"),
        "{shown}"
    );
    assert!(shown.contains("sandbag ×200"), "the shortfall is shown: {shown}");
    let problems = accessibility_problems(&page).await?;
    anyhow::ensure!(problems.is_empty(), "axe-core finds serious problems:\n{}", problems.join("\n"));
    screenshot(&page, &screenshot_folder().join("desk-supplies-zh.png")).await?;
    eval::<bool>(&page, "(() => { document.getElementById('supplies-panel').scrollIntoView(); return true; })()").await?;
    screenshot(&page, &screenshot_folder().join("desk-depots-zh.png")).await?;
    resize(&page, PHONE).await?;
    eval::<bool>(&page, "(() => { document.getElementById('detail-supplies').scrollIntoView(); return true; })()").await?;
    screenshot(&page, &screenshot_folder().join("phone-supplies-zh.png")).await?;
    resize(&page, DESK).await?;
    browser.close().await?;
    server.shutdown().await
}

/// The console: `pingji supplies import` reads the CSV files (a bad line is
/// named with its file and line, and nothing is imported), then a request
/// goes through request, propose, confirm, dispatch and deliver, and
/// `export` writes files that read back as the same depots and stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_imports_requests_confirms_delivers_and_exports() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let url = format!("http://{}", server.address());
    let mut command = server.command().await?;
    let dir = tempfile::tempdir()?;
    let depots = dir.path().join("depots.csv");
    let stock = dir.path().join("stock.csv");
    std::fs::write(&depots, "id,name,lon,lat,area_id,keeper\nnear,Near,120.16,30.27,,Li\nfar,Far,120.2,30.27,,Wang\n")?;
    std::fs::write(
        &stock,
        "depot_id,item_id,kind,quantity,minimum,unit_id,status,capacity\nnear,sandbag,consumable,300,100,,,\nfar,sandbag,consumable,1000,0,,,\nfar,pump,equipment,,,P-07,available,\nfar,boat,vehicle,,,B-02,wrecked,8\n",
    )?;
    let path = |path: &std::path::Path| path.to_string_lossy().into_owned();
    let refused = run_pingji(&url, &["supplies", "import", "--depots", &path(&depots), "--stock", &path(&stock)]).await?;
    assert_ne!(refused.code(), Some(0));
    assert!(refused.stderr.contains("stock csv line 5: status \"wrecked\" cannot be imported"), "{}", refused.stderr);
    let listed = supplies_with(server.channel().await?, ADMIN_TOKEN).list_depots(pb::ListDepotsRequest::default()).await?;
    assert!(listed.into_inner().depots.is_empty(), "nothing was imported");

    let good = std::fs::read_to_string(&stock)?.replace("wrecked", "in_repair");
    std::fs::write(&stock, good)?;
    let imported =
        run_pingji(&url, &["supplies", "import", "--depots", &path(&depots), "--stock", &path(&stock)]).await?.success()?;
    assert!(imported.stdout.contains("imported 2 depots, 2 stock rows, 2 units"), "{}", imported.stdout);
    let incident = incident(&mut command, INCIDENT, "flood").await?;
    let made = run_pingji(&url, &["--json", "supplies", "request", &incident, "sandbag=500", "pump=1"]).await?.success()?;
    let request = made.json()?["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(request, "sup-000001");
    let proposed = run_pingji(&url, &["supplies", "propose", &request]).await?.success()?;
    assert!(proposed.stdout.contains("sandbag x300 from near"), "{}", proposed.stdout);
    assert!(proposed.stdout.contains("sandbag x200 from far"), "{}", proposed.stdout);
    for step in ["confirm", "dispatch", "deliver"] {
        run_pingji(&url, &["supplies", step, &request]).await?.success()?;
    }
    let listed = run_pingji(&url, &["supplies", "requests", "--incident", &incident]).await?.success()?;
    assert!(listed.stdout.contains("sup-000001  delivered"), "{}", listed.stdout);
    let levels = run_pingji(&url, &["supplies", "levels"]).await?.success()?;
    assert!(levels.stdout.contains("sandbag"), "{}", levels.stdout);

    let out_depots = dir.path().join("out-depots.csv");
    let out_stock = dir.path().join("out-stock.csv");
    run_pingji(&url, &["supplies", "export", "--depots", &path(&out_depots), "--stock", &path(&out_stock)]).await?.success()?;
    let exported = parse_supply_csv(Some(&std::fs::read_to_string(&out_depots)?), None)
        .map_err(|problems| anyhow::anyhow!("{problems:?}"))?;
    assert_eq!(exported.request.depots.len(), 2);
    let stock_out = std::fs::read_to_string(&out_stock)?;
    assert!(stock_out.contains("near,sandbag,consumable,0,100"), "{stock_out}");
    assert!(stock_out.contains("far,pump,equipment,,,P-07,dispatched"), "{stock_out}");
    server.shutdown().await
}
