#!/usr/bin/env bash
# The data types through a local 3-node cluster (issue 7, acceptance 3): three `raftkv serve` processes
# on loopback, then redis-benchmark's list, set, hash and sorted-set tests against the leader; prints the
# requests per second, then each node's collection sizes (they must agree).
#
#   npm run bench:types [-- REQUESTS PIPELINE]     (defaults: 20000 1)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
P=${2:-1}
DATA=$(mktemp -d /tmp/raftkv-bench-types.XXXX)
PEERS=1=127.0.0.1:56379,2=127.0.0.1:56380,3=127.0.0.1:56381
PIDS=()
cleanup() {
  kill -TERM "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$DATA"
}
trap cleanup EXIT
for id in 1 2 3; do
  mkdir -p "$DATA/node$id"
  node dist/src/cli/raftkv.js serve --id "$id" --data-dir "$DATA/node$id" --peers "$PEERS" \
    --redis "127.0.0.1:$((46378 + id))" >"$DATA/node$id.log" 2>&1 &
  PIDS+=($!)
done
LEADER=""
for _ in $(seq 1 100); do
  for port in 46379 46380 46381; do
    role=$(redis-cli -p "$port" info raft 2>/dev/null | grep -o 'raft_role:[a-z]*' | cut -d: -f2 || true)
    if [ "$role" = leader ]; then LEADER=$port; break 2; fi
  done
  sleep 0.3
done
[ -n "$LEADER" ] || { echo "no leader elected" >&2; exit 1; }
echo "leader on port $LEADER; redis-benchmark -n $N -c 50 -P $P"
redis-benchmark -p "$LEADER" -t lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange \
  -n "$N" -c 50 -P "$P" -q 2>&1 | tr '\r' '\n' | grep "per second"
for port in 46379 46380 46381; do
  echo "$port: $(redis-cli -p "$port" dbsize) keys, llen $(redis-cli -p "$port" llen mylist)," \
    "hlen $(redis-cli -p "$port" hlen myhash), zcard $(redis-cli -p "$port" zcard myzset)"
done
