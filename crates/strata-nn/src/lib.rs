//! Networks whose activations strata studies: float and quantized MLPs and CNNs trained with
//! straight-through estimators (Hubara et al., "Quantized Neural Networks"), their model files,
//! bit-packed inference for binary (`w1a1`) networks.

pub mod attack;
pub mod binary_gemm;
mod engine;
pub mod error;
pub mod file;
pub mod limits;
pub mod net;
pub mod packed;
pub mod precision;
pub mod train;

pub use error::NnError;
pub use precision::Precision;
