//! Segment files are allocated ahead of the writes in growing steps: a quiet file holds little
//! unwritten space, a busy one soon extends by full steps.

use engine::io::dma::{DmaStorage, PREALLOCATE_FIRST_STEP_BYTES, PREALLOCATE_STEP_BYTES};
use engine::io::{align_up, SegmentFile, Storage};

#[test]
fn preallocation_starts_small_and_doubles_up_to_the_full_step() {
    let root = std::env::temp_dir().join(format!("odradek-prealloc-{}", std::process::id()));
    let p = root.join("00000000000000000000.log");
    let cleanup = root.clone();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            DmaStorage::guard_iopoll_probe(&root).await.expect("probe");
            let file = DmaStorage.open(&p).await.expect("open");
            let len = || std::fs::metadata(&p).expect("metadata").len();
            let block = 4096u64;
            let write = |pos: u64| {
                let mut buf = file.alloc(block as usize);
                buf.as_bytes_mut().fill(7);
                file.write_at(buf, pos)
            };
            write(0).await.expect("write");
            let mut expect = align_up(block + PREALLOCATE_FIRST_STEP_BYTES);
            assert_eq!(len(), expect, "first extension: one small step");
            // Each write past the allocated end extends by twice the previous step, up to the cap.
            let mut step = PREALLOCATE_FIRST_STEP_BYTES;
            for _ in 0..10 {
                let pos = expect;
                write(pos).await.expect("write");
                step = (step * 2).min(PREALLOCATE_STEP_BYTES);
                expect = align_up(pos + block + step);
                assert_eq!(len(), expect);
            }
            assert_eq!(step, PREALLOCATE_STEP_BYTES);
            file.close().await.expect("close");
        })
        .expect("executor")
        .join()
        .expect("join");
    let _ = std::fs::remove_dir_all(cleanup);
}
