//! `TestApp`: the real server as a child process, its database, and a client.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use serde_json::{json, Value};

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
pub const ADMIN: (&str, &str) = ("root_admin", "root-password-1");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs the test body once per backend; the PostgreSQL variant needs the
/// `TANDEM_TEST_*` variables and says plainly when they are missing.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::helpers::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if !$crate::helpers::postgres_configured() {
                    eprintln!("TANDEM_TEST_DATABASE_URL not set: PostgreSQL variant not run");
                    return;
                }
                $body($crate::helpers::Backend::Postgres).await;
            }
        }
    };
}

pub fn postgres_configured() -> bool {
    std::env::var("TANDEM_TEST_DATABASE_URL").is_ok()
}

pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..12)
        .map(|_| char::from(b'a' + rng.gen_range(0..26)))
        .collect()
}

/// A fresh database for one test: a SQLite file in a temp dir, or a new
/// PostgreSQL database dropped when this goes out of scope.
pub struct TestDatabase {
    pub url: String,
    pg_admin_url: Option<String>,
    pg_db_name: Option<String>,
}

impl TestDatabase {
    pub fn create(backend: Backend, dir: &std::path::Path, suffix: &str) -> TestDatabase {
        match backend {
            Backend::Sqlite => TestDatabase {
                url: format!("sqlite:{}", dir.join("tandem.db").display()),
                pg_admin_url: None,
                pg_db_name: None,
            },
            Backend::Postgres => {
                let admin =
                    std::env::var("TANDEM_TEST_DATABASE_URL").expect("TANDEM_TEST_DATABASE_URL");
                let name = format!("tandem_test_{suffix}");
                let mut conn = PgConnection::establish(&admin).expect("connect to PostgreSQL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                TestDatabase {
                    url: replace_db_name(&admin, &name),
                    pg_admin_url: Some(admin),
                    pg_db_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let (Some(admin), Some(name)) = (&self.pg_admin_url, &self.pg_db_name) {
            if let Ok(mut conn) = PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn);
            }
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    child: Option<Child>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    /// Shared by the nodes of one cluster; dropped with the last.
    _db: std::sync::Arc<TestDatabase>,
}

/// Options for a test server.
#[derive(Clone, Default)]
pub struct Options {
    pub rate_limits: bool,
    pub extra_env: Vec<(String, String)>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, Options::default()).await
    }

    pub async fn spawn_with(backend: Backend, opts: Options) -> TestApp {
        let suffix = random_suffix();
        let dir = std::env::temp_dir().join(format!("tandem-test-{suffix}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut env: Vec<(String, String)> = vec![
            ("TANDEM_LISTEN".into(), "127.0.0.1:0".into()),
            ("TANDEM_JWT_SECRET".into(), JWT_SECRET.into()),
            (
                "TANDEM_BOOTSTRAP_ADMIN".into(),
                format!("{}:{}", ADMIN.0, ADMIN.1),
            ),
            ("TANDEM_MOCKPAY_SECRET".into(), "mockpay-test-secret".into()),
            ("TANDEM_LOG".into(), "info".into()),
            ("TANDEM_WORKERS".into(), "2".into()),
            ("TANDEM_NAMESPACE".into(), format!("tandem-test-{suffix}")),
            (
                "TANDEM_RATE_LIMITS".into(),
                if opts.rate_limits { "on" } else { "off" }.into(),
            ),
        ];
        let db = TestDatabase::create(backend, &dir, &suffix);
        env.push(("TANDEM_DATABASE_URL".into(), db.url.clone()));
        if backend == Backend::Postgres {
            let redis = std::env::var("TANDEM_TEST_REDIS_URL")
                .expect("TANDEM_TEST_REDIS_URL with PostgreSQL");
            let amqp = std::env::var("TANDEM_TEST_AMQP_URL")
                .expect("TANDEM_TEST_AMQP_URL with PostgreSQL");
            env.push(("TANDEM_REDIS_URL".into(), redis));
            env.push(("TANDEM_AMQP_URL".into(), amqp));
        }
        env.extend(opts.extra_env);
        let mut app = TestApp {
            address: String::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            child: None,
            dir,
            env,
            _db: std::sync::Arc::new(db),
        };
        app.start();
        app
    }

    /// Another node of this server's cluster: the same database, Redis,
    /// RabbitMQ and namespace, its own `TANDEM_NODE_ID`, port and log.
    pub fn join(&self, node_id: u8) -> TestApp {
        let mut node = self.node(node_id);
        node.start();
        node
    }

    /// The value this server was started with for `key`, if any.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Starts a node that must refuse to start; its exit status and log.
    pub fn join_refused(&self, node_id: u8) -> (std::process::ExitStatus, String) {
        let node = self.node(node_id);
        let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .env_clear()
            .envs(node.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&node.dir)
            .output()
            .expect("run tandem");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status, text)
    }

    fn node(&self, node_id: u8) -> TestApp {
        let dir = std::env::temp_dir().join(format!("tandem-test-{}", random_suffix()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| k != "TANDEM_NODE_ID")
            .cloned()
            .collect();
        env.push(("TANDEM_NODE_ID".into(), node_id.to_string()));
        TestApp {
            address: String::new(),
            client: self.client.clone(),
            child: None,
            dir,
            env,
            _db: self._db.clone(),
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            // Only what the test chose: nothing leaks in from the runner's environment.
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn tandem");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let address = line
            .trim()
            .strip_prefix("tandem listening on ")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("server did not start; stdout {line:?}; log:\n{log}")
            })
            .to_owned();
        self.address = address;
        self.child = Some(child);
    }

    /// `kill -9` the server, and leave it down.
    pub fn kill_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9` the server and start it again on the same database.
    pub fn restart_hard(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.start();
    }

    /// `kill -9`, stay down for `down`, start again on the same database.
    pub fn restart_hard_after(&mut self, down: Duration) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(down);
        self.start();
    }

    /// SIGTERM, wait for a clean exit, and return its status.
    pub fn stop_gracefully(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.wait_exit(Duration::from_secs(30))
    }

    /// Sends a signal (`-TERM`, `-INT`) to the server; it keeps running until
    /// [`TestApp::wait_exit`] sees it stop.
    pub fn signal(&self, sig: &str) {
        let c = self.child.as_ref().expect("running");
        let _ = Command::new("kill")
            .arg(sig)
            .arg(c.id().to_string())
            .status();
    }

    /// Waits at most `within` for the server to exit; its status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server did not stop within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn start_again(&mut self) {
        self.start();
    }

    /// Runs `tandem audit` against this server's database; returns (ok, output).
    pub fn audit(&self) -> (bool, String) {
        let url = self
            .env
            .iter()
            .find(|(k, _)| k == "TANDEM_DATABASE_URL")
            .map(|(_, v)| v.clone())
            .expect("db url");
        let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("audit")
            .env_clear()
            .env("TANDEM_DATABASE_URL", url)
            .output()
            .expect("run audit");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn database_url(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "TANDEM_DATABASE_URL")
            .map(|(_, v)| v.clone())
            .expect("db url")
    }

    /// Runs one SQL statement on this server's database behind its back (to
    /// inject a fault, or to look at what HTTP does not show); returns the
    /// rows it changed.
    pub fn sql(&self, statement: &str) -> usize {
        self.sql_on_sqlite_with(statement, "PRAGMA busy_timeout = 10000")
    }

    /// As [`TestApp::sql`], with SQLite's foreign keys off for the statement
    /// (diesel turns them on for every connection it opens), to write a row
    /// whose reference names nothing.
    pub fn sql_unchecked(&self, statement: &str) -> usize {
        self.sql_on_sqlite_with(statement, "PRAGMA foreign_keys = OFF")
    }

    fn sql_on_sqlite_with(&self, statement: &str, pragma: &str) -> usize {
        let url = self.database_url();
        match url.strip_prefix("sqlite:") {
            Some(path) => {
                let mut c = diesel::SqliteConnection::establish(path).expect("open SQLite");
                for p in ["PRAGMA busy_timeout = 10000", pragma] {
                    diesel::sql_query(p).execute(&mut c).expect(p);
                }
                diesel::sql_query(statement)
                    .execute(&mut c)
                    .expect(statement)
            }
            None => {
                let mut c = PgConnection::establish(&url).expect("connect to PostgreSQL");
                diesel::sql_query(statement)
                    .execute(&mut c)
                    .expect(statement)
            }
        }
    }

    /// The one BIGINT a query selects as `n` (e.g. `SELECT COUNT(*) AS n ...`).
    pub fn sql_count(&self, query: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let url = self.database_url();
        let rows: Vec<N> = match url.strip_prefix("sqlite:") {
            Some(path) => {
                let mut c = diesel::SqliteConnection::establish(path).expect("open SQLite");
                diesel::sql_query(query).load(&mut c).expect(query)
            }
            None => {
                let mut c = PgConnection::establish(&url).expect("connect to PostgreSQL");
                diesel::sql_query(query).load(&mut c).expect(query)
            }
        };
        rows.first().map(|r| r.n).expect("one row")
    }

    pub fn assert_audit_clean(&self) {
        let (ok, text) = self.audit();
        assert!(ok, "audit found mismatches:\n{text}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.client.delete(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self.client.patch(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = self.client.put(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// POST a raw body with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    /// Registers a user; returns (user_id, token).
    pub async fn register(&self, username: &str) -> (i64, String) {
        let r = self
            .post(
                "/api/v1/auth/register",
                None,
                &json!({"username": username, "password": "password-123"}),
            )
            .await;
        assert_eq!(r.status(), 201, "register {username}");
        let v: Value = r.json().await.expect("json");
        (
            v["user_id"].as_i64().expect("user_id"),
            v["token"].as_str().expect("token").to_owned(),
        )
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/login",
            None,
            &json!({"username": username, "password": password}),
        )
        .await
    }

    pub async fn admin_token(&self) -> String {
        let r = self.login(ADMIN.0, ADMIN.1).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        v["token"].as_str().expect("token").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("server log kept in {}", self.dir.display());
        }
    }
}

/// Swaps the database name of a PostgreSQL URL.
fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Asserts a problem document with the given status and code; returns it.
pub async fn assert_problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        ct.starts_with("application/problem+json"),
        "content type {ct}"
    );
    let v: Value = resp.json().await.expect("problem json");
    assert_eq!(v["code"], code, "problem {v}");
    assert_eq!(v["status"], status);
    assert!(
        v["type"].is_string() && v["title"].is_string() && v["detail"].is_string(),
        "{v}"
    );
    v
}
