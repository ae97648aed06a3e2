#!/usr/bin/env bash
# A local Redis Cluster of 3 masters on loopback ports, for the live-state tests.
#   scripts/redis-cluster.sh start [FIRST_PORT]   (default 7101: ports 7101-7103)
#   scripts/redis-cluster.sh stop  [FIRST_PORT]
# Data lives in a temporary folder; nothing is persisted.
set -euo pipefail
action=${1:-start}
first=${2:-7101}
ports=("$first" "$((first + 1))" "$((first + 2))")
dir=${TMPDIR:-/tmp}/tourapi-redis-cluster-$first

case "$action" in
  start)
    mkdir -p "$dir"
    for port in "${ports[@]}"; do
      mkdir -p "$dir/$port"
      redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$dir/$port/nodes.conf" --cluster-node-timeout 5000 \
        --save "" --appendonly no --dir "$dir/$port" --daemonize yes \
        --logfile "$dir/$port/redis.log" --pidfile "$dir/$port/redis.pid"
    done
    for port in "${ports[@]}"; do
      for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    done
    if ! redis-cli -p "$first" cluster info | grep -q "cluster_state:ok"; then
      redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >/dev/null
    fi
    for _ in $(seq 1 100); do
      redis-cli -p "$first" cluster info | grep -q "cluster_state:ok" && break; sleep 0.1
    done
    redis-cli -p "$first" cluster info | grep cluster_state
    echo "redis://127.0.0.1:$first"
    ;;
  stop)
    for port in "${ports[@]}"; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop [FIRST_PORT]" >&2
    exit 2
    ;;
esac
