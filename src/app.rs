//! What every request and connection shares: the configuration, the authenticator, the
//! delivery seam and the runtime (centrifuge's `node.go`, minus the starting and stopping,
//! which is `server`'s).
//!
//! It must never depend on the modules that use it (`server`, `session`, `http_api`), so that
//! none of them imports another through it.

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::delivery::Delivery;
use crate::runtime::Runtime;

pub struct AppState {
    pub config: Config,
    pub auth: Authenticator,
    pub delivery: Arc<Delivery>,
    pub runtime: Arc<Runtime>,
}
