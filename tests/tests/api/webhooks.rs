//! GitHub webhooks: signature, mappings managed through GraphQL, and vendor-
//! shaped deliveries landing as the same items, changes, deployments and
//! releases as the common events.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, TEAM, TestApp, code, not_seeded};

const SECRET: &str = "webhook-secret-for-tests";

fn sign(body: &str) -> String {
    let mut mac = Hmac::<sha2_digest::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

async fn deliver(
    app: &TestApp,
    event: &str,
    delivery: &str,
    payload: &Value,
    signature: Option<String>,
) -> (u16, Value) {
    let body = payload.to_string();
    let res = app
        .client
        .post(app.url("/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header(
            "x-hub-signature-256",
            signature.unwrap_or_else(|| sign(&body)),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn repository() -> Value {
    json!({ "id": 1296269, "name": "cards", "full_name": "acme/cards", "private": true,
            "html_url": "https://github.com/acme/cards" })
}

fn issue(state: &str, updated_at: &str) -> Value {
    json!({
        "action": if state == "open" { "opened" } else { "closed" },
        "issue": {
            "id": 1, "node_id": "MDU6SXNzdWUx", "number": 42,
            "html_url": "https://github.com/acme/cards/issues/42",
            "title": "Tokenise stored cards", "body": "PCI scope reduction",
            "state": state, "labels": [{ "id": 208045946, "name": "bug", "color": "f29513" }],
            "created_at": "2026-02-01T09:00:00Z", "updated_at": updated_at,
            "closed_at": if state == "open" { Value::Null } else { json!(updated_at) },
            "user": { "login": "octocat", "id": 1 }
        },
        "repository": repository(),
        "sender": { "login": "octocat", "id": 1 }
    })
}

async fn github_deliveries_land_in_the_common_model(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let team = app.login(TEAM).await;
    // Only admins configure integrations.
    let configure = "mutation($s: String!) { configureIntegration(input: {source: \"github\", secret: $s}) { source } }";
    assert_eq!(
        code(
            &app.gql(Some(&team), configure, json!({ "s": SECRET }))
                .await
        ),
        "FORBIDDEN"
    );
    app.ok(&admin, configure, json!({ "s": SECRET })).await;
    let map = "mutation($k: MappingKind!, $e: String!, $t: String!) { setIntegrationMapping(input: {source: \"github\", kind: $k, external: $e, target: $t}) { id kind external target } }";
    for (k, e, t) in [
        ("UNIT", "acme/cards", "team-atlas"),
        ("STATE", "open", "Backlog"),
        ("STATE", "closed", "Done"),
        ("ITEM_TYPE", "bug", "DEFECT"),
        ("ENVIRONMENT", "production", "PRODUCTION"),
    ] {
        app.ok(&admin, map, json!({ "k": k, "e": e, "t": t })).await;
    }
    let bad = app
        .gql(
            Some(&admin),
            map,
            json!({ "k": "UNIT", "e": "acme/x", "t": "no-such-unit" }),
        )
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT");
    let listed = app
        .ok(
            &admin,
            "{ integrations { source } integrationMappings(source: \"github\") { kind } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["integrations"], json!([{ "source": "github" }]));
    assert_eq!(listed["integrationMappings"].as_array().unwrap().len(), 5);
    assert!(!listed.to_string().contains(SECRET));

    // A bad signature: 401, nothing applied.
    let (s, _) = deliver(
        &app,
        "issues",
        "d-0",
        &issue("open", "2026-02-01T09:00:00Z"),
        Some("sha256=00".into()),
    )
    .await;
    assert_eq!(s, 401);
    let (s, r) = deliver(
        &app,
        "ping",
        "d-ping",
        &json!({ "zen": "Keep it logically awesome.", "repository": repository() }),
        None,
    )
    .await;
    assert_eq!((s, r["ignored"].as_str()), (200, Some("ping")));

    // An issue opened, then closed; a redelivery changes nothing.
    let (s, r) = deliver(
        &app,
        "issues",
        "d-1",
        &issue("open", "2026-02-01T09:00:00Z"),
        None,
    )
    .await;
    assert_eq!((s, r["applied"].as_i64()), (200, Some(1)), "{r}");
    let (_, r) = deliver(
        &app,
        "issues",
        "d-2",
        &issue("closed", "2026-02-03T17:00:00Z"),
        None,
    )
    .await;
    assert_eq!(r["applied"], 1, "{r}");
    let (_, r) = deliver(
        &app,
        "issues",
        "d-2",
        &issue("closed", "2026-02-03T17:00:00Z"),
        None,
    )
    .await;
    assert_eq!(r["duplicates"], 1, "{r}");
    let q = "{ workItem(key: \"CARDS-42\") { type state unit { key } externalRefs { source externalId url } transitions { toState at } } }";
    let item = app.ok(&team, q, json!({})).await;
    assert_eq!(item["workItem"]["type"], "DEFECT");
    assert_eq!(item["workItem"]["state"], "Done");
    assert_eq!(item["workItem"]["unit"]["key"], "team-atlas");
    assert_eq!(
        item["workItem"]["externalRefs"][0]["externalId"],
        "acme/cards#42"
    );
    assert_eq!(
        item["workItem"]["transitions"][1]["at"],
        "2026-02-03T17:00:00+00:00"
    );

    // A merged pull request, a production deployment, a release.
    let pr = json!({ "action": "closed", "number": 7, "repository": repository(),
        "pull_request": { "id": 2, "number": 7, "title": "Vault client", "html_url": "https://github.com/acme/cards/pull/7",
                          "body": "Stores cards in the vault.\r\n\r\nFixes #42",
                          "merge_commit_sha": "A84D88E0C3F1B2D4E5F60718293A4B5C6D7E8F90",
                          "state": "closed", "merged": true, "created_at": "2026-02-02T10:00:00Z",
                          "merged_at": "2026-02-03T12:00:00Z" } });
    let (_, r) = deliver(&app, "pull_request", "d-3", &pr, None).await;
    assert_eq!(r["applied"], 1, "{r}");
    let linked = app
        .ok(
            &team,
            "{ workItem(key: \"CARDS-42\") { changes { externalId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        linked["workItem"]["changes"],
        json!([{ "externalId": "acme/cards!7" }]),
        "the pull request fixes the issue: {linked}"
    );
    let dep = json!({ "action": "created", "repository": repository(),
        "deployment_status": { "id": 3, "state": "success", "environment": "production", "updated_at": "2026-02-03T13:00:00Z" },
        "deployment": { "id": 42, "sha": "a84d88e", "environment": "production", "created_at": "2026-02-03T12:30:00Z" } });
    let (_, r) = deliver(&app, "deployment_status", "d-4", &dep, None).await;
    assert_eq!(r["applied"], 1, "{r}");
    let rel = json!({ "action": "published", "repository": repository(),
        "release": { "id": 5, "tag_name": "v1.2.0", "name": "", "published_at": "2026-02-04T08:00:00Z" } });
    let (_, r) = deliver(&app, "release", "d-5", &rel, None).await;
    assert_eq!(r["applied"], 1, "{r}");
    let d = app
        .ok(&team, "{ unit(key: \"team-atlas\") { changes(last: 10) { nodes { source repository title } } deployments(last: 10) { nodes { source environment status changes { externalId } } } releases(last: 10) { nodes { source name } } } }", json!({}))
        .await;
    assert_eq!(
        not_seeded(&d["unit"]["changes"]["nodes"]),
        json!([{ "repository": "acme/cards", "title": "Vault client" }])
    );
    assert_eq!(
        not_seeded(&d["unit"]["deployments"]["nodes"]),
        json!([{ "environment": "PRODUCTION", "status": "SUCCESS",
                  "changes": [{ "externalId": "acme/cards!7" }] }]),
        "the deployment of the merge commit ships the pull request: {d}"
    );
    assert_eq!(
        not_seeded(&d["unit"]["releases"]["nodes"]),
        json!([{ "name": "v1.2.0" }])
    );

    // Unmapped values are rejected with a reason, never guessed.
    let mut other = issue("open", "2026-02-01T09:00:00Z");
    other["repository"]["full_name"] = json!("acme/unknown");
    let (_, r) = deliver(&app, "issues", "d-6", &other, None).await;
    assert_eq!(r["rejected"], 1);
    assert!(
        r["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unmapped repository"),
        "{r}"
    );
    let mut staging = dep.clone();
    staging["deployment"]["environment"] = json!("staging");
    let (_, r) = deliver(&app, "deployment_status", "d-7", &staging, None).await;
    assert!(
        r["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unmapped environment"),
        "{r}"
    );
}
both!(github_deliveries_land_in_the_common_model);

const TOKEN: &str = "gitlab-token-for-tests";

async fn hook(
    app: &TestApp,
    event: &str,
    uuid: &str,
    payload: &Value,
    token: &str,
) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/webhooks/gitlab"))
        .header("content-type", "application/json")
        .header("x-gitlab-event", event)
        .header("x-gitlab-event-uuid", uuid)
        .header("x-gitlab-token", token)
        .body(payload.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn project() -> Value {
    json!({ "id": 15, "name": "Lending Core", "path_with_namespace": "acme/lending-core",
            "web_url": "https://gitlab.example/acme/lending-core" })
}

async fn gitlab_hooks_land_in_the_common_model(app: TestApp) {
    let admin = app.login(ADMIN).await;
    app.ok(&admin, "mutation($s: String!) { configureIntegration(input: {source: \"gitlab\", secret: $s}) { source } }", json!({ "s": TOKEN }))
        .await;
    let map = "mutation($k: MappingKind!, $e: String!, $t: String!) { setIntegrationMapping(input: {source: \"gitlab\", kind: $k, external: $e, target: $t}) { id } }";
    for (k, e, t) in [
        ("UNIT", "acme/lending-core", "team-fjord"),
        ("STATE", "opened", "Backlog"),
        ("STATE", "closed", "Done"),
        ("ENVIRONMENT", "production", "PRODUCTION"),
    ] {
        app.ok(&admin, map, json!({ "k": k, "e": e, "t": t })).await;
    }
    let issue = |state: &str, updated: &str| {
        json!({ "object_kind": "issue", "event_type": "issue", "project": project(),
            "object_attributes": { "id": 301, "iid": 23, "title": "Rate lock expiry", "description": "Locks expire silently",
                "state": state, "created_at": "2026-03-01 08:00:00 UTC", "updated_at": updated,
                "url": "https://gitlab.example/acme/lending-core/-/issues/23", "action": "open" },
            "labels": [{ "id": 206, "title": "API" }] })
    };
    let (s, _) = hook(
        &app,
        "Issue Hook",
        "u-0",
        &issue("opened", "2026-03-01 08:00:00 UTC"),
        "wrong-token",
    )
    .await;
    assert_eq!(s, 401);
    let (_, r) = hook(
        &app,
        "Issue Hook",
        "u-1",
        &issue("opened", "2026-03-01 08:00:00 UTC"),
        TOKEN,
    )
    .await;
    assert_eq!(r["applied"], 1, "{r}");
    let (_, r) = hook(
        &app,
        "Issue Hook",
        "u-2",
        &issue("closed", "2026-03-04 16:30:00 UTC"),
        TOKEN,
    )
    .await;
    assert_eq!(r["applied"], 1, "{r}");
    let (_, r) = hook(
        &app,
        "Issue Hook",
        "u-2",
        &issue("closed", "2026-03-04 16:30:00 UTC"),
        TOKEN,
    )
    .await;
    assert_eq!(r["duplicates"], 1, "a redelivery changes nothing: {r}");
    let item = app
        .ok(&admin, "{ workItem(key: \"LENDING-CORE-23\") { type state unit { key } transitions { toState at } } }", json!({}))
        .await;
    assert_eq!(
        item["workItem"]["type"], "STORY",
        "an unmapped label keeps the default type"
    );
    assert_eq!(item["workItem"]["state"], "Done");
    assert_eq!(
        item["workItem"]["transitions"][1]["at"],
        "2026-03-04T16:30:00+00:00"
    );
    // The team member of another portfolio's team does not see it.
    let team = app.login(TEAM).await;
    assert_eq!(
        app.ok(
            &team,
            "{ workItem(key: \"LENDING-CORE-23\") { key } }",
            json!({})
        )
        .await["workItem"],
        Value::Null
    );

    let mr = json!({ "object_kind": "merge_request", "project": project(),
        "object_attributes": { "id": 99, "iid": 1, "title": "Fix expiry", "state": "merged", "action": "merge",
            "description": "Closes #23 and relates to #24 (never received, so not linked).",
            "merge_commit_sha": "f00dcafe5a1e2b3c4d5e6f708192a3b4c5d6e7f8",
            "created_at": "2026-03-02 09:00:00 UTC", "updated_at": "2026-03-03 11:00:00 UTC",
            "url": "https://gitlab.example/acme/lending-core/-/merge_requests/1" } });
    let (_, r) = hook(&app, "Merge Request Hook", "u-3", &mr, TOKEN).await;
    assert_eq!(r["applied"], 1, "{r}");
    let linked = app
        .ok(
            &admin,
            "{ workItem(key: \"LENDING-CORE-23\") { changes { externalId } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        linked["workItem"]["changes"],
        json!([{ "externalId": "acme/lending-core!1" }]),
        "the merge request closes the issue: {linked}"
    );
    let dep = json!({ "object_kind": "deployment", "status": "success", "deployment_id": 15,
        "environment": "production", "status_changed_at": "2026-03-03 12:00:00 +0100", "project": project() });
    let (_, r) = hook(&app, "Deployment Hook", "u-4", &dep, TOKEN).await;
    assert_eq!(
        r["rejected"], 1,
        "a timestamp the model cannot read is rejected: {r}"
    );
    let dep = json!({ "object_kind": "deployment", "status": "success", "deployment_id": 15,
        "environment": "production", "status_changed_at": "2026-03-03 12:00:00 UTC", "short_sha": "f00dcafe", "project": project() });
    let (_, r) = hook(&app, "Deployment Hook", "u-5", &dep, TOKEN).await;
    assert_eq!(r["applied"], 1, "{r}");
    let rel = json!({ "object_kind": "release", "action": "create", "id": 1, "name": "v0.9", "tag": "v0.9",
        "released_at": "2026-03-05 10:00:00 UTC", "project": project() });
    let (_, r) = hook(&app, "Release Hook", "u-6", &rel, TOKEN).await;
    assert_eq!(r["applied"], 1, "{r}");
    let d = app
        .ok(&admin, "{ unit(key: \"team-fjord\") { changes(last: 10) { nodes { source repository } } deployments(last: 10) { nodes { source status changes { externalId } } } releases(last: 10) { nodes { source name } } } }", json!({}))
        .await;
    assert_eq!(
        not_seeded(&d["unit"]["changes"]["nodes"]),
        json!([{ "repository": "acme/lending-core" }])
    );
    assert_eq!(
        not_seeded(&d["unit"]["deployments"]["nodes"]),
        json!([{ "status": "SUCCESS", "changes": [{ "externalId": "acme/lending-core!1" }] }]),
        "the deployment of the merge commit ships the merge request: {d}"
    );
    assert_eq!(
        not_seeded(&d["unit"]["releases"]["nodes"]),
        json!([{ "name": "v0.9" }])
    );
}
both!(gitlab_hooks_land_in_the_common_model);

async fn jira_hook(
    app: &TestApp,
    id: &str,
    payload: &Value,
    signature: Option<String>,
) -> (u16, Value) {
    let body = payload.to_string();
    let res = app
        .client
        .post(app.url("/webhooks/jira"))
        .header("content-type", "application/json")
        .header("x-atlassian-webhook-identifier", id)
        .header("x-hub-signature", signature.unwrap_or_else(|| sign(&body)))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn jira_issue(event: &str, status: &str, timestamp: i64, changelog: Option<(&str, &str)>) -> Value {
    let mut p = json!({
        "timestamp": timestamp,
        "webhookEvent": event,
        "issue_event_type_name": "issue_generic",
        "user": { "accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof" },
        "issue": {
            "id": "10042", "key": "PAY-12", "self": "https://acme.atlassian.net/rest/api/2/issue/10042",
            "fields": {
                "summary": "Card tokenisation",
                "issuetype": { "id": "10001", "name": "Story" },
                "project": { "id": "10000", "key": "PAY", "name": "Payments" },
                "status": { "id": "3", "name": status },
                "created": "2026-01-05T10:00:00.000+0000",
                "updated": "2026-01-06T09:00:00.000+0000"
            }
        }
    });
    if let Some((from, to)) = changelog {
        p["changelog"] = json!({ "id": "10100", "items": [
            { "field": "status", "fieldtype": "jira", "from": "10000", "fromString": from, "to": "3", "toString": to }
        ] });
    }
    p
}

async fn jira_deliveries_land_in_the_common_model(app: TestApp) {
    let admin = app.login(ADMIN).await;
    app.ok(&admin, "mutation($s: String!) { configureIntegration(input: {source: \"jira\", secret: $s}) { source } }", json!({ "s": SECRET }))
        .await;
    let map = "mutation($k: MappingKind!, $e: String!, $t: String!) { setIntegrationMapping(input: {source: \"jira\", kind: $k, external: $e, target: $t}) { id } }";
    for (k, e, t) in [
        ("UNIT", "PAY", "team-atlas"),
        ("ITEM_TYPE", "Story", "STORY"),
        ("STATE", "To Do", "Backlog"),
        ("STATE", "In Progress", "In Progress"),
        ("STATE", "(deleted)", "Canceled"),
    ] {
        app.ok(&admin, map, json!({ "k": k, "e": e, "t": t })).await;
    }
    let created = jira_issue("jira:issue_created", "To Do", 1_767_607_200_000, None);
    let (s, _) = jira_hook(&app, "j-0", &created, Some("sha256=00".into())).await;
    assert_eq!(s, 401);
    let (_, r) = jira_hook(&app, "j-1", &created, None).await;
    assert_eq!(r["applied"], 1, "{r}");
    // 2026-01-06T09:00:00Z: moved to In Progress.
    let updated = jira_issue(
        "jira:issue_updated",
        "In Progress",
        1_767_690_000_000,
        Some(("To Do", "In Progress")),
    );
    let (_, r) = jira_hook(&app, "j-2", &updated, None).await;
    assert_eq!(r["applied"], 2, "a transition and the upsert: {r}");
    let (_, r) = jira_hook(&app, "j-2", &updated, None).await;
    assert_eq!(
        r["duplicates"], 2,
        "a retried delivery changes nothing: {r}"
    );
    let q = "{ workItem(key: \"PAY-12\") { state type unit { key } externalRefs { source externalId } transitions { fromState toState at } } }";
    let item = app.ok(&admin, q, json!({})).await;
    assert_eq!(item["workItem"]["state"], "In Progress");
    assert_eq!(
        item["workItem"]["externalRefs"][0],
        json!({ "source": "jira", "externalId": "10042" })
    );
    assert_eq!(
        item["workItem"]["transitions"],
        json!([
            { "fromState": null, "toState": "Backlog", "at": "2026-01-05T10:00:00+00:00" },
            { "fromState": "Backlog", "toState": "In Progress", "at": "2026-01-06T09:00:00+00:00" }
        ]),
        "the same history as the NDJSON backfill of the same item"
    );
    // An unmapped status is rejected with the reason.
    let odd = jira_issue(
        "jira:issue_updated",
        "Blocked by legal",
        1_767_700_000_000,
        Some(("In Progress", "Blocked by legal")),
    );
    let (_, r) = jira_hook(&app, "j-3", &odd, None).await;
    assert_eq!(r["rejected"], 1);
    assert!(
        r["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unmapped status"),
        "{r}"
    );
    // Deleting the issue cancels the item.
    let deleted = jira_issue("jira:issue_deleted", "In Progress", 1_767_800_000_000, None);
    let (_, r) = jira_hook(&app, "j-4", &deleted, None).await;
    assert_eq!(r["applied"], 1, "{r}");
    assert_eq!(
        app.ok(&admin, q, json!({})).await["workItem"]["state"],
        "Canceled"
    );
}
both!(jira_deliveries_land_in_the_common_model);
