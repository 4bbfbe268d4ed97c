"""GET and POST /userinfo (OIDC Core §5.3): the bearer token from the header or, on POST, the form body
(RFC 6750 §2.1, §2.2; one method only), claims from oauth/userinfo.py, RFC 6750 errors with a challenge."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.oauth.bearer import bearer_token, challenged
from chalicelib.oauth.errors import InvalidRequest, OAuthError
from chalicelib.web.common import ANY_BODY, form_parameters, guarded, json_response, single_header
from chalicelib.wiring import services

bp = Blueprint(__name__)


def _presented_token() -> str:
    request = bp.current_request
    authorization = single_header(request, "authorization")
    if request.method == "POST" and request.raw_body:
        in_body = form_parameters(request).get("access_token")
        if in_body is not None:
            if authorization is not None:
                raise InvalidRequest("send the access token in one place only")
            return in_body
    return bearer_token(authorization)


@bp.route("/userinfo", methods=["GET", "POST"], content_types=ANY_BODY)
@guarded
def userinfo() -> Response:
    try:
        claims = services().userinfo.claims(_presented_token())
    except OAuthError as error:
        challenged(error)
        raise
    return json_response(claims)
