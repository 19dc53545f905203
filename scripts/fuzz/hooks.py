"""Schemathesis hooks of scripts/fuzz_api.sh: the few rules of the API that JSON Schema cannot state.

The OpenAPI document states every bound it can (types, formats, ranges, lengths, patterns,
required and forbidden fields). A handful of rules relate two values to each other, or a value to
the bytes of a text body, and no JSON Schema keyword expresses them. A *positive* test case (one
the fuzzer generated from the schema, so one it expects the server to accept) that breaks one of
them is dropped here, before it is sent, rather than reported as a valid request the server
refused. Negative test cases are left alone (the server must refuse them whatever else they
break), but for one kind that does not exist on the wire: a raw body (text or bytes) whose
"type" the fuzzer broke by making it an array or a number is sent as that value's JSON text,
which is a string again, so it is not a schema violation at all; those cases are dropped.

The rules (each belongs in the descriptions of the document as well):

- a plot's `start` must not be after its `end` (`POST /jobs`, `POST /image`);
- the records of a data set must have distinct ids (`POST /data` with a JSON body:
  `uniqueItems` compares whole records, not one field of them);
- a raw data set (`text/tab-separated-values`, `text/plain`, `application/octet-stream`) must
  parse as TSV (or as a JSON data set sent as text): a header line with distinct column names,
  records with ids. A positive raw body is not dropped but wrapped into such a TSV
  (`raw_data_set`);
- the `Idempotency-Key` header and a body's `unique_key`, when both are given, must be equal;
- a batch (`POST /jobs` with an array) takes no `Idempotency-Key` header;
- a job's `run_at` lies at most 366 days ahead (of the time it is submitted).

When the server is changed so that a rule no longer holds (it accepts the request), its filter
here can go.
"""

from __future__ import annotations

import datetime
import json
import re

import schemathesis


def _positive(case) -> bool:
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def _year(value):
    """The year of a schema-valid `start` or `end`: an integer (JSON Schema counts `1990.0` as
    one), or a string of its digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _too_far(run_at) -> bool:
    """Whether a schema-valid `run_at` lies more than 366 days ahead."""
    if not isinstance(run_at, str):
        return False
    try:
        at = datetime.datetime.fromisoformat(run_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if at.tzinfo is None:
        return False
    now = datetime.datetime.now(datetime.timezone.utc)
    return at - now > datetime.timedelta(days=366)


def _range_is_backwards(params) -> bool:
    if not isinstance(params, dict):
        return False
    start, end = _year(params.get("start")), _year(params.get("end"))
    return start is not None and end is not None and start > end


@schemathesis.hook("filter_case").apply_to(method="POST", path="/jobs")
def submit_the_server_can_accept(context, case) -> bool:
    if not _positive(case):
        return True
    body = case.body
    header = {k.lower(): v for k, v in (case.headers or {}).items()}.get("idempotency-key")
    if isinstance(body, list) and header is not None:
        return False
    if isinstance(body, dict):
        params = body.get("params") if "kind" in body else body
        if _range_is_backwards(params):
            return False
        if _too_far(body.get("run_at")):
            return False
        key = body.get("unique_key")
        if header is not None and key is not None and header != key:
            return False
    return True


@schemathesis.hook("filter_case").apply_to(method="POST", path="/image")
def image_the_server_can_accept(context, case) -> bool:
    return not (_positive(case) and _range_is_backwards(case.body))


def _id_text(value):
    """A record id as the server reads it: an integer (also one written as `5.0`) is its
    decimal text."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def _ids(body):
    """The record ids of a JSON data set (one of the two layouts the schema allows)."""
    if isinstance(body, dict):
        if isinstance(body.get("response"), dict):
            docs = body["response"].get("docs")
            return [_id_text(r.get("hgnc_id")) for r in docs if isinstance(r, dict)] if isinstance(docs, list) else []
        records = body.get("meteorite_landings")
        if isinstance(records, list):
            return [_id_text(r.get("id")) for r in records if isinstance(r, dict)]
    return []


def _raw(case) -> bool:
    """Whether the case sends a raw body: text, or bytes (`application/octet-stream`)."""
    media_type = (case.media_type or "").lower()
    return media_type.startswith("text/") or media_type == "application/octet-stream"


@schemathesis.hook("filter_case").apply_to(method="POST", path="/data")
def data_set_the_server_can_accept(context, case) -> bool:
    if _raw(case):
        # On the wire a raw body is bytes whatever the fuzzer made of it: a negative case that
        # "breaks the type" of a text body by sending an array or a number sends its JSON text,
        # which is a string, and a JSON data set sent as text is a data set.
        return case.body is None or isinstance(case.body, (str, bytes)) or not _is_json(case.body)
    if not _positive(case):
        return True
    ids = _ids(case.body)
    return len(ids) == len(set(ids))


def _is_json(body) -> bool:
    return isinstance(body, (dict, list, int, float, bool))


@schemathesis.hook("map_case").apply_to(method="POST", path="/data")
def raw_data_set(context, case):
    """A positive raw body becomes a two-column TSV data set that holds what was generated.

    The schema of a raw body is a string (or bytes); which of them are data sets is the parser's
    business (holidapp-core/tests/parse.rs). What was generated still reaches the parser, as a
    cell.
    """
    if _positive(case) and _raw(case) and isinstance(case.body, (str, bytes)):
        text = case.body if isinstance(case.body, str) else case.body.hex()
        cell = re.sub(r"[\t\r\n]", " ", text)
        data = f"id\tvalue\n1\t{cell}\n"
        case.body = data if isinstance(case.body, str) else data.encode()
    return case


@schemathesis.hook("filter_case").apply_to(method="GET", path="/events")
def events_that_end(context, case) -> bool:
    """A followed event stream never ends, and the fuzzer reads every answer to its end: only
    the cases that ask for the retained events alone (`follow=false`) are sent."""
    follow = (case.query or {}).get("follow")
    return follow is False or follow == "false"
