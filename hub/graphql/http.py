"""The provider API's hot path: ``POST /graphql`` with a JSON body, answered without FastAPI's
routing and dependency injection or Strawberry's HTTP view.

Every other request to ``/graphql`` (GET, another content type, a batch, a body that is not a
GraphQL request, a streaming ``Accept``) is handed, body and all, to the application's own
``/graphql`` route, so what those see is unchanged. The operation itself still runs through
``schema.execute`` with every extension (limits, caches, error masking, the commit) and the same
context as the route builds.

What this path skips, and why that is safe: Starlette's session middleware (the provider API is
bearer-token only; it never reads or sets the family's cookie), FastAPI's exception middleware
(every refusal below has its answer; anything else propagates to the server, which answers 500,
as the middleware would) and FastAPI's OpenTelemetry middleware (the hub does not configure it).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import CannotGetOperationTypeError
from strawberry.http import process_result
from strawberry.types.graphql import OperationType

from hub.graphql.context import provider_context
from hub.graphql.limits import RateLimited
from hub.oauth.bearer import BearerError

PATH = "/graphql"
_POST_OPERATIONS = OperationType.from_http("POST")
_JSON = b"application/json"
_PLAIN_TEXT = b"text/plain; charset=utf-8"
# Strawberry's streaming transports are chosen by Accept: leave those to its view.
_STREAMING_ACCEPT = (b"multipart/mixed", b"text/event-stream")


def handles(scope: Scope) -> bool:
    """Whether the lean path may answer this request, from its method, path and headers alone."""
    if scope["method"] != "POST" or scope["path"] != PATH:
        return False
    json_body = False
    for name, value in scope["headers"]:
        if name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == _JSON
        elif name == b"accept" and any(kind in value.lower() for kind in _STREAMING_ACCEPT):
            return False
    return json_body


async def _read_body(receive: Receive) -> bytes | None:
    """The request's body, or None if the client went away first (there is no one to answer)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _request_fields(body: bytes) -> tuple[str, dict[str, Any] | None, str | None, dict[str, Any] | None] | None:
    """query, variables, operationName and extensions of a single GraphQL request with a query, or
    None for anything else (which Strawberry's view answers, with its own messages)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    query, variables, extensions = data.get("query"), data.get("variables"), data.get("extensions")
    if not isinstance(query, str) or not isinstance(variables, (dict, type(None))) or not isinstance(extensions, (dict, type(None))):
        return None
    operation_name = data.get("operationName")
    return query, variables, operation_name, extensions


async def _send(send: Send, status: int, body: bytes, content_type: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve(app: Any, scope: Scope, receive: Receive, send: Send, fallback: Any) -> None:
    """Answer one ``POST /graphql``; ``fallback`` is the full application, for the rest."""
    body = await _read_body(receive)
    if body is None:
        return
    fields = _request_fields(body)
    if fields is None:
        await fallback(scope, _replay(body, receive), send)
        return
    query, variables, operation_name, extensions = fields
    hub = app.state.hub
    try:
        async with provider_context(hub, _authorization(scope)) as context:
            scope["app"] = app  # as Starlette sets it: resolvers reach the app's state through the request
            context.request = Request(scope)
            result = await hub.schema.execute(
                query, variable_values=variables, context_value=context, operation_name=operation_name,
                allowed_operation_types=_POST_OPERATIONS, operation_extensions=extensions,
            )
    except BearerError as error:
        body = orjson.dumps({"detail": error.detail})  # as FastAPI renders the route's HTTPException
        await _send(send, error.status, body, b"application/json", ((b"www-authenticate", error.challenge.encode()),))
        return
    except RateLimited as limited:
        await _send(send, 429, orjson.dumps(limited.body()), b"application/json",
                    ((b"retry-after", str(limited.retry_after).encode()),))
        return
    # Strawberry's view answers these as plain text. (InvalidOperationTypeError cannot happen: a
    # POST may carry every operation type.)
    except CannotGetOperationTypeError as error:
        await _send(send, 400, error.as_http_error_reason().encode(), _PLAIN_TEXT)
        return
    except MissingQueryError:
        await _send(send, 400, b"No GraphQL query found in the request", _PLAIN_TEXT)
        return
    await _send(send, 200, orjson.dumps(process_result(result)), b"application/json")


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the fallback: the body already read, then the client's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Any:
        return pending.pop() if pending else await receive()

    return replayed
