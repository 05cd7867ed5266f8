#!/usr/bin/env bash
# The governed demo: a tool API and an "attacker" listener on loopback, and a
# prompt-injected agent (agent.py) run under agent-sidecar with policy.yaml.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${AGENT_SIDECAR_BIN:-target/release/agent-sidecar}
work=$(mktemp -d)
chmod 755 "$work"
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT

echo '[{"id": 1, "amount": 120}, {"id": 2, "amount": 4800}]' > "$work/orders.json"
python3 -m http.server 18181 --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 & pids+=($!)
python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18666)); s.listen(16)
while True:
    c, _ = s.accept(); print("ATTACKER RECEIVED:", c.recv(100), flush=True); c.close()
' & pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18181/orders.json && break; sleep 0.1; done

echo "== the attacker listener is reachable from outside the agent's cgroup:"
curl -s -m 2 -o /dev/null -d probe http://127.0.0.1:18666/ || true
sleep 0.2
echo
echo "== the agent, under: $bin run --policy examples/demo/policy.yaml --agent-id demo-agent -- python3 examples/demo/agent.py"
"$bin" run --policy examples/demo/policy.yaml --agent-id demo-agent -- python3 examples/demo/agent.py
