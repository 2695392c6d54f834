//! The entry points the `kaito` CLI wires up: `kaito crd`, `kaito render`, `kaito estimate` and
//! `kaito controller`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::render::{input, RenderOptions};

pub use crate::controller::runner::{run_controller, ControllerOptions};

/// `kaito crd`: both CRDs as multi-document YAML.
pub fn crd_yaml() -> Result<String> {
    crate::crd::generate::crd_yaml()
}

fn read(path: &Path) -> Result<String, Vec<String>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![Error::Io {
            context: format!("cannot read {}", path.display()),
            source: e,
        }
        .to_string()]
    })
}

/// `kaito render -f FILE`: every object the controller would apply, as multi-document YAML.
/// `Err` holds one line per problem, each naming the document, object and field path.
pub fn render_file(path: &Path) -> Result<String, Vec<String>> {
    input::render_text(&read(path)?, &RenderOptions::default())
}

/// `kaito estimate -f FILE`: the estimator's result and its arithmetic for every Workspace.
pub fn estimate_file(path: &Path) -> Result<String, Vec<String>> {
    input::estimate_text(&read(path)?)
}
