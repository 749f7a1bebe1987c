//! The layering rules of ARCHITECTURE.md, read from the code's own paths:
//!
//! 1. `crate::` paths point only to the same layer or lower ones:
//!    core < storage < runtime < realtime < domains < server.
//! 2. A domain never reaches into another domain's `store`.
//! 3. diesel is used only in storage and in the domains' `store` rooms
//!    (`store.rs`, or `store/` with a file per table or job).
//! 4. Every table has one owner (`OWNERS`); only the owner's code names it
//!    (other domains go through the owner's `tx` API, handle or hooks).
//! 5. Domains import only domains before them in `DOMAINS`, so there is no
//!    import circle between domains.
//!
//! `KNOWN` lists what breaks a rule knowingly; the test also fails when an
//! entry there no longer breaks it, so the list only shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The domains, each importing only those before it.
const DOMAINS: &[&str] = &[
    "accounts",
    "media",
    "chat",
    "social",
    "commerce",
    "rebates",
    "animals",
    "trips",
    "moderation",
];

/// Violations not yet moved out: "file: what".
const KNOWN: &[&str] = &[];

/// Each table's one owning domain (or `storage`, for the machinery's own
/// tables): only the owner's store writes SQL against it.
const OWNERS: &[(&str, &[&str])] = &[
    ("accounts", &["users", "sessions", "settings"]),
    ("media", &["media", "media_blobs"]),
    (
        "chat",
        &[
            "conversations",
            "conversation_members",
            "messages",
            "blocks",
        ],
    ),
    (
        "social",
        &[
            "posts",
            "post_likes",
            "post_comments",
            "follows",
            "notifications",
            "notification_mutes",
        ],
    ),
    (
        "commerce",
        &[
            "merchants",
            "products",
            "orders",
            "order_items",
            "payments",
            "reviews",
        ],
    ),
    (
        "rebates",
        &[
            "rebates",
            "wallets",
            "ledger_entries",
            "withdrawals",
            "rebate_rule_sets",
        ],
    ),
    (
        "trips",
        &["trips", "trip_grams", "trip_members", "trip_requests"],
    ),
    ("animals", &["animals", "animal_updates"]),
    ("moderation", &["reports"]),
    (
        "storage",
        &[
            "idempotency_keys",
            "outbox",
            "dead_letters",
            "processed_events",
        ],
    ),
];

fn owner(table: &str) -> Option<&'static str> {
    OWNERS
        .iter()
        .find(|(_, tables)| tables.contains(&table))
        .map(|(d, _)| *d)
}

/// Tables a file names through `schema::` (`schema::x::...`, `schema::{x, y}`)
/// or in its SQL text (`FROM x`, `UPDATE x`, `INTO x`, `JOIN x`).
fn tables_named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("schema::") {
        let rest = &code[i + "schema::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for t in list[..end].split(',') {
                out.insert(ident(t.trim()));
            }
        } else {
            out.insert(ident(rest));
        }
    }
    for kw in ["FROM ", "UPDATE ", "INTO ", "JOIN "] {
        for (i, _) in code.match_indices(kw) {
            out.insert(ident(&code[i + kw.len()..]));
        }
    }
    out.retain(|t| owner(t).is_some());
    out
}

fn layer(module: &str) -> Option<usize> {
    match module {
        "core" => Some(0),
        "storage" => Some(1),
        "runtime" => Some(2),
        "realtime" => Some(3),
        "server" => Some(5),
        m if DOMAINS.contains(&m) => Some(4),
        _ => None,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comment lines and without its unit tests
/// (`#[cfg(test)] mod tests` at the end of a file may use anything).
fn code(text: &str) -> String {
    let body = match text.find("#[cfg(test)]\n#[allow(clippy::unwrap_used)]\nmod tests") {
        Some(i) => &text[..i],
        None => match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => text,
        },
    };
    body.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// (first, second) path segments after every `crate::`.
fn crate_paths(code: &str) -> BTreeSet<(String, String)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let first = ident(rest);
        let after = &rest[first.len()..];
        let second = after.strip_prefix("::").map(ident).unwrap_or_default();
        out.insert((first, second));
    }
    out
}

fn violations(root: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = BTreeSet::new();
    for file in files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = rel.split('/').collect();
        let Some(own) = parts.get(1).and_then(|m| layer(m)) else {
            continue; // lib.rs, main.rs, bin/: the roots
        };
        let own_module = parts[1];
        let code = code(&std::fs::read_to_string(&file).unwrap());
        for (first, second) in crate_paths(&code) {
            let Some(target) = layer(&first) else {
                continue;
            };
            if own == 4 && target == 4 && first != own_module {
                let rank = |m: &str| DOMAINS.iter().position(|d| *d == m);
                if rank(&first) > rank(own_module) {
                    found.insert(format!("{rel}: imports {first}, a later domain"));
                }
            }
            if target > own || (own == 4 && target == 4 && first != own_module && second == "store")
            {
                let what = if target > own {
                    first
                } else {
                    format!("{first}::store")
                };
                found.insert(format!("{rel}: imports {what}"));
            }
        }
        if own == 4 || own_module == "storage" {
            for table in tables_named(&code) {
                if owner(&table) != Some(own_module) {
                    found.insert(format!("{rel}: touches {table}"));
                }
            }
        }
        let in_store =
            own_module == "storage" || rel.ends_with("/store.rs") || rel.contains("/store/");
        if !in_store && (code.contains("diesel::") || code.contains("use diesel")) {
            found.insert(format!("{rel}: uses diesel"));
        }
    }
    found
}

#[test]
fn imports_run_only_down_the_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = violations(root);
    let known: BTreeSet<String> = KNOWN.iter().map(|s| (*s).to_owned()).collect();
    let new: Vec<&String> = found.difference(&known).collect();
    let gone: Vec<&String> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "imports that break the layering (ARCHITECTURE.md, \"Layers\"): {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "fixed, so take them off KNOWN in tests/api/layers.rs: {gone:#?}"
    );
}
