//! A SQLite VFS that gathers the WAL's writes: the default VFS (`unix`) in every way but one,
//! a WAL file's writes are appended to a buffer of up to 1 MiB and written in pieces of 64 KiB
//! when a commit's last frame is in it, when the buffer is full, or before anything else
//! touches the file (a read, a sync, a truncate, its size, a write elsewhere, its close).
//!
//! SQLite writes each WAL frame as two writes (its 24-byte header, then the page), so a commit
//! of a thousand pages was two thousand `pwrite`s: with a hundred accounts they were 16 % of the
//! writer's time (BENCHMARKS.md, issue 15, sixteenth pass). Nothing a caller was told is
//! committed can be lost: a commit's last frame has the database size in its header (SQLite's
//! mark of a commit), and the buffer is written as soon as that frame's page is in it, before
//! SQLite publishes the commit to readers and answers `COMMIT`; after `kill -9` the kernel has
//! every committed frame, as without the buffer. Only frames of a transaction still open can
//! be in the buffer, and those a crash loses anyway.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

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

/// A WAL file opened through this VFS. SQLite allocates `szOsFile` bytes for it; the default
/// VFS's own file object follows at [`INNER`].
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Bytes written to the file from offset `start` on but not yet to the system.
    buf: Vec<u8>,
    start: i64,
    /// Where the next frame goes: the end of what was written since the WAL last started
    /// over. Only writes here are buffered; a write anywhere else goes through at once.
    end: i64,
    /// The last write was a commit frame's header: its page comes next, then the buffer goes.
    commit: bool,
}

/// Where the default VFS's file object lies in ours (8-byte aligned).
const INNER: usize = std::mem::size_of::<WalFile>().next_multiple_of(8);

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
        if flags & ffi::SQLITE_OPEN_WAL == 0 {
            // Every other file is the default VFS's own object, its methods called directly.
            return real_open(real, name, file, flags, out_flags);
        }
        let inner = file.cast::<u8>().add(INNER).cast::<ffi::sqlite3_file>();
        let rc = real_open(real, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            (*file).pMethods = std::ptr::null();
            return rc;
        }
        file.cast::<WalFile>().write(WalFile {
            base: ffi::sqlite3_file { pMethods: &METHODS },
            inner,
            buf: Vec::new(),
            start: 0,
            end: 0,
            commit: false,
        });
        ffi::SQLITE_OK
    }
}

/// The file behind `file`, and its methods.
unsafe fn parts<'a>(
    file: *mut ffi::sqlite3_file,
) -> (
    &'a mut WalFile,
    *mut ffi::sqlite3_file,
    &'a ffi::sqlite3_io_methods,
) {
    unsafe {
        let w = &mut *file.cast::<WalFile>();
        let inner = w.inner;
        (w, inner, &*(*inner).pMethods)
    }
}

/// Writes `bytes` at `offset` through the default VFS, in pieces of at most [`PIECE`].
unsafe fn write_through(file: *mut ffi::sqlite3_file, bytes: &[u8], offset: i64) -> c_int {
    unsafe {
        let (_, inner, m) = parts(file);
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

/// Writes what is buffered.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let w = &mut *file.cast::<WalFile>();
        if w.buf.is_empty() {
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

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    unsafe {
        let flushed = flush(file);
        let (_, inner, m) = parts(file);
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

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    unsafe {
        let n = amount.max(0) as usize;
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), n);
        if offset == 0 {
            // The WAL's header: the WAL starts over, and what follows is appended again.
            let rc = flush(file);
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            (*file.cast::<WalFile>()).end = 0;
        }
        let w = &mut *file.cast::<WalFile>();
        if offset != w.end || n >= CAPACITY {
            // Not appended to the frames (SQLite writes a page again that a transaction spilled
            // before, or the headers of such frames with their new checksums at commit): in
            // order, after what is buffered, and at once.
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
        }
        w.buf.extend_from_slice(bytes);
        w.end = offset + n as i64;
        if std::mem::take(&mut w.commit) {
            // The commit frame's page: the whole commit goes to the system now.
            return flush(file);
        }
        if n == FRAME_HEADER && bytes[4..8] != [0; 4] {
            w.commit = true;
        }
        ffi::SQLITE_OK
    }
}

/// Declares a method that writes the buffer first, then calls the default VFS's.
macro_rules! flushing {
    ($name:ident, $field:ident, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            unsafe {
                let rc = flush(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let (_, inner, m) = parts(file);
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
                let (_, inner, m) = parts(file);
                m.$field.map_or($none, |f| f(inner, $($arg),*))
            }
        }
    };
}

flushing!(read, xRead, (data: *mut c_void, amount: c_int, offset: i64));
flushing!(truncate, xTruncate, (size: i64));
flushing!(sync, xSync, (flags: c_int));
flushing!(file_size, xFileSize, (size: *mut i64));
flushing!(file_control, xFileControl, (op: c_int, arg: *mut c_void));
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
        let (_, inner, m) = parts(file);
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
        // A mapped page would bypass the buffer: write it first.
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let (_, inner, m) = parts(file);
        match m.xFetch {
            Some(f) => f(inner, offset, amount, out),
            None => {
                *out = std::ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
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
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    /// Once `COMMIT` returns, the commit is in the files as the system has them (what `kill -9`
    /// leaves): a copy of the database and its WAL, opened elsewhere, recovers every committed
    /// row, for commits smaller and larger than the buffer, and none of a transaction still
    /// open. A reader of the live file sees each commit too.
    #[test]
    fn a_commit_is_in_the_wal_file_when_commit_returns() {
        assert!(register());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let w = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), NAME).unwrap();
        w.execute_batch(
            "PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = 100;
             CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT); CREATE INDEX t_y ON t (y)",
        )
        .unwrap();
        let reader = Connection::open(&path).unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap()
        };
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
            let copy = dir.path().join(format!("copy{round}.db"));
            std::fs::copy(&path, &copy).unwrap();
            std::fs::copy(
                dir.path().join("t.db-wal"),
                dir.path().join(format!("copy{round}.db-wal")),
            )
            .unwrap();
            let recovered = Connection::open(&copy).unwrap();
            assert_eq!(count(&recovered), total, "round {round}");
            assert_eq!(count(&reader), total, "round {round}");
            w.execute_batch("ROLLBACK").unwrap();
        }
        // Checkpointed and the WAL started over: the next commits still arrive.
        w.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        w.execute("INSERT INTO t (y) VALUES ('after')", []).unwrap();
        assert_eq!(count(&reader), total + 1);
        let integrity: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok");
    }
}
