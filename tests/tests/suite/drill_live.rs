//! The live drill runner against a real dispatcher: the smoke drill with every
//! simulated person a real gRPC session through `AgentClient`.

use std::path::Path;

use pingji_tests::{TestServer, pb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smoke_drill_runs_live_with_hundreds_of_real_sessions() -> anyhow::Result<()> {
    let server = TestServer::start(|_| {}).await?;
    let drill_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/drills/smoke.toml");
    let drill = pingji_scenarios::drill::load(&drill_path).map_err(anyhow::Error::msg)?;
    let out = tempfile::tempdir()?;
    let mut options =
        pingji_scenarios::live::LiveOptions::new(&format!("http://{}", server.address()), Some(pingji_tests::ADMIN_TOKEN))?;
    options.speed = 180.0;

    let mut command = server.command().await?;
    let mut most_connected = 0;
    let run = pingji_scenarios::live::run(&drill, &options, out.path(), |_| {});
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            report = &mut run => break report?,
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {
                let connected = command
                    .list_agents(pb::ListAgentsRequest { connected_only: true, limit: 5000, ..Default::default() })
                    .await?
                    .into_inner()
                    .agents
                    .len();
                most_connected = most_connected.max(connected);
            }
        }
    };

    assert!(report.drill.people >= 200, "{} people", report.drill.people);
    assert!(most_connected >= 200, "at most {most_connected} people were connected at once");
    assert_eq!(report.totals.incidents, 8, "every incident of the timeline was created");
    assert_eq!(report.totals.mode_switches, 1);
    assert!(report.totals.accepted >= 1, "people accepted offers over their sessions");
    for file in ["report.md", "report.json", "accept.svg", "arrive.svg", "staffing.svg", "map.svg"] {
        assert!(out.path().join(file).exists(), "{file} written");
    }
    // Every session was closed at the end of the run.
    let still_connected = command
        .list_agents(pb::ListAgentsRequest { connected_only: true, limit: 5000, ..Default::default() })
        .await?
        .into_inner()
        .agents
        .len();
    assert!(still_connected <= 5, "{still_connected} sessions left open");
    server.shutdown().await
}
