//! Wiring: startup (migrations, keys, bootstrap admin), the shared state, and
//! the HTTP server.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;

use crate::accounts::auth::TokenKeys;
use crate::accounts::revocations::{self, InForce};
use crate::accounts::store;
use crate::core::config::Config;
use crate::core::ids::{now_ms, IdGenerator};
use crate::core::metrics::Metrics;
use crate::runtime::bus::{EventBus, InProcessBus, RabbitBus};
use crate::runtime::context::Ctx;
use crate::runtime::kv::{Kv, MemoryKv, RedisKv};
use crate::storage::{self, Db, Pool};

/// What the blocking part of startup found in the database.
struct Prepared {
    pool: Pool,
    demo: Option<super::seed::DemoAccounts>,
    jwt_secret: String,
    revocations: InForce,
}

/// `tandem audit`: every wallet against its journal, every rebate against its
/// journal, order and rule, and every reference the write path keeps without
/// a foreign key. Returns the mismatches.
pub fn audit(url: &crate::core::config::DatabaseUrl) -> anyhow::Result<Vec<String>> {
    let pool = storage::open_existing(url)?;
    let mut conn = pool.get().context("getting a database connection")?;
    let mut problems =
        crate::rebates::store::engine::audit(&mut conn).map_err(|e| anyhow::anyhow!("{e}"))?;
    problems.extend(storage::references::orphans(&mut conn).context("checking references")?);
    Ok(problems)
}

/// Opens the database, applies migrations and returns the pool.
pub fn migrate(config_url: &crate::core::config::DatabaseUrl) -> anyhow::Result<(Pool, usize)> {
    let pool = storage::open_pool(config_url, 2, crate::core::config::SqliteSync::Full)?;
    let mut conn = pool.get().context("getting a database connection")?;
    let applied = storage::run_migrations(&mut conn)?;
    Ok((pool, applied))
}

/// Connections waiting to be accepted, at most (as actix-web's `backlog`).
const LISTEN_BACKLOG: i32 = 4_096;

/// Binds `addr` (`host:port`) the way actix-web would, so that a taken port
/// or a bad address is found before anything else starts.
fn listen(addr: &str) -> anyhow::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(a),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        match socket
            .bind(&a.into())
            .and_then(|()| socket.listen(LISTEN_BACKLOG))
        {
            Ok(()) => return Ok(socket.into()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || anyhow::anyhow!("the address resolves to nothing"),
        Into::into,
    ))
}

/// The settings that can be wrong without looking at storage.
fn check_settings(config: &Config) -> anyhow::Result<()> {
    if config.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
        anyhow::bail!("TANDEM_JWT_SECRET must be at least 32 bytes");
    }
    if let Some(admin) = &config.bootstrap_admin {
        use crate::accounts::domain::{Password, Username};
        Username::try_from(admin.username.clone())
            .map_err(|e| anyhow::anyhow!("TANDEM_BOOTSTRAP_ADMIN: {e}"))?;
        Password::try_from(admin.password.clone())
            .map_err(|e| anyhow::anyhow!("TANDEM_BOOTSTRAP_ADMIN: {e}"))?;
    }
    if config.committers > crate::storage::group::MAX_PARTITIONS {
        anyhow::bail!(
            "TANDEM_COMMITTERS must be at most {}",
            crate::storage::group::MAX_PARTITIONS
        );
    }
    if config.db_pool_size < config.pool_size_min() {
        anyhow::bail!(
            "TANDEM_DB_POOL_SIZE must be at least {}: each of the {} committers and {} chat \
             writers keeps a connection, and {} are left for the rest",
            config.pool_size_min(),
            config.committer_threads(),
            config.chat_writer_threads(),
            crate::core::config::SHARED_CONNECTIONS_MIN
        );
    }
    Ok(())
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

    // A database without users is new: the demo, if wanted, goes only there.
    let fresh = crate::accounts::tx::count_users(&mut conn)? == 0;
    if let Some(admin) = &config.bootstrap_admin {
        super::seed::bootstrap_admin(&mut conn, ids, admin)?;
    }
    let demo = match fresh && config.demo_wanted() {
        true => Some(super::seed::demo_accounts(&mut conn, ids, config)?),
        false => None,
    };

    let now = now_ms();
    let revocations = revocations::load_in_force(&mut conn)?;
    let refilled = store::refill_display_names_lower(&mut conn)?;
    if refilled > 0 {
        tracing::info!(refilled, "display names lowercased for search");
    }
    let purged = store::purge_expired_sessions(&mut conn, now)?;
    if purged > 0 {
        tracing::info!(purged, "removed long-expired sessions");
    }
    Ok(Prepared {
        pool,
        demo,
        jwt_secret,
        revocations,
    })
}

/// The node's claim on its id and its part in the leadership: on PostgreSQL
/// through advisory locks (a live node with the same id: an error); the one
/// process on SQLite always leads.
async fn claim_node(config: &Config) -> anyhow::Result<crate::runtime::cluster::Leadership> {
    match &config.database_url {
        crate::core::config::DatabaseUrl::Postgres(url) => {
            let (url, ns, node) = (url.clone(), config.namespace.clone(), config.node_id);
            tokio::task::spawn_blocking(move || crate::runtime::cluster::join(&url, &ns, node))
                .await
                .context("startup task panicked")?
        }
        crate::core::config::DatabaseUrl::Sqlite(_) => {
            Ok(crate::runtime::cluster::Leadership::sole())
        }
    }
}

/// Runs the server until SIGTERM / SIGINT, then drains.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Every setting is checked, and the address bound, before storage is
    // touched: a taken port or a bad secret leaves no database behind.
    check_settings(&config)?;
    let listener = listen(&config.listen)
        .with_context(|| format!("cannot listen on {} (TANDEM_LISTEN)", config.listen))?;
    // Ours from now on, before anyone is told the address: a signal that
    // arrives during the start still stops the server the orderly way.
    let stop_signals = StopSignals::new().context("listening for SIGTERM/SIGINT")?;
    // A node of a cluster claims its id before it touches anything: a second
    // node with a live node's id stops here (see `runtime::cluster`).
    let leader = claim_node(&config).await?;
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
    revocations::mirror_all(kv.as_ref(), &prepared.revocations, config.token_ttl_secs).await?;

    let ids = Arc::new(ids);
    let ctx = Arc::new(Ctx {
        config: config.clone(),
        ids: ids.clone(),
        kv,
        bus,
        metrics: Metrics::new(),
        pool: prepared.pool.clone(),
        started: Instant::now(),
        leader: leader.clone(),
    });
    let registry = Arc::new(crate::realtime::registry::Registry::new(
        crate::realtime::registry::SocketLimits {
            idle_timeout_ms: i64::try_from(config.ws_idle_timeout_secs.max(1) * 1000)
                .unwrap_or(45_000),
            max_pending_frames: config.ws_outbound_max_frames.max(1),
            max_pending_bytes: config.ws_outbound_max_bytes.max(1024),
        },
    ));
    let db = Db::start(
        config.db_threads,
        prepared.pool.clone(),
        ids,
        config.db_queue_capacity,
        Duration::from_millis(config.request_timeout_ms),
    );
    if let Some(demo) = &prepared.demo {
        super::seed::demo_catalog(&db, demo)
            .await
            .context("creating the demo")?;
    }
    actix::Actor::start(crate::server::housekeeping::Housekeeper {
        db: db.clone(),
        leader: leader.clone(),
    });
    if let Some(url) = &config.amqp_url {
        // Frames, closes and cache notices reach the other nodes' sockets.
        let link = crate::runtime::nodelink::open(url, &config.namespace, config.node_id)
            .await
            .context("opening the node link on RabbitMQ")?;
        registry.link(link);
    }
    if matches!(
        config.database_url,
        crate::core::config::DatabaseUrl::Sqlite(_)
    ) {
        crate::storage::checkpoint::start(prepared.pool.clone());
    }
    let chat = start_chat(&config, &prepared, &ctx, &db, &registry);
    registry.set_presence_peers(Arc::new(crate::chat::handle::DirectPeersSource {
        db: db.clone(),
    }));
    // Small write transactions of orders, rebates, the notifier and the relay
    // share one group commit, partitioned by key (see `storage::group`).
    let commit_writers = config.committer_threads();
    let commit = crate::storage::group::GroupCommit::start(
        prepared.pool.clone(),
        commit_writers,
        ctx.metrics
            .queue("group_commit", crate::storage::group::MAX_QUEUED),
    );
    // Every consumer's queue exists and is bound before the relay's first
    // publish: a broker drops what reaches no queue (events are not
    // `mandatory`), and the relay deletes what the broker confirmed.
    for (name, patterns) in [
        (
            crate::social::notifier::CONSUMER,
            crate::social::notifier::PATTERNS,
        ),
        (
            crate::rebates::actor::CONSUMER,
            crate::rebates::actor::PATTERNS,
        ),
    ] {
        ctx.bus
            .prepare(name, patterns)
            .await
            .with_context(|| format!("preparing the bus queue of consumer {name}"))?;
    }
    let mut relay = crate::runtime::relay::Relay::new(db.clone(), commit.clone(), ctx.bus.clone());
    relay.skip_mark = config.fault_relay_skip_mark;
    relay.leader = leader.clone();
    let relay = actix::Actor::start(relay);
    let commerce = start_commerce(&config, &ctx, &db, &commit, &relay, &registry);
    let rebates = crate::rebates::actor::RebateRegistry::new(
        commit.clone(),
        ctx.clone(),
        registry.clone(),
        relay.clone(),
    );
    // The bus consumers, and the retrier of the events they had to park.
    let consumers = [
        crate::social::notifier::consumer(commit.clone(), ctx.clone(), registry.clone()),
        crate::rebates::actor::consumer(rebates.clone()),
    ];
    let mut retrier = crate::runtime::dead_letter::Retrier::new(
        db.clone(),
        commit.clone(),
        &consumers.iter().collect::<Vec<_>>(),
        ctx.metrics.dead_letters.clone(),
    );
    retrier.leader = leader.clone();
    actix::Actor::start(retrier);
    for consumer in consumers {
        actix::spawn(crate::runtime::dead_letter::consume(
            ctx.bus.clone(),
            commit.clone(),
            consumer,
        ));
    }
    actix::Actor::start(crate::rebates::actor::Settler::new(db.clone(), rebates));
    let trips = crate::trips::actor::TripRegistry::new(db.clone(), chat.clone());
    trips.set_relay(relay.clone());

    // One handle per domain: what its routes (and other domains) use.
    let accounts = web::Data::new(crate::accounts::Accounts {
        ctx: ctx.clone(),
        db: db.clone(),
        tokens: Arc::new(TokenKeys::new(
            prepared.jwt_secret.as_bytes(),
            config.token_ttl_secs,
        )),
        registry: registry.clone(),
        mirror: Arc::default(),
        pictures: Arc::new(crate::media::tx::PicturesForAccounts),
    });
    // Bounds how long a cache that lost keys but kept its marker is trusted.
    accounts
        .mirror
        .refresh_periodically(ctx.kv.clone(), db.clone(), config.token_ttl_secs);
    let social = web::Data::new(crate::social::Social {
        ctx: ctx.clone(),
        db: db.clone(),
        relay: relay.clone(),
        registry: registry.clone(),
        profile_hook: Arc::new(crate::trips::hooks::TripsOnProfiles),
    });
    social.follow_mutes();
    let rebates_handle = web::Data::new(crate::rebates::Rebates {
        ctx: ctx.clone(),
        db: db.clone(),
        relay: relay.clone(),
    });
    let trips = web::Data::new(crate::trips::Trips {
        ctx: ctx.clone(),
        db: db.clone(),
        trips,
        chat: chat.clone(),
    });
    actix::Actor::start(crate::animals::timers::ClaimTimer::new(commerce.clone()));
    let animals = web::Data::new(crate::animals::Animals {
        ctx: ctx.clone(),
        db: db.clone(),
        relay: relay.clone(),
        commerce: commerce.clone(),
    });
    let moderation = web::Data::new(crate::moderation::Moderation {
        ctx: ctx.clone(),
        db: db.clone(),
        relay: relay.clone(),
        registry: registry.clone(),
        chat: chat.clone(),
        accounts: accounts.get_ref().clone(),
    });
    let ops = web::Data::new(crate::server::ops::Ops {
        ctx: ctx.clone(),
        db: db.clone(),
        orders: commerce.orders.clone(),
        registry: registry.clone(),
        chat: chat.clone(),
    });
    let chat = web::Data::new(chat);
    let commerce = web::Data::new(commerce);
    let media = crate::media::Media::open(&config, ctx.clone(), db.clone(), leader.clone())?;
    let media = web::Data::new(media);

    let max_body = config.max_body_bytes;
    let body_timeout = web::Data::new(crate::core::body_deadline::BodyTimeout(
        Duration::from_millis(config.http_body_timeout_ms.max(1)),
    ));
    let workers = if config.workers == 0 {
        std::thread::available_parallelism().map_or(2, usize::from)
    } else {
        config.workers
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(accounts.clone())
            .app_data(chat.clone())
            .app_data(media.clone())
            .app_data(social.clone())
            .app_data(commerce.clone())
            .app_data(rebates_handle.clone())
            .app_data(trips.clone())
            .app_data(animals.clone())
            .app_data(moderation.clone())
            .app_data(ops.clone())
            .app_data(body_timeout.clone())
            .configure(|cfg| crate::server::http::extractor_config(cfg, max_body))
            .configure(crate::server::http::routes)
            .default_service(web::to(crate::server::http::not_found))
            .wrap(from_fn(crate::core::body_deadline::middleware))
            .wrap(from_fn(crate::server::http::nul_guard))
            .wrap(from_fn(crate::server::ratelimit::middleware))
            .wrap(crate::server::http::problem_error_handlers())
            .wrap(from_fn(crate::server::http::metrics_middleware))
            .wrap(from_fn(crate::server::http::cors_middleware))
    })
    .workers(workers)
    .max_connections(50_000)
    // Nagle off: a socket frame (a chat ack, a delivery) written while an
    // earlier one is not yet acknowledged otherwise waits for the client's
    // delayed ACK, up to 40 ms on Linux; measured as a flat 41 ms on every
    // ack to a group member who also receives the group's messages.
    .tcp_nodelay(true)
    .client_request_timeout(Duration::from_millis(config.http_head_timeout_ms))
    .shutdown_timeout(config.shutdown_timeout_secs)
    // Signals are ours (see `stop_on_signal`): sockets first, then the drain.
    .disable_signals()
    .listen(listener)
    .with_context(|| format!("listening on {}", config.listen))?;

    for addr in server.addrs() {
        // One line on stdout that scripts and tests wait for.
        println!("tandem listening on http://{addr}");
        tracing::info!(%addr, workers, "listening");
    }
    println!(
        "data in {:?}; stop with Ctrl-C or SIGTERM (sockets are closed, requests finish)",
        config.database_url
    );
    for line in prepared.demo.iter().flat_map(|d| &d.lines) {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    let server = server.run();
    actix_web::rt::spawn(stop_on_signal(
        stop_signals,
        server.handle(),
        registry.clone(),
    ));
    // On SIGTERM/SIGINT: sockets closed with 1001, no new connections, and
    // in-flight requests drained (for up to the shutdown timeout) before this
    // returns.
    server.await?;
    tracing::info!("server stopped; draining actors");
    Ok(())
}

/// SIGTERM and SIGINT, caught (their default would end the process at once).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Waits for SIGTERM or SIGINT, then stops the server: every WebSocket is
/// closed with 1001 at once (a socket is a request that never ends by
/// itself, so the drain would otherwise wait the whole shutdown timeout and
/// clients would see the connection drop, 1006), then actix-web stops
/// accepting and finishes the requests in flight.
async fn stop_on_signal(
    mut signals: StopSignals,
    server: actix_web::dev::ServerHandle,
    registry: Arc<crate::realtime::registry::Registry>,
) {
    let name = tokio::select! {
        _ = signals.term.recv() => "SIGTERM",
        _ = signals.int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        "stopping: closing sockets, draining requests"
    );
    registry.close_all();
    server.stop(true).await;
}

/// Chat: its caches and its writer shards (1 on SQLite, 2 on PostgreSQL
/// unless configured).
fn start_chat(
    config: &Config,
    prepared: &Prepared,
    ctx: &Arc<Ctx>,
    db: &Db,
    registry: &Arc<crate::realtime::registry::Registry>,
) -> crate::chat::Chat {
    let shards = config.chat_writer_threads();
    let caches = Arc::new(crate::chat::ChatCaches::default());
    let writers = crate::chat::writer::ChatWriters::start(
        shards,
        prepared.pool.clone(),
        ctx.clone(),
        registry.clone(),
        caches.clone(),
    );
    let chat = crate::chat::Chat {
        ctx: ctx.clone(),
        db: db.clone(),
        writers,
        caches,
        registry: registry.clone(),
    };
    chat.follow_notices();
    chat
}

/// Commerce: inventory, order actors and writer, timers, payments.
fn start_commerce(
    config: &Config,
    ctx: &Arc<Ctx>,
    db: &Db,
    commit: &crate::storage::group::GroupCommit,
    relay: &actix::Addr<crate::runtime::relay::Relay>,
    registry: &Arc<crate::realtime::registry::Registry>,
) -> crate::commerce::Commerce {
    let inventory = crate::commerce::inventory::InventoryRegistry::with_fault_load_delay(
        Duration::from_millis(config.fault_inventory_load_delay_ms),
    );
    let order_ctx = crate::commerce::order_actor::OrderCtx {
        db: db.clone(),
        commit: commit.clone(),
        ctx: ctx.clone(),
        registry: registry.clone(),
        // Claims and rebates follow each order transition in its transaction.
        hooks: crate::commerce::hooks::OrderHooks::new(vec![
            std::sync::Arc::new(crate::animals::hooks::ClaimHook),
            std::sync::Arc::new(crate::rebates::hooks::RebateHook::default()),
        ]),
    };
    let orders = crate::commerce::order_actor::OrderRegistry::new(
        order_ctx,
        inventory.clone(),
        relay.clone(),
    );
    let order_writer =
        crate::commerce::order_writer::OrderWriter::start(commit.clone(), ctx.clone());
    actix::Actor::start(crate::commerce::timers::Scheduler::new(
        db.clone(),
        orders.clone(),
        ctx.leader.clone(),
    ));
    let mockpay_secret = config
        .mockpay_secret
        .clone()
        .unwrap_or_else(|| crate::core::ids::random_token(32));
    let payments: Arc<dyn crate::commerce::payments::PaymentProvider> =
        Arc::new(crate::commerce::payments::Mockpay::new(&mockpay_secret));
    let commerce = crate::commerce::Commerce {
        ctx: ctx.clone(),
        db: db.clone(),
        relay: relay.clone(),
        inventory,
        orders,
        order_writer,
        payments,
    };
    if config.amqp_url.is_some() {
        commerce.follow_cluster(registry);
    }
    commerce
}
