"""Offline checks of the Kubernetes deployment, run by tests/tests/kubernetes.rs.

  k8s_check.py validate --k8s-version 1.33.0 --out OBJECTS.json FILE...
      Validates every object of the YAML/JSON files against the Kubernetes
      OpenAPI schemas of that version with kubernetes-validate, strict (an
      unknown field is an error). Kinds of CRDs the validator has no schema
      for are skipped only if listed in SKIPPABLE (cert-manager, Prometheus
      Operator); any other kind without a schema is an error, so that a
      misspelt kind or apiVersion fails. Writes every object with its result
      to OBJECTS.json; exits 1 if any object failed.

  k8s_check.py cel POLICY.yaml POD.json...
      Evaluates the ValidatingAdmissionPolicy of POLICY.yaml (its variables,
      then its validations) on each pod with cel-python and prints one JSON
      line per pod: {"pod": FILE, "denied": [messages]}.

  k8s_check.py dockerfile DOCKERFILE
      Parses the Dockerfile with BuildKit's parser (PyPI `dockerfile`) and
      prints its stages and instructions as JSON.
"""

import argparse
import json
import sys

import yaml

# (apiVersion group, kind) of CRDs that kubernetes-validate has no schema for.
SKIPPABLE = {
    ("cert-manager.io", "Issuer"),
    ("cert-manager.io", "ClusterIssuer"),
    ("cert-manager.io", "Certificate"),
    ("monitoring.coreos.com", "PodMonitor"),
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("monitoring.coreos.com", "PrometheusRule"),
}


def load_objects(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        docs = [json.loads(text)]
    else:
        docs = list(yaml.safe_load_all(text))
    out = []
    for doc in docs:
        if doc is None:
            continue
        if doc.get("kind") == "List":
            out.extend(doc.get("items", []))
        else:
            out.append(doc)
    return out


def validate(args):
    import kubernetes_validate

    results = []
    failed = 0
    for path in args.files:
        for obj in load_objects(path):
            api = obj.get("apiVersion", "")
            group = api.split("/")[0] if "/" in api else ""
            kind = obj.get("kind", "")
            name = (obj.get("metadata") or {}).get("name", "")
            entry = {"file": path, "apiVersion": api, "kind": kind, "name": name, "object": obj}
            try:
                kubernetes_validate.validate(obj, args.k8s_version, strict=True)
                entry["result"] = "valid"
            except kubernetes_validate.SchemaNotFoundError as e:
                if (group, kind) in SKIPPABLE:
                    entry["result"] = "skipped"
                    entry["reason"] = f"no schema for CRD {api} {kind} in kubernetes-validate"
                else:
                    entry["result"] = "invalid"
                    entry["reason"] = f"no schema for {api} {kind} in Kubernetes {args.k8s_version}: a misspelt kind or apiVersion, or a CRD not in SKIPPABLE"
            except kubernetes_validate.ValidationError as e:
                where = "/".join(str(p) for p in e.path)
                entry["result"] = "invalid"
                entry["reason"] = f"{where}: {e.message}"
            except Exception as e:  # noqa: BLE001 - reported, and fails the run
                entry["result"] = "invalid"
                entry["reason"] = f"{type(e).__name__}: {e}"
            if entry["result"] == "invalid":
                failed += 1
            print(f"{entry['result']:8} {api} {kind}/{name} ({path})"
                  + (f": {entry['reason']}" if "reason" in entry else ""))
            results.append(entry)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(results, f)
    if failed:
        print(f"{failed} object(s) invalid against Kubernetes {args.k8s_version}", file=sys.stderr)
        return 1
    return 0


def cel(args):
    import celpy

    policies = [o for o in load_objects(args.policy) if o.get("kind") == "ValidatingAdmissionPolicy"]
    if len(policies) != 1:
        print(f"{args.policy}: expected one ValidatingAdmissionPolicy, found {len(policies)}", file=sys.stderr)
        return 2
    spec = policies[0]["spec"]
    env = celpy.Environment()

    def run(expr, activation):
        program = env.program(env.compile(expr))
        return program.evaluate(activation)

    for path in args.pods:
        with open(path, encoding="utf-8") as f:
            pod = json.load(f)
        activation = {"object": celpy.json_to_cel(pod), "variables": celpy.json_to_cel({})}
        variables = {}
        for var in spec.get("variables", []):
            variables[var["name"]] = run(var["expression"], activation)
            activation["variables"] = celpy.celtypes.MapType(
                {celpy.celtypes.StringType(k): v for k, v in variables.items()})
        denied = []
        for check in spec["validations"]:
            result = run(check["expression"], activation)
            if isinstance(result, celpy.CELEvalError):
                denied.append(f"evaluation error: {result}")
            elif not bool(result):
                if "messageExpression" in check:
                    denied.append(str(run(check["messageExpression"], activation)))
                else:
                    denied.append(check["message"])
        print(json.dumps({"pod": path, "denied": denied}))
    return 0


def dockerfile_cmd(args):
    import dockerfile

    out = []
    for c in dockerfile.parse_file(args.dockerfile):
        out.append({"cmd": c.cmd.upper(), "flags": list(c.flags), "value": list(c.value),
                    "line": c.start_line})
    print(json.dumps(out))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("validate")
    v.add_argument("--k8s-version", required=True)
    v.add_argument("--out", required=True)
    v.add_argument("files", nargs="+")
    c = sub.add_parser("cel")
    c.add_argument("policy")
    c.add_argument("pods", nargs="+")
    d = sub.add_parser("dockerfile")
    d.add_argument("dockerfile")
    args = parser.parse_args()
    return {"validate": validate, "cel": cel, "dockerfile": dockerfile_cmd}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
