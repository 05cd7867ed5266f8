"""Draws panels of the Grafana dashboard (deploy/grafana/agent-sidecar.json)
from a real Prometheus that scraped the sidecar during the demo: each
panel's queries are asked of Prometheus's HTTP API (/api/v1/query_range)
and plotted with matplotlib into one PNG. The run lasts seconds, so
counters are drawn cumulative instead of as rates over minutes.

Usage: metrics_panels.py PROMETHEUS_URL START END AGENT_ID DASHBOARD OUT.png

START and END are Unix times; the step is 1 s."""

import json
import re
import sys
import urllib.parse
import urllib.request

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

url, start, end, agent, dash_path, out = sys.argv[1:7]
PANELS = [
    "Tool calls by outcome",
    "Egress refused by the kernel, by reason",
    "Kernel decisions",
    "Quarantined",
    "Readiness checks (1 = holds)",
    "Deliveries per sink and outcome",
    "Kernel map occupancy",
    "Tool call p99 by tier (approval waits included)",
    "Sidecar memory (resident)",
]
dash = json.load(open(dash_path, encoding="utf-8"))
panels = {p["title"]: p for p in dash["panels"]}
# The dashboard's rates are over minutes, for a fleet; the demo's run lasts
# seconds: its counters are drawn as they are (cumulative).
CUMULATIVE = re.compile(r"(?:rate|increase)\((agent_sidecar_[a-z_]+\{[^}]*\})\[\d+[smh]\]\)")


def query(expr):
    expr = CUMULATIVE.sub(r"\1", expr.replace("$agent_id", agent))
    q = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "1"})
    with urllib.request.urlopen(f"{url}/api/v1/query_range?{q}", timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise SystemExit(f"{expr}: {body}")
    return body["data"]["result"]


def legend(fmt, metric):
    for k, v in metric.items():
        fmt = fmt.replace("{{%s}}" % k, v)
    return fmt.replace(agent + " ", "")


fig, axes = plt.subplots(3, 3, figsize=(15, 10))
t0 = float(start)
series_drawn = 0
for ax, title in zip(axes.flat, PANELS):
    p = panels[title]
    for t in p["targets"]:
        for s in query(t["expr"]):
            xs = [float(v[0]) - t0 for v in s["values"]]
            ys = [float(v[1]) for v in s["values"]]
            ax.plot(xs, ys, label=legend(t.get("legendFormat", ""), s["metric"]))
            series_drawn += 1
    cumulative = any(CUMULATIVE.search(t["expr"]) for t in p["targets"])
    ax.set_title(title + (" (cumulative)" if cumulative else ""), fontsize=10)
    ax.set_xlabel("seconds into the demo", fontsize=8)
    ax.tick_params(labelsize=8)
    if ax.lines:
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no series", ha="center", va="center", transform=ax.transAxes)
fig.suptitle(
    f"agent-sidecar demo ({agent}): dashboard panels from Prometheus's query API", fontsize=12
)
fig.tight_layout()
fig.savefig(out, dpi=80)
print(json.dumps({"series": series_drawn, "out": out}))
