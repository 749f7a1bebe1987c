//! The rebate domain's store: every query and write of its tables (rule
//! sets, rebates, the wallet ledger, withdrawals), as plain functions on a
//! connection that the rebate actors, the settlement timer, routes, `tandem
//! audit` and the property test call.

pub mod audit;
pub mod engine;
pub mod ledger;
pub mod promotion;
pub mod requests;
pub mod rule_sets;
pub mod withdrawals;
