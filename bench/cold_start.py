"""Cold start: wall time and peak memory of a first request in a fresh process, beside its floor.

Each measurement runs in a fresh Python process (as a new Lambda container would), against an
embedded moto server:

- the first `POST /token` (client_credentials): import the app, look the client up, load the key
  ring, KMS-decrypt the signing key, sign; beside the floor: the SAME AWS calls (recorded from that
  request, replayed) made with bare boto3, the envelope opened and the token signed with bare PyJWT
  (goal <= 1.1x);
- one `GET /.well-known/jwks.json`: beside a bare Chalice app importing boto3, and that app making
  one DynamoDB call (goal <= 1.2x).

Alternating runs, medians. `.venv/bin/python bench/cold_start.py [runs]`
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_SECRET = "bench-cold-start-secret-0123456789abcdef"

EVENT = {
    "resource": "{path}",
    "path": "{path}",
    "httpMethod": "GET",
    "headers": {"Host": "127.0.0.1"},
    "multiValueHeaders": {},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": None,
    "stageVariables": None,
    "requestContext": {"resourcePath": "{path}", "httpMethod": "GET", "requestId": "bench", "stage": "api",
                       "identity": {"sourceIp": "127.0.0.1"}},
    "body": None,
    "isBase64Encoded": False,
}

MEASURE = r"""
import json, sys, time
started = time.perf_counter()
{setup}
response = handler(json.loads(sys.argv[1]), None)
elapsed = time.perf_counter() - started
assert response["statusCode"] == 200, response
# VmHWM: this process's own peak RSS (ru_maxrss would carry the forking parent's high-water mark)
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"seconds": elapsed, "peak_mib": peak_kib / 1024}}))
"""

OURS = "import app\nhandler = app.app"
FLOOR = """
import boto3, botocore.session
from chalice import Chalice
floor = Chalice(app_name="floor")
@floor.route("/.well-known/jwks.json")
def jwks():
    return {"keys": []}
handler = floor
"""
# The floor for any request that reads state: the same bare app making one DynamoDB call.
FLOOR_WITH_READ = FLOOR.replace(
    'return {"keys": []}',
    'boto3.client("dynamodb").query(TableName=os.environ["OAUTH_TABLE"], KeyConditionExpression="pk = :k", '
    'ExpressionAttributeValues={":k": {"S": "keyring"}}, ConsistentRead=True)\n    return {"keys": []}',
).replace("import boto3,", "import os, boto3,")

# The floor of a first /token: bare boto3 replays the recorded calls (sys.argv[2]), opens the
# envelope with AES-GCM, loads the PEM and signs with PyJWT; no Chalice, no PynamoDB, no app.
TOKEN_FLOOR = """
import base64, json, os, time
import boto3, jwt
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives import serialization
plan = json.loads(sys.argv[2])

def handler(event, context):
    clients, plaintext = {}, None
    for service, operation, params in plan["calls"]:
        client = clients.get(service) or clients.setdefault(service, boto3.client(service))
        if "CiphertextBlob" in params:
            params = {**params, "CiphertextBlob": base64.b64decode(params["CiphertextBlob"])}
        answer = getattr(client, operation)(**params)
        plaintext = answer.get("Plaintext", plaintext)
    envelope = plan["envelope"]
    pem = AESGCM(plaintext).decrypt(base64.b64decode(envelope["nonce"]), base64.b64decode(envelope["ciphertext"]),
                                    plan["aad"].encode())
    key = serialization.load_pem_private_key(pem, password=None)
    now = int(time.time())
    token = jwt.encode({"iss": "floor", "sub": "floor", "aud": "floor", "iat": now, "exp": now + 900,
                        "scope": "read:analysis", "jti": os.urandom(16).hex()}, key, algorithm="RS256",
                       headers={"kid": plan["kid"], "typ": "at+jwt"})
    return {"statusCode": 200, "body": json.dumps({"access_token": token})}
"""


def event_for(path: str, method: str = "GET", body: str | None = None,
              headers: dict[str, str] | None = None) -> str:
    event = json.loads(json.dumps(EVENT).replace("{path}", path))
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["headers"].update(headers or {})
    event["body"] = body
    return json.dumps(event)


def token_event(client_id: str) -> str:
    basic = base64.b64encode(f"{client_id}:{BENCH_SECRET}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
    return event_for("/token", "POST", "grant_type=client_credentials", headers)


def measure_once(setup: str, env: dict[str, str], event: str, extra: str = "") -> tuple[float, float]:
    arguments = [sys.executable, "-c", MEASURE.format(setup=setup), event] + ([extra] if extra else [])
    out = subprocess.run(arguments, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    return figures["seconds"], figures["peak_mib"]


def measure(env: dict[str, str], runs: int, cases: dict[str, tuple[str, str, str]]) -> dict[str, tuple[float, float]]:
    """Alternate the cases, so a busy machine slows all alike; medians of each."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (setup, event, extra) in cases.items():
            samples[name].append(measure_once(setup, env, event, extra))
    return {
        name: (statistics.median(s[0] for s in runs_), statistics.median(s[1] for s in runs_))
        for name, runs_ in samples.items()
    }


def seed_machine_client(services: Any) -> str:
    from chalicelib import clock
    from chalicelib.crypto.secrets import digest, new_id
    from chalicelib.records import ClientRecord, ClientSecret

    client = ClientRecord(new_id("app_"), "Bench cold start", [], ["read:analysis"], ["client_credentials"],
                          "client_secret_basic", secrets=[ClientSecret(digest(BENCH_SECRET))], created_at=clock.now())
    services.store.create_client(client)
    return client.client_id


def record_token_plan(event: str) -> dict[str, Any]:
    """Serve the first /token on a fresh wiring in this process, recording every AWS call's parameters."""
    from chalicelib import wiring
    from chalicelib.crypto.envelope import _aad
    from chalicelib.crypto.keyring import envelope_context
    from chalicelib.store.dynamo import shared_connection

    wiring.reset()
    services = wiring.services()
    calls: list[tuple[str, str, dict[str, Any]]] = []

    def remember(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "CiphertextBlob" in params:
            params = {**params, "CiphertextBlob": base64.b64encode(params["CiphertextBlob"]).decode()}
        calls.append((model.service_model.service_name, model.name, params))

    for client in (shared_connection().client, services.kms()):
        client.meta.events.register("provide-client-params", lambda params, model, **kw: remember(dict(params), model))
    from app import app

    response = app(json.loads(event), None)
    assert response["statusCode"] == 200, response
    record = services.keyring.current()
    from botocore import xform_name

    return {
        "calls": [(service, xform_name(operation), params) for service, operation, params in calls],
        "envelope": record.private_envelope, "kid": record.kid, "aad": _aad(envelope_context(record.kid)).decode(),
    }


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    from chalicelib import wiring
    from chalicelib.local import aws_environment, free_port, start_moto
    from chalicelib.provision import provision
    from chalicelib.settings import load_settings

    port = free_port()
    env = aws_environment(port, dict(os.environ))
    env["PYTHONPATH"] = str(ROOT)
    os.environ.update(env)
    server = start_moto(port)
    try:
        settings = load_settings(env)
        env["OAUTH_TABLE"] = settings.table_name
        services = wiring.build(settings)
        provision(services)
        token = token_event(seed_machine_client(services))
        plan = record_token_plan(token)
        jwks = event_for("/.well-known/jwks.json")
        figures = measure(env, runs, {
            "token": (OURS, token, ""), "token_floor": ("import sys\n" + TOKEN_FLOOR, token, json.dumps(plan)),
            "ours": (OURS, jwks, ""), "floor": (FLOOR, jwks, ""), "floor_read": (FLOOR_WITH_READ, jwks, ""),
        })
    finally:
        server.stop()
    print_figures(runs, figures, plan)


def print_figures(runs: int, figures: dict[str, tuple[float, float]], plan: dict[str, Any]) -> None:
    token, token_floor = figures["token"], figures["token_floor"]
    ours, floor, floor_read = figures["ours"], figures["floor"], figures["floor_read"]
    calls = ", ".join(f"{service}:{operation}" for service, operation, _ in plan["calls"])
    print(f"cold start, median of {runs} fresh processes each")
    print("first POST /token (client_credentials): import + client lookup + key ring + KMS decrypt + signature")
    print(f"  AWS calls     : {calls}")
    print(f"  clipron-oauth : {token[0] * 1000:7.1f} ms  peak {token[1]:6.1f} MiB")
    print(f"  floor         : {token_floor[0] * 1000:7.1f} ms  peak {token_floor[1]:6.1f} MiB  "
          "(the same calls with bare boto3, AES-GCM, PyJWT RS256)")
    print(f"  ratio         : {token[0] / token_floor[0]:7.2f}x time, {token[1] / token_floor[1]:.2f}x memory  "
          "(goal <= 1.1x)")
    print("first GET /.well-known/jwks.json: import + one request")
    print(f"  clipron-oauth : {ours[0] * 1000:7.1f} ms  peak {ours[1]:6.1f} MiB")
    print(f"  floor         : {floor[0] * 1000:7.1f} ms  peak {floor[1]:6.1f} MiB  (bare Chalice + boto3)")
    print(f"  floor + read  : {floor_read[0] * 1000:7.1f} ms  peak {floor_read[1]:6.1f} MiB  (plus one Query)")
    print(f"  ratio         : {ours[0] / floor[0]:7.2f}x time, {ours[1] / floor[1]:.2f}x memory  (goal <= 1.2x)")
    print(f"  ratio vs read : {ours[0] / floor_read[0]:7.2f}x time, {ours[1] / floor_read[1]:.2f}x memory")


if __name__ == "__main__":
    main()
