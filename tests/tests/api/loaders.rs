//! DataLoaders keep the number of SQL statements of a query independent of
//! its page size.

use serde_json::json;

use crate::both;
use crate::harness::{ADMIN, PROGRAM, TestApp};

const QUERY: &str = "query($n: Int!) { organization { workItems(first: $n) { totalCount nodes { key parent { key title } unit { key name } assignee { name } transitions { toState at } } } } }";

async fn statements_for(app: &TestApp, token: &str, n: i64) -> (u64, usize) {
    let before = app.statements().await;
    let data = app.ok(token, QUERY, json!({ "n": n })).await;
    let after = app.statements().await;
    let items = data["organization"]["workItems"]["nodes"]
        .as_array()
        .unwrap()
        .len();
    (after - before, items)
}

async fn statement_count_does_not_grow_with_page_size(app: TestApp) {
    for who in [ADMIN, PROGRAM] {
        let token = app.login(who).await;
        // Warm up, then measure.
        statements_for(&app, &token, 5).await;
        let (small, n_small) = statements_for(&app, &token, 10).await;
        let (large, n_large) = statements_for(&app, &token, 100).await;
        assert_eq!(
            (n_small, n_large),
            (10, 100),
            "{who}: the demo has 100+ readable items"
        );
        assert!(
            large <= small + 1,
            "{who}: 10 items ran {small} statements, 100 items ran {large}"
        );
        assert!(
            large <= 16,
            "{who}: {large} statements for 100 items with parent, unit and transitions"
        );
    }
}
both!(statement_count_does_not_grow_with_page_size);
