//! The demo seed shows the whole product: over its last 90 days the
//! organisation has delivery metrics at every DORA measure, each portfolio
//! objectives linked to its epics and two value streams whose investment
//! only those who may read cost-like fields see.

use std::collections::HashSet;

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use crate::both;
use crate::harness::{ADMIN, EXEC, TEAM, TestApp, code};

const DQ: &str = "query($u: ID!, $from: DateTime!, $to: DateTime!) {
  deliveryMetrics(unit: $u, window: {from: $from, to: $to}) {
    deployments releases
    leadTimeForChanges { count p50 }
    changeFailureRate { numerator denominator value }
    timeToRestore { count p50 }
    performance { deploymentFrequency leadTimeForChanges changeFailureRate timeToRestore }
  } }";

const PORTFOLIO_Q: &str = "query($k: String!) { unit(key: $k) {
  objectives { key keyResults { key progress } linkedWorkItems { key type } delivery { total } }
  valueStreams { key kind stages { name } budget costPerPeriod supports { key } }
  } }";

async fn the_demo_shows_the_whole_product(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let now = Utc::now();
    let window = |u: &Value| json!({"u": u, "from": now - TimeDelta::days(90), "to": now + TimeDelta::minutes(1)});
    let org =
        app.ok(&admin, "{ organization { id } }", json!({})).await["organization"]["id"].clone();

    // Delivery: every DORA measure has something to judge.
    let d = app.ok(&admin, DQ, window(&org)).await;
    let m = &d["deliveryMetrics"];
    assert!(m["deployments"].as_i64().unwrap() > 0, "{m}");
    assert!(m["releases"].as_i64().unwrap() > 0, "{m}");
    assert!(m["leadTimeForChanges"]["p50"].is_number(), "{m}");
    assert!(m["changeFailureRate"]["value"].is_number(), "{m}");
    assert!(
        m["changeFailureRate"]["numerator"].as_f64().unwrap() > 0.0,
        "{m}"
    );
    assert!(m["timeToRestore"]["p50"].is_number(), "{m}");
    for level in [
        "deploymentFrequency",
        "leadTimeForChanges",
        "changeFailureRate",
        "timeToRestore",
    ] {
        assert!(m["performance"][level].is_string(), "{level}: {m}");
    }

    // Teams deliver differently: their levels spread.
    let units = app
        .ok(
            &admin,
            "{ organization { descendants { key id kind } } }",
            json!({}),
        )
        .await;
    let teams: Vec<&Value> = units["organization"]["descendants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["kind"] == "TEAM")
        .collect();
    assert_eq!(teams.len(), 10, "{units}");
    let mut frequency = HashSet::new();
    let mut failure = HashSet::new();
    for team in teams {
        let d = app.ok(&admin, DQ, window(&team["id"])).await;
        let m = &d["deliveryMetrics"];
        assert!(m["deployments"].as_i64().unwrap() > 0, "{team}: {m}");
        frequency.insert(m["performance"]["deploymentFrequency"].to_string());
        failure.insert(m["performance"]["changeFailureRate"].to_string());
    }
    assert!(frequency.len() >= 3, "{frequency:?}");
    assert!(failure.len() >= 2, "{failure:?}");

    // Outcomes: each portfolio's objectives, measured and linked to epics.
    let exec = app.login(EXEC).await;
    for portfolio in ["payments", "lending"] {
        let d = app.ok(&exec, PORTFOLIO_Q, json!({ "k": portfolio })).await;
        let objectives = d["unit"]["objectives"].as_array().unwrap();
        assert_eq!(objectives.len(), 2, "{d}");
        for o in objectives {
            let krs = o["keyResults"].as_array().unwrap();
            assert!((2..=3).contains(&krs.len()), "{o}");
            for kr in krs {
                let p = kr["progress"].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&p), "{kr}");
            }
            let linked = o["linkedWorkItems"].as_array().unwrap();
            assert!(!linked.is_empty(), "{o}");
            assert!(linked.iter().all(|w| w["type"] == "EPIC"), "{o}");
            assert!(o["delivery"]["total"].as_i64().unwrap() > 0, "{o}");
        }

        // Value streams: an operational one and the development one that
        // supports it, with investment for the executive.
        let streams = d["unit"]["valueStreams"].as_array().unwrap();
        assert_eq!(streams.len(), 2, "{d}");
        let kinds: HashSet<&str> = streams
            .iter()
            .map(|s| s["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, HashSet::from(["OPERATIONAL", "DEVELOPMENT"]), "{d}");
        for s in streams {
            assert!(!s["stages"].as_array().unwrap().is_empty(), "{s}");
            assert!(s["budget"].as_f64().unwrap() > 0.0, "{s}");
            assert!(s["costPerPeriod"].as_f64().unwrap() > 0.0, "{s}");
        }
        let dev = streams.iter().find(|s| s["kind"] == "DEVELOPMENT").unwrap();
        assert_eq!(dev["supports"].as_array().unwrap().len(), 1, "{dev}");
    }

    // A team member reads the streams of their portfolio, not what they cost.
    let team = app.login(TEAM).await;
    let body = app
        .gql(
            Some(&team),
            "{ unit(key: \"payments\") { valueStreams { key budget } } }",
            json!({}),
        )
        .await;
    let streams = body["data"]["unit"]["valueStreams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{body}");
    assert!(streams.iter().all(|s| s["budget"].is_null()), "{body}");
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}
both!(the_demo_shows_the_whole_product);

/// Some team boards have WIP limits, and some cards are flagged blocked.
async fn the_demo_boards_have_limits_and_blockers(app: TestApp) {
    let admin = app.login(ADMIN).await;
    let q = "query($k: String!) { unit(key: $k) { id } }";
    let delta = app.ok(&admin, q, json!({ "k": "team-delta" })).await["unit"]["id"].clone();
    let board = app
        .ok(
            &admin,
            "query($u: ID!) { board(unit: $u) { columns { name wipLimit } } }",
            json!({ "u": delta }),
        )
        .await;
    let limited = board["board"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["wipLimit"].is_number())
        .count();
    assert!(limited > 0, "{board}");
    let flagged = app
        .ok(
            &admin,
            "query($u: ID!) { workItems(unit: $u, first: 100) { nodes { key state blocked } } }",
            json!({ "u": delta }),
        )
        .await;
    assert!(
        flagged["workItems"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["blocked"] == true && w["state"] != "Blocked"),
        "{flagged}"
    );
}
both!(the_demo_boards_have_limits_and_blockers);
