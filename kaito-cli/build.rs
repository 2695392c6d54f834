//! When libtorch is linked (features `torch`/`quant`, with `LIBTORCH` set as
//! `scripts/libtorch-env.sh` does), record its library folder as the binary's run path so that
//! `kaito` starts without `LD_LIBRARY_PATH`. With `KAITO_TORCH_CUDA=1` the binary also keeps
//! `libtorch_cuda` as a dependency (the linker would drop it: no symbol of it is referenced), which
//! is what makes CUDA visible to libtorch at run time; such a binary needs the CUDA libraries.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=KAITO_TORCH_CUDA");
    let torch = std::env::var_os("CARGO_FEATURE_TORCH").is_some()
        || std::env::var_os("CARGO_FEATURE_QUANT").is_some();
    let Some(libtorch) = std::env::var_os("LIBTORCH").filter(|_| torch) else {
        return;
    };
    let lib = std::path::Path::new(&libtorch).join("lib");
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", lib.display());
    if std::env::var("KAITO_TORCH_CUDA").as_deref() == Ok("1") {
        println!("cargo:rustc-link-arg-bins=-L{}", lib.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg-bins=-ltorch_cuda");
        println!("cargo:rustc-link-arg-bins=-Wl,--as-needed");
    }
}
