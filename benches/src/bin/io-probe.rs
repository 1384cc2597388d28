//! Diagnostic: raw glommio DmaFile latency of (16 KiB write + fdatasync) at depth 1, to separate
//! the runtime's cost from the engine's. Usage: `io-probe DIR [COUNT]`.
use std::time::Instant;

use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(2000);
    LocalExecutorBuilder::new(Placement::Fixed(0))
        .spawn(move || async move {
            let probe = dir.join(".probe");
            std::fs::write(&probe, vec![0u8; 4096]).expect("probe");
            DmaFile::open(&probe).await.expect("open probe").close().await.expect("close");
            let path = dir.join("io-probe.dat");
            let _ = std::fs::remove_file(&path);
            let f = OpenOptions::new().read(true).write(true).create(true).dma_open(&path).await.expect("open");
            let mut lat = Vec::with_capacity(count);
            for i in 0..count {
                let mut b = f.alloc_dma_buffer(16 * 1024);
                b.as_bytes_mut().fill(i as u8);
                let t = Instant::now();
                f.write_at(b, (i * 16 * 1024) as u64).await.expect("write");
                f.fdatasync().await.expect("sync");
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat.sort_unstable();
            println!(
                "glommio write16k+fdatasync p50 {} us p99 {} us max {} us",
                lat[count / 2],
                lat[count * 99 / 100],
                lat[count - 1]
            );
            let _ = std::fs::remove_file(&path);
        })
        .expect("spawn")
        .join()
        .expect("join");
}
