//! Rebate rules: validation, matching and amounts. Pure functions.

use serde::{Deserialize, Serialize};

pub const MAX_RULES: usize = 200;
pub const MAX_REFERRAL_LEVELS: usize = 3;
pub const MAX_BPS: i64 = 10_000;
pub const MAX_HOLD_SECONDS: i64 = 10 * 365 * 86_400;

/// One rule as the admin sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    pub merchant_id: Option<i64>,
    #[schema(min_length = 1, max_length = 50)]
    pub category: Option<String>,
    #[schema(minimum = 0, maximum = 10000)]
    pub rate_bps: i64,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub fixed_cents: Option<i64>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub min_order_cents: Option<i64>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub cap_cents: Option<i64>,
    /// RFC 3339.
    pub starts_at: Option<String>,
    /// RFC 3339; the window is `[starts_at, ends_at)`.
    pub ends_at: Option<String>,
    pub priority: Option<i64>,
}

/// The whole rule set as the admin sends it (and `GET` returns it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSetSpec {
    /// The worst case (highest rate plus every level) may not exceed
    /// `TANDEM_REBATE_MAX_PAYOUT_BPS` of an order.
    #[schema(max_items = 200)]
    pub rules: Vec<RuleSpec>,
    /// Each 0-10,000 basis points: level 1 is the buyer's inviter.
    #[schema(max_items = 3)]
    pub referral_levels_bps: Vec<i64>,
    #[schema(minimum = 0, maximum = 315_360_000)]
    pub hold_seconds: i64,
}

/// A validated rule, times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub merchant_id: Option<i64>,
    pub category: Option<String>,
    pub rate_bps: i64,
    pub fixed_cents: i64,
    pub min_order_cents: i64,
    pub cap_cents: Option<i64>,
    pub starts_at_ms: Option<i64>,
    pub ends_at_ms: Option<i64>,
    pub priority: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub referral_levels_bps: Vec<i64>,
    pub hold_seconds: i64,
}

fn parse_time(s: &Option<String>, what: &str) -> Result<Option<i64>, String> {
    s.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|_| format!("{what} must be an RFC 3339 time"))
        })
        .transpose()
}

fn bps(v: i64, what: &str) -> Result<i64, String> {
    if (0..=MAX_BPS).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{what} must be 0 to 10000 basis points"))
    }
}

fn cents(v: Option<i64>, what: &str) -> Result<Option<i64>, String> {
    match v {
        Some(c) if !(0..=1_000_000_000_000).contains(&c) => {
            Err(format!("{what} must be 0 to 10^12"))
        }
        other => Ok(other),
    }
}

impl RuleSetSpec {
    pub fn validate(&self) -> Result<RuleSet, String> {
        if self.rules.len() > MAX_RULES {
            return Err(format!("at most {MAX_RULES} rules"));
        }
        if self.referral_levels_bps.len() > MAX_REFERRAL_LEVELS {
            return Err("at most 3 referral levels".into());
        }
        let referral_levels_bps = self
            .referral_levels_bps
            .iter()
            .enumerate()
            .map(|(i, v)| bps(*v, &format!("referral_levels_bps[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if !(0..=MAX_HOLD_SECONDS).contains(&self.hold_seconds) {
            return Err("hold_seconds must be 0 to 10 years".into());
        }
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            let n = r.name.chars().count();
            if n == 0 || n > 100 || r.name.chars().any(char::is_control) {
                return Err(format!("rules[{i}].name must be 1-100 characters"));
            }
            if r.merchant_id.is_some_and(|m| m <= 0) {
                return Err(format!("rules[{i}].merchant_id must be an id"));
            }
            if r.category
                .as_deref()
                .is_some_and(|c| c.is_empty() || c.chars().count() > 50)
            {
                return Err(format!("rules[{i}].category must be 1-50 characters"));
            }
            let starts_at_ms = parse_time(&r.starts_at, &format!("rules[{i}].starts_at"))?;
            let ends_at_ms = parse_time(&r.ends_at, &format!("rules[{i}].ends_at"))?;
            if let (Some(s), Some(e)) = (starts_at_ms, ends_at_ms) {
                if e <= s {
                    return Err(format!("rules[{i}]: ends_at must be after starts_at"));
                }
            }
            rules.push(Rule {
                name: r.name.clone(),
                merchant_id: r.merchant_id,
                category: r.category.clone(),
                rate_bps: bps(r.rate_bps, &format!("rules[{i}].rate_bps"))?,
                fixed_cents: cents(r.fixed_cents, &format!("rules[{i}].fixed_cents"))?.unwrap_or(0),
                min_order_cents: cents(r.min_order_cents, &format!("rules[{i}].min_order_cents"))?
                    .unwrap_or(0),
                cap_cents: cents(r.cap_cents, &format!("rules[{i}].cap_cents"))?,
                starts_at_ms,
                ends_at_ms,
                priority: r.priority.unwrap_or(0),
            });
        }
        Ok(RuleSet {
            rules,
            referral_levels_bps,
            hold_seconds: self.hold_seconds,
        })
    }
}

/// What a paid order looks like to the rules.
impl RuleSet {
    /// The largest share of an order this set can pay out, in basis points of
    /// its total: the highest rule rate plus every referral level. Fixed
    /// amounts (`fixed_cents`) are absolute, not a share of the order, and
    /// are bounded by `cap_cents` instead; they are not counted here.
    pub fn worst_payout_bps(&self) -> i64 {
        let rule = self.rules.iter().map(|r| r.rate_bps).max().unwrap_or(0);
        rule + self.referral_levels_bps.iter().sum::<i64>()
    }

    /// Refuses a set whose worst case pays out more than `max_bps` of an
    /// order, saying by how much.
    pub fn check_payout(&self, max_bps: i64) -> Result<(), String> {
        let worst = self.worst_payout_bps();
        if worst > max_bps {
            return Err(format!(
                "this rule set can pay out {worst} basis points of an order (its highest rule \
                 rate plus every referral level), more than the {max_bps} allowed \
                 (TANDEM_REBATE_MAX_PAYOUT_BPS)"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct PaidOrder<'a> {
    pub merchant_id: i64,
    pub categories: &'a [String],
    pub total_cents: i64,
    pub paid_at_ms: i64,
}

impl Rule {
    pub fn matches(&self, o: &PaidOrder<'_>) -> bool {
        self.merchant_id.is_none_or(|m| m == o.merchant_id)
            && self
                .category
                .as_ref()
                .is_none_or(|c| !o.categories.is_empty() && o.categories.iter().all(|x| x == c))
            && self.starts_at_ms.is_none_or(|s| o.paid_at_ms >= s)
            && self.ends_at_ms.is_none_or(|e| o.paid_at_ms < e)
            && o.total_cents >= self.min_order_cents
    }

    /// Merchant over category over global.
    fn specificity(&self) -> u8 {
        u8::from(self.merchant_id.is_some()) * 2 + u8::from(self.category.is_some())
    }

    /// `floor(total * rate_bps / 10000) + fixed_cents`, at most `cap_cents`.
    pub fn amount(&self, total_cents: i64) -> i64 {
        let amount = floor_bps(total_cents, self.rate_bps).saturating_add(self.fixed_cents);
        self.cap_cents.map_or(amount, |cap| amount.min(cap))
    }
}

/// `floor(total * bps / 10000)` without overflow, for non-negative inputs.
pub fn floor_bps(total_cents: i64, bps: i64) -> i64 {
    let v = i128::from(total_cents.max(0)) * i128::from(bps.max(0)) / 10_000;
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The winning rule: highest priority, then most specific, then earliest.
pub fn best_rule<'r>(rules: &'r [Rule], o: &PaidOrder<'_>) -> Option<&'r Rule> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.matches(o))
        .max_by(|(ia, a), (ib, b)| {
            a.priority
                .cmp(&b.priority)
                .then(a.specificity().cmp(&b.specificity()))
                // Earlier wins: reverse index order.
                .then(ib.cmp(ia))
        })
        .map(|(_, r)| r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(name: &str) -> Rule {
        Rule {
            name: name.into(),
            merchant_id: None,
            category: None,
            rate_bps: 100,
            fixed_cents: 0,
            min_order_cents: 0,
            cap_cents: None,
            starts_at_ms: None,
            ends_at_ms: None,
            priority: 0,
        }
    }

    fn order(cats: &[String]) -> PaidOrder<'_> {
        PaidOrder {
            merchant_id: 7,
            categories: cats,
            total_cents: 10_000,
            paid_at_ms: 1_000,
        }
    }

    #[test]
    fn priority_then_specificity_then_order() {
        let cats = vec!["flowers".to_string()];
        let global = rule("global");
        let cat = Rule {
            category: Some("flowers".into()),
            ..rule("cat")
        };
        let merch = Rule {
            merchant_id: Some(7),
            ..rule("merch")
        };
        let high = Rule {
            priority: 5,
            ..rule("high-global")
        };
        let rules = vec![global.clone(), cat.clone(), merch.clone()];
        assert_eq!(best_rule(&rules, &order(&cats)).unwrap().name, "merch");
        let rules = vec![global.clone(), cat.clone()];
        assert_eq!(best_rule(&rules, &order(&cats)).unwrap().name, "cat");
        let rules = vec![merch.clone(), high.clone()];
        assert_eq!(
            best_rule(&rules, &order(&cats)).unwrap().name,
            "high-global"
        );
        let rules = vec![rule("first"), rule("second")];
        assert_eq!(best_rule(&rules, &order(&cats)).unwrap().name, "first");
        // Category must hold for every item.
        let mixed = vec!["flowers".to_string(), "tea".to_string()];
        assert!(!cat.matches(&order(&mixed)));
        // Other merchant.
        assert!(!Rule {
            merchant_id: Some(8),
            ..rule("m8")
        }
        .matches(&order(&cats)));
    }

    #[test]
    fn window_edges_and_minimum() {
        let cats = vec![];
        let r = Rule {
            starts_at_ms: Some(1_000),
            ends_at_ms: Some(2_000),
            ..rule("w")
        };
        let at = |t| PaidOrder {
            paid_at_ms: t,
            ..order(&cats)
        };
        assert!(r.matches(&at(1_000)), "start is inclusive");
        assert!(r.matches(&at(1_999)));
        assert!(!r.matches(&at(2_000)), "end is exclusive");
        assert!(!r.matches(&at(999)));
        let m = Rule {
            min_order_cents: 10_000,
            ..rule("min")
        };
        assert!(m.matches(&order(&cats)));
        assert!(!m.matches(&PaidOrder {
            total_cents: 9_999,
            ..order(&cats)
        }));
    }

    #[test]
    fn amounts_floor_add_fixed_and_cap() {
        let r = Rule {
            rate_bps: 333,
            fixed_cents: 5,
            cap_cents: Some(40),
            ..rule("a")
        };
        assert_eq!(r.amount(999), 38); // floor(999 * 333 / 10000) = 33, + 5
        assert_eq!(r.amount(2_000), 40); // 66 + 5 capped
        assert_eq!(floor_bps(1, 9_999), 0);
        assert_eq!(floor_bps(10_001, 1), 1);
        assert_eq!(floor_bps(i64::MAX, 10_000), i64::MAX);
    }

    #[test]
    fn validation() {
        let ok = RuleSetSpec {
            rules: vec![RuleSpec {
                name: "r".into(),
                merchant_id: None,
                category: None,
                rate_bps: 500,
                fixed_cents: None,
                min_order_cents: None,
                cap_cents: None,
                starts_at: Some("2026-01-01T00:00:00Z".into()),
                ends_at: Some("2027-01-01T00:00:00Z".into()),
                priority: None,
            }],
            referral_levels_bps: vec![1_000, 500, 100],
            hold_seconds: 0,
        };
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.referral_levels_bps.push(1);
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.rules[0].rate_bps = 10_001;
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.rules[0].ends_at = Some("2025-01-01T00:00:00Z".into());
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.rules[0].ends_at = bad.rules[0].starts_at.clone();
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.referral_levels_bps[0] = -1;
        assert!(bad.validate().is_err());
    }

    proptest! {
        #[test]
        fn amount_is_floor_plus_fixed_capped(total in 0_i64..10_000_000_000, rate in 0_i64..=10_000, fixed in 0_i64..10_000, cap in proptest::option::of(0_i64..1_000_000)) {
            let r = Rule { rate_bps: rate, fixed_cents: fixed, cap_cents: cap, ..rule("p") };
            let a = r.amount(total);
            let exact = (total as i128) * (rate as i128);
            let floor = (exact / 10_000) as i64;
            // floor: never more than the exact share, less than one cent below it.
            prop_assert!((floor as i128) * 10_000 <= exact && exact < (floor as i128 + 1) * 10_000);
            let expected = cap.map_or(floor + fixed, |c| (floor + fixed).min(c));
            prop_assert_eq!(a, expected);
            prop_assert!(a >= 0);
        }
    }
}
