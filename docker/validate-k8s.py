#!/usr/bin/python3
"""Validate Kubernetes manifests against the Kubernetes API schema, offline.

    docker/validate-k8s.py --kustomize docker/k8s
    kubectl kustomize docker/k8s | docker/validate-k8s.py -
    docker/validate-k8s.py FILE...

The schema is the one Debian's python3-kubernetes package carries: its
models are generated from the Kubernetes OpenAPI specification, each with
the field names (attribute_map), the field types (openapi_types) and the
required fields (the constructor rejects a missing one). Every object is
walked against them: an unknown field (a typo, a field in the wrong
place), a value of the wrong type or a missing required field is an error.
Exit 1 with one line per error, 0 when every document validates.

--kustomize DIR renders DIR's kustomization.yaml itself, for machines
whose kubectl is too old for it (Debian 12's 1.20 cannot read an integer
field into a var): its resources, with each of its vars (objref + fieldref)
substituted for $(NAME) in the containers' command, args and env values,
as kustomize does. Where a kubectl with kustomize v4+ exists, prefer
piping `kubectl kustomize DIR` in; the test suite checks both agree.
"""

import datetime
import os
import re
import sys

import kubernetes.client as k8s
import yaml

# apiVersion -> the python client's version prefix, for the kinds we use.
GROUPS = {"v1": "V1", "batch/v1": "V1", "apps/v1": "V1"}


def model_for(doc):
    prefix = GROUPS.get(doc.get("apiVersion"))
    cls = getattr(k8s, "%s%s" % (prefix, doc.get("kind")), None) if prefix else None
    return cls


def check(value, typ, where, errors):
    """Check value against an openapi_types type string; return the value
    converted for the model's constructor."""
    if value is None:
        return None
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            errors.append("%s: want a list, got %r" % (where, value))
            return None
        return [check(v, m.group(1), "%s[%d]" % (where, i), errors) for i, v in enumerate(value)]
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            errors.append("%s: want a map, got %r" % (where, value))
            return None
        return {k: check(v, m.group(1), "%s.%s" % (where, k), errors) for k, v in value.items()}
    simple = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if typ in simple:
        ok = isinstance(value, simple[typ]) and not (typ == "int" and isinstance(value, bool))
        if not ok:
            errors.append("%s: want %s, got %r" % (where, typ, value))
        return value
    if typ in ("object", "datetime", "date"):
        if typ != "object" and not isinstance(value, (str, datetime.date)):
            errors.append("%s: want a timestamp, got %r" % (where, value))
        return value
    cls = getattr(k8s, typ, None)
    if cls is None:
        errors.append("%s: schema type %s unknown to this client" % (where, typ))
        return value
    return check_model(value, cls, where, errors)


def check_model(value, cls, where, errors):
    if not isinstance(value, dict):
        errors.append("%s: want an object (%s), got %r" % (where, cls.__name__, value))
        return None
    by_json = {j: a for a, j in cls.attribute_map.items()}
    kwargs = {}
    for key, v in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append("%s.%s: no such field in %s" % (where, key, cls.__name__))
            continue
        kwargs[attr] = check(v, cls.openapi_types[attr], "%s.%s" % (where, key), errors)
    try:
        cls(**kwargs)
    except (ValueError, TypeError) as e:
        errors.append("%s: %s" % (where, e))
    return kwargs


def field(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def kustomize(d):
    """DIR's resources with its vars substituted (see the module doc)."""
    with open(os.path.join(d, "kustomization.yaml")) as f:
        kz = yaml.safe_load(f)
    docs = []
    for r in kz.get("resources") or []:
        with open(os.path.join(d, r)) as f:
            docs += [x for x in yaml.safe_load_all(f) if x]
    values = {}
    for v in kz.get("vars") or []:
        ref = v["objref"]
        src = [x for x in docs if x.get("kind") == ref["kind"] and x.get("apiVersion") == ref.get("apiVersion")
               and (x.get("metadata") or {}).get("name") == ref["name"]]
        val = field(src[0], v["fieldref"]["fieldpath"]) if src else None
        if val is None:
            raise SystemExit("validate-k8s: var %s: %s not found" % (v["name"], v["fieldref"]["fieldpath"]))
        values[v["name"]] = str(val)

    def subst(x):
        return re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), x)
    for x in docs:
        for c in field(x, "spec.template.spec.containers") or []:
            for key in ("command", "args"):
                if key in c:
                    c[key] = [subst(a) for a in c[key]]
            for e in c.get("env") or []:
                if "value" in e:
                    e["value"] = subst(e["value"])
    return yaml.safe_dump_all(docs)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "--kustomize" and len(argv) == 3:
        rendered = kustomize(argv[2])
        if os.environ.get("STLS_PRINT_RENDERED"):
            sys.stdout.write(rendered)
            return 0
        sources = [(argv[2], rendered)]
    else:
        sources = [(p, sys.stdin.read() if p == "-" else open(p).read()) for p in argv[1:]]
    errors, count = [], 0
    for path, text in sources:
        for i, doc in enumerate(yaml.safe_load_all(text)):
            if doc is None:
                continue
            where = "%s#%d %s/%s" % (path, i, doc.get("kind"), (doc.get("metadata") or {}).get("name"))
            cls = model_for(doc)
            if cls is None:
                errors.append("%s: apiVersion %s kind %s unknown to this validator"
                              % (where, doc.get("apiVersion"), doc.get("kind")))
                continue
            check_model(doc, cls, where, errors)
            count += 1
    for e in errors:
        print("invalid: " + e)
    if not count:
        print("invalid: no Kubernetes object found")
        return 1
    print("%d object(s) checked against the Kubernetes %s API schema (python3-kubernetes %s): %s"
          % (count, "v1.%s" % k8s.__version__.split(".")[0], k8s.__version__,
             "ok" if not errors else "%d error(s)" % len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
