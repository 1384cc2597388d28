"""Consumer groups and committed offsets (issue 4) with confluent-kafka (librdkafka) and
kafka-python: subscribe, commit, resume, rebalance on leave and on session expiry, static
membership, admin (list/describe/delete groups, lag), restart survival."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SESSION_MS = 6000


def create(b, topic, partitions):
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    for f in a.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(10)


def produce(b, topic, partitions, per_partition):
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for part in range(partitions):
        for i in range(per_partition):
            p.produce(topic, value=f"{part}-{i}".encode(), partition=part)
    assert p.flush(30) == 0


def consumer(b, group, **extra):
    conf = {
        "bootstrap.servers": b.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def poll_values(c, n, timeout=30):
    got = []
    deadline = time.time() + timeout
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append((m.partition(), m.offset(), m.value().decode()))
    return got


def wait_assignment(consumers, expected_sets, timeout=40):
    """Polls every consumer until their assignments equal `expected_sets` (in order)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in consumers:
            c.poll(0.1)
        got = [{tp.partition for tp in c.assignment()} for c in consumers]
        if got == expected_sets:
            return got
    raise AssertionError(f"assignments {[{tp.partition for tp in c.assignment()} for c in consumers]} != {expected_sets}")


def group_name():
    return f"g-{uuid.uuid4().hex[:10]}"


def test_subscribe_consume_commit_resume(broker, topic_name):
    create(broker, topic_name, 2)
    produce(broker, topic_name, 2, 5)
    g = group_name()
    c = consumer(broker, g)
    c.subscribe([topic_name])
    got = poll_values(c, 10)
    assert sorted(v for _, _, v in got) == sorted(f"{p}-{i}" for p in range(2) for i in range(5))
    # Commit explicit positions: partition 0 after offset 2 (sync, with metadata), partition 1
    # after offset 3 (async).
    c.commit(offsets=[TopicPartition(topic_name, 0, 3, metadata="m-0")], asynchronous=False)
    c.commit(offsets=[TopicPartition(topic_name, 1, 4)], asynchronous=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        committed = c.committed([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)], timeout=10)
        if [tp.offset for tp in committed] == [3, 4]:
            break
        c.poll(0.1)
    assert [tp.offset for tp in committed] == [3, 4]
    assert committed[0].metadata == "m-0"
    c.close()

    c = consumer(broker, g)
    c.subscribe([topic_name])
    got = poll_values(c, 3)
    assert sorted((p, o) for p, o, _ in got) == [(0, 3), (0, 4), (1, 4)]
    c.close()


def test_two_consumers_split_then_one_takes_all_on_leave(broker, topic_name):
    create(broker, topic_name, 4)
    g = group_name()
    a = consumer(broker, g, **{"partition.assignment.strategy": "range"})
    b = consumer(broker, g, **{"partition.assignment.strategy": "range"})
    a.subscribe([topic_name])
    wait_assignment([a], [{0, 1, 2, 3}])
    b.subscribe([topic_name])
    # Range assigns by member id order; the ids sort in join order here.
    wait_assignment([a, b], [{0, 1}, {2, 3}])
    b.close()
    wait_assignment([a], [{0, 1, 2, 3}])
    a.close()


def test_cooperative_sticky_split_and_leave(broker, topic_name):
    create(broker, topic_name, 4)
    g = group_name()
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    a = consumer(broker, g, **conf)
    b = consumer(broker, g, **conf)
    a.subscribe([topic_name])
    wait_assignment([a], [{0, 1, 2, 3}])
    b.subscribe([topic_name])
    deadline = time.time() + 40
    while time.time() < deadline:
        a.poll(0.1)
        b.poll(0.1)
        sa = {tp.partition for tp in a.assignment()}
        sb = {tp.partition for tp in b.assignment()}
        if len(sa) == 2 and len(sb) == 2:
            break
    assert len(sa) == 2 and len(sb) == 2 and sa | sb == {0, 1, 2, 3}
    b.close()
    wait_assignment([a], [{0, 1, 2, 3}])
    a.close()


def test_static_membership_rejoin_without_rebalance(broker, topic_name):
    create(broker, topic_name, 2)
    g = group_name()
    a = consumer(broker, g, **{"group.instance.id": "static-a"})
    a.subscribe([topic_name])
    wait_assignment([a], [{0, 1}])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    gen_before = describe(admin, g)
    # A static member's close does not send LeaveGroup: the group keeps it until its session
    # expires, and a new incarnation with the same instance id takes its place at once.
    a.close()
    a = consumer(broker, g, **{"group.instance.id": "static-a"})
    a.subscribe([topic_name])
    wait_assignment([a], [{0, 1}], timeout=SESSION_MS / 1000 - 1)
    after = describe(admin, g)
    assert after.state.name == "STABLE"
    assert [m.group_instance_id for m in after.members] == ["static-a"]
    assert gen_before.state.name == "STABLE"
    a.close()


def describe(admin, g):
    return admin.describe_consumer_groups([g])[g].result(10)


def test_admin_list_describe_delete_and_lag(broker, topic_name):
    create(broker, topic_name, 2)
    produce(broker, topic_name, 2, 4)
    g = group_name()
    c = consumer(broker, g)
    c.subscribe([topic_name])
    assert len(poll_values(c, 8)) == 8
    c.commit(offsets=[TopicPartition(topic_name, 0, 1), TopicPartition(topic_name, 1, 3)], asynchronous=False)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    d = describe(admin, g)
    assert d.state.name == "STABLE"
    assert len(d.members) == 1
    assert {tp.partition for tp in d.members[0].assignment.topic_partitions} == {0, 1}
    listed = admin.list_consumer_groups().result(10)
    assert g in {x.group_id for x in listed.valid}
    from confluent_kafka import ConsumerGroupState
    stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(10)
    assert g in {x.group_id for x in stable.valid}
    empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(10)
    assert g not in {x.group_id for x in empty.valid}
    # Lag: committed offsets from the group, end offsets from ListOffsets.
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import OffsetSpec
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])[g].result(10)
    committed = {tp.partition: tp.offset for tp in res.topic_partitions}
    assert committed == {0: 1, 1: 3}
    ends = admin.list_offsets({TopicPartition(topic_name, p): OffsetSpec.latest() for p in range(2)})
    lag = {tp.partition: f.result(10).offset - committed[tp.partition] for tp, f in ends.items()}
    assert lag == {0: 3, 1: 1}
    # A group with a member cannot be deleted; once empty it can.
    with pytest.raises(Exception) as e:
        admin.delete_consumer_groups([g])[g].result(10)
    assert "NON_EMPTY_GROUP" in str(e.value)
    c.close()
    assert describe(admin, g).state.name == "EMPTY"
    admin.delete_consumer_groups([g])[g].result(10)
    listed = admin.list_consumer_groups().result(10)
    assert g not in {x.group_id for x in listed.valid}


def test_simple_consumer_commit_and_fetch(broker, topic_name):
    create(broker, topic_name, 1)
    g = group_name()
    c = consumer(broker, g)
    c.assign([TopicPartition(topic_name, 0)])
    c.commit(offsets=[TopicPartition(topic_name, 0, 42, metadata="simple")], asynchronous=False)
    got = c.committed([TopicPartition(topic_name, 0)], timeout=10)
    assert (got[0].offset, got[0].metadata) == (42, "simple")
    c.close()


def test_offsets_and_groups_survive_restart_and_kill9(fresh_broker, topic_name):
    b = fresh_broker()
    create(b, topic_name, 2)
    produce(b, topic_name, 2, 5)
    g = group_name()
    c = consumer(b, g)
    c.subscribe([topic_name])
    assert len(poll_values(c, 10)) == 10
    c.commit(offsets=[TopicPartition(topic_name, 0, 2, metadata="kept"), TopicPartition(topic_name, 1, 5)],
             asynchronous=False)
    c.close()
    # Offsets deleted before the restart stay deleted.
    simple = consumer(b, "g-deleted-" + g)
    simple.commit(offsets=[TopicPartition(topic_name, 0, 1)], asynchronous=False)
    simple.close()
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    admin.delete_consumer_groups(["g-deleted-" + g])["g-deleted-" + g].result(10)

    for restart in (b.stop, b.kill9):
        restart()
        b.start()
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        listed = {x.group_id for x in admin.list_consumer_groups().result(10).valid}
        assert g in listed and "g-deleted-" + g not in listed
        # The internal topic is hidden from a listing of all topics.
        assert "__consumer_offsets" not in admin.list_topics(timeout=10).topics
        c = consumer(b, g)
        c.subscribe([topic_name])
        got = poll_values(c, 3)
        assert sorted((p, o) for p, o, _ in got) == [(0, 2), (0, 3), (0, 4)]
        committed = c.committed([TopicPartition(topic_name, 0)], timeout=10)
        assert (committed[0].offset, committed[0].metadata) == (2, "kept")
        c.close()


# kafka-python: an independent implementation of the group protocol.

def kp_consumer(b, group, topic, **extra):
    from kafka import KafkaConsumer
    conf = dict(bootstrap_servers=b.bootstrap, group_id=group, auto_offset_reset="earliest",
                enable_auto_commit=False, session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500,
                fetch_max_wait_ms=100, request_timeout_ms=SESSION_MS + 5000)
    conf.update(extra)
    c = KafkaConsumer(**conf)
    # kafka-python's leader assigns nothing for a topic missing from its metadata cache and,
    # when that assignment is empty, does not rejoin once the metadata arrives: load it first.
    deadline = time.time() + 10
    while not c.partitions_for_topic(topic) and time.time() < deadline:
        time.sleep(0.05)
    c.subscribe([topic])
    return c


def kp_wait_assignment(consumers, expected_sets, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in consumers:
            c.poll(timeout_ms=100)
        got = [{tp.partition for tp in c.assignment()} for c in consumers]
        if got == expected_sets:
            return
    raise AssertionError(f"{[{tp.partition for tp in c.assignment()} for c in consumers]} != {expected_sets}")


def test_kafka_python_consume_commit_resume(broker, topic_name):
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata
    create(broker, topic_name, 2)
    produce(broker, topic_name, 2, 4)
    g = group_name()
    c = kp_consumer(broker, g, topic_name)
    got = []
    deadline = time.time() + 30
    while len(got) < 8 and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=200).items():
            got.extend((tp.partition, m.offset) for m in msgs)
    assert sorted(got) == [(p, o) for p in range(2) for o in range(4)]
    c.commit({KTP(topic_name, 0): OffsetAndMetadata(1, "kp", -1), KTP(topic_name, 1): OffsetAndMetadata(3, "", -1)})
    assert c.committed(KTP(topic_name, 0)) == 1
    done = []
    c.commit_async({KTP(topic_name, 1): OffsetAndMetadata(2, "", -1)}, callback=lambda o, r: done.append(r))
    deadline = time.time() + 10
    while not done and time.time() < deadline:
        c.poll(timeout_ms=100)
    assert done and not isinstance(done[0], Exception), done
    c.close()
    c = kp_consumer(broker, g, topic_name)
    got = []
    deadline = time.time() + 30
    while len(got) < 5 and time.time() < deadline:
        for tp, msgs in c.poll(timeout_ms=200).items():
            got.extend((tp.partition, m.offset) for m in msgs)
    assert sorted(got) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    c.close()


KILLED_MEMBER = """
import sys, time
from kafka import KafkaConsumer
c = KafkaConsumer(bootstrap_servers=sys.argv[1], group_id=sys.argv[2], session_timeout_ms=int(sys.argv[4]),
                  heartbeat_interval_ms=500, enable_auto_commit=False, fetch_max_wait_ms=100)
deadline = time.time() + 10
while not c.partitions_for_topic(sys.argv[3]) and time.time() < deadline:
    time.sleep(0.05)
c.subscribe([sys.argv[3]])
while True:
    c.poll(timeout_ms=100)
    print(",".join(str(tp.partition) for tp in sorted(c.assignment())), flush=True)
"""


def test_kafka_python_split_then_killed_member_expires(broker, topic_name):
    import subprocess
    import sys
    create(broker, topic_name, 4)
    g = group_name()
    a = kp_consumer(broker, g, topic_name)
    kp_wait_assignment([a], [{0, 1, 2, 3}])
    b = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, broker.bootstrap, g, topic_name, str(SESSION_MS)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.time() + 40
        line = ""
        while time.time() < deadline:
            a.poll(timeout_ms=100)
            line = b.stdout.readline().strip()
            if len(line.split(",")) == 2 and len(a.assignment()) == 2:
                break
        sa = {tp.partition for tp in a.assignment()}
        sb = {int(x) for x in line.split(",") if x}
        assert len(sa) == 2 and len(sb) == 2 and sa | sb == {0, 1, 2, 3}, (sa, sb)
    finally:
        b.kill()
        b.wait()
    # b died without LeaveGroup: a gets everything only once b's session expires.
    killed = time.time()
    kp_wait_assignment([a], [{0, 1, 2, 3}], timeout=30)
    assert time.time() - killed >= SESSION_MS / 1000 - 2
    a.close()


# KIP-848: librdkafka's group.protocol=consumer, assignment computed by the broker.

def kip848_consumer(b, group, **extra):
    conf = {
        "bootstrap.servers": b.bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 100,
    }
    conf.update(extra)
    return Consumer(conf)


def test_kip848_join_split_leave_commit_resume(broker, topic_name):
    create(broker, topic_name, 4)
    produce(broker, topic_name, 4, 2)
    g = group_name()
    a = kip848_consumer(broker, g)
    a.subscribe([topic_name])
    got = poll_values(a, 8)
    assert sorted((p, o) for p, o, _ in got) == [(p, o) for p in range(4) for o in range(2)]
    wait_assignment([a], [{0, 1, 2, 3}])
    b = kip848_consumer(broker, g)
    b.subscribe([topic_name])
    deadline = time.time() + 40
    while time.time() < deadline:
        a.poll(0.1)
        b.poll(0.1)
        sa = {tp.partition for tp in a.assignment()}
        sb = {tp.partition for tp in b.assignment()}
        if len(sa) == 2 and len(sb) == 2:
            break
    assert len(sa) == 2 and len(sb) == 2 and sa | sb == {0, 1, 2, 3}, (sa, sb)
    a.commit(offsets=[TopicPartition(topic_name, p, 1) for p in sorted(sa)], asynchronous=False)
    # The broker ran the group with the KIP-848 protocol (no silent fallback to classic).
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = admin.list_consumer_groups().result(10)
    assert [x.type.name for x in listed.valid if x.group_id == g] == ["CONSUMER"]
    b.close()
    wait_assignment([a], [{0, 1, 2, 3}])
    a.close()
    c = kip848_consumer(broker, g)
    c.subscribe([topic_name])
    got = poll_values(c, 2 + 2 * 2)
    expect = sorted([(p, 1) for p in sa] + [(p, o) for p in sb for o in range(2)])
    assert sorted((p, o) for p, o, _ in got) == expect
    c.close()


def kip848_assignments(consumers, timeout=30, want=None):
    """Polls until every consumer's assignment is settled to a split of `want` partitions."""
    deadline = time.time() + timeout
    sets = []
    while time.time() < deadline:
        for c in consumers:
            c.poll(0.1)
        sets = [sorted(tp.partition for tp in c.assignment()) for c in consumers]
        if sorted(p for s in sets for p in s) == list(range(want)) and all(sets):
            return sets
    raise AssertionError(f"assignments never settled: {sets}")


def test_kip848_range_assignor_and_consumer_group_describe(broker, topic_name):
    create(broker, topic_name, 4)
    g = group_name()
    cs = [kip848_consumer(broker, g, **{"group.remote.assignor": "range", "client.id": f"c{i}"}) for i in range(2)]
    for c in cs:
        c.subscribe([topic_name])
    sets = kip848_assignments(cs, want=4)
    # range: contiguous halves (which member gets which half follows the member ids).
    assert sorted(sets) == [[0, 1], [2, 3]], sets
    # Let the members confirm what they own, then describe (ConsumerGroupDescribe).
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    deadline = time.time() + 20
    while True:
        for c in cs:
            c.poll(0.1)
        d = admin.describe_consumer_groups([g])[g].result(10)
        if d.state.name == "STABLE" or time.time() > deadline:
            break
    assert (d.type.name, d.state.name, d.partition_assignor) == ("CONSUMER", "STABLE", "range")
    by_client = {m.client_id: m for m in d.members}
    assert set(by_client) == {"c0", "c1"}
    for i, c in enumerate(cs):
        m = by_client[f"c{i}"]
        mine = sorted(tp.partition for tp in c.assignment())
        assert m.host == "/127.0.0.1"
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == mine
        assert {tp.topic for tp in m.assignment.topic_partitions} == {topic_name}
        assert sorted(tp.partition for tp in m.target_assignment.topic_partitions) == mine
    for c in cs:
        c.close()


KIP848_MEMBER = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "group.protocol": "consumer",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
    print(",".join(str(tp.partition) for tp in c.assignment()), flush=True)
"""


def test_kip848_killed_member_expires_without_other_heartbeats(fresh_broker, topic_name):
    import subprocess
    import sys
    b = fresh_broker(["--override", "group.consumer.session.timeout.ms=3000"])
    create(b, topic_name, 4)
    g = group_name()
    a = kip848_consumer(b, g)
    a.subscribe([topic_name])
    kip848_assignments([a], want=4)
    member = subprocess.Popen([sys.executable, "-c", KIP848_MEMBER, b.bootstrap, g, topic_name],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            a.poll(0.1)
            line = member.stdout.readline().strip()
            if line and len(line.split(",")) == 2 and len(a.assignment()) == 2:
                break
        assert len(a.assignment()) == 2, a.assignment()
    finally:
        member.kill()
        member.wait()
    # The killed member never leaves: its session (3 s here) runs out and a gets everything.
    killed = time.time()
    assert kip848_assignments([a], want=4, timeout=20) == [[0, 1, 2, 3]]
    assert time.time() - killed >= 2.5
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    d = admin.describe_consumer_groups([g])[g].result(10)
    assert len(d.members) == 1
    a.close()


def test_membership_survives_a_broker_restart_without_a_rebalance(fresh_broker, topic_name):
    b = fresh_broker()
    create(b, topic_name, 2)
    produce(b, topic_name, 2, 2)
    g_classic, g_kip848 = group_name(), group_name()
    assigned = {"classic": 0, "kip848": 0}

    def counter(kind):
        def on_assign(c, parts):
            assigned[kind] += 1
        return on_assign

    classic = consumer(b, g_classic)
    classic.subscribe([topic_name], on_assign=counter("classic"))
    modern = kip848_consumer(b, g_kip848)
    modern.subscribe([topic_name], on_assign=counter("kip848"))
    assert len(poll_values(classic, 4)) == 4
    assert len(poll_values(modern, 4)) == 4
    ids = (classic.memberid(), modern.memberid())
    assert assigned == {"classic": 1, "kip848": 1}
    time.sleep(1.5)  # the membership writer runs behind the group's last change
    b.stop()
    b.start()
    produce(b, topic_name, 2, 3)
    # Both carry on as the same members, with the same partitions, and read the new records.
    assert sorted((p, o) for p, o, _ in poll_values(classic, 6)) == [(p, o) for p in range(2) for o in range(2, 5)]
    assert sorted((p, o) for p, o, _ in poll_values(modern, 6)) == [(p, o) for p in range(2) for o in range(2, 5)]
    assert (classic.memberid(), modern.memberid()) == ids
    assert assigned == {"classic": 1, "kip848": 1}
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    d = admin.describe_consumer_groups([g_classic])[g_classic].result(10)
    assert (d.state.name, [m.member_id for m in d.members]) == ("STABLE", [ids[0]])
    classic.close()
    modern.close()


def test_offset_delete_refuses_only_subscribed_topics(broker, topic_name):
    from kafka import TopicPartition as KTP
    from kafka.admin import KafkaAdminClient
    from kafka.errors import GroupSubscribedToTopicError, NoError
    other = topic_name + "-other"
    create(broker, topic_name, 1)
    create(broker, other, 1)
    g = group_name()
    c = consumer(broker, g)
    c.subscribe([topic_name])
    wait_assignment([c], [{0}])
    c.commit(offsets=[TopicPartition(topic_name, 0, 3), TopicPartition(other, 0, 7)], asynchronous=False)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = admin.delete_group_offsets(g, [KTP(topic_name, 0), KTP(other, 0)])
        assert result == {KTP(topic_name, 0): GroupSubscribedToTopicError, KTP(other, 0): NoError}
        left = admin.list_group_offsets(g)[g]
        assert {tp: o.offset for tp, o in left.items()} == {KTP(topic_name, 0): 3}
    finally:
        admin.close()
        c.close()


def test_kip848_regex_subscription(broker, topic_name):
    create(broker, topic_name + "-a", 1)
    create(broker, topic_name + "-b", 2)
    create(broker, "x" + topic_name + "-c", 1)
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for t in (topic_name + "-a", topic_name + "-b", "x" + topic_name + "-c"):
        p.produce(t, value=t.encode(), partition=0)
    assert p.flush(30) == 0
    c = kip848_consumer(broker, group_name())
    # librdkafka sends a subscription starting with ^ to the coordinator as a regex (KIP-848).
    c.subscribe(["^" + topic_name.replace("-", "\\-") + "-.*"])
    got = poll_values(c, 2, timeout=30)
    assert sorted(v for _, _, v in got) == [topic_name + "-a", topic_name + "-b"]
    deadline = time.time() + 20
    while time.time() < deadline and len(c.assignment()) < 3:
        c.poll(0.1)
    assert sorted((tp.topic, tp.partition) for tp in c.assignment()) == [
        (topic_name + "-a", 0), (topic_name + "-b", 0), (topic_name + "-b", 1)]
    c.close()


def test_kip848_active_group_refuses_outside_commits_and_classic_describe(broker, topic_name):
    from confluent_kafka import KafkaException
    from kafka.admin import KafkaAdminClient
    create(broker, topic_name, 1)
    g = group_name()
    member = kip848_consumer(broker, g)
    member.subscribe([topic_name])
    kip848_assignments([member], want=1)
    # A consumer outside the group (no member id, generation -1) may not commit for it.
    outsider = consumer(broker, g)
    with pytest.raises(KafkaException) as e:
        outsider.commit(offsets=[TopicPartition(topic_name, 0, 5)], asynchronous=False)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_MEMBER_ID
    outsider.close()
    # DescribeGroups (the classic API, used by kafka-python) does not describe it, as Kafka.
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        described = admin.describe_groups([g])
        # kafka-python drops the error code from its dict: the group shows as Dead, no members.
        assert (described[g]["group_state"], described[g]["members"]) == ("Dead", []), described
    finally:
        admin.close()
    member.close()
    # Once the group is empty, a simple commit is accepted.
    outsider = consumer(broker, g)
    outsider.commit(offsets=[TopicPartition(topic_name, 0, 5)], asynchronous=False)
    assert outsider.committed([TopicPartition(topic_name, 0)], timeout=10)[0].offset == 5
    outsider.close()
