//! Stored rule sets: every `PUT` a new version; a rebate is computed with the
//! version in force when its order was paid.

use std::cell::RefCell;
use std::rc::Rc;

use diesel::prelude::*;

use crate::core::error::ApiError;
use crate::core::ids::IdGenerator;
use crate::rebates::rules::{RuleSet, RuleSetSpec};
use crate::storage::schema::rebate_rule_sets;
use crate::storage::{direct, DbConn};

pub fn put_rule_set(
    conn: &mut DbConn,
    ids: &IdGenerator,
    admin: i64,
    spec: &RuleSetSpec,
    now: i64,
) -> Result<i64, ApiError> {
    spec.validate().map_err(ApiError::invalid_input)?;
    let version = ids.next_id();
    diesel::insert_into(rebate_rule_sets::table)
        .values((
            rebate_rule_sets::version.eq(version),
            rebate_rule_sets::rules
                .eq(serde_json::to_string(&spec.rules).map_err(ApiError::internal)?),
            rebate_rule_sets::referral_levels_bps
                .eq(serde_json::to_string(&spec.referral_levels_bps).map_err(ApiError::internal)?),
            rebate_rule_sets::hold_seconds.eq(spec.hold_seconds),
            rebate_rule_sets::created_by.eq(admin),
            rebate_rule_sets::created_at_ms.eq(now),
        ))
        .execute(conn)?;
    Ok(version)
}

fn spec_of(rules: String, levels: String, hold: i64) -> Result<RuleSetSpec, ApiError> {
    Ok(RuleSetSpec {
        rules: serde_json::from_str(&rules).map_err(ApiError::internal)?,
        referral_levels_bps: serde_json::from_str(&levels).map_err(ApiError::internal)?,
        hold_seconds: hold,
    })
}

/// The rule set in force at `at_ms` (the newest one created at or before it).
pub fn rule_set_at(
    conn: &mut DbConn,
    at_ms: i64,
) -> Result<Option<(i64, RuleSetSpec, RuleSet)>, ApiError> {
    newest_row(conn, at_ms)?
        .map(|(v, r, l, h, _)| version_of(v, r, l, h))
        .transpose()
}

/// (version, rules, referral levels, hold, created at) of the newest set
/// created at or before `at_ms`.
type RuleSetRow = (i64, String, String, i64, i64);

fn newest_row(conn: &mut DbConn, at_ms: i64) -> Result<Option<RuleSetRow>, ApiError> {
    Ok(direct::first(
        conn,
        rebate_rule_sets::table
            .filter(rebate_rule_sets::created_at_ms.le(at_ms))
            .order(rebate_rule_sets::version.desc())
            .select((
                rebate_rule_sets::version,
                rebate_rule_sets::rules,
                rebate_rule_sets::referral_levels_bps,
                rebate_rule_sets::hold_seconds,
                rebate_rule_sets::created_at_ms,
            )),
    )?)
}

thread_local! {
    /// The newest rule set as one batch attempt read it: (attempt, version,
    /// its start, the set), on a committer thread (see [`rule_set_in_force`]).
    static NEWEST: RefCell<Option<(u64, Option<Rc<Newest>>)>> = const { RefCell::new(None) };
}

/// The newest stored rule set and when it took effect.
pub struct Newest {
    pub version: i64,
    created_at_ms: i64,
    pub set: RuleSet,
}

/// The rule set in force at `at_ms`, as [`rule_set_at`] finds it, read at
/// most once per group-commit batch: every paid order of a batch needs it, and
/// a read per order was a round trip per order on PostgreSQL. Within a batch
/// attempt (one transaction) the newest set is read once and serves every
/// order paid at or after its start, which is exactly what `rule_set_at` would
/// answer; an order paid before it (a late reconcile) reads its own. A rule
/// set stored while the batch runs is as if stored after it, as it would be
/// for a read made at the batch's start. Outside a batch it simply reads.
pub fn rule_set_in_force(conn: &mut DbConn, at_ms: i64) -> Result<Option<Rc<Newest>>, ApiError> {
    let Some(batch) = crate::storage::appends::batch() else {
        return at(conn, at_ms);
    };
    let memo = NEWEST.with(|m| match &*m.borrow() {
        Some((b, newest)) if *b == batch => Some(newest.clone()),
        _ => None,
    });
    let newest = match memo {
        Some(newest) => newest,
        None => {
            let newest = at(conn, i64::MAX)?;
            NEWEST.with(|m| *m.borrow_mut() = Some((batch, newest.clone())));
            newest
        }
    };
    match newest {
        Some(n) if n.created_at_ms <= at_ms => Ok(Some(n)),
        // Paid before the newest set (or there is none): as stored for that time.
        Some(_) => at(conn, at_ms),
        None => Ok(None),
    }
}

fn at(conn: &mut DbConn, at_ms: i64) -> Result<Option<Rc<Newest>>, ApiError> {
    let row = newest_row(conn, at_ms)?;
    row.map(|(v, r, l, h, created_at_ms)| {
        version_of(v, r, l, h).map(|(version, _, set)| {
            Rc::new(Newest {
                version,
                created_at_ms,
                set,
            })
        })
    })
    .transpose()
}

pub fn rule_set_version(
    conn: &mut DbConn,
    version: i64,
) -> Result<Option<(i64, RuleSetSpec, RuleSet)>, ApiError> {
    let row: Option<(i64, String, String, i64)> = rebate_rule_sets::table
        .find(version)
        .select((
            rebate_rule_sets::version,
            rebate_rule_sets::rules,
            rebate_rule_sets::referral_levels_bps,
            rebate_rule_sets::hold_seconds,
        ))
        .first(conn)
        .optional()?;
    row.map(|(v, r, l, h)| version_of(v, r, l, h)).transpose()
}

fn version_of(
    v: i64,
    r: String,
    l: String,
    h: i64,
) -> Result<(i64, RuleSetSpec, RuleSet), ApiError> {
    let spec = spec_of(r, l, h)?;
    let set = spec
        .validate()
        .map_err(|e| ApiError::internal(anyhow::anyhow!("stored rule set {v} invalid: {e}")))?;
    Ok((v, spec, set))
}
