"""Runs schemathesis against a running gateway, once as the demo customer
and once as the demo admin; exits non-zero if either run finds a failure.

usage: run.py BASE_URL SCHEMATHESIS"""

import json
import os
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PIN = "1234"
WHO = [("customer", "+254700000001"), ("admin", "+254700000000")]
# These end the token the run signs in with, so every later case would be
# refused 401; the integration tests cover them.
ENDS_THE_SESSION = ["/api/v1/auth/logout", "/api/v1/auth/logout-all", "/api/v1/auth/change-pin"]


def token(base, phone):
    request = urllib.request.Request(
        base + "/api/v1/auth/login",
        data=json.dumps({"phone": phone, "pin": PIN}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)["access_token"]


def main(base, schemathesis):
    env = dict(os.environ, PYTHONPATH=HERE, SCHEMATHESIS_HOOKS="hooks")
    failed = []
    for who, phone in WHO:
        command = [
            schemathesis, "--config-file", os.path.join(HERE, "schemathesis.toml"), "--no-color",
            "run", base + "/api/v1/openapi.json", "--checks", "all", "--seed", "1",
            "-H", "Authorization: Bearer " + token(base, phone),
        ]
        for path in ENDS_THE_SESSION:
            command += ["--exclude-path", path]
        print(f"== schemathesis as the {who} ({phone})", flush=True)
        if subprocess.run(command, env=env).returncode != 0:
            failed.append(who)
    if failed:
        sys.exit("schemathesis found failures as the " + " and the ".join(failed))


if __name__ == "__main__":
    main(*sys.argv[1:])
