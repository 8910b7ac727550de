//! What the backend and clients present to the host: the publish API and
//! token authentication. Below the network layer, above the plugins.
//!
//! - `publish`: `POST /api/publish`, parsing and delivery;
//! - `auth`: HS256 token verification, and the one `Bearer` parser.

pub(crate) mod auth;
pub(crate) mod publish;
