//! An out-of-memory failure as one error line and exit status 1, instead of Rust's abort.
//!
//! strata checks every size it can foresee (array shapes, widths, counts) against the memory
//! available before allocating; this is the net under those checks. Rust's default reaction to a
//! failed allocation is `abort()` (a core dump and signal 6); [`OneLineOom`] wraps the system
//! allocator, and when it returns null it writes one line and exits. The line is formatted on the
//! stack, since the heap just failed. Under this allocator a failed `try_reserve` also ends the
//! process with this line (strata-zip's synthetic generators reserve that way; their lengths are
//! capped before they reserve). Destructors do not run: staging folders left behind are swept by
//! the next run that writes to the same place.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;

/// The system allocator, with a failed allocation reported as one line and exit status 1.
pub struct OneLineOom;

#[cold]
fn out_of_memory(bytes: usize) -> ! {
    let _ = std::io::stderr().write_fmt(format_args!(
        "error: out of memory: could not allocate {bytes} bytes (use a smaller --limit, \
         --batch-size or network, or free memory; if the command's sizes were small, please \
         report it as a strata bug)\n"
    ));
    std::process::exit(1)
}

// SAFETY: every method forwards to `System` with the same arguments and returns its result
// unchanged whenever it is not null; a null result never returns (the process exits).
unsafe impl GlobalAlloc for OneLineOom {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory(new_size);
        }
        p
    }
}
