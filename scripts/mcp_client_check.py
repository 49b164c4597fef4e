#!/usr/bin/env python3
"""An independent MCP client for `guardrail mcp`: the official Python SDK (`mcp` from PyPI)
drives the server over stdio and over streamable HTTP, lists the tools, calls every one,
and checks the errors for bad arguments, an unknown tool and missing or wrong bearer tokens.

Usage: mcp_client_check.py PATH/TO/guardrail
Run by crates/guardrail-cli/tests/it/mcp.rs (python_sdk_client_drives_both_transports) with the
interpreter scripts/test installs `mcp` into. Exits non-zero, with the reason, on any failure.
"""

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx2
import jsonschema
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parent.parent
NOW = "2026-11-24T10:00:00Z"
TOKEN = "python-mcp-check-3c9d"
EXPECTED = [
    "search_runbooks",
    "search_evidence",
    "check_policy_conflicts",
    "query_live_logs",
    "slo_status",
    "cost_status",
    "evaluate_deploy",
    "explain_decision",
    "propose_remediation",
    "incident_status",
]
INCIDENT = {
    "id": "inc-001",
    "service": "payments-api",
    "severity": "high",
    "summary": "P99 latency jumped from 220ms to 1400ms",
    "symptoms": "timeouts, db connection saturation",
}
GOOD_CALLS = {
    "search_runbooks": {"query": "latency db connections", "service": "payments-api", "top_k": 2},
    "search_evidence": {"query": "restart", "service": "payments-api"},
    "check_policy_conflicts": {"service": "payments-api", "action": "restart_service", "severity": "critical"},
    "query_live_logs": {"service": "payments-api"},
    "slo_status": {},
    "cost_status": {},
    "evaluate_deploy": {},
    "explain_decision": {},
    "propose_remediation": {"incident": INCIDENT},
    "incident_status": {},
}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def fixture(binary, tmp):
    for sub in ["config", "data"]:
        (tmp / sub).mkdir()
    for f in ["config/policies.yaml", "config/slos.yaml", "data/metrics.json", "data/cost.json"]:
        shutil.copy(REPO / "examples/deploy-gate" / f, tmp / f)
    subprocess.run(
        [binary, "kb", "load", str(REPO / "examples/governor/sample_data.json"), "--kb", str(tmp / "kb.db")],
        check=True,
        capture_output=True,
    )
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    (tmp / "tokens.yaml").write_text(f"tokens:\n  - sha256: {digest}\n    identity: python-check\n    role: deployer\n")
    return [
        "mcp",
        "--root", str(tmp),
        "--kb", str(tmp / "kb.db"),
        "--store", str(tmp / "audit.db"),
        "--logs", str(REPO / "examples/governor/logs.ndjson"),
        "--now", NOW,
    ]


def payload(result):
    text = result.content[0].text if result.content else "null"
    return json.loads(text)


async def exercise(session, label):
    init = await session.initialize()
    check(init.server_info.name == "guardrail", f"{label}: server name {init.server_info.name}")
    listed = await session.list_tools()
    names = [t.name for t in listed.tools]
    check(names == EXPECTED, f"{label}: tools {names}")
    output_schemas = {}
    for t in listed.tools:
        a = t.annotations
        check(a is not None and a.destructive_hint is False, f"{label}: {t.name} annotations {a}")
        check(t.input_schema.get("type") == "object", f"{label}: {t.name} schema")
        check(t.input_schema.get("additionalProperties") is False, f"{label}: {t.name} accepts unknown arguments")
        check(t.output_schema is not None and t.output_schema.get("type") == "object", f"{label}: {t.name} outputSchema")
        jsonschema.Draft202012Validator.check_schema(t.input_schema)
        jsonschema.Draft202012Validator.check_schema(t.output_schema)
        output_schemas[t.name] = jsonschema.Draft202012Validator(t.output_schema)
        want_read_only = t.name != "evaluate_deploy"
        check(a.read_only_hint is want_read_only, f"{label}: {t.name} readOnlyHint {a.read_only_hint}")
    for name in EXPECTED:
        r = await session.call_tool(name, GOOD_CALLS[name])
        check(not r.is_error, f"{label}: {name} failed: {r.content}")
        check(r.structured_content is not None, f"{label}: {name} has no structuredContent")
        # The SDK checks this too (MCP 2025-06-18); checked here so a client that stops doing it
        # cannot hide a result that drifted from its schema.
        errors = [e.message for e in output_schemas[name].iter_errors(r.structured_content)]
        check(not errors, f"{label}: {name} structuredContent violates its outputSchema: {errors}")
    hits = payload(await session.call_tool("search_runbooks", GOOD_CALLS["search_runbooks"]))
    check(isinstance(hits, list) and hits and hits[0]["id"].startswith("rbk-api-"), f"{label}: runbooks {hits}")
    dry = payload(await session.call_tool("evaluate_deploy", {}))
    check(dry["action"] in ("ALLOW", "WARN", "DELAY", "BLOCK") and dry["recorded"] is False, f"{label}: {dry}")
    prop = payload(await session.call_tool("propose_remediation", {"incident": INCIDENT}))
    check(prop["decision"] in ("execute", "block_and_escalate") and prop["executed"] is False, f"{label}: {prop}")
    rec = payload(await session.call_tool("evaluate_deploy", {"record": True}))
    check(rec["recorded"] is True and rec["audit"]["seq"] >= 1, f"{label}: recorded {rec}")
    # Bad arguments: a tool error naming the argument.
    bad = await session.call_tool("search_runbooks", {"query": "x"})
    check(bad.is_error and "service" in payload(bad)["error"], f"{label}: bad args {bad}")
    bad = await session.call_tool("check_policy_conflicts", {"service": "payments-api", "action": "x", "severity": "urgent"})
    check(bad.is_error, f"{label}: bad severity accepted")
    bad = await session.call_tool("evaluate_deploy", {"cost_block_pct": 99})
    check(bad.is_error and payload(bad)["kind"] == "invalid_arguments", f"{label}: a threshold argument was accepted")
    # An unknown tool: a protocol error.
    try:
        await session.call_tool("drop_tables", {})
    except MCPError as e:
        check("unknown tool" in str(e), f"{label}: unknown tool error {e}")
    else:
        raise AssertionError(f"{label}: an unknown tool was called")
    print(f"{label}: {len(names)} tools listed and called; bad arguments and unknown tool refused")


async def over_stdio(binary, args):
    params = StdioServerParameters(command=binary, args=args)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await exercise(session, "stdio")


async def over_http(binary, command, tmp, label):
    proc = subprocess.Popen(
        [binary, *command, "--tokens", str(tmp / "tokens.yaml")],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        for _ in range(10):
            line = proc.stderr.readline()
            if not line:
                break
            if "http://" in line and line.strip().endswith("/mcp"):
                url = line.strip().split(" ")[-1]
                break
        check(url is not None, f"{label}: the server announced no /mcp address")
        async with httpx2.AsyncClient(timeout=60) as raw:
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
            headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
            for auth in [None, "Bearer wrong-token"]:
                h = dict(headers)
                if auth:
                    h["Authorization"] = auth
                r = await raw.post(url, json=init, headers=h)
                check(r.status_code == 401, f"{label}: {auth!r} got {r.status_code}")
                check(r.headers.get("www-authenticate", "").startswith("Bearer"), f"{label}: no Bearer challenge")
        # The SDK with a wrong token cannot initialize.
        try:
            async with httpx2.AsyncClient(headers={"Authorization": "Bearer wrong-token"}) as wrong:
                async with streamable_http_client(url, http_client=wrong) as (read, write):
                    async with ClientSession(read, write) as session:
                        await asyncio.wait_for(session.initialize(), 20)
        except Exception:  # noqa: BLE001 - any failure to initialize is the point
            pass
        else:
            raise AssertionError(f"{label}: initialized with a wrong token")
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
            async with streamable_http_client(url, http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    await exercise(session, label)
        print(f"{label}: missing and wrong tokens refused with 401")
    except BaseException:
        # Show what the server said: a failure here is otherwise only a client-side traceback.
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        print(f"{label}: server exit {proc.returncode}, stderr:\n{err}", file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 64
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        args = fixture(binary, tmp)
        asyncio.run(over_stdio(binary, args))
        asyncio.run(over_http(binary, [*args, "--http", "127.0.0.1:0"], tmp, "http"))
        # `guardrail serve --mcp`: the same /mcp beside the HTTP API (its own audit store).
        serve = ["serve", "--mcp", "--bind", "127.0.0.1:0", *args[1:]]
        serve[serve.index("--store") + 1] = str(tmp / "serve-audit.db")
        asyncio.run(over_http(binary, serve, tmp, "serve --mcp"))
    print("python mcp client: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
