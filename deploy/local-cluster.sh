#!/usr/bin/env bash
# deploy/local-cluster.sh — a ringstream cluster on one machine: N nodes (node i on port P+i,
# its data in D/node-i, its pid in D/node-i.pid) behind HAProxy on port P (deploy/haproxy.cfg
# with the nodes filled in), in the foreground. A node that dies (kill -9, a crash) is
# started again after a second, as a service manager would; meanwhile its streams answer
# 503. SIGTERM or SIGINT stops HAProxy, then the nodes (gracefully: each writes its final
# checkpoint). If HAProxy exits by itself, everything stops.
#
#   deploy/local-cluster.sh --nodes 3 --port 4437 --data-dir ./cluster [-- extra ringstream flags]
#
# Prints `cluster ready on http://127.0.0.1:P (N nodes)` once every node answers /readyz.
set -euo pipefail

nodes=3
port=4437
data=./cluster
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --data-dir) data="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "local-cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v haproxy >/dev/null || { echo "local-cluster.sh: haproxy is not installed (Debian: apt-get install haproxy)" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
mkdir -p "$data"
proxy="http://127.0.0.1:${port}"

supervisors=()
haproxy_pid=""
stop() {
  trap - TERM INT
  touch "$data/.stopping"
  [ -n "$haproxy_pid" ] && kill -TERM "$haproxy_pid" 2>/dev/null || true
  for i in $(seq 1 "$nodes"); do [ -f "$data/node-$i.pid" ] && kill -TERM "$(cat "$data/node-$i.pid")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -f "$data/.stopping"
}
trap 'stop; exit 0' TERM INT
rm -f "$data/.stopping"

# Runs node i, again whenever it exits, until the cluster stops.
supervise() {
  local i="$1" node_port="$2"
  while :; do
    node "$root/bin/ringstream.js" --port "$node_port" --data-dir "$data/node-$i" \
      --cluster-url "$proxy" --node-url "http://127.0.0.1:${node_port}" "${extra[@]}" &
    local pid=$!
    echo "$pid" > "$data/node-$i.pid"
    echo "node-$i pid $pid on http://127.0.0.1:${node_port} data $data/node-$i"
    wait "$pid" || true
    [ -e "$data/.stopping" ] && return 0
    echo "node-$i exited; starting it again in 1 s"
    sleep 1
  done
}

servers=""
for i in $(seq 1 "$nodes"); do
  node_port=$((port + i))
  supervise "$i" "$node_port" &
  supervisors+=($!)
  servers+="  server node$i 127.0.0.1:${node_port}"$'\n'
done

# The template with its example servers replaced by these nodes.
awk -v servers="$servers" '/^  # @SERVERS@/ { printf "%s", servers; skip = 1; print; next } skip && /^  server / { next } { skip = 0; print }' \
  "$here/haproxy.cfg" > "$data/haproxy.cfg"
RINGSTREAM_PROXY_BIND="127.0.0.1:${port}" haproxy -db -f "$data/haproxy.cfg" &
haproxy_pid=$!

node -e '
  const [pids, proxy, ...nodes] = process.argv.slice(1)
  const alive = (pid) => { try { process.kill(Number(pid), 0); return true } catch { return false } }
  const ready = async (url) => { try { return (await fetch(url)).ok } catch { return false } }
  const deadline = Date.now() + 60_000
  const wait = async () => {
    for (;;) {
      const all = await Promise.all([...nodes.map((n) => ready(`${n}/readyz`)), ready(`${proxy}/healthz`)])
      if (all.every(Boolean)) return
      if (!pids.split(",").every(alive)) { console.error("local-cluster.sh: a node or HAProxy exited during startup"); process.exit(1) }
      if (Date.now() > deadline) { console.error("local-cluster.sh: nodes not ready after 60 s"); process.exit(1) }
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  wait()
' "$(IFS=,; echo "${supervisors[*]},${haproxy_pid}")" "$proxy" $(for i in $(seq 1 "$nodes"); do echo "http://127.0.0.1:$((port + i))"; done)
echo "cluster ready on ${proxy} (${nodes} nodes)"

# HAProxy exiting ends the cluster.
set +e
wait "$haproxy_pid"
status=$?
stop
exit "$status"
