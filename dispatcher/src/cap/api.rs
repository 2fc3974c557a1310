//! `CapService`: the alerts issued and received (viewer and above), and
//! the suggestions, which a commander approves or dismisses (roles in
//! `pingji_engine::accounts::role_needed`).

use pingji_engine::engine::Command;
use pingji_proto::v1 as pb;
use pingji_proto::v1::cap_service_server::CapService;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::convert::cap::{is_pending, issued_to_pb, received_to_pb, suggestion_to_pb};
use crate::runtime::Dispatcher;
use crate::server::auth::caller;
use crate::server::error;

pub struct CapApi {
    pub dispatcher: Dispatcher,
}

impl CapApi {
    async fn decide(&self, command: Command, actor: String, id: String) -> Result<Response<pb::CapSuggestion>, Status> {
        let suggestion = self
            .dispatcher
            .execute(command, actor, move |engine, _| engine.state().cap.suggestions.get(&id).map(suggestion_to_pb))
            .await?;
        suggestion.map(Response::new).ok_or_else(|| error::internal("the suggestion was decided but cannot be read back"))
    }
}

#[tonic::async_trait]
impl CapService for CapApi {
    #[instrument(skip_all)]
    async fn list_cap_alerts(
        &self,
        _request: Request<pb::ListCapAlertsRequest>,
    ) -> Result<Response<pb::ListCapAlertsResponse>, Status> {
        let response = self
            .dispatcher
            .query(|engine, _| {
                let state = &engine.state().cap;
                pb::ListCapAlertsResponse {
                    issued: state
                        .issued
                        .iter()
                        .map(|alert| issued_to_pb(alert, state.sent_at.get(&alert.identifier).copied()))
                        .collect(),
                    received: state.received_log.iter().map(|(at, alert)| received_to_pb(alert, Some(*at))).collect(),
                }
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all)]
    async fn list_cap_suggestions(
        &self,
        request: Request<pb::ListCapSuggestionsRequest>,
    ) -> Result<Response<pb::ListCapSuggestionsResponse>, Status> {
        let all = request.into_inner().all;
        let response = self
            .dispatcher
            .query(move |engine, _| pb::ListCapSuggestionsResponse {
                suggestions: engine
                    .state()
                    .cap
                    .suggestions
                    .values()
                    .filter(|suggestion| all || is_pending(suggestion))
                    .map(suggestion_to_pb)
                    .collect(),
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all)]
    async fn approve_cap_suggestion(
        &self,
        request: Request<pb::ApproveCapSuggestionRequest>,
    ) -> Result<Response<pb::CapSuggestion>, Status> {
        let actor = caller(&request)?.actor();
        let id = request.into_inner().suggestion_id.trim().to_string();
        self.decide(Command::ApproveCapSuggestion { suggestion: id.clone() }, actor, id).await
    }

    #[instrument(skip_all)]
    async fn dismiss_cap_suggestion(
        &self,
        request: Request<pb::DismissCapSuggestionRequest>,
    ) -> Result<Response<pb::CapSuggestion>, Status> {
        let actor = caller(&request)?.actor();
        let request = request.into_inner();
        let id = request.suggestion_id.trim().to_string();
        self.decide(Command::DismissCapSuggestion { suggestion: id.clone(), reason: request.reason }, actor, id).await
    }
}
