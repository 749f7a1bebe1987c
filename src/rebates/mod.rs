//! Rebates (返利) and referral commissions (分销): rules, the per-order rebate
//! actor, the append-only wallet ledger, withdrawals, and the audit.

pub mod actor;
pub mod handle;
pub mod hooks;
pub mod http;
pub mod model;
pub mod rules;
pub mod store;
pub mod tx;

pub use handle::Rebates;
