//! Serving the operators' console (`console/`, a Leptos WebAssembly app)
//! at `/console/`.
//!
//! The bundle is built by `cargo xtask console` into `console/dist/`,
//! committed, and embedded here, so the binary serves a working console
//! with nothing else installed. Each file is embedded as built and
//! precompressed (brotli, gzip); a request gets the smallest encoding it
//! accepts. Names are not content-hashed, so responses say `no-cache` with
//! an ETag: a browser revalidates and gets `304` until the bundle changes.
//! Any path without a file extension is a console page and gets
//! `index.html` (the app routes it).

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::error::{ApiError, Missing};
use super::AppState;

/// Only our own scripts and the wasm they instantiate; no inline code, no
/// framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// One file of the bundle in its three encodings.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    raw: &'static [u8],
    br: &'static [u8],
    gz: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset {
            name: $name,
            content_type: $type,
            raw: include_bytes!(concat!("../../../console/dist/", $name)),
            br: include_bytes!(concat!("../../../console/dist/", $name, ".br")),
            gz: include_bytes!(concat!("../../../console/dist/", $name, ".gz")),
        }
    };
}

const ASSETS: [Asset; 5] = [
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("boot.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("console.js", "text/javascript; charset=utf-8"),
    asset!("console_bg.wasm", "application/wasm"),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move { serve(&path, &headers) }),
        )
}

/// The three encodings we hold, smallest first.
#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    const ALL: [Encoding; 3] = [Encoding::Brotli, Encoding::Gzip, Encoding::Identity];

    fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }

    fn body(self, asset: &Asset) -> &'static [u8] {
        match self {
            Encoding::Brotli => asset.br,
            Encoding::Gzip => asset.gz,
            Encoding::Identity => asset.raw,
        }
    }

    /// The smallest encoding `Accept-Encoding` allows (`q=0` refuses one).
    fn negotiate(headers: &HeaderMap) -> Encoding {
        let accepted = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let allows = |token: &str| {
            accepted.split(',').any(|item| {
                let mut parts = item.split(';').map(str::trim);
                let named = parts.next().is_some_and(|n| n.eq_ignore_ascii_case(token));
                let refused = parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                named && !refused
            })
        };
        Encoding::ALL
            .into_iter()
            .find(|e| *e == Encoding::Identity || allows(e.token()))
            .unwrap_or(Encoding::Identity)
    }
}

/// The ETag of each asset in each encoding (a strong tag names one
/// representation): a hash of its bytes, computed once.
fn etag(index: usize, encoding: Encoding) -> &'static str {
    static TAGS: OnceLock<Vec<[String; 3]>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                Encoding::ALL.map(|e| {
                    let hash = chainpay_core::crypto::sha3_256_hex(e.body(asset));
                    format!("\"{}\"", &hash[..20])
                })
            })
            .collect()
    });
    &tags[index][Encoding::ALL
        .iter()
        .position(|e| *e == encoding)
        .unwrap_or(2)]
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let wanted = if path.contains('.') {
        path
    } else {
        "index.html"
    };
    let Some(index) = ASSETS.iter().position(|a| a.name == wanted) else {
        return ApiError::NotFound(Missing::Route).into_response();
    };
    let asset = &ASSETS[index];
    let encoding = Encoding::negotiate(headers);
    let tag = etag(index, encoding);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        encoding.body(asset).into_response()
    };
    let out = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::VARY, "Accept-Encoding"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::ETAG, tag),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(name, value);
        }
    }
    if encoding != Encoding::Identity && !fresh {
        out.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
    }
    response
}
