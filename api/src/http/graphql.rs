//! GraphQL over HTTP, as the GraphQL-over-HTTP specification describes:
//! `POST` with JSON, `GET` for queries only, `application/graphql-response+json`
//! or `application/json` by the `Accept` header, GraphiQL for browsers
//! (served from the binary by [`super::console`]).

use std::any::Any;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request, Variables};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::caller::Caller;
use crate::error::{ApiError, ErrorCode, UNAVAILABLE_RETRY_AFTER_SECS};
use crate::graphql::budget::{self, Operation};
use crate::graphql::{GembaSchema, RequestCtx, guard};
use crate::policy::Policy;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// The media type a response is sent as.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        })
    }
}

/// Picks the response media type from `Accept`; `None` means 406.
pub(super) fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Media::Json);
    };
    if accept.trim().is_empty() {
        return Some(Media::Json);
    }
    let mut best: Option<(f32, Media)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let ty = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if q <= 0.0 {
            continue;
        }
        let media = match ty.as_str() {
            GRAPHQL_RESPONSE => Media::GraphqlResponse,
            JSON | "application/*" | "*/*" => Media::Json,
            _ => continue,
        };
        // Higher q wins; on a tie the explicit graphql-response type wins.
        let better = match best {
            None => true,
            Some((bq, bm)) => {
                q > bq || (q == bq && media == Media::GraphqlResponse && bm == Media::Json)
            }
        };
        if better {
            best = Some((q, media));
        }
    }
    best.map(|(_, m)| m)
}

pub(super) fn error_body(message: &str, code: &str) -> Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

pub(super) fn respond(status: StatusCode, media: Media, body: &Value) -> Response {
    let mut res = (status, body.to_string()).into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, media.content_type());
    res
}

/// A request refused before execution (bad JSON, bad parameters): always 4xx.
fn request_error(status: StatusCode, media: Media, message: &str) -> Response {
    respond(status, media, &error_body(message, "BAD_USER_INPUT"))
}

/// Panics become a masked `INTERNAL` error.
pub fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = detail, "request handler panicked");
    respond(
        StatusCode::INTERNAL_SERVER_ERROR,
        Media::Json,
        &error_body("internal error", "INTERNAL"),
    )
}

/// The parameters of a GraphQL request, from a JSON body or a query string.
struct Params {
    /// Empty for a persisted query sent by hash alone.
    query: String,
    operation_name: Option<String>,
    variables: Option<Map<String, Value>>,
    extensions: Option<Map<String, Value>>,
}

fn params_from_json(body: Value) -> Result<Params, &'static str> {
    let Value::Object(mut obj) = body else {
        return Err(if body.is_array() {
            "batched requests are not supported"
        } else {
            "the request body must be a JSON object"
        });
    };
    let extensions = match obj.remove("extensions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err("`extensions` must be an object"),
    };
    let persisted = extensions
        .as_ref()
        .is_some_and(|e| e.contains_key("persistedQuery"));
    let query = match obj.remove("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q,
        None | Some(Value::Null) if persisted => String::new(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err("the `query` parameter is required");
        }
        Some(_) => return Err("`query` must be a string"),
    };
    let operation_name = match obj.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("`operationName` must be a string"),
    };
    let variables = match obj.remove("variables") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err("`variables` must be an object"),
    };
    Ok(Params {
        query,
        operation_name,
        variables,
        extensions,
    })
}

fn params_from_query_string(raw: &str) -> Result<Option<Params>, &'static str> {
    let mut query = None;
    let mut operation_name = None;
    let mut variables = None;
    for (k, v) in form_urlencoded_pairs(raw) {
        match k.as_str() {
            "query" => query = Some(v),
            "operationName" if !v.is_empty() => operation_name = Some(v),
            "variables" if !v.is_empty() => match serde_json::from_str::<Value>(&v) {
                Ok(Value::Object(m)) => variables = Some(m),
                Ok(Value::Null) => {}
                _ => return Err("`variables` must be a JSON object"),
            },
            "extensions" if !v.is_empty() => match serde_json::from_str::<Value>(&v) {
                Ok(Value::Object(_) | Value::Null) => {}
                _ => return Err("`extensions` must be a JSON object"),
            },
            _ => {}
        }
    }
    match query {
        None => Ok(None),
        Some(q) if q.trim().is_empty() => Err("the `query` parameter is required"),
        // Persisted queries travel over POST only: a hash alone would hide
        // whether a GET runs a mutation.
        Some(q) => Ok(Some(Params {
            query: q,
            operation_name,
            variables,
            extensions: None,
        })),
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs.
fn form_urlencoded_pairs(raw: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// A request refused as a whole, answered as JSON (the ingest and webhook
/// endpoints; `/graphql` negotiates the media type with [`error_response`]).
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(Media::Json, &self)
    }
}

/// The answer to a request refused before execution by `err`: the status of
/// its code, `WWW-Authenticate` for 401 and `Retry-After` where it applies.
pub(super) fn error_response(media: Media, err: &ApiError) -> Response {
    err.log();
    let code = err.code();
    let mut res = respond(
        status_of(code),
        media,
        &error_body(&err.message(), code.as_str()),
    );
    if code == ErrorCode::Unauthenticated {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(secs) = err.retry_after_secs() {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The error of an answer without data whose code decides its status
/// (`RATE_LIMITED`, `INTERNAL`, `UNAVAILABLE`, `TIMEOUT`): the status and
/// the `Retry-After` it carries.
fn deciding_error(body: &Value) -> Option<(StatusCode, Option<u64>)> {
    if !body.get("data").is_none_or(Value::is_null) {
        return None;
    }
    body.get("errors")?.as_array()?.iter().find_map(|e| {
        let ext = e.get("extensions")?;
        let code = ErrorCode::parse(ext.get("code")?.as_str()?)?;
        code.decides_status().then(|| {
            let retry = ext.get("retryAfter").and_then(Value::as_u64);
            (status_of(code), retry)
        })
    })
}

async fn execute(
    state: AppState,
    policy: Policy,
    addr: SocketAddr,
    params: Params,
    media: Media,
) -> Response {
    state.graphql_requests.fetch_add(1, Ordering::Relaxed);
    let budgets = &state.services.budgets;
    let cost_key = budgets.enabled().then(|| {
        budgets.cost_key(&Operation {
            query: &params.query,
            operation_name: params.operation_name.as_deref(),
            variables: params.variables.as_ref(),
            persisted: params
                .extensions
                .as_ref()
                .and_then(|e| e.get("persistedQuery")),
        })
    });
    let mut request = Request::new(params.query);
    if let Some(op) = params.operation_name {
        request = request.operation_name(op);
    }
    if let Some(vars) = params.variables {
        request = request.variables(Variables::from_json(Value::Object(vars)));
    }
    if let Some(ext) = params.extensions {
        for (k, v) in ext {
            match async_graphql::Value::from_json(v) {
                Ok(v) => {
                    request.extensions.0.insert(k, v);
                }
                Err(_) => {
                    return request_error(StatusCode::BAD_REQUEST, media, "invalid `extensions`");
                }
            }
        }
    }
    let mut ctx = RequestCtx::new(
        state.db.clone(),
        policy,
        state.services.clone(),
        Some(addr.ip()),
    );
    let response = match state.admission.admit(request) {
        // An operation seen before is charged its remembered cost here and
        // runs without the budget's extension; a new one is charged by the
        // extension, which remembers its cost under `cost_key`.
        Ok(request) => match cost_key.and_then(|k| budgets.known_cost(k)) {
            Some(cost) => {
                let caller = budget::caller_of(&ctx.policy, ctx.client_addr);
                match budgets.spend(caller, cost) {
                    Ok(_) => run(&state, &state.unmetered, request.data(ctx)).await,
                    Err(e) => Ok(async_graphql::Response::from_errors(vec![budget::refusal(
                        e,
                    )])),
                }
            }
            None => {
                ctx.cost_key = cost_key;
                run(&state, &state.schema, request.data(ctx)).await
            }
        },
        Err(refused) => Ok(async_graphql::Response::from_errors(vec![refused])),
    };
    let response = match response {
        Ok(response) => response,
        Err(timeout) => return error_response(media, &timeout),
    };
    // Without errors there is nothing to add or decide: the answer is
    // serialised straight from the response, without an intermediate tree.
    if response.errors.is_empty() {
        return match serde_json::to_vec(&response) {
            Ok(body) => {
                let mut res = (StatusCode::OK, body).into_response();
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, media.content_type());
                res
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a response");
                respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    media,
                    &error_body("internal error", "INTERNAL"),
                )
            }
        };
    }
    // A request error (the document did not parse or validate, or variables
    // did not coerce) leaves no `data` and errors without a path.
    let request_failed = response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let mut body = match serde_json::to_value(&response) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a response");
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                &error_body("internal error", "INTERNAL"),
            );
        }
    };
    if let Some(errors) = body.get_mut("errors").and_then(Value::as_array_mut) {
        for err in errors {
            let Some(obj) = err.as_object_mut() else {
                continue;
            };
            // Apollo clients resend the document on this code.
            let not_persisted =
                obj.get("message").and_then(Value::as_str) == Some("PersistedQueryNotFound");
            let ext = obj
                .entry("extensions")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(ext) = ext.as_object_mut() {
                ext.entry("code").or_insert_with(|| {
                    Value::String(
                        if not_persisted {
                            "PERSISTED_QUERY_NOT_FOUND"
                        } else {
                            "BAD_USER_INPUT"
                        }
                        .into(),
                    )
                });
            }
        }
    }
    let deciding = deciding_error(&body);
    if (request_failed || deciding.is_some())
        && let Some(obj) = body.as_object_mut()
    {
        obj.remove("data");
    }
    let status = match deciding {
        Some((status, _)) => status,
        None if request_failed && media == Media::GraphqlResponse => StatusCode::BAD_REQUEST,
        None => StatusCode::OK,
    };
    let mut res = respond(status, media, &body);
    let retry_after = match deciding {
        Some((_, Some(secs))) => Some(secs),
        Some((StatusCode::SERVICE_UNAVAILABLE, None)) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
        _ => None,
    };
    if let Some(secs) = retry_after {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// Runs `request` on `schema` until the request deadline.
///
/// # Errors
/// `TIMEOUT` at the deadline: dropping the execution cancels its work, and
/// PostgreSQL's `statement_timeout` (the same deadline) ends a statement in
/// flight.
async fn run(
    state: &AppState,
    schema: &GembaSchema,
    request: Request,
) -> Result<async_graphql::Response, ApiError> {
    let deadline = state.services.settings.request_timeout;
    tokio::time::timeout(deadline, schema.execute(request))
        .await
        .map_err(|_| {
            state.timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(?deadline, "a request passed its deadline");
            ApiError::Timeout
        })
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(JSON))
}

pub async fn graphql_post(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Caller(policy): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(media) = negotiate(&headers) else {
        return request_error(
            StatusCode::NOT_ACCEPTABLE,
            Media::Json,
            "the Accept header allows neither application/graphql-response+json nor application/json",
        );
    };
    if !is_json_content_type(&headers) {
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "send the request as Content-Type: application/json",
        );
    }
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return request_error(StatusCode::BAD_REQUEST, media, "the body is not valid JSON");
        }
    };
    match params_from_json(parsed) {
        Ok(params) => execute(state, policy, addr, params, media).await,
        Err(msg) => request_error(StatusCode::BAD_REQUEST, media, msg),
    }
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

fn method_not_allowed(media: Media) -> Response {
    let mut res = request_error(
        StatusCode::METHOD_NOT_ALLOWED,
        media,
        "only queries may be sent with GET; send mutations with POST",
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    res
}

/// The operation a GET request would run, when the document parses.
fn selected_operation(query: &str, name: Option<&str>) -> Option<OperationType> {
    let doc = async_graphql::parser::parse_query(query).ok()?;
    match doc.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(map) => match name {
            Some(n) => map
                .iter()
                .find(|(k, _)| k.as_str() == n)
                .map(|(_, op)| op.node.ty),
            None if map.len() == 1 => map.values().next().map(|op| op.node.ty),
            None => None,
        },
    }
}

pub async fn graphql_get(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Caller(policy): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let params = match params_from_query_string(&raw) {
        Ok(p) => p,
        Err(msg) => {
            let media = negotiate(&headers).unwrap_or(Media::Json);
            return request_error(StatusCode::BAD_REQUEST, media, msg);
        }
    };
    // The operation type is read below before the schema's own guard runs:
    // the text is checked first, so that parse cannot be made to recurse.
    if let Some(p) = &params
        && let Err(msg) = guard::check_nesting(&p.query, state.services.settings.max_nesting)
    {
        let media = negotiate(&headers).unwrap_or(Media::Json);
        return request_error(StatusCode::BAD_REQUEST, media, &msg);
    }
    let Some(params) = params else {
        if wants_html(&headers) {
            return super::console::graphiql();
        }
        let media = negotiate(&headers).unwrap_or(Media::Json);
        return request_error(
            StatusCode::BAD_REQUEST,
            media,
            "the `query` parameter is required",
        );
    };
    let Some(media) = negotiate(&headers) else {
        return request_error(
            StatusCode::NOT_ACCEPTABLE,
            Media::Json,
            "the Accept header allows neither application/graphql-response+json nor application/json",
        );
    };
    if matches!(
        selected_operation(&params.query, params.operation_name.as_deref()),
        Some(OperationType::Mutation | OperationType::Subscription)
    ) {
        return method_not_allowed(media);
    }
    execute(state, policy, addr, params, media).await
}
