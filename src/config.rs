//! Configuration: one TOML file, `SWITCHYARD_*` environment overrides, then command-line flags.
//!
//! Owns the shape and defaults of every setting. It must never start anything; it only says
//! what to start. With no file at all the server runs in *development mode*: a fixed, public
//! JWT secret and API key, announced by a loud warning at startup.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// The development JWT secret used when `auth` configures no key. Public: never use it in
/// production.
pub const DEV_SECRET: &str = "switchyard-dev-secret-do-not-use-in-production";
/// The development API key used when `http.api_key` is not set. Public, like [`DEV_SECRET`].
pub const DEV_API_KEY: &str = "switchyard-dev-api-key";
/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "switchyard.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    pub auth: AuthConfig,
    pub ws: WsConfig,
    pub http: HttpConfig,
    pub runtime: RuntimeConfig,
    pub cluster: ClusterConfig,
}

/// `[cluster]`: several nodes sharing sends, presence and kicks through Redis. Cluster mode is
/// on exactly when `redis_url` is set; without it the node is the whole world.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host:port[/db]` (env `SWITCHYARD_CLUSTER__REDIS_URL`).
    pub redis_url: Option<String>,
    /// This node's id, the prefix of its client ids. Default: fresh and unique per process
    /// start, so a restarted node is never mistaken for the one that died.
    pub node_id: Option<String>,
    /// Prefix of every Redis key and channel, so that deployments can share one Redis.
    pub prefix: String,
    /// How often the node writes its liveness.
    pub heartbeat_ms: u64,
    /// A node silent this long is dead: a survivor sweeps its connections from presence.
    pub node_ttl_ms: u64,
    /// Timeout of every Redis connect and command; past it the command is counted as failed.
    pub timeout_ms: u64,
    /// Cross-node messages buffered while Redis is slow; past it they are dropped (counted).
    pub publish_buffer: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 shared secret. With neither this nor `public_key_file`, the dev secret is used.
    pub secret: Option<String>,
    /// PEM public key for RS256 / ES256 tokens.
    pub public_key_file: Option<PathBuf>,
    /// PEM private key, only used by `switchyard token` to mint RS256 / ES256 tokens.
    pub private_key_file: Option<PathBuf>,
    /// Accepted algorithms, pinned here and never taken from the token header.
    /// Default: `["HS256"]` with a secret, `["RS256"]` with a public key.
    pub algorithms: Vec<String>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
    /// The claim holding the user id.
    pub user_claim: String,
    /// Clock skew tolerated on `exp` / `nbf`, seconds.
    pub leeway_secs: u64,
    /// Admit connections without a token as guests (user id `""`).
    pub anonymous: bool,
    /// Refuse tokens without an `exp` claim. Off (hotgo's login tokens carry none), such
    /// tokens never expire on a live connection; a loud warning says so at startup.
    pub require_exp: bool,
    /// Seconds before a connection's token expires when the server sends `token_expiring`.
    pub expiry_warning_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Largest accepted client frame; bigger closes with 1009.
    pub max_frame_bytes: usize,
    /// Per-connection outbound queue bound; past it the client is disconnected (1013).
    pub outbound_queue_bytes: usize,
    /// A write (frames, or the heartbeat ping) that takes longer disconnects the client (1008).
    pub write_timeout_ms: u64,
    /// No frame (or pong) for this long closes the connection (4000).
    pub heartbeat_timeout_secs: u64,
    /// The server sends a WebSocket ping this often.
    pub ping_interval_secs: u64,
    /// Sustained client frames per second per connection; 0 disables the limit.
    pub rate_per_sec: u32,
    /// Burst allowance above `rate_per_sec`.
    pub rate_burst: u32,
    /// Connections this node accepts; past it the upgrade is answered 503.
    pub max_connections: usize,
    /// Allowed `Origin` values (`"*"` for any). A request without `Origin` (not a browser) and
    /// a same-host origin are always allowed.
    pub allowed_origins: Vec<String>,
    /// Read buffer per connection; small keeps idle connections cheap.
    pub read_buffer_bytes: usize,
    /// Deepest nesting of arrays and objects a frame's `data` may have (0: no limit); a
    /// deeper frame is answered `bad_json`.
    pub max_json_depth: usize,
    /// Tag patterns clients may `join` themselves (`"*"`: any, as hotgo). Empty: none; tags
    /// then come only from the token's `tags` claim and from handlers.
    pub client_join: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Key for the HTTP API (`X-Api-Key` or `Authorization: Bearer`). Dev key when unset.
    pub api_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The handler manifest.
    pub manifest: PathBuf,
    /// Where compiled modules are cached between restarts.
    pub cache_dir: Option<PathBuf>,
    /// Watch the manifest and modules and hot-swap on change.
    pub watch: bool,
    /// Debounce for file changes, milliseconds.
    pub watch_debounce_ms: u64,
    /// Period of the engine-wide epoch ticker that enforces call deadlines, microseconds,
    /// while a call is slow; otherwise it ticks 16 times slower (see `runtime::ticker`).
    pub epoch_tick_us: u64,
    /// Handler instances that may exist at once (pooling allocator slots).
    pub max_instances: u32,
    /// Component instances that may exist at once, in slots of their own beside
    /// `max_instances` (each links several core instances: a Python one 16).
    pub max_component_instances: u32,
    /// Ceiling for any module's `limits.memory_mib`.
    pub max_memory_mib: u64,
    /// Enable fuel metering so modules may set `limits.fuel` (costs some speed).
    pub fuel: bool,
    /// Linear memory (KiB) each pooled instance slot keeps resident between events and resets
    /// with `memset`; the rest is returned with `madvise`.
    pub keep_resident_kib: usize,
    /// Handler calls that may run past their first epoch tick at once (slow or hostile
    /// calls); the others wait, so fast events keep the remaining cores. Default: cores - 1.
    pub slow_lane: usize,
    /// Find the pages an event dirtied with Linux's PAGEMAP_SCAN (>= 6.7) instead of resetting
    /// the whole `keep_resident_kib`.
    pub pagemap_scan: bool,
    /// Longest guest log message (the `log` host function, a WASI output line), bytes after
    /// escaping; longer ones are cut and marked.
    pub guest_log_max_bytes: usize,
    /// Lines one handler call may log; the rest are dropped and counted.
    pub guest_log_per_call: u32,
    /// Lines one module may log per second (all its calls, with a burst of as many).
    pub guest_log_per_sec: u32,
    /// Folders besides the manifest's where module files may be (symlinks resolved); a module
    /// path anywhere else is refused.
    pub module_dirs: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auth: AuthConfig::default(),
            ws: WsConfig::default(),
            http: HttpConfig::default(),
            runtime: RuntimeConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            node_id: None,
            prefix: "switchyard".into(),
            heartbeat_ms: 2000,
            node_ttl_ms: 10_000,
            timeout_ms: 1000,
            publish_buffer: 65_536,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            secret: None,
            public_key_file: None,
            private_key_file: None,
            algorithms: Vec::new(),
            issuer: None,
            audience: None,
            user_claim: "sub".into(),
            leeway_secs: 5,
            anonymous: false,
            require_exp: true,
            expiry_warning_secs: 60,
        }
    }
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            outbound_queue_bytes: 1024 * 1024,
            write_timeout_ms: 10_000,
            heartbeat_timeout_secs: 60,
            ping_interval_secs: 25,
            rate_per_sec: 100,
            rate_burst: 200,
            max_connections: 100_000,
            allowed_origins: Vec::new(),
            read_buffer_bytes: 2048,
            max_json_depth: crate::protocol::DEFAULT_MAX_JSON_DEPTH,
            client_join: vec!["*".into()],
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            manifest: PathBuf::from("handlers/switchyard.toml"),
            cache_dir: Some(PathBuf::from(".switchyard/cache")),
            watch: true,
            watch_debounce_ms: 50,
            epoch_tick_us: 250,
            max_instances: 1000,
            max_component_instances: 64,
            max_memory_mib: 256,
            fuel: false,
            keep_resident_kib: 1024,
            slow_lane: std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
            pagemap_scan: true,
            guest_log_max_bytes: 1024,
            guest_log_per_call: 10,
            guest_log_per_sec: 100,
            module_dirs: Vec::new(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} not found")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

impl Config {
    /// Loads defaults, then `file` (or `switchyard.toml` if present), then `SWITCHYARD_*`
    /// environment variables (`SWITCHYARD_LISTEN`, `SWITCHYARD_AUTH__SECRET`, ...: a double
    /// underscore separates sections).
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(f) if !f.exists() => return Err(ConfigError::Missing(f.to_path_buf())),
            Some(f) => fig = fig.merge(Toml::file_exact(f)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => fig = fig.merge(Toml::file_exact(DEFAULT_CONFIG_FILE)),
            None => {}
        }
        fig = fig.merge(Env::prefixed("SWITCHYARD_").split("__"));
        fig.extract().map_err(|e| ConfigError::Invalid(Box::new(e)))
    }

    /// True when no JWT key is configured and the public dev secret is in force.
    pub fn uses_dev_secret(&self) -> bool {
        self.auth.secret.is_none() && self.auth.public_key_file.is_none()
    }

    /// The API key in force (the dev key when none is configured).
    pub fn api_key(&self) -> &str {
        self.http.api_key.as_deref().unwrap_or(DEV_API_KEY)
    }
}
