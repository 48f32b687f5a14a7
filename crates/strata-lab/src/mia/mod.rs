//! `strata mia audit`: train a target and reference models on random halves of a data pool,
//! attack the target with every selected membership-inference attack under every defense, and
//! report leakage beside the accuracy it costs.

pub mod audit;
pub mod models;
pub mod report;

pub use audit::{run, AuditArgs, AuditResult, Origin};
