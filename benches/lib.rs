//! Benchmarks live in `core.rs` (`cargo bench -p kaito-benches`); this library is empty.
