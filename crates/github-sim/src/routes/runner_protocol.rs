//! The stand-in's connection (`/_runner/...`; see [`crate::protocol`]): not GitHub's surface.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use tokio::time::Instant;

use crate::app::AppState;
use crate::error::GitHubError;
use crate::protocol::{
    CompleteRequest, ConnectRequest, ConnectResponse, DisconnectRequest, PollRequest,
    RunnerMessage, clip_log,
};
use crate::world::ConnectError;

/// The `/_runner` routes (nested by the caller).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/connect", post(connect))
        .route("/poll", post(poll))
        .route("/complete", post(complete))
        .route("/disconnect", post(disconnect))
}

/// `POST /_runner/connect`: 200 session, 401 wrong secret, 404 unknown runner, 409 used config.
async fn connect(
    State(state): State<AppState>,
    Json(request): Json<ConnectRequest>,
) -> Result<Json<ConnectResponse>, GitHubError> {
    let result = state.world().connect(request.runner_id, &request.secret);
    match result {
        Ok(session_id) => Ok(Json(ConnectResponse { session_id })),
        Err(error) => {
            let status = match error {
                ConnectError::UnknownRunner => StatusCode::NOT_FOUND,
                ConnectError::BadSecret => StatusCode::UNAUTHORIZED,
                ConnectError::AlreadyUsed => StatusCode::CONFLICT,
            };
            tracing::info!(runner = request.runner_id, %error, "runner connection refused");
            Err(GitHubError::new(status, error.to_string()))
        }
    }
}

/// `POST /_runner/poll`: the next message, or `idle` after the wait.
async fn poll(
    State(state): State<AppState>,
    Json(request): Json<PollRequest>,
) -> Result<Json<RunnerMessage>, GitHubError> {
    let wait = Duration::from_millis(request.wait_ms).min(state.poll_max);
    let deadline = Instant::now() + wait;
    loop {
        let notify = {
            let mut world = state.world();
            let Some(session) = world.sessions.get_mut(&request.session_id) else {
                return Err(GitHubError::new(StatusCode::NOT_FOUND, "session expired"));
            };
            session.last_seen = std::time::Instant::now();
            if session.removed {
                world.sessions.remove(&request.session_id);
                return Ok(Json(RunnerMessage::Exit {
                    message: "the runner was removed from GitHub".to_owned(),
                }));
            }
            if let Some(message) = session.messages.pop_front() {
                return Ok(Json(message));
            }
            session.notify.clone()
        };
        tokio::select! {
            () = notify.notified() => {}
            () = tokio::time::sleep_until(deadline) => return Ok(Json(RunnerMessage::Idle)),
            () = state.cancel.cancelled() => return Ok(Json(RunnerMessage::Idle)),
        }
    }
}

/// `POST /_runner/complete`: 204; 409 when the job is not this runner's. The job keeps the
/// end of the `log` sent (at most [`crate::protocol::LOG_LIMIT_BYTES`], whatever the runner
/// sent).
async fn complete(State(state): State<AppState>, Json(request): Json<CompleteRequest>) -> Response {
    let conclusion = match request.conclusion.as_str() {
        c @ ("success" | "failure" | "cancelled" | "skipped" | "neutral" | "timed_out") => c,
        _ => "failure",
    };
    let log = request.log.as_deref().map(|l| clip_log(l).to_owned());
    match state
        .world()
        .complete(&request.session_id, request.job_id, conclusion, log)
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(message) => GitHubError::new(StatusCode::CONFLICT, message).into_response(),
    }
}

/// `POST /_runner/disconnect`: 204; the runner is offline at once (a running job fails).
async fn disconnect(
    State(state): State<AppState>,
    Json(request): Json<DisconnectRequest>,
) -> StatusCode {
    state
        .world()
        .end_session(&request.session_id, "disconnected");
    StatusCode::NO_CONTENT
}
