#!/usr/bin/env bash
# test/node-versions.sh — the whole conformance suite (memory; buffered and fsync on io_uring
# and on node:fs) and the SIGKILL crash tests under each Node major users run besides the
# machine's own, from the npm `node` package (installed once per major under $RINGSTREAM_NODE_DIR). With this
# machine's glibc 2.36, Node 24 and 26 have no uWebSockets.js build that loads, so these runs
# exercise the node:http fallback for real; Node 22 runs on uws-pack. .ci/run calls it.
#
#   test/node-versions.sh [MAJOR ...]        default: 22 24 26
set -euo pipefail
cd "$(dirname "$0")/.."
majors=("$@")
[ ${#majors[@]} -eq 0 ] && majors=(22 24 26)
base="${RINGSTREAM_NODE_DIR:-${TMPDIR:-/tmp}/ringstream-node}"
for major in "${majors[@]}"; do
  prefix="$base/$major"
  if [ ! -x "$prefix/node_modules/.bin/node" ]; then
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --no-save "node@$major" >/dev/null
  fi
  node_bin="$prefix/node_modules/.bin/node"
  echo "== Node $("$node_bin" --version)"
  PATH="$(dirname "$node_bin"):$PATH" "$node_bin" node_modules/vitest/vitest.mjs run \
    test/conformance-memory.test.ts test/conformance-buffered.test.ts test/conformance-buffered-fs.test.ts \
    test/conformance-fsync.test.ts test/conformance-fsync-fs.test.ts test/crash
done
