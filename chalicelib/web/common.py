"""HTTP glue shared by the blueprints: form parsing, JSON and HTML responses, error mapping."""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl

from chalice import Response
from chalice.app import Request

from chalicelib import strict_json
from chalicelib.crypto.envelope import EnvelopeError
from chalicelib.crypto.keyring import NoSigningKey
from chalicelib.oauth.client_display import display_name
from chalicelib.oauth.errors import (
    InvalidRequest,
    OAuthError,
    RateLimited,
    ServerError,
    TemporarilyUnavailable,
)
from chalicelib.oauth.throttle import Throttled
from chalicelib.records import StoreUnavailable

log = logging.getLogger("clipron.oauth")

FORM = "application/x-www-form-urlencoded"
# Declared on POST routes so Chalice lets every body through and we answer in OAuth's own shape
# (Chalice's own 415 body is not an OAuth error); a request without Content-Type counts as JSON.
ANY_BODY = [FORM, "application/json", "text/plain", "multipart/form-data", "application/octet-stream"]
MAX_BODY_BYTES = 16 * 1024
MAX_PARAMETERS = 64
MAX_VALUE_LENGTH = 4096
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")  # all API Gateway knows, but ANY
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Type": "text/html; charset=utf-8",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
HSTS = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains"}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json", **NO_STORE, **(headers or {})},
    )


def error_response(error: OAuthError) -> Response:
    return json_response(error.body(), error.status, error.headers)


def unique_parameters(pairs: list[tuple[str, str]], repeatable: frozenset[str] = frozenset()) -> dict[str, str]:
    """Parameters as a dict, refusing any name sent twice (RFC 6749 §3.1, §3.2): no value wins silently.

    A `repeatable` name (RFC 8707 §2 `resource`, RFC 8693 `audience`) may come several times: its distinct
    values arrive separated by spaces, which no URI contains, so the oauth/ rule that accepts one target
    per token refuses them as a whole (`invalid_target`) instead of keeping one."""
    if len(pairs) > MAX_PARAMETERS:
        raise InvalidRequest("too many parameters")
    values: dict[str, str] = {}
    for name, value in pairs:
        if any(ch in name for ch in "\x00\ufffd\ufeff"):  # a NUL, a broken byte or a BOM: no real name
            raise InvalidRequest("a parameter name is not valid text")
        if name in values and name not in repeatable:
            raise InvalidRequest("a parameter was sent more than once")
        if len(value) > MAX_VALUE_LENGTH:
            raise InvalidRequest("a parameter value is too long")
        if any(ch in value for ch in "\x00\ufffd\ufeff"):
            raise InvalidRequest("a parameter value is not valid text")
        if name not in values:
            values[name] = value
        elif value not in values[name].split(" "):
            values[name] = f"{values[name]} {value}"
    return values


def form_parameters(request: Request, repeatable: frozenset[str] = frozenset()) -> dict[str, str]:
    """The form body of a POST, strictly: form-encoded only, UTF-8, no duplicates, bounded size."""
    return unique_parameters(form_pairs(request), repeatable)


def form_pairs(request: Request) -> list[tuple[str, str]]:
    """The form body as (name, value) pairs in order, duplicates kept (for callers that report them)."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise InvalidRequest("the request body must be application/x-www-form-urlencoded")
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest("the request body is too large", status=413)
    try:
        text = raw.decode("utf-8", errors="strict")
        if _BAD_ESCAPE.search(text):  # unquote would keep "%zz" as text; a client that sent it is broken
            raise ValueError("malformed percent-escape")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the request body is not a valid form") from None
    if len(pairs) > MAX_PARAMETERS:
        raise InvalidRequest("too many parameters")
    return pairs


def json_body(request: Request, malformed: type[OAuthError] = InvalidRequest) -> Any:
    """A JSON body, strictly: application/json, UTF-8, bounded, no member named twice.

    `malformed` is the error for a body that is not such JSON (RFC 7591 wants invalid_client_metadata).
    """
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidRequest("the request body must be application/json")
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest("the request body is too large", status=413)

    try:
        return strict_json.loads(raw)
    except strict_json.DuplicateMember:
        raise malformed("a member of the JSON body appears twice") from None
    except strict_json.NotText:
        raise malformed("the JSON body holds text that is not valid Unicode") from None
    except ValueError:  # UnicodeDecodeError and nesting deeper than strict_json.MAX_DEPTH included
        raise malformed("the request body is not valid JSON") from None


def source_address(request: Request) -> str | None:
    """The client address API Gateway saw (`requestContext.identity.sourceIp`; `chalice local` and its
    test client say 127.0.0.1). Never X-Forwarded-For or any other header: the client writes those."""
    identity = (request.context or {}).get("identity") or {}
    address = identity.get("sourceIp")
    return address if isinstance(address, str) else None


def rate_limited(throttled: Throttled) -> OAuthError:
    """A JSON 429 for a reached limit or quota, with Retry-After (RFC 6585 §4): temporarily_unavailable.
    (Client authentication's throttle answers invalid_client itself: oauth/clients.py.)"""
    return RateLimited(throttled.retry_after)


def client_request(request: Request, repeatable: frozenset[str] = frozenset()) -> tuple[dict[str, str], str | None]:
    """A client's back-channel POST (token, revocation, introspection): the form and the one
    Authorization header. Parameters come from the body only: credentials never travel in the URL."""
    if request.query_params:
        raise InvalidRequest("parameters must be sent in the form body, not the URL")
    return form_parameters(request, repeatable), single_header(request, "authorization")


def single_header(request: Request, name: str) -> str | None:
    """A header's value, refusing a header sent twice (API Gateway would silently keep the last one)."""
    multi = (request.to_original_event() or {}).get("multiValueHeaders") or {}
    values = [v for key, vs in multi.items() if key.lower() == name for v in (vs or [])]
    if len(values) > 1:
        raise InvalidRequest("a header was sent more than once")
    return request.headers.get(name)


def method_not_allowed(description: str, allow: str) -> Response:
    return json_response({"error": "invalid_request", "error_description": description}, 405, {"Allow": allow})


def without_body(response: Response) -> Response:
    """The answer to a HEAD request: the same status and headers, no content (RFC 9110 section 9.3.2)."""
    response.body = ""
    return response


def query_parameters(request: Request) -> dict[str, str]:
    """Query parameters with duplicates refused (Chalice's MultiDict[...] would return the last)."""
    return unique_parameters(query_pairs(request))


def query_pairs(request: Request) -> list[tuple[str, str]]:
    """Query parameters as (name, value) pairs, duplicates kept (for callers that report them)."""
    params = request.query_params
    if not params:
        return []
    pairs = [(name, value) for name in params for value in params.getlist(name)]
    if len(pairs) > MAX_PARAMETERS:
        raise InvalidRequest("too many parameters")
    # the Lambda event is JSON: a "\udc80" escape arrives as a lone surrogate, and a state or scope
    # holding one would be parked, then break the redirect or the page that shows it
    if not all(strict_json.scalar_text(name) and strict_json.scalar_text(value) for name, value in pairs):
        raise InvalidRequest("a parameter is not valid text")
    return pairs


def guarded(handler: Callable[..., Response]) -> Callable[..., Response]:
    """JSON endpoints: OAuth errors in their own shape, storage/KMS faults as 503, never a stack trace."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return handler(*args, **kwargs)
        except OAuthError as error:
            return error_response(error)
        except Throttled as throttled:
            return error_response(rate_limited(throttled))
        except (StoreUnavailable, EnvelopeError, NoSigningKey) as error:
            log.warning("dependency unavailable: %s", error)
            return error_response(TemporarilyUnavailable())
        except Exception:  # noqa: BLE001 - the last line of defence: no trace leaves the server
            log.exception("unhandled error in %s", handler.__name__)
            return error_response(ServerError("an unexpected error occurred"))

    return wrapper


_templates: Any = None


def templates() -> Any:
    """The Jinja2 environment, built on first render (JSON endpoints never pay for Jinja2's import)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    global _templates
    if _templates is None:
        environment = Environment(
            loader=PackageLoader("chalicelib.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        environment.filters["display"] = display_name  # every application name goes through it
        _templates = environment
    return _templates


def page(template: str, status: int = 200, headers: Mapping[str, str] | None = None, **context: Any) -> Response:
    from chalicelib.wiring import services  # the page needs the stage (for HSTS) only at render time

    # whatever is already stored (a lone surrogate from before the input rules) must not stop a page
    # from rendering: users could no longer see or revoke their apps
    body = templates().get_template(template).render(**context).encode("utf-8", "replace").decode("utf-8")
    secure = services().settings.secure_cookies
    all_headers = {**PAGE_HEADERS, **(HSTS if secure else {}), **(headers or {})}
    return Response(body=body, status_code=status, headers=all_headers)


def error_page(title: str, message: str, status: int = 400) -> Response:
    return page("error.html", status=status, title=title, message=message)


def page_guarded(handler: Callable[..., Response]) -> Callable[..., Response]:
    """HTML pages: every failure is an error page (503 for storage/KMS faults), never JSON or a trace."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return handler(*args, **kwargs)
        except OAuthError as error:
            return error_page("Something is wrong with this request", error.description or error.error,
                              error.status if 400 <= error.status < 500 else 400)
        except Throttled as throttled:
            return page("error.html", status=429, headers={"Retry-After": str(throttled.retry_after)},
                        title="Too many requests", message="Too many requests. Please wait a while and try again.")
        except (StoreUnavailable, EnvelopeError, NoSigningKey) as error:
            log.warning("dependency unavailable: %s", error)
            return error_page("Temporarily unavailable", "Clipron is briefly unavailable. Please try again.",
                              503)
        except Exception:  # noqa: BLE001 - the last line of defence: no trace leaves the server
            log.exception("unhandled error in %s", handler.__name__)
            return error_page("Something went wrong", "An unexpected error occurred. Please try again.", 500)

    return wrapper
