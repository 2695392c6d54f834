//! The `Workspace`: the declarative spec users write, field-compatible with KAITO's `kaito.sh/v1beta1`.

mod engine_spec;
mod parse;
mod types;
pub mod validate;

pub use parse::{from_value_strict, split_documents, Document};
pub use types::*;
