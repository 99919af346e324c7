#!/usr/bin/env python3
"""Splits a rendered kustomize overlay for scripts/deploy.sh (PyYAML; no cluster needed).

    manifests.py images RENDERED
        the distinct image names (without tag or digest) of every container, one per line
    manifests.py split RENDERED OUTDIR SUFFIX CANARY_REPLICAS [IMAGE]
        OUTDIR/jobs.yaml         the Jobs (migrations), each renamed <name>-<SUFFIX> so a release
                                 runs its own Job once (Jobs are immutable; a re-run finds it done)
        OUTDIR/main.yaml         everything else, in kustomize's order (Namespaces first)
        OUTDIR/namespaces.yaml   the Namespaces alone
        OUTDIR/canary.yaml       per Deployment running IMAGE a copy <name>-canary with CANARY_REPLICAS replicas
                                 and the label track=canary (same app labels, so its Service sends
                                 it a share of the traffic)
        OUTDIR/deployments.txt   "<namespace> <name>" per Deployment
        OUTDIR/app-deployments.txt  the same for the Deployments running IMAGE (Emporium's own,
                                 not the dev overlay's Redis or RabbitMQ)
        OUTDIR/job-<name>.yaml   each Job alone
        OUTDIR/jobs.txt          "<namespace> <name>" per Job (after renaming)
"""
import copy
import sys

import yaml


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def image_name(ref):
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        ref = ref[: ref.rfind(":")]
    return ref


def pod_spec(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return (spec.get("template") or {}).get("spec") or {}
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
    if kind == "Pod":
        return spec
    return {}


def images(docs):
    seen = []
    for d in docs:
        spec = pod_spec(d)
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            name = image_name(c.get("image", ""))
            if name and name not in seen:
                seen.append(name)
    return seen


def dump(path, docs):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(docs, f, sort_keys=False)


def split(docs, outdir, suffix, canary_replicas, image=None):
    jobs, main, canaries, deployments, job_names, app = [], [], [], [], [], []
    for d in docs:
        meta = d.setdefault("metadata", {})
        ns = meta.get("namespace", "default")
        if d.get("kind") == "Job":
            base = meta["name"][: 62 - len(suffix)]
            meta["name"] = f"{base}-{suffix}"
            jobs.append(d)
            dump(f"{outdir}/job-{meta['name']}.yaml", [d])
            job_names.append(f"{ns} {meta['name']}")
            continue
        main.append(d)
        if d.get("kind") == "Deployment":
            deployments.append(f"{ns} {meta['name']}")
            spec = pod_spec(d)
            if image is None or image not in [c.get("image") for c in spec.get("containers") or []]:
                continue
            app.append(f"{ns} {meta['name']}")
            c = copy.deepcopy(d)
            c["metadata"]["name"] = meta["name"][:56] + "-canary"
            c["metadata"].setdefault("labels", {})["track"] = "canary"
            c["metadata"].setdefault("annotations", {})["emporium.io/canary-of"] = meta["name"]
            spec = c["spec"]
            spec["replicas"] = canary_replicas
            spec.setdefault("selector", {}).setdefault("matchLabels", {})["track"] = "canary"
            spec["template"].setdefault("metadata", {}).setdefault("labels", {})["track"] = "canary"
            canaries.append(c)
    dump(f"{outdir}/jobs.yaml", jobs)
    dump(f"{outdir}/namespaces.yaml", [d for d in main if d.get("kind") == "Namespace"])
    dump(f"{outdir}/main.yaml", main)
    dump(f"{outdir}/canary.yaml", canaries)
    with open(f"{outdir}/deployments.txt", "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in deployments)
    with open(f"{outdir}/app-deployments.txt", "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in app)
    with open(f"{outdir}/jobs.txt", "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in job_names)


def main(argv):
    if len(argv) >= 2 and argv[0] == "images":
        print("\n".join(images(load(argv[1]))))
    elif len(argv) in (5, 6) and argv[0] == "split":
        split(load(argv[1]), argv[2], argv[3], int(argv[4]), argv[5] if len(argv) == 6 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
