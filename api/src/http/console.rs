//! The Gemba console at `/` and GraphiQL at `GET /graphql`, from files
//! embedded in the binary: a browser on a network without internet access
//! (or behind a strict proxy) gets every script, style and font from this
//! server, and no page asks any other host for anything.
//!
//! The files live in `api/console/`: `app/` is the console itself, plain
//! ES modules and CSS with no build step; `graphiql/` is GraphiQL's and
//! React's browser builds, copied from npm by `console/vendor/vendor.mjs`
//! and committed (CI checks the copy against a clean `npm ci`).
//!
//! Each directory is served under `/assets/<dir>-<hash>/`, the hash taken
//! over its files' names and contents, so the files are cached for a year
//! and an upgrade changes every URL. The two HTML pages name the current
//! hash and are never cached. Text files are gzipped once, on the first
//! request that accepts gzip.

use std::sync::{LazyLock, OnceLock};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// An embedded file, with its gzipped form once computed.
struct File {
    name: &'static str,
    bytes: &'static [u8],
    gzipped: OnceLock<Bytes>,
}

/// One directory of embedded files, served under `/assets/<prefix>-<hash>/`.
struct Bundle {
    prefix: &'static str,
    hash: String,
    files: Vec<File>,
}

impl Bundle {
    fn new(prefix: &'static str, files: &[(&'static str, &'static [u8])]) -> Self {
        let mut digest = Sha256::new();
        for (name, bytes) in files {
            digest.update(name.as_bytes());
            digest.update([0]);
            digest.update((bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        }
        let hash = digest
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        Self {
            prefix,
            hash,
            files: files
                .iter()
                .map(|&(name, bytes)| File {
                    name,
                    bytes,
                    gzipped: OnceLock::new(),
                })
                .collect(),
        }
    }

    /// The URL path the bundle's files are served under, without a
    /// trailing slash.
    fn base(&self) -> String {
        format!("/assets/{}-{}", self.prefix, self.hash)
    }

    fn file(&self, name: &str) -> Option<&File> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// `(name, bytes)` of files under `api/console/<dir>/`.
macro_rules! embed {
    ($dir:literal: $($name:literal),+ $(,)?) => {
        &[$((
            $name,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $dir, "/", $name))
                as &'static [u8],
        )),+]
    };
}

/// The console: every file of `api/console/app/` (a test checks the list).
static CONSOLE: LazyLock<Bundle> = LazyLock::new(|| {
    Bundle::new(
        "console",
        embed!("app":
            "index.html",
            "style.css",
            "favicon.svg",
            "main.js",
            "api.js",
            "live.js",
            "queries.js",
            "format.js",
            "charts.js",
            "executive.js",
            "board.js",
            "graphiql.js",
        ),
    )
});

/// GraphiQL and React, as `console/vendor/vendor.mjs` copies them.
static GRAPHIQL: LazyLock<Bundle> = LazyLock::new(|| {
    Bundle::new(
        "graphiql",
        embed!("graphiql":
            "react.production.min.js",
            "react-dom.production.min.js",
            "graphiql.min.js",
            "graphiql.min.css",
            "LICENSES.txt",
            "versions.json",
        ),
    )
});

/// The console's page, naming the current asset hash.
static INDEX_PAGE: LazyLock<String> =
    LazyLock::new(|| page(include_str!("../../console/app/index.html")));

/// GraphiQL's page.
static GRAPHIQL_PAGE: LazyLock<String> =
    LazyLock::new(|| page(include_str!("../../console/graphiql.html")));

fn page(template: &str) -> String {
    template
        .replace("{{CONSOLE}}", &CONSOLE.base())
        .replace("{{GRAPHIQL}}", &GRAPHIQL.base())
}

/// Nothing but this server: scripts, styles, fonts, images and
/// connections (`'self'` covers the same host's WebSocket).
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// As the console's, with the inline styles React components set and the
/// fonts GraphiQL's stylesheet carries as `data:` URLs.
const GRAPHIQL_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
const NO_REFERRER: HeaderValue = HeaderValue::from_static("no-referrer");

fn html_page(body: &str, csp: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, NO_CACHE),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(csp),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, NOSNIFF),
            (header::REFERRER_POLICY, NO_REFERRER),
        ],
        body.to_owned(),
    )
        .into_response()
}

/// `GET /`: the console.
pub async fn index() -> Response {
    html_page(&INDEX_PAGE, CONSOLE_CSP)
}

/// GraphiQL, for a browser's `GET /graphql`.
pub fn graphiql() -> Response {
    html_page(&GRAPHIQL_PAGE, GRAPHIQL_CSP)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::best(),
    );
    enc.write_all(bytes)?;
    enc.finish()
}

/// The gzipped form of `file`, computed on first use off the async
/// workers and shared by reference after; `None` when compressing failed
/// (the file goes uncompressed).
async fn gzipped(file: &'static File) -> Option<Bytes> {
    if let Some(done) = file.gzipped.get() {
        return Some(done.clone());
    }
    let bytes = file.bytes;
    match tokio::task::spawn_blocking(move || gzip(bytes)).await {
        Ok(Ok(gz)) => Some(file.gzipped.get_or_init(|| Bytes::from(gz)).clone()),
        Ok(Err(e)) => {
            tracing::warn!(file = file.name, error = %e, "cannot gzip an asset");
            None
        }
        Err(e) => {
            tracing::warn!(file = file.name, error = %e, "gzipping an asset failed");
            None
        }
    }
}

/// Files smaller than this go uncompressed: gzip saves little on them.
const GZIP_MIN_BYTES: usize = 1024;

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found",
    )
        .into_response()
}

/// `GET /assets/{bundle}/{*file}`: an embedded file. A hash other than
/// the current one is `404`, so a stale page never mixes versions.
pub async fn asset(Path((bundle, name)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let bundle: &'static Bundle = match bundle.rsplit_once('-') {
        Some(("console", hash)) if hash == CONSOLE.hash => &CONSOLE,
        Some(("graphiql", hash)) if hash == GRAPHIQL.hash => &GRAPHIQL,
        _ => return not_found(),
    };
    let Some(file) = bundle.file(&name) else {
        return not_found();
    };
    let ty = content_type(file.name);
    let mut res_headers = HeaderMap::new();
    res_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ty));
    res_headers.insert(header::CACHE_CONTROL, IMMUTABLE);
    res_headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    let compressible = !ty.starts_with("application/octet-stream");
    if compressible {
        res_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if compressible
        && file.bytes.len() >= GZIP_MIN_BYTES
        && accepts_gzip(&headers)
        && let Some(gz) = gzipped(file).await
    {
        res_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        return (res_headers, gz).into_response();
    }
    (res_headers, file.bytes).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of each directory is embedded, and nothing else: a file
    /// added to `api/console/app/` without a line in [`CONSOLE`] would be
    /// a 404 in the browser.
    #[test]
    fn every_file_is_embedded() {
        for (dir, bundle) in [("app", &*CONSOLE), ("graphiql", &*GRAPHIQL)] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("console")
                .join(dir);
            let mut on_disk: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            on_disk.sort();
            let mut embedded: Vec<String> =
                bundle.files.iter().map(|f| f.name.to_owned()).collect();
            embedded.sort();
            assert_eq!(on_disk, embedded, "files of api/console/{dir}");
        }
    }

    #[test]
    fn pages_name_only_local_assets() {
        for page in [&*INDEX_PAGE, &*GRAPHIQL_PAGE] {
            assert!(!page.contains("{{"), "unfilled placeholder");
            assert!(!page.contains("http://") && !page.contains("https://"));
            assert!(!page.contains("//unpkg") && !page.contains("//cdn"));
        }
    }

    #[test]
    fn gzip_negotiation() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br, identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
