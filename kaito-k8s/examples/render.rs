//! `cargo run -p kaito-k8s --example render -- FILE` prints what `kaito render -f FILE` does;
//! `cargo run -p kaito-k8s --example render -- --estimate FILE` what `kaito estimate -f FILE` does.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (estimate, path) = match args.as_slice() {
        [flag, path] if flag == "--estimate" => (true, path.clone()),
        [path] => (false, path.clone()),
        _ => {
            eprintln!("usage: render [--estimate] FILE");
            std::process::exit(2);
        }
    };
    let path = std::path::Path::new(&path);
    let result = if estimate {
        kaito_k8s::cli::estimate_file(path)
    } else {
        kaito_k8s::cli::render_file(path)
    };
    match result {
        Ok(yaml) => print!("{yaml}"),
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            std::process::exit(1);
        }
    }
}
