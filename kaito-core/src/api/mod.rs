//! The OpenAI API as data, without an HTTP server: the wire types requests and responses take
//! ([`openai`]), the validation of sampling parameters into engine parameters ([`params`]) and
//! of chat messages into chat-template input ([`messages`]). The server (feature `server`), the
//! Python bindings and the CLI's chat share them.

pub mod messages;
pub mod openai;
pub mod params;
