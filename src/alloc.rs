//! The process's memory allocator: mimalloc, tuned to give memory back soon.
//!
//! glibc's malloc and free were about a sixth of callhook's CPU under load; with mimalloc a
//! delivery and a single-event post each cost about a tenth less CPU (BENCHMARKS.md, issue
//! 15, fifth pass). Its defaults keep memory, though: on Linux, arenas are committed eagerly
//! and freed pages are given back a second later (and with transparent huge pages, memory
//! comes in 2 MiB pages). callhook builds it without huge pages (the `no_thp` feature), and
//! [`tune`] commits arena memory as it is used and gives freed pages back after 10 ms, which
//! keeps the peak RSS within about 10 MiB of glibc's (16 MiB more without it).
//!
//! The `callhook` binary installs [`MiMalloc`] as its global allocator; the library only
//! sets its options.

pub use mimalloc::MiMalloc;

use std::ffi::{c_int, c_long};

unsafe extern "C" {
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
}

/// `mi_option_arena_eager_commit` in mimalloc v3's `mi_option_t` (`mimalloc.h`).
const ARENA_EAGER_COMMIT: c_int = 4;
/// `mi_option_purge_delay`, in milliseconds.
const PURGE_DELAY: c_int = 15;

/// The defaults of those two options in the mimalloc built in: [`tune`] changes them only when
/// it reads these, so a mimalloc whose options were numbered otherwise is left as it is (and
/// the unit test below fails).
const DEFAULTS: [(c_int, c_long); 2] = [(ARENA_EAGER_COMMIT, 2), (PURGE_DELAY, 1000)];

/// Sets mimalloc's options; call first thing in `main`, before the first threads start.
/// Options set in the environment (`MIMALLOC_PURGE_DELAY`, …) are kept.
pub fn tune() {
    // SAFETY: reading and setting options is allowed at any time; the numbers are checked
    // against the defaults they must have.
    unsafe {
        if DEFAULTS.iter().all(|&(o, v)| mi_option_get(o) == v) {
            mi_option_set(ARENA_EAGER_COMMIT, 0);
            mi_option_set(PURGE_DELAY, 10);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option numbers [`tune`] uses are those of the mimalloc built in: each reads its
    /// documented default (none of these tests changes them).
    #[test]
    fn the_option_numbers_match_the_mimalloc_built_in() {
        for (o, v) in DEFAULTS {
            assert_eq!(unsafe { mi_option_get(o) }, v, "mimalloc option {o}");
        }
    }
}
