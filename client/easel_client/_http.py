"""The HTTP layer: authentication, retries with backoff, errors as exceptions, cursor pages.

Retry rules (Stripe's, adapted to what Easel saves under an ``Idempotency-Key``):

- 429 and 503 are retried for every request: the server did no work. ``Retry-After`` is honoured
  as given; a wait longer than ``max_retry_wait`` (a daily quota's reset, say) is not slept through
  but raised as ``RateLimited`` with ``retry_after`` set.
- Other 5xx and network errors after the request was sent are retried only when repeating the
  request is harmless: reads, and creates that carry an ``Idempotency-Key`` (the key is made once
  per call and sent unchanged on each attempt, so the server runs the create at most once).
- A 5xx the server *replays* for a key (``Idempotent-Replayed: true``) is final: the first
  attempt's outcome was saved, and asking again returns it again.
- Failing to connect is always retried: nothing reached the server.

Backoff between attempts is exponential with jitter: ``min(cap, base * 2**n)`` scaled by a random
factor in [0.5, 1).
"""

from __future__ import annotations

import email.utils
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from ._version import __version__
from .errors import APIConnectionError, APIError, RateLimited, error_class_for

T = TypeVar("T")

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ALWAYS_RETRIED = frozenset({429, 503})
SAFE_TO_REPEAT = frozenset({"GET", "HEAD", "PUT", "DELETE"})  # idempotent by HTTP's definition
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class HTTPClient:
    """One ``httpx.Client`` for one API key and server, with the retry rules above.

    ``sleep`` and ``random`` are attributes so that tests (and callers with their own scheduler)
    can replace them.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_wait: float = 60.0,
        timeout: float | httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = normalize_base_url(base_url)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_wait = max_retry_wait
        self.sleep: Callable[[float], None] = time.sleep
        self.random: Callable[[], float] = random.random
        self._client = httpx.Client(
            base_url=self.base_url + "/api/v1/",
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": f"easel-python/{__version__}",
                "Accept": "application/json",
            },
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        files: list[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        idempotent: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send one API call (with its retries) and return the response, or raise ``APIError``.
        ``path`` is relative to ``/api/v1/``, or an absolute URL (a download link).

        ``idempotent=True`` marks a create the server deduplicates by ``Idempotency-Key``; a key
        is then made unless one is given. GET, HEAD, PUT and DELETE are always safe to repeat.
        """
        method = method.upper()
        send_headers = dict(headers or {})
        if idempotent or idempotency_key:
            send_headers[IDEMPOTENCY_HEADER] = idempotency_key or str(uuid.uuid4())
        repeatable = method in SAFE_TO_REPEAT or IDEMPOTENCY_HEADER in send_headers
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            request = self._client.build_request(
                method,
                path if _is_absolute(path) else path.lstrip("/"),
                params=clean_params or None,  # httpx: an empty dict drops a query
                json=json,
                data=data,
                files=files,
                headers=send_headers,
            )
            if not _same_origin(request.url, self._client.base_url):
                # A presigned link (S3) carries its own credential; the API key stays home.
                request.headers.pop("Authorization", None)
            try:
                response = self._client.send(request, follow_redirects=follow_redirects)
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt >= self.max_retries or not (never_sent or repeatable):
                    raise APIConnectionError(_connection_message(request, exc, never_sent)) from exc
                self.sleep(self._backoff(attempt))
                attempt += 1
                continue
            if response.status_code < 400:
                return response
            error = error_from_response(response)
            delay = self._retry_delay(response, repeatable=repeatable, attempt=attempt)
            if delay is None:
                raise error
            self.sleep(delay)
            attempt += 1

    def _retry_delay(
        self, response: httpx.Response, *, repeatable: bool, attempt: int
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        status = response.status_code
        if attempt >= self.max_retries or status < 500 and status != 429:
            return None
        if response.headers.get(REPLAYED_HEADER) == "true":
            return None
        if status not in ALWAYS_RETRIED and not repeatable:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            return self._backoff(attempt)
        return retry_after if retry_after <= self.max_retry_wait else None

    def _backoff(self, attempt: int) -> float:
        nominal = min(self.backoff_cap, self.backoff_base * 2**attempt)
        return nominal * (0.5 + self.random() / 2)

    # --- conveniences ------------------------------------------------------------------------

    def download(self, url: str) -> bytes:
        """The body of a download link (a presigned URL or an API path), with retries."""
        return self.request("GET", url, follow_redirects=True).content

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post_json(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.request("POST", path, json=body, **kwargs)
        return response.json() if response.content else None

    def paginate(
        self, path: str, convert: Callable[[dict[str, Any]], T], params: Mapping[str, Any]
    ) -> Pages[T]:
        return Pages(self, path, convert, dict(params))


class Pages(Generic[T]):
    """Every item of a cursor-paginated list, fetched a page at a time as you iterate.

    ``for job in client.generations.list(status="succeeded"): ...``; ``.first()`` and
    ``.take(n)`` stop early; ``.pages()`` yields the raw pages (``next``, ``previous``,
    ``results``). The ``next`` link's query (its cursor) is applied to the client's own base
    URL, so a server behind a proxy that reports another host still pages correctly.
    """

    def __init__(
        self,
        http: HTTPClient,
        path: str,
        convert: Callable[[dict[str, Any]], T],
        params: dict[str, Any],
    ) -> None:
        self._http = http
        self._path = path
        self._convert = convert
        self._params = params

    def pages(self) -> Iterator[dict[str, Any]]:
        params: Mapping[str, Any] = self._params
        while True:
            page = self._http.get_json(self._path, params=params)
            yield page
            next_url = page.get("next")
            if not next_url:
                return
            params = dict(parse_qsl(urlsplit(next_url).query, keep_blank_values=True))

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            for item in page.get("results", []):
                yield self._convert(item)

    def take(self, n: int) -> list[T]:
        items: list[T] = []
        if n <= 0:
            return items
        for item in self:
            items.append(item)
            if len(items) >= n:
                break
        return items

    def first(self) -> T | None:
        found = self.take(1)
        return found[0] if found else None


def _connection_message(request: httpx.Request, exc: Exception, never_sent: bool) -> str:
    where = f"{request.url.scheme}://{request.url.netloc.decode()}"
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if never_sent:
        return f"Could not reach {where} ({what}); check EASEL_URL and that the server is up."
    return (
        f"The connection to {where} failed during {request.method} {request.url.path} ({what}); "
        "the request may have been applied: check before sending it again."
    )


def _is_absolute(path: str) -> bool:
    return path.startswith(("http://", "https://"))


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def normalize_base_url(url: str) -> str:
    """``http://host:8000``, ``http://host:8000/`` and ``http://host:8000/api/v1`` are the same
    server."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"The Easel URL must start with http:// or https:// (got {url!r}).")
    return url.removesuffix("/api/v1")


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110); None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error response, from Easel's error body when there is one."""
    status = response.status_code
    code, message, fields = f"http_{status}", "", {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or "")
        fields = err.get("fields") or {}
    if not message:
        text = response.text.strip()
        excerpt = text[:200] if text and not text.lstrip().startswith("<") else ""
        message = excerpt or f"{response.reason_phrase or 'HTTP error'} from the server."
    cls = error_class_for(status, code)
    kwargs: dict[str, Any] = {"status": status, "code": code, "fields": fields}
    if cls is RateLimited:
        kwargs["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
    return cls(message, response=response, **kwargs)
