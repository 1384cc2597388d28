//! Group APIs: FindCoordinator answers live here with the coordinator's routing; every other
//! group request travels to the group's coordinator shard as one `Request::Coordinator` call
//! (requests naming several groups are split per coordinator shard, one message each) and is
//! served there by [`serve`], which owns the shard's [`crate::coordinator::group::Coordinator`].

use std::collections::BTreeMap;

use engine::shard::TopicPartition;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup as ConsumerDescribed;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, RequestKind, ResponseKind, TopicName, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::coordinator::group::{self, Committed, GroupState, SharedCoordinator};
use crate::coordinator::store as group_store;
use crate::errors::code;
use crate::server::{Request, Router, ShardCtx};
use replication::ShardId;

/// A group request on its way to the coordinator shard.
/// Who sent a group request: the client id and host a coordinator records for members.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub client_id: &'a str,
    /// `/ip`, as Kafka reports it.
    pub host: &'a str,
}

pub struct GroupCall {
    pub version: i16,
    pub client_id: String,
    pub client_host: String,
    pub request: RequestKind,
    pub reply: flume::Sender<ResponseKind>,
}

/// The shard that coordinates `group_id`: the owner of its `__consumer_offsets` partition.
pub fn coordinator_shard(router: &Router, group_id: &str) -> ShardId {
    router.owner(&TopicPartition::new(group::OFFSETS_TOPIC, group::coordinator_partition(group_id)))
}

/// Sends one group request to `shard` and waits for its answer.
pub async fn call(
    router: &Router,
    shard: ShardId,
    version: i16,
    caller: Caller<'_>,
    request: RequestKind,
) -> Option<ResponseKind> {
    let (client_id, client_host) = (caller.client_id.to_owned(), caller.host.to_owned());
    router
        .call(shard, |reply| {
            Request::Coordinator(crate::server::Call::Group(Box::new(GroupCall {
                version,
                client_id,
                client_host,
                request,
                reply,
            })))
        })
        .await
        .ok()
}

/// Routes a single-group request to its coordinator.
pub async fn route(router: &Router, version: i16, caller: Caller<'_>, request: RequestKind) -> Option<ResponseKind> {
    // A request naming several groups: one part per coordinator shard, results gathered into one
    // response. `$groups`/`$with_groups`: the request's group list; `$results`/`$with_results`:
    // the response's per-group list.
    macro_rules! multi_group {
        ($req:ident, $Kind:ident, $Response:ident, $groups:ident, $with_groups:ident, $id:expr, $results:ident, $with_results:ident) => {{
            let out = scatter_gather(
                router,
                version,
                caller,
                $req.$groups.clone(),
                $id,
                |groups| RequestKind::$Kind($req.clone().$with_groups(groups)),
                |r| match r {
                    ResponseKind::$Kind(r) => Some(r.$results),
                    _ => None,
                },
            )
            .await;
            return Some(ResponseKind::$Kind($Response::default().$with_results(out)));
        }};
    }
    let request = match request {
        RequestKind::OffsetFetch(r) if version >= 8 => {
            multi_group!(
                r,
                OffsetFetch,
                OffsetFetchResponse,
                groups,
                with_groups,
                |g| g.group_id.as_str(),
                groups,
                with_groups
            )
        }
        RequestKind::DescribeGroups(r) => {
            multi_group!(
                r,
                DescribeGroups,
                DescribeGroupsResponse,
                groups,
                with_groups,
                |g| g.as_str(),
                groups,
                with_groups
            )
        }
        RequestKind::DeleteGroups(r) => multi_group!(
            r,
            DeleteGroups,
            DeleteGroupsResponse,
            groups_names,
            with_groups_names,
            |g| g.as_str(),
            results,
            with_results
        ),
        RequestKind::ConsumerGroupDescribe(r) => multi_group!(
            r,
            ConsumerGroupDescribe,
            ConsumerGroupDescribeResponse,
            group_ids,
            with_group_ids,
            |g| g.as_str(),
            groups,
            with_groups
        ),
        RequestKind::ListGroups(r) => return list_all(router, version, caller, r).await,
        other => other,
    };
    let group_id = match &request {
        RequestKind::JoinGroup(r) => r.group_id.to_string(),
        RequestKind::SyncGroup(r) => r.group_id.to_string(),
        RequestKind::Heartbeat(r) => r.group_id.to_string(),
        RequestKind::LeaveGroup(r) => r.group_id.to_string(),
        RequestKind::OffsetCommit(r) => r.group_id.to_string(),
        RequestKind::OffsetDelete(r) => r.group_id.to_string(),
        RequestKind::OffsetFetch(r) => r.group_id.to_string(),
        RequestKind::ConsumerGroupHeartbeat(r) => r.group_id.to_string(),
        RequestKind::TxnOffsetCommit(r) => r.group_id.to_string(),
        _ => return None,
    };
    let shard = coordinator_shard(router, &group_id);
    call(router, shard, version, caller, request).await
}

/// Splits `groups` by coordinator shard.
fn by_shard<T>(router: &Router, groups: Vec<T>, id: impl Fn(&T) -> &str) -> BTreeMap<ShardId, Vec<T>> {
    let mut out: BTreeMap<ShardId, Vec<T>> = BTreeMap::new();
    for g in groups {
        let shard = coordinator_shard(router, id(&g));
        out.entry(shard).or_default().push(g);
    }
    out
}

/// Sends one part of a multi-group request to each coordinator shard and gathers the parts'
/// per-group results: `part` builds the request for a shard's groups, `results` takes the
/// per-group entries out of its response.
async fn scatter_gather<T, R>(
    router: &Router,
    version: i16,
    caller: Caller<'_>,
    groups: Vec<T>,
    id: impl Fn(&T) -> &str,
    part: impl Fn(Vec<T>) -> RequestKind,
    results: impl Fn(ResponseKind) -> Option<Vec<R>>,
) -> Vec<R> {
    let mut out = Vec::new();
    for (shard, groups) in by_shard(router, groups, id) {
        if let Some(r) = call(router, shard, version, caller, part(groups)).await.and_then(&results) {
            out.extend(r);
        }
    }
    out
}

async fn list_all(router: &Router, version: i16, caller: Caller<'_>, req: ListGroupsRequest) -> Option<ResponseKind> {
    let mut out = Vec::new();
    for shard in router.shards() {
        if let Some(ResponseKind::ListGroups(r)) =
            call(router, shard, version, caller, RequestKind::ListGroups(req.clone())).await
        {
            out.extend(r.groups);
        }
    }
    Some(ResponseKind::ListGroups(ListGroupsResponse::default().with_groups(out)))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// How long a request waits for its coordinator to finish loading before it is answered
/// COORDINATOR_LOAD_IN_PROGRESS (clients retry that).
const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The group a membership request changes, to persist afterwards.
fn membership_group(request: &RequestKind) -> Option<String> {
    match request {
        RequestKind::JoinGroup(r) => Some(r.group_id.to_string()),
        RequestKind::SyncGroup(r) => Some(r.group_id.to_string()),
        RequestKind::LeaveGroup(r) => Some(r.group_id.to_string()),
        _ => None,
    }
}

/// Serves one group request on its coordinator shard.
pub async fn serve(ctx: &ShardCtx, co: &SharedCoordinator, call: Box<GroupCall>) {
    let GroupCall { version, client_id, client_host, request, reply } = *call;
    // Start-up reads the shard's groups back first. A request waits a little for that rather
    // than see offsets missing, then gets Kafka's COORDINATOR_LOAD_IN_PROGRESS and retries.
    let waited = std::time::Instant::now();
    while !co.borrow().loaded {
        if waited.elapsed() >= LOAD_WAIT {
            if let Some(r) = load_in_progress(request, version) {
                let _ = reply.send(r);
            }
            return;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
    }
    let changes = membership_group(&request);
    let response = match request {
        RequestKind::JoinGroup(r) => {
            let args = group::JoinArgs { client_id, client_host };
            ResponseKind::JoinGroup(group::join(co, version, r, args).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(group::sync(co, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(group::heartbeat(co, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(group::leave(co, version, r)),
        RequestKind::ConsumerGroupDescribe(r) => ResponseKind::ConsumerGroupDescribe(consumer_describe(ctx, co, r)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit(ctx, co, r).await),
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(txn_offset_commit(ctx, co, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch(co, version, r)),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(offset_delete(ctx, co, r).await),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(describe(co, version, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(delete(ctx, co, r).await),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(list(co, version, r)),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            let mut c = co.borrow_mut();
            let group_id = r.group_id.to_string();
            let resp = if group_id.is_empty() {
                ConsumerGroupHeartbeatResponse::default().with_error_code(code::INVALID_GROUP_ID)
            } else if c.group(&group_id).is_some_and(|g| !g.members.is_empty()) {
                // A classic group with members keeps its protocol (Kafka's online migration
                // is not supported).
                ConsumerGroupHeartbeatResponse::default().with_error_code(code::INCONSISTENT_GROUP_PROTOCOL)
            } else {
                let id = c.new_member_id(&client_id);
                let settings = c.settings.consumer;
                let cg = c.consumer_groups.entry(group_id.clone()).or_default();
                cg.settings = settings;
                let before = cg.fingerprint(r.member_id.as_str());
                // Expired sessions go here too, not only in the periodic sweep, so a member
                // never meets a partition still held by a member already gone.
                cg.expire(std::time::Instant::now(), &ctx.broker.topics);
                let client = crate::coordinator::consumer_group::Client { id: &client_id, host: &client_host };
                let resp = crate::coordinator::consumer_group::heartbeat(cg, &r, &ctx.broker.topics, client, || id);
                let member = resp.member_id.as_deref().unwrap_or(r.member_id.as_str());
                // Steady-state heartbeats change nothing persisted: only real changes are written.
                let changed = cg.fingerprint(member) != before || r.member_epoch == 0;
                if cg.is_empty() {
                    c.consumer_groups.remove(&group_id);
                }
                if changed {
                    c.mark_dirty(&group_id);
                }
                resp
            };
            ResponseKind::ConsumerGroupHeartbeat(resp)
        }
        _ => return,
    };
    if let Some(id) = changes {
        co.borrow_mut().mark_dirty(&id);
    }
    let _ = reply.send(response);
}

/// Answers a call the coordinator's shard cannot admit now (its door is full) with
/// COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
pub fn refuse(call: Box<GroupCall>) {
    let GroupCall { version, request, reply, .. } = *call;
    if let Some(r) = load_in_progress(request, version) {
        let _ = reply.send(r);
    }
}

/// The COORDINATOR_LOAD_IN_PROGRESS answer to a group request.
fn load_in_progress(request: RequestKind, version: i16) -> Option<ResponseKind> {
    let e = code::COORDINATOR_LOAD_IN_PROGRESS;
    Some(match request {
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(
            kafka_protocol::messages::JoinGroupResponse::default()
                .with_error_code(e)
                .with_generation_id(-1)
                .with_member_id(r.member_id)
                .with_protocol_name(Some(StrBytes::default())),
        ),
        RequestKind::SyncGroup(_) => {
            ResponseKind::SyncGroup(kafka_protocol::messages::SyncGroupResponse::default().with_error_code(e))
        }
        RequestKind::Heartbeat(_) => {
            ResponseKind::Heartbeat(kafka_protocol::messages::HeartbeatResponse::default().with_error_code(e))
        }
        RequestKind::LeaveGroup(_) => {
            ResponseKind::LeaveGroup(kafka_protocol::messages::LeaveGroupResponse::default().with_error_code(e))
        }
        RequestKind::OffsetCommit(r) => {
            let topics = r
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(e)
                        })
                        .collect();
                    OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
                })
                .collect();
            ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
        }
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(txn_offset_error(r, e)),
        RequestKind::OffsetFetch(r) if version >= 8 => {
            let groups = r
                .groups
                .into_iter()
                .map(|g| OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_error_code(e))
                .collect();
            ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_groups(groups))
        }
        RequestKind::OffsetFetch(_) => ResponseKind::OffsetFetch(OffsetFetchResponse::default().with_error_code(e)),
        RequestKind::OffsetDelete(_) => ResponseKind::OffsetDelete(OffsetDeleteResponse::default().with_error_code(e)),
        RequestKind::DescribeGroups(r) => {
            let groups = r.groups.into_iter().map(|g| DescribedGroup::default().with_group_id(g).with_error_code(e));
            ResponseKind::DescribeGroups(DescribeGroupsResponse::default().with_groups(groups.collect()))
        }
        RequestKind::DeleteGroups(r) => {
            let results =
                r.groups_names.into_iter().map(|g| DeletableGroupResult::default().with_group_id(g).with_error_code(e));
            ResponseKind::DeleteGroups(DeleteGroupsResponse::default().with_results(results.collect()))
        }
        RequestKind::ListGroups(_) => ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(e)),
        RequestKind::ConsumerGroupHeartbeat(_) => {
            ResponseKind::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatResponse::default().with_error_code(e))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            let groups =
                r.group_ids.into_iter().map(|g| ConsumerDescribed::default().with_group_id(g).with_error_code(e));
            ResponseKind::ConsumerGroupDescribe(ConsumerGroupDescribeResponse::default().with_groups(groups.collect()))
        }
        _ => return None,
    })
}

/// ConsumerGroupDescribe: KIP-848 groups only; a classic group is "not a consumer group".
fn consumer_describe(
    ctx: &ShardCtx,
    co: &SharedCoordinator,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let c = co.borrow();
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            if let Some(cg) = c.consumer_groups.get(id.as_str()) {
                return cg.describe(id, &ctx.broker.topics);
            }
            let msg = if c.group(id.as_str()).is_some_and(|g| !g.members.is_empty()) {
                format!("Group {} is not a consumer group.", id.as_str())
            } else {
                format!("Group {} not found.", id.as_str())
            };
            ConsumerDescribed::default()
                .with_group_id(id)
                .with_error_code(code::GROUP_ID_NOT_FOUND)
                .with_error_message(Some(s(&msg)))
                .with_group_state(s("Dead"))
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// One partition of an OffsetCommit or TxnOffsetCommit: the offset to write, or the error to
/// answer (`err`, the request's own, comes first). `offset`: (offset, leader epoch, metadata).
fn judge_offset(
    err: i16,
    topic: Option<&crate::topics::TopicMeta>,
    partition: i32,
    offset: (i64, i32, Option<StrBytes>),
) -> Result<Committed, i16> {
    let (offset, leader_epoch, metadata) = offset;
    let metadata = metadata.map(|m| m.to_string()).unwrap_or_default();
    if err != code::NONE {
        Err(err)
    } else if !topic.is_some_and(|m| partition >= 0 && partition < m.partitions) {
        Err(code::UNKNOWN_TOPIC_OR_PARTITION)
    } else if metadata.len() > group::OFFSET_METADATA_BYTES_MAX {
        Err(code::OFFSET_METADATA_TOO_LARGE)
    } else {
        Ok(Committed { offset, leader_epoch, metadata })
    }
}

async fn offset_commit(ctx: &ShardCtx, co: &SharedCoordinator, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_id = req.group_id.to_string();
    let consumer_check =
        co.borrow().consumer_groups.get(&group_id).map(|cg| match cg.members.get(req.member_id.as_str()) {
            // A KIP-848 group in the map has members: like Kafka, commits from outside the group
            // (generation -1, no member id) are only taken while it is empty.
            None => code::UNKNOWN_MEMBER_ID,
            Some(m) if m.epoch != req.generation_id_or_member_epoch => {
                crate::coordinator::consumer_group::STALE_MEMBER_EPOCH
            }
            Some(_) => code::NONE,
        });
    let err = if group_id.is_empty() {
        code::INVALID_GROUP_ID
    } else if let Some(e) = consumer_check {
        e
    } else {
        group::check_commit(
            co.borrow().group(&group_id),
            req.generation_id_or_member_epoch,
            req.member_id.as_str(),
            req.group_instance_id.as_deref(),
        )
    };
    // (topic index, partition index, key, value) of what passed the checks.
    let mut accepted: Vec<(usize, usize, (String, i32), Committed)> = Vec::new();
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.into_iter().enumerate() {
        let meta = ctx.view.meta(t.name.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.into_iter().enumerate() {
            let offset = (p.committed_offset, p.committed_leader_epoch, p.committed_metadata);
            let code = match judge_offset(err, meta.as_deref(), p.partition_index, offset) {
                Ok(c) => {
                    accepted.push((ti, pi, (t.name.to_string(), p.partition_index), c));
                    code::NONE
                }
                Err(e) => e,
            };
            partitions.push(
                OffsetCommitResponsePartition::default().with_partition_index(p.partition_index).with_error_code(code),
            );
        }
        topics.push(OffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions));
    }
    let records = accepted
        .iter()
        .map(|(_, _, (topic, partition), c)| group_store::offset_record(&group_id, topic, *partition, Some(c)))
        .collect();
    // Durable first, then visible: a fetch never returns an offset a restart would lose.
    let written = group_store::append(ctx, group::coordinator_partition(&group_id), records).await;
    let mut c = co.borrow_mut();
    let group = if written.is_ok() && !accepted.is_empty() { c.group_or_create(&group_id) } else { None };
    let failed = match (written, group) {
        (Err(e), _) => e,
        (Ok(()), Some(g)) => {
            for (_, _, key, value) in &accepted {
                g.offsets.insert(key.clone(), value.clone());
            }
            code::NONE
        }
        (Ok(()), None) if accepted.is_empty() => code::NONE,
        (Ok(()), None) => code::COORDINATOR_NOT_AVAILABLE,
    };
    if failed != code::NONE {
        for (ti, pi, _, _) in &accepted {
            if let Some(p) = topics.get_mut(*ti).and_then(|t| t.partitions.get_mut(*pi)) {
                p.error_code = failed;
            }
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

/// The same error for every partition of a TxnOffsetCommit.
fn txn_offset_error(req: TxnOffsetCommitRequest, e: i16) -> TxnOffsetCommitResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(e)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// The member checks of a transactional commit. A producer that names no member (generation
/// -1, no member id: `sendOffsetsToTransaction(offsets, groupId)`) is not checked; one that
/// does must be a current member of the current generation (or epoch). Unlike OffsetCommit, a
/// rebalance in progress does not refuse it: the commit lands only if the transaction commits.
fn txn_member_check(c: &group::Coordinator, req: &TxnOffsetCommitRequest) -> i16 {
    let group_id = req.group_id.as_str();
    if group_id.is_empty() {
        return code::INVALID_GROUP_ID;
    }
    if req.generation_id < 0 && req.member_id.is_empty() && req.group_instance_id.is_none() {
        return code::NONE;
    }
    if let Some(cg) = c.consumer_groups.get(group_id) {
        return match cg.members.get(req.member_id.as_str()) {
            None => code::UNKNOWN_MEMBER_ID,
            Some(m) if m.epoch != req.generation_id => code::ILLEGAL_GENERATION,
            Some(_) => code::NONE,
        };
    }
    let Some(g) = c.group(group_id) else { return code::ILLEGAL_GENERATION };
    let member = match req.group_instance_id.as_deref() {
        Some(inst) => match g.statics.get(inst) {
            Some(m) if *m == req.member_id.as_str() => Some(m),
            Some(_) => return code::FENCED_INSTANCE_ID,
            None => None,
        },
        None => g.members.get(req.member_id.as_str()).map(|m| &m.id),
    };
    if member.is_none() {
        code::UNKNOWN_MEMBER_ID
    } else if req.generation_id != g.generation {
        code::ILLEGAL_GENERATION
    } else {
        code::NONE
    }
}

/// TxnOffsetCommit: the offsets are written to the group's partition in the producer's
/// transaction (a transactional batch of its id and epoch) and held pending; they become the
/// group's committed offsets when the COMMIT marker reaches that partition
/// ([`group::Coordinator::end_txn_offsets`]).
async fn txn_offset_commit(
    ctx: &ShardCtx,
    co: &SharedCoordinator,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group_id = req.group_id.to_string();
    let partition = group::coordinator_partition(&group_id);
    let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
    let mut err = txn_member_check(&co.borrow(), &req);
    if err == code::NONE && ctx.config().transaction_partition_verification {
        let tps = vec![(group::OFFSETS_TOPIC.to_owned(), partition)];
        let verdict = crate::handlers::txn::verify(&ctx.router, req.transactional_id.as_str(), pid, epoch, tps).await;
        err = verdict.first().copied().unwrap_or(code::UNKNOWN_SERVER_ERROR);
    }
    // (topic index, partition index, (group, topic, partition), offset) of what passed.
    type Accepted = (usize, usize, (String, String, i32), Committed);
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.into_iter().enumerate() {
        let meta = ctx.view.meta(t.name.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.into_iter().enumerate() {
            let offset = (p.committed_offset, p.committed_leader_epoch, p.committed_metadata);
            let code = match judge_offset(err, meta.as_deref(), p.partition_index, offset) {
                Ok(c) => {
                    accepted.push((ti, pi, (group_id.clone(), t.name.to_string(), p.partition_index), c));
                    code::NONE
                }
                Err(e) => e,
            };
            partitions.push(
                TxnOffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(code),
            );
        }
        topics.push(TxnOffsetCommitResponseTopic::default().with_name(t.name).with_partitions(partitions));
    }
    if accepted.is_empty() {
        return TxnOffsetCommitResponse::default().with_topics(topics);
    }
    let records =
        accepted.iter().map(|(_, _, (g, topic, p), c)| group_store::offset_record(g, topic, *p, Some(c))).collect();
    let written = match group_store::ensure_topic(ctx.admin()).await {
        Ok(()) => {
            let tp = TopicPartition::new(group::OFFSETS_TOPIC, partition);
            group_store::append_batch(ctx, tp, &group_store::batch_of(records, Some((pid, epoch)))).await
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(()) => {
            let mut c = co.borrow_mut();
            let pending = c.txn_offsets.entry(pid).or_default();
            for (_, _, key, value) in accepted {
                pending.insert(key, value);
            }
        }
        Err(e) => {
            for (ti, pi, _, _) in &accepted {
                if let Some(p) = topics.get_mut(*ti).and_then(|t| t.partitions.get_mut(*pi)) {
                    p.error_code = e;
                }
            }
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// A topic's partitions with their committed offsets, if any.
type FetchedTopic = (TopicName, Vec<(i32, Option<Committed>)>);

/// Committed offsets of one group: `topics` None means all of them.
fn fetch_group(
    co: &SharedCoordinator,
    group_id: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<FetchedTopic> {
    let c = co.borrow();
    let offsets = c.group(group_id).map(|g| &g.offsets);
    match topics {
        Some(ts) => ts
            .into_iter()
            .map(|(name, parts)| {
                let list = parts
                    .into_iter()
                    .map(|p| (p, offsets.and_then(|o| o.get(&(name.to_string(), p)).cloned())))
                    .collect();
                (name, list)
            })
            .collect(),
        None => {
            let mut out: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
            for ((t, p), v) in offsets.into_iter().flatten() {
                out.entry(t.clone()).or_default().push((*p, Some(v.clone())));
            }
            out.into_iter().map(|(t, v)| (TopicName(s(&t)), v)).collect()
        }
    }
}

fn offset_fetch(co: &SharedCoordinator, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let entry = |c: Option<Committed>| match c {
        Some(c) => (c.offset, c.leader_epoch, s(&c.metadata)),
        None => (-1, -1, StrBytes::default()),
    };
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
                let topics = fetch_group(co, g.group_id.as_str(), topics)
                    .into_iter()
                    .map(|(name, parts)| {
                        let partitions = parts
                            .into_iter()
                            .map(|(p, c)| {
                                let (offset, epoch, meta) = entry(c);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(Some(meta))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default().with_name(name).with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_topics(topics)
            })
            .collect();
        let mut groups: Vec<OffsetFetchResponseGroup> = groups;
        if req.require_stable {
            let c = co.borrow();
            for g in &mut groups {
                for t in &mut g.topics {
                    for p in &mut t.partitions {
                        if c.has_pending_txn_offset(g.group_id.as_str(), t.name.as_str(), p.partition_index) {
                            p.error_code = code::UNSTABLE_OFFSET_COMMIT;
                            p.committed_offset = -1;
                        }
                    }
                }
            }
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.map(|ts| ts.into_iter().map(|t| (t.name, t.partition_indexes)).collect());
    let topics = fetch_group(co, req.group_id.as_str(), topics)
        .into_iter()
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, c)| {
                    let (offset, epoch, meta) = entry(c);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(meta))
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(name).with_partitions(partitions)
        })
        .collect();
    let mut topics: Vec<OffsetFetchResponseTopic> = topics;
    // KIP-447: a read_committed consumer asks for stable offsets only (v7).
    if req.require_stable {
        let c = co.borrow();
        for t in &mut topics {
            for p in &mut t.partitions {
                if c.has_pending_txn_offset(req.group_id.as_str(), t.name.as_str(), p.partition_index) {
                    p.error_code = code::UNSTABLE_OFFSET_COMMIT;
                    p.committed_offset = -1;
                }
            }
        }
    }
    OffsetFetchResponse::default().with_topics(topics)
}

async fn offset_delete(ctx: &ShardCtx, co: &SharedCoordinator, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = req.group_id.to_string();
    // Offsets of topics the group's members subscribe to stay; others go. A classic group's
    // subscriptions are read from its members' consumer-protocol metadata; when they cannot
    // be (another protocol type), an active group keeps all its offsets.
    let subscribed = |topic: &str| -> bool {
        let c = co.borrow();
        if let Some(cg) = c.consumer_groups.get(&group_id) {
            return cg.subscribes_to(topic);
        }
        match c.group(&group_id) {
            Some(g) if g.state != GroupState::Empty => g.subscribed_topics().is_none_or(|ts| ts.contains(topic)),
            _ => false,
        }
    };
    let known = {
        let c = co.borrow();
        c.group(&group_id).is_some() || c.consumer_groups.contains_key(&group_id)
    };
    if !known {
        return OffsetDeleteResponse::default().with_error_code(code::GROUP_ID_NOT_FOUND);
    }
    let refused: Vec<bool> = req.topics.iter().map(|t| subscribed(t.name.as_str())).collect();
    let keys: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&refused)
        .filter(|(_, r)| !**r)
        .flat_map(|(t, _)| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index)))
        .collect();
    let records = keys.iter().map(|(t, p)| group_store::offset_record(&group_id, t, *p, None)).collect();
    match group_store::append(ctx, group::coordinator_partition(&group_id), records).await {
        Ok(()) => {
            let mut c = co.borrow_mut();
            if let Some(g) = c.groups.get_mut(&group_id) {
                for k in &keys {
                    g.offsets.remove(k);
                }
            }
            c.drop_if_unused(&group_id);
        }
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e),
    }
    let topics = req
        .topics
        .into_iter()
        .zip(refused)
        .map(|(t, refused)| {
            let code = if refused { code::GROUP_SUBSCRIBED_TO_TOPIC } else { code::NONE };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

fn describe(co: &SharedCoordinator, version: i16, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let c = co.borrow();
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            if c.consumer_groups.contains_key(id.as_str()) {
                // As Kafka: a KIP-848 group is described by ConsumerGroupDescribe only.
                let msg = format!("Group {} is not a classic group.", id.as_str());
                let out = DescribedGroup::default()
                    .with_group_id(id)
                    .with_group_state(s("Dead"))
                    .with_error_code(code::GROUP_ID_NOT_FOUND);
                return if version >= 6 { out.with_error_message(Some(s(&msg))) } else { out };
            }
            let Some(g) = c.group(id.as_str()) else {
                let out = DescribedGroup::default().with_group_id(id).with_group_state(s("Dead"));
                return if version >= 6 { out.with_error_code(code::GROUP_ID_NOT_FOUND) } else { out };
            };
            let stable = g.state == GroupState::Stable;
            let protocol = g.protocol.clone().unwrap_or_default();
            let members = g
                .members
                .values()
                .map(|m| {
                    let mut out = DescribedGroupMember::default()
                        .with_member_id(s(&m.id))
                        .with_group_instance_id(m.instance_id.as_deref().map(s))
                        .with_client_id(s(&m.client_id))
                        .with_client_host(s(&m.client_host));
                    if stable {
                        let meta = m.protocols.iter().find(|(n, _)| *n == protocol).map(|(_, b)| b.clone());
                        out = out
                            .with_member_metadata(meta.unwrap_or_default())
                            .with_member_assignment(m.assignment.clone());
                    }
                    out
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(s(g.state.name()))
                .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or("")))
                .with_protocol_data(s(if stable { &protocol } else { "" }))
                .with_members(members)
                .with_authorized_operations(i32::MIN)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

async fn delete(ctx: &ShardCtx, co: &SharedCoordinator, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for id in req.groups_names {
        let active_consumer_group = co.borrow().consumer_groups.contains_key(id.as_str());
        let keys: Result<Vec<(String, i32)>, i16> = match co.borrow().group(id.as_str()) {
            _ if active_consumer_group => Err(code::NON_EMPTY_GROUP),
            None => Err(code::GROUP_ID_NOT_FOUND),
            Some(g) if g.state != GroupState::Empty => Err(code::NON_EMPTY_GROUP),
            Some(g) => Ok(g.offsets.keys().cloned().collect()),
        };
        let code = match keys {
            Err(e) => e,
            Ok(keys) => {
                let records = keys.iter().map(|(t, p)| group_store::offset_record(id.as_str(), t, *p, None)).collect();
                match group_store::append(ctx, group::coordinator_partition(id.as_str()), records).await {
                    Ok(()) => {
                        let mut c = co.borrow_mut();
                        // Still empty? A member may have joined while the tombstones were written.
                        if c.group(id.as_str()).is_some_and(|g| g.state == GroupState::Empty) {
                            c.groups.remove(id.as_str());
                            c.mark_dirty(id.as_str());
                            code::NONE
                        } else {
                            code::NON_EMPTY_GROUP
                        }
                    }
                    Err(e) => e,
                }
            }
        };
        results.push(DeletableGroupResult::default().with_group_id(id).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}

fn list(co: &SharedCoordinator, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let c = co.borrow();
    let states: Vec<String> =
        if version >= 4 { req.states_filter.iter().map(|f| f.to_ascii_lowercase()).collect() } else { Vec::new() };
    let types: Vec<String> =
        if version >= 5 { req.types_filter.iter().map(|f| f.to_ascii_lowercase()).collect() } else { Vec::new() };
    let groups = c
        .groups
        .values()
        .filter(|g| states.is_empty() || states.contains(&g.state.name().to_ascii_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(s(&g.id)))
                .with_protocol_type(s(g.protocol_type.as_deref().unwrap_or("consumer")))
                .with_group_state(s(g.state.name()))
                .with_group_type(s("classic"))
        })
        .collect::<Vec<_>>();
    let consumer = c
        .consumer_groups
        .iter()
        .filter(|(_, g)| states.is_empty() || states.contains(&g.state().to_ascii_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == "consumer"))
        .map(|(id, g)| {
            ListedGroup::default()
                .with_group_id(GroupId(s(id)))
                .with_protocol_type(s("consumer"))
                .with_group_state(s(g.state()))
                .with_group_type(s("consumer"))
        });
    let groups =
        groups.into_iter().filter(|g| !c.consumer_groups.contains_key(g.group_id.as_str())).chain(consumer).collect();
    ListGroupsResponse::default().with_groups(groups)
}
