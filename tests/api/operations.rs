//! Health, readiness, metrics, OpenAPI, configuration and lifecycle.

use std::process::Command;

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

async fn health_ready_metrics_openapi(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let r = app.get("/health", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );

    let r = app.get("/ready", None).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["database"], "ok");
    assert_eq!(v["cache"], "ok");
    assert_eq!(v["bus"], "ok");

    app.register("metrics_user").await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    for needle in [
        "tandem_http_requests_total{method=\"POST\",route=\"/api/v1/auth/register\",status=\"201\"} 1",
        "tandem_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/auth/register\",le=\"+Inf\"} 1",
        "tandem_mailbox_depth{actor=\"db_executor\"}",
        "tandem_mailbox_capacity{actor=\"db_executor\"} 2048",
        "tandem_mailbox_depth{actor=\"chat_writer_0\"}",
        "tandem_mailbox_depth{actor=\"order_writer\"}",
        "tandem_mailbox_depth{actor=\"group_commit\"}",
        "tandem_mailbox_capacity{actor=\"group_commit\"} 16384",
        "tandem_online_users",
        "tandem_live_order_actors",
        "tandem_db_pool_connections",
        "process_resident_memory_bytes",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }

    let doc: Value = app
        .get("/api-docs/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/me",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    assert!(doc["paths"]["/api/v1/me"]["patch"].is_object());
    // One TYPE line per metric family (valid Prometheus text).
    let mut types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let n = types.len();
    types.sort_unstable();
    types.dedup();
    assert_eq!(types.len(), n, "duplicate TYPE lines");
}
both_backends!(
    health_ready_metrics_openapi,
    super::health_ready_metrics_openapi
);

/// Issue 16, item 3: SIGTERM and SIGINT close every WebSocket with 1001
/// (going away) at once, and the server exits as soon as its work is done,
/// not after the 30 s drain timeout.
async fn stop_closes_sockets_with_1001_and_exits_promptly(backend: Backend) {
    for sig in ["-TERM", "-INT"] {
        let mut app = TestApp::spawn(backend).await;
        let (_, token) = app.register("leaver").await;
        let mut ws = crate::ws::Ws::connect(&app, &token).await;
        ws.send(json!({"type": "ping"})).await;
        assert_eq!(ws.recv_within(5).await["type"], "pong");
        let started = std::time::Instant::now();
        app.signal(sig);
        assert_eq!(
            ws.ended_within(5).await,
            crate::ws::Ended::Closed(1001),
            "{sig}"
        );
        let status = app.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "{sig}: exit status {status:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{sig}: took {:?}",
            started.elapsed()
        );
    }
}
both_backends!(
    stop_closes_sockets_with_1001_and_exits_promptly,
    super::stop_closes_sockets_with_1001_and_exits_promptly
);

async fn graceful_shutdown_and_restart_keep_accounts(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let (uid, token) = app.register("survivor").await;
    let status = app.stop_gracefully();
    assert!(status.success(), "SIGTERM exit status {status:?}");
    app.start_again();
    // Same signing key after restart: the old token still works.
    let me: Value = app
        .get("/api/v1/me", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], uid);
    app.restart_hard();
    let r = app.login("survivor", "password-123").await;
    assert_eq!(r.status(), 200);
}
both_backends!(
    graceful_shutdown_and_restart_keep_accounts,
    super::graceful_shutdown_and_restart_keep_accounts
);

#[test]
fn unknown_database_scheme_is_refused() {
    let dir =
        std::env::temp_dir().join(format!("tandem-scheme-{}", crate::helpers::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env_clear()
        .env("TANDEM_DATABASE_URL", "mysql://localhost/tandem")
        .env("TANDEM_LISTEN", "127.0.0.1:0")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsupported database URL scheme `mysql`"),
        "{err}"
    );
    // No database was created by accident.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each committer and chat writer keeps a pool connection while busy
/// (issue 15): a pool too small for them and the rest is refused at start,
/// naming the smallest size, before anything is created.
#[test]
fn a_pool_smaller_than_its_writers_is_refused() {
    let dir = std::env::temp_dir().join(format!("tandem-pool-{}", crate::helpers::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .env_clear()
        .env(
            "TANDEM_DATABASE_URL",
            format!("sqlite:{}", dir.join("t.db").display()),
        )
        .env("TANDEM_LISTEN", "127.0.0.1:0")
        .env("TANDEM_CHAT_WRITERS", "3")
        .env("TANDEM_DB_POOL_SIZE", "5")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TANDEM_DB_POOL_SIZE must be at least 6: each of the 1 committers and 3 chat writers keeps a connection, and 2 are left for the rest"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing was created"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 16, item 6: `tandem audit` on a path where no database is refuses
/// (non-zero, one clear line) and creates nothing.
#[test]
fn audit_refuses_a_database_that_does_not_exist() {
    let dir =
        std::env::temp_dir().join(format!("tandem-audit-{}", crate::helpers::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("typo").join("tandem.db");
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("audit")
        .env_clear()
        .env(
            "TANDEM_DATABASE_URL",
            format!("sqlite:{}", missing.display()),
        )
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no database at"), "{text}");
    assert!(!text.contains("audit: ok"), "{text}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing was created"
    );
    // An empty file is not a migrated database either.
    std::fs::write(dir.join("empty.db"), b"").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("audit")
        .env_clear()
        .env(
            "TANDEM_DATABASE_URL",
            format!("sqlite:{}", dir.join("empty.db").display()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a Tandem database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 16, item 2: a start that cannot succeed says why in one line, exits
/// non-zero, panics nowhere and leaves no database behind.
#[test]
fn a_failed_start_touches_no_storage_and_says_why() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let cases: [(&str, &str, &str); 3] = [
        ("TANDEM_LISTEN", taken_addr.as_str(), "cannot listen on"),
        ("TANDEM_LISTEN", "nonsense", "cannot listen on nonsense"),
        (
            "TANDEM_JWT_SECRET",
            "short",
            "TANDEM_JWT_SECRET must be at least 32 bytes",
        ),
    ];
    for (var, value, says) in cases {
        let dir =
            std::env::temp_dir().join(format!("tandem-start-{}", crate::helpers::random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
        cmd.env_clear()
            .env(
                "TANDEM_DATABASE_URL",
                format!("sqlite:{}/data/t.db", dir.display()),
            )
            .env("TANDEM_LISTEN", "127.0.0.1:0")
            .env(var, value)
            .current_dir(&dir);
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value}");
        assert!(err.contains(says), "{var}={value}: {err}");
        assert!(!err.contains("panicked"), "{var}={value}: {err}");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "{var}={value}: nothing created"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    drop(taken);
}

/// Issue 16, item 2: bare `tandem` takes the serve flags, and the start
/// says where the data lives and how to stop.
#[test]
fn bare_tandem_takes_serve_flags_and_says_where_data_lives() {
    use std::io::BufRead;
    let dir =
        std::env::temp_dir().join(format!("tandem-flags-{}", crate::helpers::random_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite:{}/t.db", dir.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["--listen", "127.0.0.1:0", "--database-url", db.as_str()])
        .env_clear()
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = std::io::BufReader::new(stdout)
        .lines()
        .take(2)
        .map(Result::unwrap)
        .collect();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(
        lines[0].starts_with("tandem listening on http://127.0.0.1:"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("t.db") && lines[1].contains("SIGTERM"),
        "{lines:?}"
    );
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 16, item 4 (part): the served OpenAPI document has unique operation
/// ids, a description on every response, RFC 9457 bodies on every error, 401
/// on every secured operation, 429 on every operation and a server; and
/// `openapi-spec-validator` accepts it where that tool is installed.
#[tokio::test]
async fn openapi_document_is_valid_and_uniform() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc: Value = app
        .get("/api-docs/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(doc["servers"][0]["url"].is_string());
    let mut ids = std::collections::HashSet::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            operations += 1;
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            assert!(responses.contains_key("429"), "{method} {path} lacks 429");
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
            for (status, r) in responses {
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status}: no description"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        r["content"].get("application/json").is_none(),
                        "{method} {path} {status}: an error as application/json"
                    );
                }
            }
        }
    }
    assert!(operations > 60, "{operations} operations");

    // The readable reference page: HTML from the binary, nothing from
    // another host (CONTRACT v2, "Pages and operations").
    let page = app.get("/api-docs", None).await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<html lang=\"en\">") && html.contains("/api-docs/openapi.json"));
    for external in ["src=\"http", "href=\"http", "@import", "//cdn"] {
        assert!(!html.contains(external), "the page loads {external}");
    }
    let file = std::env::temp_dir().join(format!(
        "tandem-openapi-{}.json",
        crate::helpers::random_suffix()
    ));
    std::fs::write(&file, doc.to_string()).unwrap();
    match Command::new("openapi-spec-validator").arg(&file).output() {
        Ok(out) => assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("openapi-spec-validator not run ({e}); the checks above still ran"),
    }
    let _ = std::fs::remove_file(&file);
}

/// Issue 16, item 4: the document is precise where the code is: ids,
/// times, page sizes and statuses carry their bounds, formats and values,
/// and the WebSocket's frames are described.
#[tokio::test]
async fn openapi_document_is_precise_and_describes_the_websocket() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let doc: Value = app
        .get("/api-docs/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    let order = &schemas["OrderView"]["properties"];
    assert_eq!(order["order_id"]["minimum"], 1);
    assert_eq!(order["order_id"]["maximum"], 9_007_199_254_740_991_i64);
    assert_eq!(order["created_at"]["format"], "date-time");
    // An enum, or (with a description) an enum in a one-member oneOf.
    let values = |schema: &Value| -> Value {
        match &schema["enum"] {
            Value::Null => schema["oneOf"][0]["enum"].clone(),
            e => e.clone(),
        }
    };
    let statuses: Vec<String> = values(&order["status"])
        .as_array()
        .expect("the order status is an enum")
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses,
        [
            "pending_payment",
            "paid",
            "shipped",
            "completed",
            "cancelled",
            "refunded"
        ]
    );
    for (view, field, first) in [
        ("RebateView", "status", "pending"),
        ("WithdrawalView", "status", "pending"),
        ("MerchantView", "status", "pending"),
        ("TripView", "status", "open"),
        ("ReportView", "status", "open"),
    ] {
        assert_eq!(
            values(&schemas[view]["properties"][field])[0],
            first,
            "{view}.{field}"
        );
    }
    // Every text and number a client sends is bounded as the server checks it.
    let mut loose = Vec::new();
    for (name, schema) in schemas.as_object().unwrap() {
        if !(name.ends_with("Request") || name.ends_with("Spec") || name.ends_with("Frame")) {
            continue;
        }
        for (field, p) in schema["properties"].as_object().into_iter().flatten() {
            let is = |t: &str| {
                p["type"] == t
                    || p["type"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == t))
            };
            let enumerated = !values(p).is_null() || p["format"].is_string();
            if is("string") && !enumerated && field != "type" && p["maxLength"].is_null() {
                loose.push(format!("{name}.{field}"));
            }
            if is("integer")
                && p["maximum"].is_null()
                && !field.ends_with("seq")
                && field != "priority"
            {
                loose.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(loose.is_empty(), "unbounded input fields: {loose:?}");
    let product = &schemas["ProductRequest"]["properties"];
    assert_eq!(product["price_cents"]["minimum"], 0);
    assert_eq!(
        schemas["CreateOrderRequest"]["properties"]["items"]["maxItems"],
        50
    );

    // Lists answer pages of their items' schema, not prose.
    assert!(
        !doc.to_string().contains("{items:"),
        "a page described in prose"
    );
    let rebates = &doc["paths"]["/api/v1/rebates"]["get"]["responses"]["200"];
    let page = rebates["content"]["application/json"]["schema"].to_string();
    assert!(page.contains("RebateView"), "{page}");
    // Every id in every schema and parameter is bounded; `limit` is 1-200.
    let mut unbounded = Vec::new();
    let mut limits = 0;
    visit(&doc, &mut |name, schema| {
        let integer = schema["type"] == "integer"
            || schema["type"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "integer"));
        if (name == "id" || name.ends_with("_id")) && integer && schema["minimum"] != 1 {
            unbounded.push(name.to_owned());
        }
        if name == "limit" {
            assert_eq!(
                (schema["minimum"].as_i64(), schema["maximum"].as_i64()),
                (Some(1), Some(200))
            );
            limits += 1;
        }
    });
    assert!(unbounded.is_empty(), "ids without bounds: {unbounded:?}");
    assert!(limits > 10, "{limits} paged operations");
    // The WebSocket: its operation names both frame schemas, and they list
    // every frame type of the contract.
    let ws = &doc["paths"]["/api/v1/ws"]["get"];
    assert_eq!(
        ws["x-websocket"]["client_frames"]["$ref"],
        "#/components/schemas/ClientFrame"
    );
    assert!(ws["description"].as_str().unwrap().contains("1009"));
    let types = |schema: &Value| -> Vec<String> {
        let mut found = Vec::new();
        visit(schema, &mut |name, s| {
            if name == "type" {
                if let Some(values) = s["enum"].as_array() {
                    found.extend(values.iter().map(|v| v.as_str().unwrap().to_owned()));
                }
            }
        });
        found.sort();
        found
    };
    assert_eq!(
        types(&schemas["ClientFrame"]),
        ["delete", "edit", "ping", "read", "send", "sync", "typing"]
    );
    assert_eq!(
        types(&schemas["ServerFrame"]),
        [
            "ack",
            "error",
            "message",
            "notification",
            "pong",
            "post",
            "presence",
            "read",
            "synced",
            "typing"
        ]
    );
    let send = &schemas["SendFrame"]["properties"];
    assert_eq!(
        (
            send["body"]["minLength"].as_i64(),
            send["body"]["maxLength"].as_i64()
        ),
        // Empty allowed as a picture's caption (with `media_id`).
        (None, Some(4000))
    );
}

/// Calls `f(name, schema)` for every named property and parameter in `v`.
fn visit(v: &Value, f: &mut dyn FnMut(&str, &Value)) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Object(props)) = o.get("properties") {
                for (name, schema) in props {
                    f(name, schema);
                }
            }
            if let (Some(Value::String(name)), Some(schema)) = (o.get("name"), o.get("schema")) {
                f(name, schema);
            }
            for child in o.values() {
                visit(child, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| visit(c, f)),
        _ => {}
    }
}

#[test]
fn serve_help_documents_every_variable_with_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--help"])
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "TANDEM_LISTEN",
        "TANDEM_DATABASE_URL",
        "TANDEM_REDIS_URL",
        "TANDEM_AMQP_URL",
        "TANDEM_BOOTSTRAP_ADMIN",
        "TANDEM_MOCKPAY_SECRET",
        "TANDEM_PAY_TIMEOUT_SECS",
        "TANDEM_AUTO_COMPLETE_SECS",
        "TANDEM_RATE_LIMITS",
        "TANDEM_LOG",
        "TANDEM_LOG_FORMAT",
    ] {
        assert!(help.contains(var), "help lacks {var}:\n{help}");
    }
    assert!(help.contains("[default: 127.0.0.1:8080]"));
    assert!(help.contains("[default: sqlite:data/tandem.db]"));
    assert!(help.contains("[default: 900]"));
    assert!(help.contains("[default: 604800]"));
}

#[test]
fn migrate_subcommand_applies_migrations() {
    let dir = std::env::temp_dir().join(format!(
        "tandem-migrate-{}",
        crate::helpers::random_suffix()
    ));
    let url = format!("sqlite:{}", dir.join("m.db").display());
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("migrate")
            .env_clear()
            .env("TANDEM_DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        out.starts_with("applied ") && !out.starts_with("applied 0"),
        "{out}"
    );
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("applied 0 migration"));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn json_logs(backend: Backend) {
    let opts = crate::helpers::Options {
        extra_env: vec![("TANDEM_LOG_FORMAT".into(), "json".into())],
        ..Default::default()
    };
    let app = TestApp::spawn_with(backend, opts).await;
    app.get("/health", None).await;
    let log = app.server_log();
    let line = log
        .lines()
        .find(|l| l.contains("listening"))
        .expect("a listening log line");
    let v: Value = serde_json::from_str(line).expect("log lines are JSON");
    assert_eq!(v["level"], "INFO");
}
both_backends!(json_logs, super::json_logs);

/// A first start on a new SQLite file logs no error: the pool's connections
/// once raced to switch the new file to WAL, and r2d2 logged "database is
/// locked" for the loser (about one start in four).
#[test]
fn a_new_sqlite_file_opens_without_errors() {
    for _ in 0..12 {
        let dir =
            std::env::temp_dir().join(format!("tandem-wal-{}", crate::helpers::random_suffix()));
        let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("migrate")
            .env_clear()
            .env(
                "TANDEM_DATABASE_URL",
                format!("sqlite:{}", dir.join("w.db").display()),
            )
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("ERROR"), "{stderr}");
    }
}
