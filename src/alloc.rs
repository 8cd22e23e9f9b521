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
//!
//! SQLite, in C, allocates through its own functions, which call glibc's malloc: [`for_sqlite`]
//! routes them to mimalloc too, and turns off SQLite's allocation statistics (a global mutex
//! taken around every allocation).

pub use mimalloc::MiMalloc;

use std::ffi::{c_int, c_long, c_void};
use std::sync::OnceLock;

unsafe extern "C" {
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_malloc(size: usize) -> *mut c_void;
    fn mi_realloc(p: *mut c_void, size: usize) -> *mut c_void;
    fn mi_free(p: *mut c_void);
    fn mi_usable_size(p: *const c_void) -> usize;
    fn mi_good_size(size: usize) -> usize;
    fn sqlite3_config(op: c_int, ...) -> c_int;
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

/// SQLite's `sqlite3_mem_methods` (`sqlite3.h`).
#[repr(C)]
struct SqliteMemMethods {
    x_malloc: unsafe extern "C" fn(c_int) -> *mut c_void,
    x_free: unsafe extern "C" fn(*mut c_void),
    x_realloc: unsafe extern "C" fn(*mut c_void, c_int) -> *mut c_void,
    x_size: unsafe extern "C" fn(*mut c_void) -> c_int,
    x_roundup: unsafe extern "C" fn(c_int) -> c_int,
    x_init: unsafe extern "C" fn(*mut c_void) -> c_int,
    x_shutdown: unsafe extern "C" fn(*mut c_void),
    app_data: *mut c_void,
}

// SQLite passes sizes as positive `int`s; mimalloc aligns to at least the 8 bytes it needs.
unsafe extern "C" fn sqlite_malloc(n: c_int) -> *mut c_void {
    unsafe { mi_malloc(n.max(0) as usize) }
}
unsafe extern "C" fn sqlite_free(p: *mut c_void) {
    unsafe { mi_free(p) }
}
unsafe extern "C" fn sqlite_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    unsafe { mi_realloc(p, n.max(0) as usize) }
}
unsafe extern "C" fn sqlite_size(p: *mut c_void) -> c_int {
    unsafe { mi_usable_size(p).min(c_int::MAX as usize) as c_int }
}
unsafe extern "C" fn sqlite_roundup(n: c_int) -> c_int {
    unsafe { mi_good_size(n.max(0) as usize).min(c_int::MAX as usize) as c_int }
}
unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    0
}
unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}

static SQLITE_MEM: SqliteMemMethods = SqliteMemMethods {
    x_malloc: sqlite_malloc,
    x_free: sqlite_free,
    x_realloc: sqlite_realloc,
    x_size: sqlite_size,
    x_roundup: sqlite_roundup,
    x_init: sqlite_init,
    x_shutdown: sqlite_shutdown,
    app_data: std::ptr::null_mut(),
};

// SAFETY: the table is never written, and its pointer is null.
unsafe impl Sync for SqliteMemMethods {}

/// `SQLITE_CONFIG_MALLOC` and `SQLITE_CONFIG_MEMSTATUS` (`sqlite3.h`).
const SQLITE_CONFIG_MALLOC: c_int = 4;
const SQLITE_CONFIG_MEMSTATUS: c_int = 9;
#[cfg(test)]
const SQLITE_CONFIG_GETMALLOC: c_int = 5;

/// Routes SQLite's allocations to mimalloc and turns its allocation statistics off, once per
/// process, before the first connection opens. SQLite takes such settings only before it has
/// initialised itself: after that it refuses them (`SQLITE_MISUSE`) and keeps its own, which
/// is logged and harmless. Answers whether SQLite took both.
pub fn for_sqlite() -> bool {
    static TOOK: OnceLock<bool> = OnceLock::new();
    *TOOK.get_or_init(|| {
        // SAFETY: `sqlite3_config` is called before any connection is opened (the app calls
        // this before it opens the store; later, SQLite refuses it without harm), with the
        // argument types `sqlite3.h` documents for each option; the methods table is static
        // and its functions keep SQLite's contract (sizes in, a pointer aligned to 8 bytes or
        // null out).
        let took = unsafe {
            sqlite3_config(SQLITE_CONFIG_MALLOC, &raw const SQLITE_MEM) == 0
                && sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as c_int) == 0
        };
        if !took {
            tracing::debug!("SQLite was initialised already: it keeps its own allocator");
        }
        took
    })
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

    /// SQLite takes mimalloc as its allocator, and then works: a statement that allocates
    /// (a string built and measured) answers right. Run in a process of its own, where nothing
    /// opened SQLite before (this test starts itself again with only this test selected).
    #[test]
    fn sqlite_allocates_through_mimalloc() {
        if std::env::var_os("CALLHOOK_ALLOC_TEST_CHILD").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "alloc::tests::sqlite_allocates_through_mimalloc"])
                .args(["--nocapture", "--test-threads=1"])
                .env("CALLHOOK_ALLOC_TEST_CHILD", "1")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("1 passed"), "the child ran the test: {text}");
            return;
        }
        assert!(for_sqlite(), "SQLite refused the allocator");
        let mut now = std::mem::MaybeUninit::<SqliteMemMethods>::uninit();
        // SAFETY: GETMALLOC fills the table it is given.
        assert_eq!(
            unsafe { sqlite3_config(SQLITE_CONFIG_GETMALLOC, now.as_mut_ptr()) },
            0
        );
        let now = unsafe { now.assume_init() };
        assert!(std::ptr::fn_addr_eq(
            now.x_malloc,
            sqlite_malloc as unsafe extern "C" fn(c_int) -> *mut c_void
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect("sqlite::memory:")
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar("SELECT length(printf('%.*c', 100000, 'x'))")
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(n, 100000);
        });
    }
}
