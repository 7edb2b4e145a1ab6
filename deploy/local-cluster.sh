#!/usr/bin/env bash
# deploy/local-cluster.sh — a ringstream cluster on one machine, in the foreground: N nodes
# (node i is node-i, on port P+i, its data in D/node-i, its pid in D/node-i.pid) behind
# HAProxy on port P (deploy/haproxy.cfg with the servers filled in). A node that exits
# (kill -9, a crash, a leader stepping down with status 75) is started again after a second,
# as a service manager would. SIGTERM or SIGINT stops HAProxy, then the nodes (gracefully:
# each writes its final checkpoint), then etcd. If HAProxy exits by itself, everything stops.
#
#   deploy/local-cluster.sh [--nodes N] [--replicas R] [--active K] [--port P] [--data-dir D]
#                           [--tls | --tls-port T] [-- extra ringstream flags]
#
# Defaults: 3 nodes, 1 replica, port 4437, ./cluster.
# --tls: the proxy also serves HTTPS with HTTP/2 (for browsers: README "In the browser") on
#   port P-1 (--tls-port T: on T), with a self-signed certificate for localhost and 127.0.0.1
#   made on the first start (D/tls.pem, certificate and key; replace it with your own). The
#   nodes keep reaching each other over plain HTTP on P. --nodes 1 is one node behind it.
# --replicas 1: N independent nodes, the proxy hashes stream paths onto them; a dead node's
#   streams answer 503 until it is back. --active K (K < N): nodes K+1..N run but stay out of
#   the proxy's hash ring (their servers start in maintenance), ready to be added with
#   `ringstream rebalance --add node<i>` (docs/scaling.md). HAProxy's runtime API is on the
#   socket D/haproxy.sock.
# --replicas R > 1 (N a multiple of R): N/R shards named 1..N/R, node i a replica of shard
#   ceil(i/R). etcd elects each shard's leader: one member, started first, data in D/etcd, log
#   in D/etcd.log, client URL http://127.0.0.1:P+1000, peer port P+1001 (Debian: apt-get install
#   etcd-server). The proxy hashes paths onto shards (server shard-S, first pointed at the
#   shard's first node); a new leader repoints its shard's server through HAProxy's admin
#   socket D/haproxy.sock, and a follower forwards what reaches it to its leader. --active K
#   counts shards: shards K+1.. run out of the ring, ready for `ringstream rebalance --add
#   shard-<s>` (with --nodes shard-<s>=<replica URL>|<replica URL>…).
# D/cluster.json, rewritten whenever a node starts: {"proxy", "etcd" (or null), "nodes":
#   [{"id", "url", "pid", "shard" (or null)}]}.
# Prints `cluster ready on http://127.0.0.1:P (N nodes)`, with R > 1
# `… (N nodes, S shards of R replicas)`, once every node answers /readyz.
set -euo pipefail

nodes=3
replicas=1
active=""
tls_port=""
port=4437
data=./cluster
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    --replicas) replicas="$2"; shift 2 ;;
    --active) active="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --data-dir) data="$2"; shift 2 ;;
    --tls) tls_port="${tls_port:-tls}"; shift ;;
    --tls-port) tls_port="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) echo "local-cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
fail() { echo "local-cluster.sh: $1" >&2; exit 2; }
for value in "$nodes" "$replicas" "$port"; do [[ "$value" =~ ^[1-9][0-9]*$ ]] || fail "--nodes, --replicas and --port take a positive integer, got \"$value\""; done
[ "$replicas" -le 9 ] || fail "--replicas must be 1 .. 9 (ringstream's own limit)"
[ $((nodes % replicas)) -eq 0 ] || fail "--nodes ($nodes) must be a multiple of --replicas ($replicas): every shard has R replicas"
shards=$((nodes / replicas))
[ "$tls_port" != tls ] || tls_port=$((port - 1))
[ -z "$tls_port" ] || [[ "$tls_port" =~ ^[1-9][0-9]*$ ]] || fail "--tls-port takes a positive integer, got \"$tls_port\""
active="${active:-$shards}"
[[ "$active" =~ ^[1-9][0-9]*$ ]] && [ "$active" -le "$shards" ] || fail "--active must be 1 .. the number of shards ($shards: --nodes / --replicas)"
command -v haproxy >/dev/null || fail "haproxy is not installed (Debian: apt-get install haproxy)"
etcd_url=""
if [ "$replicas" -gt 1 ]; then
  command -v etcd >/dev/null || fail "--replicas $replicas needs etcd, which is not installed (Debian: apt-get install etcd-server)"
  # Node ports are P+1 .. P+N: etcd's ports sit above them.
  [ "$nodes" -lt 1000 ] || fail "--nodes must be below 1000 with --replicas (etcd listens on P+1000 and P+1001)"
  [ $((port + 1001)) -le 65535 ] || fail "--port must be at most 64534 with --replicas (etcd listens on P+1000 and P+1001)"
  etcd_url="http://127.0.0.1:$((port + 1000))"
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
mkdir -p "$data"
proxy="http://127.0.0.1:${port}"
shard_of() { echo $(( ($1 + replicas - 1) / replicas )); }

# Pid files and cluster.json are written under one lock: supervisors start nodes
# concurrently, and a writer must not rename a file made from pids older than another's.
with_lock() { ( flock 9; "$@" ) 9> "$data/.cluster.lock"; }
write_cluster_json() {
  local tmp="$data/cluster.json.tmp" i pid shard entries=""
  for i in $(seq 1 "$nodes"); do
    pid="$(cat "$data/node-$i.pid" 2>/dev/null || true)"
    shard=null; [ "$replicas" -eq 1 ] || shard="\"$(shard_of "$i")\""
    entries+="${entries:+, }{\"id\": \"node-$i\", \"url\": \"http://127.0.0.1:$((port + i))\", \"pid\": ${pid:-null}, \"shard\": $shard}"
  done
  printf '{"proxy": "%s", "etcd": %s, "nodes": [%s]}\n' "$proxy" "$([ -n "$etcd_url" ] && echo "\"$etcd_url\"" || echo null)" "$entries" > "$tmp"
  mv -f "$tmp" "$data/cluster.json"
}
record_pid() { echo "$2" > "$data/$1.pid"; [[ "$1" != node-* ]] || write_cluster_json; }

# Runs a command (name: $1, output appended to $2 unless it is -), again a second after it
# exits, until this subshell gets SIGTERM, which it passes on before waiting for the exit.
supervise() {
  local name="$1" log="$2" pid="" stopping="" status
  shift 2
  trap 'stopping=1; [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true' TERM
  while [ -z "$stopping" ]; do
    if [ "$log" = - ]; then "$@" & else "$@" >> "$log" 2>&1 & fi
    pid=$!
    [ -z "$stopping" ] || kill -TERM "$pid" 2>/dev/null || true
    with_lock record_pid "$name" "$pid"
    announce "$name" "$pid"
    status=0
    wait "$pid" 2>/dev/null || status=$?  # (bash's own "Killed" line: the one below says it)
    # The trap ends `wait` early: wait again until the process has exited.
    while [ -n "$stopping" ] && kill -0 "$pid" 2>/dev/null; do wait "$pid" 2>/dev/null || true; done
    [ -z "$stopping" ] || break
    echo "$name exited; starting it again in 1 s (exit status $status$([ "$status" -ne 75 ] || echo ': a leader stepping down'))"
    sleep 1
  done
}
announce() {
  case "$1" in
    etcd) echo "etcd pid $2 on $etcd_url data $data/etcd log $data/etcd.log" ;;
    node-*)
      local i="${1#node-}"
      echo "$1 pid $2 on http://127.0.0.1:$((port + i)) data $data/$1$([ "$replicas" -eq 1 ] || echo " shard $(shard_of "$i")")" ;;
  esac
}

# Polls until every URL answers 2xx. When a pid in $3 (comma-separated) has exited, or after
# $2 seconds, it says so and the cluster stops. $1 says what is awaited.
wait_ready() {
  node -e '
    const [what, seconds, pids, ...urls] = process.argv.slice(1)
    const alive = (pid) => { try { process.kill(Number(pid), 0); return true } catch { return false } }
    const ready = async (url) => { try { return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok } catch { return false } }
    const deadline = Date.now() + Number(seconds) * 1000
    const wait = async () => {
      for (;;) {
        if ((await Promise.all(urls.map(ready))).every(Boolean)) return
        if (!pids.split(",").every(alive)) { console.error(`local-cluster.sh: a process exited while waiting for ${what}`); process.exit(1) }
        if (Date.now() > deadline) { console.error(`local-cluster.sh: ${what} not ready after ${seconds} s`); process.exit(1) }
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    wait()
  ' "$@" &
  waiter_pid=$!
  local status=0
  wait "$waiter_pid" || status=$?
  waiter_pid=""
  [ "$status" -eq 0 ] || { stop; exit 1; }
}

node_supervisors=()
etcd_supervisor=""
haproxy_pid=""
waiter_pid=""
stop() {
  trap - TERM INT
  local pid
  [ -z "$waiter_pid" ] || kill -TERM "$waiter_pid" 2>/dev/null || true
  [ -z "$haproxy_pid" ] || kill -TERM "$haproxy_pid" 2>/dev/null || true
  for pid in "${node_supervisors[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${node_supervisors[@]}"; do wait "$pid" 2>/dev/null || true; done
  # etcd last: a closing node revokes its lease there.
  [ -z "$etcd_supervisor" ] || kill -TERM "$etcd_supervisor" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap 'stop; exit 0' TERM INT

for i in $(seq 1 "$nodes"); do rm -f "$data/node-$i.pid"; done
rm -f "$data/etcd.pid" "$data/haproxy.pid"
with_lock write_cluster_json

if [ -n "$etcd_url" ]; then
  peer="http://127.0.0.1:$((port + 1001))"
  # In a session of its own, so that a ^C in the terminal reaches the nodes but not etcd,
  # which they still need while they stop. The --initial-* flags matter only the first time.
  # etcd grants no lease shorter than 1.5 election timeouts (2 s by default): a lone member
  # needs no election slack, and with these --lease-ttl-ms 1000 means 1 s.
  supervise etcd "$data/etcd.log" setsid etcd --name local-cluster --data-dir "$data/etcd" \
    --heartbeat-interval 50 --election-timeout 500 \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "local-cluster=$peer" &
  etcd_supervisor=$!
  wait_ready "etcd (its log: $data/etcd.log)" 30 "$etcd_supervisor" "$etcd_url/health"
fi

# The proxy's servers: one per node, or with replicas one per shard (at first its first
# node; its leader repoints it). The health backend watches every node either way.
node_servers=""
proxy_servers=""
for i in $(seq 1 "$nodes"); do
  node_servers+="  server node$i 127.0.0.1:$((port + i))"$'\n'
  proxy_servers+="  server node$i 127.0.0.1:$((port + i))$([ "$i" -le "$active" ] || echo " disabled")"$'\n'
done
if [ "$replicas" -gt 1 ]; then
  proxy_servers=""
  for s in $(seq 1 "$shards"); do proxy_servers+="  server shard-$s 127.0.0.1:$((port + (s - 1) * replicas + 1))$([ "$s" -le "$active" ] || echo " disabled")"$'\n'; done
fi
# The runtime API: a new shard leader repoints its server through it, `ringstream rebalance`
# adds and removes servers.
printf '%s\n' '# Written by deploy/local-cluster.sh: HAProxy'"'"'s runtime API (shard leaders, ringstream rebalance).' \
  'global' "  stats socket \"$data/haproxy.sock\" mode 600 level admin" > "$data/haproxy-admin.cfg"
haproxy_files=(-f "$data/haproxy.cfg" -f "$data/haproxy-admin.cfg")
# The template with its example servers replaced by these.
awk -v proxy_servers="$proxy_servers" -v node_servers="$node_servers" '
  /^backend / { backend = $2 }
  /^  # @SERVERS@/ { printf "%s", (backend == "nodes" ? proxy_servers : node_servers); skip = 1; print; next }
  skip && /^  server / { next }
  { skip = 0; print }' "$here/haproxy.cfg" > "$data/haproxy.cfg"
tls_env=()
if [ -n "$tls_port" ]; then
  command -v openssl >/dev/null || fail "--tls needs openssl to make a certificate (Debian: apt-get install openssl)"
  if ! [ -s "$data/tls.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$data/tls-key.pem" -out "$data/tls-cert.pem" 2>/dev/null \
      || fail "openssl could not make a certificate"
    chmod 600 "$data/tls-key.pem"
    (umask 077; cat "$data/tls-cert.pem" "$data/tls-key.pem" > "$data/tls.pem")
  fi
  tls_env=(RINGSTREAM_PROXY_TLS_BIND="127.0.0.1:${tls_port}" RINGSTREAM_PROXY_CERT="$data/tls.pem")
else
  # Without --tls no TLS bind, whatever the caller's environment says.
  tls_env=(-u RINGSTREAM_PROXY_TLS_BIND -u RINGSTREAM_PROXY_CERT)
fi
# Before the nodes: a shard's first leader finds the admin socket there.
env "${tls_env[@]}" RINGSTREAM_PROXY_BIND="127.0.0.1:${port}" haproxy -db "${haproxy_files[@]}" &
haproxy_pid=$!
echo "$haproxy_pid" > "$data/haproxy.pid"

# Every node knows every other (--cluster-peers: shards by commas, a shard's replicas by |),
# so a subscription sees the streams of the whole cluster; and every node signs webhooks with
# one key, so the JWK Set the proxy serves (from whichever node) verifies them all.
peers=""
for s in $(seq 1 "$shards"); do
  group=""
  for r in $(seq 1 "$replicas"); do group+="${group:+|}http://127.0.0.1:$((port + (s - 1) * replicas + r))"; done
  peers+="${peers:+,}$group"
done
signing_key="$data/webhook-signing-key.pem"
[ -s "$signing_key" ] || node -e '
  const { generateKeyPairSync } = require("node:crypto")
  const { writeFileSync } = require("node:fs")
  writeFileSync(process.argv[1], generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 })
' "$signing_key"

for i in $(seq 1 "$nodes"); do
  node_port=$((port + i))
  args=(node "$root/bin/ringstream.js" --port "$node_port" --data-dir "$data/node-$i" --cluster-url "$proxy" --node-url "http://127.0.0.1:${node_port}"
    --cluster-peers "$peers" --webhook-signing-key "$signing_key")
  if [ "$replicas" -gt 1 ]; then
    args+=(--etcd "$etcd_url" --replicas "$replicas" --shard "$(shard_of "$i")" --node-id "node-$i" --proxy-admin "$data/haproxy.sock" --proxy-backend nodes)
  fi
  supervise "node-$i" - "${args[@]}" "${extra[@]}" &
  node_supervisors+=($!)
done

pids="$(IFS=,; echo "${node_supervisors[*]},${haproxy_pid}${etcd_supervisor:+,$etcd_supervisor}")"
wait_ready "the nodes" 60 "$pids" "${proxy}/healthz" $(for i in $(seq 1 "$nodes"); do echo "http://127.0.0.1:$((port + i))/readyz"; done)
[ -z "$tls_port" ] || echo "HTTPS with HTTP/2 on https://localhost:${tls_port} (certificate $data/tls.pem)"
if [ "$replicas" -eq 1 ]; then
  echo "cluster ready on ${proxy} (${nodes} node$([ "$nodes" -eq 1 ] || echo s))"
else
  echo "cluster ready on ${proxy} (${nodes} nodes, ${shards} shards of ${replicas} replicas)"
fi

# HAProxy exiting ends the cluster.
set +e
wait "$haproxy_pid"
status=$?
stop
exit "$status"
