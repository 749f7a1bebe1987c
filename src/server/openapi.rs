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

use serde_json::{json, Map, Value};

/// The document as served at `/api-docs/openapi.json`.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(super::ops::document()).unwrap_or_default();
    polish(&mut doc);
    doc
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
        }
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
