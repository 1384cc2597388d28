//! KIP-848 consumer groups (`group.protocol=consumer`): ConsumerGroupHeartbeat with
//! server-side assignment, and ConsumerGroupDescribe.
//!
//! Lives on: the group's coordinator shard, inside [`crate::coordinator::group::Coordinator`].
//!
//! Every heartbeat carries the member's subscription and (when changed) the partitions it owns.
//! The coordinator keeps a target assignment per group epoch and reconciles each member towards
//! it: first it tells the member to drop what it must give up, then, once the member's
//! heartbeat confirms, it hands out its target partitions that no other member still owns. So a
//! partition is never owned by two members at once.
//!
//! Two assignors, chosen by the members (`group.remote.assignor`, the most requested wins,
//! `uniform` by default):
//! - `uniform`: balanced and sticky. Partitions keep their previous owner while it stays
//!   subscribed, the rest go to the least-loaded subscriber, then single partitions move from
//!   the most to the least loaded until no move makes the spread smaller. A joining or leaving
//!   member moves only the partitions it must.
//! - `range`: per topic, contiguous ranges of partitions over the subscribers sorted by member
//!   id, so co-partitioned topics land together.
//!
//! A member's session ends when it stops heartbeating for its session timeout; a member that
//! does not give up revoked partitions within its rebalance timeout is fenced. Membership is
//! persisted by [`crate::coordinator::store`] (a [`Snapshot`] per group).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::topics::Topics;

/// Session timeout and heartbeat interval (`group.consumer.session.timeout.ms`,
/// `group.consumer.heartbeat.interval.ms`, see [`crate::config::BrokerConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub session_timeout: Duration,
    pub heartbeat_interval_ms: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { session_timeout: Duration::from_secs(45), heartbeat_interval_ms: 1000 }
    }
}
/// Used when a member gives no rebalance timeout (Kafka's `max.poll.interval.ms` default).
pub const REBALANCE_TIMEOUT_DEFAULT_MS: i32 = 300_000;

pub use crate::errors::code::{
    FENCED_MEMBER_EPOCH, INVALID_REGULAR_EXPRESSION, STALE_MEMBER_EPOCH, UNSUPPORTED_ASSIGNOR,
};

/// The server assignors, the default first.
pub const ASSIGNORS: [&str; 2] = ["uniform", "range"];

pub type Owned = BTreeSet<(Uuid, i32)>;

/// Compiles a subscription regex to match whole topic names, as Kafka does.
fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(1 << 20).build()
}

impl ConsumerMember {
    /// Whether the member subscribes to `topic`, by name or by its regex (internal topics,
    /// `__` prefixed, never match a regex).
    pub fn subscribes(&self, topic: &str) -> bool {
        self.subscribed.iter().any(|t| t == topic)
            || (!topic.starts_with("__") && self.compiled.as_ref().is_some_and(|r| r.is_match(topic)))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub subscribed: Vec<String>,
    /// A regex subscription (RE2 syntax, matched against whole topic names), if any.
    pub regex: Option<String>,
    #[serde(skip)]
    compiled: Option<regex::Regex>,
    /// The assignor this member asked for, if any.
    pub assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    /// What the member last said it owns.
    pub owned: Owned,
    /// What the coordinator last told the member to own.
    pub assigned: Owned,
    #[serde(skip, default = "Instant::now")]
    deadline: Instant,
    /// Set while the member is asked to give partitions up: it is fenced if it has not by then.
    #[serde(skip)]
    revoke_deadline: Option<Instant>,
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, Owned>,
    /// The subscribed topics (id, partition count) the target was computed from: a topic
    /// created, deleted or grown since changes the target too.
    target_topics: BTreeMap<String, (Uuid, i32)>,
    assignor: &'static str,
    /// The broker's settings, refreshed on every heartbeat.
    pub settings: Settings,
}

/// What is persisted of a group: everything but session deadlines (a loaded member gets a
/// fresh session).
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    epoch: i32,
    assignor: String,
    members: Vec<ConsumerMember>,
    target: BTreeMap<String, Owned>,
    target_topics: BTreeMap<String, (Uuid, i32)>,
}

/// Who joined, for the member's description.
pub struct Client<'a> {
    pub id: &'a str,
    pub host: &'a str,
}

/// Topic id → (partition count, subscribers sorted by member id).
type Subscriptions<'a> = BTreeMap<Uuid, (i32, Vec<&'a str>)>;

impl ConsumerGroup {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kafka's consumer group states: Stable once every member is at the group epoch and owns
    /// exactly its target.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            return "Empty";
        }
        let empty = Owned::new();
        let settled = self.members.values().all(|m| {
            let target = self.target.get(&m.id).unwrap_or(&empty);
            m.epoch == self.epoch && m.assigned == *target && m.owned == *target
        });
        if settled {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    pub fn assignor(&self) -> &'static str {
        if self.assignor.is_empty() {
            ASSIGNORS[0]
        } else {
            self.assignor
        }
    }

    fn subscribed_topics(&self, topics: &Topics) -> BTreeMap<String, (Uuid, i32)> {
        let names: BTreeSet<&String> = self.members.values().flat_map(|m| m.subscribed.iter()).collect();
        let mut out: BTreeMap<String, (Uuid, i32)> =
            names.into_iter().filter_map(|n| topics.get(n).map(|m| (n.clone(), (m.id, m.partitions)))).collect();
        if self.members.values().any(|m| m.compiled.is_some()) {
            for t in topics.list() {
                if self.members.values().any(|m| m.subscribes(&t.name)) {
                    out.insert(t.name.clone(), (t.id, t.partitions));
                }
            }
        }
        out
    }

    /// The assignor most members asked for; ties and no preference give the default.
    fn choose_assignor(&self) -> &'static str {
        let mut votes = [0usize; ASSIGNORS.len()];
        for a in self.members.values().filter_map(|m| m.assignor.as_deref()) {
            if let Some(i) = ASSIGNORS.iter().position(|x| *x == a) {
                votes[i] += 1;
            }
        }
        let best = votes.iter().copied().max().unwrap_or(0);
        ASSIGNORS.iter().zip(votes).find(|(_, v)| *v == best).map(|(a, _)| *a).unwrap_or(ASSIGNORS[0])
    }

    /// A new group epoch with a new target assignment.
    fn compute_target(&mut self, topics: &Topics) {
        self.epoch += 1;
        self.target_topics = self.subscribed_topics(topics);
        self.assignor = self.choose_assignor();
        let mut subs: Subscriptions<'_> = BTreeMap::new();
        for (name, (id, partitions)) in &self.target_topics {
            let subscribers = self.members.values().filter(|m| m.subscribes(name)).map(|m| m.id.as_str()).collect();
            subs.insert(*id, (*partitions, subscribers));
        }
        let members = self.members.keys().map(String::as_str);
        let target = if self.assignor == "range" {
            assign_range(members, &subs)
        } else {
            assign_uniform(&self.target, members, &subs)
        };
        self.target = target;
    }

    /// Drops members whose session ran out or who kept revoked partitions past their
    /// rebalance timeout; true if any did.
    pub fn expire(&mut self, now: Instant, topics: &Topics) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| m.deadline > now && m.revoke_deadline.is_none_or(|d| d > now));
        let changed = self.members.len() != before;
        if changed {
            self.compute_target(topics);
        }
        changed
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            epoch: self.epoch,
            assignor: self.assignor().to_owned(),
            members: self.members.values().cloned().collect(),
            target: self.target.clone(),
            target_topics: self.target_topics.clone(),
        }
    }

    /// A group read back from its snapshot; every member gets a fresh session.
    pub fn restore(snapshot: Snapshot, now: Instant, settings: Settings) -> Self {
        let members = snapshot
            .members
            .into_iter()
            .map(|mut m| {
                m.compiled = m.regex.as_deref().and_then(|r| compile(r).ok());
                m.deadline = now + settings.session_timeout;
                m.revoke_deadline = None;
                (m.id.clone(), m)
            })
            .collect();
        Self {
            epoch: snapshot.epoch,
            members,
            target: snapshot.target,
            target_topics: snapshot.target_topics,
            assignor: ASSIGNORS.iter().find(|a| **a == snapshot.assignor).copied().unwrap_or(ASSIGNORS[0]),
            settings,
        }
    }

    /// What a heartbeat from `member_id` can change of the persisted state, cheaply comparable:
    /// the group epoch and size, and that member's persisted fields. A heartbeat that leaves it
    /// equal (the steady state) needs no new membership record.
    pub fn fingerprint(&self, member_id: &str) -> impl PartialEq {
        let m = self.members.get(member_id).map(|m| {
            (m.epoch, m.owned.clone(), m.assigned.clone(), m.subscribed.clone(), m.regex.clone(), m.assignor.clone())
        });
        (self.epoch, self.members.len(), m)
    }

    /// The topics a member of this group subscribes to.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.members.values().any(|m| m.subscribes(topic))
    }

    /// ConsumerGroupDescribe's view of the group.
    pub fn describe(&self, group_id: GroupId, topics: &Topics) -> DescribedGroup {
        let names: HashMap<Uuid, &String> = self.target_topics.iter().map(|(n, (id, _))| (*id, n)).collect();
        let assignment = |set: &Owned| {
            let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for (t, p) in set {
                by_topic.entry(*t).or_default().push(*p);
            }
            let topic_partitions = by_topic
                .into_iter()
                .map(|(id, partitions)| {
                    let name = topics.name_for_id(&id).or_else(|| names.get(&id).map(|n| (*n).clone()));
                    DescribedTopic::default()
                        .with_topic_id(id)
                        .with_topic_name(TopicName(s(name.as_deref().unwrap_or(""))))
                        .with_partitions(partitions)
                })
                .collect();
            DescribedAssignment::default().with_topic_partitions(topic_partitions)
        };
        let empty = Owned::new();
        let members = self
            .members
            .values()
            .map(|m| {
                DescribedMember::default()
                    .with_member_id(s(&m.id))
                    .with_instance_id(m.instance_id.as_deref().map(s))
                    .with_rack_id(m.rack_id.as_deref().map(s))
                    .with_member_epoch(m.epoch)
                    .with_client_id(s(&m.client_id))
                    .with_client_host(s(&m.client_host))
                    .with_subscribed_topic_names(m.subscribed.iter().map(|t| TopicName(s(t))).collect())
                    .with_subscribed_topic_regex(m.regex.as_deref().map(s))
                    .with_assignment(assignment(&m.assigned))
                    .with_target_assignment(assignment(self.target.get(&m.id).unwrap_or(&empty)))
                    .with_member_type(1)
            })
            .collect();
        DescribedGroup::default()
            .with_group_id(group_id)
            .with_group_state(s(self.state()))
            .with_group_epoch(self.epoch)
            .with_assignment_epoch(self.epoch)
            .with_assignor_name(s(self.assignor()))
            .with_members(members)
            .with_authorized_operations(i32::MIN)
    }
}

/// Per topic, contiguous ranges of partitions over its subscribers in member-id order; the
/// first `partitions % subscribers` get one more.
fn assign_range<'a>(members: impl Iterator<Item = &'a str>, subs: &Subscriptions<'_>) -> BTreeMap<String, Owned> {
    let mut out: BTreeMap<String, Owned> = members.map(|m| (m.to_owned(), Owned::new())).collect();
    for (id, (partitions, subscribers)) in subs {
        let Ok(count) = i32::try_from(subscribers.len()) else { continue };
        if count == 0 {
            continue;
        }
        let (base, extra) = (partitions / count, partitions % count);
        let mut next = 0;
        for (i, m) in (0..).zip(subscribers) {
            let take = base + i32::from(i < extra);
            let set = out.entry((*m).to_owned()).or_default();
            set.extend((next..next + take).map(|p| (*id, p)));
            next += take;
        }
    }
    out
}

/// Balanced and sticky: previous owners keep what they may still have, the rest goes to the
/// least-loaded subscriber, then partitions move one at a time from the most loaded member to
/// a subscriber with at least two fewer, until none can (each move shrinks the sum of squared
/// loads, so this ends).
fn assign_uniform<'a>(
    previous: &BTreeMap<String, Owned>,
    members: impl Iterator<Item = &'a str>,
    subs: &Subscriptions<'_>,
) -> BTreeMap<String, Owned> {
    let mut out: BTreeMap<String, Owned> = members.map(|m| (m.to_owned(), Owned::new())).collect();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    for (m, parts) in previous {
        let Some(set) = out.get_mut(m) else { continue };
        for &(t, p) in parts {
            let allowed = subs.get(&t).is_some_and(|(n, s)| p < *n && s.contains(&m.as_str()));
            if allowed && taken.insert((t, p)) {
                set.insert((t, p));
            }
        }
    }
    let load = |out: &BTreeMap<String, Owned>, m: &str| out.get(m).map_or(0, BTreeSet::len);
    for (t, (n, subscribers)) in subs {
        for p in 0..*n {
            if taken.contains(&(*t, p)) {
                continue;
            }
            if let Some(m) = subscribers.iter().min_by_key(|m| (load(&out, m), **m)) {
                out.entry((*m).to_owned()).or_default().insert((*t, p));
                taken.insert((*t, p));
            }
        }
    }
    loop {
        let mut order: Vec<(&String, usize)> = out.iter().map(|(m, set)| (m, set.len())).collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut step = None;
        'find: for (from, from_load) in order {
            for &(t, p) in &out[from] {
                let Some((_, subscribers)) = subs.get(&t) else { continue };
                let to =
                    subscribers.iter().filter(|m| load(&out, m) + 1 < from_load).min_by_key(|m| (load(&out, m), **m));
                if let Some(to) = to {
                    step = Some((from.clone(), (*to).to_owned(), (t, p)));
                    break 'find;
                }
            }
        }
        let Some((from, to, tp)) = step else { break };
        if let Some(set) = out.get_mut(&from) {
            set.remove(&tp);
        }
        out.entry(to).or_default().insert(tp);
    }
    out
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn error(group: &ConsumerGroup, code: i16, msg: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code)
        .with_error_message(Some(s(msg)))
        .with_heartbeat_interval_ms(group.settings.heartbeat_interval_ms)
}

/// One heartbeat. `new_member_id` is used when a v0 member joins without an id.
pub fn heartbeat(
    group: &mut ConsumerGroup,
    req: &ConsumerGroupHeartbeatRequest,
    topics: &Topics,
    client: Client<'_>,
    new_member_id: impl FnOnce() -> String,
) -> ConsumerGroupHeartbeatResponse {
    if let Some(a) = req.server_assignor.as_deref() {
        if !ASSIGNORS.contains(&a) {
            return error(group, UNSUPPORTED_ASSIGNOR, "the server assignors are uniform and range");
        }
    }
    let now = Instant::now();
    let interval_ms = group.settings.heartbeat_interval_ms;
    let member_id = req.member_id.to_string();
    // Null: unchanged; empty: no regex any more.
    let regex: RegexChange = match req.subscribed_topic_regex.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(r) => match compile(r) {
            Ok(c) => Some(Some((r.to_owned(), c))),
            Err(e) => return error(group, INVALID_REGULAR_EXPRESSION, &format!("invalid regex {r:?}: {e}")),
        },
    };
    if req.member_epoch < 0 {
        // -1: leave; -2: a static member leaving for now. Both give up their partitions.
        if group.members.remove(&member_id).is_some() {
            group.compute_target(topics);
        }
        return ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(&member_id)))
            .with_member_epoch(req.member_epoch)
            .with_heartbeat_interval_ms(interval_ms);
    }
    let member_id = if req.member_epoch == 0 {
        let id = if member_id.is_empty() { new_member_id() } else { member_id };
        join_member(group, req, topics, client, id, regex, now)
    } else {
        match update_member(group, req, topics, member_id, regex) {
            Ok(id) => id,
            Err((code, msg)) => return error(group, code, msg),
        }
    };
    if group.subscribed_topics(topics) != group.target_topics {
        group.compute_target(topics);
    }
    if let Some(owned) = &req.topic_partitions {
        let owned: Owned = owned.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p))).collect();
        if let Some(m) = group.members.get_mut(&member_id) {
            m.owned = owned;
        }
    }
    assign(group, &member_id, now)
}

/// A heartbeat's change of the member's subscription regex: `None` leaves it as it is,
/// `Some(None)` removes it, `Some(Some(..))` sets it (the pattern and its compiled form).
type RegexChange = Option<Option<(String, regex::Regex)>>;

/// A member joins (epoch 0) as `id`, replacing an older incarnation of the same static
/// member. Returns its id.
fn join_member(
    group: &mut ConsumerGroup,
    req: &ConsumerGroupHeartbeatRequest,
    topics: &Topics,
    client: Client<'_>,
    id: String,
    regex: RegexChange,
    now: Instant,
) -> String {
    let subscribed: Vec<String> = req.subscribed_topic_names.iter().flatten().map(|t| t.to_string()).collect();
    if let Some(inst) = req.instance_id.as_deref() {
        // A static member's new incarnation replaces the old one.
        group.members.retain(|_, m| m.instance_id.as_deref() != Some(inst));
    }
    let rebalance_timeout_ms =
        if req.rebalance_timeout_ms > 0 { req.rebalance_timeout_ms } else { REBALANCE_TIMEOUT_DEFAULT_MS };
    let (regex, compiled) = regex.flatten().map_or((None, None), |(r, c)| (Some(r), Some(c)));
    group.members.insert(
        id.clone(),
        ConsumerMember {
            id: id.clone(),
            instance_id: req.instance_id.as_deref().map(str::to_owned),
            rack_id: req.rack_id.as_deref().map(str::to_owned),
            client_id: client.id.to_owned(),
            client_host: client.host.to_owned(),
            epoch: 0,
            subscribed,
            regex,
            compiled,
            assignor: req.server_assignor.as_deref().map(str::to_owned),
            rebalance_timeout_ms,
            owned: Owned::new(),
            assigned: Owned::new(),
            deadline: now + group.settings.session_timeout,
            revoke_deadline: None,
        },
    );
    group.compute_target(topics);
    id
}

/// A known member's heartbeat: checks its epoch and applies what it changed (subscribed
/// topics, assignor, regex). Returns its id, or the error code and message to answer.
fn update_member(
    group: &mut ConsumerGroup,
    req: &ConsumerGroupHeartbeatRequest,
    topics: &Topics,
    member_id: String,
    regex: RegexChange,
) -> Result<String, (i16, &'static str)> {
    let Some(m) = group.members.get(&member_id) else {
        return Err((crate::errors::code::UNKNOWN_MEMBER_ID, "unknown member"));
    };
    if req.member_epoch != m.epoch {
        return Err((FENCED_MEMBER_EPOCH, "stale member epoch"));
    }
    let Some(m) = group.members.get_mut(&member_id) else {
        return Err((crate::errors::code::UNKNOWN_MEMBER_ID, "unknown member"));
    };
    let mut changed = false;
    if let Some(n) = &req.subscribed_topic_names {
        let n: Vec<String> = n.iter().map(|t| t.to_string()).collect();
        changed |= n != m.subscribed;
        m.subscribed = n;
    }
    if let Some(a) = req.server_assignor.as_deref() {
        changed |= m.assignor.as_deref() != Some(a);
        m.assignor = Some(a.to_owned());
    }
    if let Some(r) = regex {
        let (r, c) = r.map_or((None, None), |(r, c)| (Some(r), Some(c)));
        changed |= m.regex != r;
        m.regex = r;
        m.compiled = c;
    }
    if changed {
        group.compute_target(topics);
    }
    Ok(member_id)
}

/// The heartbeat's answer: the member moves to the group's epoch and gets its assignment, which
/// revokes first (what it owns outside its target) and only then adds what nobody else holds.
fn assign(group: &mut ConsumerGroup, member_id: &str, now: Instant) -> ConsumerGroupHeartbeatResponse {
    let (session, interval_ms) = (group.settings.session_timeout, group.settings.heartbeat_interval_ms);
    let target = group.target.get(member_id).cloned().unwrap_or_default();
    let held_by_others: Owned =
        group.members.values().filter(|m| m.id != member_id).flat_map(|m| m.owned.iter().copied()).collect();
    let group_epoch = group.epoch;
    if !group.members.contains_key(member_id) {
        return error(group, crate::errors::code::UNKNOWN_MEMBER_ID, "unknown member");
    }
    let Some(m) = group.members.get_mut(member_id) else {
        return ConsumerGroupHeartbeatResponse::default();
    };
    m.deadline = now + session;
    // The member moves to the group's epoch with each answer; a heartbeat with any other
    // epoch is fenced.
    m.epoch = group_epoch;
    let assignment: Owned = if m.owned.is_subset(&target) {
        // Nothing left to revoke: the member gets every target partition nobody else holds.
        m.revoke_deadline = None;
        target.difference(&held_by_others).copied().collect()
    } else {
        // Revoke first: keep only what stays the member's.
        let timeout = Duration::from_millis(u64::try_from(m.rebalance_timeout_ms).unwrap_or(0));
        m.revoke_deadline.get_or_insert(now + timeout);
        m.owned.intersection(&target).copied().collect()
    };
    m.assigned = assignment.clone();
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in &assignment {
        by_topic.entry(*t).or_default().push(*p);
    }
    let topic_partitions =
        by_topic.into_iter().map(|(t, ps)| TopicPartitions::default().with_topic_id(t).with_partitions(ps)).collect();
    ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(s(member_id)))
        .with_member_epoch(m.epoch)
        .with_heartbeat_interval_ms(interval_ms)
        .with_assignment(Some(Assignment::default().with_topic_partitions(topic_partitions)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::TopicMeta;
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owns;
    use kafka_protocol::messages::{GroupId, TopicName};

    fn hb(
        member: &str,
        epoch: i32,
        topic: &str,
        owned: Option<Vec<(Uuid, Vec<i32>)>>,
    ) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_subscribed_topic_names(Some(vec![TopicName(s(topic))]))
            .with_topic_partitions(
                owned.map(|o| {
                    o.into_iter().map(|(t, ps)| Owns::default().with_topic_id(t).with_partitions(ps)).collect()
                }),
            )
    }

    const CL: Client<'static> = Client { id: "c", host: "/127.0.0.1" };

    fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Vec<i32> {
        r.assignment.iter().flat_map(|a| a.topic_partitions.iter().flat_map(|t| t.partitions.clone())).collect()
    }

    #[test]
    fn partitions_move_only_after_the_owner_revokes_them_and_late_topics_are_picked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topics = Topics::load(dir.path()).expect("topics");
        let mut g = ConsumerGroup::default();
        // Subscribed before the topic exists: nothing to assign yet.
        let r = heartbeat(&mut g, &hb("a", 0, "t", None), &topics, CL, || unreachable!());
        assert_eq!((r.error_code, assigned(&r)), (0, Vec::<i32>::new()));
        let id = Uuid::new_v4();
        topics.insert(TopicMeta { name: "t".into(), id, partitions: 2, configs: Default::default() });
        let r = heartbeat(&mut g, &hb("a", r.member_epoch, "t", Some(vec![])), &topics, CL, || unreachable!());
        assert_eq!(assigned(&r), vec![0, 1]);
        let a_epoch = r.member_epoch;
        heartbeat(&mut g, &hb("a", a_epoch, "t", Some(vec![(id, vec![0, 1])])), &topics, CL, || unreachable!());
        // b joins: its partition is still a's, so b waits while a is told to give it up.
        let rb = heartbeat(&mut g, &hb("b", 0, "t", Some(vec![])), &topics, CL, || unreachable!());
        assert_eq!(assigned(&rb), Vec::<i32>::new());
        let ra = heartbeat(&mut g, &hb("a", a_epoch, "t", None), &topics, CL, || unreachable!());
        let kept = assigned(&ra);
        assert_eq!(kept.len(), 1);
        heartbeat(
            &mut g,
            &hb("a", ra.member_epoch, "t", Some(vec![(id, kept.clone())])),
            &topics,
            CL,
            || unreachable!(),
        );
        let rb = heartbeat(&mut g, &hb("b", rb.member_epoch, "t", None), &topics, CL, || unreachable!());
        assert_eq!(assigned(&rb), vec![1 - kept[0]]);
        // A stale epoch is fenced.
        let stale = heartbeat(&mut g, &hb("b", 99, "t", None), &topics, CL, || unreachable!());
        assert_eq!(stale.error_code, FENCED_MEMBER_EPOCH);
    }

    fn subs<'a>(topic: Uuid, partitions: i32, members: &[&'a str]) -> Subscriptions<'a> {
        BTreeMap::from([(topic, (partitions, members.to_vec()))])
    }

    fn counts(a: &BTreeMap<String, Owned>) -> Vec<usize> {
        a.values().map(BTreeSet::len).collect()
    }

    #[test]
    fn uniform_is_balanced_and_moves_only_what_it_must() {
        let t = Uuid::new_v4();
        let two = assign_uniform(&BTreeMap::new(), ["a", "b"].into_iter(), &subs(t, 6, &["a", "b"]));
        assert_eq!(counts(&two), vec![3, 3]);
        // c joins: a and b each give up exactly one partition and keep the rest.
        let three = assign_uniform(&two, ["a", "b", "c"].into_iter(), &subs(t, 6, &["a", "b", "c"]));
        assert_eq!(counts(&three), vec![2, 2, 2]);
        for m in ["a", "b"] {
            assert!(three[m].is_subset(&two[m]), "{m} kept its partitions");
        }
        // b leaves: only b's partitions move.
        let after = assign_uniform(&three, ["a", "c"].into_iter(), &subs(t, 6, &["a", "c"]));
        assert_eq!(counts(&after), vec![3, 3]);
        assert!(three["a"].is_subset(&after["a"]) && three["c"].is_subset(&after["c"]));
        let all: Owned = after.values().flatten().copied().collect();
        assert_eq!(all, (0..6).map(|p| (t, p)).collect::<Owned>());
    }

    #[test]
    fn uniform_balances_members_with_different_subscriptions() {
        let (x, y) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // a subscribes to x only; b to x and y. x has 4 partitions, y has 2: 3 and 3.
        let mut s = subs(x, 4, &["a", "b"]);
        s.insert(y, (2, vec!["b"]));
        let out = assign_uniform(&BTreeMap::new(), ["a", "b"].into_iter(), &s);
        assert_eq!(counts(&out), vec![3, 3]);
        assert!(out["a"].iter().all(|(t, _)| *t == x));
        assert_eq!(out["b"].iter().filter(|(t, _)| *t == y).count(), 2);
    }

    #[test]
    fn range_gives_contiguous_ranges_with_the_remainder_first() {
        let (x, y) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut s = subs(x, 5, &["a", "b"]);
        s.insert(y, (5, vec!["a", "b"]));
        let out = assign_range(["a", "b"].into_iter(), &s);
        let parts = |m: &str, t: Uuid| out[m].iter().filter(|(tt, _)| *tt == t).map(|(_, p)| *p).collect::<Vec<_>>();
        assert_eq!((parts("a", x), parts("b", x)), (vec![0, 1, 2], vec![3, 4]));
        // Co-partitioned topics land together.
        assert_eq!((parts("a", y), parts("b", y)), (vec![0, 1, 2], vec![3, 4]));
    }

    #[test]
    fn members_choose_the_assignor_and_the_group_describes_itself() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topics = Topics::load(dir.path()).expect("topics");
        let id = Uuid::new_v4();
        topics.insert(TopicMeta { name: "t".into(), id, partitions: 3, configs: Default::default() });
        let mut g = ConsumerGroup::default();
        let bad = heartbeat(
            &mut g,
            &hb("a", 0, "t", None).with_server_assignor(Some(s("sticky"))),
            &topics,
            CL,
            || unreachable!(),
        );
        assert_eq!(bad.error_code, UNSUPPORTED_ASSIGNOR);
        let r = heartbeat(
            &mut g,
            &hb("a", 0, "t", None).with_server_assignor(Some(s("range"))),
            &topics,
            CL,
            || unreachable!(),
        );
        assert_eq!((g.assignor(), assigned(&r)), ("range", vec![0, 1, 2]));
        assert_eq!(g.state(), "Reconciling");
        heartbeat(
            &mut g,
            &hb("a", r.member_epoch, "t", Some(vec![(id, vec![0, 1, 2])])),
            &topics,
            CL,
            || unreachable!(),
        );
        assert_eq!(g.state(), "Stable");
        let d = g.describe(GroupId(s("g")), &topics);
        assert_eq!((d.group_state.as_str(), d.assignor_name.as_str(), d.group_epoch), ("Stable", "range", g.epoch));
        let m = d.members.first().expect("member");
        assert_eq!((m.member_id.as_str(), m.client_id.as_str(), m.member_type), ("a", "c", 1));
        let a = m.assignment.topic_partitions.first().expect("topic");
        assert_eq!((a.topic_name.as_str(), a.partitions.clone()), ("t", vec![0, 1, 2]));
        // The snapshot restores the same group.
        let back = ConsumerGroup::restore(
            serde_json::from_slice(&serde_json::to_vec(&g.snapshot()).expect("json")).expect("parse"),
            Instant::now(),
            Settings::default(),
        );
        assert_eq!((back.epoch, back.assignor(), back.state()), (g.epoch, "range", "Stable"));
        let json = |g: &ConsumerGroup| serde_json::to_string(&g.snapshot()).expect("json");
        assert_eq!(json(&back), json(&g));
    }

    #[test]
    fn a_member_that_keeps_revoked_partitions_is_fenced_after_its_rebalance_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topics = Topics::load(dir.path()).expect("topics");
        let id = Uuid::new_v4();
        topics.insert(TopicMeta { name: "t".into(), id, partitions: 2, configs: Default::default() });
        let mut g = ConsumerGroup::default();
        let r =
            heartbeat(&mut g, &hb("a", 0, "t", None).with_rebalance_timeout_ms(1000), &topics, CL, || unreachable!());
        let r = heartbeat(
            &mut g,
            &hb("a", r.member_epoch, "t", Some(vec![(id, vec![0, 1])])),
            &topics,
            CL,
            || unreachable!(),
        );
        heartbeat(&mut g, &hb("b", 0, "t", Some(vec![])), &topics, CL, || unreachable!());
        // a is asked to give one partition up and does not.
        let ra = heartbeat(&mut g, &hb("a", r.member_epoch, "t", None), &topics, CL, || unreachable!());
        assert_eq!(assigned(&ra).len(), 1);
        assert!(!g.expire(Instant::now(), &topics));
        assert!(g.expire(Instant::now() + Duration::from_millis(1500), &topics));
        assert_eq!(g.members.keys().collect::<Vec<_>>(), vec!["b"]);
    }

    #[test]
    fn regex_subscriptions_match_whole_names_and_pick_up_new_topics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topics = Topics::load(dir.path()).expect("topics");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        topics.insert(TopicMeta { name: "logs-a".into(), id: a, partitions: 1, configs: Default::default() });
        topics.insert(TopicMeta {
            name: "xlogs-b".into(),
            id: Uuid::new_v4(),
            partitions: 1,
            configs: Default::default(),
        });
        let mut g = ConsumerGroup::default();
        let req = |epoch: i32, regex: Option<&str>| {
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(s("m"))
                .with_member_epoch(epoch)
                .with_subscribed_topic_regex(regex.map(s))
                .with_topic_partitions(Some(vec![]))
        };
        let bad = heartbeat(&mut g, &req(0, Some("logs-(")), &topics, CL, || unreachable!());
        assert_eq!(bad.error_code, INVALID_REGULAR_EXPRESSION);
        let r = heartbeat(&mut g, &req(0, Some("logs-.*")), &topics, CL, || unreachable!());
        let topics_of = |r: &ConsumerGroupHeartbeatResponse| {
            r.assignment.iter().flat_map(|x| x.topic_partitions.iter().map(|t| t.topic_id)).collect::<Vec<_>>()
        };
        // "xlogs-b" does not match the whole pattern.
        assert_eq!(topics_of(&r), vec![a]);
        topics.insert(TopicMeta { name: "logs-b".into(), id: b, partitions: 1, configs: Default::default() });
        let r = heartbeat(&mut g, &req(r.member_epoch, None), &topics, CL, || unreachable!());
        let mut got = topics_of(&r);
        got.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(got, want);
        assert!(g.subscribes_to("logs-b") && !g.subscribes_to("xlogs-b"));
    }
}
