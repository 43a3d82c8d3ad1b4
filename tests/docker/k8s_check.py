"""Offline checks of the Kubernetes manifests in deploy/k8s (no cluster is reached).

    k8s_check.py ROOT        (ctest: deploy_k8s_manifests)

What it checks, by reading the YAML (python3-yaml) - not a Kubernetes schema
validation, which needs a cluster's OpenAPI document or a tool Debian does not ship:

- every file parses; every document has apiVersion, kind and metadata.name, with the
  apiVersion its kind has in Kubernetes 1.2x; kustomization.yaml lists exactly the
  other files;
- workloads: the selector's labels are on the pod template; every volumeMount names
  a volume; every $(VAR) in an env value names a variable defined before it in the
  container; every probe's named port is a container port; every image is one
  kustomization.yaml maps;
- Services: the selector matches a workload's pods; a named targetPort is a port of
  those pods; a StatefulSet's serviceName is a headless Service;
- Barista's settings: every BARISTA_* variable is one the sources read (the gateway's
  and worker's options, deploy/postgres.sh); every worker's BARISTA_CONNECT names each
  gateway pod (gateway-N.<serviceName>) on the broker port, and the PostgreSQL
  databases include each gateway pod's job queue;
- with kubectl installed, `kubectl kustomize` renders the directory offline into the
  same number of documents, each in the namespace barista.

Exit status 0 when all holds; otherwise every problem on stderr and 1.
"""

import glob
import os
import re
import shutil
import subprocess
import sys

import yaml

API = {"Namespace": "v1", "Service": "v1", "Secret": "v1", "ConfigMap": "v1",
       "Deployment": "apps/v1", "StatefulSet": "apps/v1"}
problems = []


def problem(fmt, *args):
    problems.append(fmt % args)


def sources_text(root):
    """The text of the files that read Barista's environment variables."""
    text = []
    for pattern in ("gateway/src/**/*.c", "workers/src/**/*.c", "workers/services/**/*.c",
                    "deploy/*.sh"):
        for path in glob.glob(os.path.join(root, pattern), recursive=True):
            with open(path, encoding="utf-8", errors="replace") as f:
                text.append(f.read())
    return "\n".join(text)


def pod_ports(pod):
    return {p["name"]: p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])
            if "name" in p}


def check_workload(doc, images, sources):
    name = doc["metadata"]["name"]
    spec = doc["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    for k, v in spec["selector"]["matchLabels"].items():
        if labels.get(k) != v:
            problem("%s: selector %s=%s is not on its pod template", name, k, v)
    pod = spec["template"]["spec"]
    volumes = {v["name"] for v in pod.get("volumes", [])}
    volumes |= {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    ports = pod_ports(pod)
    for c in pod["containers"]:
        if c.get("image") not in images:
            problem("%s/%s: image %r is not mapped in kustomization.yaml", name, c["name"],
                    c.get("image"))
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problem("%s/%s: volumeMount %s has no volume", name, c["name"], m["name"])
        defined = set()
        for e in c.get("env", []):
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", str(e.get("value", ""))):
                if ref not in defined:
                    problem("%s/%s: %s uses $(%s) before it is defined", name, c["name"],
                            e["name"], ref)
            defined.add(e["name"])
            if e["name"].startswith("BARISTA_") and \
                    not re.search(r"\b%s\b" % re.escape(e["name"]), sources):
                problem("%s/%s: no source reads %s", name, c["name"], e["name"])
        for probe in ("livenessProbe", "readinessProbe"):
            port = c.get(probe, {}).get("httpGet", {}).get("port")
            if isinstance(port, str) and port not in ports:
                problem("%s/%s: %s port %s is not a container port", name, c["name"], probe, port)
    return labels, ports


def env_of(doc):
    return {e["name"]: e.get("value") for c in doc["spec"]["template"]["spec"]["containers"]
            for e in c.get("env", [])}


def main(root):
    kdir = os.path.join(root, "deploy", "k8s")
    files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(kdir, "*.yaml")))
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    listed = sorted(kust.get("resources", []))
    if listed != sorted(set(files) - {"kustomization.yaml"}):
        problem("kustomization.yaml lists %s; the directory has %s", listed, files)
    images = {i["name"] for i in kust.get("images", [])}

    docs = []
    for name in listed:
        with open(os.path.join(kdir, name)) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                for key in ("apiVersion", "kind"):
                    if key not in doc:
                        problem("%s: a document without %s", name, key)
                if not doc.get("metadata", {}).get("name"):
                    problem("%s: a %s without metadata.name", name, doc.get("kind"))
                elif API.get(doc.get("kind")) != doc.get("apiVersion"):
                    problem("%s: %s %s has apiVersion %s, not %s", name, doc.get("kind"),
                            doc["metadata"]["name"], doc.get("apiVersion"), API.get(doc.get("kind")))
                docs.append(doc)
    if problems:
        return

    sources = sources_text(root)
    workloads = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            workloads[doc["metadata"]["name"]] = (doc,) + check_workload(doc, images, sources)
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name, svc in services.items():
        sel = svc["spec"].get("selector", {})
        matched = [w for w in workloads.values() if all(w[1].get(k) == v for k, v in sel.items())]
        if not matched:
            problem("Service %s: its selector %s matches no workload's pods", name, sel)
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort")
            if isinstance(target, str) and not any(target in w[2] for w in matched):
                problem("Service %s: targetPort %s is not a port of its pods", name, target)
    for doc, _, _ in workloads.values():
        if doc["kind"] == "StatefulSet":
            svc = services.get(doc["spec"]["serviceName"])
            if svc is None or svc["spec"].get("clusterIP") != "None":
                problem("StatefulSet %s: serviceName %s is not a headless Service",
                        doc["metadata"]["name"], doc["spec"]["serviceName"])

    # Every worker names every gateway pod; every gateway pod has its job queue.
    gw = workloads.get("gateway")
    if gw is None or gw[0]["kind"] != "StatefulSet":
        problem("no StatefulSet gateway")
        return
    replicas, brokers = gw[0]["spec"]["replicas"], gw[0]["spec"]["serviceName"]
    broker_port = gw[2].get("broker")
    want = ["tcp://gateway-%d.%s:%s" % (i, brokers, broker_port) for i in range(replicas)]
    for name, (doc, _, _) in workloads.items():
        env = env_of(doc)
        if "BARISTA_SERVICES" in env and sorted(env.get("BARISTA_CONNECT", "").split(",")) != want:
            problem("%s: BARISTA_CONNECT %r is not every gateway pod %s", name,
                    env.get("BARISTA_CONNECT"), want)
    pg = env_of(workloads["postgres"][0]).get("BARISTA_PG_DATABASES", "").split()
    queue = env_of(gw[0]).get("BARISTA_JOBS_DB", "")
    for i in range(replicas):
        db = queue.rsplit("/", 1)[-1].replace("$(POD_NAME)", "gateway-%d" % i)
        if db not in pg:
            problem("the job queue %s of gateway-%d is not among the databases %s", db, i, pg)

    kubectl = shutil.which("kubectl")
    if kubectl:
        r = subprocess.run([kubectl, "kustomize", kdir], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            problem("kubectl kustomize: %s", r.stderr.strip())
        else:
            rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
            if len(rendered) != len(docs):
                problem("kubectl kustomize rendered %d documents, not %d", len(rendered), len(docs))
            for d in rendered:
                if d["kind"] != "Namespace" and d["metadata"].get("namespace") != "barista":
                    problem("rendered %s %s is not in namespace barista", d["kind"],
                            d["metadata"]["name"])
    if not problems:
        print("k8s_check: %d documents in %d files checked%s" % (
            len(docs), len(listed), ", rendered by kubectl kustomize" if kubectl else
            " (kubectl not installed: not rendered)"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    for p in problems:
        print("k8s_check: " + p, file=sys.stderr)
    sys.exit(1 if problems else 0)
