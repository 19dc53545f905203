"""Calls every route of a running Holidapp API through a Python client generated from its own
OpenAPI document (openapi-python-client), and checks that the answers make sense.

Usage: client_check.py BASE_URL OPENAPI_JSON PACKAGE

PACKAGE is the generated client, importable (scripts/fuzz_api.sh generates it from the
document the server serves and installs it into the harness's virtualenv). No request here is
written by hand: each one is a call of the generated function of its route, with bodies built
by the generated models from plain JSON values. The route list comes from the document: a route
the document has and this program does not call is a failure, and so is a route this program
calls that the document lacks, so the two cannot drift apart.

The server must be fresh (nothing loaded, no jobs) and in memory, with its embedded workers, and
DATA_SOURCE must be the bundled HGNC sample.
"""

from __future__ import annotations

import enum
import importlib
import io
import json
import pkgutil
import re
import sys
import time
import types
import typing
import uuid

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# How long a job may take to complete (the embedded workers run it).
JOB_DEADLINE_SECONDS = 120


# A data set in the HGNC JSON layout, for when the bundled one cannot be loaded.
SMALL_HGNC = {"response": {"docs": [
    {"hgnc_id": "HGNC:5", "symbol": "A1BG", "locus_group": "protein-coding gene",
     "date_approved_reserved": "1989-06-30"},
    {"hgnc_id": "HGNC:37133", "symbol": "A1BG-AS1", "locus_group": "non-coding RNA",
     "date_approved_reserved": "2009-07-20"},
    {"hgnc_id": "HGNC:24086", "symbol": "A1CF", "locus_group": "protein-coding gene",
     "date_approved_reserved": "2007-11-23"},
]}}


class Check:
    def __init__(self, base_url: str, document: dict, package: str) -> None:
        self.document = document
        self.package = package
        self.failures: list[str] = []
        self.called: set[tuple[str, str]] = set()
        self.calls = 0
        client_module = importlib.import_module(f"{package}.client")
        self.types = importlib.import_module(f"{package}.types")
        self.client = client_module.Client(
            base_url=base_url, raise_on_unexpected_status=False, timeout=60.0
        )
        self.routes = {
            (method.upper(), path)
            for path, item in document["paths"].items()
            for method in item
            if method in METHODS
        }
        self.functions = self._discover()

    # --- the generated client ---------------------------------------------------------------

    def _discover(self) -> dict[tuple[str, str], types.ModuleType]:
        """Each generated endpoint module, by the method and path template it requests."""
        api = importlib.import_module(f"{self.package}.api")
        found = {}
        for info in pkgutil.walk_packages(api.__path__, f"{api.__name__}."):
            module = importlib.import_module(info.name)
            source = open(module.__file__, encoding="utf-8").read()
            method = re.search(r'"method":\s*"(\w+)"', source)
            url = re.search(r'"url":\s*f?"([^"]+)"', source)
            if method and url and hasattr(module, "sync_detailed"):
                found[(method.group(1).upper(), url.group(1))] = module
        return found

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"  FAIL {message}", flush=True)

    def call(self, method: str, path: str, expect, raw: bool = False, **arguments):
        """Calls METHOD PATH through its generated function; None when that cannot be done.

        With `raw`, the generated code builds the request (`_get_kwargs`) and the generated
        client's httpx client sends it, without parsing the answer: a Server-Sent Events stream
        is text the generated models cannot read."""
        route = (method, path)
        self.called.add(route)
        label = f"{method} {path}"
        module = self.functions.get(route)
        if module is None:
            self.fail(f"{label}: the generated client has no function for this route")
            return None
        try:
            arguments = self._typed(module.sync_detailed, arguments)
        except Exception as e:  # noqa: BLE001 - reported as a failure of the route
            self.fail(f"{label}: cannot build the arguments with the generated types: {type(e).__name__}: {e}")
            return None
        self.calls += 1
        try:
            if raw:
                response = self.client.get_httpx_client().request(**module._get_kwargs(**arguments))
            else:
                response = module.sync_detailed(client=self.client, **arguments)
        except Exception as e:  # noqa: BLE001 - reported as a failure of the route
            self.fail(f"{label}: the generated function raised {type(e).__name__}: {e}")
            return None
        expected = expect if isinstance(expect, (set, frozenset, tuple)) else {expect}
        status = int(response.status_code)
        print(f"  {status} {label} {_shown(arguments)}", flush=True)
        if status not in expected:
            self.fail(f"{label}: answered {status}, expected {sorted(expected)}: {response.content[:300]!r}")
            return None
        return response

    def _typed(self, function, arguments: dict) -> dict:
        """The arguments converted to the types the generated function declares."""
        hints = typing.get_type_hints(function)
        return {name: self._convert(value, hints.get(name)) for name, value in arguments.items()}

    def _convert(self, value, annotation):
        if annotation is None:
            return value
        options = _union_members(annotation)
        if isinstance(value, bytes):
            if self.types.File in options:
                return self.types.File(payload=io.BytesIO(value))
            raise TypeError(f"bytes given, the function takes {annotation}")
        if isinstance(value, str):
            for option in options:
                if option is uuid.UUID:
                    return uuid.UUID(value)
                if isinstance(option, type) and issubclass(option, enum.Enum):
                    return option(value)
            return value
        if isinstance(value, (dict, list)):
            for option in options:
                model = self._model(value, option)
                if model is not None:
                    return model
            raise TypeError(f"no generated type of {annotation} reads {json.dumps(value)[:200]}")
        return value

    def _model(self, value, option):
        """VALUE read by the generated type OPTION, when it reads it back unchanged."""
        if typing.get_origin(option) is list and isinstance(value, list):
            (item,) = typing.get_args(option) or (None,)
            items = [self._model(v, item) if hasattr(item, "from_dict") else v for v in value]
            return None if any(i is None for i in items) else items
        if isinstance(value, dict) and hasattr(option, "from_dict"):
            try:
                model = option.from_dict(value)
                if _same(model.to_dict(), value):
                    return model
            except Exception:  # noqa: BLE001 - this member of the union does not read it
                return None
        return None

    def takes(self, method: str, path: str, name: str, kind) -> bool:
        """Whether the generated function of METHOD PATH takes NAME of type KIND."""
        module = self.functions.get((method, path))
        if module is None:
            return False
        hints = typing.get_type_hints(module.sync_detailed)
        return name in hints and kind in _union_members(hints[name])

    # --- checks on answers ------------------------------------------------------------------

    def expect(self, condition: bool, message: str) -> bool:
        if not condition:
            self.fail(message)
        return condition

    def png(self, label: str, response) -> bytes | None:
        if response is None:
            return None
        parsed = response.parsed
        if not isinstance(parsed, self.types.File):
            self.fail(f"{label}: the generated client does not read the image as bytes "
                      f"(its 200 answer is parsed as {type(parsed).__name__}: the document "
                      "must declare it a binary string of a content type the generator reads)")
            return None
        data = parsed.payload.read()
        self.expect(data.startswith(PNG_SIGNATURE), f"{label}: the bytes are not a PNG: {data[:16]!r}")
        self.expect(response.content == data, f"{label}: the client's bytes differ from the answer's")
        return data

    def job(self, label: str, response):
        if response is None:
            return None
        job = response.parsed
        if not self.expect(job is not None and hasattr(job, "id") and hasattr(job, "status"),
                           f"{label}: the answer is not read as a job: {response.content[:200]!r}"):
            return None
        return job

    # --- the scenario -----------------------------------------------------------------------

    def run(self) -> None:
        self.service()
        ids = self.data()
        self.image()
        self.jobs()
        self.data_bodies(ids)
        missing = sorted(self.routes - self.called)
        extra = sorted(self.called - self.routes)
        for method, path in missing:
            self.fail(f"{method} {path}: in the document, but this program does not call it; add it")
        for method, path in extra:
            self.fail(f"{method} {path}: called here, but the document does not have it")

    def service(self) -> None:
        r = self.call("GET", "/healthz", 200)
        if r is not None:
            self.expect(_value(getattr(r.parsed, "status", None)) == "ok", f"GET /healthz: {r.content!r}")
        r = self.call("GET", "/readyz", 200)
        if r is not None:
            self.expect(_value(getattr(r.parsed, "status", None)) == "ready", f"GET /readyz: {r.content!r}")
        r = self.call("GET", "/", 200)
        if r is not None:
            self.expect(getattr(r.parsed, "name", None) == "holidapp", f"GET /: {r.content!r}")
        r = self.call("GET", "/visits", 200)
        if r is not None:
            lines = str(r.parsed or "").splitlines()
            self.expect(len(lines) >= 1 and re.match(r"\d{4}-\d\d-\d\dT", lines[-1]) is not None,
                        f"GET /visits: no visit line after GET /: {r.content[:200]!r}")
        r = self.call("GET", "/help", 200)
        if r is not None:
            self.expect("/jobs" in str(r.parsed or ""), f"GET /help: no route list: {r.content[:200]!r}")
        r = self.call("GET", "/metrics", 200)
        if r is not None:
            self.expect("holidapp_backend_up 1" in str(r.parsed or ""),
                        f"GET /metrics: no holidapp_backend_up 1: {r.content[:200]!r}")
        r = self.call("GET", "/workers", 200)
        if r is not None:
            workers = json.loads(r.content)
            self.expect(isinstance(workers, list) and len(workers) >= 1
                        and all(isinstance(w.get("identity"), str) for w in workers),
                        f"GET /workers: the embedded worker pool is not listed: {r.content[:300]!r}")
        r = self.call("GET", "/openapi.json", 200)
        if r is not None:
            parsed = r.parsed.to_dict() if hasattr(r.parsed, "to_dict") else r.parsed
            self.expect(isinstance(parsed, dict) and str(parsed.get("openapi", "")).startswith("3."),
                        "GET /openapi.json: the answer is not read as an OpenAPI document")

    def data(self) -> list[str]:
        self.call("DELETE", "/data", 404)  # nothing is loaded yet
        r = self.call("POST", "/data", 200)  # no body: DATA_SOURCE, the bundled HGNC sample
        expected = 266
        if r is not None:
            loaded = getattr(r.parsed, "loaded", None)
            self.expect(loaded == expected, f"POST /data: loaded {loaded}, expected the 266 bundled genes")
        else:
            # Go on with a small data set sent as a body, so that the routes that need one are
            # still checked.
            expected = len(SMALL_HGNC["response"]["docs"])
            r = self.call("POST", "/data", 200, body=SMALL_HGNC)
            self.expect(r is not None and getattr(r.parsed, "loaded", None) == expected,
                        "POST /data: cannot load a data set through the generated client either")
        r = self.call("GET", "/genes", 200)
        ids = list(r.parsed) if r is not None and isinstance(r.parsed, list) else []
        self.expect(len(ids) == expected and len(set(ids)) == expected,
                    f"GET /genes: {len(ids)} ids, expected {expected} distinct")
        r = self.call("GET", "/data", 200, limit=2)
        if r is not None:
            self.expect(isinstance(r.parsed, list) and len(r.parsed) == 2, "GET /data?limit=2: not 2 records")
            self.expect(r.headers.get("x-total-count") == str(expected), f"GET /data: x-total-count is not {expected}")
            self.expect('rel="next"' in r.headers.get("link", ""), "GET /data?limit=2: no next link")
        r = self.call("GET", "/data", 200, start=expected - 1, limit=5)
        if r is not None:
            self.expect(isinstance(r.parsed, list) and len(r.parsed) == 1, "GET /data?start=last: not the last record")
            self.expect("link" not in r.headers, "GET /data: a next link on the last page")
        first, second = (ids + ["HGNC:0", "HGNC:1"])[:2]
        r = self.call("GET", "/genes/{hgnc_id}", 200, hgnc_id=first)
        if r is not None:
            fields = r.parsed.to_dict() if hasattr(r.parsed, "to_dict") else r.parsed
            self.expect(isinstance(fields, dict) and fields.get("hgnc_id") == first,
                        f"GET /genes/{first}: not that gene: {r.content[:200]!r}")
        r = self.call("GET", "/data/{id}", 200, id=second)
        if r is not None:
            fields = r.parsed.to_dict() if hasattr(r.parsed, "to_dict") else r.parsed
            self.expect(isinstance(fields, dict) and fields.get("hgnc_id") == second,
                        f"GET /data/{second}: not that record: {r.content[:200]!r}")
        return ids

    def image(self) -> None:
        self.call("GET", "/image", 404)  # none rendered yet
        self.call("POST", "/image", 201)  # no body: the whole data set
        body = {"start": "1990", "end": "2020", "plot": {"kind": "categories", "field": "locus_group"}}
        r = self.call("POST", "/image", 201, body=body)
        size = _field(r.parsed, "bytes") if r is not None else None
        data = self.png("GET /image", self.call("GET", "/image", 200))
        if data is not None and size is not None:
            self.expect(len(data) == size, f"GET /image: {len(data)} bytes, POST /image said {size}")
        self.call("DELETE", "/image", 204)
        self.call("DELETE", "/image", 404)

    def jobs(self) -> None:
        course = {"start": "1990", "end": "2000"}
        general = {"kind": "plot", "params": {"start": "1990", "end": "2020",
                                              "plot": {"kind": "categories", "field": "locus_group"}},
                   "queue": "default", "max_attempts": 2}
        submitted = []
        if self.takes("POST", "/jobs", "idempotency_key", str):
            # A retried submit with the same Idempotency-Key finds the job its first try made.
            key = f"client-check-{uuid.uuid4()}"
            first = self.job("POST /jobs", self.call("POST", "/jobs", 201, body=course, idempotency_key=key))
            again = self.job("POST /jobs", self.call("POST", "/jobs", 200, body=course, idempotency_key=key))
            if first is not None and again is not None:
                self.expect(str(first.id) == str(again.id), "POST /jobs: a retry with the same Idempotency-Key made another job")
                self.wait(str(first.id))
                self.call("DELETE", "/jobs/{id}", 204, id=str(first.id))
        for body in (course, general):
            r = self.call("POST", "/jobs", 201, body=body)
            job = self.job("POST /jobs", r)
            if job is not None:
                self.expect(_value(job.status) == "submitted", f"POST /jobs: status {_value(job.status)}")
                self.expect(r.headers.get("location") == f"/jobs/{job.id}", "POST /jobs: location is not /jobs/{id}")
                submitted.append(str(job.id))
        if len(submitted) != 2:
            self.fail("POST /jobs: the jobs could not be submitted; the job routes are not checked")
            for path in ("/jobs/{id}", "/jobs/{id}/result", "/results/{id}", "/download/{id}"):
                self.called.add(("GET", path))
            self.called.update({("DELETE", "/jobs/{id}"), ("GET", "/jobs_status"), ("GET", "/job_status"),
                                ("GET", "/events"),
                                ("GET", "/jobs"), ("GET", "/completed_jobs"), ("GET", "/inprogress_jobs"),
                                ("GET", "/incomplete_jobs")})
            return
        r = self.call("GET", "/incomplete_jobs", 200, limit=10)
        if r is not None:
            self.expect(isinstance(r.parsed, list), "GET /incomplete_jobs: not a list of jobs")
        self.call("GET", "/inprogress_jobs", 200, limit=10)
        for job_id in submitted:
            self.wait(job_id)
        for job_id in submitted:
            for alias in ("/jobs_status", "/job_status"):
                job = self.job(f"GET {alias}", self.call("GET", alias, 200, job_id=job_id))
                if job is not None:
                    self.expect(str(job.id) == job_id, f"GET {alias}: another job")
            for path in ("/jobs/{id}/result", "/results/{id}", "/download/{id}"):
                self.png(f"GET {path}", self.call("GET", path, 200, id=job_id))
        r = self.call("GET", "/jobs", 200)
        if r is not None:
            listed = {str(j.id) for j in r.parsed or []}
            self.expect(set(submitted) <= listed, "GET /jobs: the submitted jobs are not listed")
        r = self.call("GET", "/jobs", 200, status="complete", kind="plot", queue="default", limit=1)
        if r is not None:
            self.expect(len(r.parsed or []) == 1, "GET /jobs?limit=1: not one job")
            cursor = r.headers.get("x-next-cursor")
            if self.expect(cursor is not None, "GET /jobs?limit=1 of 2 jobs: no x-next-cursor"):
                before = int(cursor) if self.takes("GET", "/jobs", "before", int) else cursor
                r2 = self.call("GET", "/jobs", 200, before=before, limit=1, offset=0)
                if r2 is not None:
                    pages = {str(j.id) for j in (r.parsed or []) + (r2.parsed or [])}
                    self.expect(pages == set(submitted), "GET /jobs: the two pages are not the two jobs")
        r = self.call("GET", "/completed_jobs", 200, limit=10)
        if r is not None:
            self.expect({str(j.id) for j in r.parsed or []} == set(submitted), "GET /completed_jobs: not the two jobs")
        # Every status change was an event: each job's submit, lease and completion.
        r = self.call("GET", "/events", 200, raw=True, follow=False, queue="default")
        if r is not None:
            text = r.content.decode("utf-8", "replace")
            events = [json.loads(line[len("data:"):]) for line in text.splitlines()
                      if line.startswith("data:")]
            for job_id in submitted:
                statuses = [e.get("status") for e in events if e.get("job") == job_id]
                self.expect(statuses[-3:] == ["submitted", "in progress", "complete"],
                            f"GET /events: job {job_id} has the events {statuses}")
        # A complete job cannot be cancelled; a fresh one can, unless the embedded workers finish
        # it first.
        self.call("POST", "/jobs/{id}/cancel", 409, id=submitted[0])
        r = self.call("POST", "/jobs", 201, body={"start": 1990, "end": 2000})
        fresh = self.job("POST /jobs", r)
        if fresh is not None:
            r = self.call("POST", "/jobs/{id}/cancel", {200, 409}, id=str(fresh.id))
            if r is not None and int(r.status_code) == 200:
                job = self.job("POST /jobs/{id}/cancel", r)
                if job is not None:
                    self.expect(_value(job.status) == "cancelled", f"cancel: status {_value(job.status)}")
            self.call("DELETE", "/jobs/{id}", 204, id=str(fresh.id))
        # A complete job cannot be retried (the embedded workers' stand-in renderer fails none;
        # the Rust tests and the browser test retry failed jobs).
        self.call("POST", "/jobs/{id}/retry", 409, id=submitted[0])
        r = self.call("GET", "/queues", 200)
        if r is not None:
            queues = json.loads(r.content)
            default = [q for q in queues if isinstance(q, dict) and q.get("queue") == "default"]
            self.expect(len(default) == 1 and default[0].get("completed_total", 0) >= 2,
                        f"GET /queues: the default queue lacks its completed jobs: {r.content[:300]!r}")
        self.call("DELETE", "/jobs/{id}", 204, id=submitted[0])
        self.call("GET", "/jobs/{id}", 404, id=submitted[0])
        self.call("DELETE", "/jobs/{id}", 404, id=submitted[0])
        self.call("POST", "/jobs/{id}/cancel", 404, id=submitted[0])
        self.call("POST", "/jobs/{id}/retry", 404, id=submitted[0])

    def wait(self, job_id: str) -> None:
        deadline = time.monotonic() + JOB_DEADLINE_SECONDS
        while True:
            job = self.job("GET /jobs/{id}", self.call("GET", "/jobs/{id}", 200, id=job_id))
            if job is None:
                return
            status = _value(job.status)
            if status == "complete":
                self.expect(_value(getattr(job, "result_type", None)) == "image/png",
                            f"GET /jobs/{job_id}: result_type is not image/png")
                return
            if status == "failed" or time.monotonic() > deadline:
                self.fail(f"GET /jobs/{job_id}: the job is '{status}', not complete")
                return
            time.sleep(0.2)

    def data_bodies(self, ids: list[str]) -> None:
        landings = {"meteorite_landings": [
            {"id": "1", "name": "Aachen", "recclass": "L5", "year": "1880-01-01T00:00:00.000",
             "reclat": "50.775000", "reclong": "6.083330"},
            {"id": "2", "name": "Aarhus", "recclass": "H6", "year": "1951-01-01T00:00:00.000",
             "reclat": "56.183330", "reclong": "10.233330"},
        ]}
        r = self.call("POST", "/data", 200, body=landings)
        if r is not None:
            self.expect(getattr(r.parsed, "loaded", None) == 2, f"POST /data (meteorites): {r.content!r}")
        r = self.call("GET", "/data/{id}", 200, id="2")
        if r is not None:
            fields = r.parsed.to_dict() if hasattr(r.parsed, "to_dict") else r.parsed
            self.expect(isinstance(fields, dict) and fields.get("name") == "Aarhus", f"GET /data/2: {r.content!r}")
        if ids:
            self.call("GET", "/genes/{hgnc_id}", 404, hgnc_id=ids[0])  # the genes were replaced
        if self.takes("POST", "/data", "body", self.types.File):
            # The document offers raw uploads (bytes): a TSV data set, as the HGNC export is.
            tsv = b"hgnc_id\tsymbol\tlocus_group\tdate_approved_reserved\n" \
                  b"HGNC:5\tA1BG\tprotein-coding gene\t1989-06-30\n" \
                  b"HGNC:24086\tA1CF\tprotein-coding gene\t2007-11-23\n"
            r = self.call("POST", "/data", 200, body=tsv)
            if r is not None:
                self.expect(getattr(r.parsed, "loaded", None) == 2, f"POST /data (TSV bytes): {r.content!r}")
        self.call("DELETE", "/data", 204)
        r = self.call("GET", "/genes", 200)
        if r is not None:
            self.expect(r.parsed == [], f"GET /genes after DELETE /data: {r.content[:100]!r}")
        r = self.call("GET", "/data", 200)
        if r is not None:
            self.expect(r.parsed == [], f"GET /data after DELETE /data: {r.content[:100]!r}")


def _union_members(annotation) -> list:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [m for a in typing.get_args(annotation) for m in _union_members(a)]
    return [annotation]


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _field(model, name):
    """A field of a generated model (whose Python name may have a trailing underscore)."""
    for attribute in (name, f"{name}_"):
        if hasattr(model, attribute):
            return getattr(model, attribute)
    return None


def _value(x):
    return x.value if isinstance(x, enum.Enum) else x


def _shown(arguments: dict) -> str:
    shown = []
    for name, value in arguments.items():
        text = value.to_dict() if hasattr(value, "to_dict") else value
        shown.append(f"{name}={json.dumps(text, default=str)[:80]}")
    return " ".join(shown)


def main() -> int:
    base_url, document_path, package = sys.argv[1:4]
    with open(document_path, encoding="utf-8") as f:
        document = json.load(f)
    check = Check(base_url, document, package)
    print(f"client check: {len(check.routes)} routes in the document, "
          f"{len(check.functions)} generated functions", flush=True)
    check.run()
    print(f"client check: {len(check.called & check.routes)} of {len(check.routes)} routes called "
          f"with {check.calls} requests, {len(check.failures)} failures", flush=True)
    for failure in check.failures:
        print(f"  - {failure}")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
