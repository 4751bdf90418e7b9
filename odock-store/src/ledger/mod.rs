//! The durable side of budgets and quotas: the ledgers' rules and window totals in SQL.
//!
//! Admission happens in memory ([`odock_core::InMemoryLedger`], one process) or in Redis (several
//! replicas); the database is the system of record they start from and write back to:
//! - [`SqlRuleSource`] reads an organisation's active budgets and quotas and the stored totals of
//!   their windows that have not ended (a [`RuleSource`](odock_core::RuleSource)).
//! - [`apply_charges`] adds settled amounts ([`WindowCharge`](odock_core::ledger::WindowCharge)s) to `budget_windows` /
//!   `quota_windows`, creating rows lazily. The usage writer calls it in the transaction that
//!   stores the records the charges belong to, for the records it newly stored only.
//! - [`window_used`] and [`ensure_window`] serve the Redis ledger's rebuild of a window it lost.
//!
//! `reserved` columns are not written: holds live with their requests, in memory or in Redis, and
//! the admin API reads their live totals from there.

mod rules;
mod windows;

#[cfg(test)]
mod tests;

pub use rules::SqlRuleSource;
pub use windows::{apply_charges, ensure_window, window_used};
