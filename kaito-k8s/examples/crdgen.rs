//! `cargo run -p kaito-k8s --example crdgen > deploy/base/crds/kaito.sh_crds.yaml`: what
//! `kaito crd` prints (the committed copy is checked by `tests/crd.rs`).
fn main() {
    match kaito_k8s::cli::crd_yaml() {
        Ok(yaml) => print!("{yaml}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
