//! `sqlx::migrate!` embeds `migrations/` at compile time but, on stable
//! Rust, cannot tell Cargo it read that directory: without this, a new
//! migration file would not rebuild the server.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
