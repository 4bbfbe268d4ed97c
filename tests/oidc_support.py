"""Helpers for the OpenID Connect tests: a relying party "rp" (confidential) and "rpp" (public), a user with
a profile, the browser flow through chalice's test client, and ID-token checks done as a client would
(signature through the published JWKS, not through the server's own code)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import jwt

from chalicelib import clock
from chalicelib.oauth import accounts
from chalicelib.records import UserRecord
from tests.authorize_support import (
    CH,
    EMAIL,
    ISS,
    PASSWORD,
    Browser,
    V,
    add_client,
    decide,
    local_path,
    location,
    request_id_of,
    response_params,
    sign_in,
)
from tests.token_helpers import basic

RP = "rp"
RP_URI = "https://rp.example/cb"
RP_LOGOUT_URI = "https://rp.example/signed-out"
RPP = "rpp"
RPP_URI = "http://127.0.0.1/rpp-cb"
NAME = "Ada Lovelace"
OIDC_SCOPES = ["openid", "profile", "email", "read:analysis"]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def setup_oidc(aws) -> UserRecord:
    """The two relying parties and a verified user with a name."""
    rp = add_client(aws.store, RP, [RP_URI], scopes=OIDC_SCOPES)
    add_client(aws.store, RPP, [RPP_URI], public=True, scopes=OIDC_SCOPES)
    aws.store.update_client(RP, lambda c: setattr(c, "post_logout_redirect_uris", [RP_LOGOUT_URI]))
    assert rp.client_id == RP
    return accounts.create_user(aws.store, EMAIL, PASSWORD, clock.now(), name=NAME, email_verified=True)


def oidc_az(*drop: str, client_id: str = RP, **values: str) -> str:
    """An OpenID authentication request for `client_id`, minus `drop`, with `values` set."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": RP_URI if client_id == RP else RPP_URI,
        "scope": "openid profile email",
        "state": "S1",
        "nonce": "N-0S6_WzA2Mj",
        "code_challenge": CH,
        "code_challenge_method": "S256",
    }
    params.update(values)
    pairs = [(k, v) for k, v in params.items() if k not in drop]
    return "/authorize?" + urlencode(pairs, quote_via=quote, safe="")


def complete(browser: Browser, response) -> dict[str, str]:
    """From an /authorize response through login and consent (as needed) to the client's redirect params."""
    for _ in range(6):
        target = location(response)
        if not target.startswith(ISS + "/"):
            return response_params(response)
        if "/login?" in target:
            response = sign_in(browser, request_id=request_id_of(target))
            continue
        page = browser.get(local_path(target))
        response = page if page.status_code in (302, 303) else decide(browser, page, "allow")
    raise AssertionError("the flow did not end at the client")


def code_for(browser: Browser, path: str) -> str:
    params = complete(browser, browser.get(path))
    assert "code" in params, params
    return params["code"]


def exchange(http, code: str, client_id: str = RP, **extra: str):
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": V,
            "redirect_uri": RP_URI if client_id == RP else RPP_URI, **extra}
    headers = dict(FORM)
    if client_id == RP:
        headers.update(basic(RP, RP + "-secret"))
    else:
        form["client_id"] = client_id
    return http.post("/token", headers=headers, body=urlencode(form))


def refresh(http, refresh_token: str, **extra: str):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return http.post("/token", headers={**FORM, **basic(RP, RP + "-secret")}, body=urlencode(form))


def tokens(http, code: str, client_id: str = RP) -> dict[str, Any]:
    response = exchange(http, code, client_id)
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def jwks_key(http, kid: str) -> Any:
    keys = json.loads(http.get("/.well-known/jwks.json").body)["keys"]
    [jwk] = [k for k in keys if k["kid"] == kid]
    return jwt.PyJWK(jwk).key


def id_token_claims(http, id_token: str, audience: str = RP) -> dict[str, Any]:
    """Validate as a relying party would (Core §3.1.3.7): JWKS key by kid, RS256, iss, aud, exp."""
    header = jwt.get_unverified_header(id_token)
    assert header["alg"] == "RS256" and header["typ"] == "JWT"
    return jwt.decode(id_token, jwks_key(http, header["kid"]), algorithms=["RS256"], audience=audience,
                      issuer=ISS, leeway=30, options={"require": ["iss", "sub", "aud", "exp", "iat"]})


def userinfo(http, access_token: str, method: str = "GET", in_body: bool = False):
    if method == "GET":
        return http.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    if in_body:
        return http.post("/userinfo", headers=FORM, body=urlencode({"access_token": access_token}))
    return http.post("/userinfo", headers={**FORM, "Authorization": f"Bearer {access_token}"}, body="")
