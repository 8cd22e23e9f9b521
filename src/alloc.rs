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
//! taken around every allocation). The 1 KiB chunks of SQLite's in-memory journals are kept
//! for the thread's next journal (up to 8 MiB a thread) instead of going back to mimalloc,
//! which would give their pages back to the system 10 ms later and fault them in again with the
//! writer's next transaction (BENCHMARKS.md, issue 15, sixteenth pass).

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

/// The size of SQLite's in-memory journal chunks (`MEMJOURNAL_DFLT_FILECHUNKSIZE` with its
/// header): with `temp_store = memory`, every page a savepoint or a statement journal keeps is
/// copied into chunks of this size, allocated as the journal grows and freed when it ends.
const CHUNK: usize = 1024;

/// Chunks one thread keeps for its next journal (8 MiB): with a hundred accounts one
/// transaction journals 1,500 pages and more (3,000 chunks), and chunks given back to mimalloc
/// left whole pages free, which it returned to the system 10 ms later (see [`tune`]) and the
/// next transaction faulted in again. With 2 MiB kept, a third of that cost was left.
const KEPT_CHUNKS: usize = 8192;

/// Freed chunks of [`CHUNK`] bytes, kept by the thread that freed them.
struct Chunks(Vec<*mut c_void>);

impl Drop for Chunks {
    fn drop(&mut self) {
        for p in self.0.drain(..) {
            // SAFETY: each pointer came from mi_malloc and was freed by nobody since.
            unsafe { mi_free(p) }
        }
    }
}

thread_local! {
    static KEPT: std::cell::RefCell<Chunks> = const { std::cell::RefCell::new(Chunks(Vec::new())) };
}

// SQLite passes sizes as positive `int`s; mimalloc aligns to at least the 8 bytes it needs.
unsafe extern "C" fn sqlite_malloc(n: c_int) -> *mut c_void {
    let n = n.max(0) as usize;
    // A size in the chunks' size class (mimalloc's bin below 1024 ends at 896).
    if n > 896 && n <= CHUNK {
        let kept = KEPT
            .try_with(|k| k.try_borrow_mut().ok().and_then(|mut k| k.0.pop()))
            .ok()
            .flatten();
        if let Some(p) = kept {
            return p;
        }
    }
    unsafe { mi_malloc(n) }
}
unsafe extern "C" fn sqlite_free(p: *mut c_void) {
    if !p.is_null() && unsafe { mi_usable_size(p) } == CHUNK {
        let kept = KEPT
            .try_with(|k| match k.try_borrow_mut() {
                Ok(mut k) if k.0.len() < KEPT_CHUNKS => {
                    k.0.push(p);
                    true
                }
                _ => false,
            })
            .unwrap_or(false);
        if kept {
            return;
        }
    }
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

    /// A freed journal chunk is the next one allocated on the same thread; other sizes go
    /// back to mimalloc, and a thread keeps at most [`KEPT_CHUNKS`].
    #[test]
    fn journal_chunks_are_kept_for_the_next_journal() {
        std::thread::spawn(|| unsafe {
            let a = sqlite_malloc(1000);
            let b = sqlite_malloc(1024);
            assert_eq!(mi_usable_size(a), CHUNK);
            sqlite_free(a);
            assert_eq!(sqlite_malloc(1020), a, "the freed chunk is used again");
            sqlite_free(b);
            sqlite_free(a);
            assert_eq!(KEPT.with(|k| k.borrow().0.len()), 2);
            // Another size class is not kept.
            let small = sqlite_malloc(100);
            sqlite_free(small);
            assert_eq!(KEPT.with(|k| k.borrow().0.len()), 2);
            let many: Vec<_> = (0..KEPT_CHUNKS + 10).map(|_| sqlite_malloc(1024)).collect();
            assert_eq!(KEPT.with(|k| k.borrow().0.len()), 0);
            for p in many {
                sqlite_free(p);
            }
            assert_eq!(KEPT.with(|k| k.borrow().0.len()), KEPT_CHUNKS);
        })
        .join()
        .unwrap();
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
