//! The `kaito` command.
fn main() {}
