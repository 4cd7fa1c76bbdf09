"""The error answers of the OpenAPI document: one table of the statuses the API answers,
each with its body and headers, and the route class that documents on every route the
ones it can answer.

Most statuses belong to a route because of what it depends on, so :class:`Route` derives
them from the route's dependencies instead of each route listing them (where a new route
would forget one):

* a token scope (``deps.ReadScope`` and up): 401, and 403 above ``read``;
* a request body: 400 (a body that is not text) and 422;
* any parameter: 422;
* the database or the bus (``deps.RuntimeDep``, ``WriterDep``, ...): 503.

What only the route knows (404, 409, a risk refusal's 422) it declares with
:func:`responses`; the route's own entry for a status wins over the derived one.

Also here: the 405 answer, whose ``Allow`` lists every method of the path (Starlette's
lists those of the first route that matched the path only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.exception_handlers import http_exception_handler
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.status import HTTP_405_METHOD_NOT_ALLOWED

from sapphire.trader_api import auth, deps


class Problem(BaseModel):
    """An error the API words itself."""

    detail: str = Field(description="What is wrong, in words.")


class RiskRefusal(Problem):
    """A pre-trade risk rule refused the order."""

    rule: str = Field(description="The rule, e.g. `stale_quote` or `max_order_notional`.")


class FieldProblem(BaseModel):
    """One invalid field, as FastAPI words its validation errors."""

    loc: list[str | int] = Field(description="Where: `body`, `query` or `path`, then the field's path.")
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] = Field(default_factory=dict)


class InvalidRequest(BaseModel):
    """The request's fields the API refuses (the schema's own and the ones it cannot check)."""

    detail: list[FieldProblem]


@dataclasses.dataclass(frozen=True)
class Answer:
    """One status as the document shows it: what it means, its body, its headers (always sent)."""

    status: int
    description: str
    model: Any = Problem
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def saying(self, description: str) -> Answer:
        """This answer, described for one route."""
        return dataclasses.replace(self, description=description)

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"description": self.description, "model": self.model}
        if self.headers:
            entry["headers"] = {
                name: {"description": text, "required": True, "schema": {"type": "string"}}
                for name, text in self.headers.items()
            }
        return entry


MALFORMED_BODY = Answer(400, "The body could not be read as text")
UNAUTHORIZED = Answer(
    401,
    "No bearer token, or one the API does not know",
    headers={"WWW-Authenticate": "The bearer challenge (RFC 6750)"},
)
FORBIDDEN = Answer(403, "The token's scope is too low for this route")
NOT_FOUND = Answer(404, "Not found")
CONFLICT = Answer(409, "The request conflicts with the current state")
INVALID = Answer(422, "A field is invalid: each problem's `loc` names it", InvalidRequest)
REFUSED = Answer(
    422,
    "A field is invalid (`loc` names it), or a risk rule refused the order (`rule` names it)",
    InvalidRequest | RiskRefusal,
)
UNAVAILABLE = Answer(
    503,
    "Redis or the database does not answer; nothing was written: retry",
    headers={"Retry-After": "Seconds to wait before retrying"},
)

_REACHES_STORAGE: frozenset[Callable[..., Any]] = frozenset(
    {deps.get_runtime, deps.get_writer, deps.get_publisher, deps.get_signal_journal}
)
"""The dependencies that hold the database or the bus (the market service takes the runtime)."""


def responses(*answers: Answer) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: the answers only the route knows of."""
    return {answer.status: answer.entry() for answer in answers}


def _tree(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for dependency in dependant.dependencies:
        yield from _tree(dependency)


def derived_answers(dependant: Dependant) -> list[Answer]:
    """The answers a route can give because of what it depends on (the module docstring's list)."""
    tree = list(_tree(dependant))
    calls = {node.call for node in tree}
    has_body = any(node.body_params for node in tree)
    has_parameters = any(
        node.path_params or node.query_params or node.header_params or node.cookie_params for node in tree
    )
    answers: list[Answer] = []
    if has_body:
        answers.append(MALFORMED_BODY)
    scopes = [scope for call, scope in deps.SCOPES.items() if call in calls]
    if scopes:
        answers.append(UNAUTHORIZED)
        if max(scopes) > auth.Scope.READ:
            answers.append(FORBIDDEN)
    if has_body or has_parameters:
        answers.append(INVALID)
    if calls & _REACHES_STORAGE:
        answers.append(UNAVAILABLE)
    return answers


class Route(APIRoute):
    """An ``APIRoute`` documenting the answers its dependencies can give (every router's ``route_class``)."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        responses: dict[int | str, dict[str, Any]] | None = None,
        dependencies: Sequence[Any] | None = None,
        **options: Any,
    ) -> None:
        dependant = get_dependant(path=path, call=endpoint)
        for dependency in dependencies or ():
            dependant.dependencies.append(get_dependant(path=path, call=dependency.dependency))
        derived: dict[int | str, dict[str, Any]] = {
            answer.status: answer.entry() for answer in derived_answers(dependant)
        }
        super().__init__(
            path, endpoint, responses={**derived, **(responses or {})}, dependencies=dependencies, **options
        )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


async def _method_not_allowed(request: Request, error: Exception) -> Response:
    """Starlette's answer, but with ``Allow`` naming the methods of every route on the path:
    the methods for which routing would find a route (FastAPI nests included routers, so
    routing is asked rather than a list of routes walked)."""
    if not isinstance(error, HTTPException):
        raise error
    if error.status_code == HTTP_405_METHOD_NOT_ALLOWED:
        routes = request.app.router.routes
        allowed = [
            method
            for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
        ]
        error.headers = {**(error.headers or {}), "Allow": ", ".join(allowed)}
    return await http_exception_handler(request, error)


def install(app: FastAPI) -> None:
    """The 405 answer with a complete ``Allow``."""
    app.add_exception_handler(HTTPException, _method_not_allowed)
