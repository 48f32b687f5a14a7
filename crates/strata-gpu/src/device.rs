//! Where work runs: the user's [`DeviceChoice`], the [`Device`] it resolves to, and the one
//! place that says which [`Workload`]s the GPU engines can run ([`supports`]).
//!
//! The rules live here, next to the engines, so that every front end (the CLI, the analysis
//! runner, the Python package) falls back or refuses in the same way: under
//! [`DeviceChoice::Auto`] a workload the GPU cannot run goes to the CPU silently, under
//! [`DeviceChoice::Cuda`] it is an [`Unsupported`] error, and under [`DeviceChoice::Cpu`]
//! everything runs on the CPU. Messages name no command-line option: the front end that knows
//! its options adds the hint.

use crate::{Gpu, GpuError};
use std::sync::Arc;
use strata_nn::net::{Architecture, Net};

/// Where a computation runs, as the user asks for it (`cpu`, `cuda` or `auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// Always the CPU.
    Cpu,
    /// The first CUDA GPU; an error if there is none.
    Cuda,
    /// The first CUDA GPU if there is one, else the CPU.
    #[default]
    Auto,
}

impl DeviceChoice {
    /// Parse `cpu`, `cuda` (or `gpu`), `auto`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Some(DeviceChoice::Cpu),
            "cuda" | "gpu" => Some(DeviceChoice::Cuda),
            "auto" => Some(DeviceChoice::Auto),
            _ => None,
        }
    }

    /// The name as the user writes it.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Auto => "auto",
        }
    }

    /// Decide: `Ok(None)` is the CPU, `Ok(Some(gpu))` the first GPU. `Cuda` without a usable
    /// GPU is an error that says why; `Auto` falls back to the CPU silently.
    pub fn resolve(self) -> Result<Option<Arc<Gpu>>, GpuError> {
        match self {
            DeviceChoice::Cpu => Ok(None),
            DeviceChoice::Cuda => Gpu::first().map(Some),
            DeviceChoice::Auto => Ok(Gpu::first().ok()),
        }
    }

    /// The choice that applies to `w`, decided before any GPU is looked for (so a workload
    /// that stays on the CPU never pays for creating a context): `Cpu` stays `Cpu`; a
    /// workload the GPU engines cannot run ([`supports`]) makes `Auto` the CPU and `Cuda` an
    /// error; otherwise the choice is unchanged.
    pub fn for_workload(self, w: &Workload) -> Result<DeviceChoice, Unsupported> {
        match (self, supports(w)) {
            (DeviceChoice::Cpu, _) => Ok(DeviceChoice::Cpu),
            (_, Ok(())) => Ok(self),
            (DeviceChoice::Auto, Err(_)) => Ok(DeviceChoice::Cpu),
            (DeviceChoice::Cuda, Err(e)) => Err(e),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A kind of work a front end may send to the GPU, named so that [`supports`] can say, in one
/// place, whether the GPU engines run it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// HSIC / CKA with the linear kernel ([`crate::GpuHsic`]).
    LinearHsic,
    /// HSIC / CKA with the RBF kernel: implemented on the CPU only.
    RbfHsic,
    /// Inference with a trained network (evaluation, activation collection) on
    /// [`crate::GpuMlp`]'s engines.
    Network(Architecture),
    /// Binary (±1) matrix products on packed bits ([`crate::GpuBinaryGemm`]).
    BinaryGemm,
}

impl Workload {
    /// Inference with `net`.
    pub fn network(net: &Net) -> Self {
        Workload::Network(net.config.architecture)
    }
}

/// Why the GPU engines cannot run a [`Workload`]. The message says what is missing and names
/// no option, so any front end can add its own hint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// The RBF kernel has no GPU implementation.
    #[error("the RBF kernel runs on the CPU only")]
    RbfKernel,
    /// The GPU engines run MLPs only (convolutions stay on the CPU).
    #[error("the GPU engines run MLPs, and this is a {architecture} network")]
    NotMlp {
        /// The network's architecture, as [`Architecture::name`] writes it.
        architecture: &'static str,
    },
}

impl From<Unsupported> for GpuError {
    fn from(e: Unsupported) -> Self {
        GpuError::Unsupported(e.to_string())
    }
}

/// Whether the GPU engines can run `w`: the capability rules, in one place.
pub fn supports(w: &Workload) -> Result<(), Unsupported> {
    match w {
        Workload::LinearHsic | Workload::BinaryGemm => Ok(()),
        Workload::RbfHsic => Err(Unsupported::RbfKernel),
        Workload::Network(Architecture::Mlp) => Ok(()),
        Workload::Network(a) => Err(Unsupported::NotMlp {
            architecture: a.name(),
        }),
    }
}

/// A [`DeviceChoice`] resolved once (the GPU looked for, its context created), which then
/// says where each workload runs without looking again.
#[derive(Clone, Debug)]
pub struct Device {
    choice: DeviceChoice,
    gpu: Option<Arc<Gpu>>,
}

impl Device {
    /// Resolve `choice` ([`DeviceChoice::resolve`]): `Cuda` without a usable GPU is an error;
    /// `Auto` without one is the CPU.
    pub fn resolve(choice: DeviceChoice) -> Result<Self, GpuError> {
        Ok(Device {
            choice,
            gpu: choice.resolve()?,
        })
    }

    /// The CPU, whatever the machine has.
    pub fn cpu() -> Self {
        Device {
            choice: DeviceChoice::Cpu,
            gpu: None,
        }
    }

    /// What the user asked for.
    pub fn choice(&self) -> DeviceChoice {
        self.choice
    }

    /// The GPU, when the choice found one (`None`: everything runs on the CPU).
    pub fn gpu(&self) -> Option<&Arc<Gpu>> {
        self.gpu.as_ref()
    }

    /// Where `w` runs: `Ok(Some(gpu))` on the GPU, `Ok(None)` on the CPU. A workload the GPU
    /// engines cannot run goes to the CPU under `auto` and is an error under `cuda`
    /// ([`DeviceChoice::for_workload`]).
    pub fn for_workload(&self, w: &Workload) -> Result<Option<&Arc<Gpu>>, Unsupported> {
        Ok(match self.choice.for_workload(w)? {
            DeviceChoice::Cpu => None,
            _ => self.gpu.as_ref(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules() {
        use DeviceChoice::{Auto, Cpu, Cuda};
        let cnn = Workload::Network(Architecture::Cnn);
        for w in [
            Workload::LinearHsic,
            Workload::BinaryGemm,
            Workload::Network(Architecture::Mlp),
        ] {
            assert_eq!(supports(&w), Ok(()));
            for c in [Cpu, Cuda, Auto] {
                assert_eq!(c.for_workload(&w), Ok(c));
            }
        }
        for (w, e) in [
            (Workload::RbfHsic, Unsupported::RbfKernel),
            (
                cnn,
                Unsupported::NotMlp {
                    architecture: "cnn",
                },
            ),
        ] {
            assert_eq!(supports(&w), Err(e.clone()));
            assert_eq!(Cpu.for_workload(&w), Ok(Cpu));
            assert_eq!(Auto.for_workload(&w), Ok(Cpu));
            assert_eq!(Cuda.for_workload(&w), Err(e));
        }
        assert_eq!(
            Unsupported::NotMlp {
                architecture: "tiny10"
            }
            .to_string(),
            "the GPU engines run MLPs, and this is a tiny10 network"
        );
        let cpu = Device::cpu();
        assert_eq!(cpu.choice(), Cpu);
        assert!(cpu.gpu().is_none());
        assert!(matches!(cpu.for_workload(&Workload::LinearHsic), Ok(None)));
        assert!(matches!(cpu.for_workload(&cnn), Ok(None)));
    }
}
