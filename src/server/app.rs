//! Wiring: startup (migrations, keys, bootstrap admin), the shared state, and
//! the HTTP server.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::accounts::auth::{hash_password, mirror_ban, mirror_revoked_session, TokenKeys};
use crate::accounts::domain::{with_role, InviteCode, Role};
use crate::accounts::store::{self, UserRow};
use crate::core::config::{BootstrapAdmin, Config};
use crate::core::ids::{now_ms, IdGenerator};
use crate::core::metrics::Metrics;
use crate::runtime::bus::{EventBus, InProcessBus, RabbitBus};
use crate::runtime::kv::{Kv, MemoryKv, RedisKv};
use crate::storage::{self, Db, DbConn, Pool};

/// State every actor and handler shares. Immutable after start, or
/// internally synchronized.
pub struct Shared {
    pub config: Config,
    pub ids: IdGenerator,
    pub tokens: TokenKeys,
    pub kv: Arc<dyn Kv>,
    pub bus: Arc<dyn EventBus>,
    pub metrics: Metrics,
    pub pool: Pool,
    pub started: Instant,
    /// Online users' session actors.
    pub registry: Arc<crate::realtime::registry::Registry>,
    /// Members per conversation (rebuildable cache).
    pub members: dashmap::DashMap<i64, Arc<Vec<i64>>>,
    /// Bumped on every membership change (trips), before the cache entry is
    /// dropped: a load that began earlier must not put an old list back.
    pub members_epoch: std::sync::atomic::AtomicU64,
    /// Recent messages of active conversations (rebuildable cache).
    pub recent: crate::chat::recent::Recent,
    /// (low user id, high user id) -> direct conversation id (rebuildable cache).
    pub direct: dashmap::DashMap<(i64, i64), i64>,
}

/// What handlers get through `web::Data`.
pub struct AppState {
    pub shared: Arc<Shared>,
    pub db: Db,
    pub chat: crate::chat::writer::ChatWriters,
    pub relay: actix::Addr<crate::storage::outbox::Relay>,
    pub inventory: Arc<crate::commerce::inventory::InventoryRegistry>,
    pub orders: Arc<crate::commerce::order_actor::OrderRegistry>,
    pub order_writer: crate::commerce::order_writer::OrderWriter,
    pub payments: Arc<dyn crate::commerce::payments::PaymentProvider>,
    pub trips: Arc<crate::trips::actor::TripRegistry>,
}

/// What the blocking part of startup found in the database.
struct Prepared {
    pool: Pool,
    jwt_secret: String,
    revoked_sessions: Vec<(i64, i64)>,
    banned_users: Vec<i64>,
}

/// `tandem audit`: every wallet against its journal, every rebate against its
/// journal, order and rule. Returns the mismatches.
pub fn audit(url: &crate::core::config::DatabaseUrl) -> anyhow::Result<Vec<String>> {
    let (pool, _) = migrate(url)?;
    let mut conn = pool.get().context("getting a database connection")?;
    crate::rebates::engine::audit(&mut conn).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Opens the database, applies migrations and returns the pool.
pub fn migrate(config_url: &crate::core::config::DatabaseUrl) -> anyhow::Result<(Pool, usize)> {
    let pool = storage::open_pool(config_url, 2, crate::core::config::SqliteSync::Full)?;
    let mut conn = pool.get().context("getting a database connection")?;
    let applied = storage::run_migrations(&mut conn)?;
    Ok((pool, applied))
}

/// Blocking startup work, done before any request is served.
fn prepare(config: &Config, ids: &IdGenerator) -> anyhow::Result<Prepared> {
    let pool = storage::open_pool(
        &config.database_url,
        config.db_pool_size,
        config.sqlite_synchronous,
    )?;
    let mut conn = pool.get().context("getting a database connection")?;
    let applied = storage::run_migrations(&mut conn)?;
    tracing::info!(
        applied,
        backend = config.database_url.backend_name(),
        "database ready"
    );

    let jwt_secret = match &config.jwt_secret {
        Some(s) if s.len() >= 32 => s.clone(),
        Some(_) => anyhow::bail!("TANDEM_JWT_SECRET must be at least 32 bytes"),
        // Generated once and kept in the database: restarts and other nodes share it.
        None => store::get_or_insert_setting(
            &mut conn,
            "jwt_secret",
            &crate::core::ids::random_token(64),
        )?,
    };

    if let Some(admin) = &config.bootstrap_admin {
        bootstrap_admin(&mut conn, ids, admin)?;
    }

    let now = now_ms();
    let revoked_sessions = store::live_revoked_sessions(&mut conn, now)?
        .into_iter()
        .map(|s| (s.id, s.expires_at_ms))
        .collect();
    let banned_users = store::banned_user_ids(&mut conn)?;
    let purged = store::purge_expired_sessions(&mut conn, now)?;
    if purged > 0 {
        tracing::info!(purged, "removed long-expired sessions");
    }
    Ok(Prepared {
        pool,
        jwt_secret,
        revoked_sessions,
        banned_users,
    })
}

/// Makes sure the configured admin exists with that password and the admin role.
fn bootstrap_admin(
    conn: &mut DbConn,
    ids: &IdGenerator,
    admin: &BootstrapAdmin,
) -> anyhow::Result<()> {
    use crate::accounts::domain::{Password, Username};
    let username = Username::try_from(admin.username.clone())
        .map_err(|e| anyhow::anyhow!("TANDEM_BOOTSTRAP_ADMIN: {e}"))?;
    let password = Password::try_from(admin.password.clone())
        .map_err(|e| anyhow::anyhow!("TANDEM_BOOTSTRAP_ADMIN: {e}"))?;
    let hash = hash_password(password.as_str())?;
    match store::find_user_by_username(conn, &username.lower())? {
        Some(user) => {
            let roles = with_role(&user.roles, Role::Admin);
            store::set_password_and_roles(conn, user.id, &hash, &roles)?;
            tracing::info!(user_id = user.id, "bootstrap admin updated");
        }
        None => {
            let id = ids.next_id();
            store::insert_user(
                conn,
                &UserRow {
                    id,
                    username: username.as_str().to_owned(),
                    username_lower: username.lower(),
                    display_name: username.as_str().to_owned(),
                    bio: String::new(),
                    password_hash: hash,
                    roles: with_role(Role::User.as_str(), Role::Admin),
                    invite_code: InviteCode::generate(),
                    inviter_id: None,
                    banned: false,
                    created_at_ms: now_ms(),
                },
            )?;
            tracing::info!(user_id = id, "bootstrap admin created");
        }
    }
    Ok(())
}

/// Runs the server until SIGTERM / SIGINT, then drains.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let ids = IdGenerator::new(config.node_id);
    let prep_config = config.clone();
    let (prepared, ids) =
        tokio::task::spawn_blocking(move || prepare(&prep_config, &ids).map(|p| (p, ids)))
            .await
            .context("startup task panicked")??;

    let kv: Arc<dyn Kv> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisKv::connect(url, &config.namespace)
                .await
                .context("connecting to Redis")?,
        ),
        None => Arc::new(MemoryKv::new()),
    };
    let bus: Arc<dyn EventBus> = match &config.amqp_url {
        Some(url) => RabbitBus::connect(url, &config.namespace)
            .await
            .context("connecting to RabbitMQ")?,
        None => Arc::new(InProcessBus::new()),
    };
    if config.mockpay_secret.is_none() {
        tracing::warn!("TANDEM_MOCKPAY_SECRET is not set: mockpay notifications cannot be verified by anyone else");
    }
    if !config.rate_limits_enabled() {
        tracing::warn!(
            "rate limits are OFF (TANDEM_RATE_LIMITS=off): for tests and benchmarks only"
        );
    }

    // Revocations are database facts; the cache is rebuilt from them on every start.
    for (sid, exp) in &prepared.revoked_sessions {
        mirror_revoked_session(kv.as_ref(), *sid, *exp).await?;
    }
    for uid in &prepared.banned_users {
        mirror_ban(kv.as_ref(), *uid, true, config.token_ttl_secs).await?;
    }

    let shared = Arc::new(Shared {
        tokens: TokenKeys::new(prepared.jwt_secret.as_bytes(), config.token_ttl_secs),
        config: config.clone(),
        ids,
        kv,
        bus,
        metrics: Metrics::new(),
        pool: prepared.pool.clone(),
        started: Instant::now(),
        registry: Arc::new(crate::realtime::registry::Registry::new(
            crate::realtime::registry::SocketLimits {
                idle_timeout_ms: i64::try_from(config.ws_idle_timeout_secs.max(1) * 1000)
                    .unwrap_or(45_000),
                max_pending_frames: config.ws_outbound_max_frames.max(1),
                max_pending_bytes: config.ws_outbound_max_bytes.max(1024),
            },
        )),
        members: dashmap::DashMap::new(),
        members_epoch: std::sync::atomic::AtomicU64::new(0),
        direct: dashmap::DashMap::new(),
        recent: crate::chat::recent::Recent::new(),
    });
    let db = Db::start(
        config.db_threads,
        prepared.pool.clone(),
        shared.clone(),
        config.db_queue_capacity,
        Duration::from_millis(config.request_timeout_ms),
    );
    actix::Actor::start(crate::server::housekeeping::Housekeeper { db: db.clone() });
    if matches!(
        config.database_url,
        crate::core::config::DatabaseUrl::Sqlite(_)
    ) {
        crate::storage::checkpoint::start(prepared.pool.clone());
    }
    let chat_shards = match (config.chat_writers, &config.database_url) {
        (0, crate::core::config::DatabaseUrl::Sqlite(_)) => 1,
        (0, crate::core::config::DatabaseUrl::Postgres(_)) => 2,
        (n, _) => n,
    };
    let chat =
        crate::chat::writer::ChatWriters::start(chat_shards, prepared.pool.clone(), shared.clone());
    // Small write transactions of orders, rebates, the notifier and the relay share one group commit.
    // One committer on both backends. Several on PostgreSQL were measured
    // (BENCHMARKS.md): batches deadlock on hot wallet rows; sharding the
    // committers by wallet owner is the way to more than one.
    let commit_writers = 1;
    let commit = crate::storage::group::GroupCommit::start(
        prepared.pool.clone(),
        commit_writers,
        shared
            .metrics
            .queue("group_commit", crate::storage::group::MAX_QUEUED),
    );
    let mut relay =
        crate::storage::outbox::Relay::new(db.clone(), commit.clone(), shared.bus.clone());
    relay.skip_mark = config.fault_relay_skip_mark;
    let relay = actix::Actor::start(relay);
    let inventory = crate::commerce::inventory::InventoryRegistry::with_fault_load_delay(
        std::time::Duration::from_millis(config.fault_inventory_load_delay_ms),
    );
    let order_ctx = crate::commerce::order_actor::OrderCtx {
        db: db.clone(),
        commit: commit.clone(),
        shared: shared.clone(),
    };
    let orders = crate::commerce::order_actor::OrderRegistry::new(
        order_ctx,
        inventory.clone(),
        relay.clone(),
    );
    let order_writer =
        crate::commerce::order_writer::OrderWriter::start(commit.clone(), shared.clone());
    actix::Actor::start(crate::commerce::timers::Scheduler::new(
        db.clone(),
        orders.clone(),
        inventory.clone(),
    ));
    let rebates =
        crate::rebates::actor::RebateRegistry::new(commit.clone(), shared.clone(), relay.clone());
    // The bus consumers, and the retrier of the events they had to park.
    let consumers = [
        crate::social::notifier::consumer(commit.clone(), shared.clone()),
        crate::rebates::actor::consumer(rebates.clone()),
    ];
    actix::Actor::start(crate::runtime::dead_letter::Retrier::new(
        db.clone(),
        commit.clone(),
        &consumers.iter().collect::<Vec<_>>(),
        shared.metrics.dead_letters.clone(),
    ));
    for consumer in consumers {
        actix::spawn(crate::runtime::dead_letter::consume(
            shared.bus.clone(),
            commit.clone(),
            consumer,
        ));
    }
    actix::Actor::start(crate::rebates::actor::Settler::new(db.clone(), rebates));
    let mockpay_secret = config
        .mockpay_secret
        .clone()
        .unwrap_or_else(|| crate::core::ids::random_token(32));
    let payments: Arc<dyn crate::commerce::payments::PaymentProvider> =
        Arc::new(crate::commerce::payments::Mockpay::new(&mockpay_secret));
    let trips = crate::trips::actor::TripRegistry::new(db.clone(), shared.clone(), chat.clone());
    trips.set_relay(relay.clone());
    let state = web::Data::new(AppState {
        shared,
        db,
        chat,
        relay,
        inventory,
        orders,
        order_writer,
        payments,
        trips,
    });

    let max_body = config.max_body_bytes;
    let workers = if config.workers == 0 {
        std::thread::available_parallelism().map_or(2, usize::from)
    } else {
        config.workers
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(|cfg| crate::server::http::extractor_config(cfg, max_body))
            .configure(crate::server::http::routes)
            .default_service(web::to(crate::server::http::not_found))
            .wrap(from_fn(crate::server::ratelimit::middleware))
            .wrap(crate::server::http::problem_error_handlers())
            .wrap(from_fn(crate::server::http::metrics_middleware))
    })
    .workers(workers)
    .backlog(4096)
    .max_connections(50_000)
    .shutdown_timeout(config.shutdown_timeout_secs)
    .bind(&config.listen)
    .with_context(|| format!("binding {}", config.listen))?;

    for addr in server.addrs() {
        // One line on stdout that scripts and tests wait for.
        println!("tandem listening on http://{addr}");
        tracing::info!(%addr, workers, "listening");
    }
    let _ = std::io::stdout().flush();
    // actix-web stops accepting on SIGTERM/SIGINT and drains in-flight requests
    // for up to the shutdown timeout before this returns.
    server.run().await?;
    tracing::info!("server stopped; draining actors");
    Ok(())
}
