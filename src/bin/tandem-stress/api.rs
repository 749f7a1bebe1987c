//! The Tandem API client used for setup, measured requests and checks, plus
//! the setup helpers built on it (users, a shop, signed notifications, server RSS).

use std::sync::Arc;

use anyhow::{bail, Context as _};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::http::LeanHttp;
use crate::Args;

/// A small API client for setup, the measured requests and the checks.
#[derive(Clone)]
pub(crate) struct Api {
    /// Every node's base URL (one unless the target is a cluster).
    pub(crate) bases: Vec<String>,
    pub(crate) http: Arc<LeanHttp>,
}

impl Api {
    pub(crate) fn new(targets: &[String], pool: usize) -> anyhow::Result<Self> {
        let bases: Vec<String> = targets
            .iter()
            .map(|t| t.trim_end_matches('/').to_owned())
            .collect();
        anyhow::ensure!(!bases.is_empty(), "no --target");
        Ok(Api {
            http: Arc::new(LeanHttp::new(&bases, pool)?),
            bases,
        })
    }

    /// The node for the `i`th client (round-robin over the targets).
    pub(crate) fn base_for(&self, i: usize) -> &str {
        &self.bases[i % self.bases.len()]
    }

    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        self.call_with(method, path, token, body, &[]).await
    }

    /// `call` with extra request headers (an `Idempotency-Key`).
    pub(crate) async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<(u16, Value), String> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2 + extra.len());
        headers.extend_from_slice(extra);
        if let Some(a) = auth.as_deref() {
            headers.push(("Authorization", a));
        }
        let bytes = match body {
            Some(b) => {
                headers.push(("Content-Type", "application/json"));
                serde_json::to_vec(b).map_err(|e| e.to_string())?
            }
            None => Vec::new(),
        };
        let (status, text) = self.http.request(method, path, &headers, &bytes).await?;
        Ok((
            status,
            serde_json::from_slice(&text)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&text).into_owned())),
        ))
    }

    /// Opens the connections of a measured run before it starts.
    pub(crate) async fn warm(&self, n: usize) -> anyhow::Result<()> {
        self.http.warm(n).await.map_err(anyhow::Error::msg)
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Result<(u16, Value), String> {
        self.call("POST", path, token, Some(body)).await
    }

    pub(crate) async fn get(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> Result<(u16, Value), String> {
        self.call("GET", path, token, None).await
    }

    async fn token(
        &self,
        path: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<(i64, String)> {
        let (s, v) = self
            .post(
                path,
                None,
                &json!({"username": username, "password": password}),
            )
            .await
            .map_err(anyhow::Error::msg)?;
        if s != 200 && s != 201 {
            bail!("{path} {username}: {s} {v}");
        }
        Ok((
            v["user_id"].as_i64().unwrap_or(0),
            v["token"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    pub(crate) async fn users(&self, prefix: &str, n: usize) -> anyhow::Result<Vec<(i64, String)>> {
        let out = futures_util::stream::iter(0..n)
            .map(|i| {
                let api = self.clone();
                let name = format!("{prefix}{i}");
                async move {
                    api.token("/api/v1/auth/register", &name, "stress-password-1")
                        .await
                }
            })
            .buffered(8)
            .collect::<Vec<_>>()
            .await;
        out.into_iter().collect()
    }
}

/// Names this run's users apart from earlier runs' (the time) and from other
/// harness processes started in the same millisecond (the pid).
pub(crate) fn run_id() -> String {
    format!(
        "{:x}{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            % 0xffff_ffff,
        std::process::id() % 0xffff
    )
}

pub(crate) struct Shop {
    pub(crate) product_id: i64,
    /// An admin's token.
    pub(crate) admin: String,
    /// The shop owner's token.
    pub(crate) owner: String,
}

pub(crate) async fn shop(api: &Api, args: &Args, stock: i64, price: i64) -> anyhow::Result<Shop> {
    let admin = args
        .admin
        .as_deref()
        .context("--admin USER:PASS is needed for this scenario's setup")?;
    let (user, pass) = admin.split_once(':').context("--admin must be USER:PASS")?;
    let (_, admin) = api.token("/api/v1/auth/login", user, pass).await?;
    let (_, owner) = api
        .token(
            "/api/v1/auth/register",
            &format!("s{}m", run_id()),
            "stress-password-1",
        )
        .await?;
    let (_, m) = api
        .post(
            "/api/v1/merchants",
            Some(&owner),
            &json!({"name": "stress shop"}),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    let mid = m["merchant_id"].as_i64().context("merchant")?;
    let (s, v) = api
        .post(
            &format!("/api/v1/admin/merchants/{mid}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    if s != 200 {
        bail!("approving the merchant: {s} {v}");
    }
    let (s, p) = api
        .post("/api/v1/products", Some(&owner), &json!({"merchant_id": mid, "name": "stress item", "category": "stress", "price_cents": price, "stock": stock}))
        .await
        .map_err(anyhow::Error::msg)?;
    if s != 201 {
        bail!("creating the product: {s} {p}");
    }
    Ok(Shop {
        product_id: p["product_id"].as_i64().context("product")?,
        admin,
        owner,
    })
}

pub(crate) fn sign(secret: &str, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("any key length works"));
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The resident memory of every node of the target, summed.
pub(crate) async fn server_rss(api: &Api) -> anyhow::Result<u64> {
    let mut total = 0;
    for base in &api.bases {
        total += node_rss(&Api::new(std::slice::from_ref(base), 1)?).await?;
    }
    Ok(total)
}

async fn node_rss(api: &Api) -> anyhow::Result<u64> {
    let (status, body) = api
        .http
        .request("GET", "/metrics", &[], &[])
        .await
        .map_err(anyhow::Error::msg)?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .context("the server's /metrics has no process_resident_memory_bytes")
}
