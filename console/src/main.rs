//! The operators' console: a Leptos CSR app served by the gateway at
//! `/console/`. It talks only to `/api/v1` with the admin's bearer token and
//! holds no rule the server does not enforce; the one thing it computes
//! itself is the verification of a chain proof, with core's code.

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod routes;
#[cfg(target_arch = "wasm32")]
mod session;
#[cfg(target_arch = "wasm32")]
mod widgets;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("the console runs in a browser: build it with `cargo xtask console`");
}
