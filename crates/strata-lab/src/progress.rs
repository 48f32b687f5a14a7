//! How long work tells its caller how far it has got, and what it has to say on the way.
//!
//! The library never prints: a command-line front end draws bars on a terminal, a CI log wants
//! plain lines, a test or the Python package wants nothing, and only the front end knows which.
//! So every function that runs long or has something to say takes a `&dyn Progress` from its
//! caller and reports through it: [`Task`]s for counted work, [`Progress::log`] for
//! informational lines, [`Progress::warn`] for lines a user must see even when they asked for
//! quiet. [`Silent`] reports nothing.

use std::sync::atomic::{AtomicU64, Ordering};

/// Where a run reports its progress. Shared by the threads of one run, hence `Send + Sync`.
pub trait Progress: Send + Sync {
    /// A counted piece of work: `total` steps of `unit` (0 while unknown), named `label`.
    fn task(&self, label: &str, unit: &str, total: u64) -> Box<dyn Task>;
    /// An informational line (what is being done, a figure on the way); a quiet front end
    /// drops it.
    fn log(&self, line: &str);
    /// A line the user must see even when quiet: data changed on reading, examples left out.
    fn warn(&self, line: &str);
}

/// One counted piece of work, from [`Progress::task`]. Dropping it without [`Task::finish`]
/// (an error on the way) leaves it as it was.
pub trait Task: Send + Sync {
    /// The number of steps, when it is known only after the work has started.
    fn set_total(&self, n: u64);
    /// `n` more steps done.
    fn inc(&self, n: u64);
    /// Steps done so far, set outright.
    fn set_position(&self, n: u64);
    /// Steps done so far.
    fn position(&self) -> u64;
    /// What the task is doing now (an epoch and its loss, the model being trained).
    fn set_message(&self, m: &str);
    /// The work is done: the task goes away.
    fn finish(&self);
}

/// Reports nothing; its tasks still count their position, for code that reads it back.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn task(&self, _label: &str, _unit: &str, _total: u64) -> Box<dyn Task> {
        Box::new(Count::default())
    }
    fn log(&self, _line: &str) {}
    fn warn(&self, _line: &str) {}
}

/// A [`Silent`] task: shows nothing, counts its position.
#[derive(Debug, Default)]
struct Count(AtomicU64);

impl Task for Count {
    fn set_total(&self, _n: u64) {}
    fn inc(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn set_position(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
    fn position(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn set_message(&self, _m: &str) {}
    fn finish(&self) {}
}

/// The progress of a step run inside a larger one (the runner's comparisons, each a whole
/// `compare::run`): its tasks and log lines are hidden behind the outer step's own, its warnings
/// go through.
pub struct WarningsOnly<'a>(pub &'a dyn Progress);

impl Progress for WarningsOnly<'_> {
    fn task(&self, label: &str, unit: &str, total: u64) -> Box<dyn Task> {
        Silent.task(label, unit, total)
    }
    fn log(&self, _line: &str) {}
    fn warn(&self, line: &str) {
        self.0.warn(line);
    }
}
