#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what the tests need, checks
# formatting and lints, runs the whole workspace's tests, then the interop tests (real Kafka
# clients against a broker each test starts itself).
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
# Interop tests: Python clients in a virtualenv, and Debian's kcat 1.7.1 (librdkafka 2.0.2).
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
command -v kcat >/dev/null || need_apt+=(kcat)
# The Java client's transactional test program is compiled against ../shared/kafka's jars.
command -v javac >/dev/null || need_apt+=(openjdk-17-jdk-headless)
# perf/run.py measures the machine's references with fio and iperf3 (tests/interop/test_perf.py).
command -v fio >/dev/null || need_apt+=(fio)
command -v iperf3 >/dev/null || need_apt+=(iperf3)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# Both fuzz targets, for a bounded time each (FUZZ_SECONDS, default 30): the decoders of every
# untrusted input, without the broker's panic guard. cargo-fuzz wants a nightly compiler;
# RUSTC_BOOTSTRAP=1 lets the machine's stable one accept its flags. Crashes stop the run.
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
fuzz_secs=${FUZZ_SECONDS:-30}
for t in engine:batch_decode net:request_decode; do
  (cd "${t%%:*}" && RUSTC_BOOTSTRAP=1 cargo fuzz run "${t#*:}" -s none --target-dir ../target/fuzz \
    -- -max_total_time="$fuzz_secs" -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -n 15)
done

venv=target/interop-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
cargo build -p odradek
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/interop
