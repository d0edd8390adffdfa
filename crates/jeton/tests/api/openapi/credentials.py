"""Schemathesis hooks: every operation runs with a credential it accepts.

The test sets the JETON_* variables to keys and tokens it made on a fresh
database. For each case, the first of the operation's security requirements
that one of them satisfies is used, as schemathesis' own `[auth.openapi]`
settings would; they are not used because a configured credential turns
hooks like these off, and a staff session needs one.

A staff session lives in a cookie, and its unsafe requests need the
session's CSRF token, which no schema can generate: so it is a real session,
made by signing in as the members the test created. Signing out ends the
session that asks, so each of its cases signs in afresh (and logging a
customer out, or revoking all their tokens, uses a customer of its own). A
password change fails, and so is throttled, under a member of its own, so
that its failures never hold back the other sign-ins.
"""

import os
import threading

import requests
import schemathesis
from requests.auth import _basic_auth_str

BASE = os.environ["JETON_URL"]
# The storefront's publishable key holds `guest:create` too: `createGuest`
# runs with it (its per-IP issuance limit is raised for the run), and a
# guest token is never needed, every guest route taking that key first.
BEARERS = {
    "publishable_key": "JETON_PK",
    "secret_key": "JETON_SK",
    "user_token": "JETON_UT",
    "oauth2_access_token": "JETON_AT",
}
# Operations that end the credential they are called with.
OWN_USER_TOKEN = {"logOut": "JETON_UT_LOGOUT", "revokeAllMyTokens": "JETON_UT_REVOKE_ALL"}


def operation_id(case):
    return case.operation.definition.raw.get("operationId")


class StaffSessions:
    def __init__(self):
        self.lock = threading.Lock()
        self.sessions = {}

    def sign_in(self, email):
        response = requests.post(
            f"{BASE}/api/v1/staff/login",
            json={"email": email, "password": os.environ["JETON_STAFF_PASSWORD"]},
            timeout=30,
        )
        response.raise_for_status()
        return response.cookies["jeton_staff"], response.json()["csrf_token"]

    def for_case(self, case):
        if operation_id(case) == "logStaffOut":
            return self.sign_in(os.environ["JETON_STAFF_EMAIL"])
        if operation_id(case) == "updateStaffPassword":
            email = os.environ["JETON_STAFF_PASSWORD_EMAIL"]
        else:
            email = os.environ["JETON_STAFF_EMAIL"]
        with self.lock:
            if email not in self.sessions:
                self.sessions[email] = self.sign_in(email)
            return self.sessions[email]


STAFF = StaffSessions()


@schemathesis.auth(refresh_interval=None, retry_on=[])
class Credentials:
    def get(self, case, context):
        for requirement in case.operation.definition.raw.get("security", []):
            for scheme, scopes in requirement.items():
                # The test's secret key holds `admin`, which grants every
                # admin ability but this one: the staff's routes run with
                # an owner's session.
                if scopes == ["staff:manage"] and scheme != "staff_session":
                    continue
                if scheme == "staff_session":
                    return ("staff", STAFF.for_case(case))
                if scheme == "client_basic":
                    return ("basic", (os.environ["JETON_CLIENT_ID"], os.environ["JETON_SK"]))
                if scheme == "user_token" and operation_id(case) in OWN_USER_TOKEN:
                    return ("bearer", os.environ[OWN_USER_TOKEN[operation_id(case)]])
                if scheme in BEARERS:
                    return ("bearer", os.environ[BEARERS[scheme]])
        return None

    def set(self, case, data, context):
        kind, value = data
        case.headers = case.headers or {}
        if kind == "bearer":
            case.headers["Authorization"] = f"Bearer {value}"
        elif kind == "basic":
            case.headers["Authorization"] = _basic_auth_str(*value)
        else:
            token, csrf = value
            case.cookies = {**(case.cookies or {}), "jeton_staff": token}
            case.headers["X-CSRF-Token"] = csrf
