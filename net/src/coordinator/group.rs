//! The classic group coordinator: one state machine per shard for the groups whose
//! `__consumer_offsets` partition that shard owns (see [`coordinator_partition`]).
//!
//! Lives on: one core. Every group request reaches the coordinator shard as one
//! `ShardRequest::Coordinator` call through its door; JoinGroup and SyncGroup answers wait on local
//! channels until the rebalance they belong to completes.
//!
//! States follow Kafka's `GroupMetadata`: Empty → PreparingRebalance → CompletingRebalance →
//! Stable. A rebalance completes as soon as every known member has rejoined, or when the
//! largest rebalance timeout of the members runs out; there is no initial delay, so the first
//! member of an empty group joins at once (issue 4: "no needless initial delay").
//!
//! Committed offsets live in memory on the coordinator shard and in `__consumer_offsets`
//! ([`crate::coordinator::store`]), from which they are rebuilt at start-up.
//! Limits: [`GROUPS_PER_SHARD_MAX`], [`MEMBERS_PER_GROUP_MAX`], [`OFFSET_METADATA_BYTES_MAX`].

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde::{Deserialize, Serialize};

use crate::coordinator::consumer_group::ConsumerGroup;
use crate::errors::code;

/// The internal topic holding committed offsets; its partition count decides coordinators.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Kafka's default `offsets.topic.num.partitions`.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;
/// Groups one shard coordinates before new groups are refused.
pub const GROUPS_PER_SHARD_MAX: usize = 100_000;
/// Members (including pending ones) per group (Kafka's `group.max.size` default is unbounded;
/// a bound keeps a misbehaving client from growing a group without limit).
pub const MEMBERS_PER_GROUP_MAX: usize = 1000;
/// Kafka's `offset.metadata.max.bytes` default.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// How often expired sessions are looked for.
pub const SESSION_CHECK_INTERVAL: Duration = Duration::from_millis(200);

// Group error codes live with all the others in `crate::errors::code`.
use crate::errors::code::*;

/// Java's `String.hashCode` over UTF-16 code units, as Kafka hashes group ids.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The partition of an internal topic with `partitions` partitions that holds `key` (a group
/// or transactional id): Kafka's `Utils.abs(hashCode) % partitions` (`Utils.abs` maps
/// `i32::MIN` to 0).
pub fn key_partition(key: &str, partitions: i32) -> i32 {
    let h = java_string_hash(key);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

/// The `__consumer_offsets` partition of a group.
pub fn coordinator_partition(group_id: &str) -> i32 {
    key_partition(group_id, OFFSETS_TOPIC_PARTITIONS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    /// (protocol name, metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    deadline: Instant,
    join_reply: Option<flume::Sender<JoinGroupResponse>>,
    sync_reply: Option<flume::Sender<SyncGroupResponse>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    fn touch(&mut self, now: Instant) {
        self.deadline = now + Duration::from_millis(u64::try_from(self.session_timeout_ms).unwrap_or(0));
    }
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the time they expire.
    pending: HashMap<String, Instant>,
    /// group.instance.id → member id.
    pub(crate) statics: HashMap<String, String>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Tags the rebalance a timer belongs to, so a stale timer does nothing.
    rebalance_id: u64,
    /// The coordinator holding this group, for the rebalance timer to find it again.
    coordinator: Weak<RefCell<Coordinator>>,
}

impl Group {
    fn new(id: String, coordinator: Weak<RefCell<Coordinator>>) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            offsets: BTreeMap::new(),
            rebalance_id: 0,
            coordinator,
        }
    }

    fn all_rejoined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_reply.is_some())
    }

    fn rebalance_timeout(&self) -> Duration {
        let ms = self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == *n)))
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0usize, *c)).collect();
        for m in self.members.values() {
            if let Some((n, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == n) {
                    v.0 += 1;
                }
            }
        }
        // Ties go to the first candidate in the first member's order.
        let best = votes.iter().map(|(v, _)| *v).max()?;
        votes.into_iter().find(|(v, _)| *v == best).map(|(_, c)| c.clone())
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(n, _)| self.members.values().all(|m| m.protocols.iter().any(|(p, _)| p == n)))
    }
}

/// What is persisted of a classic group's membership (Kafka's group metadata record): written
/// when the group becomes Stable or Empty, never in the middle of a rebalance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassicSnapshot {
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MemberSnapshot {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
}

impl ClassicSnapshot {
    /// No members, as after a group's membership record was deleted.
    pub fn empty() -> Self {
        Self { generation: 0, protocol_type: None, protocol: None, leader: None, members: Vec::new() }
    }
}

impl Group {
    /// The state to persist, or None in the middle of a rebalance.
    pub fn snapshot(&self) -> Option<ClassicSnapshot> {
        if !matches!(self.state, GroupState::Stable | GroupState::Empty) {
            return None;
        }
        let members = self
            .members
            .values()
            .map(|m| MemberSnapshot {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: m.protocols.iter().map(|(n, b)| (n.clone(), b.to_vec())).collect(),
                assignment: m.assignment.to_vec(),
            })
            .collect();
        Some(ClassicSnapshot {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members,
        })
    }

    /// Takes the membership of a snapshot (offsets stay); members get a fresh session, so
    /// consumers that keep heartbeating carry on in the same generation.
    pub fn restore(&mut self, snap: ClassicSnapshot, now: Instant) {
        self.generation = snap.generation;
        self.protocol_type = snap.protocol_type;
        self.protocol = snap.protocol;
        self.members.clear();
        self.statics.clear();
        self.pending.clear();
        for m in snap.members {
            if let Some(inst) = &m.instance_id {
                self.statics.insert(inst.clone(), m.id.clone());
            }
            let mut member = Member {
                id: m.id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: m.protocols.into_iter().map(|(n, b)| (n, Bytes::from(b))).collect(),
                assignment: Bytes::from(m.assignment),
                deadline: now,
                join_reply: None,
                sync_reply: None,
            };
            member.touch(now);
            self.members.insert(m.id, member);
        }
        self.leader = snap.leader.filter(|l| self.members.contains_key(l));
        self.state = if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
    }

    /// Topics the members subscribe to, read from their consumer-protocol metadata; None when
    /// the group does not use the consumer protocol or a subscription cannot be read.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut out = BTreeSet::new();
        for m in self.members.values() {
            let mut buf = m.metadata_for(protocol);
            if buf.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([buf[0], buf[1]]).clamp(0, 3);
            let _ = bytes::Buf::get_i16(&mut buf);
            let sub = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
            out.extend(sub.topics.iter().map(|t| t.to_string()));
        }
        Some(out)
    }
}

/// What a join asks for, extracted from the request.
pub struct JoinArgs {
    pub client_id: String,
    pub client_host: String,
}

/// The groups one shard coordinates.
///
/// Lives on: one core, behind `Rc<RefCell<_>>`; no borrow is held across an await.
pub struct Coordinator {
    /// This coordinator's own handle (set by [`install`]), given to the groups it creates.
    this: Weak<RefCell<Coordinator>>,
    pub groups: HashMap<String, Group>,
    shard_id: usize,
    member_seq: u64,
    /// Set once the shard's `__consumer_offsets` partitions are read back; requests wait.
    pub loaded: bool,
    /// KIP-848 groups (their committed offsets live in `groups`, like classic ones).
    pub consumer_groups: HashMap<String, ConsumerGroup>,
    /// Groups whose membership changed since it was last persisted.
    pub dirty: BTreeSet<String>,
    /// Wakes the shard's membership writer ([`crate::coordinator::store::persist_loop`]).
    pub persist: Rc<engine::sync::Notify>,
    /// Hash of the membership record last written per group.
    pub written: HashMap<String, u64>,
    /// The broker (topic registry) for KIP-848 assignments made by the session sweep.
    pub broker: Option<std::sync::Arc<crate::server::Broker>>,
    pub settings: GroupSettings,
    /// Offsets committed inside transactions not yet ended (TxnOffsetCommit), per producer id:
    /// `(group, topic, partition)` → offset. They become committed offsets when the COMMIT
    /// marker reaches the group's `__consumer_offsets` partition, and go at an ABORT.
    pub txn_offsets: HashMap<i64, BTreeMap<(String, String, i32), Committed>>,
}

/// The group settings of the broker's configuration.
#[derive(Debug, Clone, Copy)]
pub struct GroupSettings {
    pub session_timeout_ms_min: i32,
    pub session_timeout_ms_max: i32,
    pub consumer: crate::coordinator::consumer_group::Settings,
}

impl GroupSettings {
    pub fn from_config(c: &crate::config::BrokerConfig) -> Self {
        Self {
            session_timeout_ms_min: c.group_session_timeout_ms_min,
            session_timeout_ms_max: c.group_session_timeout_ms_max,
            consumer: crate::coordinator::consumer_group::Settings {
                session_timeout: Duration::from_millis(c.group_consumer_session_timeout_ms),
                heartbeat_interval_ms: c.group_consumer_heartbeat_interval_ms,
            },
        }
    }
}

pub type SharedCoordinator = Rc<RefCell<Coordinator>>;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn join_error(member_id: &str, code: i16) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(s(member_id))
        .with_protocol_name(Some(StrBytes::default()))
}

fn sync_error(code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code)
}

impl Coordinator {
    pub fn new(shard_id: usize) -> Self {
        Self {
            this: Weak::new(),
            groups: HashMap::new(),
            shard_id,
            member_seq: 0,
            loaded: false,
            consumer_groups: HashMap::new(),
            dirty: BTreeSet::new(),
            persist: Rc::new(engine::sync::Notify::new()),
            written: HashMap::new(),
            broker: None,
            settings: GroupSettings::from_config(&crate::config::BrokerConfig::default()),
            txn_offsets: HashMap::new(),
        }
    }

    /// A transaction marker of `producer_id` reached `__consumer_offsets` partition
    /// `partition`: its pending offsets of the groups there are committed (`commit`) or dropped.
    pub fn end_txn_offsets(&mut self, producer_id: i64, partition: i32, commit: bool) {
        let Some(pending) = self.txn_offsets.get_mut(&producer_id) else { return };
        let ended: Vec<_> = pending.keys().filter(|(g, _, _)| coordinator_partition(g) == partition).cloned().collect();
        let mut done = Vec::with_capacity(ended.len());
        for key in ended {
            if let Some(c) = pending.remove(&key) {
                done.push((key, c));
            }
        }
        if pending.is_empty() {
            self.txn_offsets.remove(&producer_id);
        }
        if !commit {
            return;
        }
        for ((group, topic, p), c) in done {
            if let Some(g) = self.group_or_create(&group) {
                g.offsets.insert((topic, p), c);
            }
        }
    }

    /// Whether a transaction not yet ended holds an offset of the group's partition (an
    /// OffsetFetch with `require_stable` is then answered UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.txn_offsets.values().any(|m| m.contains_key(&(group.to_owned(), topic.to_owned(), partition)))
    }

    /// Notes that a group's membership must be persisted again.
    pub fn mark_dirty(&mut self, id: &str) {
        if self.dirty.insert(id.to_owned()) {
            self.persist.notify_all();
        }
    }

    pub fn new_member_id(&mut self, client_id: &str) -> String {
        self.member_seq += 1;
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        format!("{client_id}-{}-{nanos:x}-{}", self.shard_id, self.member_seq)
    }

    /// Validates a member's identity against a group: Ok or the Kafka error code.
    fn check_member(group: &Group, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(inst) = instance_id {
            match group.statics.get(inst) {
                Some(m) if m == member_id => return Ok(()),
                Some(_) => return Err(FENCED_INSTANCE_ID),
                None => return Err(UNKNOWN_MEMBER_ID),
            }
        }
        if group.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(UNKNOWN_MEMBER_ID)
        }
    }
}

/// JoinGroup. Waits until the rebalance the member joined completes.
pub async fn join(co: &SharedCoordinator, version: i16, req: JoinGroupRequest, args: JoinArgs) -> JoinGroupResponse {
    let rx = match join_start(co, version, req, args) {
        Ok(resp) => return resp,
        Err(rx) => rx,
    };
    rx.recv_async().await.unwrap_or_else(|_| join_error("", UNKNOWN_MEMBER_ID))
}

/// A JoinGroup answered at once (`Ok`), or the channel its answer comes on once the rebalance
/// the member joined completes (`Err`).
type JoinStart = Result<JoinGroupResponse, flume::Receiver<JoinGroupResponse>>;

/// A JoinGroup request once checked: what the member asks of the group.
struct JoinAsk {
    version: i16,
    member_id: String,
    instance_id: Option<String>,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    args: JoinArgs,
    now: Instant,
}

fn join_start(co: &SharedCoordinator, version: i16, req: JoinGroupRequest, args: JoinArgs) -> JoinStart {
    let mut c = co.borrow_mut();
    let group_id = req.group_id.to_string();
    let ask = match join_ask(&c.settings, version, &req, args) {
        Ok(ask) => ask,
        Err(code) => return Ok(join_error(req.member_id.as_str(), code)),
    };
    if !c.groups.contains_key(&group_id) {
        if !ask.member_id.is_empty() {
            return Ok(join_error(&ask.member_id, UNKNOWN_MEMBER_ID));
        }
        if c.groups.len() >= GROUPS_PER_SHARD_MAX {
            return Ok(join_error(&ask.member_id, code::COORDINATOR_NOT_AVAILABLE));
        }
        let this = c.this.clone();
        c.groups.insert(group_id.clone(), Group::new(group_id.clone(), this));
    }
    let new_id = if ask.member_id.is_empty() { Some(c.new_member_id(&ask.args.client_id)) } else { None };
    let Some(group) = c.groups.get_mut(&group_id) else {
        return Ok(join_error(&ask.member_id, UNKNOWN_MEMBER_ID));
    };
    if !group.supports(&ask.protocol_type, &ask.protocols) {
        return Ok(join_error(&ask.member_id, INCONSISTENT_GROUP_PROTOCOL));
    }
    let (tx, rx) = flume::bounded(1);
    match new_id {
        Some(new_id) => join_new_member(group, new_id, ask, tx, rx),
        None => join_known_member(group, ask, tx, rx),
    }
}

/// Checks a JoinGroup request against the broker's settings: the ask, or the error code.
fn join_ask(settings: &GroupSettings, version: i16, req: &JoinGroupRequest, args: JoinArgs) -> Result<JoinAsk, i16> {
    if req.group_id.is_empty() {
        return Err(INVALID_GROUP_ID);
    }
    if !(settings.session_timeout_ms_min..=settings.session_timeout_ms_max).contains(&req.session_timeout_ms) {
        return Err(INVALID_SESSION_TIMEOUT);
    }
    let protocols: Vec<(String, Bytes)> =
        req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect();
    let protocol_type = req.protocol_type.to_string();
    if protocol_type.is_empty() || protocols.is_empty() {
        return Err(INCONSISTENT_GROUP_PROTOCOL);
    }
    Ok(JoinAsk {
        version,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout_ms: if version == 0 { req.session_timeout_ms } else { req.rebalance_timeout_ms },
        protocol_type,
        protocols,
        args,
        now: Instant::now(),
    })
}

/// A join without a member id: `new_id` is the one this coordinator made for it.
fn join_new_member(
    group: &mut Group,
    new_id: String,
    ask: JoinAsk,
    tx: flume::Sender<JoinGroupResponse>,
    rx: flume::Receiver<JoinGroupResponse>,
) -> JoinStart {
    match ask.instance_id.clone() {
        Some(inst) => {
            if let Some(old_id) = group.statics.get(&inst).cloned() {
                return rejoin_static(group, inst, old_id, new_id, ask, tx, rx);
            }
        }
        None if ask.version >= 4 => {
            // KIP-394: hand out the member id first, so a client that never comes back leaves
            // only a pending id behind, not a member the group waits for.
            if group.members.len() + group.pending.len() >= MEMBERS_PER_GROUP_MAX {
                return Ok(join_error("", GROUP_MAX_SIZE_REACHED));
            }
            let session = Duration::from_millis(u64::try_from(ask.session_timeout_ms).unwrap_or(0));
            group.pending.insert(new_id.clone(), ask.now + session);
            return Ok(join_error(&new_id, MEMBER_ID_REQUIRED));
        }
        None => {}
    }
    if group.members.len() + group.pending.len() >= MEMBERS_PER_GROUP_MAX {
        return Ok(join_error("", GROUP_MAX_SIZE_REACHED));
    }
    add_member(group, new_id, ask, tx);
    after_member_joined(group);
    Err(rx)
}

/// Static member `inst` came back with a new incarnation (`new_id`): it takes the place of its
/// old one (`old_id`), which is fenced if it is still around.
fn rejoin_static(
    group: &mut Group,
    inst: String,
    old_id: String,
    new_id: String,
    ask: JoinAsk,
    tx: flume::Sender<JoinGroupResponse>,
    rx: flume::Receiver<JoinGroupResponse>,
) -> JoinStart {
    let Some(mut m) = group.members.remove(&old_id) else {
        group.statics.remove(&inst);
        return Ok(join_error("", UNKNOWN_MEMBER_ID));
    };
    if let Some(r) = m.join_reply.take() {
        let _ = r.send(join_error(&old_id, FENCED_INSTANCE_ID));
    }
    if let Some(r) = m.sync_reply.take() {
        let _ = r.send(sync_error(FENCED_INSTANCE_ID));
    }
    let unchanged = m.protocols == ask.protocols;
    m.id = new_id.clone();
    m.protocols = ask.protocols;
    m.session_timeout_ms = ask.session_timeout_ms;
    m.rebalance_timeout_ms = ask.rebalance_timeout_ms;
    m.client_id = ask.args.client_id;
    m.touch(ask.now);
    if group.leader.as_deref() == Some(old_id.as_str()) {
        group.leader = Some(new_id.clone());
    }
    group.statics.insert(inst, new_id.clone());
    group.members.insert(new_id.clone(), m);
    match group.state {
        GroupState::Stable if unchanged => {
            // Rejoin without a rebalance: the member keeps its assignment.
            let is_leader = group.leader.as_deref() == Some(new_id.as_str());
            let mut resp = current_generation(group, &new_id);
            if is_leader {
                // v9+ (KIP-814): the leader learns the members but must not assign again.
                // Older leaders assign again; SyncGroup in Stable ignores it.
                resp = resp.with_skip_assignment(ask.version >= 9).with_members(members_for_leader(group));
            }
            Ok(resp)
        }
        GroupState::PreparingRebalance => {
            if let Some(m) = group.members.get_mut(&new_id) {
                m.join_reply = Some(tx);
            }
            try_complete_join(group);
            Err(rx)
        }
        _ => {
            if let Some(m) = group.members.get_mut(&new_id) {
                m.join_reply = Some(tx);
            }
            prepare_rebalance(group.coordinator.upgrade(), group);
            Err(rx)
        }
    }
}

/// A join with a member id: a pending one (KIP-394) becomes a member; a member rejoins.
fn join_known_member(
    group: &mut Group,
    ask: JoinAsk,
    tx: flume::Sender<JoinGroupResponse>,
    rx: flume::Receiver<JoinGroupResponse>,
) -> JoinStart {
    let member_id = ask.member_id.clone();
    if group.pending.remove(&member_id).is_some() {
        add_member(group, member_id, ask, tx);
        after_member_joined(group);
        return Err(rx);
    }
    if let Err(e) = Coordinator::check_member(group, &member_id, ask.instance_id.as_deref()) {
        return Ok(join_error(&member_id, e));
    }
    let is_leader = group.leader.as_deref() == Some(member_id.as_str());
    let Some(m) = group.members.get_mut(&member_id) else {
        return Ok(join_error(&member_id, UNKNOWN_MEMBER_ID));
    };
    let unchanged = m.protocols == ask.protocols;
    m.protocols = ask.protocols;
    m.session_timeout_ms = ask.session_timeout_ms;
    m.rebalance_timeout_ms = ask.rebalance_timeout_ms;
    m.touch(ask.now);
    if let Some(old) = m.join_reply.replace(tx) {
        // A duplicate join from the same member: the older request is superseded.
        let _ = old.send(join_error(&member_id, REBALANCE_IN_PROGRESS));
    }
    match group.state {
        GroupState::PreparingRebalance => {
            try_complete_join(group);
        }
        GroupState::CompletingRebalance | GroupState::Stable if unchanged && !is_leader => {
            // Nothing changed: answer with the current generation (Kafka does the same).
            let tx = group.members.get_mut(&member_id).and_then(|m| m.join_reply.take());
            drop(tx);
            return Ok(current_generation(group, &member_id));
        }
        _ => prepare_rebalance(group.coordinator.upgrade(), group),
    }
    Err(rx)
}

/// A JoinGroup answer with the group's current generation, protocol and leader.
fn current_generation(group: &Group, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_generation_id(group.generation)
        .with_protocol_type(group.protocol_type.as_deref().map(s))
        .with_protocol_name(group.protocol.as_deref().map(s))
        .with_leader(s(group.leader.as_deref().unwrap_or("")))
        .with_member_id(s(member_id))
}

/// Creates this shard's coordinator and starts its session-expiry sweep.
pub fn install(shard_id: usize) -> SharedCoordinator {
    let co = Rc::new_cyclic(|this| {
        let mut c = Coordinator::new(shard_id);
        c.this = this.clone();
        RefCell::new(c)
    });
    let sweep = co.clone();
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(SESSION_CHECK_INTERVAL).await;
            expire_sessions(&sweep, Instant::now());
        }
    })
    .detach();
    co
}

fn add_member(group: &mut Group, id: String, ask: JoinAsk, tx: flume::Sender<JoinGroupResponse>) {
    if group.members.is_empty() {
        group.protocol_type = Some(ask.protocol_type);
    }
    if let Some(inst) = &ask.instance_id {
        group.statics.insert(inst.clone(), id.clone());
    }
    let mut m = Member {
        id: id.clone(),
        instance_id: ask.instance_id,
        client_id: ask.args.client_id,
        client_host: ask.args.client_host,
        session_timeout_ms: ask.session_timeout_ms,
        rebalance_timeout_ms: ask.rebalance_timeout_ms,
        protocols: ask.protocols,
        assignment: Bytes::new(),
        deadline: ask.now,
        join_reply: Some(tx),
        sync_reply: None,
    };
    m.touch(ask.now);
    group.members.insert(id, m);
}

fn after_member_joined(group: &mut Group) {
    match group.state {
        GroupState::PreparingRebalance => {
            try_complete_join(group);
        }
        _ => prepare_rebalance(group.coordinator.upgrade(), group),
    }
}

fn members_for_leader(group: &Group) -> Vec<JoinGroupResponseMember> {
    let protocol = group.protocol.clone().unwrap_or_default();
    group
        .members
        .values()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(&m.id))
                .with_group_instance_id(m.instance_id.as_deref().map(s))
                .with_metadata(m.metadata_for(&protocol))
        })
        .collect()
}

/// Starts a rebalance: members must rejoin within the rebalance timeout.
fn prepare_rebalance(co: Option<SharedCoordinator>, group: &mut Group) {
    if group.state == GroupState::CompletingRebalance {
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
            if let Some(r) = m.sync_reply.take() {
                let _ = r.send(sync_error(REBALANCE_IN_PROGRESS));
            }
        }
    }
    group.state = GroupState::PreparingRebalance;
    group.rebalance_id += 1;
    if try_complete_join(group) {
        return;
    }
    let (Some(co), id, rebalance_id) = (co, group.id.clone(), group.rebalance_id) else {
        return;
    };
    let timeout = group.rebalance_timeout();
    glommio::spawn_local(async move {
        glommio::timer::sleep(timeout).await;
        let mut c = co.borrow_mut();
        if let Some(g) = c.groups.get_mut(&id) {
            if g.state == GroupState::PreparingRebalance && g.rebalance_id == rebalance_id {
                complete_join(g);
                c.mark_dirty(&id);
            }
        }
    })
    .detach();
}

/// Completes the join phase if every known member has rejoined. True if it did.
fn try_complete_join(group: &mut Group) -> bool {
    if group.state == GroupState::PreparingRebalance && group.all_rejoined() {
        complete_join(group);
        true
    } else {
        false
    }
}

/// Ends the join phase: members that did not rejoin are dropped, a new generation starts, the
/// leader gets every member's metadata.
fn complete_join(group: &mut Group) {
    let gone: Vec<String> = group.members.values().filter(|m| m.join_reply.is_none()).map(|m| m.id.clone()).collect();
    for id in gone {
        remove_member_entry(group, &id);
    }
    group.pending.clear();
    group.generation += 1;
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.protocol = None;
        group.protocol_type = None;
        group.leader = None;
        return;
    }
    group.protocol = group.select_protocol();
    if group.leader.as_ref().is_none_or(|l| !group.members.contains_key(l)) {
        group.leader = group.members.keys().next().cloned();
    }
    group.state = GroupState::CompletingRebalance;
    let leader = group.leader.clone().unwrap_or_default();
    let leader_members = members_for_leader(group);
    let now = Instant::now();
    let (generation, protocol_type, protocol) = (group.generation, group.protocol_type.clone(), group.protocol.clone());
    for m in group.members.values_mut() {
        m.touch(now);
        let Some(r) = m.join_reply.take() else { continue };
        let mut resp = JoinGroupResponse::default()
            .with_generation_id(generation)
            .with_protocol_type(protocol_type.as_deref().map(s))
            .with_protocol_name(protocol.as_deref().map(s))
            .with_leader(s(&leader))
            .with_member_id(s(&m.id));
        if m.id == leader {
            resp = resp.with_members(leader_members.clone());
        }
        let _ = r.send(resp);
    }
}

fn remove_member_entry(group: &mut Group, id: &str) {
    if let Some(mut m) = group.members.remove(id) {
        if let Some(inst) = &m.instance_id {
            if group.statics.get(inst).map(String::as_str) == Some(id) {
                group.statics.remove(inst);
            }
        }
        if let Some(r) = m.join_reply.take() {
            let _ = r.send(join_error(id, UNKNOWN_MEMBER_ID));
        }
        if let Some(r) = m.sync_reply.take() {
            let _ = r.send(sync_error(UNKNOWN_MEMBER_ID));
        }
    }
}

/// A member left or expired: the others rebalance.
fn remove_member(group: &mut Group, id: &str) {
    remove_member_entry(group, id);
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => prepare_rebalance(group.coordinator.upgrade(), group),
        GroupState::PreparingRebalance => {
            try_complete_join(group);
        }
        GroupState::Empty => {}
    }
}

fn expire_sessions(co: &SharedCoordinator, now: Instant) {
    let mut c = co.borrow_mut();
    let mut changed = Vec::new();
    for group in c.groups.values_mut() {
        group.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = group
            .members
            .values()
            .filter(|m| m.join_reply.is_none() && m.deadline <= now)
            .map(|m| m.id.clone())
            .collect();
        if !expired.is_empty() {
            changed.push(group.id.clone());
        }
        for id in expired {
            remove_member(group, &id);
        }
        if group.state == GroupState::PreparingRebalance {
            try_complete_join(group);
        }
    }
    // KIP-848 members whose session ran out, even if nobody else in the group heartbeats.
    if let Some(broker) = c.broker.clone() {
        for (id, cg) in c.consumer_groups.iter_mut() {
            if cg.expire(now, &broker.topics) {
                changed.push(id.clone());
            }
        }
        c.consumer_groups.retain(|_, cg| !cg.is_empty());
    }
    for id in changed {
        c.mark_dirty(&id);
    }
}

/// SyncGroup. Followers wait for the leader's assignment.
pub async fn sync(co: &SharedCoordinator, req: SyncGroupRequest) -> SyncGroupResponse {
    let rx = {
        let mut c = co.borrow_mut();
        let member_id = req.member_id.to_string();
        let Some(group) = c.groups.get_mut(req.group_id.as_str()) else {
            return sync_error(UNKNOWN_MEMBER_ID);
        };
        if let Err(e) = Coordinator::check_member(group, &member_id, req.group_instance_id.as_deref()) {
            return sync_error(e);
        }
        if req.generation_id != group.generation {
            return sync_error(ILLEGAL_GENERATION);
        }
        if req.protocol_type.as_ref().is_some_and(|t| Some(t.as_str()) != group.protocol_type.as_deref())
            || req.protocol_name.as_ref().is_some_and(|n| Some(n.as_str()) != group.protocol.as_deref())
        {
            return sync_error(INCONSISTENT_GROUP_PROTOCOL);
        }
        let ok = |g: &Group, a: Bytes| {
            SyncGroupResponse::default()
                .with_protocol_type(g.protocol_type.as_deref().map(s))
                .with_protocol_name(g.protocol.as_deref().map(s))
                .with_assignment(a)
        };
        match group.state {
            GroupState::Empty => return sync_error(UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => return sync_error(REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let a = group.members.get(&member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                return ok(group, a);
            }
            GroupState::CompletingRebalance => {}
        }
        let now = Instant::now();
        let (tx, rx) = flume::bounded(1);
        if let Some(m) = group.members.get_mut(&member_id) {
            m.touch(now);
            m.sync_reply = Some(tx);
        }
        if group.leader.as_deref() == Some(member_id.as_str()) {
            let assignments: HashMap<String, Bytes> =
                req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect();
            for m in group.members.values_mut() {
                m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
            }
            group.state = GroupState::Stable;
            let replies: Vec<_> = group
                .members
                .values_mut()
                .filter_map(|m| m.sync_reply.take().map(|r| (r, m.assignment.clone())))
                .collect();
            for (r, a) in replies {
                let _ = r.send(ok(group, a));
            }
        }
        rx
    };
    rx.recv_async().await.unwrap_or_else(|_| sync_error(REBALANCE_IN_PROGRESS))
}

pub fn heartbeat(co: &SharedCoordinator, req: HeartbeatRequest) -> HeartbeatResponse {
    let mut c = co.borrow_mut();
    let err = |code| HeartbeatResponse::default().with_error_code(code);
    let Some(group) = c.groups.get_mut(req.group_id.as_str()) else {
        return err(UNKNOWN_MEMBER_ID);
    };
    let member_id = req.member_id.to_string();
    if let Err(e) = Coordinator::check_member(group, &member_id, req.group_instance_id.as_deref()) {
        return err(e);
    }
    if req.generation_id != group.generation {
        return err(ILLEGAL_GENERATION);
    }
    let state = group.state;
    if let Some(m) = group.members.get_mut(&member_id) {
        m.touch(Instant::now());
    }
    match state {
        GroupState::PreparingRebalance => err(REBALANCE_IN_PROGRESS),
        GroupState::Empty => err(UNKNOWN_MEMBER_ID),
        _ => err(code::NONE),
    }
}

pub fn leave(co: &SharedCoordinator, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let mut c = co.borrow_mut();
    let identities: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), m.group_instance_id.as_ref().map(|i| i.to_string())))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let Some(group) = c.groups.get_mut(req.group_id.as_str()) else {
        return LeaveGroupResponse::default().with_error_code(UNKNOWN_MEMBER_ID);
    };
    let mut results = Vec::with_capacity(identities.len());
    for (member_id, instance_id) in identities {
        let code = if group.pending.remove(&member_id).is_some() {
            code::NONE
        } else {
            let resolved = match &instance_id {
                Some(inst) => match group.statics.get(inst) {
                    Some(id) if member_id.is_empty() || *id == member_id => Ok(id.clone()),
                    Some(_) => Err(FENCED_INSTANCE_ID),
                    None => Err(UNKNOWN_MEMBER_ID),
                },
                None if group.members.contains_key(&member_id) => Ok(member_id.clone()),
                None => Err(UNKNOWN_MEMBER_ID),
            };
            match resolved {
                Ok(id) => {
                    remove_member(group, &id);
                    code::NONE
                }
                Err(e) => e,
            }
        };
        results.push(
            MemberResponse::default()
                .with_member_id(s(&member_id))
                .with_group_instance_id(instance_id.as_deref().map(s))
                .with_error_code(code),
        );
    }
    if version >= 3 {
        LeaveGroupResponse::default().with_members(results)
    } else {
        LeaveGroupResponse::default().with_error_code(results.first().map(|r| r.error_code).unwrap_or(code::NONE))
    }
}

/// Checks an OffsetCommit's member fields. Simple consumers (generation -1, no member id)
/// may commit while the group has no members.
pub fn check_commit(group: Option<&Group>, generation: i32, member_id: &str, instance_id: Option<&str>) -> i16 {
    let Some(group) = group else {
        return if generation < 0 && member_id.is_empty() { code::NONE } else { ILLEGAL_GENERATION };
    };
    if generation < 0 && member_id.is_empty() && group.state == GroupState::Empty {
        return code::NONE;
    }
    if let Err(e) = Coordinator::check_member(group, member_id, instance_id) {
        return e;
    }
    if generation != group.generation {
        return ILLEGAL_GENERATION;
    }
    match group.state {
        GroupState::PreparingRebalance | GroupState::CompletingRebalance => REBALANCE_IN_PROGRESS,
        _ => code::NONE,
    }
}

impl Coordinator {
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn group_or_create(&mut self, id: &str) -> Option<&mut Group> {
        if !self.groups.contains_key(id) {
            if self.groups.len() >= GROUPS_PER_SHARD_MAX {
                return None;
            }
            self.groups.insert(id.to_owned(), Group::new(id.to_owned(), self.this.clone()));
        }
        self.groups.get_mut(id)
    }

    /// Drops a group with no members and no offsets (a group exists while it has either).
    pub fn drop_if_unused(&mut self, id: &str) {
        if self.groups.get(id).is_some_and(|g| g.state == GroupState::Empty && g.offsets.is_empty()) {
            self.groups.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_kafka() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        // "hello".hashCode() == 99162322 in Java.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(coordinator_partition("hello"), 99_162_322 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs maps it to 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(coordinator_partition("polygenelubricants"), 0);
    }

    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::GroupId;

    fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce(SharedCoordinator) -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let co = install(0);
                co.borrow_mut().loaded = true;
                f(co).await;
            })
            .expect("executor")
            .join()
            .expect("join");
    }

    fn join_req(member: &str, instance: Option<&str>, meta: &'static [u8]) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_session_timeout_ms(6000)
            .with_rebalance_timeout_ms(2000)
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(meta))])
    }

    fn args() -> JoinArgs {
        JoinArgs { client_id: "c".into(), client_host: "h".into() }
    }

    async fn sync_as(co: &SharedCoordinator, member: &str, generation: i32, assign: bool) -> SyncGroupResponse {
        use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
        let assignments = if assign {
            vec![SyncGroupRequestAssignment::default()
                .with_member_id(s(member))
                .with_assignment(Bytes::from_static(b"a"))]
        } else {
            Vec::new()
        };
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_assignments(assignments);
        sync(co, req).await
    }

    fn hb(co: &SharedCoordinator, member: &str, generation: i32) -> i16 {
        heartbeat(
            co,
            HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(generation)
                .with_member_id(s(member)),
        )
        .error_code
    }

    #[test]
    fn dynamic_member_needs_an_id_then_joins_at_once_and_is_fenced_by_generation() {
        run(|co| async move {
            let first = join(&co, 5, join_req("", None, b"m"), args()).await;
            assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
            let id = first.member_id.to_string();
            let joined = join(&co, 5, join_req(&id, None, b"m"), args()).await;
            assert_eq!((joined.error_code, joined.generation_id), (code::NONE, 1));
            assert_eq!(joined.leader.as_str(), id);
            assert_eq!(joined.members.len(), 1);
            assert_eq!(sync_as(&co, &id, 1, true).await.assignment.as_ref(), b"a");
            assert_eq!(co.borrow().group("g").map(|g| g.state), Some(GroupState::Stable));
            assert_eq!(hb(&co, &id, 1), code::NONE);
            assert_eq!(hb(&co, &id, 0), ILLEGAL_GENERATION);
            assert_eq!(hb(&co, "nobody", 1), UNKNOWN_MEMBER_ID);
            let left = leave(
                &co,
                3,
                LeaveGroupRequest::default().with_group_id(GroupId(s("g"))).with_members(vec![
                    kafka_protocol::messages::leave_group_request::MemberIdentity::default().with_member_id(s(&id)),
                ]),
            );
            assert_eq!(left.members.first().map(|m| m.error_code), Some(code::NONE));
            let g = co.borrow();
            let g = g.group("g").expect("group");
            assert_eq!((g.state, g.generation), (GroupState::Empty, 2));
        });
    }

    #[test]
    fn static_member_rejoins_without_a_rebalance_and_fences_the_old_id() {
        run(|co| async move {
            let joined = join(&co, 5, join_req("", Some("i"), b"m"), args()).await;
            assert_eq!((joined.error_code, joined.generation_id), (code::NONE, 1));
            let old = joined.member_id.to_string();
            sync_as(&co, &old, 1, true).await;
            let again = join(&co, 5, join_req("", Some("i"), b"m"), args()).await;
            assert_eq!((again.error_code, again.generation_id), (code::NONE, 1));
            let new = again.member_id.to_string();
            assert_ne!(new, old);
            assert_eq!(co.borrow().group("g").map(|g| g.state), Some(GroupState::Stable));
            // The new incarnation keeps the assignment; the old one is fenced.
            assert_eq!(sync_as(&co, &new, 1, false).await.assignment.as_ref(), b"a");
            let fenced = heartbeat(
                &co,
                HeartbeatRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_generation_id(1)
                    .with_member_id(s(&old))
                    .with_group_instance_id(Some(s("i"))),
            );
            assert_eq!(fenced.error_code, FENCED_INSTANCE_ID);
        });
    }

    #[test]
    fn simple_consumer_commits_only_while_group_is_empty() {
        assert_eq!(check_commit(None, -1, "", None), code::NONE);
        let mut g = Group::new("g".into(), Weak::new());
        assert_eq!(check_commit(Some(&g), -1, "", None), code::NONE);
        g.state = GroupState::Stable;
        assert_eq!(check_commit(Some(&g), -1, "", None), UNKNOWN_MEMBER_ID);
    }
}
