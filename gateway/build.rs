// `sqlx::migrate!` embeds the migrations when the crate compiles; without this
// line, a new or edited migration would not reach the binary until some Rust
// source changed.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
