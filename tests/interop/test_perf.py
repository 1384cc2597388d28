"""perf/run.py: scenario parsing and validation (no broker), the report's charts, and a tiny
scaled run of the shipped backlog-drain scenario against brokers the test starts."""

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import BIN, ROOT, Broker

RUN_PY = os.path.join(ROOT, "perf", "run.py")
SCENARIOS = os.path.join(ROOT, "perf", "scenarios")

_spec = importlib.util.spec_from_file_location("perf_run", RUN_PY)
perf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(perf)

SHIPPED = sorted(f for f in os.listdir(SCENARIOS) if f.endswith(".toml"))


def test_every_shipped_scenario_is_valid():
    names = set()
    for f in SHIPPED:
        sc = perf.load_scenario(os.path.join(SCENARIOS, f))
        assert sc["name"] + ".toml" == f
        names.add(sc["name"])
        assert sc["description"].strip()
    assert names == {"few-producers", "many-producers", "keyed", "unkeyed", "long-run", "retention", "backlog-drain",
                     "e2e-latency"}


def test_shipped_scenarios_say_what_the_issue_asks():
    def phases(name):
        sc = perf.load_scenario(os.path.join(SCENARIOS, name + ".toml"))
        return sc, [p for s in sc["steps"] for p in s["phases"]]

    assert phases("few-producers")[1][0]["bench"]["producers"] == 4
    assert phases("many-producers")[1][0]["bench"]["producers"] == 50
    assert phases("keyed")[1][0]["bench"]["keys"] == "random"
    assert phases("unkeyed")[1][0]["bench"]["keys"] == "none"
    sc, _ = phases("retention")
    assert int(sc["topic"]["configs"]["segment.bytes"]) < int(sc["topic"]["configs"]["retention.bytes"])
    sc, ph = phases("backlog-drain")
    assert [[p["name"] for p in s["phases"]] for s in sc["steps"]] == [["fill"], ["write", "drain"]]
    assert ph[2]["drain"] == ["fill", "write"]
    # End-to-end latency at a fixed rate, acks=1 and acks=all (the high watermark's price).
    _, ph = phases("e2e-latency")
    assert [(p["kind"], p["bench"]["acks"], p["bench"]["rate"]) for p in ph] == [("e2e", "1", 20000),
                                                                                 ("e2e", "all", 20000)]


def test_scale_applies_to_durations_and_counts_and_drain_sums_them():
    sc = perf.parse_scenario("""
name = "s"
[topic]
partitions = 3
configs = { "retention.bytes" = 1000, "cleanup.policy" = "delete" }
[[step]]
[[step.phase]]
name = "a"
kind = "produce"
count = 1000
rate = 500
[[step]]
[[step.phase]]
name = "b"
kind = "e2e"
count = 333
warmup = 10
acks = 1
[[step.phase]]
name = "c"
kind = "consume"
drain = ["a", "b"]
[[step]]
[[step.phase]]
name = "d"
kind = "produce"
duration = 60
""")
    steps = [[p["name"] for p in s["phases"]] for s in sc["steps"]]
    assert steps == [["a"], ["b", "c"], ["d"]]
    ph = {p["name"]: p for s in sc["steps"] for p in s["phases"]}
    assert perf.scaled(ph["a"], 0.1, sc) == {"count": 100, "rate": 500}
    assert perf.scaled(ph["b"], 0.1, sc) == {"count": 33, "warmup": 1, "acks": "1"}
    assert perf.scaled(ph["c"], 0.1, sc) == {"count": 133}
    assert perf.scaled(ph["d"], 0.1, sc) == {"duration": 6}
    assert perf.scaled(ph["d"], 0.001, sc) == {"duration": 1}
    cmd = perf.bench_command("odradek", ph["c"], perf.scaled(ph["c"], 2, sc), "h:1", "t", sc, "r.json")
    assert cmd == ["odradek", "bench", "consume", "--bootstrap-server", "h:1", "--topic", "t", "--create-topic",
                   "--partitions", "3", "--topic-config", "retention.bytes=1000", "--topic-config",
                   "cleanup.policy=delete", "--count", "2666", "--json", "r.json", "--quiet"]


def test_plain_phases_run_one_after_the_other():
    sc = perf.parse_scenario('name = "p"\n[[phase]]\nname = "x"\nkind = "produce"\n'
                             '[[phase]]\nname = "y"\nkind = "consume"\nfrom = "beginning"\n')
    assert [[p["name"] for p in s["phases"]] for s in sc["steps"]] == [["x"], ["y"]]
    assert sc["topic"] == {"partitions": None, "configs": {}}


BAD = [
    ('name = "s"\nbogus = 1\n[[phase]]\nname = "a"\nkind = "produce"\n', "unknown key 'bogus'"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nprodcers = 4\n', "phase[0]: unknown key 'prodcers'"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nproducers = "4"\n',
     "phase[0].producers: expected integer, got string '4'"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nrate = true\n',
     "phase[0].rate: expected number, got boolean True"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nproducers = 0\n', "phase[0].producers: must be > 0"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nacks = "2"\n',
     "phase[0].acks: expected one of 0, 1, all, got '2'"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "load"\n', "phase[0].kind: expected one of produce, consume, e2e"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nkeys = "hashed"\n', "phase[0].keys: expected one of"),
    ('name = "s"\n[[phase]]\nkind = "produce"\n', "phase[0]: missing key 'name'"),
    ('[[phase]]\nname = "a"\nkind = "produce"\n', "missing key 'name'"),
    ('name = "a b"\n[[phase]]\nname = "a"\nkind = "produce"\n', "name 'a b' must be"),
    ('name = "s"\n', "give either [[phase]]"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\n[[step]]\n[[step.phase]]\nname = "b"\nkind = "produce"\n',
     "not both"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\n[[phase]]\nname = "a"\nkind = "produce"\n',
     "phase[1].name: phase name 'a' used twice"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\ncount = 1\nduration = 1\n', "count or duration, not both"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "consume"\nproducers = 2\n',
     "producers cannot be used with kind = 'consume'"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nfrom = "end"\n',
     "from cannot be used with kind = 'produce'"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "consume"\ndrain = ["z"]\n', "'z' is not an earlier phase"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nduration = 5\n[[phase]]\nname = "b"\nkind = "consume"\n'
     'drain = ["a"]\n', "'a' must be a produce or e2e phase with a count"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\ncount = 5\n[[phase]]\nname = "b"\nkind = "consume"\n'
     'drain = ["a"]\ncount = 5\n', "drain sets the count"),
    ('name = "s"\n[topic]\npartitions = 0\n[[phase]]\nname = "a"\nkind = "produce"\n',
     "topic.partitions: must be >= 1"),
    ('name = "s"\n[topic]\nconfigs = { "x" = 1.5 }\n[[phase]]\nname = "a"\nkind = "produce"\n',
     "topic.configs.x: expected string or integer, got number"),
    ('name = "s"\n[topic]\nreplicas = 3\n[[phase]]\nname = "a"\nkind = "produce"\n', "topic: unknown key 'replicas'"),
    ('name = "s"\n[[step]]\nname = "x"\n', "step[0]: expected a non-empty array of phases"),
    ('name = "s"\n[[step]]\n[[step.phase]]\nname = "a"\nkind = "produce"\nlinger_ms = 1.5\n',
     "step[0].phase[0].linger_ms: expected integer, got number 1.5"),
    ('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\ntimeout = -1\n', "phase[0].timeout: must be > 0"),
    ('name = "s"\nphase = 3\n', "phase: expected a non-empty array of tables"),
    ('name = "s"\n[[phase]\n', "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m for _, m in BAD])
def test_invalid_scenarios_are_rejected_with_a_clear_error(text, message):
    with pytest.raises(perf.ScenarioError) as e:
        perf.parse_scenario(text, "x.toml")
    assert str(e.value).startswith("x.toml: ")
    assert message in str(e.value)


def test_the_runner_exits_2_with_the_error_and_runs_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\nproducers = "many"\n')
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, RUN_PY, str(bad), "--target", "a=127.0.0.1:1", "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {bad}: phase[0].producers: expected integer, got string 'many'"
    assert not out.exists()

    r = subprocess.run([sys.executable, RUN_PY, os.path.join(SCENARIOS, "keyed.toml"), "--target", "nocolon"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "--target wants NAME=HOST:PORT, got 'nocolon'" in r.stderr


def test_dry_run_prints_the_scaled_bench_commands():
    r = subprocess.run([sys.executable, RUN_PY, os.path.join(SCENARIOS, "backlog-drain.toml"), "--target",
                        "a=127.0.0.1:1", "--scale", "0.01", "--odradek-bin", "ob", "--dry-run"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("backlog-drain / backlog / fill: ob bench produce ")
    assert "--count 20000 " in lines[0]
    assert "--rate 20000 --count 10000 " in lines[1]
    assert lines[2].startswith("backlog-drain / drain-while-writing / drain: ob bench consume ")
    assert "--from beginning --count 30000 " in lines[2]


def _svg(text):
    root = ET.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def test_charts_are_well_formed_svg_with_one_line_per_series():
    sc = perf.parse_scenario('name = "s"\n[[phase]]\nname = "p"\nkind = "e2e"\n')
    runs = []
    for rnd in (1, 2):
        for target in ("a<b", "c&d"):
            runs.append({"round": rnd, "scenario": "s", "target": target, "phases": [{
                "phase": "p", "kind": "e2e", "offset_s": 0.5, "error": None,
                "result": {"produced": {"records": 10, "mb_per_s": 1.0, "records_per_s": 5.0, "errors": 0},
                           "consumed": {"records": 10},
                           "latency": {"produce": {"p50": 100, "p90": 200, "p99": 900, "p999": 5000,
                                                   "p9999": 7000, "max": 80000},
                                       "e2e": {"p50": 300, "p90": 400, "p99": 1000, "p999": 6000,
                                               "p9999": 9000, "max": 90000}},
                           "timeline": [{"t_s": t, "produced_records_per_s": 1000.0 * t,
                                         "consumed_records_per_s": 900.0 * t} for t in (1, 2, 3)]}}]})
    root = _svg(perf.throughput_chart(sc, runs))
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 8  # 2 rounds x 2 targets x (produced, consumed)
    legend = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "a<b p produced" in legend and "c&d p consumed" in legend
    meta = {"targets": [{"name": "a<b"}, {"name": "c&d"}]}
    rows = perf.summarize(runs, [])
    root = _svg(perf.latency_chart(sc, rows, meta, perf.latency_source(runs)))
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 4
    # no data at all: still a valid chart, saying so
    root = _svg(perf.throughput_chart(sc, []))
    assert "no data" in [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_tiny_backlog_drain_run_against_two_brokers(tmp_path):
    """The shipped backlog-drain scenario scaled down to 1000 + 500 records, against a broker the
    test starts (--target) and one the runner starts (--start-odradek), two rounds."""
    broker = Broker().start()
    out = tmp_path / "report"
    try:
        r = subprocess.run([sys.executable, RUN_PY, os.path.join(SCENARIOS, "backlog-drain.toml"),
                            os.path.join(SCENARIOS, "keyed.toml"), "--target", f"given={broker.bootstrap}",
                            "--start-odradek", "started:--num-partitions 2", "--odradek-bin", BIN,
                            "--scale", "0.0005", "--rounds", "2", "--out", str(out), "--fio-size", "16M",
                            "--iperf-seconds", "1", "--work-dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=600)
        assert broker.alive()
    finally:
        broker.stop()
        broker.cleanup()
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    assert [t["name"] for t in doc["meta"]["targets"]] == ["given", "started"]
    assert doc["fio_bytes_per_s"] > 1e6 and doc["iperf3_bytes_per_s"] > 1e6
    runs = doc["runs"]
    # interleaved: each scenario against both targets, the order alternating between rounds
    assert [(x["round"], x["scenario"], x["target"]) for x in runs] == [
        (1, "backlog-drain", "given"), (1, "backlog-drain", "started"), (1, "keyed", "given"), (1, "keyed", "started"),
        (2, "backlog-drain", "started"), (2, "backlog-drain", "given"), (2, "keyed", "started"), (2, "keyed", "given")]
    assert len({x["topic"] for x in runs}) == 8
    for run in runs:
        ph = {p["phase"]: p for p in run["phases"]}
        assert all(p["error"] is None and p["exit_code"] == 0 for p in ph.values()), ph
        if run["scenario"] == "backlog-drain":
            assert ph["fill"]["result"]["produced"]["records"] == 1000
            assert ph["fill"]["result"]["produced"]["errors"] == 0
            assert ph["write"]["result"]["produced"]["records"] == 500
            assert ph["drain"]["result"]["consumed"]["records"] == 1500
            assert ph["drain"]["result"]["consumed"]["bytes"] >= 1500 * 1024
        else:
            res = ph["e2e"]["result"]
            assert res["produced"]["records"] > 0 and res["consumed"]["records"] > 0
            assert 0 < res["latency"]["e2e"]["p50"] <= res["latency"]["e2e"]["max"]
        assert run["broker_alive"] if run["target"] == "started" else "broker_alive" not in run
    rows = {(x["scenario"], x["phase"], x["target"]): x for x in doc["summary"]}
    assert len(rows) == 8
    fill = rows[("backlog-drain", "fill", "started")]
    assert fill["produced"] == 1000 and fill["mb_per_s"] > 0 and 0 < fill["of_fio"] < 10
    assert 0 < fill["produce_p50"] <= fill["produce_p99"] <= fill["produce_max"]
    report = (out / "report.md").read_text()
    assert report.startswith("# Perf report: report\n")
    assert "## backlog-drain" in report and "## keyed" in report
    for target in ("given", "started"):
        for rnd in (1, 2):
            assert (f"- round {rnd}, {target}: `drain` consumed 1500 of 1500 records produced by fill + write: ok"
                    in report)
        assert f"| drain | {target} | consume | – | 1,500 |" in report
    assert "FAILED" not in report and "MISMATCH" not in report
    for name in ("backlog-drain", "keyed"):
        for chart in ("throughput", "latency"):
            _svg((out / f"{name}.{chart}.svg").read_text())
    lat = _svg((out / "keyed.latency.svg").read_text())
    assert len(lat.findall("{http://www.w3.org/2000/svg}polyline")) == 4
    assert (out / "raw" / "r1-backlog-drain-started-drain.json").exists()
    assert not list(tmp_path.glob("odradek-perf-started-*")), "the started broker's data dir was left behind"


def _result(produced, consumed, mb, p50, errors=0):
    return {"produced": produced and {"records": produced, "bytes": produced * 100, "errors": errors,
                                      "records_per_s": produced / 2, "mb_per_s": mb},
            "consumed": consumed and {"records": consumed, "bytes": consumed * 100, "records_per_s": consumed / 2,
                                      "mb_per_s": mb},
            "latency": {"produce": produced and {"p50": p50, "p90": 2 * p50, "p99": 3 * p50, "p999": 4 * p50,
                                                 "p9999": 5 * p50, "max": 6 * p50},
                        "e2e": None},
            "timeline": []}


def test_report_tables_medians_fractions_checks_and_failures(tmp_path):
    sc = perf.parse_scenario('name = "bd"\ndescription = "drains"\n[[step]]\n[[step.phase]]\nname = "fill"\n'
                             'kind = "produce"\ncount = 10\n[[step]]\n[[step.phase]]\nname = "drain"\n'
                             'kind = "consume"\ndrain = ["fill"]\n')
    runs = []
    for rnd, (mb, p50, consumed) in enumerate([(100.0, 1000, 10), (300.0, 3000, 10), (200.0, 2000, 9)], 1):
        runs.append({"round": rnd, "scenario": "bd", "target": "x", "broker_alive": rnd != 3,
                     "disk_bytes_after": 5e6, "phases": [
                         {"phase": "fill", "kind": "produce", "offset_s": 0, "error": None,
                          "result": _result(10, None, mb, p50, errors=rnd)},
                         {"phase": "drain", "kind": "consume", "offset_s": 1,
                          "error": "timed out after 900 s" if rnd == 3 else None,
                          "result": _result(None, consumed, mb / 2, p50)}]})
    refs = [{"fio": {"bytes_per_s": 1.0e9}, "iperf3": {"bytes_per_s": 2.0e9}},
            {"fio": {"bytes_per_s": 3.0e9}, "iperf3": {"error": "iperf3 failed"}}]
    meta = {"command": "perf/run.py bd.toml", "started_at": "s", "finished_at": "f", "scale": 1, "rounds": 3,
            "scenarios": ["bd"], "targets": [{"name": "x", "bootstrap": "h:1", "how": "given"}], "machine": {"cpus": 2}}
    perf.write_report(str(tmp_path), meta, [sc], runs, refs)
    md = (tmp_path / "report.md").read_text()
    # medians over the 3 rounds; fio = mean(1, 3) GB/s = 2 GB/s, iperf3 = 2 GB/s (the failed one left out)
    assert ("| fill | x | produce | 10 | – | 5.0 | 200 (100–300) | 10.0% | 10.0% | 2.00 | 6.00 | 8.00 | 18.0 | "
            "– | – | – | – | 6 | 5 MB |") in md
    assert "| drain | x | consume | – | 10 | 5.0 | 100 (50.0–150) | – | 5.0% |" in md
    assert "- round 1, x: `drain` consumed 10 of 10 records produced by fill: ok" in md
    assert "- round 3, x: `drain` consumed 9 of 10 records produced by fill: MISMATCH" in md
    assert "- round 3, x: the broker DIED during the scenario" in md
    assert "- round 3, x: `drain` FAILED: timed out after 900 s" in md
    assert "- fio O_DIRECT sequential write, 1 MiB x4, io_uring: 1,000 MB/s, 3,000 MB/s" in md
    assert "- iperf3 one TCP stream over loopback: 2,000 MB/s, iperf3 failed" in md
    assert "Reproduce: `perf/run.py bd.toml`" in md
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["fio_bytes_per_s"] == 2.0e9 and doc["iperf3_bytes_per_s"] == 2.0e9
    assert len(doc["runs"]) == 3 and doc["scenarios"][0]["name"] == "bd"
    _svg((tmp_path / "bd.throughput.svg").read_text())
    _svg((tmp_path / "bd.latency.svg").read_text())


def test_ratios_compare_every_target_with_the_first():
    sc = perf.parse_scenario('name = "s"\n[[phase]]\nname = "a"\nkind = "produce"\n[[phase]]\nname = "b"\n'
                             'kind = "consume"\n')
    rows = [{"scenario": "s", "phase": "a", "target": "t1", "mb_per_s": 200.0},
            {"scenario": "s", "phase": "a", "target": "t2", "mb_per_s": 150.0},
            {"scenario": "s", "phase": "a", "target": "t3", "mb_per_s": 500.0},
            {"scenario": "s", "phase": "b", "target": "t1", "mb_per_s": 100.0},
            {"scenario": "s", "phase": "b", "target": "t2", "mb_per_s": None},
            {"scenario": "s", "phase": "b", "target": "t3", "mb_per_s": 0.0},
            {"scenario": "other", "phase": "a", "target": "t2", "mb_per_s": 1.0}]
    meta = {"targets": [{"name": "t1"}, {"name": "t2"}, {"name": "t3"}]}
    assert perf.ratios(sc, rows, meta) == ["- MB/s of t2 relative to t1: a 0.75x",
                                           "- MB/s of t3 relative to t1: a 2.50x, b 0.00x"]
