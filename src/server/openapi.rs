//! The served OpenAPI document: what utoipa derives from the routes, made
//! valid and uniform in one place, so no route can get it wrong.
//!
//! utoipa names each operation after its handler function, and several
//! domains have a `list` or a `create`; it declares error bodies as
//! `application/json`; and a response written without a description has
//! none. Here every operation gets an id from its method and path (unique
//! by construction), every error response the RFC 9457 media type and a
//! description, every secured operation its 401, every operation its 429
//! (rate limits answer any route), and the document a `servers` entry.
//!
//! Precision follows the code's own rules, also applied here once: every id
//! (`id`, `*_id`, `*_ids`) is an integer from 1 to 2^53 - 1 (`core::ids`),
//! every `*_at` text an RFC 3339 date-time, `limit` 1 to 200 (`core::paging`);
//! statuses are enums where the views say so (`text_enum!`). The WebSocket's
//! frames are schemas (`ClientFrame`, `ServerFrame`) that its operation names.

use serde_json::{json, Map, Value};

/// The document as served at `/api-docs/openapi.json`: built and polished
/// once (it depends on nothing but the code), shared by every request and by
/// [`methods_of`].
pub fn document() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(super::ops::document()).unwrap_or_default();
        polish(&mut doc);
        doc
    })
}

/// A path template's segments (`None`: a `{parameter}`) and its methods.
type Served = (Vec<Option<String>>, Vec<String>);

/// The methods the document serves at `path` (its templates' `{x}` match any
/// one segment), upper-case; empty if no template matches.
pub fn methods_of(path: &str) -> Vec<String> {
    static TABLE: std::sync::OnceLock<Vec<Served>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let Some(paths) = document()["paths"].as_object() else {
            return Vec::new();
        };
        paths
            .iter()
            .map(|(template, item)| {
                let segments = template
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                let methods = METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                (segments, methods)
            })
            .collect()
    });
    let parts: Vec<&str> = path.split('/').collect();
    let mut found: Vec<String> = Vec::new();
    for (segments, methods) in table {
        let matches = segments.len() == parts.len()
            && segments.iter().zip(&parts).all(|(s, p)| match s {
                Some(literal) => literal == p,
                None => !p.is_empty(),
            });
        if matches {
            found.extend(methods.iter().cloned());
        }
    }
    found.sort();
    found.dedup();
    found
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn polish(doc: &mut Value) {
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    root.insert(
        "servers".into(),
        json!([{"url": "/", "description": "this server"}]),
    );
    precise(root);
    let global_security = root.get("security").cloned();
    let Some(paths) = root.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            op.insert(
                "operationId".into(),
                Value::String(operation_id(method, path)),
            );
            let secured = op
                .get("security")
                .or(global_security.as_ref())
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
                });
            polish_responses(op, secured);
            if path == "/api/v1/ws" && method == "get" {
                describe_websocket(op);
            }
        }
    }
}

/// The frames of `GET /api/v1/ws`, which OpenAPI cannot describe as
/// responses: named in an `x-websocket` extension and the description.
fn describe_websocket(op: &mut Map<String, Value>) {
    op.insert(
        "description".into(),
        Value::String(
            "Upgrades to a WebSocket of JSON text frames, one object each, told apart by \
             `type`: the client sends `ClientFrame`s, the server `ServerFrame`s (see \
             `x-websocket`). Within a conversation `seq` starts at 1 and rises by exactly 1; \
             every acked message reaches every member live or through `sync`. Every change \
             to a conversation is an entry of that stream, delivered as a `message` frame \
             with its `kind`: `text`, `image`, `edit` and `delete` (with `target_seq`), \
             `member_added`, `member_removed`, `renamed`, `owner_changed`, \
             `history_changed` (with `data`). A frame \
             over 65,536 bytes closes the socket with 1009; the server pings every 15 s and \
             closes a socket silent for 45 s; a client that cannot keep up is closed with \
             1008 or 1013; a ban closes with 1008 `banned`; a server stopping closes with 1001."
                .into(),
        ),
    );
    op.insert(
        "x-websocket".into(),
        json!({
            "client_frames": {"$ref": "#/components/schemas/ClientFrame"},
            "server_frames": {"$ref": "#/components/schemas/ServerFrame"}
        }),
    );
}

/// Applies the code's bounds and formats to every schema and parameter.
fn precise(root: &mut Map<String, Value>) {
    if let Some(components) = root.get_mut("components") {
        walk(components);
    }
    if let Some(paths) = root.get_mut("paths") {
        walk(paths);
    }
}

/// Every object below `v`: schemas with `properties`, and parameters.
fn walk(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Object(props)) = o.get_mut("properties") {
                for (name, schema) in props.iter_mut() {
                    bound(name, schema);
                }
            }
            if o.get("in").is_some() {
                if let (Some(Value::String(name)), Some(schema)) =
                    (o.get("name").cloned(), o.get_mut("schema"))
                {
                    bound(&name, schema);
                }
            }
            for child in o.values_mut() {
                walk(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(walk),
        _ => {}
    }
}

fn has_type(schema: &Map<String, Value>, ty: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(ts)) => ts.iter().any(|t| t == ty),
        _ => false,
    }
}

/// The bounds and format the field or parameter `name` has in the code.
fn bound(name: &str, schema: &mut Value) {
    let Some(s) = schema.as_object_mut() else {
        return;
    };
    let is_id = name == "id" || name.ends_with("_id");
    if is_id && has_type(s, "integer") {
        s.entry("minimum").or_insert(json!(1));
        s.entry("maximum")
            .or_insert(json!(crate::core::ids::MAX_SAFE_ID));
    } else if name.ends_with("_ids") && has_type(s, "array") {
        if let Some(items) = s.get_mut("items") {
            bound("id", items);
        }
    } else if (name.ends_with("_at") || name == "pay_deadline") && has_type(s, "string") {
        s.entry("format").or_insert(json!("date-time"));
    } else if name == "limit" && (has_type(s, "integer") || has_type(s, "string")) {
        s.insert("type".into(), json!("integer"));
        s.insert("minimum".into(), json!(1));
        s.insert("maximum".into(), json!(crate::core::paging::MAX_LIMIT));
        s.insert("default".into(), json!(crate::core::paging::DEFAULT_LIMIT));
        s.remove("format");
    }
}

/// `get /api/v1/conversations/{id}/messages` -> `get_conversations_id_messages`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = String::from(method);
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    for part in path.split('/').filter(|p| !p.is_empty()) {
        id.push('_');
        id.extend(part.chars().filter_map(|c| match c {
            '{' | '}' => None,
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => Some('_'),
        }));
    }
    id
}

fn polish_responses(op: &mut Map<String, Value>, secured: bool) {
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else { return };
    if secured && !responses.contains_key("401") {
        responses.insert("401".into(), problem_response("401"));
    }
    if !responses.contains_key("429") {
        responses.insert("429".into(), problem_response("429"));
    }
    for (status, response) in responses.iter_mut() {
        let Some(r) = response.as_object_mut() else {
            continue;
        };
        let missing = r
            .get("description")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if missing {
            r.insert("description".into(), Value::String(reason(status).into()));
        }
        if status.starts_with('4') || status.starts_with('5') {
            if let Some(content) = r.get_mut("content").and_then(Value::as_object_mut) {
                if let Some(body) = content.remove("application/json") {
                    content.insert("application/problem+json".into(), body);
                }
            }
        }
    }
}

fn problem_response(status: &str) -> Value {
    json!({
        "description": reason(status),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn reason(status: &str) -> &'static str {
    match status {
        "101" => "Switching Protocols",
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "No Content",
        "400" => "Bad Request: the input is invalid; nothing was changed",
        "401" => "Unauthorized: a valid bearer token is required",
        "403" => "Forbidden",
        "404" => "Not Found",
        "409" => "Conflict",
        "413" => "Payload Too Large",
        "422" => "Unprocessable Content",
        "429" => "Too Many Requests: rate limited; retry after the Retry-After header",
        "503" => "Service Unavailable: retry shortly; nothing was done",
        _ => "See the problem document",
    }
}
