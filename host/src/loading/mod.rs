//! Which plugins serve which routes, and how that changes: loading,
//! replacing (hot reload) and unloading plugin files.
//!
//! - `registry`: the loaded plugins and the route table leading to them;
//! - `contest`: start-up conflicts over a name or a route;
//! - `routes`: route patterns with `:param` segments, most specific wins;
//! - `watcher`: watches the plugins folder and hands changes to the registry.

mod contest;
pub(crate) mod registry;
pub(crate) mod routes;
pub(crate) mod watcher;
