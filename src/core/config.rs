//! Configuration: every knob comes from the environment (or the matching
//! command-line flag) and is documented with its default by `tandem serve --help`.

use std::fmt;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Tandem realtime social-and-commerce server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP and WebSocket (the default when no subcommand is given).
    Serve(Box<Config>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Check every wallet against its journal, every rebate against its
    /// order and rule, and every reference the write path keeps without a
    /// foreign key; print each mismatch and exit 1 if there is any.
    Audit(DatabaseArgs),
}

/// Just the database, for commands that need nothing else.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database: `sqlite:PATH` or `postgres://user@host/db`. Any other scheme is refused.
    #[arg(
        long,
        env = "TANDEM_DATABASE_URL",
        default_value = "sqlite:data/tandem.db"
    )]
    pub database_url: DatabaseUrl,
}

/// Everything `tandem serve` reads.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port and prints it).
    #[arg(long, env = "TANDEM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Database: `sqlite:PATH` or `postgres://user@host/db`. Any other scheme is refused.
    #[arg(
        long,
        env = "TANDEM_DATABASE_URL",
        default_value = "sqlite:data/tandem.db"
    )]
    pub database_url: DatabaseUrl,

    /// Redis for the shared cache, rate limits and token revocations (`redis://...`).
    /// Unset: an in-process cache.
    #[arg(long, env = "TANDEM_REDIS_URL")]
    pub redis_url: Option<String>,

    /// RabbitMQ for domain events (`amqp://...`). Unset: an in-process bus.
    #[arg(long, env = "TANDEM_AMQP_URL")]
    pub amqp_url: Option<String>,

    /// Prefix of every Redis key and RabbitMQ exchange/queue name, so several
    /// deployments (or test runs) can share one Redis and one RabbitMQ.
    #[arg(long, env = "TANDEM_NAMESPACE", default_value = "tandem")]
    pub namespace: String,

    /// `username:password` of an admin that exists after start (created or promoted).
    #[arg(long, env = "TANDEM_BOOTSTRAP_ADMIN", hide_env_values = true)]
    pub bootstrap_admin: Option<BootstrapAdmin>,

    /// HMAC-SHA256 key for mockpay notifications. Unset: a random key per start (logged as a warning).
    #[arg(long, env = "TANDEM_MOCKPAY_SECRET", hide_env_values = true)]
    pub mockpay_secret: Option<String>,

    /// Seconds an order may stay unpaid before it is cancelled and its stock returned.
    #[arg(long, env = "TANDEM_PAY_TIMEOUT_SECS", default_value_t = 900)]
    pub pay_timeout_secs: u64,

    /// Seconds after shipping when an order completes on its own.
    #[arg(long, env = "TANDEM_AUTO_COMPLETE_SECS", default_value_t = 604_800)]
    pub auto_complete_secs: u64,

    /// Seconds in one day of an animal claim period (`claim_days`). Shorten only to test.
    #[arg(long, env = "TANDEM_CLAIM_DAY_SECS", default_value_t = 86_400)]
    pub claim_day_secs: u64,

    /// `on` or `off`: rate limits on every route and the WebSocket.
    #[arg(long, env = "TANDEM_RATE_LIMITS", default_value = "on")]
    pub rate_limits: Switch,

    /// Log filter in `tracing` syntax, e.g. `info` or `tandem=debug,actix_web=info`.
    #[arg(long, env = "TANDEM_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `text` or `json`.
    #[arg(long, env = "TANDEM_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// Secret for signing access tokens (at least 32 bytes). Unset: generated once and
    /// stored in the database, so every node and every restart shares it.
    #[arg(long, env = "TANDEM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of an access token in seconds.
    #[arg(long, env = "TANDEM_TOKEN_TTL_SECS", default_value_t = 86_400)]
    pub token_ttl_secs: u64,

    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "TANDEM_WORKERS", default_value_t = 0)]
    pub workers: usize,

    /// Threads of the database executor (blocking diesel work runs only there).
    #[arg(long, env = "TANDEM_DB_THREADS", default_value_t = 4)]
    pub db_threads: usize,

    /// Maximum connections in the database pool: at least committers + chat
    /// writers + 2 (each writer thread holds one from its first batch on).
    #[arg(long, env = "TANDEM_DB_POOL_SIZE", default_value_t = 20)]
    pub db_pool_size: u32,

    /// Requests that may wait for the database executor before new ones get 503.
    #[arg(long, env = "TANDEM_DB_QUEUE_CAPACITY", default_value_t = 2048)]
    pub db_queue_capacity: usize,

    /// How long a database request may wait to start before it gets 503 (and
    /// is never run); one that started is awaited to its outcome.
    #[arg(long, env = "TANDEM_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,

    /// Largest accepted request body in bytes (larger: 413).
    #[arg(long, env = "TANDEM_MAX_BODY_BYTES", default_value_t = 65_536)]
    pub max_body_bytes: usize,

    /// How long a new connection may take to send its first request's head
    /// before it is answered 408 and closed (slow clients hold no connection).
    #[arg(long, env = "TANDEM_HTTP_HEAD_TIMEOUT_MS", default_value_t = 5_000)]
    pub http_head_timeout_ms: u64,

    /// How long a request body may take to arrive once its head is in; a
    /// later body is answered 408 and its connection closed (slow senders
    /// hold no handler). WebSockets are not bodies. 60 s lets a 10 MiB picture
    /// through at 1.4 Mbit/s.
    #[arg(long, env = "TANDEM_HTTP_BODY_TIMEOUT_MS", default_value_t = 60_000)]
    pub http_body_timeout_ms: u64,

    /// Where pictures' bytes live: `disk` (files under `TANDEM_MEDIA_DIR`) or
    /// `database` (rows beside everything else, for several nodes that share
    /// PostgreSQL). Unset: `disk` on SQLite, `database` on PostgreSQL.
    #[arg(long, env = "TANDEM_MEDIA_STORE", value_parser = ["disk", "database"])]
    pub media_store: Option<String>,

    /// The directory of the `disk` picture store. Unset: `media` beside the
    /// SQLite file, or `./tandem-media`.
    #[arg(long, env = "TANDEM_MEDIA_DIR")]
    pub media_dir: Option<std::path::PathBuf>,

    /// A picture never used (as an avatar, in a post or a chat message) is
    /// deleted this many seconds after its upload.
    #[arg(long, env = "TANDEM_MEDIA_ORPHAN_TTL_SECS", default_value_t = 86_400)]
    pub media_orphan_ttl_secs: u64,

    /// How often unused pictures are looked for, in seconds.
    #[arg(long, env = "TANDEM_MEDIA_SWEEP_SECS", default_value_t = 600)]
    pub media_sweep_secs: u64,

    /// Seconds to drain in-flight requests and actors on SIGTERM.
    #[arg(long, env = "TANDEM_SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,

    /// Node number 0-15, part of every generated id; give each node its own.
    #[arg(long, env = "TANDEM_NODE_ID", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..16))]
    pub node_id: u8,

    /// The largest share of an order a rebate rule set may pay out, in basis
    /// points (its highest rule rate plus every referral level); a set that
    /// could pay more is refused.
    #[arg(long, env = "TANDEM_REBATE_MAX_PAYOUT_BPS", default_value_t = 10_000,
        value_parser = clap::value_parser!(i64).range(0..=10_000))]
    pub rebate_max_payout_bps: i64,

    /// Origins allowed to open the WebSocket (comma-separated, such as
    /// `https://app.example,http://127.0.0.1:8080`). Empty: any origin.
    #[arg(
        long,
        env = "TANDEM_WS_ALLOWED_ORIGINS",
        default_value = "",
        value_parser = AllowedOrigins::parse
    )]
    pub ws_allowed_origins: AllowedOrigins,

    /// Origins (comma-separated `scheme://host[:port]`) whose pages may call
    /// the HTTP API from a browser (CORS). Empty: none besides the server's own.
    #[arg(
        long,
        env = "TANDEM_CORS_ORIGINS",
        default_value = "",
        value_parser = AllowedOrigins::parse
    )]
    pub cors_origins: AllowedOrigins,

    /// Load balancers and proxies (comma-separated addresses or networks,
    /// such as `10.0.0.0/8,::1`) whose `X-Forwarded-For` names the client
    /// for per-address rate limits. Empty: every request's own address counts.
    #[arg(
        long,
        env = "TANDEM_TRUSTED_PROXIES",
        default_value = "",
        value_parser = crate::core::client_addr::TrustedProxies::parse
    )]
    pub trusted_proxies: crate::core::client_addr::TrustedProxies,

    /// A WebSocket silent this long is closed (the server pings at a third of it).
    #[arg(long, env = "TANDEM_WS_IDLE_TIMEOUT_SECS", default_value_t = 45)]
    pub ws_idle_timeout_secs: u64,

    /// Frames queued for one socket before its client counts as too slow and is disconnected.
    #[arg(long, env = "TANDEM_WS_OUTBOUND_MAX_FRAMES", default_value_t = 8_192)]
    pub ws_outbound_max_frames: usize,

    /// Bytes queued for one socket before its client counts as too slow and is disconnected.
    #[arg(
        long,
        env = "TANDEM_WS_OUTBOUND_MAX_BYTES",
        default_value_t = 8_388_608
    )]
    pub ws_outbound_max_bytes: usize,

    /// Chat writer shards (each one thread committing batches). 0: 1 on SQLite, 2 on PostgreSQL.
    #[arg(long, env = "TANDEM_CHAT_WRITERS", default_value_t = 0)]
    pub chat_writers: usize,

    /// Group-commit partitions (each one committer thread; orders, rebates
    /// and events are routed to them by key). 0: 1 on SQLite (one writer
    /// anyway), on PostgreSQL one per core, from 2 to 8. At most 32.
    #[arg(long, env = "TANDEM_COMMITTERS", default_value_t = 0)]
    pub committers: usize,

    /// Fault injection for tests: the outbox relay publishes but never deletes
    /// the published rows, as if it crashed between the two, so every event is
    /// redelivered.
    #[arg(
        long,
        env = "TANDEM_FAULT_RELAY_SKIP_MARK",
        default_value_t = false,
        hide = true
    )]
    pub fault_relay_skip_mark: bool,

    /// Fault injection for tests: an inventory actor pauses this long between
    /// reading its product and handling its first message.
    #[arg(
        long,
        env = "TANDEM_FAULT_INVENTORY_LOAD_DELAY_MS",
        default_value_t = 0,
        hide = true
    )]
    pub fault_inventory_load_delay_ms: u64,

    /// SQLite `synchronous` pragma: `full` survives power loss, `normal` only process crashes.
    #[arg(long, env = "TANDEM_SQLITE_SYNCHRONOUS", default_value = "full")]
    pub sqlite_synchronous: SqliteSync,

    /// A demo shop, products, flowers, animals and rebate rules, with an admin and
    /// the shop's owner whose passwords are printed once, on a database with no
    /// users yet. `auto`: only with the default database (`cargo run` as is).
    #[arg(long, env = "TANDEM_DEMO", default_value = "auto")]
    pub demo: DemoMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoMode {
    Auto,
    On,
    Off,
}

/// The database `tandem` uses when none is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:data/tandem.db";

/// Pool connections left for everything but the writer threads (the request
/// executors, the relay, the consumers, the timers).
pub const SHARED_CONNECTIONS_MIN: u32 = 2;

impl Config {
    /// Group-commit committer threads: as set, else 1 on SQLite (one writer
    /// anyway) and on PostgreSQL one per core this process may use, from 2
    /// to 8. Each committer's batch is a chain of round trips, so a second
    /// one overlaps them; past the cores they only take turns (2 cores:
    /// `orders` 2,500 /s with 1, about 2,950 with 2, 2,450 with 4, 1,500
    /// with 8).
    pub fn committer_threads(&self) -> usize {
        match (self.committers, &self.database_url) {
            (0, DatabaseUrl::Sqlite(_)) => 1,
            (0, DatabaseUrl::Postgres(_)) => std::thread::available_parallelism()
                .map_or(2, std::num::NonZeroUsize::get)
                .clamp(2, 8),
            (n, _) => n,
        }
    }

    /// Chat writer threads: as set, else 1 on SQLite and 2 on PostgreSQL.
    pub fn chat_writer_threads(&self) -> usize {
        match (self.chat_writers, &self.database_url) {
            (0, DatabaseUrl::Sqlite(_)) => 1,
            (0, DatabaseUrl::Postgres(_)) => 2,
            (n, _) => n,
        }
    }

    /// The pool's smallest size: each writer thread keeps a connection
    /// while busy (`storage::held`), and the rest need some.
    pub fn pool_size_min(&self) -> u32 {
        let writers = self.committer_threads() + self.chat_writer_threads();
        u32::try_from(writers)
            .unwrap_or(u32::MAX)
            .saturating_add(SHARED_CONNECTIONS_MIN)
    }

    /// Whether a new, empty database gets the demo catalog.
    pub fn demo_wanted(&self) -> bool {
        match self.demo {
            DemoMode::On => true,
            DemoMode::Off => false,
            DemoMode::Auto => DEFAULT_DATABASE_URL
                .parse::<DatabaseUrl>()
                .is_ok_and(|d| d == self.database_url),
        }
    }
}

impl Config {
    /// The configuration `tandem` with no subcommand uses: the environment only.
    pub fn from_env() -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        Wrapper::try_parse_from(["tandem"]).map(|w| w.config)
    }

    pub fn rate_limits_enabled(&self) -> bool {
        self.rate_limits == Switch::On
    }
}

/// The Origins allowed to open the WebSocket; none listed allows any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// A comma-separated list of `scheme://host[:port]`; blank entries are
    /// ignored (so the empty default is the empty list, not one empty origin).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let origin = entry.trim_end_matches('/').to_ascii_lowercase();
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| {
                    format!("{entry:?} is not an origin: it must start with http:// or https://")
                })?;
            if rest.is_empty() || rest.contains('/') {
                return Err(format!(
                    "{entry:?} is not an origin: give scheme://host[:port] without a path"
                ));
            }
            origins.push(origin);
        }
        Ok(AllowedOrigins(origins))
    }

    /// Whether `origin` is one of the listed origins (an empty list lists none).
    pub fn lists(&self, origin: &str) -> bool {
        self.0.iter().any(|a| a.eq_ignore_ascii_case(origin))
    }

    /// Whether a handshake with this `Origin` header may open. No header (a
    /// client that is not a browser) is not an origin to refuse.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            _ if self.0.is_empty() => true,
            None => true,
            Some(o) => self.0.iter().any(|a| a.eq_ignore_ascii_case(o)),
        }
    }
}

/// A database URL whose scheme has been checked.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Path of the SQLite file (created with its directory if missing).
    Sqlite(String),
    /// A libpq connection URL.
    Postgres(String),
}

impl DatabaseUrl {
    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Postgres(_) => "postgres",
        }
    }
}

// Never print the password of a PostgreSQL URL.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite:{path}"),
            DatabaseUrl::Postgres(url) => {
                let shown = match (url.find("://"), url.rfind('@')) {
                    (Some(s), Some(at)) if at > s => format!("postgres://***@{}", &url[at + 1..]),
                    _ => url.clone(),
                };
                f.write_str(&shown)
            }
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            return non_empty_path(path);
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            return non_empty_path(path);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(s.to_owned()));
        }
        let scheme = s.split(':').next().unwrap_or_default();
        Err(format!(
            "unsupported database URL scheme `{scheme}`: use `sqlite:PATH` or `postgres://...` \
             (refusing to guess, so no new database is created by accident)"
        ))
    }
}

fn non_empty_path(path: &str) -> Result<DatabaseUrl, String> {
    if path.is_empty() {
        Err("`sqlite:` needs a file path, e.g. `sqlite:data/tandem.db`".to_owned())
    } else {
        Ok(DatabaseUrl::Sqlite(path.to_owned()))
    }
}

/// `username:password` for the bootstrap admin.
#[derive(Clone)]
pub struct BootstrapAdmin {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for BootstrapAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:***", self.username)
    }
}

impl FromStr for BootstrapAdmin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok(BootstrapAdmin {
                username: u.to_owned(),
                password: p.to_owned(),
            }),
            _ => Err("expected `username:password`".to_owned()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSync {
    Full,
    Normal,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::AllowedOrigins;

    /// Issue 16, item 1: the empty default allows any origin (it used to be
    /// a list of one empty origin, which refused every browser).
    #[test]
    fn allowed_origins_parse_and_match() {
        let any = AllowedOrigins::parse("").unwrap();
        assert!(any.allows(Some("http://127.0.0.1:8080")));
        assert!(any.allows(None));
        let some = AllowedOrigins::parse(" https://App.example/ , ,http://127.0.0.1:8080").unwrap();
        assert!(some.allows(Some("https://app.example")));
        assert!(some.allows(Some("http://127.0.0.1:8080")));
        assert!(!some.allows(Some("https://evil.example")));
        assert!(!some.allows(Some("")));
        assert!(some.allows(None), "not a browser: no origin to refuse");
        assert!(AllowedOrigins::parse("app.example").is_err());
        assert!(AllowedOrigins::parse("https://app.example/path").is_err());
        assert!(AllowedOrigins::parse("https://").is_err());
    }
    use super::*;

    #[test]
    fn database_url_schemes() {
        assert_eq!(
            "sqlite:data/x.db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite("data/x.db".into()))
        );
        assert_eq!(
            "sqlite:///tmp/x.db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Sqlite("/tmp/x.db".into()))
        );
        assert!(matches!(
            "postgres://u@h/db".parse::<DatabaseUrl>(),
            Ok(DatabaseUrl::Postgres(_))
        ));
        let err = "mysql://h/db".parse::<DatabaseUrl>().unwrap_err();
        assert!(
            err.contains("unsupported database URL scheme `mysql`"),
            "{err}"
        );
        assert!("data/tandem.db".parse::<DatabaseUrl>().is_err());
        assert!("sqlite:".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn postgres_password_is_not_printed() {
        let url: DatabaseUrl = "postgres://me:secret@localhost/db".parse().unwrap();
        assert_eq!(format!("{url:?}"), "postgres://***@localhost/db");
    }
}
