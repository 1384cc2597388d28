//! Corruption tests on real files (glommio, O_DIRECT): damage the tail of a segment or an index
//! file on disk; opening recovers to the last valid batch, and nothing corrupt is ever served.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use engine::io::dma::DmaStorage;
use engine::log::RecoveryReport;
use engine::records::{decode_records, BatchBuilder, Record};
use engine::{Compression, LogConfig, LogError, PartitionLog, ValidatedBatches};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 32 * 1024,
        index_interval_bytes: 1024,
        write_chunk_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

fn batch(i: u64) -> ValidatedBatches {
    let mut b = BatchBuilder::new(Compression::None, 1_000 + i as i64);
    for r in 0..3 {
        b.push(
            Record::new(Some(format!("b{i}-r{r}").into_bytes()), Some(vec![i as u8; 300]))
                .with_timestamp(1_000 + i as i64),
        );
    }
    ValidatedBatches::new(b.build(), usize::MAX).expect("valid")
}

/// Runs `f` on a fresh glommio executor (with the IOPOLL probe guard) and returns its value.
fn on_glommio<T: Send + 'static, Fut: std::future::Future<Output = T> + 'static>(
    dir: &Path,
    f: impl FnOnce() -> Fut + Send + 'static,
) -> T {
    let dir = dir.to_path_buf();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            DmaStorage::guard_iopoll_probe(&dir).await.expect("guard");
            f().await
        })
        .expect("executor")
        .join()
        .expect("join")
}

struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str, batches: u64) -> Self {
        let dir = std::env::temp_dir().join(format!("odradek-corrupt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let log_dir = dir.join("t-0");
        on_glommio(&dir, move || async move {
            let (log, _) = PartitionLog::open(DmaStorage, &log_dir, config(), 0).await.expect("open");
            for i in 0..batches {
                let info = log.append(batch(i), 0, 0).await.expect("append");
                assert_eq!(info.base_offset, i as i64 * 3);
            }
            log.close().await.expect("close");
        });
        Self { dir }
    }
    fn log_dir(&self) -> PathBuf {
        self.dir.join("t-0")
    }
    fn segments(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.log_dir())
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        v.sort();
        v
    }
    /// Reopens and reads everything; returns the recovery report, the log end offset, the
    /// batches read (base offsets) or the first read error.
    fn reopen(&self) -> (RecoveryReport, i64, Result<Vec<i64>, String>) {
        let log_dir = self.log_dir();
        on_glommio(&self.dir, move || async move {
            let (log, report) = PartitionLog::open(DmaStorage, &log_dir, config(), 0).await.expect("reopen");
            let leo = log.log_end_offset();
            let mut bases = Vec::new();
            let mut offset = 0;
            let result = loop {
                if offset >= leo {
                    break Ok(bases);
                }
                match log.read(offset, 1 << 20, None).await {
                    Ok(r) => {
                        for v in engine::batch::parse_all(&r.concat(), usize::MAX).expect("served batches are valid") {
                            let recs = decode_records(&v).expect("records");
                            let i = (v.base_offset() / 3) as u64;
                            assert_eq!(recs[0].key.as_deref(), Some(format!("b{i}-r0").as_bytes()));
                            assert_eq!(recs[2].value.as_deref(), Some(&vec![i as u8; 300][..]));
                            bases.push(v.base_offset());
                            offset = v.last_offset() + 1;
                        }
                    }
                    Err(e @ LogError::Read(_)) => break Err(e.to_string()),
                    Err(e) => panic!("unexpected error {e}"),
                }
            };
            (report, leo, result)
        })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn modify(path: &Path, f: impl FnOnce(&mut std::fs::File, u64)) {
    let mut file = OpenOptions::new().read(true).write(true).open(path).expect("open file");
    let len = file.metadata().expect("metadata").len();
    f(&mut file, len);
    file.sync_all().expect("sync");
}

fn flip_byte_at(file: &mut std::fs::File, pos: u64) {
    let mut b = [0u8; 1];
    file.seek(SeekFrom::Start(pos)).expect("seek");
    file.read_exact(&mut b).expect("read");
    b[0] ^= 0x5a;
    file.seek(SeekFrom::Start(pos)).expect("seek");
    file.write_all(&b).expect("write");
}

const BATCHES: u64 = 150;

#[test]
fn clean_reopen_reads_everything() {
    let fx = Fixture::new("clean", BATCHES);
    assert!(fx.segments().len() > 3);
    let (report, leo, read) = fx.reopen();
    assert_eq!(report.truncated_segment, None);
    assert_eq!(leo, BATCHES as i64 * 3);
    assert_eq!(read.expect("all readable").len(), BATCHES as usize);
}

#[test]
fn flipped_byte_in_the_last_batch_cuts_it() {
    let fx = Fixture::new("flip-tail", BATCHES);
    let active = fx.segments().pop().expect("active");
    modify(&active, |f, len| flip_byte_at(f, len - 10));
    let (report, leo, read) = fx.reopen();
    assert!(report.truncated_segment.is_some());
    assert_eq!(leo, (BATCHES as i64 - 1) * 3, "recovered to the last valid batch");
    assert_eq!(read.expect("rest readable").len(), BATCHES as usize - 1);
}

#[test]
fn torn_tail_is_cut_to_the_last_whole_batch() {
    let fx = Fixture::new("torn", BATCHES);
    let active = fx.segments().pop().expect("active");
    modify(&active, |f, len| f.set_len(len - 100).expect("truncate"));
    let (_, leo, read) = fx.reopen();
    assert_eq!(leo, (BATCHES as i64 - 1) * 3);
    assert_eq!(read.expect("readable").len(), BATCHES as usize - 1);
}

#[test]
fn garbage_after_the_end_is_cut() {
    let fx = Fixture::new("garbage", BATCHES);
    let active = fx.segments().pop().expect("active");
    let clean_len = std::fs::metadata(&active).expect("meta").len();
    modify(&active, |f, len| {
        f.seek(SeekFrom::Start(len)).expect("seek");
        f.write_all(&[0xab; 777]).expect("write");
    });
    let (report, leo, read) = fx.reopen();
    assert!(report.truncated_segment.is_some());
    assert_eq!(leo, BATCHES as i64 * 3);
    assert_eq!(read.expect("readable").len(), BATCHES as usize);
    assert_eq!(std::fs::metadata(&active).expect("meta").len(), clean_len, "the garbage was cut off the file");
}

#[test]
fn damaged_indexes_are_rebuilt() {
    let fx = Fixture::new("index", BATCHES);
    let segs = fx.segments();
    let sealed = &segs[1];
    let index = sealed.with_extension("index");
    let time_index = sealed.with_extension("timeindex");
    assert!(std::fs::metadata(&index).expect("index exists").len() > 0);
    // Torn entry in one, garbage in the other; and the active segment's index removed.
    modify(&index, |f, len| f.set_len(len - 3).expect("truncate"));
    modify(&time_index, |f, _| {
        f.seek(SeekFrom::Start(0)).expect("seek");
        f.write_all(&[0xff; 12]).expect("write");
    });
    let first = &segs[0];
    modify(&first.with_extension("index"), |f, _| {
        // Entries pointing past the data file.
        f.seek(SeekFrom::Start(0)).expect("seek");
        f.write_all(&[0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff]).expect("write");
    });
    let (report, leo, read) = fx.reopen();
    assert_eq!(report.truncated_segment, None);
    assert_eq!(leo, BATCHES as i64 * 3);
    assert_eq!(read.expect("readable").len(), BATCHES as usize);
}

#[test]
fn corruption_inside_a_sealed_segment_is_never_served() {
    let fx = Fixture::new("sealed", BATCHES);
    let segs = fx.segments();
    // A byte early in the first segment, before its last index entry: the open-time scan does not
    // reach it, so the read path's CRC check must refuse it.
    modify(&segs[0], |f, _| flip_byte_at(f, 200));
    let (_, leo, read) = fx.reopen();
    assert_eq!(leo, BATCHES as i64 * 3);
    let err = read.expect_err("the corrupt batch must not be served");
    assert!(err.contains("corrupt"), "{err}");
}

#[test]
fn a_torn_middle_segment_ends_the_log_there() {
    let fx = Fixture::new("middle", BATCHES);
    let segs = fx.segments();
    assert!(segs.len() >= 4);
    modify(&segs[1], |f, len| f.set_len(len - 100).expect("truncate"));
    let (report, leo, read) = fx.reopen();
    assert!(!report.deleted_segments.is_empty(), "later segments cannot follow a hole");
    let bases = read.expect("readable");
    assert_eq!(leo, bases.last().map_or(0, |b| b + 3));
    assert!(leo < BATCHES as i64 * 3);
    assert_eq!(fx.segments().len(), 2);
}

#[test]
fn a_missing_middle_segment_ends_the_log_before_the_gap() {
    let fx = Fixture::new("gap", BATCHES);
    let segs = fx.segments();
    std::fs::remove_file(&segs[2]).expect("remove");
    let (report, leo, read) = fx.reopen();
    assert_eq!(report.deleted_segments.len(), segs.len() - 3);
    let bases = read.expect("readable");
    assert_eq!(leo, bases.last().map_or(0, |b| b + 3), "dense up to the gap");
    assert_eq!(fx.segments().len(), 2);
}
