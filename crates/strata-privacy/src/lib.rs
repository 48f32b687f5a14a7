//! Membership inference: given a model's released predictions, how well can an attacker tell
//! the examples it was trained on from others of the same distribution?
//!
//! * [`outputs::Released`]: what the attacker sees, after an output [`defense::Defense`];
//! * [`attack::MembershipAttack`]: one trait for every attack: global thresholds (loss,
//!   confidence, entropy, modified entropy), ML-Leaks, [`shokri::Shokri`], [`lira::Lira`],
//!   [`rmia::Rmia`] (which works with a single reference model);
//! * [`metrics`]: ROC, AUC, TPR at 0.1% and 1% FPR, membership advantage, bootstrap intervals;
//! * [`protocol`]: which pool examples each model trains on (Carlini et al.'s balanced design);
//! * [`score`]: every attack on one target or on each model in turn, measured against the design.
//!
//! The crate trains no network: the audit (in strata-lab) trains the target and the reference
//! models with strata-nn and hands their logits here.

pub mod attack;
pub mod defense;
mod error;
pub mod lira;
pub mod metrics;
pub mod mlp;
pub mod outputs;
pub mod protocol;
pub mod rmia;
pub mod score;
pub mod shokri;

pub use attack::{attack_by_name, AttackOutput, AuditData, MembershipAttack, ATTACK_NAMES};
pub use defense::Defense;
pub use error::{PrivacyError, Result};
pub use metrics::{metrics, Metrics, Roc};
pub use outputs::Released;
