"""The stylesheet the pages share (served by the app itself: CSP allows only 'self')."""

from __future__ import annotations

import functools
from importlib import resources

from chalice import Blueprint, Response

bp = Blueprint(__name__)


@functools.lru_cache(maxsize=1)
def _stylesheet() -> str:
    return resources.files("chalicelib.web").joinpath("static/style.css").read_text()


@bp.route("/static/style.css", methods=["GET"])
def stylesheet() -> Response:
    headers = {"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=3600",
               "X-Content-Type-Options": "nosniff"}
    return Response(body=_stylesheet(), headers=headers)
