//! A SQLite VFS that gathers the WAL's writes: the default VFS (`unix`) in every way but one,
//! a WAL file's frames are appended to a buffer of up to 1 MiB and written in pieces of 64 KiB
//! when a commit's last frame is in it, when the buffer is full, or before anything else
//! touches the file (a read, a sync, a truncate, its size, a write elsewhere, its close).
//!
//! SQLite writes each WAL frame as two writes (its 24-byte header, then the page), so a commit
//! of a thousand pages was two thousand `pwrite`s: with a hundred accounts they were 16 % of the
//! writer's time (BENCHMARKS.md, issue 15, sixteenth pass). Nothing a caller was told is
//! committed can be lost: a commit's last frame has the database size in its header (SQLite's
//! mark of a commit), and the buffer is written as soon as that frame's page has been written
//! (to the buffer or past it), before SQLite publishes the commit to readers and answers
//! `COMMIT`; after `kill -9` the kernel has every committed frame, as without the buffer.
//!
//! Only frames of a write transaction still open can wait in the buffer. Those of one that
//! ends without a commit (a rollback after SQLite spilled pages into the WAL) must never be
//! written: by then another connection may have written its own frames at the same offsets.
//! So the main database file is wrapped too, and each release of the WAL's write lock (through
//! its `xShmLock`, where SQLite takes and releases that lock) is counted per database; a
//! buffer filled before the latest release is thrown away instead of written. Only the holder
//! of the write lock writes frames, and a commit empties the buffer before the lock is
//! released, so that buffer can only hold frames no commit took. A WAL whose main file is not
//! open through this VFS buffers nothing, as no release could be seen. (`locking_mode =
//! EXCLUSIVE` keeps the WAL's index in the process and takes no such lock: callhook never sets
//! it, and with it a rollback's frames could be written later, so the VFS must not be used
//! that way.)

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rusqlite::ffi;

/// The VFS's name, for [`sqlx::sqlite::SqliteConnectOptions::vfs`].
pub const NAME: &str = "callhook-walbuf";
const NAME_C: &CStr = c"callhook-walbuf";

/// The most a WAL file buffers before writing.
const CAPACITY: usize = 1 << 20;

/// The most one write hands the default VFS: its `unixWrite` writes at most 128 KiB a call
/// (it masks the length with `0x1ffff`), and a length whose low 17 bits are 0 writes nothing
/// and fails as a full disk.
const PIECE: usize = 1 << 16;

/// A WAL frame's header (`WAL_FRAME_HDRSIZE`): page number, then the database size in pages
/// after a commit (0 in every frame but a commit's last), both big-endian.
const FRAME_HEADER: usize = 24;

/// The WAL's write lock among the shared-memory locks (`WAL_WRITE_LOCK`).
const WRITE_LOCK: c_int = 0;

/// What the connections to one database share: how many times a connection released the WAL's
/// write lock.
#[derive(Default)]
struct Shared {
    write_ends: AtomicU64,
}

/// The [`Shared`] of the database at `path` (the main file's full path) while one of its files
/// is open; made by the main file's opening (`make`), else `None`.
fn shared(path: &[u8], make: bool) -> Option<Arc<Shared>> {
    static ALL: OnceLock<Mutex<HashMap<Vec<u8>, Weak<Shared>>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(s) = all.get(path).and_then(Weak::upgrade) {
        return Some(s);
    }
    if !make {
        return None;
    }
    all.retain(|_, s| s.strong_count() > 0);
    let s = Arc::new(Shared::default());
    all.insert(path.to_vec(), Arc::downgrade(&s));
    Some(s)
}

/// The start of both of our file objects: SQLite's, then the default VFS's file object (which
/// lies at [`INNER`] in the memory SQLite gave).
#[repr(C)]
struct Head {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
}

/// A main database file: the default VFS's, and the count of write-lock releases it adds to.
#[repr(C)]
struct DbFile {
    head: Head,
    shared: Arc<Shared>,
}

/// A WAL file opened through this VFS.
#[repr(C)]
struct WalFile {
    head: Head,
    shared: Arc<Shared>,
    /// Bytes written to the file from offset `start` on but not yet to the system.
    buf: Vec<u8>,
    start: i64,
    /// [`Shared::write_ends`] when the buffer was last empty: should it have moved on, the
    /// write transaction that filled the buffer ended without a commit.
    ends_seen: u64,
    /// Where the next frame goes: the end of what was written since the WAL last started
    /// over. Only writes here are buffered; a write anywhere else goes through at once.
    end: i64,
    /// Where the page of the commit frame whose header was the last write goes (`None`: the
    /// last write was no commit frame's header): a write there is that page, and the buffer goes
    /// with it. By position, not by order alone: SQLite also writes a commit frame's header
    /// again, in place, when it recomputes the checksums of frames a transaction wrote over
    /// (`walRewriteChecksums`), and the next write, the next transaction's first frame, is no
    /// page of that frame. Taken for one, a one-frame commit's own header went unseen and its
    /// page stayed in the buffer after `COMMIT`, to be thrown away as a rolled-back
    /// transaction's by the next transaction (a commit lost, and every frame after it
    /// unreadable to recovery).
    commit_page_at: Option<i64>,
    /// Whether writes are buffered at all (the database's main file is open through this VFS,
    /// so the write lock's releases are counted).
    buffers: bool,
}

/// Where the default VFS's file object lies in ours (8-byte aligned).
const INNER: usize = {
    let (db, wal) = (size_of::<DbFile>(), size_of::<WalFile>());
    (if db > wal { db } else { wal }).next_multiple_of(8)
};

/// Registers the VFS (once; not as the default). Answers whether it is there.
pub fn register() -> bool {
    static DONE: OnceLock<bool> = OnceLock::new();
    *DONE.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find(NULL) answers the default VFS, which lives as long as the
        // process; the copy is leaked, so it does too, as SQLite requires of a registered VFS.
        unsafe {
            let real = ffi::sqlite3_vfs_find(std::ptr::null());
            if real.is_null() {
                return false;
            }
            let mut vfs: ffi::sqlite3_vfs = std::ptr::read(real);
            vfs.pNext = std::ptr::null_mut();
            vfs.zName = NAME_C.as_ptr();
            vfs.szOsFile = (INNER + (*real).szOsFile as usize) as c_int;
            // The default VFS's methods do not read pAppData (only its xOpen does, which is
            // called with the default VFS itself), so ours holds the default VFS.
            vfs.pAppData = real.cast();
            vfs.xOpen = Some(open);
            let vfs = Box::leak(Box::new(vfs));
            ffi::sqlite3_vfs_register(vfs, 0) == ffi::SQLITE_OK
        }
    })
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    unsafe {
        let real = (*vfs).pAppData as *mut ffi::sqlite3_vfs;
        let Some(real_open) = (*real).xOpen else {
            return ffi::SQLITE_IOERR;
        };
        let kind = flags & (ffi::SQLITE_OPEN_WAL | ffi::SQLITE_OPEN_MAIN_DB);
        if kind == 0 || name.is_null() {
            // Every other file is the default VFS's own object, its methods called directly.
            return real_open(real, name, file, flags, out_flags);
        }
        let inner = file.cast::<u8>().add(INNER).cast::<ffi::sqlite3_file>();
        let rc = real_open(real, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            (*file).pMethods = std::ptr::null();
            return rc;
        }
        let path = CStr::from_ptr(name).to_bytes();
        if kind & ffi::SQLITE_OPEN_WAL == 0 {
            file.cast::<DbFile>().write(DbFile {
                head: Head {
                    base: ffi::sqlite3_file {
                        pMethods: &DB_METHODS,
                    },
                    inner,
                },
                shared: shared(path, true).unwrap_or_default(),
            });
            return ffi::SQLITE_OK;
        }
        // SQLite names the WAL after its database: the path and "-wal". Without its database
        // file open here, no release of the write lock would be seen: nothing is buffered.
        let found = shared(path.strip_suffix(b"-wal").unwrap_or(path), false);
        let buffers = found.is_some();
        let shared = found.unwrap_or_default();
        file.cast::<WalFile>().write(WalFile {
            head: Head {
                base: ffi::sqlite3_file {
                    pMethods: &WAL_METHODS,
                },
                inner,
            },
            ends_seen: shared.write_ends.load(Ordering::Acquire),
            shared,
            buf: Vec::new(),
            start: 0,
            end: 0,
            commit_page_at: None,
            buffers,
        });
        ffi::SQLITE_OK
    }
}

/// The default VFS's file object behind `file` (ours, of either kind), and its methods.
unsafe fn inner<'a>(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'a ffi::sqlite3_io_methods) {
    unsafe {
        let inner = (*file.cast::<Head>()).inner;
        (inner, &*(*inner).pMethods)
    }
}

/// Writes `bytes` at `offset` through the default VFS, in pieces of at most [`PIECE`].
unsafe fn write_through(file: *mut ffi::sqlite3_file, bytes: &[u8], offset: i64) -> c_int {
    unsafe {
        let (inner, m) = inner(file);
        let Some(write) = m.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let mut at = offset;
        for piece in bytes.chunks(PIECE) {
            let rc = write(inner, piece.as_ptr().cast(), piece.len() as c_int, at);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            at += piece.len() as i64;
        }
        ffi::SQLITE_OK
    }
}

/// Writes what is buffered, or throws it away if the write transaction that buffered it has
/// ended (without a commit, or the commit would have written it).
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let w = &mut *file.cast::<WalFile>();
        if w.buf.is_empty() {
            return ffi::SQLITE_OK;
        }
        let ends = w.shared.write_ends.load(Ordering::Acquire);
        if ends != w.ends_seen {
            w.ends_seen = ends;
            w.buf.clear();
            w.end = w.start;
            w.commit_page_at = None;
            return ffi::SQLITE_OK;
        }
        let buf = std::mem::take(&mut w.buf);
        let rc = write_through(file, &buf, w.start);
        let w = &mut *file.cast::<WalFile>();
        w.buf = buf;
        w.buf.clear();
        rc
    }
}

unsafe extern "C" fn wal_close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let flushed = flush(file);
        let (inner, m) = inner(file);
        let closed = m.xClose.map_or(ffi::SQLITE_OK, |close| close(inner));
        std::ptr::drop_in_place(file.cast::<WalFile>());
        (*file).pMethods = std::ptr::null();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

unsafe extern "C" fn db_close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let (inner, m) = inner(file);
        let closed = m.xClose.map_or(ffi::SQLITE_OK, |close| close(inner));
        std::ptr::drop_in_place(file.cast::<DbFile>());
        (*file).pMethods = std::ptr::null();
        closed
    }
}

unsafe extern "C" fn wal_write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    unsafe {
        let n = amount.max(0) as usize;
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), n);
        // A transaction's first frame after one that ended without a commit: the buffer's
        // frames are that one's, to be thrown away.
        let rc = flush_if_ended(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let w = &mut *file.cast::<WalFile>();
        // This write is the page of the commit frame whose header came just before: once it is
        // written, so is everything buffered.
        let commit_page = w.commit_page_at == Some(offset);
        w.commit_page_at =
            (n == FRAME_HEADER && bytes[4..8] != [0; 4]).then_some(offset + FRAME_HEADER as i64);
        if offset == 0 {
            // The WAL's header: the WAL starts over, and what follows is appended again.
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            (*file.cast::<WalFile>()).end = n as i64;
            return write_through(file, bytes, offset);
        }
        if offset != w.end || n >= CAPACITY || !w.buffers {
            // Not appended to the frames (SQLite writes a page again that a transaction spilled
            // before, or the headers of such frames with their new checksums at commit; or
            // another connection wrote the frames before): in order, after what is buffered,
            // and at once.
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            let w = &mut *file.cast::<WalFile>();
            w.end = w.end.max(offset + n as i64);
            return write_through(file, bytes, offset);
        }
        if w.buf.len() + n > CAPACITY {
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
        }
        let w = &mut *file.cast::<WalFile>();
        if w.buf.is_empty() {
            if w.buf.capacity() == 0 {
                w.buf.reserve_exact(CAPACITY);
            }
            w.start = offset;
            w.ends_seen = w.shared.write_ends.load(Ordering::Acquire);
        }
        w.buf.extend_from_slice(bytes);
        w.end = offset + n as i64;
        if commit_page {
            // The whole commit goes to the system now.
            return flush(file);
        }
        ffi::SQLITE_OK
    }
}

/// Throws the buffer away if the write lock was released since it was filled (never writes).
unsafe fn flush_if_ended(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let w = &*file.cast::<WalFile>();
        if w.buf.is_empty() || w.shared.write_ends.load(Ordering::Acquire) == w.ends_seen {
            return ffi::SQLITE_OK;
        }
        flush(file)
    }
}

/// The main database file's `xShmLock`: counts each release of the WAL's write lock.
unsafe extern "C" fn db_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    unsafe {
        let (inner, m) = inner(file);
        let rc = m
            .xShmLock
            .map_or(ffi::SQLITE_IOERR, |f| f(inner, offset, n, flags));
        let releases_write = flags == ffi::SQLITE_SHM_UNLOCK | ffi::SQLITE_SHM_EXCLUSIVE
            && offset <= WRITE_LOCK
            && WRITE_LOCK < offset + n;
        if releases_write {
            let db = &*file.cast::<DbFile>();
            db.shared.write_ends.fetch_add(1, Ordering::AcqRel);
        }
        rc
    }
}

/// Declares a WAL file method that writes the buffer first, then calls the default VFS's.
macro_rules! flushing {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            unsafe {
                let rc = flush(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let (inner, m) = inner(file);
                m.$field.map_or(ffi::SQLITE_IOERR, |f| f(inner, $($arg),*))
            }
        }
    };
}

/// Declares a method that calls the default VFS's as it is.
macro_rules! passing {
    ($name:ident, $field:ident, $ret:ty, $none:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> $ret {
            unsafe {
                let (inner, m) = inner(file);
                m.$field.map_or($none, |f| f(inner, $($arg),*))
            }
        }
    };
}

flushing!(wal_read, xRead, (data: *mut c_void, amount: c_int, offset: i64));
flushing!(wal_truncate, xTruncate, (size: i64));
flushing!(wal_sync, xSync, (flags: c_int));
flushing!(wal_file_size, xFileSize, (size: *mut i64));
flushing!(wal_file_control, xFileControl, (op: c_int, arg: *mut c_void));
passing!(read, xRead, c_int, ffi::SQLITE_IOERR, (data: *mut c_void, amount: c_int, offset: i64));
passing!(write, xWrite, c_int, ffi::SQLITE_IOERR, (data: *const c_void, amount: c_int, offset: i64));
passing!(truncate, xTruncate, c_int, ffi::SQLITE_IOERR, (size: i64));
passing!(sync, xSync, c_int, ffi::SQLITE_IOERR, (flags: c_int));
passing!(file_size, xFileSize, c_int, ffi::SQLITE_IOERR, (size: *mut i64));
passing!(file_control, xFileControl, c_int, ffi::SQLITE_NOTFOUND, (op: c_int, arg: *mut c_void));
passing!(lock, xLock, c_int, ffi::SQLITE_OK, (level: c_int));
passing!(unlock, xUnlock, c_int, ffi::SQLITE_OK, (level: c_int));
passing!(check_reserved_lock, xCheckReservedLock, c_int, ffi::SQLITE_OK, (out: *mut c_int));
passing!(sector_size, xSectorSize, c_int, 4096, ());
passing!(device_characteristics, xDeviceCharacteristics, c_int, 0, ());
passing!(shm_map, xShmMap, c_int, ffi::SQLITE_IOERR, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void));
passing!(shm_lock, xShmLock, c_int, ffi::SQLITE_IOERR, (offset: c_int, n: c_int, flags: c_int));
passing!(shm_unmap, xShmUnmap, c_int, ffi::SQLITE_OK, (delete: c_int));
passing!(unfetch, xUnfetch, c_int, ffi::SQLITE_OK, (offset: i64, p: *mut c_void));

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    unsafe {
        let (inner, m) = inner(file);
        if let Some(f) = m.xShmBarrier {
            f(inner);
        }
    }
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    unsafe {
        let (inner, m) = inner(file);
        match m.xFetch {
            Some(f) => f(inner, offset, amount, out),
            None => {
                *out = std::ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}

unsafe extern "C" fn wal_fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    unsafe {
        // A mapped page would bypass the buffer: write it first.
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        fetch(file, offset, amount, out)
    }
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(wal_fetch),
    xUnfetch: Some(unfetch),
};

static DB_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(db_close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(db_shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};
    use std::path::Path;

    fn open(path: &Path) -> Connection {
        assert!(register());
        let c = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), NAME).unwrap();
        c.execute_batch(
            "PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 0",
        )
        .unwrap();
        c
    }

    /// A new database in a directory of its own, made with `schema` through this VFS.
    fn made(schema: &str) -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = open(&path);
        c.execute_batch(schema).unwrap();
        (dir, path, c)
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    fn integrity(c: &Connection) -> String {
        c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    /// What `kill -9` would leave: a copy of the database and its WAL, opened elsewhere.
    fn recovered(dir: &Path, name: &str) -> Connection {
        for suffix in ["", "-wal"] {
            std::fs::copy(
                dir.join(format!("t.db{suffix}")),
                dir.join(format!("{name}.db{suffix}")),
            )
            .unwrap();
        }
        Connection::open(dir.join(format!("{name}.db"))).unwrap()
    }

    /// Once `COMMIT` returns, the commit is in the files as the system has them (what `kill -9`
    /// leaves): a copy of the database and its WAL, opened elsewhere, recovers every committed
    /// row, for commits smaller and larger than the buffer, and none of a transaction still
    /// open. A reader of the live file sees each commit too.
    #[test]
    fn a_commit_is_in_the_wal_file_when_commit_returns() {
        let (dir, path, w) = made(
            "PRAGMA cache_size = 100; CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT);
             CREATE INDEX t_y ON t (y)",
        );
        let reader = Connection::open(&path).unwrap();
        let mut total = 0;
        // 20 rows, then 5,000 (about 2 MiB of pages: the buffer fills, and the small page
        // cache spills pages into the WAL before the commit).
        for (round, rows) in [20, 5000, 1, 300].into_iter().enumerate() {
            w.execute_batch("BEGIN").unwrap();
            for i in 0..rows {
                w.execute(
                    "INSERT INTO t (y) VALUES (?1)",
                    [format!("{round}-{i}-{}", "x".repeat(300))],
                )
                .unwrap();
            }
            w.execute_batch("COMMIT").unwrap();
            total += rows;
            // A transaction left open when the copy is taken.
            w.execute_batch("BEGIN; INSERT INTO t (y) VALUES ('open')")
                .unwrap();
            let copy = recovered(dir.path(), &format!("copy{round}"));
            assert_eq!(count(&copy), total, "round {round}");
            assert_eq!(count(&reader), total, "round {round}");
            w.execute_batch("ROLLBACK").unwrap();
        }
        // Checkpointed and the WAL started over: the next commits still arrive.
        w.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        w.execute("INSERT INTO t (y) VALUES ('after')", []).unwrap();
        assert_eq!(count(&reader), total + 1);
        assert_eq!(integrity(&reader), "ok");
    }

    /// A connection whose first write goes after frames another connection wrote (its first
    /// frame is not where it expected the WAL to end): a commit of one frame is in the file
    /// when `COMMIT` returns, for a reader and after `kill -9`.
    #[test]
    fn a_one_frame_commit_after_another_connections_frames_is_written() {
        let (dir, path, first) = made("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)");
        for i in 0..50 {
            first
                .execute("INSERT INTO t (y) VALUES (?1)", [format!("first {i}")])
                .unwrap();
        }
        let second = open(&path);
        let reader = Connection::open(&path).unwrap();
        for i in 0..3 {
            // One row in the table's last page: a commit of one frame.
            second
                .execute("INSERT INTO t (y) VALUES (?1)", [format!("second {i}")])
                .unwrap();
            assert_eq!(count(&reader), 51 + i, "a reader sees commit {i}");
            let copy = recovered(dir.path(), &format!("copy{i}"));
            assert_eq!(count(&copy), 51 + i, "commit {i} survives kill -9");
            assert_eq!(integrity(&copy), "ok");
        }
    }

    /// A transaction that spilled pages into the WAL and wrote some of them again makes SQLite
    /// recompute its frames' checksums at commit, writing each of their headers again in
    /// place, the commit frame's last. A one-frame commit right after is in the file when its
    /// `COMMIT` returns, and stays there when the next transaction writes (the header written
    /// in place was once taken for the next commit's, and that commit's page left in the
    /// buffer and thrown away: a commit lost, and every later frame unreadable to recovery).
    #[test]
    fn a_one_frame_commit_after_checksums_were_rewritten_is_written() {
        let (dir, path, w) = made(
            "CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT);
             CREATE TABLE one (x INTEGER PRIMARY KEY, v INTEGER); INSERT INTO one VALUES (1, 0)",
        );
        // A page cache of 10 pages: 2,000 rows spill their pages into the WAL, and the update
        // of the first 200 writes spilled pages again (frames written over in place).
        w.execute_batch(
            "PRAGMA cache_size = 10; BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t (y) SELECT printf('row %d %.300c', i, 'r') FROM n;
             UPDATE t SET y = y || ' again' WHERE x <= 200;
             COMMIT",
        )
        .unwrap();
        let v =
            |c: &Connection| -> i64 { c.query_row("SELECT v FROM one", [], |r| r.get(0)).unwrap() };
        // One page changed: a commit of one frame.
        w.execute("UPDATE one SET v = 1", []).unwrap();
        assert_eq!(v(&recovered(dir.path(), "copy1")), 1, "after kill -9");
        w.execute("UPDATE one SET v = 2", []).unwrap();
        let copy = recovered(dir.path(), "copy2");
        assert_eq!((v(&copy), count(&copy)), (2, 2000), "after kill -9");
        assert_eq!(integrity(&copy), "ok");
        drop(w);
        let c = Connection::open(&path).unwrap();
        assert_eq!((v(&c), count(&c)), (2, 2000));
        assert_eq!(integrity(&c), "ok");
    }

    /// A WAL file opened through this VFS while its database's main file is not (so no release
    /// of the write lock could be seen) buffers nothing: each write is in the file at once.
    #[test]
    fn a_wal_without_its_database_file_buffers_nothing() {
        assert!(register());
        let dir = tempfile::tempdir().unwrap();
        // The database file is there (SQLite gives its WAL the same mode), but not open.
        std::fs::write(dir.path().join("alone.db"), b"").unwrap();
        let wal = dir.path().join("alone.db-wal");
        let name = std::ffi::CString::new(wal.to_str().unwrap()).unwrap();
        // SAFETY: the VFS is registered; the file object has the size it asks for, 8-byte
        // aligned, and is closed before it is freed.
        unsafe {
            let vfs = ffi::sqlite3_vfs_find(NAME_C.as_ptr());
            assert!(!vfs.is_null());
            let mut mem = vec![0u64; ((*vfs).szOsFile as usize).div_ceil(8)];
            let file = mem.as_mut_ptr().cast::<ffi::sqlite3_file>();
            let flags = ffi::SQLITE_OPEN_WAL | ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
            let mut out = 0;
            let open = (*vfs).xOpen.unwrap();
            assert_eq!(
                open(vfs, name.as_ptr(), file, flags, &mut out),
                ffi::SQLITE_OK
            );
            let m = &*(*file).pMethods;
            // Two frame headers of no commit (bytes 4..8 zero): the second is where the first
            // ended, which a buffering file would keep.
            let frame = [0u8; 24];
            for at in [32, 56] {
                let rc = m.xWrite.unwrap()(file, frame.as_ptr().cast(), 24, at);
                assert_eq!(rc, ffi::SQLITE_OK);
                assert_eq!(std::fs::metadata(&wal).unwrap().len(), at as u64 + 24);
            }
            assert_eq!(m.xClose.unwrap()(file), ffi::SQLITE_OK);
        }
    }

    /// Frames a transaction spilled into the WAL and then rolled back are never written over
    /// what another connection committed at the same offsets since, whatever the first
    /// connection does next (reads, writes, closes).
    #[test]
    fn a_rolled_back_transactions_frames_are_never_written_later() {
        let (dir, path, a) = made(
            "CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT); CREATE INDEX t_y ON t (y);
             CREATE TABLE u (x INTEGER PRIMARY KEY, y TEXT); INSERT INTO t (y) VALUES ('seed')",
        );
        let b = open(&path);
        // The WAL emptied: the rollback below finds every page it reloads in the database file
        // and reads nothing from the WAL (a read would write the buffer while the transaction
        // still holds the write lock, which is harmless).
        a.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let wal = dir.path().join("t.db-wal");
        let before = std::fs::metadata(&wal).unwrap().len();
        // A page cache of 10 pages and rows appended in one statement: the transaction spills
        // its full pages into the WAL (and never reads them again, so they stay buffered; 300
        // KiB, less than the buffer holds) before it rolls back.
        a.execute_batch(
            "PRAGMA cache_size = 10; BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO u (y) SELECT printf('rolled back %d %.300c', i, 'r') FROM n",
        )
        .unwrap();
        assert!(
            std::fs::metadata(&wal).unwrap().len() < before + 100_000,
            "the spilled frames wait in the buffer (else this test shows nothing)"
        );
        a.execute_batch("ROLLBACK").unwrap();
        for i in 0..400 {
            b.execute(
                "INSERT INTO t (y) VALUES (?1)",
                [format!("kept {i} {}", "k".repeat(300))],
            )
            .unwrap();
        }
        // The first connection reads, writes one row, and closes.
        assert_eq!(count(&a), 401);
        a.execute("INSERT INTO t (y) VALUES ('last')", []).unwrap();
        drop(a);
        drop(b);
        let c = Connection::open(&path).unwrap();
        assert_eq!(count(&c), 402);
        assert_eq!(integrity(&c), "ok");
        let kept: i64 = c
            .query_row("SELECT count(*) FROM t WHERE y LIKE 'kept %'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, 400);
    }
}
