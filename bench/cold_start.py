"""Cold start: wall time and peak memory of importing the app and serving one JWKS request.

Each measurement runs in a fresh Python process (as a new Lambda container would), against an
embedded moto server, beside the floor: a bare Chalice app that imports boto3/botocore and serves
one route. Prints the figures and the ratio (goal: ≤ 1.2× the floor).

    .venv/bin/python bench/cold_start.py [runs]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
    "requestContext": {"resourcePath": "{path}", "httpMethod": "GET", "requestId": "bench", "stage": "api"},
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


def event_for(path: str) -> str:
    return json.dumps(json.loads(json.dumps(EVENT).replace("{path}", path)))


def measure_once(setup: str, env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE.format(setup=setup), event_for("/.well-known/jwks.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    return figures["seconds"], figures["peak_mib"]


def measure(env: dict[str, str], runs: int) -> dict[str, tuple[float, float]]:
    """Alternate the two, so a busy machine slows both alike; medians of each."""
    setups = {"ours": OURS, "floor": FLOOR, "floor_read": FLOOR_WITH_READ}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in setups}
    for _ in range(runs):
        for name, setup in setups.items():
            samples[name].append(measure_once(setup, env))
    return {
        name: (statistics.median(s[0] for s in runs_), statistics.median(s[1] for s in runs_))
        for name, runs_ in samples.items()
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
        provision(wiring.build(settings))
        figures = measure(env, runs)
        ours, floor, floor_read = figures["ours"], figures["floor"], figures["floor_read"]
    finally:
        server.stop()
    print(f"cold start, median of {runs} fresh processes (import + one GET /.well-known/jwks.json)")
    print(f"  clipron-oauth : {ours[0] * 1000:7.1f} ms  peak {ours[1]:6.1f} MiB")
    print(f"  floor         : {floor[0] * 1000:7.1f} ms  peak {floor[1]:6.1f} MiB  (bare Chalice + boto3)")
    print(f"  floor + read  : {floor_read[0] * 1000:7.1f} ms  peak {floor_read[1]:6.1f} MiB  (plus one Query)")
    print(f"  ratio         : {ours[0] / floor[0]:7.2f}x time, {ours[1] / floor[1]:.2f}x memory  (goal <= 1.2x)")
    print(f"  ratio vs read : {ours[0] / floor_read[0]:7.2f}x time, {ours[1] / floor_read[1]:.2f}x memory")


if __name__ == "__main__":
    main()
