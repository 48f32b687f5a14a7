//! The Likelihood Ratio Attack (Carlini et al. 2022, "Membership Inference Attacks From First
//! Principles"). For each example, the logit-scaled confidences `phi = ln(p_y / (1 - p_y))` of
//! reference models trained with it (IN) and without it (OUT) are fitted with Gaussians; the
//! target's `phi` is scored by the likelihood ratio of the two (online), or by how far above the
//! OUT Gaussian it lies (offline, which needs no model trained on the example). Variances are
//! per example, or pooled over all examples ("global", for few reference models).

use crate::attack::{check_references, AttackOutput, AuditData, MembershipAttack};
use crate::Result;

/// LiRA, online or offline, per-example or global variance.
pub struct Lira {
    /// Score by the IN/OUT likelihood ratio (online) rather than by the OUT Gaussian alone (offline).
    pub online: bool,
    /// One variance pooled over all examples instead of one per example (for few reference models).
    pub global_variance: bool,
}

/// Floor on variances: a reference set that always gives the same `phi` (a constant predictor)
/// yields scores of 0, not a division by zero.
const VAR_FLOOR: f64 = 1e-12;

/// Mean and sum of squared deviations.
fn moments(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (m, v.iter().map(|x| (x - m) * (x - m)).sum())
}

/// Per-example Gaussian fits of one side (IN or OUT): means (None without observations),
/// unbiased variances (None with fewer than two), and the pooled within-example variance.
struct Side {
    mean: Vec<Option<f64>>,
    var: Vec<Option<f64>>,
    pooled: f64,
}

fn fit(obs: &[Vec<f64>]) -> Side {
    let (mut ss_all, mut dof_all) = (0.0, 0usize);
    let (mut mean, mut var) = (Vec::new(), Vec::new());
    for o in obs {
        let (m, ss) = moments(o);
        mean.push((!o.is_empty()).then_some(m));
        var.push((o.len() >= 2).then(|| ss / (o.len() - 1) as f64));
        if o.len() >= 2 {
            ss_all += ss;
            dof_all += o.len() - 1;
        }
    }
    let pooled = if dof_all > 0 {
        ss_all / dof_all as f64
    } else {
        // No example has two observations on this side: fall back to the spread across
        // examples, the only variance there is.
        let all: Vec<f64> = mean.iter().flatten().copied().collect();
        let (_, ss) = moments(&all);
        ss / all.len().saturating_sub(1).max(1) as f64
    };
    Side { mean, var, pooled }
}

/// Keep as many IN as OUT observations of each example (the first ones, in reference order)
/// when it has both. In a balanced design the target is one of the models, so the references
/// hold one IN observation fewer for the target's members than for its non-members (K/2 - 1
/// against K/2): the count itself reveals membership, and Gaussians fitted on 3 against 4
/// observations score members systematically lower than non-members even when nothing leaks
/// (AUC 0.44 with 8 models). With equal counts the fits are equally noisy for both.
fn equalize(ins: &mut [Vec<f64>], outs: &mut [Vec<f64>]) {
    for (a, b) in ins.iter_mut().zip(outs.iter_mut()) {
        if !a.is_empty() && !b.is_empty() {
            let k = a.len().min(b.len());
            a.truncate(k);
            b.truncate(k);
        }
    }
}

fn log_normal_pdf(x: f64, mean: f64, var: f64) -> f64 {
    -0.5 * ((x - mean) * (x - mean) / var + var.ln() + std::f64::consts::TAU.ln())
}

impl Lira {
    /// LiRA with the given mode (see the fields).
    pub fn new(online: bool, global_variance: bool) -> Self {
        Lira {
            online,
            global_variance,
        }
    }
}

impl MembershipAttack for Lira {
    fn name(&self) -> String {
        let mut s = String::from("lira");
        if !self.online {
            s.push_str("-offline");
        }
        if self.global_variance {
            s.push_str("-global");
        }
        s
    }

    fn references_needed(&self) -> usize {
        if self.online {
            2
        } else {
            1
        }
    }

    fn attack(&self, data: &AuditData) -> Result<AttackOutput> {
        check_references(&self.name(), data, self.references_needed())?;
        let n = data.target.len();
        let (mut ins, mut outs) = (vec![Vec::new(); n], vec![Vec::new(); n]);
        for (r, members) in data.references.iter().zip(data.reference_members) {
            for i in 0..n {
                let phi = r.logit_confidence(i);
                if members[i] {
                    ins[i].push(phi);
                } else {
                    outs[i].push(phi);
                }
            }
        }
        equalize(&mut ins, &mut outs);
        let (fin, fout) = (fit(&ins), fit(&outs));
        // Where one side has no observation, shift the other side's mean by the average IN-OUT
        // gap of the examples that have both (rare with balanced reference sets).
        let gaps: Vec<f64> = (0..n)
            .filter_map(|i| Some(fin.mean[i]? - fout.mean[i]?))
            .collect();
        let gap = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
        let var = |side: &Side, i: usize| {
            let v = if self.global_variance {
                side.pooled
            } else {
                side.var[i].unwrap_or(side.pooled)
            };
            v.max(VAR_FLOOR)
        };
        let scores = (0..n)
            .map(|i| {
                let phi = data.target.logit_confidence(i);
                let m_out = fout.mean[i].or(fin.mean[i].map(|m| m - gap)).unwrap_or(0.0);
                let v_out = var(&fout, i);
                if self.online {
                    let m_in = fin.mean[i].unwrap_or(m_out + gap);
                    log_normal_pdf(phi, m_in, var(&fin, i)) - log_normal_pdf(phi, m_out, v_out)
                } else {
                    // One-sided test: monotone in Pr[Z < phi] for Z ~ N(m_out, v_out).
                    (phi - m_out) / v_out.sqrt()
                }
            })
            .collect();
        Ok(AttackOutput {
            scores,
            threshold: None,
        })
    }
}
