#!/usr/bin/env python3
"""Runs perf scenarios (perf/scenarios/*.toml) against two or more Kafka bootstrap addresses in
one run, interleaved, with `odradek bench` as the load generator, and writes a report: report.md
(a table per scenario), results.json (everything measured, raw bench results included) and SVG
plots (throughput over time, latency percentiles). The machine's reference limits (fio O_DIRECT
sequential write, iperf3 loopback) are measured in the same run and every throughput figure is
also given as a fraction of them. Python 3.11 standard library only. See perf/README.md.
"""

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timezone
from xml.sax.saxutils import escape

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# ---------------------------------------------------------------------------------------------
# Scenario files
# ---------------------------------------------------------------------------------------------

KINDS = ("produce", "consume", "e2e")
INT, NUM, STR, LIST_STR = "integer", "number", "string", "list of strings"

# Phase keys that map to `odradek bench` flags: key -> (type, flag, allowed values or None).
BENCH_KEYS = {
    "producers": (INT, "--producers", None),
    "consumers": (INT, "--consumers", None),
    "threads": (INT, "--threads", None),
    "record_size": (INT, "--record-size", None),
    "keys": (STR, "--keys", ("none", "random", "sequential")),
    "key_space": (INT, "--key-space", None),
    "acks": (STR, "--acks", ("0", "1", "all")),
    "compression": (STR, "--compression", ("none", "gzip", "snappy", "lz4", "zstd")),
    "batch_size": (INT, "--batch-size", None),
    "linger_ms": (INT, "--linger-ms", None),
    "max_in_flight": (INT, "--max-in-flight", None),
    "rate": (NUM, "--rate", None),
    "duration": (NUM, "--duration", None),
    "count": (INT, "--count", None),
    "warmup": (NUM, "--warmup", None),
    "from": (STR, "--from", ("beginning", "end")),
}
# Phase keys the runner itself interprets.
RUNNER_KEYS = {"name": STR, "kind": STR, "drain": LIST_STR, "timeout": NUM}
PRODUCE_ONLY = {"producers", "record_size", "keys", "key_space", "acks", "compression", "batch_size", "linger_ms",
                "max_in_flight", "rate"}
CONSUME_ONLY = {"consumers", "from", "drain"}


class ScenarioError(Exception):
    pass



# Seconds to let the disk settle after deleting a scenario run's topic (see run_scenario).
SETTLE_AFTER_DELETE_S = 2

def _type_ok(value, kind):
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == NUM:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == STR:
        return isinstance(value, str)
    if kind == LIST_STR:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise AssertionError(kind)


def _type_name(value):
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__)


def _check(where, value, kind):
    if not _type_ok(value, kind):
        raise ScenarioError(f"{where}: expected {kind}, got {_type_name(value)} {value!r}")


def _unknown(where, table, allowed):
    for key in table:
        if key not in allowed:
            raise ScenarioError(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")


def parse_scenario(text, source="<scenario>"):
    """Parses and validates one scenario file's text. Returns a dict:
    {name, description, topic: {partitions, configs}, steps: [{name, phases: [phase...]}]}
    where a phase is {name, kind, drain, timeout, bench: {key: value}}. Raises ScenarioError."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{source}: not valid TOML: {e}") from None
    _unknown(source, doc, {"name", "description", "topic", "step", "phase"})
    if "name" not in doc:
        raise ScenarioError(f"{source}: missing key 'name'")
    _check(f"{source}: name", doc["name"], STR)
    name = doc["name"]
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ScenarioError(f"{source}: name {name!r} must be non-empty letters, digits, '-', '_' or '.'")
    description = doc.get("description", "")
    _check(f"{source}: description", description, STR)

    topic = doc.get("topic", {})
    if not isinstance(topic, dict):
        raise ScenarioError(f"{source}: topic: expected table, got {_type_name(topic)}")
    _unknown(f"{source}: topic", topic, {"partitions", "configs"})
    partitions = topic.get("partitions")
    if partitions is not None:
        _check(f"{source}: topic.partitions", partitions, INT)
        if partitions < 1:
            raise ScenarioError(f"{source}: topic.partitions: must be >= 1, got {partitions}")
    configs = topic.get("configs", {})
    if not isinstance(configs, dict):
        raise ScenarioError(f"{source}: topic.configs: expected table, got {_type_name(configs)}")
    for k, v in configs.items():
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise ScenarioError(f"{source}: topic.configs.{k}: expected string or integer, got {_type_name(v)}")
    configs = {k: str(v) for k, v in configs.items()}

    if ("step" in doc) == ("phase" in doc):
        raise ScenarioError(f"{source}: give either [[phase]] (run one after the other) or [[step]] with "
                            "[[step.phase]] (phases of a step run concurrently), not both or neither")
    if "phase" in doc:
        raw_phases = doc["phase"]
        if not isinstance(raw_phases, list) or not raw_phases:
            raise ScenarioError(f"{source}: phase: expected a non-empty array of tables ([[phase]])")
        raw_steps = [{"phase": [p]} for p in raw_phases]
        step_where = [f"{source}: phase[{i}]" for i in range(len(raw_phases))]
    else:
        raw_steps = doc["step"]
        if not isinstance(raw_steps, list) or not raw_steps:
            raise ScenarioError(f"{source}: step: expected a non-empty array of tables ([[step]])")
        step_where = [f"{source}: step[{i}]" for i in range(len(raw_steps))]

    steps, seen = [], {}
    for i, raw in enumerate(raw_steps):
        where = step_where[i]
        if not isinstance(raw, dict):
            raise ScenarioError(f"{where}: expected table, got {_type_name(raw)}")
        _unknown(where, raw, {"name", "phase"})
        step_name = raw.get("name", f"step{i + 1}" if "step" in doc else None)
        if step_name is not None:
            _check(f"{where}.name", step_name, STR)
        raw_phases = raw.get("phase")
        if not isinstance(raw_phases, list) or not raw_phases:
            raise ScenarioError(f"{where}: expected a non-empty array of phases ([[step.phase]])")
        phases = []
        for j, p in enumerate(raw_phases):
            pw = where if "phase" in doc else f"{where}.phase[{j}]"
            phase = _parse_phase(pw, p, seen)
            seen[phase["name"]] = (len(steps), phase)
            phases.append(phase)
        steps.append({"name": step_name or phases[0]["name"], "phases": phases})
    return {"name": name, "description": description, "source": source,
            "topic": {"partitions": partitions, "configs": configs}, "steps": steps}


def _parse_phase(where, p, seen):
    if not isinstance(p, dict):
        raise ScenarioError(f"{where}: expected table, got {_type_name(p)}")
    _unknown(where, p, set(BENCH_KEYS) | set(RUNNER_KEYS))
    for key in ("name", "kind"):
        if key not in p:
            raise ScenarioError(f"{where}: missing key {key!r}")
    for key, kind in RUNNER_KEYS.items():
        if key in p:
            _check(f"{where}.{key}", p[key], kind)
    name, kind = p["name"], p["kind"]
    if name in seen:
        raise ScenarioError(f"{where}.name: phase name {name!r} used twice")
    if kind not in KINDS:
        raise ScenarioError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    bench = {}
    for key, (typ, _flag, allowed) in BENCH_KEYS.items():
        if key not in p:
            continue
        value = p[key]
        if key == "acks" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        _check(f"{where}.{key}", value, typ)
        if allowed and value not in allowed:
            raise ScenarioError(f"{where}.{key}: expected one of {', '.join(allowed)}, got {value!r}")
        if typ in (INT, NUM) and (value < 0 or (value == 0 and key not in ("rate", "warmup"))):
            raise ScenarioError(f"{where}.{key}: must be {'>= 0' if key in ('rate', 'warmup') else '> 0'}, "
                                f"got {value}")
        bench[key] = value
    if kind == "consume":
        bad = sorted(PRODUCE_ONLY & set(p))
    elif kind == "produce":
        bad = sorted(CONSUME_ONLY & set(p))
    else:
        bad = ["drain"] if "drain" in p else []
    if bad:
        raise ScenarioError(f"{where}: {', '.join(bad)} cannot be used with kind = {kind!r}")
    if "count" in p and "duration" in p:
        raise ScenarioError(f"{where}: give count or duration, not both")
    drain = p.get("drain", [])
    if drain:
        if "count" in p or "duration" in p:
            raise ScenarioError(f"{where}: drain sets the count; do not give count or duration")
        for ref in drain:
            if ref not in seen:
                raise ScenarioError(f"{where}.drain: {ref!r} is not an earlier phase of this scenario")
            ref_phase = seen[ref][1]
            if ref_phase["kind"] == "consume" or "count" not in ref_phase["bench"]:
                raise ScenarioError(f"{where}.drain: {ref!r} must be a produce or e2e phase with a count")
    timeout = p.get("timeout")
    if timeout is not None and timeout <= 0:
        raise ScenarioError(f"{where}.timeout: must be > 0, got {timeout}")
    return {"name": name, "kind": kind, "drain": drain, "timeout": timeout, "bench": bench}


def load_scenario(path):
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: cannot read: {e}") from None
    return parse_scenario(text, path)


def scaled(phase, scale, scenario):
    """The phase's bench settings with --scale applied to durations and counts; drain phases get
    the sum of the (scaled) counts they drain."""
    out = dict(phase["bench"])
    if "duration" in out:
        out["duration"] = max(1, round(out["duration"] * scale))
    if "warmup" in out:
        out["warmup"] = max(min(1, out["warmup"]), round(out["warmup"] * scale))
    if "count" in out:
        out["count"] = max(1, round(out["count"] * scale))
    if phase["drain"]:
        counts = {p["name"]: p for s in scenario["steps"] for p in s["phases"]}
        out["count"] = sum(max(1, round(counts[r]["bench"]["count"] * scale)) for r in phase["drain"])
    return out


def bench_command(binary, phase, settings, bootstrap, topic, scenario, json_path):
    cmd = [binary, "bench", phase["kind"], "--bootstrap-server", bootstrap, "--topic", topic, "--create-topic"]
    if scenario["topic"]["partitions"] is not None:
        cmd += ["--partitions", str(scenario["topic"]["partitions"])]
    for k, v in scenario["topic"]["configs"].items():
        cmd += ["--topic-config", f"{k}={v}"]
    for key, value in settings.items():
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        cmd += [BENCH_KEYS[key][1], str(value)]
    return cmd + ["--json", json_path, "--quiet"]


def phase_timeout(phase, settings):
    if phase["timeout"] is not None:
        return phase["timeout"]
    if "duration" in settings:
        return 60 + 3 * (settings["duration"] + settings.get("warmup", 0))
    if "count" in settings:
        return 900
    return 60 + 3 * (10 + settings.get("warmup", 0))  # the bench's default --duration 10


# ---------------------------------------------------------------------------------------------
# Brokers, references, machine
# ---------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StartedBroker:
    """An Odradek broker the runner starts on a free port with a temporary data directory."""

    def __init__(self, name, binary, extra_args, work_dir, log_dir):
        self.name, self.binary, self.extra_args = name, binary, extra_args
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix=f"odradek-perf-{name}-", dir=work_dir)
        self.log_path = os.path.join(log_dir, f"broker-{name}.log")
        self.proc = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        self.log = open(self.log_path, "ab")
        cmd = [self.binary, "serve", "--listeners", self.bootstrap, "--data-dir", self.data_dir, *self.extra_args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker {self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"broker {self.name} did not start listening; see {self.log_path}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def disk_bytes(self):
        total = 0
        for dirpath, _dirs, files in os.walk(self.data_dir):
            for f in files:
                try:
                    total += os.stat(os.path.join(dirpath, f)).st_blocks * 512
                except OSError:
                    pass
        return total

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def fio_reference(directory, size):
    """Bytes/s of fio's O_DIRECT sequential 1 MiB write (4 in flight, io_uring) in `directory`."""
    if not shutil.which("fio"):
        return {"error": "fio not installed"}
    path = os.path.join(directory, "perf-fio.dat")
    cmd = ["fio", "--name=ref", f"--filename={path}", "--rw=write", "--bs=1m", "--direct=1", "--ioengine=io_uring",
           "--iodepth=4", f"--size={size}", "--end_fsync=1", "--output-format=json"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            return {"error": f"fio exited with {out.returncode}: {out.stderr.strip()[-300:]}", "command": cmd}
        bw = json.loads(out.stdout[out.stdout.index("{"):])["jobs"][0]["write"]["bw_bytes"]
        return {"bytes_per_s": float(bw), "command": cmd}
    except (subprocess.TimeoutExpired, ValueError, KeyError, IndexError) as e:
        return {"error": f"fio failed: {e}", "command": cmd}
    finally:
        try:
            os.remove(path)
        except OSError:
            pass


def iperf_reference(seconds):
    """Bytes/s of one iperf3 TCP stream over loopback."""
    if not shutil.which("iperf3"):
        return {"error": "iperf3 not installed"}
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"]
    try:
        for _ in range(50):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        # The probe connection above used up `-1`'s single test on some versions: restart if gone.
        time.sleep(0.1)
        if server.poll() is not None:
            server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            time.sleep(0.3)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
        doc = json.loads(out.stdout)
        if "error" in doc:
            return {"error": f"iperf3: {doc['error']}", "command": cmd}
        return {"bytes_per_s": doc["end"]["sum_received"]["bits_per_second"] / 8, "command": cmd}
    except (subprocess.TimeoutExpired, ValueError, KeyError) as e:
        return {"error": f"iperf3 failed: {e}", "command": cmd}
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()


def machine_info(binary):
    info = {"hostname": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(), "python":
            platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        info["git_commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                                            text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        info["git_dirty"] = bool(dirty)
    except (OSError, subprocess.TimeoutExpired):
        pass
    info["odradek_bin"] = binary
    return info


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

def topic_name(scenario, target, round_no):
    raw = f"perf-{scenario}-{target}-r{round_no}-{time.time_ns() % 10**12:x}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in raw)[:240]


def run_scenario(scenario, target, round_no, args, raw_dir, log):
    """Runs every step of `scenario` against `target` (one fresh topic). Returns a run record."""
    topic = topic_name(scenario["name"], target["name"], round_no)
    run = {"round": round_no, "scenario": scenario["name"], "target": target["name"], "bootstrap":
           target["bootstrap"], "topic": topic, "phases": []}
    t0 = time.time()
    for step_no, step in enumerate(scenario["steps"]):
        procs = []
        for i, phase in enumerate(step["phases"]):
            settings = scaled(phase, args.scale, scenario)
            stem = f"r{round_no}-{scenario['name']}-{target['name']}-{phase['name']}"
            json_path = os.path.join(raw_dir, stem + ".json")
            err_path = os.path.join(raw_dir, stem + ".log")
            cmd = bench_command(args.odradek_bin, phase, settings, target["bootstrap"], topic, scenario, json_path)
            if step_no == 0 and i > 0:
                time.sleep(1)  # let the first phase create the topic
            start = time.time()
            err = open(err_path, "wb")
            proc = subprocess.Popen(cmd, stdout=err, stderr=err)
            procs.append((phase, settings, cmd, json_path, err_path, err, proc, start))
            log(f"  [{target['name']}] {phase['name']}: {shlex.join(cmd[1:])}")
        for phase, settings, cmd, json_path, err_path, err, proc, start in procs:
            timeout = phase_timeout(phase, settings) - (time.time() - start)
            rec = {"step": step["name"], "phase": phase["name"], "kind": phase["kind"], "settings": settings,
                   "command": cmd, "offset_s": start - t0, "error": None, "result": None}
            try:
                proc.wait(timeout=max(timeout, 0.1))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                rec["error"] = f"timed out after {phase_timeout(phase, settings):.0f} s"
            err.close()
            rec["wall_s"] = time.time() - start
            rec["exit_code"] = proc.returncode
            if rec["error"] is None and proc.returncode != 0:
                rec["error"] = f"exit code {proc.returncode}: {tail(err_path)}"
            if os.path.exists(json_path):
                try:
                    with open(json_path) as f:
                        rec["result"] = json.load(f)
                except (OSError, ValueError) as e:
                    rec["error"] = rec["error"] or f"unreadable result {json_path}: {e}"
            elif rec["error"] is None:
                rec["error"] = f"no result file {json_path}: {tail(err_path)}"
            if rec["error"]:
                log(f"  [{target['name']}] {phase['name']}: FAILED: {rec['error']}")
            run["phases"].append(rec)
    broker = target.get("broker")
    if broker is not None:
        run["broker_alive"] = broker.alive()
        run["disk_bytes_after"] = broker.disk_bytes()
        if not run["broker_alive"]:
            log(f"  [{target['name']}] the broker died; see {broker.log_path}")
    run["wall_s"] = time.time() - t0
    if not args.keep_topics:
        # Free the disk for the next runs (Odradek preallocates segments: a topic costs GBs).
        cmd = [args.odradek_bin, "topic", "delete", "--if-exists", "--bootstrap-server", target["bootstrap"], topic]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                log(f"  [{target['name']}] could not delete {topic}: {r.stderr.strip()[-300:]}")
        except subprocess.TimeoutExpired:
            log(f"  [{target['name']}] deleting {topic} timed out")
        # The filesystem frees a deleted topic's extents in its next journal commits; on a disk
        # the targets share, those stalled the fsyncs of whichever target ran next (seen as
        # 0.4-1.2 s produce stalls in the run after a deletion, never with --keep-topics). Flush
        # it here, before the next phase, so neither target pays for the other's cleanup.
        os.sync()
        time.sleep(SETTLE_AFTER_DELETE_S)
    return run


def tail(path, n=400):
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace").strip()
    except OSError:
        return ""
    return text[-n:].replace("\n", " | ")


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _get(d, *path):
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def _median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None


def _max(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return max(values) if values else None


PCTS = ("p50", "p99", "p999", "max")


def summarize(runs, references):
    """One row per (scenario, phase, target): medians over rounds (max of the maxima)."""
    fio = _ref(references, "fio")
    net = _ref(references, "iperf3")
    groups = {}
    for run in runs:
        for ph in run["phases"]:
            groups.setdefault((run["scenario"], ph["phase"], run["target"]), []).append((run, ph))
    rows = []
    for (scenario, phase, target), items in groups.items():
        results = [ph["result"] for _, ph in items if ph["result"]]
        kind = items[0][1]["kind"]
        side = "consumed" if kind == "consume" else "produced"
        mbs = [_get(r, side, "mb_per_s") for r in results]
        row = {
            "scenario": scenario, "phase": phase, "target": target, "kind": kind, "rounds": len(items),
            "failed_rounds": sum(1 for _, ph in items if ph["error"]),
            "produced": _median([_get(r, "produced", "records") for r in results]),
            "consumed": _median([_get(r, "consumed", "records") for r in results]),
            "records_per_s": _median([_get(r, side, "records_per_s") for r in results]),
            "mb_per_s": _median(mbs),
            "mb_per_s_min": _min_or_none(mbs), "mb_per_s_max": _max(mbs),
            "errors": sum(_get(r, "produced", "errors") or 0 for r in results),
            "disk_bytes_after": _median([run.get("disk_bytes_after") for run, _ in items]),
        }
        if row["mb_per_s"] is not None:
            row["of_fio"] = row["mb_per_s"] * 1e6 / fio if fio and kind != "consume" else None
            row["of_iperf3"] = row["mb_per_s"] * 1e6 / net if net else None
        for lat in ("produce", "e2e"):
            for p in PCTS:
                vals = [_get(r, "latency", lat, p) for r in results]
                row[f"{lat}_{p}"] = _max(vals) if p == "max" else _median(vals)
        rows.append(row)
    return rows


def _min_or_none(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return min(values) if values else None


def _ref(references, name):
    vals = [r[name]["bytes_per_s"] for r in references if "bytes_per_s" in r.get(name, {})]
    return statistics.mean(vals) if vals else None


def fmt_ms(us):
    if us is None:
        return "–"
    ms = us / 1000
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_num(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def fmt_pct(v):
    return "–" if v is None else f"{v:.1%}"


def ratios(scenario, rows, meta):
    """Throughput of every other target relative to the first, per phase."""
    names = [t["name"] for t in meta["targets"]]
    by = {(r["phase"], r["target"]): r["mb_per_s"] for r in rows if r["scenario"] == scenario["name"]}
    phases = [p["name"] for s in scenario["steps"] for p in s["phases"]]
    lines = []
    for other in names[1:]:
        parts = [f"{ph} {by[(ph, other)] / by[(ph, names[0])]:.2f}x" for ph in phases
                 if by.get((ph, names[0])) and by.get((ph, other)) is not None]
        if parts:
            lines.append(f"- MB/s of {other} relative to {names[0]}: {', '.join(parts)}")
    return lines


def checks(scenario, runs):
    """Consistency checks the report states: a drain phase must consume everything produced."""
    lines = []
    for run in runs:
        if run["scenario"] != scenario["name"]:
            continue
        by_name = {ph["phase"]: ph for ph in run["phases"]}
        for step in scenario["steps"]:
            for phase in step["phases"]:
                if not phase["drain"] or phase["name"] not in by_name:
                    continue
                consumed = _get(by_name[phase["name"]]["result"], "consumed", "records")
                produced = sum(_get(by_name.get(r, {}).get("result"), "produced", "records") or 0
                               for r in phase["drain"])
                ok = consumed == produced
                lines.append(f"- round {run['round']}, {run['target']}: `{phase['name']}` consumed "
                             f"{consumed if consumed is not None else '–'} of {produced} records produced by "
                             f"{' + '.join(phase['drain'])}: {'ok' if ok else 'MISMATCH'}")
        if run.get("broker_alive") is False:
            lines.append(f"- round {run['round']}, {run['target']}: the broker DIED during the scenario")
    return lines


def write_report(out_dir, meta, scenarios, runs, references):
    rows = summarize(runs, references)
    lat_src = latency_source(runs)
    fio, net = _ref(references, "fio"), _ref(references, "iperf3")
    md = [f"# Perf report: {os.path.basename(os.path.abspath(out_dir))}", ""]
    md += [f"Reproduce: `{meta['command']}`", ""]
    md += [f"Run {meta['started_at']} – {meta['finished_at']}, scale {meta['scale']}, {meta['rounds']} round(s), "
           "targets interleaved (order alternates between rounds), a fresh topic per scenario run.", ""]
    md += ["| target | bootstrap | how |", "|---|---|---|"]
    for t in meta["targets"]:
        md.append(f"| {t['name']} | {t['bootstrap']} | {t['how']} |")
    md += ["", "References (measured in this run, before and after the scenarios):", ""]
    for name, what in (("fio", "fio O_DIRECT sequential write, 1 MiB x4, io_uring"),
                       ("iperf3", "iperf3 one TCP stream over loopback")):
        figs = [f"{r[name]['bytes_per_s'] / 1e6:,.0f} MB/s" if "bytes_per_s" in r.get(name, {}) else
                r.get(name, {}).get("error", "skipped") for r in references]
        md.append(f"- {what}: {', '.join(figs) if figs else 'skipped (--no-reference)'}")
    md += ["", "Throughput is records (key + value bytes; MB = 10^6 B) acknowledged by the broker for produce and "
           "e2e phases, consumed for consume phases; `of fio` / `of iperf3` divide it by the references (mean "
           "of the measurements above). Latencies in ms: produce = send (intended time when rate-limited) to ack; "
           "e2e = intended send time to consumed. With several rounds, figures are medians over rounds (MB/s "
           "range in brackets), max is the maximum and errors the total.", ""]
    for sc in scenarios:
        md += [f"## {sc['name']}", "", sc["description"].strip(), ""]
        md += [f"![throughput]({sc['name']}.throughput.svg)", "", f"![latency]({sc['name']}.latency.svg)", ""]
        md += ["| phase | target | kind | produced | consumed | records/s | MB/s | of fio | of iperf3 | "
               "produce p50 | p99 | p99.9 | max | e2e p50 | p99 | p99.9 | max | errors | disk after |",
               "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            if r["scenario"] != sc["name"]:
                continue
            mb = fmt_num(r["mb_per_s"])
            if r["rounds"] > 1 and r["mb_per_s_min"] is not None:
                mb += f" ({fmt_num(r['mb_per_s_min'])}–{fmt_num(r['mb_per_s_max'])})"
            errs = str(r["errors"])
            if r["failed_rounds"]:
                errs += f", {r['failed_rounds']} failed run(s)"
            disk = "–" if r["disk_bytes_after"] is None else f"{r['disk_bytes_after'] / 1e6:,.0f} MB"
            md.append(" | ".join([
                f"| {r['phase']}", r["target"], r["kind"], _int(r["produced"]), _int(r["consumed"]),
                fmt_num(r["records_per_s"]), mb, fmt_pct(r.get("of_fio")), fmt_pct(r.get("of_iperf3")),
                *[fmt_ms(r[f"produce_{p}"]) for p in PCTS], *[fmt_ms(r[f"e2e_{p}"]) for p in PCTS],
                errs, disk]) + " |")
        lines = ratios(sc, rows, meta)
        lines += checks(sc, runs)
        failures = [(run, ph) for run in runs if run["scenario"] == sc["name"] for ph in run["phases"] if ph["error"]]
        lines += [f"- round {run['round']}, {run['target']}: `{ph['phase']}` FAILED: {ph['error']}"
                  for run, ph in failures]
        if lines:
            md += ["", *lines]
        md.append("")
        write_svg(os.path.join(out_dir, f"{sc['name']}.throughput.svg"), throughput_chart(sc, runs))
        write_svg(os.path.join(out_dir, f"{sc['name']}.latency.svg"), latency_chart(sc, rows, meta, lat_src))
    md += ["## Machine", ""]
    md += [f"- {k}: {v}" for k, v in meta["machine"].items()]
    md.append("")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "scenarios": scenarios, "references": references, "fio_bytes_per_s": fio,
                   "iperf3_bytes_per_s": net, "summary": rows, "runs": runs}, f, indent=1)


def _int(v):
    return "–" if v is None else f"{v:,.0f}"


# ---------------------------------------------------------------------------------------------
# SVG charts (hand-written: no plotting library)
# ---------------------------------------------------------------------------------------------

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
DASHES = ("", "6,3", "2,3", "8,3,2,3")
W, H, ML, MR, MT, MB = 860, 420, 80, 200, 40, 50


def nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while True:
        ticks.append(round(v, 10))
        if v >= hi - step * 1e-9:
            return ticks
        v += step


def _si(v):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


def chart(title, xlabel, ylabel, series, xticks, yticks, xmap, ymap):
    """series: [(label, color, dash, [(x, y), ...])]; xmap/ymap: data -> [0, 1]; ticks: [(value, label)]."""
    # The legend sits right of the plot, as wide as its longest label (about 7 px a character).
    mr = max(MR, 60 + 7 * max((len(s[0]) for s in series), default=0))
    width = W - MR + mr
    pw, ph = width - ML - mr, H - MT - MB
    px = lambda x: ML + xmap(x) * pw  # noqa: E731
    py = lambda y: MT + (1 - ymap(y)) * ph  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" viewBox="0 0 {width} {H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{H}" fill="white"/>',
           f'<text x="{ML + pw / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']
    for v, label in yticks:
        y = py(v)
        out.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{ML + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    for v, label in xticks:
        x = px(v)
        out.append(f'<line x1="{x:.1f}" y1="{MT}" x2="{x:.1f}" y2="{MT + ph}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{MT + ph + 16}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{ML + pw / 2}" y="{H - 10}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text transform="translate(16 {MT + ph / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(ylabel)}</text>')
    i = 0
    for label, color, dash, points, *rest in series:
        opacity = f' opacity="{rest[0]}"' if rest else ""
        if points:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6"{dash_attr}'
                       f'{opacity}/>')
            if len(points) <= 8:
                out += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{color}"{opacity}/>'
                        for x, y in points]
        if not label:
            continue
        ly = MT + 10 + i * 18
        i += 1
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{ML + pw + 12}" y1="{ly}" x2="{ML + pw + 40}" y2="{ly}" stroke="{color}" '
                   f'stroke-width="2"{dash_attr}/>')
        out.append(f'<text x="{ML + pw + 46}" y="{ly + 4}">{escape(label)}</text>')
    if not any(s[3] for s in series):
        out.append(f'<text x="{ML + pw / 2}" y="{MT + ph / 2}" text-anchor="middle" fill="#888">no data</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _target_colors(runs):
    names = []
    for run in runs:
        if run["target"] not in names:
            names.append(run["target"])
    return {n: COLORS[i % len(COLORS)] for i, n in enumerate(names)}


def throughput_chart(scenario, runs):
    """Records/s over time since the scenario's start, per target and phase (produced solid per
    phase dash style, consumed in the same colour); every round is drawn."""
    colors = _target_colors(runs)
    phases = [p["name"] for s in scenario["steps"] for p in s["phases"]]
    series, xmax, ymax = [], 1.0, 1.0
    for run in runs:
        if run["scenario"] != scenario["name"]:
            continue
        for ph in run["phases"]:
            timeline = _get(ph["result"], "timeline") or []
            for field, what in (("produced_records_per_s", "produced"), ("consumed_records_per_s", "consumed")):
                if ph["kind"] == {"produced": "consume", "consumed": "produce"}[what]:
                    continue
                pts = [(ph["offset_s"] + e["t_s"], e[field]) for e in timeline
                       if isinstance(e, dict) and isinstance(e.get("t_s"), (int, float))
                       and isinstance(e.get(field), (int, float))]
                if not pts:
                    continue
                xmax, ymax = max(xmax, max(x for x, _ in pts)), max(ymax, max(y for _, y in pts))
                idx = phases.index(ph["phase"]) if ph["phase"] in phases else 0
                dash = DASHES[(2 * idx + (what == "consumed")) % len(DASHES)]
                if run["round"] == 1:
                    series.append((f"{run['target']} {ph['phase']} {what}", colors[run["target"]], dash, pts))
                else:
                    series.append(("", colors[run["target"]], dash, pts, 0.4))
    yt = nice_ticks(0, ymax)
    xt = nice_ticks(0, xmax, 8)
    rounds = max([run["round"] for run in runs if run["scenario"] == scenario["name"]], default=1)
    title = f"{scenario['name']}: throughput" + (" (later rounds faded)" if rounds > 1 else "")
    return chart(title, "seconds since the scenario started", "records/s", series,
                 [(v, f"{v:g}") for v in xt], [(v, _si(v)) for v in yt],
                 lambda x: x / xt[-1], lambda y: y / yt[-1])


LAT_POINTS = (("p50", 0.5, "50"), ("p90", 0.9, "90"), ("p99", 0.99, "99"), ("p999", 0.999, "99.9"),
              ("p9999", 0.9999, "99.99"), ("max", 0.99999, "max"))


def latency_chart(scenario, rows, meta, runs_by_key):
    """Latency percentiles per target (x: log of 1/(1-p), y: log ms), from the medians over rounds."""
    colors = {t["name"]: COLORS[i % len(COLORS)] for i, t in enumerate(meta["targets"])}
    series, lo, hi = [], None, None
    phases = [p["name"] for s in scenario["steps"] for p in s["phases"]]
    for r in rows:
        if r["scenario"] != scenario["name"]:
            continue
        for lat in ("produce", "e2e"):
            lat_vals = runs_by_key.get((r["scenario"], r["phase"], r["target"], lat), {})
            pts = [(1 / (1 - q), lat_vals[key] / 1000) for key, q, _ in LAT_POINTS
                   if isinstance(lat_vals.get(key), (int, float)) and lat_vals[key] > 0]
            if not pts:
                continue
            lo = min([lo] + [y for _, y in pts] if lo is not None else [y for _, y in pts])
            hi = max([hi] + [y for _, y in pts] if hi is not None else [y for _, y in pts])
            dash = DASHES[(2 * phases.index(r["phase"]) + (lat == "e2e")) % len(DASHES)]
            series.append((f"{r['target']} {r['phase']} {lat}", colors.get(r["target"], COLORS[0]), dash, pts))
    lo, hi = (lo or 0.1), (hi or 1.0)
    dlo, dhi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if dhi == dlo:
        dhi += 1
    yt = [(10.0 ** d, f"{10.0 ** d:g}") for d in range(dlo, dhi + 1)]
    xt = [(1 / (1 - q), label) for _, q, label in LAT_POINTS]
    xl0, xl1 = math.log10(2), math.log10(1e5)
    return chart(f"{scenario['name']}: latency percentiles", "percentile", "ms (log)", series, xt, yt,
                 lambda x: (math.log10(x) - xl0) / (xl1 - xl0),
                 lambda y: (math.log10(y) - dlo) / (dhi - dlo))


def latency_source(runs):
    """(scenario, phase, target, produce|e2e) -> {percentile: median over rounds (max: max)}."""
    acc = {}
    for run in runs:
        for ph in run["phases"]:
            for lat in ("produce", "e2e"):
                h = _get(ph["result"], "latency", lat)
                if isinstance(h, dict):
                    acc.setdefault((run["scenario"], ph["phase"], run["target"], lat), []).append(h)
    out = {}
    for key, hs in acc.items():
        out[key] = {p: (_max if p == "max" else _median)([h.get(p) for h in hs]) for p, _, _ in LAT_POINTS}
    return out


def write_svg(path, text):
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def parse_target(spec):
    name, sep, addr = spec.partition("=")
    if not sep or not name or ":" not in addr:
        raise argparse.ArgumentTypeError(f"--target wants NAME=HOST:PORT, got {spec!r}")
    return {"name": name, "bootstrap": addr, "how": "given"}


def parse_start(spec):
    name, _sep, extra = spec.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"--start-odradek wants NAME[:extra serve args], got {spec!r}")
    try:
        extra_args = shlex.split(extra)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--start-odradek {spec!r}: {e}") from None
    return {"name": name, "extra": extra_args}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="+", help="scenario files (TOML)")
    ap.add_argument("--target", action="append", default=[], type=parse_target, metavar="NAME=HOST:PORT",
                    help="a broker to measure (repeatable)")
    ap.add_argument("--start-odradek", action="append", default=[], type=parse_start,
                    metavar="NAME[:ARGS]", help="start an Odradek broker for this run, on a free port with a "
                    "temporary data dir; ARGS are extra `odradek serve` args (repeatable)")
    ap.add_argument("--odradek-bin", default=os.path.join(ROOT, "target", "release", "odradek"),
                    help="the odradek binary: runs `bench` and `serve` (default: target/release/odradek)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every duration and count (default 1)")
    ap.add_argument("--rounds", type=int, default=1, help="times every scenario runs against every target")
    ap.add_argument("--out", help="report directory (default perf/reports/<UTC time>)")
    ap.add_argument("--work-dir", default=None, help="where started brokers' data and the fio file go "
                    "(default: the system temp dir)")
    ap.add_argument("--keep-topics", action="store_true", help="do not delete each scenario run's topic after it")
    ap.add_argument("--no-reference", action="store_true", help="skip the fio and iperf3 references")
    ap.add_argument("--fio-size", default="1G", help="fio file size (default 1G)")
    ap.add_argument("--iperf-seconds", type=int, default=3, help="iperf3 run length (default 3)")
    ap.add_argument("--dry-run", action="store_true", help="validate and print the bench commands, run nothing")
    args = ap.parse_args(argv)

    if args.scale <= 0:
        ap.error("--scale must be > 0")
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    try:
        scenarios = [load_scenario(p) for p in args.scenarios]
    except ScenarioError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = [s["name"] for s in scenarios]
    if len(set(names)) != len(names):
        print(f"error: two scenario files share a name: {names}", file=sys.stderr)
        return 2
    targets = list(args.target) + [{"name": s["name"], "bootstrap": None, "how": ("started: odradek serve "
                                    + shlex.join(s["extra"])).strip(), "start": s} for s in args.start_odradek]
    tnames = [t["name"] for t in targets]
    if not targets:
        ap.error("give at least one --target or --start-odradek")
    if len(set(tnames)) != len(tnames) or any(not all(c.isalnum() or c in "-_." for c in n) for n in tnames):
        ap.error(f"target names must be unique, letters, digits, '-', '_' or '.': {tnames}")

    if args.dry_run:
        for sc in scenarios:
            for step in sc["steps"]:
                for phase in step["phases"]:
                    settings = scaled(phase, args.scale, sc)
                    cmd = bench_command(args.odradek_bin, phase, settings, "BOOTSTRAP", f"perf-{sc['name']}-TARGET",
                                        sc, "RESULT.json")
                    print(f"{sc['name']} / {step['name']} / {phase['name']}: {shlex.join(cmd)}")
        return 0

    if not os.path.exists(args.odradek_bin):
        print(f"error: {args.odradek_bin} missing: `cargo build --release -p odradek` or pass --odradek-bin",
              file=sys.stderr)
        return 2
    out_dir = args.out or os.path.join(ROOT, "perf", "reports", datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    raw_dir = os.path.join(out_dir, "raw")
    os.makedirs(raw_dir, exist_ok=True)
    work_dir = args.work_dir or tempfile.gettempdir()

    def log(msg):
        print(f"{datetime.now(timezone.utc).strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    brokers = []
    references, runs = [], []
    status = 0
    try:
        for t in targets:
            if "start" in t:
                b = StartedBroker(t["name"], args.odradek_bin, t["start"]["extra"], work_dir, out_dir)
                brokers.append(b)
                b.start()
                t["bootstrap"], t["broker"] = b.bootstrap, b
                log(f"started {t['name']} on {b.bootstrap} (data {b.data_dir})")

        def measure_references():
            if args.no_reference:
                return
            fio_dir = brokers[0].data_dir if brokers else work_dir
            log(f"reference: fio {args.fio_size} in {fio_dir}")
            fio = fio_reference(fio_dir, args.fio_size)
            log("reference: iperf3 loopback")
            net = iperf_reference(args.iperf_seconds)
            references.append({"at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "fio": fio,
                               "iperf3": net})
            for name, ref in (("fio", fio), ("iperf3", net)):
                log(f"  {name}: " + (f"{ref['bytes_per_s'] / 1e6:,.0f} MB/s" if "bytes_per_s" in ref
                                     else ref["error"]))

        measure_references()
        for round_no in range(1, args.rounds + 1):
            order = targets if round_no % 2 == 1 else targets[::-1]
            for sc in scenarios:
                for t in order:
                    log(f"round {round_no}: {sc['name']} on {t['name']} ({t['bootstrap']})")
                    runs.append(run_scenario(sc, t, round_no, args, raw_dir, log))
        measure_references()
    except KeyboardInterrupt:
        log("interrupted: writing the report of what ran")
        status = 130
    except RuntimeError as e:
        log(f"error: {e}")
        status = 1
    finally:
        for b in brokers:
            b.stop()
    if any(ph["error"] for run in runs for ph in run["phases"]) or any(r.get("broker_alive") is False for r in runs):
        status = status or 1
    meta = {
        "command": shlex.join(["perf/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started_at, "finished_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "scale": args.scale, "rounds": args.rounds, "scenarios": names,
        "targets": [{"name": t["name"], "bootstrap": t["bootstrap"], "how": t["how"]} for t in targets],
        "machine": machine_info(args.odradek_bin),
    }
    try:
        write_report(out_dir, meta, scenarios, runs, references)
    except OSError as e:
        log(f"error: cannot write the report: {e}")
        return 1
    log(f"report: {os.path.join(out_dir, 'report.md')}")
    return status


if __name__ == "__main__":
    sys.exit(main())
