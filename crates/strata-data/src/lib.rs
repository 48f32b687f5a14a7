//! Data for strata: the activation store, importers for the array files PyTorch and NumPy
//! users already have, and the small data sets the default run embeds.
//!
//! Everything that reads activations goes through [`open`], which detects the format from the
//! file's magic bytes (not its extension) and returns an [`Activations`] handle. The handle lists
//! the layers it holds and reads one layer, or streams rows of several layers batch by batch,
//! without loading the others. [`store::StoreWriter`] writes strata's own store while a network
//! runs, one batch of examples at a time.

pub mod dataset;
pub mod digits;
mod error;
pub mod fsutil;
mod guard;
pub mod memory;
pub mod mnist;
pub mod npy;
mod pth;
pub mod rng;
mod safetensors_error;
mod source;
pub mod store;
pub mod tabular;

pub use error::DataError;
pub use safetensors_error::{safetensors_error_message, safetensors_error_message_in};
pub use source::{open, Activations, BatchReader, Format, LayerInfo};

/// Result type of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
