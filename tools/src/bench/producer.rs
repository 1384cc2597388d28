//! One producer link: a connection to one partition leader carrying a producer's records for
//! the partitions that broker leads. Lives on: one worker executor, for the whole run.
//!
//! The writer side follows the schedule: record k of a link with rate r is *intended* at
//! `start + k / r`; it is generated as soon as that time has passed (or at once with --rate 0),
//! appended in place to its partition's open batch, and the batch goes out when it is full
//! (`--batch-size`) or its first record waited `--linger-ms`. Up to `--max-in-flight` Produce
//! requests are outstanding; while the window is full, records are not generated, but they keep
//! their intended times, so the wait counts in their latency (no coordinated omission). The
//! reader side matches responses by correlation id and records, per record, `ack - intended`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::stats::{Counters, Measured};
use super::wire::{self, OpenBatch, RECORD_OVERHEAD_MAX, TIMESTAMP_BYTES};
use super::{KeyMode, Plan, CLIENT_ID};
use crate::client::codec;
use crate::client::error::error_name;

/// Sealed batches a link may hold unsent before it stops generating, at a fixed rate (a memory
/// bound; the schedule's intended times keep running, so a stall shows in the latencies).
const BACKLOG_BYTES_MAX: usize = 32 << 20;
/// At --rate 0 the backlog is kept to this many batches per partition: enough to fill every
/// request of the window, few enough that latency measures the broker, not a client-side queue.
const UNLIMITED_BACKLOG_BATCHES: usize = 2;
/// Keys drawn at most per record while looking for one of the link's own partitions.
const KEY_DRAWS_MAX: usize = 1024;

/// A producer's share of the load on one leader.
pub struct ProducerLink {
    pub addr: String,
    pub partitions: Vec<i32>,
    /// Records per second for this link; 0 = as fast as the window allows.
    pub rate: f64,
    /// Records this link sends, if the run is bounded by --count.
    pub count: Option<u64>,
    /// Seeds the key generator.
    pub seed: u64,
}

struct Sealed {
    bytes: Bytes,
    /// Bytes before compression: what the backlog limit counts, so compressed batches do not
    /// let more records queue in the client.
    raw_bytes: usize,
    records: u64,
    /// Intended send time (ns since the epoch) of each record, in order.
    times: Vec<u64>,
}

struct Part {
    partition: i32,
    records: u64,
    times: Vec<u64>,
}

struct InFlight {
    correlation_id: i32,
    parts: Vec<Part>,
}

struct Generator {
    plan: Arc<Plan>,
    partitions: Vec<i32>,
    open: Vec<Option<(OpenBatch, Instant)>>,
    open_times: Vec<Vec<u64>>,
    sealed: Vec<VecDeque<Sealed>>,
    sealed_bytes: usize,
    sticky: usize,
    generated: u64,
    /// Next key number of --keys sequential (counts the keys skipped for other leaders too).
    key_counter: u64,
    limit: Option<u64>,
    rate: f64,
    rng: u64,
    finished: bool,
    backlog_bytes_max: usize,
    /// Spare vectors of send times, recycled from acknowledged requests.
    spare_times: Rc<RefCell<Vec<Vec<u64>>>>,
    key_buf: [u8; 16],
    /// The partition the next request starts taking from, so a request capped by
    /// `request_bytes_max` does not starve the partitions after it.
    take_from: usize,
}

impl Generator {
    /// A generator for `partitions` (one leader's), `limit` records at `rate` (0: unlimited).
    fn new(
        plan: Arc<Plan>,
        partitions: Vec<i32>,
        limit: Option<u64>,
        rate: f64,
        seed: u64,
        backlog_bytes_max: usize,
        spare_times: Rc<RefCell<Vec<Vec<u64>>>>,
    ) -> Self {
        let n = partitions.len();
        Generator {
            plan,
            partitions,
            open: (0..n).map(|_| None).collect(),
            open_times: (0..n).map(|_| Vec::new()).collect(),
            sealed: (0..n).map(|_| VecDeque::new()).collect(),
            sealed_bytes: 0,
            sticky: 0,
            generated: 0,
            key_counter: 0,
            limit,
            rate,
            rng: seed | 1,
            finished: limit == Some(0),
            backlog_bytes_max,
            spare_times,
            key_buf: [b'0'; 16],
            take_from: 0,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: keys only need to be spread, not unpredictable.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fills `key_buf` with the next key (16 ASCII digits of the key number) and returns the
    /// index of the partition Kafka's partitioner puts it in, or `None` for null keys.
    ///
    /// A link carries only the partitions its leader leads, so with several leaders each link
    /// draws only keys of its own partitions (random: redrawn; sequential: the counter skips the
    /// others): the producer's links together still cover the key space, and every key goes
    /// where any Kafka client would put it. With one leader (Odradek today) nothing is skipped.
    fn next_key(&mut self) -> Option<usize> {
        let space = self.plan.key_space.max(1);
        let mut p = 0;
        // Bounded: a tiny key space may hold no key of this link's partitions at all.
        for _ in 0..KEY_DRAWS_MAX {
            let n = match self.plan.keys {
                KeyMode::None => return None,
                KeyMode::Random => self.next_rand() % space,
                KeyMode::Sequential => {
                    self.key_counter += 1;
                    (self.key_counter - 1) % space
                }
            };
            let mut v = n;
            for b in self.key_buf.iter_mut().rev() {
                *b = b'0' + (v % 10) as u8;
                v /= 10;
            }
            p = wire::partition_for_key(&self.key_buf, self.plan.partition_count as u32) as i32;
            if let Some(idx) = self.partitions.iter().position(|&q| q == p) {
                return Some(idx);
            }
        }
        // No key of ours found: the record still goes out, on one of this link's partitions.
        Some(p as usize % self.partitions.len())
    }

    fn seal(&mut self, idx: usize) {
        let Some((batch, _)) = self.open[idx].take() else { return };
        let records = batch.count as u64;
        let raw_bytes = batch.bytes_len();
        let bytes = batch.seal(self.plan.compression);
        self.sealed_bytes += raw_bytes;
        let fresh = self.spare_times.borrow_mut().pop().unwrap_or_default();
        let times = std::mem::replace(&mut self.open_times[idx], fresh);
        self.sealed[idx].push_back(Sealed { bytes, raw_bytes, records, times });
        if self.plan.keys == KeyMode::None && idx == self.sticky {
            self.sticky = (self.sticky + 1) % self.partitions.len();
        }
    }

    /// Generates every record whose intended time has passed (all it may, at --rate 0).
    fn generate_due(&mut self, now: Instant) {
        let plan = self.plan.clone();
        let record_bytes = plan.value_tail.len() + TIMESTAMP_BYTES;
        while !self.finished {
            if self.limit.is_some_and(|l| self.generated >= l) {
                self.finished = true;
                break;
            }
            if self.sealed_bytes >= self.backlog_bytes_max {
                break;
            }
            let intended = if self.rate > 0.0 {
                let t = plan.load_start + Duration::from_secs_f64(self.generated as f64 / self.rate);
                if t > now {
                    break;
                }
                t
            } else {
                now
            };
            if plan.stop_at.is_some_and(|s| intended >= s) {
                self.finished = true;
                break;
            }
            let keyed = self.next_key();
            let key_len = if keyed.is_some() { self.key_buf.len() } else { 0 };
            let mut idx = keyed.unwrap_or(self.sticky);
            let need = RECORD_OVERHEAD_MAX + key_len + record_bytes;
            if let Some((b, _)) = &self.open[idx] {
                if b.count > 0 && b.bytes_len() + need > plan.batch_size {
                    self.seal(idx);
                    idx = keyed.unwrap_or(self.sticky);
                }
            }
            let (batch, _) =
                self.open[idx].get_or_insert_with(|| (OpenBatch::new(plan.batch_size.max(need)), intended));
            let intended_ns = plan.clock.ns(intended);
            let key = if keyed.is_some() { Some(&self.key_buf[..]) } else { None };
            batch.push(key, intended_ns, &plan.value_tail, (intended_ns / 1_000_000) as i64);
            let full = batch.bytes_len() + need > plan.batch_size;
            self.open_times[idx].push(intended_ns);
            self.generated += 1;
            if full {
                self.seal(idx);
            }
        }
    }

    /// Seals open batches whose linger expired (all of them once generation finished) and
    /// takes one sealed batch per partition for the next request, up to `request_bytes_max`
    /// (at least one batch), taking the partitions in turn.
    fn take_ready(&mut self, now: Instant) -> Vec<(usize, Sealed)> {
        for idx in 0..self.open.len() {
            let expired = self.open[idx].as_ref().is_some_and(|(_, since)| now >= *since + self.plan.linger);
            if expired || self.finished {
                self.seal(idx);
            }
        }
        let mut out = Vec::new();
        let n = self.sealed.len();
        let mut bytes = 0usize;
        for k in 0..n {
            let idx = (self.take_from + k) % n;
            let Some(len) = self.sealed[idx].front().map(|s| s.bytes.len()) else { continue };
            if !out.is_empty() && bytes + len > self.plan.request_bytes_max {
                self.take_from = idx;
                return out;
            }
            if let Some(s) = self.sealed[idx].pop_front() {
                bytes += len;
                self.sealed_bytes -= s.raw_bytes;
                out.push((idx, s));
            }
        }
        out
    }

    /// When something may next become ready: the next record's intended time or the first
    /// linger expiry.
    fn next_event(&self, now: Instant) -> Instant {
        let mut at = now + Duration::from_millis(50);
        if self.rate > 0.0 && !self.finished {
            at = at.min(self.plan.load_start + Duration::from_secs_f64(self.generated as f64 / self.rate));
        }
        for (_, since) in self.open.iter().flatten() {
            at = at.min(*since + self.plan.linger);
        }
        at
    }

    fn idle(&self) -> bool {
        self.finished && self.open.iter().all(Option::is_none) && self.sealed.iter().all(VecDeque::is_empty)
    }
}

fn produce_request(plan: &Plan, topic: &TopicName, partitions: &[i32], ready: &[(usize, Sealed)]) -> ProduceRequest {
    let data = ready
        .iter()
        .map(|(idx, s)| {
            PartitionProduceData::default().with_index(partitions[*idx]).with_records(Some(s.bytes.clone()))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(plan.acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic.clone()).with_partition_data(data)])
}

/// Runs one link to the end of the schedule and until every request was answered.
/// What a link's writer (the [`run`] loop) and its response reader share, on one core.
#[derive(Clone)]
struct LinkState {
    measured: Rc<RefCell<Measured>>,
    /// Requests sent and not answered yet, oldest first.
    in_flight: Rc<RefCell<VecDeque<InFlight>>>,
    /// `max_in_flight` permits: one per request on the wire.
    window: Rc<Semaphore>,
    /// Why the reader stopped, if it failed.
    failure: Rc<RefCell<Option<String>>>,
    /// Emptied send-time vectors, reused by the generator.
    spare_times: Rc<RefCell<Vec<Vec<u64>>>>,
}

pub async fn run(plan: Arc<Plan>, link: ProducerLink) -> Result<Measured, String> {
    let stream = TcpStream::connect(link.addr.as_str())
        .await
        .map_err(|e| format!("cannot connect to broker {}: {e}", link.addr))?;
    stream.set_nodelay(true).map_err(|e| format!("TCP_NODELAY on {}: {e}", link.addr))?;
    let (rd, mut wr) = futures_lite::io::split(stream);
    let st = LinkState {
        measured: Rc::new(RefCell::new(Measured::new(plan.measured_start_ns))),
        in_flight: Rc::new(RefCell::new(VecDeque::new())),
        window: Rc::new(Semaphore::new(plan.max_in_flight as u64)),
        failure: Rc::new(RefCell::new(None)),
        spare_times: Rc::new(RefCell::new(Vec::new())),
    };
    let record_bytes = (plan.value_tail.len() + TIMESTAMP_BYTES + plan.keys.key_bytes()) as u64;
    let version = plan.produce_version;
    let reader = (plan.acks != 0).then(|| spawn_reader(plan.clone(), st.clone(), rd, link.addr.clone(), record_bytes));

    let topic = TopicName(StrBytes::from_string(plan.topic.clone()));
    let n = link.partitions.len();
    let backlog_bytes_max =
        if link.rate > 0.0 { BACKLOG_BYTES_MAX } else { UNLIMITED_BACKLOG_BATCHES * n * plan.batch_size };
    let mut gen = Generator::new(
        plan.clone(),
        link.partitions.clone(),
        link.count,
        link.rate,
        link.seed,
        backlog_bytes_max,
        st.spare_times.clone(),
    );
    let mut correlation_id = 0i32;
    let fail = |e: String| st.failure.borrow_mut().take().unwrap_or(e);
    loop {
        let now = Instant::now();
        gen.generate_due(now);
        let ready = gen.take_ready(now);
        if ready.is_empty() {
            if gen.idle() {
                break;
            }
            let wake = gen.next_event(now);
            if wake > now {
                glommio::timer::sleep(wake - now).await;
            }
            continue;
        }
        st.window.acquire(1).await.map_err(|_| fail("the response reader stopped".into()))?;
        correlation_id = correlation_id.wrapping_add(1);
        let req = produce_request(&plan, &topic, &link.partitions, &ready);
        let frame = codec::encode_request(version, correlation_id, Some(CLIENT_ID), &req)
            .map_err(|e| format!("encoding a Produce request: {e}"))?;
        let parts: Vec<Part> = ready
            .into_iter()
            .map(|(idx, s)| Part { partition: link.partitions[idx], records: s.records, times: s.times })
            .collect();
        if plan.acks == 0 {
            wr.write_all(&frame).await.map_err(|e| fail(format!("writing to {}: {e}", link.addr)))?;
            let sent_ns = plan.clock.now_ns();
            let mut m = st.measured.borrow_mut();
            for p in &parts {
                for &t in &p.times {
                    m.sent_unacked(t, sent_ns, record_bytes);
                }
                Counters::add(&plan.counters.produced_records, p.records);
                Counters::add(&plan.counters.produced_bytes, p.records * record_bytes);
            }
            st.window.signal(1);
        } else {
            st.in_flight.borrow_mut().push_back(InFlight { correlation_id, parts });
            wr.write_all(&frame).await.map_err(|e| fail(format!("writing to {}: {e}", link.addr)))?;
        }
    }
    // Every request answered: the whole window is free again.
    st.window.acquire(plan.max_in_flight as u64).await.map_err(|_| fail("the response reader stopped".into()))?;
    if let Some(reader) = reader {
        reader.cancel().await;
    }
    let _ = wr.close().await;
    Counters::add(&plan.counters.producers_done, 1);
    let m = std::mem::replace(&mut *st.measured.borrow_mut(), Measured::new(plan.measured_start_ns));
    Ok(m)
}

/// The link's response reader (acks 1 and all): matches each answer to its request, accounts
/// for it and frees its slot in the window. On a failure it records why and closes the window,
/// which stops the writer.
fn spawn_reader(
    plan: Arc<Plan>,
    st: LinkState,
    mut rd: futures_lite::io::ReadHalf<TcpStream>,
    addr: String,
    record_bytes: u64,
) -> glommio::Task<()> {
    let version = plan.produce_version;
    glommio::spawn_local(async move {
        let mut frames = wire::FrameReader::new(codec::FRAME_BYTES_MAX);
        let r: Result<(), String> = async {
            loop {
                let frame = frames.next(&mut rd).await.map_err(|e| format!("reading from {addr}: {e}"))?;
                let (id, resp) = codec::decode_response::<ProduceResponse>(version, frame)
                    .map_err(|e| format!("Produce response from {addr}: {e}"))?;
                let entry = {
                    let mut q = st.in_flight.borrow_mut();
                    let pos = q.iter().position(|f| f.correlation_id == id).ok_or_else(|| {
                        format!("{addr} answered correlation id {id}, which no request in flight has")
                    })?;
                    q.remove(pos).ok_or_else(|| "in-flight entry vanished".to_string())?
                };
                account(&plan, &st, entry, &resp, record_bytes);
                st.window.signal(1);
            }
        }
        .await;
        if let Err(e) = r {
            *st.failure.borrow_mut() = Some(e);
            st.window.close();
        }
    })
}

/// Accounts for one answered request: latencies and counts of the acknowledged partitions,
/// errors of the others; their send-time vectors go back to the spares.
fn account(plan: &Plan, st: &LinkState, entry: InFlight, resp: &ProduceResponse, record_bytes: u64) {
    let now_ns = plan.clock.now_ns();
    let mut m = st.measured.borrow_mut();
    for part in entry.parts {
        let code = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == part.partition)
            .map_or(-1, |p| p.error_code);
        if code == 0 {
            for &t in &part.times {
                m.acked(t, now_ns, record_bytes);
            }
            Counters::add(&plan.counters.produced_records, part.records);
            Counters::add(&plan.counters.produced_bytes, part.records * record_bytes);
        } else {
            m.produce_errors += part.records;
            Counters::add(&plan.counters.produce_errors, part.records);
            plan.note_error(format!(
                "partition {} answered {}",
                part.partition,
                if code == -1 { "nothing".to_string() } else { error_name(code) }
            ));
        }
        let mut times = part.times;
        times.clear();
        st.spare_times.borrow_mut().push(times);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Clock, Kind};
    use std::sync::atomic::AtomicBool;

    fn plan(keys: KeyMode, key_space: u64, partition_count: i32) -> Arc<Plan> {
        let clock = Clock::new();
        Arc::new(Plan {
            kind: Kind::Produce,
            topic: "t".into(),
            partition_count,
            keys,
            key_space,
            acks: -1,
            compression: engine::Compression::None,
            batch_size: 16384,
            linger: Duration::from_millis(5),
            request_bytes_max: 1 << 20,
            max_in_flight: 5,
            produce_version: 9,
            fetch_version: 12,
            value_tail: Bytes::from_static(b"xx"),
            clock,
            load_start: Instant::now(),
            stop_at: None,
            measured_start_ns: 0,
            consume_count: None,
            producer_links: 1,
            counters: Counters::default(),
            abort: AtomicBool::new(false),
            errors: Default::default(),
        })
    }

    fn generator(plan: Arc<Plan>, partitions: Vec<i32>) -> Generator {
        Generator::new(plan, partitions, None, 0.0, 7, 1 << 20, Rc::new(RefCell::new(Vec::new())))
    }

    #[test]
    fn a_link_of_one_leader_draws_only_keys_of_its_partitions() {
        // Partitions 1 and 3 of 4 are this leader's: sequential keys skip the others, in order.
        let mut g = generator(plan(KeyMode::Sequential, 1_000, 4), vec![1, 3]);
        let mut expected = (0..1_000u64).map(|n| format!("{n:016}")).filter(|k| {
            let p = wire::partition_for_key(k.as_bytes(), 4);
            p == 1 || p == 3
        });
        for _ in 0..300 {
            let idx = g.next_key().expect("keyed");
            let key = std::str::from_utf8(&g.key_buf).expect("ascii").to_string();
            assert_eq!(Some(key.clone()), expected.next());
            assert_eq!(g.partitions[idx] as u32, wire::partition_for_key(key.as_bytes(), 4));
        }
        // Random keys too land only on the link's partitions, where murmur2 puts them.
        let mut g = generator(plan(KeyMode::Random, 1_000_000, 4), vec![0, 2]);
        for _ in 0..300 {
            let idx = g.next_key().expect("keyed");
            assert_eq!(g.partitions[idx] as u32, wire::partition_for_key(&g.key_buf, 4));
        }
        // One leader for everything: every key is taken as drawn.
        let mut g = generator(plan(KeyMode::Sequential, 10, 3), vec![0, 1, 2]);
        let keys: Vec<String> = (0..12)
            .map(|_| {
                g.next_key().expect("keyed");
                String::from_utf8(g.key_buf.to_vec()).expect("ascii")
            })
            .collect();
        assert_eq!(keys[0], "0000000000000000");
        assert_eq!(keys[9], "0000000000000009");
        assert_eq!(keys[10], "0000000000000000");
        assert_eq!(generator(plan(KeyMode::None, 10, 3), vec![0]).next_key(), None);
    }

    #[test]
    fn requests_stay_under_the_size_cap_and_take_the_partitions_in_turn() {
        let mut p = Arc::try_unwrap(plan(KeyMode::Random, 1_000_000, 40)).unwrap_or_else(|_| unreachable!());
        p.batch_size = 1024;
        p.request_bytes_max = 8 * 1024;
        let partitions: Vec<i32> = (0..40).collect();
        let mut g =
            Generator::new(Arc::new(p), partitions, Some(4_000), 0.0, 11, 64 << 20, Rc::new(RefCell::new(Vec::new())));
        let mut taken = vec![0u64; 40];
        let mut requests = 0u64;
        let mut records = 0;
        let mut total_bytes = 0usize;
        while !g.idle() {
            g.generate_due(Instant::now());
            let ready = g.take_ready(Instant::now());
            if ready.is_empty() {
                continue;
            }
            requests += 1;
            let bytes: usize = ready.iter().map(|(_, s)| s.bytes.len()).sum();
            total_bytes += bytes;
            assert!(ready.len() == 1 || bytes <= 8 * 1024, "{bytes} bytes in one request");
            for (idx, s) in &ready {
                taken[*idx] += 1;
                records += s.records;
            }
        }
        assert_eq!(records, 4_000, "every record goes out exactly once");
        let batches: u64 = taken.iter().sum();
        assert!(
            batches > 40 && requests as usize >= total_bytes / (8 * 1024),
            "{batches} batches, {requests} requests"
        );
        // Taken in turn: no partition waits while others go twice.
        let (min, max) = (taken.iter().min().copied(), taken.iter().max().copied());
        assert!(min.is_some_and(|m| m > 0) && max.zip(min).is_some_and(|(a, b)| a - b <= b + 2), "{taken:?}");
    }
}
