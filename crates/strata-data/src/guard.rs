//! Turning a panic inside a third-party decoder into a typed error.
//!
//! The Parquet (and, defensively, Arrow) decoders can panic on some corrupt inputs instead of
//! returning an error. A corrupt file must never crash strata, so every call into them that
//! touches file bytes runs under [`no_panic`], which reports the panic as
//! [`DataError::Corrupt`] naming the file. While such a call runs, the panic's own message is
//! kept off stderr (the error line says it all); panics anywhere else print as before.

use crate::{DataError, Result};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Install, once per process, a panic hook that stays quiet inside [`no_panic`] and defers to
/// whatever hook was installed before it everywhere else.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Run `f`; a panic inside it becomes `DataError::Corrupt` for `path`, described as `what`
/// ("the Parquet reader").
pub(crate) fn no_panic<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_quiet_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let out = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    out.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(DataError::corrupt(
            path,
            format!(
                "corrupt file: {what} failed on it ({}); re-create the file",
                msg.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_corrupt_error() {
        let p = Path::new("x.parquet");
        let e = no_panic::<()>(p, "the Parquet reader", || panic!("bad\nthing"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "x.parquet: corrupt file: the Parquet reader failed on it (bad thing); re-create the file"
        );
        assert_eq!(no_panic(p, "r", || Ok(3)).unwrap(), 3);
        assert!(!GUARDED.with(Cell::get));
    }
}
