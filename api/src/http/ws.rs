//! GraphQL over WebSocket at `/graphql/ws`: the `graphql-transport-ws`
//! protocol of the `graphql-ws` library (its PROTOCOL.md), implemented here
//! so that every close code, access check and limit is ours:
//!
//! - the token comes in `connection_init`'s payload (`{"token": "..."}` or
//!   `{"Authorization": "Bearer ..."}`); without a valid one the socket
//!   closes with 4403;
//! - `subscribe` before the acknowledgement closes with 4401, no
//!   `connection_init` within the timeout with 4408, a second one with 4429,
//!   a subscription id in use with 4409, a malformed message with 4400;
//! - the socket closes with 4403 when the token expires, is revoked or its
//!   user is deactivated; when the user's memberships change, the open
//!   subscriptions restart with the new access (with the same access they
//!   go on) (a subscription the user may
//!   no longer make ends with `FORBIDDEN`);
//! - the database away at `connection_init` closes with 1013 (try again
//!   later), and during an outage open subscriptions keep the access checked
//!   last instead of closing;
//! - a client that stops reading is disconnected (4413 after
//!   [`SEND_TIMEOUT`]); a subscription that falls behind gets a `LAGGED`
//!   error and goes on: memory per connection is bounded either way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Request, Response, Variables};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response as HttpResponse;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::AppState;
use crate::auth::{self, Viewer};
use crate::graphql::RequestCtx;
use crate::policy::Policy;
use crate::service::live::LiveEvent;

pub const PROTOCOL: &str = "graphql-transport-ws";
/// Messages waiting to be written to one socket.
const OUTBOX: usize = 64;
/// A write that takes longer than this means the client stopped reading.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Subscriptions one connection may hold at once.
const MAX_SUBSCRIPTIONS: usize = 100;
/// Largest message a client may send.
const MAX_MESSAGE: usize = 256 * 1024;
/// Protocol-level pings keep idle connections (and their proxies) alive.
const PING_EVERY: Duration = Duration::from_secs(30);

/// `GET /graphql/ws`: upgrades to a WebSocket speaking [`PROTOCOL`].
pub async fn graphql_ws(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> HttpResponse {
    let ws = ws
        .protocols([PROTOCOL])
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    let accepted = ws.selected_protocol().is_some();
    ws.on_upgrade(move |socket| async move {
        let mut conn = Connection::new(state, socket, addr);
        if accepted {
            conn.run().await;
        } else {
            conn.close(4406, "Subprotocol not acceptable").await;
        }
    })
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Value>,
    },
    Ping {},
    Pong {},
    Subscribe {
        id: String,
        payload: SubscribePayload,
    },
    Complete {
        id: String,
    },
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct SubscribePayload {
    query: String,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default)]
    extensions: Option<serde_json::Map<String, Value>>,
}

/// What subscription tasks tell the connection.
enum Outbound {
    /// A message of run `run` of subscription `id`, sent only while that
    /// run is current: nothing goes out after the client's `complete`, or
    /// from a run that a restart replaced.
    Send { id: String, run: u64, text: String },
    /// The subscription ended by itself (its `complete` is queued).
    Finished { id: String, run: u64 },
}

struct Running {
    payload: SubscribePayload,
    task: JoinHandle<()>,
    /// Told apart from a restarted subscription's earlier run.
    run: u64,
}

struct Connection {
    state: AppState,
    socket: WebSocket,
    addr: SocketAddr,
    /// The token and the viewer it authenticated, once acknowledged.
    auth: Option<(String, Arc<Policy>, Viewer)>,
    init_seen: bool,
    subs: HashMap<String, Running>,
    runs: u64,
    out_tx: mpsc::Sender<Outbound>,
    out_rx: mpsc::Receiver<Outbound>,
}

fn token_from(payload: Option<&Value>) -> Option<String> {
    let obj = payload?.as_object()?;
    if let Some(t) = obj.get("token").and_then(Value::as_str) {
        return Some(t.trim().to_owned()).filter(|t| !t.is_empty());
    }
    let header = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.as_str())?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The close code for a frame the WebSocket layer refused (RFC 6455 §7.4.1):
/// 1007 for a text message that is not UTF-8, 1009 for one over the size
/// limit, 1002 for a protocol violation; `None` when the connection itself
/// broke and no close frame can be sent.
fn close_for(err: axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = err.into_inner();
    match inner.downcast_ref::<WsError>()? {
        WsError::Utf8(_) => Some((1007, "Text messages must be UTF-8")),
        WsError::Capacity(_) => Some((1009, "Message too big")),
        WsError::Protocol(_) => Some((1002, "Protocol error")),
        _ => None,
    }
}

/// An error that says nothing about the token: the database is away.
fn is_transient(e: &crate::error::ApiError) -> bool {
    matches!(
        e.code(),
        crate::error::ErrorCode::Unavailable | crate::error::ErrorCode::Timeout
    )
}

/// Whether two authentications of one token give the same access: the same
/// user record and the same memberships, in the same places of the tree.
fn same_access(a: &Viewer, b: &Viewer) -> bool {
    let grants = |v: &Viewer| {
        let mut g: Vec<_> = v
            .grants
            .iter()
            .map(|g| {
                (
                    g.membership_id,
                    g.role,
                    g.unit_id,
                    g.unit_kind,
                    g.ancestors.clone(),
                )
            })
            .collect();
        g.sort_by_key(|x| x.0);
        g
    };
    a.user == b.user && grants(a) == grants(b)
}

/// A request error (no data, errors without a path): the document did not
/// parse or validate. Sent as `error`, not `next`.
fn is_request_error(r: &Response) -> bool {
    r.data == async_graphql::Value::Null
        && !r.errors.is_empty()
        && r.errors.iter().all(|e| e.path.is_empty())
}

impl Connection {
    fn new(state: AppState, socket: WebSocket, addr: SocketAddr) -> Self {
        let (out_tx, out_rx) = mpsc::channel(OUTBOX);
        Self {
            state,
            socket,
            addr,
            auth: None,
            init_seen: false,
            subs: HashMap::new(),
            runs: 0,
            out_tx,
            out_rx,
        }
    }

    async fn close(&mut self, code: u16, reason: &str) {
        for (_, s) in self.subs.drain() {
            s.task.abort();
        }
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.socket.send(Message::Close(Some(frame))),
        )
        .await;
    }

    /// Sends one text message; false when the client is gone or too slow.
    async fn send(&mut self, text: String) -> bool {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Text(text.into()))).await
        {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::info!(addr = %self.addr, "closing a WebSocket whose client stopped reading");
                self.close(4413, "Client too slow: it stopped reading messages")
                    .await;
                false
            }
        }
    }

    async fn run(&mut self) {
        let init_deadline = tokio::time::sleep(self.state.services.settings.ws_init_timeout);
        tokio::pin!(init_deadline);
        let mut live = self.state.services.live.subscribe();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        // Far away until the token is known.
        let expiry = tokio::time::sleep(Duration::from_secs(86_400 * 365));
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                incoming = self.socket.recv() => {
                    let msg = match incoming {
                        Some(Ok(msg)) => msg,
                        Some(Err(e)) => {
                            if let Some((code, reason)) = close_for(e) {
                                self.close(code, reason).await;
                            }
                            break;
                        }
                        None => break,
                    };
                    match msg {
                        Message::Text(text) => {
                            if !self.on_text(text.as_str(), expiry.as_mut()).await {
                                break;
                            }
                        }
                        Message::Binary(_) => {
                            self.close(4400, "Binary messages are not supported").await;
                            break;
                        }
                        Message::Close(_) => {
                            // The WebSocket layer has queued the echo of the
                            // client's close frame (RFC 6455 §5.5.1); flushing
                            // sends it, completing the closing handshake.
                            let _ = tokio::time::timeout(
                                Duration::from_secs(1),
                                futures::SinkExt::flush(&mut self.socket),
                            )
                            .await;
                            break;
                        }
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                Some(out) = self.out_rx.recv() => {
                    match out {
                        Outbound::Send { id, run, text } => {
                            let current = self.subs.get(&id).is_some_and(|s| s.run == run);
                            if current && !self.send(text).await {
                                break;
                            }
                        }
                        Outbound::Finished { id, run } => {
                            if self.subs.get(&id).is_some_and(|s| s.run == run) {
                                self.subs.remove(&id);
                            }
                        }
                    }
                }
                () = &mut init_deadline, if !self.init_seen => {
                    self.close(4408, "Connection initialisation timeout").await;
                    break;
                }
                () = &mut expiry, if self.auth.is_some() => {
                    self.close(4403, "Forbidden: the token expired").await;
                    break;
                }
                event = live.recv(), if self.auth.is_some() => {
                    let recheck = match event {
                        Ok(event) => match *event {
                            // Missed events may have changed anyone's access.
                            LiveEvent::Access { user_id: None } | LiveEvent::Missed(_) => true,
                            LiveEvent::Access { user_id: Some(u) } => {
                                self.auth.as_ref().is_some_and(|(_, _, v)| v.user.id == u)
                            }
                            _ => false,
                        },
                        // Skipped events may have changed this user's access.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => false,
                    };
                    if recheck && !self.reauthenticate().await {
                        break;
                    }
                }
                _ = ping.tick(), if self.auth.is_some() => {
                    if !self.send(json!({"type": "ping"}).to_string()).await {
                        break;
                    }
                }
            }
        }
        for (_, s) in self.subs.drain() {
            s.task.abort();
        }
    }

    /// Handles one client message; false when the connection is closed.
    async fn on_text(
        &mut self,
        text: &str,
        expiry: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> bool {
        let msg: ClientMessage = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(_) => {
                self.close(4400, "Invalid message received").await;
                return false;
            }
        };
        match msg {
            ClientMessage::ConnectionInit { payload } => {
                if self.init_seen {
                    self.close(4429, "Too many initialisation requests").await;
                    return false;
                }
                self.init_seen = true;
                let Some(token) = token_from(payload.as_ref()) else {
                    self.close(
                        4403,
                        "Forbidden: send the token in the connection_init payload",
                    )
                    .await;
                    return false;
                };
                let viewer =
                    match auth::authenticate(&self.state.db, &self.state.services.keys, &token)
                        .await
                    {
                        Ok(v) => v,
                        Err(e) if is_transient(&e) => {
                            self.close(1013, "The database is unavailable; try again later")
                                .await;
                            return false;
                        }
                        Err(_) => {
                            self.close(4403, "Forbidden: the token is invalid, expired or revoked")
                                .await;
                            return false;
                        }
                    };
                let left = (viewer.token.expires_at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default();
                expiry.reset(tokio::time::Instant::now() + left);
                let policy = Arc::new(Policy::for_viewer(viewer.clone()));
                self.auth = Some((token, policy, viewer));
                self.send(json!({"type": "connection_ack"}).to_string())
                    .await
            }
            ClientMessage::Ping { .. } => self.send(json!({"type": "pong"}).to_string()).await,
            ClientMessage::Pong { .. } => true,
            ClientMessage::Subscribe { id, payload } => {
                if self.auth.is_none() {
                    self.close(4401, "Unauthorized").await;
                    return false;
                }
                if self.subs.contains_key(&id) {
                    self.close(4409, &format!("Subscriber for {id} already exists"))
                        .await;
                    return false;
                }
                if self.subs.len() >= MAX_SUBSCRIPTIONS {
                    let error = json!({
                        "type": "error",
                        "id": id,
                        "payload": [{
                            "message": format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
                            "extensions": {"code": "BAD_USER_INPUT"}
                        }]
                    });
                    return self.send(error.to_string()).await;
                }
                self.start(id, payload);
                true
            }
            ClientMessage::Complete { id } => {
                if let Some(s) = self.subs.remove(&id) {
                    s.task.abort();
                }
                true
            }
        }
    }

    /// Re-checks the connection's token and access after the user's access
    /// changed: closes on a revoked token or a deactivated user, else
    /// restarts every subscription with the new access.
    async fn reauthenticate(&mut self) -> bool {
        let Some((token, policy, viewer)) = self.auth.take() else {
            return true;
        };
        match auth::authenticate(&self.state.db, &self.state.services.keys, &token).await {
            // The database is away: keep the access checked last, so that an
            // outage does not close every socket; the next change rechecks.
            Err(e) if is_transient(&e) => {
                tracing::warn!("cannot recheck a WebSocket's access: the database is unavailable");
                self.auth = Some((token, policy, viewer));
                true
            }
            Ok(fresh) => {
                // The same access: the subscriptions go on undisturbed (an
                // event they are about to deliver is not lost to a restart).
                if same_access(&fresh, &viewer) {
                    self.auth = Some((token, policy, fresh));
                    return true;
                }
                let policy = Arc::new(Policy::for_viewer(fresh.clone()));
                self.auth = Some((token, policy, fresh));
                let running: Vec<(String, SubscribePayload)> = self
                    .subs
                    .drain()
                    .map(|(id, s)| {
                        s.task.abort();
                        (id, s.payload)
                    })
                    .collect();
                for (id, payload) in running {
                    self.start(id, payload);
                }
                true
            }
            Err(_) => {
                self.close(
                    4403,
                    "Forbidden: the token was revoked or the account deactivated",
                )
                .await;
                false
            }
        }
    }

    /// Starts (or restarts) subscription `id` with the current access.
    fn start(&mut self, id: String, payload: SubscribePayload) {
        let Some((_, policy, _)) = &self.auth else {
            return;
        };
        self.runs += 1;
        let run = self.runs;
        let mut request = Request::new(payload.query.clone());
        if let Some(op) = &payload.operation_name {
            request = request.operation_name(op.clone());
        }
        if let Some(vars) = payload.variables.clone() {
            request = request.variables(Variables::from_json(vars));
        }
        if let Some(ext) = &payload.extensions {
            for (k, v) in ext {
                if let Ok(v) = async_graphql::Value::from_json(v.clone()) {
                    request.extensions.0.insert(k.clone(), v);
                }
            }
        }
        let ctx = RequestCtx::new(
            self.state.db.clone(),
            (**policy).clone(),
            self.state.services.clone(),
            Some(self.addr.ip()),
        );
        let admitted = self.state.admission.admit(request);
        let schema = self.state.schema.clone();
        let out = self.out_tx.clone();
        let sub_id = id.clone();
        let task = tokio::spawn(async move {
            let mut stream = match admitted {
                Ok(request) => schema.execute_stream(request.data(ctx)),
                Err(refused) => futures::stream::once(async move {
                    async_graphql::Response::from_errors(vec![refused])
                })
                .boxed(),
            };
            let mut first = true;
            while let Some(resp) = stream.next().await {
                let message = if first && is_request_error(&resp) {
                    json!({"type": "error", "id": sub_id, "payload": resp.errors})
                } else {
                    json!({"type": "next", "id": sub_id, "payload": resp})
                };
                let request_error = message["type"] == "error";
                first = false;
                let send = Outbound::Send {
                    id: sub_id.clone(),
                    run,
                    text: message.to_string(),
                };
                if out.send(send).await.is_err() {
                    return;
                }
                if request_error {
                    let _ = out
                        .send(Outbound::Finished {
                            id: sub_id.clone(),
                            run,
                        })
                        .await;
                    return;
                }
            }
            let _ = out
                .send(Outbound::Send {
                    id: sub_id.clone(),
                    run,
                    text: json!({"type": "complete", "id": sub_id}).to_string(),
                })
                .await;
            let _ = out.send(Outbound::Finished { id: sub_id, run }).await;
        });
        self.subs.insert(id, Running { payload, task, run });
    }
}
