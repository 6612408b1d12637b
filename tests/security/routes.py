"""Every URL pattern of the API and the studio, read from the URLconf: its reversible name, the
parameters it needs and the HTTP methods its view allows. A new endpoint is found here without
anyone listing it, so the tenant-sealing tests cover it the day it is added."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

WRITE_METHODS = ("post", "put", "patch", "delete")
AREAS = {"api/v1/": "api", "studio/": "studio", "api/": "api-meta"}


@dataclass(frozen=True)
class Route:
    name: str  # namespaced, for reverse(): "v1:generation-detail"
    route: str  # readable: "api/v1/generations/<pk>"
    area: str  # "api", "studio" or "api-meta" (schema, docs, the JSON 404)
    resource: str  # the first path segment after the area: "generations"
    params: tuple[str, ...]
    methods: tuple[str, ...]  # lower-case; function views: ("get", "post"), probed
    probed: bool  # methods are a guess (a function view): a 405 is an acceptable answer

    def __str__(self) -> str:
        return self.route


def _params(pattern: Any) -> tuple[str, ...]:
    if isinstance(pattern, RoutePattern):
        return tuple(pattern.converters)
    if isinstance(pattern, RegexPattern):
        return tuple(pattern.regex.groupindex)
    return ()


def _readable(pattern: Any) -> str:
    text = str(pattern)
    if isinstance(pattern, RegexPattern):
        for name in pattern.regex.groupindex:
            start = text.index(f"(?P<{name}>")
            depth, end = 0, start
            for end in range(start, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            text = f"{text[:start]}<{name}>{text[end + 1 :]}"
        text = text.removeprefix("^").removesuffix("$")
    return text


def _methods(callback: Any) -> tuple[tuple[str, ...], bool]:
    actions = getattr(callback, "actions", None)
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if actions:  # a DRF viewset route: the methods it maps that the view accepts
        return tuple(m for m in actions if m in view_class.http_method_names), False
    if view_class is not None:
        names = ("get", "post", "put", "patch", "delete")
        return tuple(m for m in names if hasattr(view_class, m)), False
    return ("get", "post"), True


def _walk(
    resolver: URLResolver, prefix: str, namespaces: tuple[str, ...], params: tuple[str, ...]
) -> Iterator[Route]:
    for entry in resolver.url_patterns:
        route = prefix + _readable(entry.pattern)
        found = params + _params(entry.pattern)
        if isinstance(entry, URLResolver):
            spaces = (*namespaces, entry.namespace) if entry.namespace else namespaces
            yield from _walk(entry, route, spaces, found)
            continue
        assert isinstance(entry, URLPattern)
        area_prefix = next((p for p in AREAS if route.startswith(p)), None)
        if area_prefix is None:
            continue  # admin, health checks, the root redirect: not the API or the studio
        if not entry.name:
            raise AssertionError(f"{route}: give the URL pattern a name so tests can reverse it")
        methods, probed = _methods(entry.callback)
        rest = route.removeprefix(area_prefix)
        yield Route(
            name=":".join([*namespaces, entry.name]),
            route=route,
            area=AREAS[area_prefix],
            resource=rest.split("/", 1)[0],
            params=found,
            methods=methods,
            probed=probed,
        )


def all_routes() -> list[Route]:
    return list(_walk(get_resolver(), "", (), ()))
