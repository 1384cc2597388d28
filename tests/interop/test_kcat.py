"""kcat 1.7.1 (Debian; librdkafka 2.0.2): an old client that negotiates ApiVersions v3 and
must decode the response (tagged fields), then produces and consumes."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")


def kcat(b, *args, stdin=None, timeout=30):
    r = subprocess.run(["kcat", "-b", b.bootstrap, *args], input=stdin, capture_output=True, timeout=timeout)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()


def test_kcat_metadata_produce_consume(broker, topic_name):
    lines = "".join(f"key{i}:value{i}\n" for i in range(200))
    kcat(broker, "-P", "-t", topic_name, "-K:", "-z", "snappy", stdin=lines.encode())
    md = kcat(broker, "-L", "-t", topic_name)
    assert f'topic "{topic_name}" with 3 partitions' in md
    assert "broker 0 at 127.0.0.1" in md
    out = kcat(broker, "-C", "-t", topic_name, "-o", "beginning", "-e", "-f", "%p %o %k %s\\n")
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert len(rows) == 200
    assert sorted(r[3] for r in rows) == sorted(f"value{i}" for i in range(200))
    for r in rows:
        assert r[2] == "key" + r[3][len("value"):]
    # Offsets are dense per partition, in order.
    per_part = {}
    for p, o, _, _ in rows:
        per_part.setdefault(p, []).append(int(o))
    for offsets in per_part.values():
        assert offsets == list(range(len(offsets)))


def test_kcat_headers_and_single_partition(broker, topic_name):
    kcat(broker, "-P", "-t", topic_name, "-p", "1", "-H", "h1=v1", "-k", "k", stdin=b"only\n")
    out = kcat(broker, "-C", "-t", topic_name, "-p", "1", "-o", "beginning", "-e", "-f", "%k %s %h\\n")
    assert out.strip() == "k only h1=v1"
