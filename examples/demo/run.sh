#!/usr/bin/env bash
# The governed demo: a prompt-injected agent (agent.py) run under
# agent-sidecar, in two parts.
#  1. Kernel egress: an orders API and an "attacker" listener on loopback;
#     policy.yaml allows the orders API only.
#  2. The tool gateway: an MCP tool server (the demo CRM, MCP Python SDK) at
#     https://crm.demo.test:8443/mcp, decided call by call with the tier policy
#     in policies/; the CRM credential is injected by the sidecar; an approver
#     approves the held refund with the approvals CLI; webhooks tell the owner
#     and the SOC; the owner reverses the supervised bulk update through the
#     admin API (its declared compensation).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${AGENT_SIDECAR_BIN:-target/release/agent-sidecar}
sdk_python=${DEMO_SDK_PYTHON:-.tools/venv/bin/python}
# The agent's script, where the agent's uid can read it (`cargo xtask demo`
# stages a copy when the checkout is not reachable).
agent_script=${DEMO_AGENT:-examples/demo/agent.py}
admin=127.0.0.1:18700
hooks=127.0.0.1:18701
metrics=127.0.0.1:18702
# With DEMO_PANELS=FILE.png, a real Prometheus (Debian's) scrapes the
# sidecar every second during the run, and the dashboard's panels are drawn
# from its query API into FILE.png (examples/demo/metrics_panels.py).
panels=${DEMO_PANELS:-}
prom=127.0.0.1:18790
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

if [ ! -x "$sdk_python" ]; then
    echo "run.sh: $sdk_python is missing: run \`cargo xtask setup\` (the MCP SDK venv)" >&2
    exit 1
fi
# Waits until FILE has a line starting with WORD (a server saying "ready").
wait_ready() {
    for _ in $(seq 150); do grep -q "^$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "run.sh: $3 did not start:" >&2; cat "$1" "$1.err" >&2 2>/dev/null || true; exit 1
}

# Part 1: the orders API (its own directory: nothing else is served) and the attacker.
mkdir "$work/www"
echo '[{"id": 1, "amount": 120}, {"id": 2, "amount": 4800}]' > "$work/www/orders.json"
python3 -m http.server 18181 --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 & pids+=($!)
python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18666)); s.listen(16)
while True:
    c, _ = s.accept(); print("ATTACKER RECEIVED:", c.recv(100), flush=True); c.close()
' & pids+=($!)

# Part 2: a throwaway CA and the CRM's certificate for crm.demo.test.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=agent-sidecar demo CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=crm.demo.test" -keyout "$work/crm.key" -out "$work/crm.csr" 2>/dev/null
printf '%s\n' "subjectAltName=DNS:crm.demo.test" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > "$work/crm.ext"
openssl x509 -req -in "$work/crm.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 1 -extfile "$work/crm.ext" -out "$work/crm.pem" 2>/dev/null
# The CRM (MCP SDK server over TLS); it logs each call with the headers it saw.
"$sdk_python" tests/python/mcp_server.py --host 127.0.0.1 --port 8443 \
    --cert "$work/crm.pem" --key "$work/crm.key" --log "$work/crm-calls.jsonl" \
    > "$work/crm.out" 2> "$work/crm.out.err" & pids+=($!)
# The owner's and the SOC's webhooks.
python3 tests/python/webhook_receiver.py "$hooks" "$work/hooks.jsonl" \
    > "$work/hooks.out" 2> "$work/hooks.out.err" & pids+=($!)
# The CRM credential and the admin API token: root's, mode 0600; the agent
# (uid 65534) never reads them.
mkdir -m 700 "$work/secrets"
(umask 077
 echo "crm-$(openssl rand -hex 12)" > "$work/secrets/crm-token"
 echo "admin-$(openssl rand -hex 16)" > "$work/secrets/admin-token")

if [ -n "$panels" ]; then
    command -v prometheus >/dev/null || {
        echo "run.sh: DEMO_PANELS needs Debian's prometheus: run \`cargo xtask setup\`" >&2; exit 1; }
    printf '%s\n' "global: {scrape_interval: 1s, evaluation_interval: 1s}" \
        "scrape_configs:" "  - job_name: agent-sidecar" \
        "    static_configs: [{targets: ['$metrics']}]" > "$work/prometheus.yml"
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prometheus" \
        --web.listen-address="$prom" > "$work/prometheus.log" 2>&1 & pids+=($!)
    for _ in $(seq 100); do curl -sf -o /dev/null "http://$prom/-/ready" && break; sleep 0.1; done
fi
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18181/orders.json && break; sleep 0.1; done
wait_ready "$work/crm.out" ready "the MCP tool server"
wait_ready "$work/hooks.out" ready "the webhook receiver"

# The approver: waits for the held refund, then approves it with the CLI.
approver() {
    local cli=("$bin" approvals --log warn)
    local auth=(--url "http://$admin" --token-file "$work/secrets/admin-token")
    for _ in $(seq 300); do
        id=$("${cli[@]}" list --json "${auth[@]}" 2>/dev/null | python3 -c \
            'import json, sys; a = json.load(sys.stdin); print(a[0]["id"] if a else "")' 2>/dev/null || true)
        if [ -n "$id" ]; then
            echo "    approver\$ agent-sidecar approvals list"
            "${cli[@]}" list "${auth[@]}" 2>&1 | sed 's/^/      /'
            echo "    approver\$ agent-sidecar approvals approve $id --approver finance@demo.test --reason 'refund agreed with the customer'"
            "${cli[@]}" approve "$id" --approver finance@demo.test \
                --reason "refund agreed with the customer" "${auth[@]}" 2>&1 | sed 's/^/      /'
            return
        fi
        sleep 0.2
    done
}
approver & pids+=($!)
# The owner: reads the supervised bulk update's notice and reverses it
# through the admin API (the compensating MCP tool, once).
owner() {
    for _ in $(seq 300); do
        id=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "action.supervised" and e.get("compensation"):
        print(e["compensation"]["id"]); break' "$work/hooks.jsonl" 2>/dev/null || true)
        if [ -n "$id" ]; then
            echo "    owner\$ curl -X POST http://$admin/v1/compensations/$id/trigger -d '{\"status\": \"active\"}'"
            curl -sS -m 10 -X POST -H "authorization: Bearer $(cat "$work/secrets/admin-token")" \
                -d '{"status": "active"}' "http://$admin/v1/compensations/$id/trigger" 2>&1 \
                | python3 -c 'import json, sys; a = json.load(sys.stdin); print("      upstream", a.get("upstream_status"), json.dumps(a.get("answer", a).get("structuredContent", a)))' \
                2>&1 || echo "      the trigger failed"
            return
        fi
        sleep 0.1
    done
}
owner & pids+=($!)

echo "== the attacker listener is reachable from outside the agent's cgroup:"
curl -s -m 2 -o /dev/null -d probe http://127.0.0.1:18666/ || true
sleep 0.2
echo
echo "== the agent, under: $bin run --policy examples/demo/policy.yaml --policy-dir examples/demo/policies"
echo "     --agent-id demo-agent --static-host crm.demo.test=127.0.0.1 --secret crm-token=file:..."
echo "     --intercept-ports 8443 --no-proxy-env (+ upstream CA, admin API, webhooks) -- python3 examples/demo/agent.py"
echo "   (the sidecar's log: $work/sidecar.log, summed up below)"
# Only the tool port goes to the sidecar's proxy (the gateway): every other
# TCP connect is the kernel's to allow or refuse, as in part 1.
rc=0
started=$(date +%s)
"$bin" --log-format json run --policy examples/demo/policy.yaml --policy-dir examples/demo/policies \
    --agent-id demo-agent --state-dir "$work/state" \
    --static-host crm.demo.test=127.0.0.1 --intercept-ports 8443 --no-proxy-env \
    --secret "crm-token=file:$work/secrets/crm-token" --upstream-ca "$work/ca.pem" \
    --admin-listen "$admin" --admin-token-file "$work/secrets/admin-token" \
    --metrics-listen "$metrics" \
    --owner-webhook "http://$hooks/owner" --soc-webhook "http://$hooks/soc" \
    --baseline-dir "$work/baselines" \
    --pass-env DEMO_SDK_PYTHON \
    -- python3 "$agent_script" 2> "$work/sidecar.log" || rc=$?
sleep 0.5 # the last webhooks
if [ -n "$panels" ]; then
    echo
    echo "== Prometheus scraped the sidecar during the run; the dashboard's panels from its query API:"
    "$sdk_python" examples/demo/metrics_panels.py "http://$prom" "$started" "$(date +%s)" \
        demo-agent deploy/grafana/agent-sidecar.json "$panels" | sed 's/^/  /'
fi

echo
echo "== the sidecar's log, summed up:"
python3 - "$work/sidecar.log" <<'PY'
import collections, json, sys
denied, lines = collections.Counter(), []
for raw in open(sys.argv[1], errors="replace"):
    try:
        e = json.loads(raw)
    except ValueError:
        lines.append("  " + raw.rstrip())
        continue
    msg = e.get("message", "")
    if msg == "egress denied":
        denied[(e.get("hook"), e.get("reason"), e.get("destination"), e.get("comm"))] += 1
    elif msg == "compensation triggered":
        lines.append(f"  gateway: {e.get('tool')}.{e.get('action')}: the owner's compensation -> {e.get('status')}")
    elif msg == "tool call":
        lines.append(f"  gateway: {e.get('tool')}.{e.get('action')}: {e.get('tier')} -> "
                     f"{e.get('outcome')} {e.get('reason') or e.get('upstream_status')}")
    elif e.get("level") in ("WARN", "ERROR") or msg in ("agent exited", "kernel enforcement removed"):
        lines.append(f"  {e.get('level').lower()}: {msg} {e.get('reason') or ''}".rstrip())
packets = collections.Counter()
for (hook, reason, dest, comm), n in denied.items():
    if hook == "egress":  # packets of connections already open
        packets[reason] += n
        continue
    lines.append(f"  kernel: denied {hook} {dest} ({reason}) for {comm}" + (f", x{n}" if n > 1 else ""))
for reason, n in packets.items():
    lines.append(f"  kernel: dropped {n} packets of already open connections ({reason})")
print("\n".join(lines))
PY
[ "$rc" -eq 0 ] || { echo "== the agent exited $rc; the sidecar's log ends:"; tail -n 20 "$work/sidecar.log"; }

echo
echo "== what the CRM received (the Authorization header is the sidecar's: the agent never had the token):"
python3 - "$work/crm-calls.jsonl" "$work/secrets/crm-token" <<'PY'
import json, sys
secret = open(sys.argv[2]).read().strip()
calls = [json.loads(l) for l in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
for c in calls:
    auth = c.get("authorization") or "(none)"
    scheme, _, token = auth.partition(" ")
    shown = f"{scheme} {token[:4]}***" if token else auth
    injected = "the crm-token secret" if token == secret else "NOT the crm-token secret"
    print(f"  {c['tool']:17} {json.dumps(c['arguments'])}  Authorization: {shown} ({injected})")
print(f"  {len(calls)} calls; delete_customer and export_customers never reached the CRM;"
      " restore_customers is the owner's reversal of the bulk update")
PY
echo "== webhook notices:"
python3 - "$work/hooks.jsonl" <<'PY'
import json, os, sys
events = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
for e in events:
    a, d = e.get("action") or {}, e.get("decision") or {}
    what = f"{a.get('tool', '?')}.{a.get('action', '?')}"
    extra = f", quarantined: {str(e.get('quarantined')).lower()}" if "quarantined" in e else ""
    rules = ", ".join(r.get("id", "?") if isinstance(r, dict) else str(r) for r in d.get("rules") or [])
    print(f"  {e.get('_path'):7} {e.get('event'):18} {what:16} tier {d.get('tier')} ({rules}){extra}")
PY
exit "$rc"
