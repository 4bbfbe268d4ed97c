"""End to end through the real front channel: /authorize → login → consent → code → POST /token → refresh."""

from __future__ import annotations

import pytest

from tests.authorize_support import (
    C1_URI,
    Browser,
    V,
    add_fixture_clients,
    add_user,
    az,
    consent_page,
    decide,
    response_params,
    sign_in,
)
from tests.token_helpers import assert_error, basic, post_token, tokens_of

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call


def test_a_code_from_authorize_redeems_once_and_its_tokens_refresh(http, aws):
    add_fixture_clients(aws.store)
    user = add_user(aws.store)
    browser = Browser(http)
    assert sign_in(browser).status_code == 200
    params = response_params(decide(browser, consent_page(browser, az(scope="read:analysis read:project")), "allow"))
    c1 = basic("c1", "c1-secret")
    form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": C1_URI, "code_verifier": V}

    tokens = tokens_of(post_token(http, form, c1))
    assert tokens["scope"] == "read:analysis read:project"
    claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
    assert claims.sub == user.user_id and claims.client_id == "c1"
    grant = aws.store.get_grant("c1", claims.grant_id)  # issued under the consent the user just gave
    assert grant.consent_generation == aws.store.get_consent(user.user_id, "c1").generation is not None

    refreshed = tokens_of(post_token(http, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                     c1))
    assert refreshed["refresh_token"] != tokens["refresh_token"]

    assert_error(post_token(http, form, c1), 400, "invalid_grant")  # the code again: revokes what it issued
    assert_error(post_token(http, {"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]}, c1),
                 400, "invalid_grant")
