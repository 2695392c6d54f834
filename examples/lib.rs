//! Examples live beside this file (`cargo run --release -p kaito-examples --example NAME`); this library is empty.
