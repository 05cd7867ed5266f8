"""Parses a Prometheus text exposition with prometheus_client's parser (the
format Prometheus scrapes) and checks the sidecar's naming rules: every
family named agent_sidecar_*, counter samples ending in _total, histograms
of durations named *_duration_seconds, every sample labelled with the
agent's id. Prints one JSON object: the families (name -> type, sample
count) and the rule violations (empty when all hold).

Usage: metrics_check.py FILE AGENT_ID"""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
agent = sys.argv[2]

families = {}
values = {}
violations = []
for fam in text_string_to_metric_families(text):
    families[fam.name] = {"type": fam.type, "samples": len(fam.samples)}
    if not fam.name.startswith("agent_sidecar_"):
        violations.append(f"{fam.name}: not prefixed agent_sidecar_")
    if fam.type == "histogram" and not fam.name.endswith("_duration_seconds"):
        violations.append(f"{fam.name}: a histogram not named *_duration_seconds")
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        values[f"{s.name}{{{labels}}}"] = s.value
        if fam.type == "counter" and not (
            s.name.endswith("_total") or s.name.endswith("_created")
        ):
            violations.append(f"{s.name}: a counter sample not ending in _total")
        if s.labels.get("agent_id") != agent:
            violations.append(f"{s.name}{s.labels}: agent_id is not {agent}")
print(json.dumps({"families": families, "values": values, "violations": violations}))
