//! What the process hands every context at start-up.

/// The shared infrastructure a context is started with.
#[derive(Clone)]
pub struct ContextDeps {
    /// The bus: in-process in embedded mode, RabbitMQ in production.
    pub events: crate::events::Events,
    /// The cache: in-process (moka) in embedded mode, Redis in production. It never errors.
    pub cache: crate::cache::Cache,
    /// Verifies access tokens; routers add it as an `Extension` for `AuthUser`.
    pub keys: crate::auth::KeySet,
    /// Clients for the other contexts' APIs (in-process or HTTP).
    pub peers: crate::client::Peers,
    /// Fault-injection flags (off unless enabled: see `crate::faults`).
    pub faults: crate::faults::Faults,
}
