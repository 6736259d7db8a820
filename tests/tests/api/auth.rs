//! Login, tokens, logout, rate limits and deactivation.

use gemba::config::Settings;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, Backend, PASSWORD, SECRET, TEAM, TestApp, code};

const LOGIN: &str = "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token expiresAt viewer { user { email } memberships { role unit { key } } } } }";

async fn login_me_and_logout(app: TestApp) {
    let body = app
        .gql(
            None,
            LOGIN,
            json!({ "e": "TEAM@gemba.local", "p": PASSWORD }),
        )
        .await;
    let login = &body["data"]["login"];
    assert_eq!(
        login["viewer"]["user"]["email"], TEAM,
        "emails are case-insensitive: {body}"
    );
    assert_eq!(
        login["viewer"]["memberships"],
        json!([{ "role": "TEAM_MEMBER", "unit": { "key": "team-atlas" } }])
    );
    let token = login["token"].as_str().unwrap().to_owned();
    let me = app
        .ok(
            &token,
            "{ me { user { email } memberships { role } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["user"]["email"], TEAM);

    // Wrong password and unknown email read the same.
    let wrong = app
        .gql(None, LOGIN, json!({ "e": TEAM, "p": "not the password" }))
        .await;
    let unknown = app
        .gql(
            None,
            LOGIN,
            json!({ "e": "nobody@gemba.local", "p": "not the password" }),
        )
        .await;
    assert_eq!(code(&wrong), "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(wrong["data"], Value::Null);

    // Logout revokes exactly the token used.
    let other = app.login(TEAM).await;
    let out = app.ok(&token, "mutation { logout }", json!({})).await;
    assert_eq!(out["logout"], true);
    let (status, body) = app
        .post(Some(&token), "{ me { user { email } } }", json!({}))
        .await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), "UNAUTHENTICATED");
    app.ok(&other, "{ me { user { email } } }", json!({})).await;
}
both!(login_me_and_logout);

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    jti: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    iss: &'a str,
    aud: &'a str,
}

async fn bad_tokens_are_refused(app: TestApp) {
    let token = app.login(TEAM).await;
    let me = app.ok(&token, "{ me { user { id } } }", json!({})).await;
    let id = gemba::graphql::decode_id(me["me"]["user"]["id"].as_str().unwrap())
        .unwrap()
        .1
        .to_string();
    let now = chrono::Utc::now().timestamp();
    let sign = |c: &Claims, secret: &[u8]| {
        encode(&Header::default(), c, &EncodingKey::from_secret(secret)).unwrap()
    };
    let good = Claims {
        sub: &id,
        jti: "j1",
        iat: now,
        nbf: now,
        exp: now + 600,
        iss: "gemba",
        aud: "gemba-api",
    };
    app.ok(&sign(&good, SECRET), "{ me { user { id } } }", json!({}))
        .await;
    let expired = Claims {
        exp: now - 60,
        iat: now - 120,
        nbf: now - 120,
        ..good
    };
    let wrong_aud = Claims {
        aud: "someone-else",
        ..good
    };
    let wrong_iss = Claims {
        iss: "someone-else",
        ..good
    };
    let mut tampered = sign(&good, SECRET);
    tampered.insert(tampered.len() - 2, 'x');
    for (what, t) in [
        ("expired", sign(&expired, SECRET)),
        (
            "other secret",
            sign(&good, b"another-secret-another-secret-another"),
        ),
        ("audience", sign(&wrong_aud, SECRET)),
        ("issuer", sign(&wrong_iss, SECRET)),
        ("tampered", tampered),
        ("garbage", "not.a.token".to_owned()),
    ] {
        let (status, body) = app
            .post(Some(&t), "{ me { user { id } } }", json!({}))
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(code(&body), "UNAUTHENTICATED", "{what}");
        assert!(body.get("data").is_none(), "{what}: nothing executes");
    }
    // A malformed Authorization header is refused, not treated as anonymous.
    let res = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("authorization", "Basic abc")
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
}
both!(bad_tokens_are_refused);

async fn deactivated_users_lose_access_at_once(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let team = app.login(TEAM).await;
    let id = app.ok(&team, "{ me { user { id } } }", json!({})).await["me"]["user"]["id"].clone();
    let out = app
        .ok(&admin, "mutation($u: ID!) { updateUser(input: {user: $u, active: false}) { user { active } } }", json!({ "u": id }))
        .await;
    assert_eq!(out["updateUser"]["user"]["active"], false);
    let (status, body) = app
        .post(Some(&team), "{ me { user { id } } }", json!({}))
        .await;
    assert_eq!(status, 401, "{body}");
    let body = app
        .gql(None, LOGIN, json!({ "e": TEAM, "p": PASSWORD }))
        .await;
    assert_eq!(
        code(&body),
        "UNAUTHENTICATED",
        "an inactive user cannot log in"
    );
    app.ok(
        &admin,
        "mutation($u: ID!) { updateUser(input: {user: $u, active: true}) { user { active } } }",
        json!({ "u": id }),
    )
    .await;
    app.login(TEAM).await;
}
both!(deactivated_users_lose_access_at_once);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited() {
    let settings = Settings {
        login_failures_per_email: 3,
        login_failures_per_address: 6,
        ..Settings::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, settings)
        .await
        .unwrap();
    for _ in 0..3 {
        let body = app
            .gql(None, LOGIN, json!({ "e": TEAM, "p": "wrong password!" }))
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    // Even the right password is refused while the email is limited.
    let body = app
        .gql(None, LOGIN, json!({ "e": TEAM, "p": PASSWORD }))
        .await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    // Other emails still work until the address itself reaches its limit.
    app.login(ADMIN).await;
    for _ in 0..3 {
        let body = app
            .gql(
                None,
                LOGIN,
                json!({ "e": "someone@gemba.local", "p": "wrong password!" }),
            )
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    let body = app
        .gql(None, LOGIN, json!({ "e": ADMIN, "p": PASSWORD }))
        .await;
    assert_eq!(
        code(&body),
        "RATE_LIMITED",
        "the address is limited: {body}"
    );
}
