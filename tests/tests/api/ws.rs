//! A small `graphql-transport-ws` client over a real WebSocket.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::harness::TestApp;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Ws {
    socket: Socket,
    /// Messages read while waiting for another subscription's.
    stash: std::collections::VecDeque<Value>,
}

/// What the server did next.
#[derive(Debug)]
pub enum Got {
    Msg(Value),
    Closed(u16, String),
    Nothing,
}

impl Ws {
    /// Opens a socket speaking `graphql-transport-ws`, not yet initialised.
    pub async fn open(app: &TestApp) -> Ws {
        let url = app.url("/graphql/ws").replace("http://", "ws://");
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (socket, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some("graphql-transport-ws")
        );
        Ws {
            socket,
            stash: Default::default(),
        }
    }

    /// Opens and initialises with `token`, expecting the acknowledgement.
    pub async fn connect(app: &TestApp, token: &str) -> Ws {
        let mut ws = Self::open(app).await;
        ws.send(json!({"type": "connection_init", "payload": {"token": token}}))
            .await;
        match ws.next(Duration::from_secs(5)).await {
            Got::Msg(m) if m["type"] == "connection_ack" => ws,
            other => panic!("no connection_ack: {other:?}"),
        }
    }

    pub async fn send(&mut self, msg: Value) {
        self.socket
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, msg: Message) {
        self.socket.send(msg).await.unwrap();
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "type": "subscribe",
            "id": id,
            "payload": {"query": query, "variables": variables}
        }))
        .await;
    }

    /// The next message (server pings are answered and skipped).
    pub async fn next(&mut self, wait: Duration) -> Got {
        if let Some(m) = self.stash.pop_front() {
            return Got::Msg(m);
        }
        self.read(wait).await
    }

    async fn read(&mut self, wait: Duration) -> Got {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => return Got::Nothing,
                Ok(None) => return Got::Closed(1006, String::new()),
                Ok(Some(Err(_))) => return Got::Closed(1006, String::new()),
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    if v["type"] == "ping" {
                        self.send(json!({"type": "pong"})).await;
                        continue;
                    }
                    return Got::Msg(v);
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return match frame {
                        Some(f) => Got::Closed(u16::from(f.code), f.reason.to_string()),
                        None => Got::Closed(1005, String::new()),
                    };
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// The next message, which must be one.
    pub async fn message(&mut self) -> Value {
        match self.next(Duration::from_secs(5)).await {
            Got::Msg(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// Expects the server to close with `code`.
    pub async fn expect_close(&mut self, code: u16, wait: Duration) -> String {
        match self.next(wait).await {
            Got::Closed(c, reason) => {
                assert_eq!(c, code, "closed with {c} ({reason}), expected {code}");
                reason
            }
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    /// Expects nothing for `wait`.
    pub async fn expect_quiet(&mut self, wait: Duration) {
        match self.next(wait).await {
            Got::Nothing => {}
            other => panic!("expected no message, got {other:?}"),
        }
    }

    /// `next` payloads of subscription `id` until `pred` holds; panics after `wait`.
    pub async fn next_until(
        &mut self,
        id: &str,
        wait: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mine = |m: &Value| m["type"] == "next" && m["id"] == id;
        // Earlier messages of this subscription first; others stay stashed.
        while let Some(at) = self.stash.iter().position(mine) {
            let m = self.stash.remove(at).unwrap_or_default();
            if pred(&m["payload"]) {
                return m["payload"].clone();
            }
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await {
                Got::Msg(m) if mine(&m) => {
                    if pred(&m["payload"]) {
                        return m["payload"].clone();
                    }
                }
                Got::Msg(m) => self.stash.push_back(m),
                other => panic!("waiting on {id}: {other:?}"),
            }
        }
    }
}
