//! Stored rule sets: every `PUT` a new version; a rebate is computed with the
//! version in force when its order was paid.

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
    let row: Option<(i64, String, String, i64)> = direct::first(
        conn,
        rebate_rule_sets::table
            .filter(rebate_rule_sets::created_at_ms.le(at_ms))
            .order(rebate_rule_sets::version.desc())
            .select((
                rebate_rule_sets::version,
                rebate_rule_sets::rules,
                rebate_rule_sets::referral_levels_bps,
                rebate_rule_sets::hold_seconds,
            )),
    )?;
    row.map(|(v, r, l, h)| version_of(v, r, l, h)).transpose()
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
