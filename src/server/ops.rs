//! `/health`, `/ready`, `/metrics`, `/api-docs/openapi.json`.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use std::fmt::Write as _;
use utoipa::OpenApi;

use crate::chat::Chat;
use crate::commerce::order_actor::OrderRegistry;
use crate::core::metrics::{gauge, open_fds, resident_memory_bytes};
use crate::realtime::registry::Registry;
use crate::runtime::context::Ctx;
use crate::runtime::dead_letter::DeadLetterView;
use crate::storage::Db;

/// What the operations routes and middleware read: a view across the
/// domains, built by the composition root.
#[derive(Clone)]
pub struct Ops {
    pub ctx: std::sync::Arc<Ctx>,
    pub db: Db,
    pub orders: std::sync::Arc<OrderRegistry>,
    pub registry: std::sync::Arc<Registry>,
    pub chat: Chat,
}
use crate::storage::Ping;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
}

/// Process alive.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    status: &'static str,
    database: &'static str,
    cache: &'static str,
    bus: &'static str,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "unavailable"
    }
}

/// 200 when the database (and Redis / RabbitMQ where configured) answer, else 503.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(state: web::Data<Ops>) -> HttpResponse {
    let timeout = std::time::Duration::from_secs(3);
    let db = tokio::time::timeout(timeout, state.db.call(Ping)).await;
    let kv = tokio::time::timeout(timeout, state.ctx.kv.ping()).await;
    let bus = tokio::time::timeout(timeout, state.ctx.bus.ping()).await;
    let (db, kv, bus) = (
        matches!(db, Ok(Ok(()))),
        matches!(kv, Ok(Ok(()))),
        matches!(bus, Ok(Ok(()))),
    );
    let body = Readiness {
        status: verdict(db && kv && bus),
        database: verdict(db),
        cache: verdict(kv),
        bus: verdict(bus),
    };
    if db && kv && bus {
        HttpResponse::Ok().json(body)
    } else {
        let mut res = HttpResponse::ServiceUnavailable().json(body);
        res.extensions_mut().insert(super::http::DocumentedBody);
        res
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<Ops>) -> HttpResponse {
    let mut out = String::with_capacity(16 * 1024);
    state.ctx.metrics.render_http(&mut out);
    let db = &state.db;
    // Every bounded queue: the executor's and the batchers'. One family each.
    let recent = &state.chat.caches.recent;
    out.push_str("# HELP tandem_chat_sync_total Syncs served from the in-memory ring or the database.\n# TYPE tandem_chat_sync_total counter\n");
    let _ = writeln!(
        out,
        "tandem_chat_sync_total{{source=\"memory\"}} {}",
        recent.hits.load(std::sync::atomic::Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "tandem_chat_sync_total{{source=\"database\"}} {}",
        recent.misses.load(std::sync::atomic::Ordering::Relaxed)
    );
    let mut queues = vec![(
        "db_executor".to_owned(),
        db.queue_depth(),
        db.queue_capacity(),
    )];
    queues.extend(state.ctx.metrics.queues());
    out.push_str("# HELP tandem_mailbox_depth Messages waiting for or being served by an actor.\n# TYPE tandem_mailbox_depth gauge\n");
    for (name, depth, _) in &queues {
        let _ = writeln!(out, "tandem_mailbox_depth{{actor=\"{name}\"}} {depth}");
    }
    out.push_str("# HELP tandem_mailbox_capacity Most messages a queue accepts before shedding load.\n# TYPE tandem_mailbox_capacity gauge\n");
    for (name, _, cap) in &queues {
        let _ = writeln!(out, "tandem_mailbox_capacity{{actor=\"{name}\"}} {cap}");
    }
    gauge(
        &mut out,
        "tandem_dead_letters",
        "Events a consumer failed to apply repeatedly, parked and retried with backoff.",
        "",
        state
            .ctx
            .metrics
            .dead_letters
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    );
    out.push_str("# HELP tandem_db_conflicts_total Write conflicts the database reported (each retried or refused), by kind.\n# TYPE tandem_db_conflicts_total counter\n");
    for kind in crate::storage::conflicts::Conflict::ALL {
        let _ = writeln!(
            out,
            "tandem_db_conflicts_total{{kind=\"{}\"}} {}",
            kind.as_str(),
            crate::storage::conflicts::count(kind)
        );
    }
    let pool = state.ctx.pool.state();
    gauge(
        &mut out,
        "tandem_db_pool_connections",
        "Open database connections.",
        "",
        f64::from(pool.connections),
    );
    gauge(
        &mut out,
        "tandem_db_pool_idle_connections",
        "Idle database connections.",
        "",
        f64::from(pool.idle_connections),
    );
    gauge(
        &mut out,
        "tandem_db_pool_max_connections",
        "Pool size limit.",
        "",
        f64::from(state.ctx.pool.max_size()),
    );
    if let Some(rss) = resident_memory_bytes() {
        gauge(
            &mut out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "",
            rss as f64,
        );
    }
    if let Some(fds) = open_fds() {
        gauge(
            &mut out,
            "process_open_fds",
            "Open file descriptors.",
            "",
            fds as f64,
        );
    }
    gauge(
        &mut out,
        "tandem_live_order_actors",
        "Order actors in memory.",
        "",
        state.orders.live() as f64,
    );
    gauge(
        &mut out,
        "tandem_online_users",
        "Users with at least one open WebSocket.",
        "",
        state.registry.online_users() as f64,
    );
    gauge(
        &mut out,
        "tandem_cluster_leader",
        "Whether this node runs the singular jobs (timers, relay, retrier, housekeeping): 1 or 0.",
        "",
        f64::from(u8::from(state.ctx.leader.is_leader())),
    );
    gauge(
        &mut out,
        "tandem_node_link_dropped_messages",
        "Messages for other nodes dropped because the node link could not keep up.",
        "",
        state.registry.remote_dropped() as f64,
    );
    if let Some((up, reconnects)) = state.registry.link_status() {
        gauge(
            &mut out,
            "tandem_node_link_up",
            "Whether the link to the other nodes (RabbitMQ) is connected: 1 or 0.",
            "",
            f64::from(u8::from(up)),
        );
        out.push_str("# HELP tandem_node_link_reconnects_total Times the node link broke and was opened again.\n# TYPE tandem_node_link_reconnects_total counter\n");
        let _ = writeln!(out, "tandem_node_link_reconnects_total {reconnects}");
    }
    out.push_str("# HELP tandem_ws_late_frames_total Live chat frames not sent because a later seq of their conversation had been sent first (the clients sync them).\n# TYPE tandem_ws_late_frames_total counter\n");
    let _ = writeln!(
        out,
        "tandem_ws_late_frames_total {}",
        state.registry.late_frames()
    );
    gauge(
        &mut out,
        "tandem_uptime_seconds",
        "Seconds since the server started.",
        "",
        state.ctx.started.elapsed().as_secs_f64(),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}

/// Admin: events a consumer could not apply and parked (see
/// `infra::dead_letter`), with their last error; retried with backoff.
pub struct ListDeadLetters {
    pub admin: crate::core::ids::UserId,
    pub limit: i64,
    /// The last (event id, consumer) of the previous page.
    pub after: Option<(i64, String)>,
}

impl actix::Message for ListDeadLetters {
    type Result = Result<crate::core::paging::Page<DeadLetterView>, crate::core::error::ApiError>;
}

impl actix::Handler<ListDeadLetters> for crate::storage::DbExecutor {
    type Result = Result<crate::core::paging::Page<DeadLetterView>, crate::core::error::ApiError>;
    fn handle(&mut self, msg: ListDeadLetters, _: &mut Self::Context) -> Self::Result {
        let mut conn = self.conn()?;
        crate::accounts::tx::require_role(
            &mut conn,
            msg.admin,
            crate::accounts::domain::Role::Admin,
        )?;
        let after = msg.after.as_ref().map(|(e, c)| (*e, c.as_str()));
        let mut rows = crate::storage::dead_letter::list(&mut conn, msg.limit + 1, after)?;
        let more = rows.len() as i64 > msg.limit;
        rows.truncate(usize::try_from(msg.limit).unwrap_or(0));
        let next_cursor = rows
            .last()
            .filter(|_| more)
            .map(|r| crate::storage::dead_letter::encode_cursor(r.event_id, &r.consumer));
        Ok(crate::core::paging::Page {
            items: rows.into_iter().map(DeadLetterView::from).collect(),
            next_cursor,
        })
    }
}

#[derive(serde::Deserialize)]
pub struct DeadLetterQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// Parked events (admin): events a consumer failed to apply several times,
/// with the last error, the attempts so far and when the next retry is due.
#[utoipa::path(get, path = "/api/v1/admin/dead-letters", tag = "admin", security(("bearer" = [])),
    params(("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = crate::core::paging::Page<crate::runtime::dead_letter::DeadLetterView>, description = "A page of the list; `next_cursor` (null on the last page) fetches the next"), (status = 403, body = crate::core::error::Problem)))]
pub async fn dead_letters(
    state: web::Data<Ops>,
    user: crate::accounts::auth::AuthUser,
    q: web::Query<DeadLetterQuery>,
) -> crate::core::error::ApiResult<HttpResponse> {
    let page = state
        .db
        .call(ListDeadLetters {
            admin: user.user_id,
            limit: crate::core::paging::parse_limit(q.limit.as_deref())?,
            after: q
                .cursor
                .as_deref()
                .map(crate::storage::dead_letter::decode_cursor)
                .transpose()?,
        })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tandem API", version = "1", description = "Realtime social-and-commerce engine. See CONTRACT.md."),
    paths(
        health, ready, metrics,
        crate::chat::http::ws_route,
        dead_letters,
    ),
    components(schemas(crate::core::error::Problem, DeadLetterView)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// A readable API reference page (`GET /api-docs`): one self-contained HTML
/// file in the binary that renders `/api-docs/openapi.json` in the browser,
/// with nothing loaded from another host.
pub async fn api_reference() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(include_str!("api_docs.html"))
}

/// The OpenAPI 3 document of every HTTP route.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}

/// The whole document as derived: the server's own paths and each domain's
/// part (served after `server::openapi` polished it).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for part in [
        crate::accounts::http::Api::openapi(),
        crate::chat::http::Api::openapi(),
        crate::media::http::Api::openapi(),
        crate::social::http::Api::openapi(),
        crate::commerce::http::Api::openapi(),
        crate::rebates::http::Api::openapi(),
        crate::moderation::http::Api::openapi(),
        crate::animals::http::Api::openapi(),
        crate::trips::http::Api::openapi(),
        crate::server::apps::Api::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}
