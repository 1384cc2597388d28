//! What each worker measures, merged once at the end: latency histograms (µs) for the whole
//! measured phase, and per-second buckets for the timeline. Workers never share these while the
//! load runs; the live progress line reads only [`Counters`].

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Highest latency recorded exactly (1 hour, in µs); larger values saturate to it.
const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Counters the progress line reads once a second (relaxed: they only feed a display and the
/// stop conditions, which tolerate a value one update old).
#[derive(Debug, Default)]
pub struct Counters {
    pub produced_records: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub produce_errors: AtomicU64,
    pub consumed_records: AtomicU64,
    pub consumed_bytes: AtomicU64,
    /// Producer links that finished (everything sent was acknowledged or failed).
    pub producers_done: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_US_MAX, 3) {
        Ok(h) => h,
        Err(e) => unreachable!("constant histogram bounds are valid: {e}"),
    }
}

/// Per-second buckets are coarser (2 significant digits): one per second per worker.
fn second_histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, LATENCY_US_MAX, 2) {
        Ok(h) => h,
        Err(e) => unreachable!("constant histogram bounds are valid: {e}"),
    }
}

#[derive(Clone)]
pub struct Second {
    pub produced: u64,
    pub consumed: u64,
    pub produce: Histogram<u64>,
    pub e2e: Histogram<u64>,
}

impl Second {
    fn new() -> Self {
        Self { produced: 0, consumed: 0, produce: second_histogram(), e2e: second_histogram() }
    }
}

/// Everything one worker measured in the measured phase (warmup excluded).
pub struct Measured {
    pub produced_records: u64,
    pub produced_bytes: u64,
    pub produce_errors: u64,
    pub consumed_records: u64,
    pub consumed_bytes: u64,
    pub produce: Histogram<u64>,
    pub e2e: Histogram<u64>,
    pub seconds: Vec<Second>,
    /// ns since the Unix epoch when the measured phase starts.
    measured_start_ns: u64,
}

impl Measured {
    pub fn new(measured_start_ns: u64) -> Self {
        Self {
            produced_records: 0,
            produced_bytes: 0,
            produce_errors: 0,
            consumed_records: 0,
            consumed_bytes: 0,
            produce: histogram(),
            e2e: histogram(),
            seconds: Vec::new(),
            measured_start_ns,
        }
    }

    fn second(&mut self, at_ns: u64) -> &mut Second {
        let i = (at_ns.saturating_sub(self.measured_start_ns) / 1_000_000_000) as usize;
        while self.seconds.len() <= i {
            self.seconds.push(Second::new());
        }
        &mut self.seconds[i]
    }

    /// Whether a record intended at `intended_ns` belongs to the measured phase.
    pub fn measured(&self, intended_ns: u64) -> bool {
        intended_ns >= self.measured_start_ns
    }

    /// One acknowledged record: its latency from its intended send time to `ack_ns`.
    pub fn acked(&mut self, intended_ns: u64, ack_ns: u64, bytes: u64) {
        if !self.measured(intended_ns) {
            return;
        }
        let us = (ack_ns.saturating_sub(intended_ns) / 1_000).max(1);
        self.produced_records += 1;
        self.produced_bytes += bytes;
        self.produce.saturating_record(us);
        let s = self.second(ack_ns);
        s.produced += 1;
        s.produce.saturating_record(us);
    }

    /// One record produced with acks=0: counted, no latency (there is no acknowledgement).
    pub fn sent_unacked(&mut self, intended_ns: u64, sent_ns: u64, bytes: u64) {
        if !self.measured(intended_ns) {
            return;
        }
        self.produced_records += 1;
        self.produced_bytes += bytes;
        self.second(sent_ns).produced += 1;
    }

    /// Records consumed at `now_ns`; `e2e_us` is given for each record whose value carried an
    /// intended send time of the measured phase (end-to-end runs only).
    pub fn consumed(&mut self, now_ns: u64, records: u64, bytes: u64) {
        if now_ns < self.measured_start_ns {
            return;
        }
        self.consumed_records += records;
        self.consumed_bytes += bytes;
        self.second(now_ns).consumed += records;
    }

    pub fn e2e(&mut self, intended_ns: u64, now_ns: u64) {
        if !self.measured(intended_ns) {
            return;
        }
        let us = (now_ns.saturating_sub(intended_ns) / 1_000).max(1);
        self.e2e.saturating_record(us);
        self.second(now_ns).e2e.saturating_record(us);
    }

    /// Adds another worker's measurements.
    pub fn merge(&mut self, other: Measured) {
        self.produced_records += other.produced_records;
        self.produced_bytes += other.produced_bytes;
        self.produce_errors += other.produce_errors;
        self.consumed_records += other.consumed_records;
        self.consumed_bytes += other.consumed_bytes;
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.produce.add(&other.produce);
        let _ = self.e2e.add(&other.e2e);
        for (i, s) in other.seconds.into_iter().enumerate() {
            if self.seconds.len() <= i {
                self.seconds.push(s);
                continue;
            }
            let mine = &mut self.seconds[i];
            mine.produced += s.produced;
            mine.consumed += s.consumed;
            let _ = mine.produce.add(&s.produce);
            let _ = mine.e2e.add(&s.e2e);
        }
    }
}

/// The contract's latency summary of a histogram, or null when nothing was recorded.
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    json!({
        "count": h.len(),
        "mean": h.mean(),
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "p9999": h.value_at_quantile(0.9999),
        "max": h.max(),
    })
}

fn p99(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        Value::Null
    } else {
        json!(h.value_at_quantile(0.99) as f64)
    }
}

/// One entry per second of the measured phase.
pub fn timeline(seconds: &[Second]) -> Value {
    Value::Array(
        seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({
                    "t_s": (i + 1) as f64,
                    "produced_records_per_s": s.produced as f64,
                    "consumed_records_per_s": s.consumed as f64,
                    "produce_p99": p99(&s.produce),
                    "e2e_p99": p99(&s.e2e),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_excluded_and_workers_merge() {
        let start = 10_000_000_000u64;
        let mut a = Measured::new(start);
        a.acked(start - 1, start + 5_000, 100); // intended during warmup: not measured
        a.acked(start, start + 2_000_000, 100); // 2 ms
        a.acked(start + 1_500_000_000, start + 1_500_400_000, 50); // 400 µs, second 2
        let mut b = Measured::new(start);
        b.acked(start + 10, start + 1_000_010, 10); // 1 ms
        b.consumed(start + 2_100_000_000, 7, 70);
        b.e2e(start, start + 2_100_000_000);
        a.merge(b);
        assert_eq!((a.produced_records, a.produced_bytes), (3, 160));
        assert_eq!((a.consumed_records, a.consumed_bytes), (7, 70));
        assert_eq!(a.produce.len(), 3);
        assert!(a.produce.value_at_quantile(0.5).abs_diff(1_000) <= 1);
        assert!(a.produce.max().abs_diff(2_000) <= 2);
        let t = timeline(&a.seconds);
        let t = t.as_array().expect("array");
        assert_eq!(t.len(), 3);
        assert_eq!(t[0]["produced_records_per_s"], json!(2.0));
        assert_eq!(t[1]["produced_records_per_s"], json!(1.0));
        assert_eq!(t[2]["consumed_records_per_s"], json!(7.0));
        assert!(t[2]["produce_p99"].is_null());
        let e2e = t[2]["e2e_p99"].as_f64().expect("e2e p99");
        assert!((e2e - 2_100_000.0).abs() < 2_100_000.0 * 0.01, "{e2e}");
        let s = summary(&a.produce);
        assert_eq!(s["count"], json!(3));
        assert!(summary(&histogram()).is_null());
    }
}
