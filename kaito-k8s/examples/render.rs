//! `cargo run -p kaito-k8s --example render -- FILE`: what `kaito render -f FILE` prints.
fn main() {
    let path = std::env::args().nth(1).expect("usage: render FILE");
    match kaito_k8s::cli::render_file(std::path::Path::new(&path)) {
        Ok(yaml) => print!("{yaml}"),
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            std::process::exit(1);
        }
    }
}
