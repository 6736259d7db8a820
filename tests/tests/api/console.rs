//! The console at `/` and GraphiQL at `GET /graphql`: every asset they name
//! is served by the server itself, with its type, a year's cache and gzip.

use std::collections::BTreeSet;

use crate::both;
use crate::harness::TestApp;

/// Paths under `/assets/` that `text` names in quotes.
fn asset_paths(text: &str) -> BTreeSet<String> {
    text.split('"')
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

/// Relative ES module imports of a script: `from './api.js'`.
fn imports(script: &str) -> BTreeSet<String> {
    script
        .split("from '")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next())
        .filter(|p| p.starts_with("./"))
        .map(|p| p.trim_start_matches("./").to_owned())
        .collect()
}

async fn get(app: &TestApp, path: &str, accept: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn pages_and_assets_come_from_the_server(app: TestApp) {
    let mut seen = BTreeSet::new();
    for (path, title) in [
        ("/", "<title>Gemba</title>"),
        ("/graphql", "Gemba GraphiQL"),
    ] {
        let res = get(&app, path, "text/html,application/xhtml+xml").await;
        assert_eq!(res.status().as_u16(), 200, "{path}");
        assert_eq!(header(&res, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&res, "cache-control"), "no-cache");
        let csp = header(&res, "content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("connect-src 'self'"), "{csp}");
        let html = res.text().await.unwrap();
        assert!(html.contains(title), "{html}");
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("//unpkg")
        );
        let assets = asset_paths(&html);
        assert!(!assets.is_empty(), "{html}");
        seen.extend(assets);
    }
    // The console's modules import each other by relative path, under the
    // same hashed directory.
    let main = seen
        .iter()
        .find(|p| p.ends_with("/main.js"))
        .expect("the console's entry module")
        .clone();
    let dir = main.trim_end_matches("main.js").to_owned();
    let mut queue: Vec<String> = vec![main.clone()];
    while let Some(path) = queue.pop() {
        let script = get(&app, &path, "*/*").await.text().await.unwrap();
        for m in imports(&script) {
            let p = format!("{dir}{m}");
            if seen.insert(p.clone()) {
                queue.push(p);
            }
        }
    }
    assert!(seen.iter().any(|p| p.ends_with("/board.js")), "{seen:?}");
    assert!(
        seen.iter().any(|p| p.ends_with("/graphiql.min.js")),
        "{seen:?}"
    );
    for path in &seen {
        let res = get(&app, path, "*/*").await;
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let ty = header(&res, "content-type");
        let want = match path.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("unexpected asset type {other}"),
        };
        assert_eq!(ty, want, "{path}");
        assert_eq!(
            header(&res, "cache-control"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&res, "x-content-type-options"), "nosniff");
        assert!(!res.bytes().await.unwrap().is_empty(), "{path}");
    }
    // No stylesheet or script fetches from elsewhere (fonts are data: URLs).
    for path in seen.iter().filter(|p| p.ends_with(".css")) {
        let css = get(&app, path, "*/*").await.text().await.unwrap();
        assert!(!css.contains("@import"), "{path}");
        for url in css.split("url(").skip(1) {
            let url = url.trim_start_matches(['"', '\'']);
            assert!(
                url.starts_with("data:"),
                "{path} fetches {}",
                &url[..40.min(url.len())]
            );
        }
    }

    // gzip when asked for, the same bytes otherwise.
    let js = seen
        .iter()
        .find(|p| p.ends_with("/graphiql.min.js"))
        .unwrap();
    let plain = get(&app, js, "*/*").await.bytes().await.unwrap();
    let res = app
        .client
        .get(app.url(js))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&res, "content-encoding"), "gzip");
    assert_eq!(header(&res, "vary"), "accept-encoding");
    let gz = res.bytes().await.unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    assert!(
        gz.len() * 3 < plain.len(),
        "{} of {}",
        gz.len(),
        plain.len()
    );

    // Another version's hash, an unknown file or directory: 404.
    let stale = main.replace(main.split('/').nth(2).unwrap(), "console-0000000000000000");
    for path in [
        stale.as_str(),
        &format!("{dir}nothing.js"),
        "/assets/other-1/main.js",
        &format!("{dir}../graphql"),
    ] {
        assert_eq!(
            get(&app, path, "*/*").await.status().as_u16(),
            404,
            "{path}"
        );
    }
}
both!(pages_and_assets_come_from_the_server);
