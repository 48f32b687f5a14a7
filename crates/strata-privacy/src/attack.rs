//! The attack trait and the attacks that need no model of their own: global thresholds on one
//! statistic of the released vector (Yeom et al. 2018's loss, confidence, entropy, Song &
//! Mittal 2021's modified entropy) and ML-Leaks' top posterior (Salem et al. 2019).

use crate::lira::Lira;
use crate::outputs::Released;
use crate::rmia::Rmia;
use crate::shokri::Shokri;
use crate::{metrics, PrivacyError, Result};

/// Everything an attack may look at: the target's released outputs on the audit pool and, for
/// attacks that simulate the target, reference (shadow) models' outputs on the same pool with
/// which pool examples each was trained on. Never the target's membership.
pub struct AuditData<'a> {
    /// The audited model's released outputs on the pool.
    pub target: &'a Released,
    /// Each reference (shadow) model's released outputs on the same pool.
    pub references: &'a [&'a Released],
    /// `reference_members[m][i]`: reference model `m` was trained on pool example `i`.
    pub reference_members: &'a [Vec<bool>],
}

/// An attack's answer: a score per pool example (higher = more likely a member) and, for
/// attacks that commit to a decision, the threshold at or above which they say "member".
#[derive(Clone, Debug)]
pub struct AttackOutput {
    /// One score per pool example; higher means more likely a member.
    pub scores: Vec<f64>,
    /// Score at or above which the attack says "member", if it commits to a decision.
    pub threshold: Option<f64>,
}

/// A membership-inference attack. Implement this to plug a new one into audits.
pub trait MembershipAttack: Send + Sync {
    /// The name it is selected by and reported under.
    fn name(&self) -> String;
    /// How many reference models it needs at least.
    fn references_needed(&self) -> usize {
        0
    }
    /// Score every pool example.
    fn attack(&self, data: &AuditData) -> Result<AttackOutput>;
}

/// Check that `data` holds at least `need` references, each covering the pool.
pub(crate) fn check_references(name: &str, data: &AuditData, need: usize) -> Result<()> {
    let got = data.references.len().min(data.reference_members.len());
    if got < need {
        return Err(PrivacyError::TooFewReferences {
            attack: name.into(),
            need,
            got,
        });
    }
    let n = data.target.len();
    for (r, m) in data.references.iter().zip(data.reference_members) {
        if r.len() != n || m.len() != n {
            return Err(PrivacyError::Mismatched {
                what: "reference outputs",
                got: r.len().min(m.len()),
                expected: n,
            });
        }
    }
    Ok(())
}

/// The statistic a threshold attack compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    /// Cross-entropy loss (Yeom et al. 2018): members have lower loss.
    Loss,
    /// Probability of the true class.
    Confidence,
    /// Entropy of the released vector: members get more peaked vectors.
    Entropy,
    /// Song & Mittal 2021's modified entropy, which also uses the label.
    ModifiedEntropy,
    /// The largest probability, label-free (ML-Leaks).
    Top,
}

impl Statistic {
    /// Score with "higher = member".
    pub fn score(self, r: &Released, i: usize) -> f64 {
        match self {
            Statistic::Loss => -r.loss(i),
            Statistic::Confidence => r.confidence(i),
            Statistic::Entropy => -r.entropy(i),
            Statistic::ModifiedEntropy => -r.modified_entropy(i),
            Statistic::Top => r.top(i),
        }
    }
}

/// A global threshold on one statistic. The ROC sweeps every threshold; the decision threshold
/// is the one that best separates the first reference model's members from its non-members
/// (one shadow model, as in ML-Leaks), when there is a reference.
pub struct Threshold {
    /// Name the attack is selected by and reported under (`loss`, `entropy`, ...).
    pub name: &'static str,
    /// The statistic thresholded.
    pub statistic: Statistic,
}

impl MembershipAttack for Threshold {
    fn name(&self) -> String {
        self.name.into()
    }

    fn attack(&self, data: &AuditData) -> Result<AttackOutput> {
        let t = data.target;
        let scores: Vec<f64> = (0..t.len()).map(|i| self.statistic.score(t, i)).collect();
        let threshold = match (data.references.first(), data.reference_members.first()) {
            (Some(r), Some(m)) if r.len() == m.len() => {
                let s: Vec<f64> = (0..r.len()).map(|i| self.statistic.score(r, i)).collect();
                best_threshold(&s, m)
            }
            _ => None,
        };
        Ok(AttackOutput { scores, threshold })
    }
}

/// The threshold with the highest balanced accuracy on (scores, membership), placed halfway
/// between two distinct scores; None when either class is empty.
pub fn best_threshold(scores: &[f64], is_member: &[bool]) -> Option<f64> {
    let roc = metrics::Roc::new(scores, is_member).ok()?;
    let mut best = (f64::NEG_INFINITY, None);
    for (k, p) in roc.points.iter().enumerate().skip(1) {
        let (f, t) = roc.rates(p);
        if t - f > best.0 {
            // Halfway to the next lower score generalizes better than the score itself.
            let below = roc
                .points
                .get(k + 1)
                .map_or(p.threshold - 1.0, |q| q.threshold);
            best = (t - f, Some(0.5 * (p.threshold + below)));
        }
    }
    best.1
}

/// Names of every built-in attack, in the order reports list them.
pub const ATTACK_NAMES: [&str; 12] = [
    "lira",
    "lira-offline",
    "lira-global",
    "lira-offline-global",
    "rmia",
    "rmia-offline",
    "shokri",
    "salem",
    "loss",
    "confidence",
    "entropy",
    "mentr",
];

/// A built-in attack by name (see [`ATTACK_NAMES`]); `shadows` is how many reference models
/// Shokri et al.'s attack trains its attack models on; `seed` seeds its attack models (and
/// RMIA's population draw, should one be configured).
pub fn attack_by_name(name: &str, shadows: usize, seed: u64) -> Result<Box<dyn MembershipAttack>> {
    let threshold = |name: &'static str, statistic| -> Box<dyn MembershipAttack> {
        Box::new(Threshold { name, statistic })
    };
    Ok(match name {
        "lira" => Box::new(Lira::new(true, false)),
        "lira-offline" => Box::new(Lira::new(false, false)),
        "lira-global" => Box::new(Lira::new(true, true)),
        "lira-offline-global" => Box::new(Lira::new(false, true)),
        "rmia" => Box::new(Rmia {
            seed,
            ..Rmia::new(true)
        }),
        "rmia-offline" => Box::new(Rmia {
            seed,
            ..Rmia::new(false)
        }),
        "shokri" => Box::new(Shokri::new(shadows, seed)),
        "salem" => threshold("salem", Statistic::Top),
        "loss" => threshold("loss", Statistic::Loss),
        "confidence" => threshold("confidence", Statistic::Confidence),
        "entropy" => threshold("entropy", Statistic::Entropy),
        "mentr" => threshold("mentr", Statistic::ModifiedEntropy),
        _ => {
            return Err(PrivacyError::Invalid(format!(
                "unknown attack '{name}'; choose from {}",
                ATTACK_NAMES.join(", ")
            )))
        }
    })
}
