//! Rebuild when a migration changes: they are embedded into the crate.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
