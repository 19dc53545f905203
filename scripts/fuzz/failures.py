"""Lists every failing request of a schemathesis run, grouped, from its NDJSON report.

Usage: python3 scripts/fuzz/failures.py REPORT.ndjson [EXAMPLES]

Schemathesis shows one example per failure kind and operation; this shows each group of failing
requests (operation, check, status, the server's error message with its numbers and quoted
values blanked) with how many requests fell in it and EXAMPLES of them (default 1) as curl
commands. scripts/fuzz_api.sh keeps the report of its last run in
${CARGO_TARGET_DIR:-target}/fuzz-report/.
"""

import base64
import json
import re
import shlex
import sys


def decode(body) -> str:
    if isinstance(body, dict) and "$base64" in body:
        return base64.b64decode(body["$base64"]).decode("utf-8", "replace")
    return "" if body is None else str(body)


def curl(request: dict, body: str) -> str:
    parts = ["curl", "-X", request["method"]]
    for name, values in request.get("headers", {}).items():
        if name.lower() in ("content-type", "idempotency-key"):
            for value in values:
                parts += ["-H", f"{name}: {value}"]
    if body:
        parts += ["--data-binary", body if len(body) <= 400 else body[:400] + "…"]
    parts.append(request["uri"])
    return " ".join(shlex.quote(p) for p in parts)


def main() -> int:
    path = sys.argv[1]
    shown = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    groups: dict[tuple, list] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            event = json.loads(line).get("ScenarioFinished")
            if not event:
                continue
            recorder = event["recorder"]
            for case_id, checks in recorder.get("checks", {}).items():
                interaction = recorder.get("interactions", {}).get(case_id)
                if not interaction or not interaction.get("response"):
                    continue
                for check in checks:
                    if check["status"] != "failure":
                        continue
                    failure = check["failure_info"]["failure"]
                    response = interaction["response"]
                    answer = decode(response.get("content"))
                    content_type = " ".join(response.get("headers", {}).get("content-type", []))
                    if "json" not in content_type and not content_type.startswith("text/"):
                        answer = f"<{len(answer)} characters of {content_type or 'no content type'}>"
                    try:
                        message = json.loads(answer)["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        message = answer[:120]
                    blanked = re.sub(r"unknown field `.*?`, expected", "unknown field …, expected", message, flags=re.S)
                    blanked = re.sub(r"\(keys: .*?\); expected", "(keys: …); expected", blanked, flags=re.S)
                    blanked = re.sub(r"\d+", "N", re.sub(r"'[^']*'|`[^`]*`", "…", blanked))[:160]
                    detail = [x.strip() for x in failure["message"].splitlines()
                              if x.strip().startswith(("Invalid component", "Received", "Documented"))]
                    key = (failure["operation"], failure["code"], failure["title"],
                           interaction["response"]["status_code"], blanked, " ".join(detail)[:200])
                    request = interaction["request"]
                    groups.setdefault(key, []).append((curl(request, decode(request.get("body"))), answer[:300]))
    for (operation, code, title, status, blanked, detail), cases in sorted(groups.items()):
        print(f"{operation}  {code} {title}  -> {status}  ({len(cases)} requests)")
        print(f"    server: {blanked}")
        if detail:
            print(f"    schemathesis: {detail}")
        for command, answer in cases[:shown]:
            print(f"    {command}")
            print(f"      => {answer}")
    print(f"{len(groups)} groups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
