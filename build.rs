//! `embed_migrations!` reads `migrations/` at compile time; without this, cargo would not notice
//! a new migration and keep embedding the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
