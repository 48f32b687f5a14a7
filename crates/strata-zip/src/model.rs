//! The model spec: which predictor, its sizes, hyperparameters and seed. It is stored in every
//! container, so a file always says how it was made and the decoder needs no flags.

use crate::error::{Result, ZipError};
use crate::rnn::{Cell, RnnSpec};
use crate::varint::{self, Reader};

/// Which predictor drives the coder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Context mixing only (the fast default).
    Cm,
    /// A recurrent network alone, trained while coding (DeepZip's adaptive mode).
    Rnn(Cell),
    /// Context mixing with the network's prediction as two more mixer inputs.
    CmRnn(Cell),
}

/// Everything that fixes the model, as written in the container.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Which predictor drives the coder.
    pub kind: Kind,
    /// Recurrent layers, 1-4 (unused by [`Kind::Cm`], as are the fields below).
    pub layers: u32,
    /// Units per recurrent layer, 1-1024.
    pub hidden: u32,
    /// Truncated backpropagation-through-time length, in symbols, 1-256.
    pub bptt: u32,
    /// Learning rate of the network's online training, in (0, 1].
    pub lr: f32,
    /// Seed of the network's initial weights (coder and decoder must agree on it).
    pub seed: u64,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            kind: Kind::Cm,
            layers: 1,
            hidden: 32,
            bptt: 16,
            lr: 0.005,
            seed: 0,
        }
    }
}

/// The accepted model names, for help texts.
pub const MODEL_HELP: &str = "cm | lstm | gru | cm+lstm | cm+gru, optionally with \
    :layers=L,hidden=H,bptt=T,lr=R,seed=S (e.g. cm+lstm:hidden=64)";

impl ModelSpec {
    /// Parses `cm`, `lstm:hidden=64,layers=2`, `cm+gru:seed=3`, ...
    pub fn parse(s: &str) -> Result<Self> {
        let (name, params) = s.split_once(':').unwrap_or((s, ""));
        let mut m = ModelSpec {
            kind: match name.trim() {
                "cm" => Kind::Cm,
                "lstm" => Kind::Rnn(Cell::Lstm),
                "gru" => Kind::Rnn(Cell::Gru),
                "cm+lstm" => Kind::CmRnn(Cell::Lstm),
                "cm+gru" => Kind::CmRnn(Cell::Gru),
                other => {
                    return Err(ZipError::InvalidModel(format!(
                        "unknown model {other:?}; use {MODEL_HELP}"
                    )))
                }
            },
            ..ModelSpec::default()
        };
        // Measured on text: LSTMs learn fastest online near 1e-2; GRUs grow unstable there.
        if m.cell() == Some(Cell::Lstm) {
            m.lr = 0.01;
        }
        for kv in params.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                ZipError::InvalidModel(format!("{kv:?} is not KEY=VALUE; use {MODEL_HELP}"))
            })?;
            let bad = || ZipError::InvalidModel(format!("bad value {v:?} for {k}"));
            match k.trim() {
                "layers" => m.layers = v.trim().parse().map_err(|_| bad())?,
                "hidden" => m.hidden = v.trim().parse().map_err(|_| bad())?,
                "bptt" => m.bptt = v.trim().parse().map_err(|_| bad())?,
                "lr" => m.lr = v.trim().parse().map_err(|_| bad())?,
                "seed" => m.seed = v.trim().parse().map_err(|_| bad())?,
                other => {
                    return Err(ZipError::InvalidModel(format!(
                        "unknown model parameter {other:?}; use layers, hidden, bptt, lr, seed"
                    )))
                }
            }
        }
        m.validate()?;
        Ok(m)
    }

    /// Checks the sizes a decoder will be asked to build (also guards against corrupt headers
    /// asking for absurd networks).
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(ZipError::InvalidModel(what));
        if !(1..=4).contains(&self.layers) {
            return bad(format!("layers must be 1-4, not {}", self.layers));
        }
        if !(1..=1024).contains(&self.hidden) {
            return bad(format!("hidden must be 1-1024, not {}", self.hidden));
        }
        if !(1..=256).contains(&self.bptt) {
            return bad(format!("bptt must be 1-256, not {}", self.bptt));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return bad(format!("lr must be in (0, 1], not {}", self.lr));
        }
        Ok(())
    }

    /// The network's cell, if the model has one.
    pub fn cell(&self) -> Option<Cell> {
        match self.kind {
            Kind::Cm => None,
            Kind::Rnn(c) | Kind::CmRnn(c) => Some(c),
        }
    }

    /// The recurrent network for an alphabet of `symbols`.
    pub fn rnn_spec(&self, symbols: u32) -> Option<RnnSpec> {
        self.cell().map(|cell| RnnSpec {
            cell,
            layers: self.layers,
            hidden: self.hidden,
            symbols,
            bptt: self.bptt,
            lr: self.lr,
            seed: self.seed,
        })
    }

    /// The canonical name, e.g. `cm+lstm:layers=1,hidden=32,bptt=16,lr=0.005,seed=0`.
    pub fn name(&self) -> String {
        let cell = |c: Cell| match c {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
        };
        match self.kind {
            Kind::Cm => "cm".into(),
            Kind::Rnn(c) | Kind::CmRnn(c) => format!(
                "{}{}:layers={},hidden={},bptt={},lr={},seed={}",
                if matches!(self.kind, Kind::CmRnn(_)) {
                    "cm+"
                } else {
                    ""
                },
                cell(c),
                self.layers,
                self.hidden,
                self.bptt,
                self.lr,
                self.seed
            ),
        }
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let cell = |c: Cell| match c {
            Cell::Lstm => 0u8,
            Cell::Gru => 1,
        };
        let (k, c) = match self.kind {
            Kind::Cm => (0u8, 0u8),
            Kind::Rnn(c) => (1, cell(c)),
            Kind::CmRnn(c) => (2, cell(c)),
        };
        out.push(k);
        out.push(c);
        varint::put(out, self.layers as u64);
        varint::put(out, self.hidden as u64);
        varint::put(out, self.bptt as u64);
        out.extend_from_slice(&self.lr.to_bits().to_le_bytes());
        varint::put(out, self.seed);
    }

    pub(crate) fn read(r: &mut Reader) -> Result<Self> {
        let k = r.byte("model kind")?;
        let c = match r.byte("model cell")? {
            0 => Cell::Lstm,
            1 => Cell::Gru,
            x => return Err(ZipError::Corrupt(format!("unknown cell {x}"))),
        };
        let kind = match k {
            0 => Kind::Cm,
            1 => Kind::Rnn(c),
            2 => Kind::CmRnn(c),
            x => return Err(ZipError::Corrupt(format!("unknown model kind {x}"))),
        };
        let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let m = ModelSpec {
            kind,
            layers: small(r.varint("layers")?),
            hidden: small(r.varint("hidden")?),
            bptt: small(r.varint("bptt")?),
            lr: f32::from_bits(u32::from_le_bytes(
                r.bytes(4, "learning rate")?.try_into().unwrap_or([0; 4]),
            )),
            seed: r.varint("seed")?,
        };
        m.validate()
            .map_err(|e| ZipError::Corrupt(format!("model spec: {e}")))?;
        Ok(m)
    }
}
