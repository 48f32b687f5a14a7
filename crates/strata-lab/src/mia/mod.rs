//! Membership inference, as one path: a balanced design says who trains on what
//! ([`design`]); models are trained on it (by `mia audit` with strata's networks, or by the
//! user anywhere else); their outputs on the pool are read ([`outputs`]) and scored by every
//! attack ([`score`], [`strata_privacy::score`]); the report reads the result alike ([`report`]).

pub mod audit;
pub mod design;
pub mod models;
pub mod outputs;
pub mod report;
pub mod score;

pub use audit::{run, AuditArgs, AuditResult, Origin};
