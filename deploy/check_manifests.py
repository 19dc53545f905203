#!/usr/bin/env python3
"""Checks of the deploy files that a schema cannot make.

`kubernetes-validate` proves that every rendered object is well formed; this script proves that
the objects fit Holidapp and each other:

* every environment variable a Kubernetes container, a ConfigMap, the compose file or the
  Dockerfile sets is one the binary that receives it accepts (read from `--help`, where clap
  prints `[env: NAME=...]`), so renaming a variable breaks CI rather than a deployment; a
  variable the binary does not read is allowed only when the container's own `$(NAME)`
  references use it (Kubernetes expands them, as this script does before checking values);
* references resolve: ConfigMap and Secret references, Service selectors and named ports, the
  StatefulSet's headless Service, the Redis host naming a Service (never an IP address);
* every pod meets the "restricted" Pod Security Standard, has resource requests and limits, and
  writes only to mounted volumes;
* the API has its probes, the workers get `WORKER_IP` from the downward API and a termination
  grace period longer than their own shutdown grace;
* Redis persists (AOF, `appendfsync everysec`, `noeviction`) in both Kubernetes and compose, and
  its volume (a claim, or a StatefulSet's claim template) holds an AOF rewrite: at least
  (2 + auto-aof-rewrite-percentage/100) x maxmemory; a Redis Cluster node is a StatefulSet pod
  that keeps its cluster state on that volume;
* Redis requires a password (`--requirepass`) from a Secret in Kubernetes and from a required
  variable in compose; the API's and the workers' `REDIS_URL` (or every URL of
  `REDIS_CLUSTER_URLS`) carry that same password, and its probes and redis-cli tools
  authenticate, as a cluster's replicas do with their masters (`--masterauth`); no password is
  written in a manifest, a ConfigMap or the compose file, and the Secret is generated from a
  git-ignored file, never from a committed value;
* NetworkPolicies deny ingress by default, let only the API and the workers reach Redis (and, in
  a cluster, its own nodes, on the data and the bus port, and its redis-cli tools), and keep the
  API's port open;
* the debug pod is only in the `debug` overlay;
* the Dockerfile copies sources that exist and are not excluded by .dockerignore, builds
  packages of the workspace, and installs binaries by their Cargo `[[bin]]` names.

Usage: check_manifests.py --repo DIR --api BIN --worker BIN RENDERED.yaml...
       check_manifests.py --self-test --repo DIR --api BIN --worker BIN RENDERED.yaml...

It prints one line per failed check and a closing `N passed, N failed` line, and exits non-zero
on any failure. `--self-test` instead breaks copies of the inputs on purpose and fails unless
every check catches its breakage.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import functools
import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

API, WORKER = "holidapp-api", "holidapp-worker"
# The image both binaries ship in; a container of any other image is not ours to configure.
IMAGE_NAME = "holidapp"
# Kubernetes' default, when a pod does not set terminationGracePeriodSeconds.
DEFAULT_TERMINATION_GRACE = 30
REDIS_PERSISTENCE = {"--appendonly": "yes", "--appendfsync": "everysec", "--maxmemory-policy": "noeviction"}
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}


# ---- what the binaries accept -------------------------------------------------------------------


@dataclass
class Binary:
    """A binary's accepted environment variables and their defaults, read from `--help`."""

    name: str
    env: set[str] = field(default_factory=set)
    defaults: dict[str, str] = field(default_factory=dict)


HELP_ENV = re.compile(r"\[env:\s*([A-Za-z_][A-Za-z0-9_]*)")
HELP_DEFAULT = re.compile(r"\[default:\s*([^\]]*)\]")


def parse_help(name: str, text: str) -> Binary:
    """Collect every `[env: NAME...]` of a clap `--help` text, with the option's `[default: ...]`."""
    binary = Binary(name)
    # An option's text runs from its flag line to the next flag line; its [env] and [default]
    # annotations sit at the end of that text.
    for chunk in re.split(r"\n(?=\s*-)", text):
        for match in HELP_ENV.finditer(chunk):
            binary.env.add(match.group(1))
            default = HELP_DEFAULT.search(chunk)
            if default:
                binary.defaults[match.group(1)] = default.group(1).strip()
    return binary


def read_binary(path: str) -> Binary:
    name = os.path.basename(path)
    # A clean environment, so the help shows defaults rather than this shell's values.
    out = subprocess.run([path, "--help"], env={"PATH": os.environ.get("PATH", "")},
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"error: `{path} --help` exited with {out.returncode}: {out.stderr.strip()}")
    binary = parse_help(name, out.stdout)
    if not binary.env:
        raise SystemExit(f"error: `{path} --help` names no [env: ...] variable; is it the right binary?")
    return binary


# ---- checks ---------------------------------------------------------------------------------------


class Report:
    """Counts checks; each check records at most its failures."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.failures: list[str] = []

    def check(self, name: str, errors: list[str]) -> None:
        if errors:
            self.failed += 1
            self.failures.extend(errors)
        else:
            self.passed += 1


def is_ours(image: str) -> bool:
    """Whether an image reference is the Holidapp image (any registry, any tag)."""
    repo = image.rsplit("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    return last.split(":", 1)[0] == IMAGE_NAME


def binary_of(command: list[str] | None, where: str, binaries: dict[str, Binary], errors: list[str]) -> Binary | None:
    if not command:
        errors.append(f"{where}: runs the image's default command; name the binary explicitly")
        return None
    name = os.path.basename(str(command[0]))
    if name not in binaries:
        errors.append(f"{where}: command {command[0]!r} is none of {sorted(binaries)}")
        return None
    return binaries[name]


def unknown_env(names: list[str], binary: Binary, where: str) -> list[str]:
    return [f"{where}: {binary.name} does not accept environment variable {n}"
            for n in names if n not in binary.env]


def as_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def redis_urls(env: dict[str, str]) -> list[str]:
    """The Redis URLs a set of variables gives, as the binaries read them: the seed nodes of
    REDIS_CLUSTER_URLS when it names any, else REDIS_URL."""
    cluster = [u.strip() for u in env.get("REDIS_CLUSTER_URLS", "").split(",") if u.strip()]
    if cluster:
        return cluster
    return [env["REDIS_URL"]] if env.get("REDIS_URL") else []


def url_host(url: str) -> str:
    match = re.match(r"^rediss?://(?:[^@/]*@)?(\[[^\]]*\]|[^:/]*)", url)
    return match.group(1) if match else url


def redis_hosts(env: dict[str, str]) -> list[str]:
    """The Redis hosts a set of variables points at, as the binaries read them."""
    urls = redis_urls(env)
    if urls:
        return [url_host(u) for u in urls]
    return [env["REDIS_IP"]] if env.get("REDIS_IP") else []


def url_password(url: str) -> str | None:
    """The password of a `redis://[user:]password@host...` URL, None when it has none."""
    match = re.match(r"^rediss?://([^@/]*)@", url)
    if not match or ":" not in match.group(1):
        return None
    return match.group(1).split(":", 1)[1] or None


# Kubernetes' dependent-variable syntax in env values, command and args: `$(NAME)`, with `$$` a
# literal `$`.
K8S_REFERENCE = re.compile(r"\$(\$|\(([^)]*)\))")


def expand(text: str, env: dict[str, str]) -> str:
    """Expands `$(NAME)` as the kubelet does: a variable defined in `env` (the container's own,
    defined before) is replaced by its value, an undefined one is left as written, `$$` is `$`."""
    return K8S_REFERENCE.sub(lambda m: "$" if m.group(1) == "$" else env.get(m.group(2), m.group(0)), text)


def references(text: str) -> set[str]:
    """The variable names `$(NAME)` in a text refers to."""
    return {m.group(2) for m in K8S_REFERENCE.finditer(text) if m.group(1) != "$"}


def secret_value(name: str, key: str) -> str:
    """What a value taken from a Secret stands as in an expanded environment."""
    return f"<secret:{name}:{key}>"


SECRET_VALUE = re.compile(r"<secret:[^:>]+:[^>]+>")
# Names of variables that hold credentials; their values must come from a Secret.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|(^|_)AUTH($|_)", re.IGNORECASE)
# Command-line flags that take a password, in Redis and its tools.
PASSWORD_FLAGS = {"--requirepass", "--masterauth", "--pass", "-a"}


@dataclass
class Container:
    """One container of a rendered pod template, with what it receives resolved: `env` holds
    the values after `$(NAME)` expansion, a field reference as `<fieldPath>`, a Secret key as
    `<secret:NAME:KEY>`; `command` is command then args, expanded."""

    doc: dict[str, Any]
    pod: dict[str, Any]
    spec: dict[str, Any]
    where: str
    env: dict[str, str]
    env_names: list[str]
    field_refs: dict[str, str]
    command: list[str]
    # Variables named by `$(NAME)` in the container's env values, command or args.
    referenced: set[str]


class Manifests:
    """One rendered overlay: every object, indexed."""

    def __init__(self, name: str, docs: list[dict[str, Any]]) -> None:
        self.name = name
        self.docs = [d for d in docs if d]
        self.configmaps = {(ns(d), d["metadata"]["name"]): d for d in self.docs if d["kind"] == "ConfigMap"}
        self.secrets = {(ns(d), d["metadata"]["name"]): d for d in self.docs if d["kind"] == "Secret"}
        self.services = [d for d in self.docs if d["kind"] == "Service"]

    def pods(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Every (object, pod template spec) pair, with the template's metadata at ['metadata']."""
        for d in self.docs:
            if d["kind"] == "Pod":
                yield d, d
            elif d["kind"] in POD_KINDS:
                yield d, d["spec"]["template"]
            elif d["kind"] == "CronJob":
                yield d, d["spec"]["jobTemplate"]["spec"]["template"]

    def containers(self, errors: list[str]) -> Iterator[Container]:
        for d, template in self.pods():
            spec = template.get("spec", {})
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                where = f"{self.name}: {d['kind']}/{d['metadata']['name']} container {c['name']}"
                env: dict[str, str] = {}
                names: list[str] = []
                refs: dict[str, str] = {}
                for source in c.get("envFrom", []):
                    ref = source.get("configMapRef")
                    if ref is None:
                        errors.append(f"{where}: envFrom other than a ConfigMap is not checked")
                        continue
                    cm = self.configmaps.get((ns(d), ref["name"]))
                    if cm is None:
                        errors.append(f"{where}: envFrom ConfigMap {ref['name']!r} does not exist in namespace {ns(d)!r}")
                        continue
                    prefix = source.get("prefix", "")
                    for key, value in (cm.get("data") or {}).items():
                        env[prefix + key] = str(value)
                        names.append(prefix + key)
                referenced: set[str] = set()
                for var in c.get("env", []):
                    names.append(var["name"])
                    if "value" in var:
                        # Expanded with what is defined so far, as the kubelet does.
                        referenced |= references(str(var["value"]))
                        env[var["name"]] = expand(str(var["value"]), env)
                    elif "valueFrom" in var:
                        source = var["valueFrom"]
                        if "fieldRef" in source:
                            refs[var["name"]] = source["fieldRef"]["fieldPath"]
                            env[var["name"]] = f"<{source['fieldRef']['fieldPath']}>"
                        elif "configMapKeyRef" in source:
                            ref = source["configMapKeyRef"]
                            cm = self.configmaps.get((ns(d), ref["name"]))
                            if cm is None or ref["key"] not in (cm.get("data") or {}):
                                errors.append(f"{where}: {var['name']} refers to missing ConfigMap key {ref['name']}/{ref['key']}")
                            else:
                                env[var["name"]] = str(cm["data"][ref["key"]])
                        elif "secretKeyRef" in source:
                            ref = source["secretKeyRef"]
                            secret = self.secrets.get((ns(d), ref["name"]))
                            keys = set((secret or {}).get("data") or {}) | set((secret or {}).get("stringData") or {})
                            if ref["key"] not in keys:
                                errors.append(f"{where}: {var['name']} refers to missing Secret key {ref['name']}/{ref['key']}")
                            else:
                                env[var["name"]] = secret_value(ref["name"], ref["key"])
                raw_command = [str(a) for a in c.get("command", []) + c.get("args", [])]
                for arg in raw_command:
                    referenced |= references(arg)
                command = [expand(a, env) for a in raw_command]
                yield Container(d, template, c, where, env, names, refs, command, referenced)


def ns(doc: dict[str, Any]) -> str:
    return doc.get("metadata", {}).get("namespace", "default")


def check_manifests(m: Manifests, binaries: dict[str, Binary], report: Report) -> None:
    accepted = set().union(*(b.env for b in binaries.values()))

    errors: list[str] = []
    ours = []
    containers = list(m.containers(errors))
    for c in containers:
        if is_ours(c.spec["image"]):
            binary = binary_of(c.spec.get("command"), c.where, binaries, errors)
            if binary:
                # A variable the binary does not read may still serve the container's own
                # `$(NAME)` expansion (REDIS_PASSWORD in REDIS_URL).
                errors += unknown_env([n for n in c.env_names if n not in c.referenced], binary, c.where)
                ours.append((c, binary))
    report.check(f"{m.name}: environment variables accepted by the binaries", errors)

    report.check(f"{m.name}: ConfigMap keys are variables the binaries accept", [
        f"{m.name}: ConfigMap {name} key {key} is read by neither binary"
        for (_, name), cm in m.configmaps.items() for key in (cm.get("data") or {}) if key not in accepted])

    report.check(f"{m.name}: REDIS_IP / REDIS_URL name a Service", check_redis_names(m, ours))
    report.check(f"{m.name}: pods meet the restricted Pod Security Standard", check_restricted(m))
    report.check(f"{m.name}: writes go to mounted volumes", check_writable(ours))
    report.check(f"{m.name}: API probes and port", check_api(ours))
    report.check(f"{m.name}: workers get WORKER_IP and time to shut down", check_workers(ours))
    report.check(f"{m.name}: Services select pods and name their ports", check_services(m))
    report.check(f"{m.name}: Redis persists, on a volume that holds an AOF rewrite", check_k8s_redis(m))
    report.check(f"{m.name}: Redis requires the Secret's password, and the API and workers give it",
                 check_redis_password(m, containers, ours))
    report.check(f"{m.name}: no password written in a manifest", check_no_literal_passwords(m, containers))
    report.check(f"{m.name}: NetworkPolicies let only the API and the workers reach Redis",
                 check_network_policies(m, ours))
    report.check(f"{m.name}: the debug pod only in the debug overlay", check_debug_pod(m))
    report.check(f"{m.name}: one API and one worker workload", [
        f"{m.name}: expected {b} in exactly one workload, found {n}"
        for b in (API, WORKER) for n in [sum(1 for _, x in ours if x.name == b)] if n != 1])


def dns_names(m: Manifests, namespace: str) -> set[str]:
    """The names a pod in `namespace` may resolve: every Service, and every pod of a StatefulSet
    through its headless Service (`NAME-0.SERVICE`, ...), short where in the same namespace."""
    names = set()

    def add(name: str, space: str) -> None:
        names.update({f"{name}.{space}", f"{name}.{space}.svc", f"{name}.{space}.svc.cluster.local"})
        if space == namespace:
            names.add(name)

    for s in m.services:
        add(s["metadata"]["name"], ns(s))
    for d in m.docs:
        if d["kind"] == "StatefulSet" and d["spec"].get("serviceName"):
            for i in range(d["spec"].get("replicas", 1)):
                add(f"{d['metadata']['name']}-{i}.{d['spec']['serviceName']}", ns(d))
    return names


def check_redis_names(m: Manifests, ours: list[tuple[Container, Binary]]) -> list[str]:
    errors = []
    for c, _ in ours:
        hosts = redis_hosts(c.env)
        if not hosts:
            errors.append(f"{c.where}: none of REDIS_CLUSTER_URLS, REDIS_URL, REDIS_IP is set (it would run without Redis)")
        for host in hosts:
            if as_ip(host):
                errors.append(f"{c.where}: Redis host {host} is an IP address; use the Service's DNS name")
            elif host not in dns_names(m, ns(c.doc)):
                errors.append(f"{c.where}: Redis host {host!r} is not a Service or StatefulSet pod of this deployment")
    return errors


def check_restricted(m: Manifests) -> list[str]:
    errors = []
    for d, template in m.pods():
        spec = template.get("spec", {})
        where = f"{m.name}: {d['kind']}/{d['metadata']['name']}"
        pod_sc = spec.get("securityContext", {})
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                errors.append(f"{where}: {key} is not allowed")
        for v in spec.get("volumes", []):
            if "hostPath" in v:
                errors.append(f"{where}: hostPath volume {v['name']} is not allowed")
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
                errors.append(f"{cw}: runAsNonRoot is not true")
            if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
                errors.append(f"{cw}: runs as user 0")
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                errors.append(f"{cw}: seccompProfile is {seccomp}, not RuntimeDefault")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{cw}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                errors.append(f"{cw}: privileged")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                errors.append(f"{cw}: capabilities do not drop ALL")
            if sc.get("capabilities", {}).get("add"):
                errors.append(f"{cw}: adds capabilities")
            if sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{cw}: readOnlyRootFilesystem is not true")
            resources = c.get("resources", {})
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in resources.get(kind, {}):
                        errors.append(f"{cw}: no {kind}.{res}")
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if "@" not in image and tag in ("", "latest"):
                errors.append(f"{cw}: image {image!r} has no pinned tag")
    return errors


def check_writable(ours: list[tuple[Container, Binary]]) -> list[str]:
    errors = []
    for c, _ in ours:
        path = c.env.get("VISITS_LOG")
        if path is None or not c.spec.get("securityContext", {}).get("readOnlyRootFilesystem"):
            continue
        if not os.path.isabs(path):
            errors.append(f"{c.where}: VISITS_LOG {path!r} is relative; the root filesystem is read-only")
            continue
        mounts = [vm["mountPath"] for vm in c.spec.get("volumeMounts", []) if not vm.get("readOnly")]
        if not any(path.startswith(mp.rstrip("/") + "/") for mp in mounts):
            errors.append(f"{c.where}: VISITS_LOG {path} is on no writable volume (mounts: {mounts})")
    return errors


def check_api(ours: list[tuple[Container, Binary]]) -> list[str]:
    errors = []
    for c, binary in ours:
        if binary.name != API:
            continue
        bind = c.env.get("HOLIDAPP_BIND", "")
        if not bind.startswith("0.0.0.0:") and not bind.startswith("[::]:"):
            errors.append(f"{c.where}: HOLIDAPP_BIND is {bind!r}; it must listen on all addresses in a pod")
            continue
        port = int(bind.rsplit(":", 1)[1])
        ports = {p.get("name"): p["containerPort"] for p in c.spec.get("ports", [])}
        if port not in ports.values():
            errors.append(f"{c.where}: listens on {port} but declares ports {sorted(ports.values())}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.spec.get(probe, {}).get("httpGet")
            if not get:
                errors.append(f"{c.where}: no {probe} over HTTP")
                continue
            if get.get("path") != path:
                errors.append(f"{c.where}: {probe} checks {get.get('path')!r}, not {path}")
            if ports.get(get["port"], get["port"]) != port:
                errors.append(f"{c.where}: {probe} checks port {get['port']!r}, not {port}")
    return errors


def shutdown_grace(env: dict[str, str], binary: Binary) -> int:
    """The worker's shutdown grace in seconds: as set, else the binary's default."""
    return int(env.get("HOLIDAPP_SHUTDOWN_GRACE_SECONDS",
                       binary.defaults.get("HOLIDAPP_SHUTDOWN_GRACE_SECONDS", "20")))


def check_workers(ours: list[tuple[Container, Binary]]) -> list[str]:
    errors = []
    for c, binary in ours:
        if binary.name != WORKER:
            continue
        if c.field_refs.get("WORKER_IP") != "status.podIP":
            errors.append(f"{c.where}: WORKER_IP does not come from the downward API's status.podIP")
        grace = shutdown_grace(c.env, binary)
        termination = c.pod.get("spec", {}).get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE)
        if termination <= grace:
            errors.append(f"{c.where}: terminationGracePeriodSeconds {termination} is not above "
                          f"HOLIDAPP_SHUTDOWN_GRACE_SECONDS {grace}")
    return errors


def check_services(m: Manifests) -> list[str]:
    errors = []
    templates = [(d, t) for d, t in m.pods()]
    for s in m.services:
        where = f"{m.name}: Service/{s['metadata']['name']}"
        selector = s["spec"].get("selector") or {}
        if not selector:
            errors.append(f"{where}: has no selector")
            continue
        matched = [(d, t) for d, t in templates if ns(d) == ns(s) and
                   selector.items() <= (t.get("metadata", {}).get("labels") or {}).items()]
        if not matched:
            errors.append(f"{where}: selector {selector} matches no pod template")
            continue
        for p in s["spec"].get("ports", []):
            target = p.get("targetPort", p["port"])
            for d, t in matched:
                declared = {(q.get("name"), q["containerPort"]) for c in t["spec"]["containers"] for q in c.get("ports", [])}
                if not any(target in pair for pair in declared):
                    errors.append(f"{where}: targetPort {target!r} is declared by no container of {d['kind']}/{d['metadata']['name']}")
    for d in m.docs:
        if d["kind"] == "StatefulSet":
            name = d["spec"].get("serviceName")
            headless = [s for s in m.services if s["metadata"]["name"] == name and ns(s) == ns(d)
                        and s["spec"].get("clusterIP") == "None"]
            if not headless:
                errors.append(f"{m.name}: StatefulSet/{d['metadata']['name']}: serviceName {name!r} is no headless Service")
    return errors


def redis_flag_errors(args: list[str], where: str) -> list[str]:
    errors = []
    for flag, value in REDIS_PERSISTENCE.items():
        if flag not in args or args.index(flag) + 1 >= len(args) or args[args.index(flag) + 1] != value:
            errors.append(f"{where}: redis-server lacks `{flag} {value}`")
    return errors


def is_redis(image: str) -> bool:
    return image.rsplit("/", 1)[-1].split(":", 1)[0] == "redis"


def is_redis_server(c: dict[str, Any]) -> bool:
    """A container that runs redis-server (the redis image also serves redis-cli tools)."""
    command = [str(a) for a in c.get("command", []) + c.get("args", [])]
    return is_redis(c["image"]) and (not command or os.path.basename(command[0]) == "redis-server")


def cluster_enabled(args: list[str]) -> bool:
    return flag_value(args, "--cluster-enabled") == "yes"


def redis_ports(args: list[str]) -> tuple[int, int]:
    """The data port and the cluster bus port a redis-server command line sets."""
    port = int(flag_value(args, "--port") or 6379)
    return port, int(flag_value(args, "--cluster-port") or port + 10000)


def redis_bytes(text: str) -> int:
    """A Redis memory setting in bytes: `384mb`, `1gb`, `100m`, `1000` (Redis's units)."""
    match = re.fullmatch(r"(\d+)\s*(k|kb|m|mb|g|gb)?", text.strip().lower())
    if not match:
        raise ValueError(f"not a Redis memory size: {text!r}")
    units = {None: 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
    return int(match.group(1)) * units[match.group(2)]


def quantity_bytes(text: str) -> float:
    """A Kubernetes storage quantity in bytes: `2Gi`, `1500M`, `1e9`."""
    match = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?", str(text).strip())
    if not match:
        raise ValueError(f"not a storage quantity: {text!r}")
    units = {None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
    return float(match.group(1)) * units[match.group(2)]


def flag_value(args: list[str], flag: str) -> str | None:
    if flag in args and args.index(flag) + 1 < len(args):
        return args[args.index(flag) + 1]
    return None


def aof_volume_errors(storage: str, args: list[str], claim: str, where: str) -> list[str]:
    """The claim holding /data must hold an AOF rewrite: Redis starts one when the append-only
    file has grown by auto-aof-rewrite-percentage over its base (100% by default), so the old base
    and its increments take up to (1 + percentage/100) x the data, and the new base, up to the
    data again, is written before they are deleted: (2 + percentage/100) x maxmemory in all."""
    maxmemory = flag_value(args, "--maxmemory")
    if maxmemory is None:
        return [f"{where}: redis-server has no --maxmemory, so no volume size can hold its AOF rewrites"]
    percentage = int(flag_value(args, "--auto-aof-rewrite-percentage") or 100)
    needed = (2 + percentage / 100) * redis_bytes(maxmemory)
    if quantity_bytes(storage) < needed:
        return [f"{where}: PersistentVolumeClaim {claim} requests {storage}, less than the "
                f"{needed / 2**20:.0f}Mi an AOF rewrite may need ((2 + {percentage}/100) x maxmemory {maxmemory})"]
    return []


def check_k8s_redis(m: Manifests) -> list[str]:
    errors = []
    found = False
    for d, t in m.pods():
        for c in t.get("spec", {}).get("containers", []):
            if not is_redis_server(c):
                continue
            found = True
            where = f"{m.name}: {d['kind']}/{d['metadata']['name']}"
            args = [str(a) for a in c.get("command", []) + c.get("args", [])]
            errors += redis_flag_errors(args, where)
            # Each volume backed by a claim, with the storage it requests: a claim of the
            # namespace, or one of a StatefulSet's claim templates (one claim per pod).
            claims: dict[str, tuple[str, str | None]] = {}
            for v in t["spec"].get("volumes", []):
                if "persistentVolumeClaim" in v:
                    name = v["persistentVolumeClaim"]["claimName"]
                    pvc = next((p for p in m.docs if p["kind"] == "PersistentVolumeClaim" and ns(p) == ns(d)
                                and p["metadata"]["name"] == name), None)
                    claims[v["name"]] = (name, pvc and pvc["spec"].get("resources", {}).get("requests", {}).get("storage", "0"))
            if d["kind"] == "StatefulSet":
                for ct in d["spec"].get("volumeClaimTemplates", []):
                    name = ct["metadata"]["name"]
                    claims[name] = (f"{name} (claim template)", ct["spec"].get("resources", {}).get("requests", {}).get("storage", "0"))
            data = [vm["name"] for vm in c.get("volumeMounts", []) if vm["mountPath"] == "/data" and vm["name"] in claims]
            if not data:
                errors.append(f"{where}: /data is not on a PersistentVolumeClaim")
            else:
                claim, storage = claims[data[0]]
                if storage is None:
                    errors.append(f"{where}: PersistentVolumeClaim {claim} does not exist")
                else:
                    errors += aof_volume_errors(storage, args, claim, where)
            if cluster_enabled(args):
                if d["kind"] != "StatefulSet":
                    errors.append(f"{where}: a Redis Cluster node needs a stable identity and volume: "
                                  "run it in a StatefulSet")
                config = flag_value(args, "--cluster-config-file") or "nodes.conf"
                if not os.path.join(flag_value(args, "--dir") or "/", config).startswith("/data/"):
                    errors.append(f"{where}: the cluster config file {config!r} is not on the /data volume: "
                                  "a restarted node would forget the cluster")
    if not found:
        errors.append(f"{m.name}: no Redis container")
    return errors


def check_redis_password(m: Manifests, containers: list[Container], ours: list[tuple[Container, Binary]]) -> list[str]:
    """Redis requires a password taken from a Secret; its redis-cli probes give it; the API and
    the workers put the same Secret key in REDIS_URL."""
    errors = []
    required: set[str] = set()
    tools = []
    for c in containers:
        if not is_redis(c.spec["image"]):
            continue
        if not is_redis_server(c.spec):
            tools.append(c)
            continue
        password = flag_value(c.command, "--requirepass")
        if password is None:
            errors.append(f"{c.where}: redis-server lacks `--requirepass`: any client that reaches it may use it")
            continue
        if not SECRET_VALUE.fullmatch(password):
            errors.append(f"{c.where}: `--requirepass` is not from a Secret (it is {password!r}): "
                          "give it as $(VAR), VAR an env entry with a secretKeyRef defined before it is used")
            continue
        required.add(password)
        if cluster_enabled(c.command) and flag_value(c.command, "--masterauth") != password:
            errors.append(f"{c.where}: a cluster node lacks `--masterauth` with the password `--requirepass` "
                          "takes, so its replicas cannot follow their masters")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            command = " ".join(str(a) for a in c.spec.get(probe, {}).get("exec", {}).get("command", []))
            if "redis-cli" in command and c.env.get("REDISCLI_AUTH") != password:
                errors.append(f"{c.where}: {probe} runs redis-cli, but REDISCLI_AUTH is not the password "
                              "`--requirepass` takes, so it is refused")
    if len(required) > 1:
        errors.append(f"{m.name}: Redis containers require different passwords: {sorted(required)}")
    for c in tools:
        if "redis-cli" in " ".join(c.command) and c.env.get("REDISCLI_AUTH") not in required:
            errors.append(f"{c.where}: runs redis-cli, but REDISCLI_AUTH is not the password Redis requires")
    for c, binary in ours:
        variable = "REDIS_CLUSTER_URLS" if c.env.get("REDIS_CLUSTER_URLS", "").strip() else "REDIS_URL"
        urls = redis_urls(c.env)
        if not urls:
            errors.append(f"{c.where}: no REDIS_URL or REDIS_CLUSTER_URLS, so {binary.name} gives Redis no password")
        for url in urls:
            password = url_password(url)
            if password is None:
                errors.append(f"{c.where}: {variable} carries no password ({url_host(url)})")
            elif password not in required:
                errors.append(f"{c.where}: {variable}'s password is {password!r}, not the Secret key Redis requires "
                              f"({', '.join(sorted(required)) or 'none'}): write it as $(VAR), VAR an env entry "
                              f"with that secretKeyRef, defined before {variable}")
    return errors


def check_no_literal_passwords(m: Manifests, containers: list[Container]) -> list[str]:
    """Credentials come from Secrets: no variable named like one has a written value, no
    password flag or URL carries one, no ConfigMap holds one, and no Secret's value (a throwaway
    one from deploy/check.sh) shows up in another object."""
    errors = []
    for c in containers:
        for name, value in c.env.items():
            written = SECRET_VALUE.sub("", value)
            if SECRET_NAME.search(name) and written:
                errors.append(f"{c.where}: {name} has a written value; take it from a Secret")
            if any((p := url_password(url)) and not SECRET_VALUE.fullmatch(p) for url in value.split(",")):
                errors.append(f"{c.where}: {name} has a written password; take it from a Secret with $(VAR)")
        for flag, value in zip(c.command, c.command[1:]):
            if flag in PASSWORD_FLAGS and not SECRET_VALUE.fullmatch(value):
                errors.append(f"{c.where}: {flag} has a written value; take it from a Secret with $(VAR)")
    for (_, name), cm in m.configmaps.items():
        for key, value in (cm.get("data") or {}).items():
            if SECRET_NAME.search(key) or any(url_password(u) for u in str(value).split(",")):
                errors.append(f"{m.name}: ConfigMap {name} key {key} holds a password; a ConfigMap is no place for one")
    for (_, name), secret in m.secrets.items():
        for key, encoded in (secret.get("data") or {}).items():
            value = base64.b64decode(encoded).decode(errors="replace")
            if len(value) < 8:
                continue
            for d in m.docs:
                if d is not secret and value in json.dumps(d):
                    errors.append(f"{m.name}: the value of Secret {name} key {key} appears in "
                                  f"{d['kind']}/{d['metadata']['name']}")
    return errors


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects a set of labels."""
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if ((op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values)
                or (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels)):
            return False
    return True


def template_labels(template: dict[str, Any]) -> dict[str, str]:
    return template.get("metadata", {}).get("labels") or {}


def workload(d: dict[str, Any]) -> str:
    return f"{d['kind']}/{d['metadata']['name']}"


def port_allowed(rule: dict[str, Any], container: dict[str, Any]) -> bool:
    """Whether an ingress rule's ports include one the container declares (no ports: all)."""
    declared = {(p.get("name"), p["containerPort"]) for p in container.get("ports", [])}
    ports = rule.get("ports")
    return not ports or any(p.get("port") is None or any(p["port"] in pair for pair in declared) for p in ports)


def rule_allows_port(rule: dict[str, Any], container: dict[str, Any], number: int) -> bool:
    """Whether an ingress rule lets traffic in on one port of a container (by number or name)."""
    names = {p.get("name") for p in container.get("ports", []) if p["containerPort"] == number} - {None}
    ports = rule.get("ports")
    return not ports or any(p.get("port") is None or p["port"] == number or p["port"] in names for p in ports)


def check_network_policies(m: Manifests, ours: list[tuple[Container, Binary]]) -> list[str]:
    """Ingress is denied by default; Redis admits the API and worker pods only, on its port, and
    all of them (a cluster also its own nodes, on the data and the bus port, and pods that run
    only redis-cli tools); the API's port is open to any source."""
    errors = []
    policies = [d for d in m.docs if d["kind"] == "NetworkPolicy"]
    templates = list(m.pods())

    def ingress_policies(d: dict[str, Any], t: dict[str, Any]) -> list[dict[str, Any]]:
        return [p for p in policies if ns(p) == ns(d) and selects(p["spec"].get("podSelector") or {}, template_labels(t))
                and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]

    spaces = {ns(d) for d, _ in templates}
    for space in sorted(spaces):
        if not any(ns(p) == space and not (p["spec"].get("podSelector") or {}) and not p["spec"].get("ingress")
                   and "Ingress" in p["spec"].get("policyTypes", ["Ingress"]) for p in policies):
            errors.append(f"{m.name}: namespace {space} has no default-deny ingress NetworkPolicy "
                          "(podSelector {}, policyTypes [Ingress], no rules)")

    clients = {id(c.pod): (c, binary) for c, binary in ours}
    def only_redis(pt: dict[str, Any]) -> bool:
        containers = pt.get("spec", {}).get("containers", [])
        return bool(containers) and all(is_redis(c["image"]) for c in containers)

    for d, t in templates:
        redis = [c for c in t.get("spec", {}).get("containers", []) if is_redis_server(c)]
        if not redis:
            continue
        where = f"{m.name}: {workload(d)}"
        args = [str(a) for a in redis[0].get("command", []) + redis[0].get("args", [])]
        cluster = cluster_enabled(args)
        # Ports the cluster's own nodes are let in on.
        node_ports: set[int] = set()
        selecting = ingress_policies(d, t)
        if not selecting:
            errors.append(f"{where}: no NetworkPolicy restricts ingress to Redis")
            continue
        reached: set[int] = set()
        for p in selecting:
            pw = f"{m.name}: NetworkPolicy/{p['metadata']['name']}"
            for rule in p["spec"].get("ingress") or []:
                if not port_allowed(rule, redis[0]):
                    continue
                if not rule.get("ports"):
                    errors.append(f"{pw}: a rule to Redis allows every port; name Redis's port")
                peers = rule.get("from") or []
                if not peers:
                    errors.append(f"{pw}: a rule to Redis allows every source; name the API and worker pods")
                for peer in peers:
                    if "ipBlock" in peer or "namespaceSelector" in peer:
                        errors.append(f"{pw}: a rule to Redis allows {sorted(peer)} sources; name the API and worker pods")
                        continue
                    matched = [(pd, pt) for pd, pt in templates if ns(pd) == ns(p)
                               and selects(peer.get("podSelector") or {}, template_labels(pt))]
                    if not matched:
                        errors.append(f"{pw}: podSelector {peer.get('podSelector')} matches no pod template")
                    for pd, pt in matched:
                        if cluster and pt is t:
                            node_ports |= {n for n in redis_ports(args) if rule_allows_port(rule, redis[0], n)}
                        elif id(pt) not in clients and not (cluster and only_redis(pt)):
                            errors.append(f"{pw}: lets {workload(pd)} reach Redis; only the API and the workers may")
                        reached.add(id(pt))
        if cluster:
            for number, role in zip(redis_ports(args), ("data port (replication)", "bus port (gossip, failover)")):
                if number not in node_ports:
                    errors.append(f"{where}: no NetworkPolicy rule lets the cluster's nodes reach one another "
                                  f"on the {role} {number}")
        for key, (c, binary) in clients.items():
            if key not in reached and ns(c.doc) == ns(d):
                errors.append(f"{where}: {binary.name} ({workload(c.doc)}) cannot reach Redis: no NetworkPolicy "
                              "rule lets its pods in")

    for c, binary in ours:
        if binary.name != API:
            continue
        # Pods no policy selects accept everything; the default-deny check covers those.
        selecting = ingress_policies(c.doc, c.pod)
        rules = [r for p in selecting for r in p["spec"].get("ingress") or []]
        if selecting and not any(not r.get("from") and port_allowed(r, c.spec) for r in rules):
            errors.append(f"{c.where}: the NetworkPolicies close the API's port: it must be open to any source")
    return errors


def check_debug_pod(m: Manifests) -> list[str]:
    """The debug pod (the `holidapp-debug` image) is only in the overlay named `debug`."""
    debug = [workload(d) for d, t in m.pods() for c in t.get("spec", {}).get("containers", [])
             if c["image"].rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0] == "holidapp-debug"]
    if m.name == "debug" and not debug:
        return [f"{m.name}: the debug overlay has no debug pod (image holidapp-debug)"]
    if m.name != "debug" and debug:
        return [f"{m.name}: has the debug pod ({', '.join(debug)}); it belongs in the debug overlay only"]
    return []


# ---- compose --------------------------------------------------------------------------------------


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


# Compose's interpolation: `${NAME}`, `${NAME:-default}`, `${NAME:?error}`, ..., `$NAME`; `$$` is `$`.
COMPOSE_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
VARIABLE_VALUE = re.compile(r"<var:[A-Za-z0-9_]+>")


def interpolate(text: str) -> str:
    """A compose value with each variable standing as `<var:NAME>` (its value is not known here)."""
    return COMPOSE_VARIABLE.sub(lambda m: "$" if m.group(1) else f"<var:{m.group(2) or m.group(4)}>", text)


def required_variables(text: str) -> set[str]:
    """The variables a compose value requires: `${NAME:?error}` or `${NAME?error}`."""
    return {m.group(2) for m in COMPOSE_VARIABLE.finditer(text)
            if m.group(2) and m.group(3).lstrip(":").startswith("?")}


def compose_command(service: dict[str, Any]) -> list[str] | None:
    command = service.get("command")
    if command is None:
        return None
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def check_compose_password(services: dict[str, Any], ours: list[tuple[str, dict[str, str]]]) -> list[str]:
    """Redis requires a password from a variable compose requires (never a written one), its
    health check gives it, and the API's and the workers' REDIS_URL carry the same variable."""
    errors = []
    required: set[str] = set()
    for name, s in services.items():
        where = f"compose: service {name}"
        raw_env = compose_env(s)
        env = {k: interpolate(v) for k, v in raw_env.items()}
        command = compose_command(s) or []
        for flag, value in zip(command, command[1:]):
            if flag in PASSWORD_FLAGS and not VARIABLE_VALUE.fullmatch(interpolate(value)):
                errors.append(f"{where}: {flag} has a written value; take it from a variable")
        for key, value in env.items():
            if SECRET_NAME.search(key) and VARIABLE_VALUE.sub("", value):
                errors.append(f"{where}: {key} has a written value; take it from a variable")
            password = url_password(value)
            if password and not VARIABLE_VALUE.fullmatch(password):
                errors.append(f"{where}: {key} has a written password; take it from a variable")
        if not is_redis(str(s.get("image", ""))):
            continue
        raw = flag_value(command, "--requirepass")
        if raw is None:
            errors.append(f"{where}: redis-server lacks `--requirepass`: any container may use it")
            continue
        if not VARIABLE_VALUE.fullmatch(interpolate(raw)) or not required_variables(raw):
            errors.append(f"{where}: `--requirepass` is {raw!r}, not a required variable such as "
                          "${REDIS_PASSWORD:?message}")
            continue
        password = interpolate(raw)
        required.add(password)
        test = " ".join(str(a) for a in (s.get("healthcheck") or {}).get("test", []))
        if "redis-cli" in test and env.get("REDISCLI_AUTH") != password:
            errors.append(f"{where}: the health check runs redis-cli, but REDISCLI_AUTH is not {password}")
    for where, raw_env in ours:
        url = raw_env.get("REDIS_URL")
        if not url:
            errors.append(f"{where}: no REDIS_URL, so it gives Redis no password")
            continue
        password = url_password(interpolate(url))
        if password not in required:
            errors.append(f"{where}: REDIS_URL's password is {password!r}, not the variable Redis requires "
                          f"({', '.join(sorted(required)) or 'none'})")
        elif password[len("<var:"):-1] not in required_variables(url):
            errors.append(f"{where}: REDIS_URL does not require its password variable (write ${{NAME:?message}})")
    return errors


def parse_duration(text: str) -> float:
    """Seconds in a compose duration such as `30s` or `1m30s`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    return sum(float(n) * units[u] for n, u in parts)


def check_compose(compose: dict[str, Any], binaries: dict[str, Binary], report: Report) -> None:
    services = compose.get("services") or {}
    env_errors: list[str] = []
    other: list[str] = []
    counts = {API: 0, WORKER: 0}
    ours: list[tuple[str, dict[str, str]]] = []
    for name, s in services.items():
        where = f"compose: service {name}"
        image = str(s.get("image", ""))
        if image.split(":", 1)[0].rsplit("/", 1)[-1] == "redis":
            other += redis_flag_errors(compose_command(s) or [], where)
            if not any(str(v).endswith(":/data") or ":/data:" in str(v) for v in s.get("volumes", [])):
                other.append(f"{where}: /data is not on a volume")
            continue
        if not is_ours(image) and "build" not in s:
            continue
        binary = binary_of(compose_command(s), where, binaries, env_errors)
        if binary is None:
            continue
        replicas = (s.get("deploy") or {}).get("replicas", 1)
        counts[binary.name] += replicas
        ours.append((where, compose_env(s)))
        env = {k: interpolate(v) for k, v in compose_env(s).items()}
        env_errors += unknown_env(list(env), binary, where)
        hosts = redis_hosts(env) or [None]
        for host in hosts:
            if host not in services:
                other.append(f"{where}: Redis host {host!r} is not a compose service")
        if binary.name == WORKER:
            grace = shutdown_grace(env, binary)
            stop = parse_duration(s.get("stop_grace_period", "10s"))
            if stop <= grace:
                other.append(f"{where}: stop_grace_period {stop:g}s is not above HOLIDAPP_SHUTDOWN_GRACE_SECONDS {grace}")
        path = env.get("VISITS_LOG")
        if s.get("read_only") and path:
            targets = [str(v).split(":")[1] for v in s.get("volumes", []) if ":" in str(v)]
            targets += [str(t) for t in s.get("tmpfs", [])]
            if not any(path.startswith(t.rstrip("/") + "/") for t in targets):
                other.append(f"{where}: VISITS_LOG {path} is on no volume of a read-only container")
    if counts[API] < 1 or counts[WORKER] < 2:
        other.append(f"compose: expected an API and two workers, found {counts}")
    report.check("compose: environment variables accepted by the binaries", env_errors)
    report.check("compose: Redis persistence, names and grace periods", other)
    report.check("compose: Redis requires a password from a variable, and the API and workers give it",
                 check_compose_password(services, ours))


# ---- Dockerfile -----------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        current = ""
    return out


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore excludes a path (or a folder above it); later `!` lines re-include."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        for c in candidates:
            if fnmatch.fnmatch(c, pattern) or (pattern.startswith("**/") and
                                               (fnmatch.fnmatch(c, pattern[3:]) or fnmatch.fnmatch(c, "*/" + pattern[3:]))):
                ignored = not negate
    return ignored


def workspace_bins(repo: Path) -> dict[str, list[str]]:
    """Package name -> its binary names, for every workspace member."""
    root = tomllib.loads((repo / "Cargo.toml").read_text())
    packages = {}
    for member in root["workspace"]["members"]:
        manifest = tomllib.loads((repo / member / "Cargo.toml").read_text())
        name = manifest["package"]["name"]
        bins = [b["name"] for b in manifest.get("bin", [])]
        if not bins and (repo / member / "src" / "main.rs").exists():
            bins = [name]
        packages[name] = bins
    return packages


def check_dockerfile(dockerfile: str, dockerignore: str, repo: Path, binaries: dict[str, Binary], report: Report) -> None:
    errors: list[str] = []
    instructions = dockerfile_instructions(dockerfile)
    patterns = [line.strip() for line in dockerignore.splitlines() if line.strip() and not line.startswith("#")]
    packages = workspace_bins(repo)
    built: list[str] = []
    installed: list[str] = []
    accepted = set().union(*(b.env for b in binaries.values()))
    stage = ""
    for word, rest in instructions:
        if word == "FROM":
            stage = rest.split()[-1] if " AS " in rest.upper() else rest
        elif word == "RUN":
            for match in re.finditer(r"cargo build\b([^&;|]*)", rest):
                built += re.findall(r"(?:-p|--package)\s+(\S+)", match.group(1))
        elif word in ("COPY", "ADD"):
            args = shlex.split(rest)
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            sources = paths[:-1]
            if any(f.startswith("--from=") for f in flags):
                installed += [os.path.basename(s) for s in sources]
                continue
            for s in sources:
                rel = os.path.normpath(s)
                if rel != "." and not (repo / rel).exists():
                    errors.append(f"Dockerfile ({stage}): COPY source {s} does not exist")
                if rel != "." and dockerignored(rel, patterns):
                    errors.append(f"Dockerfile ({stage}): COPY source {s} is excluded by .dockerignore")
                if rel == ".":
                    needed = ["Cargo.toml", "Cargo.lock"] + list(tomllib.loads((repo / "Cargo.toml").read_text())["workspace"]["members"])
                    errors += [f".dockerignore excludes {n}, which the build needs" for n in needed if dockerignored(n, patterns)]
        elif word == "ENV":
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", rest)
            errors += [f"Dockerfile ENV {n} is read by neither binary" for n in names if n not in accepted]
        elif word == "CMD" and stage.endswith("runtime"):
            cmd = yaml.safe_load(rest) if rest.startswith("[") else shlex.split(rest)
            if os.path.basename(cmd[0]) not in binaries:
                errors.append(f"Dockerfile: runtime CMD {cmd[0]!r} is none of {sorted(binaries)}")
    for package in built:
        if package not in packages:
            errors.append(f"Dockerfile: cargo builds package {package!r}, which is not in the workspace")
    built_bins = {b for p in built for b in packages.get(p, [])}
    for name in (API, WORKER):
        if name not in built_bins:
            errors.append(f"Dockerfile: no `cargo build -p` builds {name}")
    # Each binary is copied twice: out of the cache mount in the builder (cp ...), then into the
    # runtime image (COPY --from); the COPY must name the real [[bin]] names.
    for name in installed:
        if name not in built_bins:
            errors.append(f"Dockerfile: installs {name!r}, which is no [[bin]] of the packages it builds")
    for name in (API, WORKER):
        if name not in installed:
            errors.append(f"Dockerfile: does not install {name}")
    report.check("Dockerfile: sources, packages and binary names", errors)


# ---- kustomizations -------------------------------------------------------------------------------


@functools.cache
def git_status(repo: Path, *args: str) -> int | None:
    """The exit status of a git command in the repository; None when git cannot tell (no git, or
    not a clone)."""
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return None if out.returncode > 1 else out.returncode


def check_secret_generators(kustomizations: dict[str, dict[str, Any]], repo: Path, report: Report) -> None:
    """Secrets are generated from files git ignores, never from values written in a committed
    kustomization."""
    errors = []
    for folder, k in kustomizations.items():
        for g in k.get("secretGenerator") or []:
            where = f"{folder}/kustomization.yaml: secretGenerator {g.get('name')}"
            if g.get("literals"):
                errors.append(f"{where}: has literals, so its values are committed; generate it from a git-ignored file")
            sources = (g.get("envs") or []) + (g.get("files") or []) + ([g["env"]] if g.get("env") else [])
            for source in sources:
                path = os.path.normpath(os.path.join(folder, str(source).split("=", 1)[-1]))
                if git_status(repo, "check-ignore", "-q", "--no-index", path) == 1:
                    errors.append(f"{where}: {path} is not git-ignored, so a password in it would be committed")
                if git_status(repo, "ls-files", "--error-unmatch", path) == 0:
                    errors.append(f"{where}: {path} is committed")
    report.check("kustomizations: Secrets generated from git-ignored files", errors)


# ---- main -----------------------------------------------------------------------------------------


@dataclass
class Inputs:
    rendered: dict[str, list[dict[str, Any]]]
    compose: dict[str, Any]
    dockerfile: str
    dockerignore: str
    # Every kustomization.yaml under deploy/k8s, by its folder relative to the repository.
    kustomizations: dict[str, dict[str, Any]]


def run_checks(inputs: Inputs, repo: Path, binaries: dict[str, Binary]) -> Report:
    report = Report()
    for name, docs in inputs.rendered.items():
        check_manifests(Manifests(name, docs), binaries, report)
    check_compose(inputs.compose, binaries, report)
    check_secret_generators(inputs.kustomizations, repo, report)
    check_dockerfile(inputs.dockerfile, inputs.dockerignore, repo, binaries, report)
    return report


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d and d["kind"] == kind and d["metadata"]["name"].startswith(name))


def first_container(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return find(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]


# Each breakage: what it does to a copy of the inputs, and a fragment the failure must mention.
Breakage = tuple[str, Callable[[Inputs], None], str]


def env_var(container: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in container.get("env", []) if v["name"] == name)


def set_flag(args: list[Any], flag: str, value: str | None) -> None:
    """Sets the value after `flag` in a command line, or removes both when `value` is None."""
    at = args.index(flag)
    if value is None:
        del args[at:at + 2]
    else:
        args[at + 1] = value


def breakages(base: str, binaries: dict[str, Binary], git_usable: bool) -> list[Breakage]:
    # A variable one binary reads and the other does not, given to the other one.
    api_only = min(binaries[API].env - binaries[WORKER].env, default=None)
    worker_only = min(binaries[WORKER].env - binaries[API].env, default=None)
    if api_only is not None:
        misplaced, receiver, variable = WORKER, binaries[WORKER].name, api_only
    else:
        misplaced, receiver, variable = API, binaries[API].name, worker_only or "HOLIDAPP_NOT_A_VARIABLE"

    def compose_worker(i: Inputs) -> dict[str, Any]:
        return i.compose["services"]["worker"]

    def compose_redis(i: Inputs) -> dict[str, Any]:
        return i.compose["services"]["redis"]

    def redis(i: Inputs) -> dict[str, Any]:
        return first_container(i.rendered[base], "Deployment", "holidapp-redis")

    def ours(i: Inputs, name: str) -> dict[str, Any]:
        return first_container(i.rendered[base], "Deployment", name)

    def policy(i: Inputs, name: str) -> dict[str, Any]:
        return find(i.rendered[base], "NetworkPolicy", name)

    def redis_claim(i: Inputs) -> dict[str, Any]:
        return find(i.rendered[base], "PersistentVolumeClaim", "holidapp-redis")

    def redis_rule(i: Inputs) -> dict[str, Any]:
        return find(i.rendered[base], "NetworkPolicy", "holidapp-redis")["spec"]["ingress"][0]

    def generator(i: Inputs) -> dict[str, Any]:
        return i.kustomizations["deploy/k8s/base"]["secretGenerator"][0]

    def leak_secret(i: Inputs) -> None:
        secret = find(i.rendered[base], "Secret", "holidapp-redis-password")
        value = base64.b64decode(next(iter(secret["data"].values()))).decode()
        find(i.rendered[base], "Deployment", API)["metadata"].setdefault("annotations", {})["note"] = value

    def add_debug_pod(i: Inputs) -> None:
        pod = copy.deepcopy(find(i.rendered[base], "Deployment", API))
        pod["metadata"]["name"] = "holidapp-debug"
        pod["spec"]["template"]["spec"]["containers"][0]["image"] = "holidapp-debug:0.1.0"
        i.rendered[base].append(pod)

    return [
        ("unknown variable in compose", lambda i: compose_worker(i)["environment"].update(HOLIDAPP_NOT_A_VARIABLE="1"),
         "does not accept environment variable HOLIDAPP_NOT_A_VARIABLE"),
        ("unknown ConfigMap key", lambda i: find(i.rendered[base], "ConfigMap", "holidapp-config")["data"].update(REDIS_HOST="x"),
         "does not accept environment variable REDIS_HOST"),
        ("variable given to the wrong binary", lambda i: first_container(i.rendered[base], "Deployment", misplaced).setdefault("env", []).append({"name": variable, "value": "1"}),
         f"{receiver} does not accept environment variable {variable}"),
        ("Redis by IP address", lambda i: find(i.rendered[base], "ConfigMap", "holidapp-config")["data"].update(REDIS_IP="10.96.0.12"),
         "is an IP address"),
        ("missing ConfigMap", lambda i: first_container(i.rendered[base], "Deployment", WORKER)["envFrom"][0]["configMapRef"].update(name="holidapp-config"),
         "does not exist"),
        ("capabilities kept", lambda i: first_container(i.rendered[base], "Deployment", WORKER)["securityContext"].pop("capabilities"),
         "do not drop ALL"),
        ("no memory limit", lambda i: first_container(i.rendered[base], "Deployment", "holidapp-redis")["resources"]["limits"].pop("memory"),
         "no limits.memory"),
        ("grace period too short", lambda i: find(i.rendered[base], "Deployment", WORKER)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=20),
         "terminationGracePeriodSeconds 20 is not above"),
        ("compose stop grace too short", lambda i: compose_worker(i).update(stop_grace_period="15s"),
         "stop_grace_period 15s"),
        ("WORKER_IP hard-coded", lambda i: first_container(i.rendered[base], "Deployment", WORKER).update(env=[{"name": "WORKER_IP", "value": "10.0.0.1"}]),
         "status.podIP"),
        ("readiness probe path", lambda i: first_container(i.rendered[base], "Deployment", API)["readinessProbe"]["httpGet"].update(path="/healthz"),
         "readinessProbe checks '/healthz'"),
        ("Service selector typo", lambda i: find(i.rendered[base], "Service", "holidapp-redis")["spec"]["selector"].update({"app.kubernetes.io/name": "redis"}),
         "matches no pod template"),
        ("AOF off", lambda i: i.compose["services"]["redis"].update(command=["redis-server"]),
         "lacks `--appendonly yes`"),
        ("visits log on the read-only root", lambda i: find(i.rendered[base], "ConfigMap", "holidapp-api-config")["data"].update(VISITS_LOG="/var/visits.log"),
         "is on no writable volume"),
        ("binary renamed", lambda i: setattr(i, "dockerfile", i.dockerfile.replace("/out/holidapp-worker /usr", "/out/holidapp-workers /usr")),
         "installs 'holidapp-workers'"),
        ("Dockerfile ENV unknown", lambda i: setattr(i, "dockerfile", i.dockerfile.replace("ENV HOLIDAPP_BIND", "ENV HOLIDAPP_LISTEN=1 HOLIDAPP_BIND")),
         "ENV HOLIDAPP_LISTEN"),
        ("workspace excluded from the context", lambda i: setattr(i, "dockerignore", i.dockerignore + "\nholidapp-core\n"),
         "excludes holidapp-core"),
        # Redis's password.
        ("Redis without a password", lambda i: set_flag(redis(i)["args"], "--requirepass", None),
         "redis-server lacks `--requirepass`"),
        ("Redis password written in the manifest", lambda i: set_flag(redis(i)["args"], "--requirepass", "hunter2hunter2"),
         "`--requirepass` is not from a Secret"),
        ("Redis probe without the password", lambda i: redis(i).update(env=[v for v in redis(i)["env"] if v["name"] != "REDISCLI_AUTH"]),
         "readinessProbe runs redis-cli, but REDISCLI_AUTH"),
        ("REDIS_URL without a password", lambda i: env_var(ours(i, API), "REDIS_URL").update(value="redis://$(REDIS_IP):$(REDIS_PORT)/$(REDIS_DB)"),
         "REDIS_URL carries no password"),
        ("REDIS_URL with a written password", lambda i: env_var(ours(i, WORKER), "REDIS_URL").update(value="redis://:hunter2@$(REDIS_IP)/0"),
         "REDIS_URL has a written password"),
        ("REDIS_URL before the variable it expands", lambda i: ours(i, API)["env"].sort(key=lambda v: v["name"] != "REDIS_URL"),
         "REDIS_URL's password is '$(REDIS_PASSWORD)', not the Secret key Redis requires"),
        ("Secret variable used by nothing", lambda i: ours(i, API)["env"].append(dict(env_var(redis(i), "REDIS_PASSWORD"), name="ADMIN_PASSWORD")),
         f"{API} does not accept environment variable ADMIN_PASSWORD"),
        ("password in a ConfigMap", lambda i: find(i.rendered[base], "ConfigMap", "holidapp-config")["data"].update(REDIS_PASSWORD="hunter2hunter2"),
         "holds a password; a ConfigMap is no place for one"),
        ("Secret value copied into another object", leak_secret,
         f"appears in Deployment/{API}"),
        ("Secret generated from a committed literal", lambda i: generator(i).update(literals=["REDIS_PASSWORD=hunter2hunter2"]),
         "has literals"),
        # The volume.
        ("Redis volume too small for AOF rewrites", lambda i: redis_claim(i)["spec"]["resources"].update(requests={"storage": "1Gi"}),
         "an AOF rewrite may need"),
        # NetworkPolicies.
        ("no default deny", lambda i: i.rendered[base].remove(policy(i, "holidapp-default-deny")),
         "has no default-deny ingress NetworkPolicy"),
        ("no Redis NetworkPolicy", lambda i: i.rendered[base].remove(policy(i, "holidapp-redis")),
         f"{WORKER} (Deployment/{WORKER}) cannot reach Redis"),
        ("Redis open to every source", lambda i: redis_rule(i).pop("from"),
         "a rule to Redis allows every source"),
        ("Redis open on every port", lambda i: redis_rule(i).pop("ports"),
         "a rule to Redis allows every port"),
        ("Redis open to every pod", lambda i: redis_rule(i)["from"].append({"podSelector": {}}),
         "lets Deployment/holidapp-redis reach Redis"),
        ("NetworkPolicy selector typo", lambda i: redis_rule(i)["from"][-1].update(podSelector={"matchLabels": {"app.kubernetes.io/name": "holidapp-workers"}}),
         f"{WORKER} (Deployment/{WORKER}) cannot reach Redis"),
        ("API port closed", lambda i: i.rendered[base].remove(policy(i, "holidapp-api")),
         "close the API's port"),
        # The debug pod.
        ("debug pod in the base", add_debug_pod,
         "it belongs in the debug overlay only"),
        # Compose.
        ("compose Redis without a password", lambda i: set_flag(compose_redis(i)["command"], "--requirepass", None),
         "compose: service redis: redis-server lacks `--requirepass`"),
        ("compose password not required", lambda i: set_flag(compose_redis(i)["command"], "--requirepass", "${REDIS_PASSWORD:-hunter2}"),
         "not a required variable"),
        ("compose REDIS_URL with a written password", lambda i: compose_worker(i)["environment"].update(REDIS_URL="redis://:hunter2@redis:6379/0"),
         "compose: service worker: REDIS_URL has a written password"),
        ("compose health check without the password", lambda i: compose_redis(i)["environment"].pop("REDISCLI_AUTH"),
         "the health check runs redis-cli, but REDISCLI_AUTH"),
    ] + ([
        ("Secret generated from a file git does not ignore", lambda i: generator(i).update(envs=["namespace.yaml"]),
         "is not git-ignored"),
    ] if git_usable else [])


CLUSTER = "redis-cluster"


def cluster_breakages() -> list[Breakage]:
    """Breakages of the Redis Cluster overlay."""

    def node(i: Inputs) -> dict[str, Any]:
        return first_container(i.rendered[CLUSTER], "StatefulSet", "holidapp-redis-cluster")

    def node_rule(i: Inputs) -> dict[str, Any]:
        return find(i.rendered[CLUSTER], "NetworkPolicy", "holidapp-redis")["spec"]["ingress"][1]

    def seeds(i: Inputs, name: str) -> dict[str, Any]:
        return env_var(first_container(i.rendered[CLUSTER], "Deployment", name), "REDIS_CLUSTER_URLS")

    def job(i: Inputs) -> dict[str, Any]:
        return first_container(i.rendered[CLUSTER], "Job", "holidapp-redis-cluster-create")

    def statefulset(i: Inputs) -> dict[str, Any]:
        return find(i.rendered[CLUSTER], "StatefulSet", "holidapp-redis-cluster")

    return [
        ("cluster bus closed", lambda i: node_rule(i).update(ports=[{"protocol": "TCP", "port": 6379}]),
         "reach one another on the bus port (gossip, failover) 16379"),
        ("cluster replication closed", lambda i: node_rule(i).update(ports=[{"protocol": "TCP", "port": 16379}]),
         "reach one another on the data port (replication) 6379"),
        ("cluster replicas without masterauth", lambda i: set_flag(node(i)["args"], "--masterauth", None),
         "lacks `--masterauth`"),
        ("cluster state off the volume", lambda i: set_flag(node(i)["args"], "--cluster-config-file", "/tmp/nodes.conf"),
         "is not on the /data volume"),
        ("cluster node volume too small", lambda i: statefulset(i)["spec"]["volumeClaimTemplates"][0]["spec"]["resources"].update(requests={"storage": "1Gi"}),
         "an AOF rewrite may need"),
        ("cluster seed that is no node", lambda i: seeds(i, WORKER).update(value=seeds(i, WORKER)["value"].replace("cluster-5.", "cluster-6.")),
         "'holidapp-redis-cluster-6.holidapp-redis-cluster' is not a Service or StatefulSet pod"),
        ("cluster seed without a password", lambda i: seeds(i, API).update(value=seeds(i, API)["value"].replace(":$(REDIS_PASSWORD)@", "@")),
         "REDIS_CLUSTER_URLS carries no password"),
        ("cluster seed with a written password", lambda i: seeds(i, API).update(value=seeds(i, API)["value"] + ",redis://:hunter2@holidapp-redis-cluster-0.holidapp-redis-cluster:6379"),
         "REDIS_CLUSTER_URLS has a written password"),
        ("cluster tool without the password", lambda i: job(i).update(env=[v for v in job(i)["env"] if v["name"] != "REDISCLI_AUTH"]),
         "runs redis-cli, but REDISCLI_AUTH"),
        ("cluster node as a Deployment", lambda i: statefulset(i).update(kind="Deployment"),
         "run it in a StatefulSet"),
    ]


def self_test(inputs: Inputs, repo: Path, binaries: dict[str, Binary]) -> int:
    clean = run_checks(inputs, repo, binaries)
    if clean.failures:
        print("self-test: the unbroken inputs do not pass:", *clean.failures, sep="\n  ")
        return 1
    base = "base" if "base" in inputs.rendered else next(iter(inputs.rendered))
    passed = failed = 0
    git_usable = git_status(repo, "rev-parse", "--git-dir") == 0
    tests = breakages(base, binaries, git_usable) + (cluster_breakages() if CLUSTER in inputs.rendered else [])
    for title, breakage, expected in tests:
        broken = copy.deepcopy(inputs)
        breakage(broken)
        failures = run_checks(broken, repo, binaries).failures
        if any(expected in f for f in failures):
            passed += 1
        else:
            failed += 1
            print(f"self-test: breakage '{title}' was not caught (expected a failure mentioning {expected!r}); got {failures}")
    print(f"self-test: {passed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="repository root")
    parser.add_argument("--api", required=True, help="path of the holidapp-api binary")
    parser.add_argument("--worker", required=True, help="path of the holidapp-worker binary")
    parser.add_argument("--self-test", action="store_true", help="prove that each check catches a breakage")
    parser.add_argument("rendered", nargs="+", type=Path, help="rendered overlays, NAME.yaml each")
    args = parser.parse_args()

    binaries = {b.name: b for b in (read_binary(args.api), read_binary(args.worker))}
    for expected, b in ((API, binaries.get(API)), (WORKER, binaries.get(WORKER))):
        if b is None:
            raise SystemExit(f"error: expected binaries named {API} and {WORKER}, got {sorted(binaries)}")
    deploy = args.repo / "deploy"
    inputs = Inputs(
        rendered={p.stem: list(yaml.safe_load_all(p.read_text())) for p in args.rendered},
        compose=yaml.safe_load((deploy / "compose.yaml").read_text()),
        dockerfile=(deploy / "Dockerfile").read_text(),
        dockerignore=(args.repo / ".dockerignore").read_text(),
        kustomizations={str(k.parent.relative_to(args.repo)): yaml.safe_load(k.read_text())
                        for k in sorted((deploy / "k8s").rglob("kustomization.yaml"))},
    )
    if args.self_test:
        return self_test(inputs, args.repo, binaries)
    report = run_checks(inputs, args.repo, binaries)
    for failure in report.failures:
        print(f"FAILED {failure}")
    print(f"manifests: {report.passed} passed, {report.failed} failed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
