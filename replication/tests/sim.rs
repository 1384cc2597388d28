//! A deterministic simulation of one node's shard logic (issue 10, item 8).
//!
//! Two storage shards over one in-memory store (with its crash model), their partition shards,
//! the router and a pump per shard, all on a single-threaded executor written here
//! ([`exec`]): each step polls one ready task chosen by a seeded PRNG, and the shards' clock is
//! a manual one. So a seed fixes everything: which operations run, how their tasks interleave,
//! where a crash tears each file. Per seed, a few hundred random operations run with several
//! client requests in flight: produce (acks=all / acks=1, 1-3 partitions of 2 topics × 3
//! partitions per request), pipelined produce (2-4 requests sent before any answer), fetch,
//! offsets, segment rolls, DeleteRecords, time/size retention, clock ticks, quiet full scans,
//! clean restarts and crashes. The model ([`model`]) checks:
//!
//! 1. nothing acknowledged with acks=all is lost, by a crash or a restart, unless deleted;
//! 2. offsets are dense from the log start to the log end, each holding exactly one record
//!    that was sent there, byte for byte;
//! 3. the high watermark never goes back within a life or across a clean restart, and no
//!    record a fetch returned below the high watermark vanishes or changes, even by a crash
//!    (`SIM_SKIP_SERVED_DURABLE=1` skips the crash half);
//! 4. every fetched batch parses (CRC), decodes, lies within what was asked, and carries a
//!    leader epoch no newer than the partition's;
//! 5. every restart and crash gives each partition a strictly greater leader epoch;
//! 6. requests a client sends one after another without waiting (pipelined on one
//!    connection) append to each partition in the order sent.
//!
//! `SIM_SEEDS=n` runs seeds `SIM_SEEDS_FROM..+n` (default 0..300); `SIM_SEED=s` runs one. A
//! failure prints the seed's command and its last operations.
//!
//! Not simulated: the door's admission limits, long polls and timers (glommio), coordinator
//! calls, TruncateTo, injected I/O errors, more than one node.

#[path = "sim/exec.rs"]
mod exec;
#[path = "sim/model.rs"]
mod model;
#[path = "sim/node.rs"]
mod node;

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use engine::log::{Durability, LogConfig};
use engine::records::{BatchBuilder, Record};
use engine::shard::TopicPartition;
use engine::{Compression, ValidatedBatches};
use replication::{AppendItem, EpochQuery, Offset, PartitionOffsets, Placement, ReadItem, Router, ShardId};

use exec::{clock, set_clock, Exec, Kind, Rng};
use model::{key_prefix, Id, Model, ReadAsk, Seen};
use node::{Life, NoCall, NodeSpec, Req};

const TOPICS: [&str; 2] = ["orders", "click-stream"];
const PARTITIONS: i32 = 3;
const OPS_PER_SEED: usize = 250;
const CLIENTS_IN_FLIGHT_MAX: usize = 8;
/// Polls one seed may take: far above what a run needs, so reaching it means a livelock.
const POLLS_MAX: u64 = 5_000_000;
const CLOCK_START_MS: i64 = 1_700_000_000_000;

type Shared = Rc<RefCell<Model>>;
/// One owner's share of a produce request: per partition, its batches and their records.
type OwnerAppend = (ShardId, Vec<(usize, ValidatedBatches, Vec<Id>)>);

/// One owner's append request from its items: what the model had seen of each partition
/// before, the ids asked per partition, and the items to send.
#[allow(clippy::type_complexity)]
fn append_request(
    model: &Shared,
    tps: &[TopicPartition],
    items: Vec<(usize, ValidatedBatches, Vec<Id>)>,
    durable: bool,
) -> (Vec<Seen>, Vec<(usize, Vec<Id>)>, Vec<AppendItem>) {
    let before = items.iter().map(|(p, _, _)| model.borrow().seen(*p)).collect();
    let mut asked = Vec::new();
    let mut req = Vec::new();
    for (p, batches, ids) in items {
        asked.push((p, ids));
        req.push(AppendItem { tp: tps[p].clone(), batches, durable });
    }
    (before, asked, req)
}

/// How much of what was written since the last sync a crash keeps, per file.
#[derive(Clone, Copy)]
enum Torn {
    /// Nothing, everything or a random prefix, by the seed.
    Seeded,
    Nothing,
    /// At most this many bytes of each file.
    Exactly(usize),
}

struct Sim {
    seed: u64,
    rng: Rng,
    exec: Rc<Exec>,
    spec: NodeSpec,
    tps: Vec<TopicPartition>,
    model: Shared,
    life: Option<Life>,
    generation: i32,
    produced: u64,
    /// The command that replays this run (printed with a failure).
    replay: String,
}

/// Small segments, caches and buffers, so rolls, cache misses and disk reads are frequent.
fn log_config(rng: &mut Rng) -> LogConfig {
    LogConfig {
        segment_bytes: rng.range(6_000, 20_000) as u64,
        segment_ms: 20_000,
        index_interval_bytes: rng.range(256, 2048) as u64,
        durability: Durability::Always,
        tail_cache_bytes_max: rng.range(0, 8_000) as usize,
        write_chunk_bytes: 8192,
        write_behind_bytes: 4096,
        write_buffer_bytes_max: 16_384,
        writes_in_flight_max: rng.range(1, 3) as usize,
        ..LogConfig::default()
    }
}

fn all_partitions() -> Vec<TopicPartition> {
    TOPICS.iter().flat_map(|t| (0..PARTITIONS).map(move |p| TopicPartition::new(t, p))).collect()
}

/// The default placement, with some partitions moved, so both rules are exercised.
fn placement(rng: &mut Rng, tps: &[TopicPartition]) -> Placement {
    let mut placement = Placement::new();
    for tp in tps {
        if rng.chance(30) {
            placement = placement.with_entry(tp.clone(), ShardId(rng.below(node::SHARDS as u64) as usize));
        }
    }
    placement
}

async fn offsets_of(router: &Router<NoCall>, tp: &TopicPartition) -> Result<PartitionOffsets, String> {
    let tps = vec![tp.clone()];
    let r = router.call(router.owner(tp), |reply| Req::Offsets { tps, reply }).await;
    match r.map(|mut v| v.pop()) {
        Ok(Some(Ok(o))) => Ok(o),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) => Err("no answer".into()),
        Err(e) => Err(e.to_string()),
    }
}

async fn read_one(
    router: &Router<NoCall>,
    tp: &TopicPartition,
    ask: &ReadAsk,
    current_leader_epoch: i32,
) -> Result<engine::log::ReadResult, replication::PartitionError> {
    let (offset, bytes_max, end_offset) = (ask.offset, ask.bytes_max, ask.end_offset);
    let (offset, end_offset) = (Offset(offset), end_offset.map(Offset));
    let items =
        vec![ReadItem { tp: tp.clone(), offset, bytes_max, end_offset, current_leader_epoch, read_committed: false }];
    let mut out = router.call(router.owner(tp), |reply| Req::Read { items, reply }).await?;
    out.pop().unwrap_or_else(|| Err(replication::PartitionError::ShardGone(router.owner(tp))))
}

impl Sim {
    fn new(seed: u64, strict_served: bool) -> Self {
        set_clock(CLOCK_START_MS);
        let mut rng = Rng::new(seed);
        let tps = all_partitions();
        let spec = NodeSpec {
            storage: engine::io::mem::MemStorage::new(),
            config: log_config(&mut rng),
            placement: Arc::new(placement(&mut rng, &tps)),
            inbox_depth: rng.range(1, 8) as usize,
        };
        let names = tps.iter().map(TopicPartition::dir_name).collect();
        let model = Rc::new(RefCell::new(Model::new(names, strict_served)));
        let skip = if strict_served { "" } else { "SIM_SKIP_SERVED_DURABLE=1 " };
        let replay = format!("{skip}SIM_SEED={seed} cargo test -p odradek-replication --test sim -- --nocapture");
        Self { seed, rng, exec: Exec::new(), spec, tps, model, life: None, generation: -1, produced: 0, replay }
    }

    fn failed(&self) -> bool {
        self.model.borrow().failure.is_some()
    }
    fn note(&self, line: String) {
        self.model.borrow_mut().note(line);
    }
    fn fail(&self, msg: String) {
        self.model.borrow_mut().fail(msg);
    }
    fn life(&self) -> &Life {
        self.life.as_ref().expect("a running node")
    }

    /// Polls one ready task; a client waiting with nothing ready is a hang.
    fn step(&mut self) -> bool {
        if self.exec.polls() > POLLS_MAX {
            self.fail(format!("no progress after {POLLS_MAX} polls (livelock)"));
            return false;
        }
        if self.exec.step(&mut self.rng) {
            return true;
        }
        if self.exec.clients() > 0 {
            self.fail(format!("hang: {} client requests wait and no task is ready", self.exec.clients()));
        }
        false
    }

    fn steps(&mut self, n: u64) {
        for _ in 0..n {
            if !self.step() || self.failed() {
                return;
            }
        }
    }

    /// Runs the executor until every client request has finished.
    fn drain(&mut self) {
        while self.exec.clients() > 0 && !self.failed() && self.step() {}
    }

    /// Runs `fut` as a client task (others go on meanwhile) until it finishes.
    fn run_until<T: 'static>(&mut self, fut: impl std::future::Future<Output = T> + 'static) -> Option<T> {
        let out = Rc::new(RefCell::new(None));
        let slot = out.clone();
        self.exec.spawn(Kind::Client, async move {
            let v = fut.await;
            *slot.borrow_mut() = Some(v);
        });
        while out.borrow().is_none() && !self.failed() && self.step() {}
        out.take()
    }

    /// Starts the next life of the node: recovers both shards, checks what survived.
    fn start_life(&mut self, crashed: bool) {
        self.generation += 1;
        self.model.borrow_mut().life = self.generation as u32;
        let stores = self.spec.stores(&self.exec);
        let mut loaded = Vec::new();
        for store in &stores {
            let (store, owner) = (store.clone(), self.spec.placement_fn());
            match self.run_until(async move { store.load(&owner).await.map_err(|e| e.to_string()) }) {
                Some(Ok(l)) => loaded.push(l),
                Some(Err(e)) => return self.fail(format!("recovery failed: {e}")),
                None => return,
            }
        }
        let life = self.spec.serve(&self.exec, stores, loaded, self.generation);
        self.life = Some(life);
        if self.generation == 0 {
            self.create_partitions();
        }
        let (router, tps, model) = (self.life().router.clone(), self.tps.clone(), self.model.clone());
        self.run_until(async move {
            for (p, tp) in tps.iter().enumerate() {
                match offsets_of(&router, tp).await {
                    Ok(o) => model.borrow_mut().check_new_life(p, &o, crashed),
                    Err(e) => model.borrow_mut().fail(format!("{tp:?}: offsets after restart: {e}")),
                }
            }
        });
        self.audit();
    }

    fn create_partitions(&mut self) {
        let (router, tps, config) = (self.life().router.clone(), self.tps.clone(), self.spec.config);
        let model = self.model.clone();
        self.run_until(async move {
            for tp in tps {
                let (t, config) = (tp.clone(), config);
                let r = router.call(router.owner(&tp), |reply| Req::CreatePartition { tp: t, config, reply }).await;
                if !matches!(r, Ok(Ok(()))) {
                    model
                        .borrow_mut()
                        .fail(format!("{tp:?}: create failed: {:?}", r.map(|r| r.map_err(|e| e.to_string()))));
                }
            }
        });
    }
}

// ---- client operations ---------------------------------------------------------------------

impl Sim {
    fn codec(&mut self) -> Compression {
        [
            Compression::None,
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ][self.rng.below(6) as usize]
    }

    /// One random record, remembered as sent to partition `p`.
    fn record(&mut self, p: usize, id: Id) -> Record {
        let mut key = key_prefix(id);
        let extra = self.rng.below(8) as usize;
        key.extend(self.rng.bytes(extra));
        let value = if self.rng.chance(10) {
            None
        } else {
            let len = self.rng.below(200) as usize;
            Some(self.rng.bytes(len))
        };
        let mut r = Record::new(Some(key), value).with_timestamp(clock() + self.rng.range(-1000, 1000));
        for h in 0..self.rng.below(3) {
            let len = self.rng.below(20) as usize;
            let v = if self.rng.chance(20) { None } else { Some(self.rng.bytes(len)) };
            r = r.with_header(&format!("h{h}"), v);
        }
        self.model.borrow_mut().sent.insert(id, (p, r.clone()));
        r
    }

    /// 1-2 batches of 1-5 records for partition `p`, as one producer request's partition.
    fn batches(&mut self, p: usize, seq: u64) -> (ValidatedBatches, Vec<Id>) {
        let mut bytes = BytesMut::new();
        let mut ids = Vec::new();
        for b in 0..self.rng.range(1, 2) as u16 {
            let mut builder = BatchBuilder::new(self.codec(), clock());
            for i in 0..self.rng.range(1, 5) as u16 {
                let id = (seq, ((p as u16) << 8) | b, i);
                let r = self.record(p, id);
                builder.push(r);
                ids.push(id);
            }
            bytes.extend_from_slice(&builder.build());
        }
        (ValidatedBatches::new(bytes, usize::MAX).expect("built batches are valid"), ids)
    }

    fn spawn_produce(&mut self) {
        let durable = self.rng.chance(50);
        let mut ps: Vec<usize> =
            (0..self.rng.range(1, 3)).map(|_| self.rng.below(self.tps.len() as u64) as usize).collect();
        ps.sort_unstable();
        ps.dedup();
        self.spawn_produce_to(ps, durable);
    }

    /// One produce request to the partitions `ps` (distinct), acks=all if `durable`.
    fn spawn_produce_to(&mut self, ps: Vec<usize>, durable: bool) {
        let seq = self.produced;
        self.produced += 1;
        let router = self.life().router.clone();
        // One request per owner, as a produce handler sends them.
        let mut groups: Vec<OwnerAppend> = Vec::new();
        for p in ps {
            let (batches, ids) = self.batches(p, seq);
            let owner = router.owner(&self.tps[p]);
            match groups.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, items)) => items.push((p, batches, ids)),
                None => groups.push((owner, vec![(p, batches, ids)])),
            }
        }
        let what: Vec<String> = groups
            .iter()
            .flat_map(|(_, items)| items.iter().map(|(p, _, ids)| format!("{}x{}", self.tps[*p].dir_name(), ids.len())))
            .collect();
        self.note(format!("produce #{seq} acks={} {}", if durable { "all" } else { "1" }, what.join(" ")));
        let (model, tps) = (self.model.clone(), self.tps.clone());
        self.exec.spawn(Kind::Client, async move {
            for (owner, items) in groups {
                let (before, asked, req) = append_request(&model, &tps, items, durable);
                match router.call(owner, |reply| Req::Append { items: req, reply }).await {
                    Ok(results) => {
                        let mut m = model.borrow_mut();
                        for (((p, ids), r), before) in asked.iter().zip(results).zip(before) {
                            let r = r.map(|i| (i.base_offset, i.last_offset)).map_err(|e| e.to_string());
                            m.check_ack(*p, before, ids, durable, r);
                        }
                    }
                    Err(e) => model.borrow_mut().fail(format!("append to shard {owner}: {e}")),
                }
            }
        });
    }

    /// 2-4 produce requests to partitions of `ps`, each sent (in one inbox order) before any
    /// answer is awaited: a client pipelining on one connection. Each partition's appends
    /// must take offsets in the order the requests were sent (invariant 6).
    fn spawn_pipelined(&mut self) {
        let durable = self.rng.chance(50);
        let p0 = self.rng.below(self.tps.len() as u64) as usize;
        let p1 = self.rng.below(self.tps.len() as u64) as usize;
        let router = self.life().router.clone();
        let mut requests: Vec<(u64, Vec<OwnerAppend>)> = Vec::new();
        for _ in 0..self.rng.range(2, 4) {
            let seq = self.produced;
            self.produced += 1;
            let mut ps = vec![if self.rng.chance(50) { p0 } else { p1 }];
            if self.rng.chance(30) {
                ps.push(if ps[0] == p0 { p1 } else { p0 });
            }
            ps.dedup();
            let mut groups: Vec<OwnerAppend> = Vec::new();
            for p in ps {
                let (batches, ids) = self.batches(p, seq);
                let owner = router.owner(&self.tps[p]);
                match groups.iter_mut().find(|(o, _)| *o == owner) {
                    Some((_, items)) => items.push((p, batches, ids)),
                    None => groups.push((owner, vec![(p, batches, ids)])),
                }
            }
            requests.push((seq, groups));
        }
        let seqs: Vec<String> = requests.iter().map(|(s, _)| format!("#{s}")).collect();
        self.note(format!("pipelined produce {} acks={}", seqs.join(" "), if durable { "all" } else { "1" }));
        let (model, tps) = (self.model.clone(), self.tps.clone());
        self.exec.spawn(Kind::Client, async move {
            // Everything sent first, in order; then the answers.
            let mut sent = Vec::new();
            for (seq, groups) in requests {
                for (owner, items) in groups {
                    let (before, asked, req) = append_request(&model, &tps, items, durable);
                    match router.ask(owner, |reply| Req::Append { items: req, reply }).await {
                        Ok(rx) => sent.push((seq, owner, asked, before, rx)),
                        Err(e) => return model.borrow_mut().fail(format!("append to shard {owner}: {e}")),
                    }
                }
            }
            let mut last_base: Vec<Option<(u64, i64)>> = vec![None; tps.len()];
            for (seq, owner, asked, before, rx) in sent {
                let Ok(results) = rx.recv_async().await else {
                    return model.borrow_mut().fail(format!("append to shard {owner}: no answer"));
                };
                let mut m = model.borrow_mut();
                for (((p, ids), r), before) in asked.iter().zip(results).zip(before) {
                    let r = r.map(|i| (i.base_offset, i.last_offset)).map_err(|e| e.to_string());
                    if let Ok((base, _)) = r {
                        if let Some((earlier, at)) = last_base[*p] {
                            let msg = format!(
                                "{}: pipelined #{seq} appended at {base}, before #{earlier} sent earlier (at {at})",
                                tps[*p].dir_name()
                            );
                            m.ensure(base > at, || msg);
                        }
                        last_base[*p] = Some((seq, base));
                    }
                    m.check_ack(*p, before, ids, durable, r);
                }
            }
        });
    }

    fn spawn_fetch(&mut self) {
        let p = self.rng.below(self.tps.len() as u64) as usize;
        let (seen, epoch) = {
            let m = self.model.borrow();
            (m.seen(p), m.parts[p].epoch)
        };
        let ask = ReadAsk {
            offset: self.rng.range(seen.start, seen.hw),
            bytes_max: self.rng.range(1, 6000) as usize,
            end_offset: None,
        };
        let current = if self.rng.chance(50) { epoch } else { -1 };
        self.note(format!("fetch {} at {} max {} epoch {current}", self.tps[p].dir_name(), ask.offset, ask.bytes_max));
        let (router, model, tp) = (self.life().router.clone(), self.model.clone(), self.tps[p].clone());
        self.exec.spawn(Kind::Client, async move {
            let before = model.borrow().seen(p);
            let r = read_one(&router, &tp, &ask, current).await;
            model.borrow_mut().check_read(p, before, &ask, r);
        });
    }

    /// Offsets and OffsetForLeaderEpoch (current epoch) for every partition of one shard.
    fn spawn_offsets(&mut self) {
        let owner = ShardId(self.rng.below(node::SHARDS as u64) as usize);
        let router = self.life().router.clone();
        let mine: Vec<usize> = (0..self.tps.len()).filter(|&p| router.owner(&self.tps[p]) == owner).collect();
        self.note(format!("offsets of shard {owner}"));
        let (model, tps) = (self.model.clone(), self.tps.clone());
        self.exec.spawn(Kind::Client, async move {
            let before: Vec<_> = mine.iter().map(|&p| model.borrow().seen(p)).collect();
            let asked: Vec<_> = mine.iter().map(|&p| tps[p].clone()).collect();
            let epochs: Vec<_> = mine.iter().map(|&p| model.borrow().parts[p].epoch).collect();
            let offsets = router.call(owner, |reply| Req::Offsets { tps: asked, reply }).await;
            let items = mine
                .iter()
                .zip(&epochs)
                .map(|(&p, &e)| EpochQuery {
                    tp: tps[p].clone(),
                    current_leader_epoch: e,
                    leader_epoch: replication::LeaderEpoch(e),
                })
                .collect();
            let ends = router.call(owner, |reply| Req::EndOffsetForEpoch { items, reply }).await;
            let mut m = model.borrow_mut();
            let (Ok(offsets), Ok(ends)) = (offsets, ends) else { return m.fail(format!("shard {owner} gone")) };
            for (((&p, o), end), before) in mine.iter().zip(offsets).zip(ends).zip(before) {
                match (o, end) {
                    (Ok(o), Ok((e, end))) => {
                        m.check_partition_offsets(p, before, &o);
                        let (n, want) = (m.names[p].clone(), m.parts[p].epoch);
                        let end = end.get();
                        let ok = e.get() == want && end >= before.leo;
                        if !ok {
                            m.fail(format!(
                                "{n}: end of epoch {want} answered as ({}, {end}), log end was {}",
                                e.get(),
                                before.leo
                            ));
                        }
                    }
                    (o, end) => {
                        let n = m.names[p].clone();
                        m.fail(format!("{n}: offsets {:?} / end offset {:?}", o.err(), end.err()));
                    }
                }
            }
        });
    }
}

// ---- storage operations, time, restarts ----------------------------------------------------

impl Sim {
    fn random_partition(&mut self) -> (usize, TopicPartition, usize) {
        let p = self.rng.below(self.tps.len() as u64) as usize;
        let tp = self.tps[p].clone();
        let owner = self.life().router.owner(&tp).index();
        (p, tp, owner)
    }

    fn spawn_roll(&mut self) {
        let (_, tp, owner) = self.random_partition();
        self.note(format!("roll {}", tp.dir_name()));
        let (store, model) = (self.life().stores[owner].clone(), self.model.clone());
        self.exec.spawn(Kind::Client, async move {
            let Some(log) = store.log(&tp) else { return model.borrow_mut().fail(format!("{tp:?}: no log to roll")) };
            if let Err(e) = log.roll_now(clock()).await {
                model.borrow_mut().fail(format!("{tp:?}: roll failed: {e}"));
            }
        });
    }

    /// DeleteRecords up to a random offset at or below the high watermark seen.
    fn spawn_delete_before(&mut self) {
        let (p, tp, _) = self.random_partition();
        let seen = self.model.borrow().seen(p);
        let offset = self.rng.range(seen.start, seen.hw);
        self.note(format!("delete-before {} {offset}", tp.dir_name()));
        self.model.borrow_mut().allow_start(p, offset);
        let (router, model) = (self.life().router.clone(), self.model.clone());
        self.exec.spawn(Kind::Client, async move {
            let t = tp.clone();
            let r = router
                .call(router.owner(&tp), |reply| Req::DeleteBefore { tp: t, offset: Offset(offset), reply })
                .await;
            let mut m = model.borrow_mut();
            match r {
                Ok(Ok(start)) if start.get() >= offset => {
                    m.note(format!("  {} log start now {start}", tp.dir_name()));
                    m.parts[p].acked_start = m.parts[p].acked_start.max(start.get());
                }
                other => {
                    m.fail(format!("{tp:?}: delete-before {offset}: {:?}", other.map(|r| r.map_err(|e| e.to_string()))))
                }
            }
        });
    }

    /// Time and size retention, as the broker's retention pass applies it.
    fn spawn_retention(&mut self) {
        let (p, tp, owner) = self.random_partition();
        let ms = self.rng.chance(50).then(|| self.rng.range(0, 60_000));
        let bytes = self.rng.chance(50).then(|| self.rng.range(0, 40_000) as u64);
        self.note(format!("retention {} ms {ms:?} bytes {bytes:?}", tp.dir_name()));
        let (store, shard, model) =
            (self.life().stores[owner].clone(), self.life().shards[owner].clone(), self.model.clone());
        self.exec.spawn(Kind::Client, async move {
            let (Some(log), Some(partition)) = (store.log(&tp), shard.partition(&tp)) else {
                return model.borrow_mut().fail(format!("{tp:?}: no partition for retention"));
            };
            let now = clock();
            // The cut apply_retention computes in the same poll: the model's bound on the start.
            if let Some(cut) = log.retention_offset(now, ms, bytes) {
                model.borrow_mut().allow_start(p, cut);
            }
            if let Err(e) = partition.apply_retention(now, ms, bytes).await {
                model.borrow_mut().fail(format!("{tp:?}: retention failed: {e}"));
            }
        });
    }

    fn advance_clock(&mut self) {
        let by = match self.rng.weighted(&[6, 3, 1]) {
            0 => self.rng.range(1, 100),
            1 => self.rng.range(100, 5_000),
            _ => self.rng.range(20_000, 120_000),
        };
        set_clock(clock() + by);
        self.note(format!("clock +{by} ms, tick"));
        for store in self.life().stores.clone() {
            self.exec.spawn(Kind::Client, async move { store.tick().await });
        }
    }

    /// With nothing in flight, reads every partition from its log start to its log end.
    fn audit(&mut self) {
        self.drain();
        if self.failed() {
            return;
        }
        let bytes_max = self.rng.range(1, 10_000) as usize;
        self.note(format!("audit, reads of {bytes_max} bytes"));
        let (router, tps, model) = (self.life().router.clone(), self.tps.clone(), self.model.clone());
        self.run_until(async move {
            for (p, tp) in tps.iter().enumerate() {
                let before = model.borrow().seen(p);
                let o = match offsets_of(&router, tp).await {
                    Ok(o) => o,
                    Err(e) => return model.borrow_mut().fail(format!("{tp:?}: offsets: {e}")),
                };
                model.borrow_mut().check_partition_offsets(p, before, &o);
                let mut read: Vec<i64> = Vec::new();
                let mut at = o.log_start_offset.get();
                while at < o.log_end_offset.get() {
                    let ask = ReadAsk { offset: at, bytes_max, end_offset: Some(o.log_end_offset.get()) };
                    let before = model.borrow().seen(p);
                    let r = read_one(&router, tp, &ask, o.leader_epoch.get()).await;
                    let got = model.borrow_mut().check_read(p, before, &ask, r);
                    match got.last() {
                        Some(&last) if model.borrow().failure.is_none() => at = last + 1,
                        _ => break,
                    }
                    read.extend(got);
                }
                model.borrow_mut().check_scan(p, &o, &read);
            }
        });
    }

    /// Shutdown through the router (every log closed cleanly), then the next life.
    fn restart(&mut self) {
        self.drain();
        self.note(format!("clean restart -> generation {}", self.generation + 1));
        let router = self.life().router.clone();
        let model = self.model.clone();
        self.run_until(async move {
            for s in router.shards() {
                if router.call(s, |reply| Req::Shutdown { reply }).await.is_err() {
                    model.borrow_mut().fail(format!("shard {s} gone before its shutdown"));
                }
            }
        });
        if self.failed() {
            return;
        }
        // What is left is the committers' idle loops.
        self.exec.drop_all();
        self.life = None;
        self.start_life(false);
    }

    /// Power loss mid-flight: every task dropped, every file back to its synced content plus a
    /// seeded torn prefix of what was written since.
    fn crash(&mut self) {
        self.crash_keeping(Torn::Seeded);
    }

    fn crash_keeping(&mut self, how: Torn) {
        self.note(format!(
            "CRASH with {} requests in flight -> generation {}",
            self.exec.clients(),
            self.generation + 1
        ));
        self.exec.drop_all();
        self.life = None;
        let rng = &mut self.rng;
        let mut torn = Vec::new();
        self.spec.storage.crash(|path, unsynced| {
            let keep = match how {
                Torn::Seeded => match rng.weighted(&[3, 3, 4]) {
                    0 => 0,
                    1 => unsynced,
                    _ => rng.below(unsynced as u64 + 1) as usize,
                },
                Torn::Nothing => 0,
                Torn::Exactly(n) => n.min(unsynced),
            };
            if unsynced > 0 {
                torn.push(format!("{}: kept {keep} of {unsynced} unsynced bytes", path.display()));
            }
            keep
        });
        for line in torn {
            self.note(format!("  {line}"));
        }
        self.start_life(true);
    }

    fn op(&mut self) {
        let busy = self.exec.clients() >= CLIENTS_IN_FLIGHT_MAX;
        match self.rng.weighted(&[24, 20, 5, 4, 3, 2, 6, 20, 2, 2, 2, 6]) {
            0 if !busy => self.spawn_produce(),
            1 if !busy => self.spawn_fetch(),
            2 if !busy => self.spawn_offsets(),
            3 if !busy => self.spawn_roll(),
            4 if !busy => self.spawn_delete_before(),
            5 if !busy => self.spawn_retention(),
            6 if !busy => self.advance_clock(),
            8 => self.audit(),
            9 => self.restart(),
            10 => self.crash(),
            11 if !busy => self.spawn_pipelined(),
            _ => {
                let n = self.rng.range(1, 60) as u64;
                self.steps(n);
            }
        }
        let n = self.rng.below(10);
        self.steps(n);
    }

    fn run(&mut self) {
        self.start_life(false);
        for i in 0..OPS_PER_SEED {
            if self.failed() {
                return;
            }
            self.note(format!("-- op {i}"));
            self.op();
        }
        if !self.failed() {
            self.audit();
        }
        if !self.failed() {
            self.restart();
        }
    }

    /// The failure report: the violation, the command that replays it, the last operations.
    fn report(&self, why: &str) -> String {
        let m = self.model.borrow();
        let trace: Vec<&str> = m.trace.iter().map(String::as_str).collect();
        format!(
            "simulation seed {} failed: {why}\nreproduce: {}\nlast operations:\n  {}",
            self.seed,
            self.replay,
            trace.join("\n  ")
        )
    }
}

struct Outcome {
    digest: u64,
    polls: u64,
}

/// Runs one seed; `Err` is its failure report. A panic in the code under test is a failure
/// of the seed too, reported with the trace.
fn run_seed(seed: u64, strict_served: bool) -> Result<Outcome, String> {
    let mut sim = Sim::new(seed, strict_served);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| sim.run()));
    let why = match r {
        Err(p) => Some(format!(
            "panicked: {}",
            p.downcast_ref::<String>().map(String::as_str).or_else(|| p.downcast_ref::<&str>().copied()).unwrap_or("?")
        )),
        Ok(()) => sim.model.borrow().failure.clone(),
    };
    match why {
        Some(why) => Err(sim.report(&why)),
        None => Ok(Outcome { digest: sim.model.borrow().digest, polls: sim.exec.polls() }),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn strict_served() -> bool {
    std::env::var("SIM_SKIP_SERVED_DURABLE").map_or(true, |v| v.trim() != "1")
}

/// Runs `seeds`, and fails with every failing seed and the first one's report.
fn run_seeds(seeds: Vec<u64>, strict: bool) {
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    let mut polls = 0;
    for &seed in &seeds {
        match run_seed(seed, strict) {
            Ok(o) => {
                polls += o.polls;
                if std::env::var("SIM_DIGESTS").is_ok() {
                    eprintln!("seed {seed} digest {:x} polls {}", o.digest, o.polls);
                }
            }
            Err(report) => {
                eprintln!("{}", report.lines().next().unwrap_or(""));
                failed.push((seed, report));
            }
        }
    }
    eprintln!("{} seeds, {} failed, {polls} polls, {:?}", seeds.len(), failed.len(), started.elapsed());
    if let Some((_, report)) = failed.first() {
        let list: Vec<String> = failed.iter().map(|(s, _)| s.to_string()).collect();
        panic!("{} of {} seeds failed: {}\n\n{report}", failed.len(), seeds.len(), list.join(" "));
    }
}

#[test]
fn random_operations_keep_the_invariants() {
    let seeds = match env_u64("SIM_SEED") {
        Some(s) => vec![s],
        None => {
            let from = env_u64("SIM_SEEDS_FROM").unwrap_or(0);
            (from..from + env_u64("SIM_SEEDS").unwrap_or(300)).collect()
        }
    };
    run_seeds(seeds, strict_served());
}

/// A seed replays exactly: what "reproduces with one command" rests on.
#[test]
fn a_seed_replays_identically() {
    for seed in [7, 8] {
        let a = run_seed(seed, false).map(|o| (o.digest, o.polls));
        let b = run_seed(seed, false).map(|o| (o.digest, o.polls));
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
}

/// Found by seed 67 (`SIM_SEED=67`, strict; a roll was cut by the crash between trimming the
/// segment and syncing it): recovery counts the tail it recovers as synced
/// (`PartitionLog::open_with_budget` sets `durable_offset` and the high watermark to the
/// recovered log end) but syncs the file only when it had to cut something
/// (`Segment::open`). A segment that ends exactly at its last batch, with those batches never
/// synced (a crash of the process keeps them; so does a torn write ending on a batch), is
/// recovered, served below the high watermark, and lost by the next power loss unless
/// something synced the file first (an acks=all append, a roll, a clean close): invariant 3,
/// even once the high watermark advances over synced data only. Scripted, so it does not
/// depend on one seed's path.
#[test]
fn a_recovered_unsynced_tail_is_not_served_as_durable() {
    let mut sim = Sim::new(67, true);
    sim.replay = "cargo test -p odradek-replication --test sim a_recovered_unsynced_tail -- --nocapture".into();
    sim.start_life(false);
    sim.spawn_produce_to(vec![0], false);
    sim.drain();
    let tp = sim.tps[0].clone();
    let owner = sim.life().router.owner(&tp).index();
    let size = sim.life().stores[owner].log(&tp).expect("log").size_bytes() as usize;
    // The acks=1 batches are written, not synced; the crash keeps exactly them (no padding,
    // nothing for recovery to cut).
    sim.crash_keeping(Torn::Exactly(size));
    // `start_life` audited the partition: the recovered batches were served below the high
    // watermark. Nothing synced them since, so a power loss now takes them back.
    sim.crash_keeping(Torn::Nothing);
    let failure = sim.model.borrow().failure.clone();
    if let Some(why) = failure {
        panic!("{}", sim.report(&why));
    }
}
