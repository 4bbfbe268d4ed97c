"""What an API Gateway OpenAPI body must hold so that API Gateway never answers a request by itself."""

from __future__ import annotations

from chalicelib.web.common import HTTP_METHODS
from chalicelib.web.cors import back_channel


def assert_every_method_reaches_the_app(paths: dict) -> None:
    every = {method.lower() for method in HTTP_METHODS}
    for path, methods in paths.items():
        assert set(methods) >= every, (path, every - set(methods))
        for method, definition in methods.items():
            integration = definition["x-amazon-apigateway-integration"]["type"]
            expected = "mock" if method == "options" and back_channel(path) else "aws_proxy"
            assert integration == expected, (path, method)
        segments = path.strip("/").split("/")
        for depth in range(1, len(segments)):  # API Gateway would create a parent with no method at all
            assert "/" + "/".join(segments[:depth]) in paths, path
