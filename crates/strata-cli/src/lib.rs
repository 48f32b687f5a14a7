//! What the `strata` binary needs besides the pipeline library (`strata-lab`): the process-wide
//! allocator that reports an out-of-memory failure in one line.

pub mod oom;
