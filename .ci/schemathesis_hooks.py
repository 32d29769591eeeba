"""Schemathesis hooks for .ci/schemathesis: the bearer token of the run's operator admin.

Loaded (SCHEMATHESIS_HOOKS) only for the authenticated run. The generated test cases act
as that admin on everything, itself included: they log its token out, disable, demote or
delete it, change its email, reset its password or lock it with wrong current passwords.
All of that is the API working as documented, but the rest of the run would then see
only 401s and 403s. So the token is fetched again whenever the server answers 401 or 403
(Schemathesis's `retry_on`: the cached token is dropped and the request replayed), and
when the operator cannot log in as an approved admin any more, it is put back with the
binary's own command line (`gatehouse users ...`, which goes through the same rules and
needs no acting admin) before logging in again.
"""

import json
import os
import subprocess
import urllib.error
import urllib.request

import schemathesis

BASE_URL = os.environ["GATEHOUSE_ST_BASE_URL"]
PASSWORD = os.environ["GATEHOUSE_ST_PASSWORD"]
BINARY = os.environ["GATEHOUSE_ST_BINARY"]
CLI_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")},
    "GATEHOUSE_DATABASE_URL": os.environ["GATEHOUSE_ST_DATABASE_URL"],
    "GATEHOUSE_BCRYPT_COST": "4",
    "RUST_LOG": "warn",
}


class Operator:
    id = int(os.environ["GATEHOUSE_ST_OPERATOR_ID"])
    email = os.environ["GATEHOUSE_ST_EMAIL"]
    recreated = 0


def http(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE_URL + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, None


def cli(*args, password=None):
    result = subprocess.run(
        [BINARY, "users", *args, "--json", *(["--password-stdin"] if password is not None else [])],
        input=(password + "\n") if password is not None else None,
        capture_output=True, text=True, env=CLI_ENV, timeout=60, check=True,
    )
    return json.loads(result.stdout)


def working_token():
    """A token of the operator as an approved admin, or None."""
    status, body = http("POST", "/api/auth/login", {"email": Operator.email, "password": PASSWORD})
    if status != 200:
        return None
    token = body["access_token"]
    status, me = http("GET", "/api/auth/me", token=token)
    if status == 200 and me["is_admin"] and me["status"] == "approved":
        return token
    return None


def repair():
    """Puts the operator back: there, approved, an admin, with the known password (which
    also clears its failed logins)."""
    users = {user["id"]: user for user in cli("list")}
    user = users.get(Operator.id)
    if user is None:
        Operator.recreated += 1
        user = cli("create", f"operator{Operator.recreated}@gatehouse.test", "--admin",
                   password=PASSWORD)
        Operator.id = user["id"]
    else:
        if user["status"] != "approved":
            user = cli("enable", str(Operator.id))
        if not user["is_admin"]:
            user = cli("promote", str(Operator.id))
        user = cli("set-password", str(Operator.id), password=PASSWORD)
    Operator.email = user["email"]


@schemathesis.auth(refresh_interval=600, retry_on=[401, 403])
class OperatorToken:
    def get(self, case, context):
        token = working_token()
        if token is None:
            repair()
            token = working_token()
        if token is None:
            raise RuntimeError(f"the operator (user {Operator.id}) cannot log in even after repair")
        return token

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
