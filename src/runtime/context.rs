//! The runtime context: what every domain's actors and handles share,
//! immutable after start or internally synchronized. Domain state (token
//! keys, chat caches, the socket registry) belongs to its domain's handle.

use std::sync::Arc;
use std::time::Instant;

use crate::core::config::Config;
use crate::core::ids::IdGenerator;
use crate::core::metrics::Metrics;
use crate::runtime::bus::EventBus;
use crate::runtime::kv::Kv;
use crate::storage::Pool;

pub struct Ctx {
    pub config: Config,
    /// The node's one id generator (the executor holds the same one).
    pub ids: Arc<IdGenerator>,
    pub kv: Arc<dyn Kv>,
    pub bus: Arc<dyn EventBus>,
    pub metrics: Metrics,
    pub pool: Pool,
    pub started: Instant,
    /// Whether this node runs the singular jobs now (see `runtime::cluster`).
    pub leader: crate::runtime::cluster::Leadership,
}
