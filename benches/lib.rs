//! The criterion benchmarks are the `[[bench]]` targets of this crate (`cargo bench -p kaito-benches`;
//! `--features quant` adds the torch and quant engines to `decode_step`); this library is empty.
