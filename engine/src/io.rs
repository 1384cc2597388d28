//! The storage seam: the few file operations the log needs, as traits, so that the same log code
//! runs on glommio's direct I/O in production and on an in-memory, crash-simulating store under
//! test.
//!
//! Lives on: the shard that opened the file. Nothing here is `Send`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Direct-I/O alignment used for every position and length written. 4 KiB covers every logical
/// block size Linux devices report (glommio would accept 512 on this disk; 4096 is never wrong).
pub const ALIGN: usize = 4096;

pub fn align_down(v: u64) -> u64 {
    v & !(ALIGN as u64 - 1)
}
pub fn align_up(v: u64) -> u64 {
    align_down(v + ALIGN as u64 - 1)
}

/// A buffer the file can write with direct I/O.
pub trait IoBuf {
    fn as_bytes(&self) -> &[u8];
    fn as_bytes_mut(&mut self) -> &mut [u8];
    /// Shortens the buffer to `len` bytes (an aligned length), so a write covers only that much.
    fn trim_to(&mut self, len: usize);
}

/// One open data file. Writes are positioned, aligned and whole-buffer.
#[allow(async_fn_in_trait)]
pub trait SegmentFile: 'static {
    type Buf: IoBuf;
    /// An aligned buffer of exactly `bytes` bytes (a multiple of [`ALIGN`]).
    fn alloc(&self, bytes: usize) -> Self::Buf;
    /// Writes all of `buf` at `pos` (both aligned).
    async fn write_at(&self, buf: Self::Buf, pos: u64) -> io::Result<()>;
    /// Reads up to `len` bytes at `pos` (any alignment); shorter only at end of file.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>>;
    async fn sync(&self) -> io::Result<()>;
    async fn truncate(&self, len: u64) -> io::Result<()>;
    async fn size(&self) -> io::Result<u64>;
    async fn close(self) -> io::Result<()>;
}

/// A directory tree of files.
#[allow(async_fn_in_trait)]
pub trait Storage: Clone + 'static {
    type File: SegmentFile;
    /// Opens `path` for reading and writing, creating it if missing.
    async fn open(&self, path: &Path) -> io::Result<Self::File>;
    async fn remove(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of `dir` (not paths).
    async fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    async fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` if it exists (atomically, as rename(2) does).
    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    async fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Reads a small whole file (indexes, checkpoints); `None` if missing.
    async fn read_small(&self, path: &Path) -> io::Result<Option<Vec<u8>>>;
    /// Replaces a small file atomically and durably (temp file, fsync, rename, fsync dir).
    async fn write_small(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Waits about `ms` milliseconds: paces background work (see `PartitionLog`'s release of
    /// deleted segments' space).
    async fn pause(&self, ms: u64);
}

// ---- glommio direct I/O ------------------------------------------------------------------------

pub mod dma {
    use super::*;
    use glommio::io::{DmaBuffer, DmaFile, OpenOptions};

    impl IoBuf for DmaBuffer {
        fn as_bytes(&self) -> &[u8] {
            DmaBuffer::as_bytes(self)
        }
        fn as_bytes_mut(&mut self) -> &mut [u8] {
            DmaBuffer::as_bytes_mut(self)
        }
        fn trim_to(&mut self, len: usize) {
            self.trim_to_size(len)
        }
    }

    fn gerr(e: glommio::GlommioError<()>) -> io::Error {
        io::Error::other(e.to_string())
    }
    fn to_io(e: glommio::GlommioError<()>) -> io::Error {
        match e {
            glommio::GlommioError::IoError(e) => e,
            glommio::GlommioError::EnhancedIoError { source, .. } => source,
            other => gerr(other),
        }
    }

    /// How far ahead of the writes a segment file is allocated (`fallocate`, file size moved).
    /// Writes inside the file's size skip the block allocation and size update an extending
    /// direct write costs (fio on this disk: ~17% of sequential bandwidth); the unwritten tail
    /// reads as zeros, which recovery treats as the end, and is trimmed at roll and close.
    ///
    /// The step starts at [`PREALLOCATE_FIRST_STEP_BYTES`] and doubles with each extension up to
    /// this, so a quiet partition (most of `__consumer_offsets`, a topic with small segments)
    /// holds well under a MiB of unwritten space (10,000 partitions reserved 10 GB of disk with a
    /// 1 MiB first step), while a busy one reaches full steps within its first 64 MiB.
    pub const PREALLOCATE_STEP_BYTES: u64 = 32 << 20;
    pub const PREALLOCATE_FIRST_STEP_BYTES: u64 = 64 << 10;

    /// Segment files on glommio's `DmaFile` (O_DIRECT, io_uring).
    pub struct DmaSegmentFile {
        file: DmaFile,
        /// The file is allocated up to here (0: unknown, allocate on the next write).
        allocated: std::cell::Cell<u64>,
        /// The next extension's size.
        step: std::cell::Cell<u64>,
    }

    impl SegmentFile for DmaSegmentFile {
        type Buf = DmaBuffer;
        fn alloc(&self, bytes: usize) -> DmaBuffer {
            self.file.alloc_dma_buffer(bytes)
        }
        async fn write_at(&self, buf: DmaBuffer, pos: u64) -> io::Result<()> {
            let len = buf.len();
            let end = pos + len as u64;
            if end > self.allocated.get() {
                let step = self.step.get();
                self.step.set((step * 2).min(PREALLOCATE_STEP_BYTES));
                let target = align_up(end + step);
                // Claimed before the await so concurrent writes do not allocate again.
                self.allocated.set(target);
                self.file.pre_allocate(target, false).await.map_err(to_io)?;
            }
            let n = self.file.write_at(buf, pos).await.map_err(to_io)?;
            if n != len {
                return Err(io::Error::new(io::ErrorKind::WriteZero, format!("short direct write: {n} of {len}")));
            }
            Ok(())
        }
        async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
            let r = self.file.read_at(pos, len).await.map_err(to_io)?;
            Ok(r.to_vec())
        }
        async fn sync(&self) -> io::Result<()> {
            self.file.fdatasync().await.map_err(to_io)
        }
        async fn truncate(&self, len: u64) -> io::Result<()> {
            self.allocated.set(len);
            self.file.truncate(len).await.map_err(to_io)
        }
        async fn size(&self) -> io::Result<u64> {
            self.file.file_size().await.map_err(to_io)
        }
        async fn close(self) -> io::Result<()> {
            self.file.close().await.map_err(to_io)
        }
    }

    /// The production store. Segment files use glommio's `DmaFile` (io_uring); everything else
    /// (directories, small checkpoint and index files, renames, directory syncs) is blocking
    /// file-system work, run on the executor's blocking thread ([`blocking`]) so the shard's
    /// reactor never waits on it.
    #[derive(Clone, Debug, Default)]
    pub struct DmaStorage;

    /// Runs blocking file-system work on the calling executor's blocking-thread pool (glommio's
    /// default: one thread per executor, placed like it), and waits for it without blocking
    /// the shard. The only place of the shard crates where `std::fs` may be called.
    pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
        glommio::executor().spawn_blocking(f).await
    }

    impl DmaStorage {
        /// Guards against glommio 0.9's one-time IOPOLL probe (see MACHINE.md): if the first
        /// `DmaFile` of a device is empty, the probe wrongly enables the poll ring and every later
        /// read fails with EOPNOTSUPP. Opening a non-empty file first makes the probe fail
        /// properly. Call once per executor before any other file of `dir`'s device is opened.
        pub async fn guard_iopoll_probe(dir: &Path) -> io::Result<()> {
            let probe = dir.join(".iopoll-probe");
            let (d, p) = (dir.to_path_buf(), probe.clone());
            blocking(move || {
                std::fs::create_dir_all(&d)?;
                let ok = std::fs::metadata(&p).map(|m| m.len() >= ALIGN as u64).unwrap_or(false);
                if !ok {
                    std::fs::write(&p, vec![0u8; ALIGN])?;
                }
                Ok(())
            })
            .await?;
            let f = DmaFile::open(&probe).await.map_err(to_io)?;
            f.close().await.map_err(to_io)
        }
    }

    impl Storage for DmaStorage {
        type File = DmaSegmentFile;
        async fn open(&self, path: &Path) -> io::Result<DmaSegmentFile> {
            let file = OpenOptions::new().read(true).write(true).create(true).dma_open(path).await.map_err(to_io)?;
            let step = std::cell::Cell::new(PREALLOCATE_FIRST_STEP_BYTES);
            Ok(DmaSegmentFile { file, allocated: std::cell::Cell::new(0), step })
        }
        async fn remove(&self, path: &Path) -> io::Result<()> {
            let path = path.to_path_buf();
            blocking(move || match std::fs::remove_file(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            })
            .await
        }
        async fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            let dir = dir.to_path_buf();
            blocking(move || {
                let mut out = Vec::new();
                for e in std::fs::read_dir(&dir)? {
                    out.push(e?.file_name().to_string_lossy().into_owned());
                }
                Ok(out)
            })
            .await
        }
        async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            let dir = dir.to_path_buf();
            blocking(move || std::fs::create_dir_all(&dir)).await
        }
        async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
            let dir = dir.to_path_buf();
            blocking(move || match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r,
            })
            .await
        }
        async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            let (from, to) = (from.to_path_buf(), to.to_path_buf());
            blocking(move || std::fs::rename(&from, &to)).await
        }
        async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            let dir = dir.to_path_buf();
            blocking(move || std::fs::File::open(&dir)?.sync_all()).await
        }
        async fn read_small(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
            let path = path.to_path_buf();
            blocking(move || match std::fs::read(&path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            })
            .await
        }
        async fn write_small(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
            let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
            blocking(move || write_atomically(&path, &bytes)).await
        }
        async fn pause(&self, ms: u64) {
            glommio::timer::sleep(std::time::Duration::from_millis(ms)).await;
        }
    }

    /// Writes `bytes` to `path` so that a crash leaves the old or the new content: a synced
    /// temporary file renamed over it, then the directory synced. Blocking: call it through
    /// [`blocking`] on a shard.
    pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

// ---- in memory, with crashes and injected faults ------------------------------------------------

pub mod mem {
    use super::*;

    #[derive(Default, Debug)]
    struct MemFileState {
        /// What a reader sees now.
        data: Vec<u8>,
        /// What survives a crash: the content at the last `sync`.
        durable: Vec<u8>,
    }

    #[derive(Default, Debug)]
    struct MemState {
        files: BTreeMap<PathBuf, Rc<RefCell<MemFileState>>>,
        dirs: std::collections::BTreeSet<PathBuf>,
        /// Fail every write and sync once this many writes have been made (fault injection).
        writes_left: Option<u64>,
        /// Calls of [`Storage::pause`] so far.
        pauses: u64,
    }

    /// An in-memory store that can simulate a power loss: [`MemStorage::crash`] rolls every file
    /// back to its last synced content, optionally keeping a torn prefix of what was written since.
    #[derive(Clone, Default, Debug)]
    pub struct MemStorage {
        state: Rc<RefCell<MemState>>,
    }

    impl MemStorage {
        pub fn new() -> Self {
            Self::default()
        }
        /// Every write after the next `n` fails with an I/O error.
        pub fn fail_after_writes(&self, n: u64) {
            self.state.borrow_mut().writes_left = Some(n);
        }
        pub fn heal(&self) {
            self.state.borrow_mut().writes_left = None;
        }
        /// Power loss: each file keeps its synced content plus `torn(path, unsynced_len)` bytes of
        /// what was written after the last sync.
        pub fn crash(&self, mut torn: impl FnMut(&Path, usize) -> usize) {
            let st = self.state.borrow();
            for (path, f) in &st.files {
                let mut f = f.borrow_mut();
                let durable_len = f.durable.len();
                let extra = f.data.len().saturating_sub(durable_len);
                let keep = torn(path, extra).min(extra);
                let mut content = f.durable.clone();
                if keep > 0 {
                    content.extend_from_slice(&f.data[durable_len..durable_len + keep]);
                }
                f.data = content;
            }
        }
        /// Direct access for corruption tests.
        pub fn with_file<R>(&self, path: &Path, f: impl FnOnce(&mut Vec<u8>) -> R) -> Option<R> {
            let st = self.state.borrow();
            let file = st.files.get(path)?;
            let mut file = file.borrow_mut();
            let r = f(&mut file.data);
            file.durable = file.data.clone();
            Some(r)
        }
        /// How many times background work paused ([`Storage::pause`]).
        pub fn pauses(&self) -> u64 {
            self.state.borrow().pauses
        }
        pub fn paths(&self) -> Vec<PathBuf> {
            self.state.borrow().files.keys().cloned().collect()
        }
        fn charge_write(&self) -> io::Result<()> {
            let mut st = self.state.borrow_mut();
            match &mut st.writes_left {
                Some(0) => Err(io::Error::other("injected write failure")),
                Some(n) => {
                    *n -= 1;
                    Ok(())
                }
                None => Ok(()),
            }
        }
    }

    pub struct MemFile {
        store: MemStorage,
        file: Rc<RefCell<MemFileState>>,
    }

    pub struct MemBuf(Vec<u8>);
    impl IoBuf for MemBuf {
        fn as_bytes(&self) -> &[u8] {
            &self.0
        }
        fn as_bytes_mut(&mut self) -> &mut [u8] {
            &mut self.0
        }
        fn trim_to(&mut self, len: usize) {
            self.0.truncate(len)
        }
    }

    impl SegmentFile for MemFile {
        type Buf = MemBuf;
        fn alloc(&self, bytes: usize) -> MemBuf {
            MemBuf(vec![0u8; bytes])
        }
        async fn write_at(&self, buf: MemBuf, pos: u64) -> io::Result<()> {
            // Real devices complete later: give other tasks a turn, as io_uring would.
            crate::sync::yield_now().await;
            assert_eq!(pos % ALIGN as u64, 0, "unaligned direct write position");
            assert_eq!(buf.0.len() % ALIGN, 0, "unaligned direct write length");
            self.store.charge_write()?;
            let mut f = self.file.borrow_mut();
            let end = pos as usize + buf.0.len();
            if f.data.len() < end {
                f.data.resize(end, 0);
            }
            f.data[pos as usize..end].copy_from_slice(&buf.0);
            Ok(())
        }
        async fn read_at(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
            let f = self.file.borrow();
            let start = (pos as usize).min(f.data.len());
            let end = (start + len).min(f.data.len());
            Ok(f.data[start..end].to_vec())
        }
        async fn sync(&self) -> io::Result<()> {
            crate::sync::yield_now().await;
            self.store.charge_write()?;
            let mut f = self.file.borrow_mut();
            f.durable = f.data.clone();
            Ok(())
        }
        async fn truncate(&self, len: u64) -> io::Result<()> {
            let mut f = self.file.borrow_mut();
            f.data.resize(len as usize, 0);
            // A truncation is metadata the log syncs right after; treat it as durable.
            let keep = f.durable.len().min(len as usize);
            f.durable.truncate(keep);
            Ok(())
        }
        async fn size(&self) -> io::Result<u64> {
            Ok(self.file.borrow().data.len() as u64)
        }
        async fn close(self) -> io::Result<()> {
            Ok(())
        }
    }

    fn not_found(p: &Path) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, format!("{} not found", p.display()))
    }

    impl Storage for MemStorage {
        type File = MemFile;
        async fn open(&self, path: &Path) -> io::Result<MemFile> {
            let mut st = self.state.borrow_mut();
            if let Some(parent) = path.parent() {
                if !st.dirs.contains(parent) {
                    return Err(not_found(parent));
                }
            }
            let file = st.files.entry(path.to_path_buf()).or_default().clone();
            Ok(MemFile { store: self.clone(), file })
        }
        async fn remove(&self, path: &Path) -> io::Result<()> {
            self.state.borrow_mut().files.remove(path);
            Ok(())
        }
        async fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            let st = self.state.borrow();
            if !st.dirs.contains(dir) {
                return Err(not_found(dir));
            }
            let files = st.files.keys().chain(st.dirs.iter());
            Ok(files
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect())
        }
        async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            let mut st = self.state.borrow_mut();
            for a in dir.ancestors() {
                st.dirs.insert(a.to_path_buf());
            }
            Ok(())
        }
        async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
            let mut st = self.state.borrow_mut();
            st.files.retain(|p, _| !p.starts_with(dir));
            st.dirs.retain(|p| !p.starts_with(dir));
            Ok(())
        }
        async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            let mut st = self.state.borrow_mut();
            let f = st.files.remove(from).ok_or_else(|| not_found(from))?;
            st.files.insert(to.to_path_buf(), f);
            Ok(())
        }
        async fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }
        async fn read_small(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
            Ok(self.state.borrow().files.get(path).map(|f| f.borrow().data.clone()))
        }
        async fn write_small(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
            self.charge_write()?;
            let mut st = self.state.borrow_mut();
            let f = st.files.entry(path.to_path_buf()).or_default();
            let mut f = f.borrow_mut();
            f.data = bytes.to_vec();
            f.durable = bytes.to_vec();
            Ok(())
        }
        async fn pause(&self, _ms: u64) {
            self.state.borrow_mut().pauses += 1;
        }
    }
}
