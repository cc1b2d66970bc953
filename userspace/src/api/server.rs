//! HTTP routes over the Unix socket; thin: decode, call the daemon, encode. [`serve`] also
//! serves Docker's plugin routes on theirs.

use std::{
    convert::Infallible,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use axum::{
    Json, Router,
    body::Body,
    extract::{MatchedPath, Path as UrlPath, Query, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use tracing::{Instrument as _, debug, info_span, warn};

use super::types::{
    AttachRequest, ContainerCreate, ContainerProcess, ErrorBody, MonitorQuery, NetworkConnect,
    NetworkCreate, PortRange, PortsRequest, RemoveOptions,
};
use crate::{daemon::Daemon, error::XnetError};

impl IntoResponse for XnetError {
    fn into_response(self) -> Response {
        let status = match self {
            XnetError::NotFound(_) => StatusCode::NOT_FOUND,
            XnetError::Conflict(_) => StatusCode::CONFLICT,
            XnetError::Invalid(_) => StatusCode::BAD_REQUEST,
            XnetError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            XnetError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(ErrorBody {
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}

type Shared = State<Arc<Daemon>>;
type ApiResult<T> = Result<Json<T>, XnetError>;

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/networks", get(list_networks).post(create_network))
        .route(
            "/networks/{name}",
            get(inspect_network).delete(remove_network),
        )
        .route("/containers", get(list_containers).post(create_container))
        .route(
            "/containers/{name}",
            get(inspect_container).delete(remove_container),
        )
        .route("/containers/{name}/process", put(set_process))
        .route("/containers/{name}/publish", post(add_ports))
        .route("/containers/{name}/unpublish", post(remove_ports))
        .route("/stats", get(stats))
        .route("/monitor", get(monitor))
        .route("/networks/{name}/connect", post(connect))
        .route("/networks/{name}/disconnect", post(disconnect))
        .route("/attached", post(attach))
        .route("/attached/{name}", delete(detach))
        .with_state(daemon)
}

/// Serves `routes` on `socket` until `shutdown` resolves, one span per request (its number,
/// method and path) around everything logged while answering it. The socket is root-only
/// (0600): the API creates namespaces and attaches kernel programs, and dockerd runs as root.
pub async fn serve(
    socket: &Path,
    routes: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let routes = routes.layer(middleware::from_fn(request_span));
    axum::serve(bind(socket)?, routes)
        .with_graceful_shutdown(shutdown)
        .await
        .with_context(|| format!("serving {}", socket.display()))
}

/// Runs one request inside its own span, logs how it ended and records how long it took.
async fn request_span(request: Request, next: Next) -> Response {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let span = info_span!(
        "request",
        id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let route = match request.extensions().get::<MatchedPath>() {
        Some(route) => route.as_str().to_string(),
        None => "unmatched".to_string(),
    };
    let method = request.method().clone();
    async move {
        let started = Instant::now();
        let response = next.run(request).await;
        let status = response.status();
        let elapsed = started.elapsed().as_secs_f64();
        super::metrics::observe_request(&route, method.as_str(), elapsed);
        let elapsed_ms = elapsed * 1000.0;
        if status.is_server_error() {
            warn!(status = status.as_u16(), elapsed_ms, "request failed");
        } else {
            debug!(status = status.as_u16(), elapsed_ms, "request done");
        }
        response
    }
    .instrument(span)
    .await
}

/// A root-only listener on `socket`, replacing a stale socket file but never a live server's.
fn bind(socket: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        anyhow::bail!("another xnetd is already serving {}", socket.display());
    }
    let _ = std::fs::remove_file(socket);
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// How long a monitor's stream may stay silent: an empty line then shows whether the client
/// is still there (a write to a closed connection ends the stream and detaches the monitor).
const MONITOR_KEEPALIVE: Duration = Duration::from_secs(2);

/// `GET /monitor`: the datapath's events as they happen, one JSON object per line, until the
/// client goes.
async fn monitor(
    State(d): Shared,
    Query(query): Query<MonitorQuery>,
) -> Result<Response, XnetError> {
    let subscription = d.attach_monitor(query).await?;
    let lines = futures::stream::unfold(subscription, |mut subscription| async move {
        let text = match tokio::time::timeout(MONITOR_KEEPALIVE, subscription.next()).await {
            Err(_) => "\n".to_string(),
            Ok(None) => return None,
            Ok(Some(lines)) => lines
                .iter()
                .filter_map(|line| serde_json::to_string(line).ok())
                .map(|json| json + "\n")
                .collect(),
        };
        Some((Ok::<_, Infallible>(text), subscription))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

async fn list_networks(State(d): Shared) -> ApiResult<Vec<super::types::NetworkInspect>> {
    Ok(Json(d.networks().await?))
}

async fn create_network(
    State(d): Shared,
    Json(req): Json<NetworkCreate>,
) -> ApiResult<super::types::NetworkInspect> {
    Ok(Json(d.create_network(req).await?))
}

async fn inspect_network(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<super::types::NetworkInspect> {
    Ok(Json(d.network(&name).await?))
}

async fn remove_network(State(d): Shared, UrlPath(name): UrlPath<String>) -> ApiResult<()> {
    Ok(Json(d.remove_network(&name).await?))
}

async fn connect(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<NetworkConnect>,
) -> ApiResult<()> {
    Ok(Json(d.connect(&name, req).await?))
}

async fn disconnect(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<NetworkConnect>,
) -> ApiResult<()> {
    Ok(Json(d.disconnect(&name, req).await?))
}

async fn attach(
    State(d): Shared,
    Json(req): Json<AttachRequest>,
) -> ApiResult<super::types::ContainerInspect> {
    Ok(Json(d.attach(req).await?))
}

async fn detach(State(d): Shared, UrlPath(name): UrlPath<String>) -> ApiResult<()> {
    Ok(Json(d.detach(&name).await?))
}

async fn list_containers(State(d): Shared) -> ApiResult<Vec<super::types::ContainerInspect>> {
    Ok(Json(d.containers().await))
}

async fn create_container(
    State(d): Shared,
    Json(req): Json<ContainerCreate>,
) -> ApiResult<super::types::ContainerInspect> {
    Ok(Json(d.create_container(req).await?))
}

async fn inspect_container(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<super::types::ContainerInspect> {
    Ok(Json(d.container(&name).await?))
}

async fn remove_container(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Query(opts): Query<RemoveOptions>,
) -> ApiResult<()> {
    Ok(Json(d.remove_container(&name, opts.force).await?))
}

async fn set_process(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<ContainerProcess>,
) -> ApiResult<()> {
    Ok(Json(d.set_process(&name, req.pid).await?))
}

async fn add_ports(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<PortsRequest>,
) -> ApiResult<Vec<PortRange>> {
    Ok(Json(d.add_ports(&name, &req.specs).await?))
}

async fn remove_ports(
    State(d): Shared,
    UrlPath(name): UrlPath<String>,
    Json(req): Json<PortsRequest>,
) -> ApiResult<Vec<PortRange>> {
    Ok(Json(d.remove_ports(&name, &req.specs).await?))
}

async fn stats(State(d): Shared) -> ApiResult<super::types::StatsReport> {
    Ok(Json(d.stats().await))
}
