"""Soak: many authorization-code exchanges against the local run (`make run`), memory and latency per block.

Starts `python -m chalicelib.local` on free ports, signs the demo user in once (login + consent), then
repeats: GET /authorize (consent remembered: 302 with a code) and POST /token (the code exchange).
After every block it prints the RSS of the local-run process (moto lives in it) and of `chalice local`,
the items in moto's tables, and the p50/p95/p99/max of the exchanges in that block. Healthy means
latency stays flat and memory follows only the items (each exchange leaves a grant and a refresh
token, which live for days; used codes go with the TTL sweep, chalicelib/local_moto.py).

    .venv/bin/python bench/soak_local.py [--exchanges 10000] [--block 1000] [--refresh-seconds N]

With --refresh-seconds N the local run issues refresh tokens (and so grants) that expire after N and
2N seconds: the stored state then stops growing once the TTL sweep catches up, and so must memory.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import boto3
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.local import DEFAULTS, free_port  # noqa: E402

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def start_local_run(log: Path, settings: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, int]:
    port, moto_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OAUTH_", "API_", "KMS_"))}
    env.update({"PORT": str(port), "MOTO_PORT": str(moto_port), "ISSUER_URL": issuer, "PYTHONUNBUFFERED": "1",
                **settings})
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "chalicelib.local"], cwd=ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(issuer + "/.well-known/oauth-authorization-server", timeout=2).ok:
                return process, issuer, moto_port
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop(process)
    raise SystemExit(f"the local run did not start:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def stored_items(moto_port: int) -> int:
    """Items in every table of the local run's moto (its DescribeTable counts them live)."""
    dynamodb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")
    return sum(dynamodb.describe_table(TableName=name)["Table"]["ItemCount"]
               for name in dynamodb.list_tables()["TableNames"])


def authorize_url(issuer: str) -> str:
    query = {"response_type": "code", "client_id": DEFAULTS["DEMO_CLIENT_ID"],
             "redirect_uri": DEFAULTS["DEMO_REDIRECT_URI"], "scope": "read:analysis", "state": "soak",
             "code_challenge": CHALLENGE, "code_challenge_method": "S256"}
    return issuer + "/authorize?" + urlencode(query)


def form_fields(html: str) -> dict[str, str]:
    return {unescape(name): unescape(value) for name, value in HIDDEN.findall(html)}


def sign_in(browser: requests.Session, issuer: str) -> None:
    """Log the demo user in and allow the demo client once; later /authorize calls redirect at once."""
    login = browser.get(authorize_url(issuer), timeout=10)
    consent = browser.post(issuer + "/login", timeout=10, data={
        **form_fields(login.text), "email": DEFAULTS["DEMO_EMAIL"], "password": DEFAULTS["DEMO_PASSWORD"]})
    allowed = browser.post(issuer + "/consent", data={**form_fields(consent.text), "decision": "allow"},
                           allow_redirects=False, timeout=10)
    if "code=" not in allowed.headers.get("Location", ""):
        raise SystemExit(f"sign-in failed: {allowed.status_code} {allowed.text[:300]}")


def one_exchange(browser: requests.Session, issuer: str) -> float:
    """One code from /authorize, exchanged at /token; returns the exchange's latency in ms."""
    redirect = browser.get(authorize_url(issuer), allow_redirects=False, timeout=30)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": DEFAULTS["DEMO_REDIRECT_URI"],
            "code_verifier": VERIFIER}
    started = time.perf_counter()
    answer = requests.post(issuer + "/token", data=body, timeout=30,
                           auth=(DEFAULTS["DEMO_CLIENT_ID"], DEFAULTS["DEMO_CLIENT_SECRET"]))
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200 or "access_token" not in answer.json():
        raise SystemExit(f"exchange failed: {answer.status_code} {answer.text[:300]}")
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def soak(exchanges: int, block: int, settings: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        process, issuer, moto_port = start_local_run(Path(scratch) / "local-run.log", settings)
        try:
            browser = requests.Session()
            sign_in(browser, issuer)
            chalice = children(process.pid)
            print(f"{'exchanges':>9} {'local run MB':>12} {'chalice MB':>10} {'items':>6} {'p50 ms':>7} {'p95 ms':>7} "
                  f"{'p99 ms':>7} {'max ms':>7} {'block s':>7}", flush=True)
            done, started = 0, time.monotonic()
            while done < exchanges:
                size = min(block, exchanges - done)
                block_started = time.monotonic()
                latencies = [one_exchange(browser, issuer) for _ in range(size)]
                done += size
                chalice_mb = sum(rss_mb(pid) for pid in chalice)
                print(f"{done:>9} {rss_mb(process.pid):>12.0f} {chalice_mb:>10.0f} {stored_items(moto_port):>6} "
                      f"{statistics.median(latencies):>7.1f} {percentile(latencies, 0.95):>7.1f} "
                      f"{percentile(latencies, 0.99):>7.1f} {max(latencies):>7.1f} "
                      f"{time.monotonic() - block_started:>7.1f}", flush=True)
            print(f"{done} exchanges in {time.monotonic() - started:.0f} s")
        finally:
            stop_started = time.monotonic()
            stop(process)
            print(f"stopped in {time.monotonic() - stop_started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=10_000, help="code exchanges in all (default 10000)")
    parser.add_argument("--block", type=int, default=1000, help="exchanges per printed line (default 1000)")
    parser.add_argument("--refresh-seconds", type=int, help="refresh token lifetime (grants: twice that); "
                        "default: the settings' days")
    args = parser.parse_args()
    lifetimes = {"REFRESH_IDLE_SECONDS": str(args.refresh_seconds),
                 "REFRESH_ABSOLUTE_SECONDS": str(2 * args.refresh_seconds)} if args.refresh_seconds else {}
    soak(args.exchanges, args.block, lifetimes)


if __name__ == "__main__":
    main()
