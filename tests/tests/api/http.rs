//! GraphQL over HTTP: methods, media types, status codes, limits, health.

use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, TestApp, code};

async fn raw(
    app: &TestApp,
    accept: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> (u16, String, Value) {
    let mut req = app.client.post(app.url("/graphql")).body(body.to_owned());
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    if let Some(c) = content_type {
        req = req.header("content-type", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    (
        status,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn media_types_and_status_codes(app: TestApp) {
    let q = r#"{"query":"{ __typename }"}"#;
    let (s, ct, body) = raw(
        &app,
        Some("application/graphql-response+json"),
        Some("application/json"),
        q,
    )
    .await;
    assert_eq!(
        (s, body["data"]["__typename"].as_str()),
        (200, Some("Query"))
    );
    assert!(ct.starts_with("application/graphql-response+json"));
    for accept in [Some("application/json"), Some("*/*"), None] {
        let (s, ct, _) = raw(&app, accept, Some("application/json"), q).await;
        assert_eq!(s, 200);
        assert!(ct.starts_with("application/json"), "{accept:?} -> {ct}");
    }
    let (s, _, _) = raw(&app, Some("text/csv"), Some("application/json"), q).await;
    assert_eq!(s, 406);
    let (s, _, _) = raw(&app, None, Some("text/plain"), q).await;
    assert_eq!(s, 415);
    let (s, _, _) = raw(&app, None, Some("application/json"), "{ \"not json").await;
    assert_eq!(s, 400);
    // Batching is off.
    let (s, _, body) = raw(&app, None, Some("application/json"), &format!("[{q},{q}]")).await;
    assert_eq!(s, 400);
    assert_eq!(code(&body), "BAD_USER_INPUT");
    // Parse and validation errors: 400 without data for graphql-response+json, 200 for json.
    for doc in [r#"{"query":"{"}"#, r#"{"query":"{ nonsense }"}"#] {
        let (s, _, body) = raw(
            &app,
            Some("application/graphql-response+json"),
            Some("application/json"),
            doc,
        )
        .await;
        assert_eq!(s, 400, "{doc}");
        assert!(body.get("data").is_none());
        assert_eq!(code(&body), "BAD_USER_INPUT");
        let (s, _, _) = raw(
            &app,
            Some("application/json"),
            Some("application/json"),
            doc,
        )
        .await;
        assert_eq!(s, 200, "{doc}");
    }
    // Field errors keep 200 and data.
    let (s, _, body) = raw(
        &app,
        Some("application/graphql-response+json"),
        Some("application/json"),
        r#"{"query":"{ me { user { id } } }"}"#,
    )
    .await;
    assert_eq!(s, 200);
    assert!(body.get("data").is_some());
    assert_eq!(code(&body), "UNAUTHENTICATED");
}
both!(media_types_and_status_codes);

async fn get_runs_queries_only(app: TestApp) {
    let token = app.login(ADMIN).await;
    let res = app
        .client
        .get(app.url("/graphql"))
        .query(&[
            ("query", "query($k: String!) { unit(key: $k) { key } }"),
            ("variables", r#"{"k":"payments"}"#),
        ])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["unit"]["key"], "payments");
    let res = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { logout }")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    // The token was not revoked by the refused GET.
    app.ok(&token, "{ me { user { id } } }", json!({})).await;
    // Browsers get GraphiQL.
    let res = app
        .client
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
}
both!(get_runs_queries_only);

async fn limits_and_health(app: TestApp) {
    let token = app.login(ADMIN).await;
    // Depth limit.
    let mut deep = String::from("{ organization { ");
    for _ in 0..20 {
        deep.push_str("parent { ");
    }
    deep.push_str("key");
    for _ in 0..20 {
        deep.push_str(" }");
    }
    deep.push_str(" } }");
    let body = app.gql(Some(&token), &deep, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nested"),
        "{body}"
    );
    // Alias limit.
    let many: String = (0..40).map(|i| format!("a{i}: __typename ")).collect();
    let body = app
        .gql(Some(&token), &format!("{{ {many} }}"), json!({}))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases")
    );
    // Complexity: 100 items × 100 children × 100 grandchildren.
    let body = app
        .gql(Some(&token), "{ organization { workItems(first: 100) { nodes { children(first: 100) { nodes { children(first: 100) { nodes { key title } } } } } } } }", json!({}))
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("complex"),
        "{body}"
    );
    for path in ["/healthz", "/readyz"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gemba_db_statements_total"));
}
both!(limits_and_health);

/// Bodies over the configured limit get 413 before anything runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_413() {
    let settings = gemba::config::Settings {
        max_body_bytes: 16 * 1024,
        ..gemba::config::Settings::default()
    };
    let app = TestApp::spawn_with(crate::harness::Backend::Sqlite, settings)
        .await
        .unwrap();
    let body = |n: usize| {
        format!(
            r#"{{"query":"{{ __typename }}","variables":{{"x":"{}"}}}}"#,
            "a".repeat(n)
        )
    };
    let (s, _, _) = raw(&app, None, Some("application/json"), &body(15 * 1024)).await;
    assert_eq!(s, 200);
    let (s, _, _) = raw(&app, None, Some("application/json"), &body(40 * 1024)).await;
    assert_eq!(s, 413);
}

/// Browsers on configured origins may call the API; others get no CORS grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_only() {
    let settings = gemba::config::Settings {
        cors_origins: vec!["https://dash.example".to_owned()],
        ..gemba::config::Settings::default()
    };
    let app = TestApp::spawn_with(crate::harness::Backend::Sqlite, settings)
        .await
        .unwrap();
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("https://dash.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

/// Automatic persisted queries (Apollo's protocol) over POST.
async fn persisted_queries(app: TestApp) {
    let token = app.login(ADMIN).await;
    let query = "{ unit(key: \"payments\") { key } }";
    let post = |body: Value| {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let sha = |q: &str| {
        use std::fmt::Write;
        let digest = <sha2_digest::Sha256 as sha2_digest::Digest>::digest(q.as_bytes());
        digest.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    };
    let real = sha(query);
    let hash = sha("{ __typename }");
    let ext = |h: &str| json!({ "persistedQuery": { "version": 1, "sha256Hash": h } });
    // Unknown hash: the client is told to send the document.
    let body: Value = post(json!({ "extensions": ext(&real) }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    // A document with a wrong hash is refused.
    let body: Value = post(json!({ "query": query, "extensions": ext(&hash) }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_some(), "{body}");
    // Document and hash register it; the hash alone then runs it.
    let body: Value = post(json!({ "query": query, "extensions": ext(&real) }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["unit"]["key"], "payments", "{body}");
    let body: Value = post(json!({ "extensions": ext(&real) }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["unit"]["key"], "payments", "{body}");
}
both!(persisted_queries);
