//! The operators' console. Until the Leptos console lands, the gateway serves
//! [`PLACEHOLDER_HTML`] at `/console/` so operators find a pointer to the API.

/// A static page that says what the console will be and where the API is.
pub const PLACEHOLDER_HTML: &str = include_str!("placeholder.html");
