//! The OpenAI API as data, without an HTTP server: the wire types requests and responses take
//! ([`openai`]) and the validation of sampling parameters into engine parameters ([`params`]).
//! The server (feature `server`), the Python bindings and the CLI's chat share them.

pub mod openai;
pub mod params;
