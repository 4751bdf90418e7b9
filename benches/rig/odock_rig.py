#!/usr/bin/env python3
"""Runs odock-server in the shared benchmark rig (`../shared/rig`, see its README).

Prepares a fresh data directory with a SQLite database (or uses `--database-url` and
`--redis-url` for production mode) holding the rig's two models — `gpt-4o-mini` on the nginx
upstream's `/v1` and `gpt-4o-mini-stream` on its `/stream/v1` — and a key granted to both. With
`--governed` the key is also governed: an organisation budget, a REQUESTS quota on the key and a
key policy (requests and tokens per minute), all far above what the load reaches, so every request
admits, holds and settles without being refused. Then it runs the rig with odock in the same run
and table as `direct`:

    benches/rig/odock_rig.py --rig /tmp/odock-rig --server target/release/odock-server --governed

(`PEERS`, `DURATION`, `CONCURRENCY`, ... pass through to the rig.)
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ADMIN_TOKEN = "odock-rig-admin-token-0123456789abcdef"
PORT = 8090
UPSTREAM = "http://127.0.0.1:18080"


def call(method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
        return json.loads(text) if text else None


def wait_ready(process):
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"odock-server exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/v1/health", timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("odock-server did not become ready")


def configure(governed):
    org = call("POST", "/api/admin/organisations", {"name": "Rig"})["id"]
    root = f"/api/organisations/{org}"
    models = []
    for name, base in [("gpt-4o-mini", f"{UPSTREAM}/v1"), ("gpt-4o-mini-stream", f"{UPSTREAM}/stream/v1")]:
        provider = call("POST", f"{root}/providers",
                        {"type": "OPENAI", "name": name, "baseUrl": base, "timeoutMs": 30000})["id"]
        call("POST", f"{root}/providers/{provider}/keys", {"name": "rig", "key": "sk-rig-dummy-upstream-key"})
        models.append(call("POST", f"{root}/models", {
            "name": name, "slug": "gpt-4o-mini", "type": "chat", "providerId": provider,
            "pricing": {"input": {"text": 150_000_000}, "output": {"text": 600_000_000}},
        })["id"])
    created = call("POST", f"{root}/apikeys", {"name": "rig", "type": "ORGANISATION"})
    call("POST", f"{root}/apikeys/{created['id']}/model-access", {"modelIds": models})
    if governed:
        call("POST", f"{root}/budgets", {"name": "rig budget", "ownerType": "ORG",
                                         "amountNanos": 10**18, "period": "MONTHLY"})
        call("POST", f"{root}/quotas", {"name": "rig requests", "ownerType": "APIKEY",
                                        "ownerId": created["id"], "metric": "REQUESTS",
                                        "limit": 10**15, "period": "DAILY"})
        call("PATCH", f"{root}/apikeys/{created['id']}", {"policies": {
            "requestsPerMinute": 1_000_000_000, "tokensPerMinute": 10**15}})
    return created["key"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rig", required=True, help="a writable copy of the shared rig")
    parser.add_argument("--server", required=True, help="the odock-server binary (release build)")
    parser.add_argument("--name", default="odock")
    parser.add_argument("--governed", action="store_true")
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--master-key", help="needed with PostgreSQL")
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="odock-rig-")
    env = {
        "ODOCK_LISTEN": f"127.0.0.1:{PORT}",
        "ODOCK_DATABASE_URL": args.database_url or f"sqlite://{data}/odock.db",
        "ODOCK_ADMIN_TOKEN": ADMIN_TOKEN,
        "ODOCK_LOG": "warn",
        # The rig's upstream is on loopback: the operator allows it explicitly.
        "ODOCK_EGRESS_ALLOW": "127.0.0.1/32",
    }
    if args.redis_url:
        env["ODOCK_REDIS_URL"] = args.redis_url
    if args.master_key:
        env["ODOCK_MASTER_KEY"] = args.master_key
    server = os.path.abspath(args.server)
    process = subprocess.Popen([server], env={**os.environ, **env}, cwd=data)
    try:
        wait_ready(process)
        key = configure(args.governed)
    finally:
        process.terminate()
        process.wait(timeout=30)

    start = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.quote(server)
    name = args.name + ("-governed" if args.governed else "")
    command = ["./run-peers.sh", "--", "--name", name, "--base-url", f"http://127.0.0.1:{PORT}/v1",
               "--key", key, "--model", "gpt-4o-mini", "--stream-model", "gpt-4o-mini-stream",
               "--start-cmd", start,
               "--ready-url", f"http://127.0.0.1:{PORT}/v1/health"]
    print("running:", " ".join(shlex.quote(c) for c in command), flush=True)
    env_rig = {**os.environ, "PEERS": os.environ.get("PEERS", "direct")}
    try:
        code = subprocess.call(command, cwd=args.rig, env=env_rig)
    finally:
        # The run's database (every usage record of the load) is not kept: a few hundred MB a run.
        shutil.rmtree(data, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
