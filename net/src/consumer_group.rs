//! KIP-848 consumer groups (`group.protocol=consumer`): ConsumerGroupHeartbeat with a
//! server-side uniform assignor.
//!
//! Lives on: the group's coordinator shard, inside [`crate::group::Coordinator`].
//!
//! Every heartbeat carries the member's subscription and (when changed) the partitions it owns.
//! The coordinator keeps a target assignment per group epoch (partitions of the subscribed
//! topics spread round-robin over the members sorted by id) and reconciles each member towards
//! it: first it tells the member to drop what it must give up, then, once the member's
//! heartbeat confirms, it hands out its target partitions that no other member still owns. So a
//! partition is never owned by two members at once. Membership is not persisted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::topics::Topics;

/// Kafka's `group.consumer.session.timeout.ms` default is 45 s; shorter so a killed member's
/// partitions move on sooner.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// What members are told (`group.consumer.heartbeat.interval.ms`, Kafka's default is 5 s; a
/// shorter interval makes reconciliation steps, one per heartbeat, quicker).
pub const HEARTBEAT_INTERVAL_MS: i32 = 1000;

pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;

pub type Owned = BTreeSet<(Uuid, i32)>;

pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub epoch: i32,
    pub subscribed: Vec<String>,
    /// What the member last said it owns.
    pub owned: Owned,
    deadline: Instant,
}

#[derive(Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, Owned>,
    /// The subscribed topics (id, partition count) the target was computed from: a topic
    /// created, deleted or grown since changes the target too.
    target_topics: BTreeMap<String, (Uuid, i32)>,
}

impl ConsumerGroup {
    /// Recomputes the target assignment: each subscribed topic's partitions round-robin over
    /// the members subscribed to it, sorted by member id.
    fn subscribed_topics(&self, topics: &Topics) -> BTreeMap<String, (Uuid, i32)> {
        let names: BTreeSet<&String> = self.members.values().flat_map(|m| m.subscribed.iter()).collect();
        names.into_iter().filter_map(|n| topics.get(n).map(|m| (n.clone(), (m.id, m.partitions)))).collect()
    }

    fn compute_target(&mut self, topics: &Topics) {
        self.epoch += 1;
        self.target_topics = self.subscribed_topics(topics);
        let mut target: BTreeMap<String, Owned> = self.members.keys().map(|k| (k.clone(), Owned::new())).collect();
        let names: BTreeSet<&String> = self.members.values().flat_map(|m| m.subscribed.iter()).collect();
        let mut slot = 0usize;
        for name in names {
            let Some(meta) = topics.get(name) else { continue };
            let subscribers: Vec<&String> =
                self.members.values().filter(|m| m.subscribed.contains(name)).map(|m| &m.id).collect();
            if subscribers.is_empty() {
                continue;
            }
            for p in 0..meta.partitions {
                let m = subscribers[slot % subscribers.len()];
                slot += 1;
                target.entry(m.clone()).or_default().insert((meta.id, p));
            }
        }
        self.target = target;
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Drops members whose session ran out; true if any did.
    pub fn expire(&mut self, now: Instant, topics: &Topics) -> bool {
        let before = self.members.len();
        self.members.retain(|_, m| m.deadline > now);
        let changed = self.members.len() != before;
        if changed {
            self.compute_target(topics);
        }
        changed
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn error(code: i16, msg: &str) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code)
        .with_error_message(Some(s(msg)))
        .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL_MS)
}

/// One heartbeat. `new_member_id` is used when a v0 member joins without an id.
pub fn heartbeat(
    group: &mut ConsumerGroup,
    req: &ConsumerGroupHeartbeatRequest,
    topics: &Topics,
    new_member_id: impl FnOnce() -> String,
) -> ConsumerGroupHeartbeatResponse {
    if let Some(a) = req.server_assignor.as_deref() {
        if a != "uniform" && a != "range" {
            return error(UNSUPPORTED_ASSIGNOR, "the server assignors are uniform and range");
        }
    }
    let now = Instant::now();
    let member_id = req.member_id.to_string();
    if req.member_epoch < 0 {
        // -1: leave; -2: a static member leaving for now. Both give up their partitions.
        if group.members.remove(&member_id).is_some() {
            group.compute_target(topics);
        }
        return ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(&member_id)))
            .with_member_epoch(req.member_epoch)
            .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL_MS);
    }
    let member_id = if req.member_epoch == 0 {
        let id = if member_id.is_empty() { new_member_id() } else { member_id };
        let subscribed: Vec<String> = req.subscribed_topic_names.iter().flatten().map(|t| t.to_string()).collect();
        if let Some(inst) = req.instance_id.as_deref() {
            // A static member's new incarnation replaces the old one.
            let old: Vec<String> = group
                .members
                .values()
                .filter(|m| m.instance_id.as_deref() == Some(inst))
                .map(|m| m.id.clone())
                .collect();
            for o in old {
                group.members.remove(&o);
            }
        }
        group.members.insert(
            id.clone(),
            ConsumerMember {
                id: id.clone(),
                instance_id: req.instance_id.as_deref().map(str::to_owned),
                epoch: 0,
                subscribed,
                owned: Owned::new(),
                deadline: now + SESSION_TIMEOUT,
            },
        );
        group.compute_target(topics);
        id
    } else {
        let Some(m) = group.members.get(&member_id) else {
            return error(crate::group::gcode::UNKNOWN_MEMBER_ID, "unknown member");
        };
        if req.member_epoch != m.epoch {
            return error(FENCED_MEMBER_EPOCH, "stale member epoch");
        }
        let new_subscription: Option<Vec<String>> =
            req.subscribed_topic_names.as_ref().map(|ts| ts.iter().map(|t| t.to_string()).collect());
        let changed = new_subscription.as_ref().is_some_and(|n| *n != m.subscribed);
        if let Some(m) = group.members.get_mut(&member_id) {
            if let Some(n) = new_subscription {
                m.subscribed = n;
            }
        }
        if changed {
            group.compute_target(topics);
        }
        member_id
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
    let target = group.target.get(&member_id).cloned().unwrap_or_default();
    let held_by_others: Owned =
        group.members.values().filter(|m| m.id != member_id).flat_map(|m| m.owned.iter().copied()).collect();
    let group_epoch = group.epoch;
    let Some(m) = group.members.get_mut(&member_id) else {
        return error(crate::group::gcode::UNKNOWN_MEMBER_ID, "unknown member");
    };
    m.deadline = now + SESSION_TIMEOUT;
    // The member moves to the group's epoch with each answer; a heartbeat with any other
    // epoch is fenced.
    m.epoch = group_epoch;
    let assignment: Owned = if m.owned.is_subset(&target) {
        // Nothing left to revoke: the member gets every target partition nobody else holds.
        target.difference(&held_by_others).copied().collect()
    } else {
        // Revoke first: keep only what stays the member's.
        m.owned.intersection(&target).copied().collect()
    };
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in &assignment {
        by_topic.entry(*t).or_default().push(*p);
    }
    let topic_partitions =
        by_topic.into_iter().map(|(t, ps)| TopicPartitions::default().with_topic_id(t).with_partitions(ps)).collect();
    ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(s(&member_id)))
        .with_member_epoch(m.epoch)
        .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL_MS)
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

    fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Vec<i32> {
        r.assignment.iter().flat_map(|a| a.topic_partitions.iter().flat_map(|t| t.partitions.clone())).collect()
    }

    #[test]
    fn partitions_move_only_after_the_owner_revokes_them_and_late_topics_are_picked_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topics = Topics::load(dir.path()).expect("topics");
        let mut g = ConsumerGroup::default();
        // Subscribed before the topic exists: nothing to assign yet.
        let r = heartbeat(&mut g, &hb("a", 0, "t", None), &topics, || unreachable!());
        assert_eq!((r.error_code, assigned(&r)), (0, Vec::<i32>::new()));
        let id = Uuid::new_v4();
        topics.insert(TopicMeta { name: "t".into(), id, partitions: 2, configs: Default::default() });
        let r = heartbeat(&mut g, &hb("a", r.member_epoch, "t", Some(vec![])), &topics, || unreachable!());
        assert_eq!(assigned(&r), vec![0, 1]);
        let a_epoch = r.member_epoch;
        heartbeat(&mut g, &hb("a", a_epoch, "t", Some(vec![(id, vec![0, 1])])), &topics, || unreachable!());
        // b joins: its partition is still a's, so b waits while a is told to give it up.
        let rb = heartbeat(&mut g, &hb("b", 0, "t", Some(vec![])), &topics, || unreachable!());
        assert_eq!(assigned(&rb), Vec::<i32>::new());
        let ra = heartbeat(&mut g, &hb("a", a_epoch, "t", None), &topics, || unreachable!());
        assert_eq!(assigned(&ra), vec![0]);
        heartbeat(&mut g, &hb("a", ra.member_epoch, "t", Some(vec![(id, vec![0])])), &topics, || unreachable!());
        let rb = heartbeat(&mut g, &hb("b", rb.member_epoch, "t", None), &topics, || unreachable!());
        assert_eq!(assigned(&rb), vec![1]);
        // A stale epoch is fenced.
        let stale = heartbeat(&mut g, &hb("b", 99, "t", None), &topics, || unreachable!());
        assert_eq!(stale.error_code, FENCED_MEMBER_EPOCH);
    }
}
