//! The operators' console as the gateway serves it: compressed, revalidated
//! by ETag, under a Content-Security-Policy that allows only its own
//! scripts and wasm, and every console page answered with the app. (What
//! the console does is tested in Chromium by `cargo xtask e2e`.)

use crate::support::*;
use reqwest::header::{HeaderMap, ACCEPT_ENCODING, IF_NONE_MATCH};
use reqwest::StatusCode;

async fn fetch(
    app: &TestApp,
    path: &str,
    headers: &[(reqwest::header::HeaderName, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = app.client.get(app.url(path));
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_console_is_served_compressed_under_a_strict_policy() {
    let app = spawn_app().await;
    let (status, headers, page) = fetch(&app, "/console/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains(r#"<script type="module" src="/console/boot.js"></script>"#),
        "{page}"
    );
    let policy = header(&headers, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(header(&headers, "x-frame-options"), "DENY");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(header(&headers, "cache-control"), "no-cache");

    let (status, headers, raw) = fetch(
        &app,
        "/console/console_bg.wasm",
        &[(ACCEPT_ENCODING, "identity")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), "application/wasm");
    assert!(raw.starts_with(b"\0asm"), "a WebAssembly module");
    assert!(headers.get("content-encoding").is_none());
    let (_, headers, brotli) = fetch(
        &app,
        "/console/console_bg.wasm",
        &[(ACCEPT_ENCODING, "gzip, deflate, br")],
    )
    .await;
    assert_eq!(header(&headers, "content-encoding"), "br");
    assert_eq!(header(&headers, "vary"), "Accept-Encoding");
    assert!(
        brotli.len() * 2 < raw.len(),
        "brotli {} of {}",
        brotli.len(),
        raw.len()
    );
    let (_, headers, gzip) = fetch(
        &app,
        "/console/console_bg.wasm",
        &[(ACCEPT_ENCODING, "br;q=0, gzip")],
    )
    .await;
    assert_eq!(
        header(&headers, "content-encoding"),
        "gzip",
        "q=0 refuses brotli"
    );
    assert!(gzip.starts_with(&[0x1f, 0x8b]));
}

#[tokio::test]
async fn the_console_revalidates_by_etag_and_every_page_path_gets_the_app() {
    let app = spawn_app().await;
    let (_, headers, _) = fetch(&app, "/console/style.css", &[(ACCEPT_ENCODING, "br")]).await;
    let tag = header(&headers, "etag").to_owned();
    assert!(tag.starts_with('"') && tag.len() > 10, "{tag}");
    let (status, _, body) = fetch(
        &app,
        "/console/style.css",
        &[(ACCEPT_ENCODING, "br"), (IF_NONE_MATCH, &tag)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    let (status, _, _) = fetch(
        &app,
        "/console/style.css",
        &[(ACCEPT_ENCODING, "gzip"), (IF_NONE_MATCH, &tag)],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another encoding is another representation"
    );

    let (_, _, index) = fetch(&app, "/console/", &[]).await;
    for page in [
        "/console",
        "/console/users/7f1e",
        "/console/chain/proof/abc",
    ] {
        let (status, headers, body) = fetch(&app, page, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(
            header(&headers, "content-type"),
            "text/html; charset=utf-8",
            "{page}"
        );
        assert_eq!(body, index, "{page} is the app");
    }
    let missing = app
        .client
        .get(app.url("/console/secrets.js"))
        .send()
        .await
        .unwrap();
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    let escape = app
        .client
        .get(app.url("/console/..%2F..%2Fetc%2Fpasswd.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        escape.status(),
        StatusCode::NOT_FOUND,
        "only the bundle's own files"
    );
}
