//! `mxrt serve`: a model behind HTTP (axum on tokio). The handlers check a request, count its tokens, and
//! hand it to the batcher ([`batcher`]), which runs requests that arrive together as one forward pass.
//! Every answer is JSON; every failure is a JSON error with the status that says whose fault it is.

pub mod api;
pub mod batcher;
pub mod metrics;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use mxrt_runtime::{ModelInfo, Session, Task};
use serde_json::{json, Value};

use api::ApiError;
use batcher::{Batcher, Work};
use metrics::Metrics;

/// Per-request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Texts (and pairs) or feature rows per request.
    pub max_inputs: usize,
    /// Tokens per request, after each text's truncation.
    pub max_tokens: usize,
}

/// What every handler shares.
pub struct App {
    pub session: Arc<Session>,
    pub info: ModelInfo,
    pub name: String,
    pub batcher: Batcher,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
}

/// The routes, the JSON 404 for any other path, and the body limit.
pub fn router(app: Arc<App>) -> Router {
    let limit = app.limits.max_body_bytes;
    Router::new()
        .route("/v1/embeddings", post(embeddings))
        .route("/classify", post(classify))
        .route("/run", post(run))
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

type Body = Result<Bytes, BytesRejection>;

async fn embeddings(State(app): State<Arc<App>>, body: Body) -> Response {
    let start = Instant::now();
    let result = async {
        let v = json_body(body)?;
        if app.info.task != Task::Embedding {
            return Err(wrong_task(&app.info, "/v1/embeddings"));
        }
        let req = api::parse_embeddings(&v, app.limits.max_inputs, app.info.output_width)?;
        let inputs: Vec<(String, Option<String>)> =
            req.texts.into_iter().map(|t| (t, None)).collect();
        let tokens = count_tokens(&app, &inputs)?;
        let vectors = compute(&app, Work::Texts(inputs)).await?;
        Ok(api::embeddings_response(
            &app.name, &vectors, req.base64, tokens,
        ))
    }
    .await;
    finish(&app, "/v1/embeddings", start, result)
}

async fn classify(State(app): State<Arc<App>>, body: Body) -> Response {
    let start = Instant::now();
    let result = async {
        let v = json_body(body)?;
        if !matches!(app.info.task, Task::Classification | Task::Regression) {
            return Err(wrong_task(&app.info, "/classify"));
        }
        let inputs = api::parse_classify(&v, app.limits.max_inputs)?;
        count_tokens(&app, &inputs)?;
        let outputs = compute(&app, Work::Texts(inputs.clone())).await?;
        Ok(api::classify_response(
            &app.name,
            &app.info.labels,
            &inputs,
            outputs,
        ))
    }
    .await;
    finish(&app, "/classify", start, result)
}

async fn run(State(app): State<Arc<App>>, body: Body) -> Response {
    let start = Instant::now();
    let result = async {
        let v = json_body(body)?;
        let Some(features) = app.info.input_features else {
            return Err(wrong_task(&app.info, "/run"));
        };
        let (x, rows) = api::parse_run(&v, features, app.limits.max_inputs)?;
        let outputs = compute(&app, Work::Rows { x, rows }).await?;
        Ok(api::run_response(&app.name, &app.info.labels, outputs))
    }
    .await;
    finish(&app, "/run", start, result)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let start = Instant::now();
    let body = json!({
        "status": "ok",
        "model": app.name,
        "task": app.info.task.name(),
        "backend": app.info.backend,
    });
    finish(&app, "/health", start, Ok(body))
}

async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    let text = app.metrics.render();
    app.metrics.request("/metrics", 200, 0.0);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found(State(app): State<Arc<App>>, uri: axum::http::Uri) -> Response {
    let err = ApiError::new(
        404,
        format!(
            "no route {}: the routes are POST /v1/embeddings, POST /classify, POST /run, GET /health, GET /metrics",
            uri.path()
        ),
    );
    finish(&app, "other", Instant::now(), Err(err))
}

async fn method_not_allowed(
    State(app): State<Arc<App>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    let route = known_route(uri.path());
    let err = ApiError::new(405, format!("{method} is not allowed on {}", uri.path()));
    finish(&app, route, Instant::now(), Err(err))
}

/// The metrics label of a path that has a route.
fn known_route(path: &str) -> &'static str {
    ["/v1/embeddings", "/classify", "/run", "/health", "/metrics"]
        .into_iter()
        .find(|r| *r == path)
        .unwrap_or("other")
}

/// The body as JSON: a body over the limit is 413, anything but a JSON object 400.
fn json_body(body: Body) -> Result<Value, ApiError> {
    let bytes = body.map_err(|e| {
        let status = e.status().as_u16();
        if status == 413 {
            ApiError::new(413, format!("request body too large: {}", e.body_text()))
        } else {
            ApiError::new(status, e.body_text())
        }
    })?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(v)
}

fn wrong_task(info: &ModelInfo, route: &str) -> ApiError {
    let right = match info.task {
        Task::Classification | Task::Regression => "POST /classify",
        Task::Embedding => "POST /v1/embeddings",
        Task::Features => "POST /run",
    };
    ApiError::bad_request(format!(
        "{route}: this model answers {} requests; use {right}",
        info.task.name()
    ))
}

/// Tokens the request will compute on; more than the limit is 413.
fn count_tokens(app: &App, inputs: &[(String, Option<String>)]) -> Result<usize, ApiError> {
    let encoder = app
        .session
        .encoder()
        .ok_or_else(|| ApiError::bad_request("this model takes feature rows, not text"))?;
    let refs: Vec<(&str, Option<&str>)> = inputs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_deref()))
        .collect();
    let counts = encoder
        .token_counts(&refs)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let total: usize = counts.iter().sum();
    if total > app.limits.max_tokens {
        return Err(ApiError::new(
            413,
            format!(
                "{total} tokens in one request; the limit is {} (--max-tokens): split the request",
                app.limits.max_tokens
            ),
        ));
    }
    Ok(total)
}

/// The work through the batcher: 503 when its queue is full.
async fn compute(app: &App, work: Work) -> Result<Vec<Vec<f32>>, ApiError> {
    let answer = app
        .batcher
        .submit(work)
        .map_err(|_| ApiError::new(503, "the server is busy (its queue is full): retry shortly"))?;
    answer
        .await
        .map_err(|_| ApiError::new(500, "the batcher stopped before answering"))?
        .map_err(|e| ApiError::new(500, format!("inference failed: {e}")))
}

/// The JSON response, counted in the metrics; 503 carries `Retry-After`.
fn finish(
    app: &App,
    route: &'static str,
    start: Instant,
    result: Result<Value, ApiError>,
) -> Response {
    let (status, body) = match result {
        Ok(v) => (200, v),
        Err(e) => (e.status, e.body()),
    };
    app.metrics
        .request(route, status, start.elapsed().as_secs_f64());
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        code,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    if status == 503 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
