//! The layering rules of ARCHITECTURE.md, read from the code's own paths:
//!
//! 1. `crate::` paths point only to the same layer or lower ones:
//!    core < storage < runtime < realtime < domains < server.
//! 2. A domain never reaches into another domain's `store`.
//! 3. diesel is used only in storage and in the domains' `store` rooms
//!    (`store.rs`, or `store/` with a file per table or job).
//!
//! `KNOWN` lists what still breaks a rule (being moved, see issue 14); the
//! test also fails when an entry there no longer breaks it, so the list only
//! shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const DOMAINS: &[&str] = &[
    "accounts",
    "chat",
    "social",
    "commerce",
    "rebates",
    "trips",
    "animals",
    "moderation",
];

/// Violations not yet moved out: "file: what".
const KNOWN: &[&str] = &[
    // Reads of another domain's tables, to go through the owner's handle,
    // a hook trait or events.
    "src/animals/store.rs: imports commerce::store",
    "src/chat/store/requests.rs: imports accounts::store",
    "src/commerce/store/catalog.rs: imports accounts::store",
    "src/commerce/store/catalog.rs: imports animals::store",
    "src/commerce/store/order_writes.rs: imports accounts::store",
    "src/commerce/store/order_writes.rs: imports animals::store",
    "src/commerce/store/order_writes.rs: imports rebates::store",
    "src/commerce/store/queries.rs: imports accounts::store",
    "src/commerce/store/reviews.rs: imports accounts::store",
    // Admin order search and stats read commerce's tables (they did before
    // through modules not yet called store).
    "src/moderation/http.rs: imports commerce::store",
    "src/moderation/store.rs: imports commerce::store",
    "src/commerce/http/catalog.rs: imports animals::store",
    "src/commerce/timers.rs: imports animals::store",
    "src/social/store.rs: imports accounts::store",
    "src/social/store.rs: imports chat::store",
    "src/trips/store/mod.rs: imports chat::store",
    // diesel outside the stores: executor handlers and group-commit jobs
    // that still live beside actors and routes, to move into the stores.
    "src/chat/writer.rs: uses diesel",
    "src/rebates/http/promotion.rs: uses diesel",
    "src/social/notifier.rs: uses diesel",
];

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
