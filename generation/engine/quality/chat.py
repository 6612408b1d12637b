"""A small client for the OpenAI-compatible chat-completions protocol, for the quality gate's VLM
judge and its prompt-refining LLM (Django-free).

``POST {base_url}/chat/completions`` is spoken by vLLM, Ollama, llama.cpp's server and OpenAI
alike, so one client reaches a model on the same GPU box or a hosted one. `ChatClient.complete`
sends the messages and returns the first choice's text. It retries what may pass on its own — a
timeout, a refused or dropped connection, HTTP 429 and 5xx — with exponential backoff and jitter,
waiting at least as long as a ``Retry-After`` header asks (up to a cap); other 4xx answers are the
request's fault and are not retried. When it gives up it raises `ChatError`, whose ``kind`` the
judges record as the error of an unanswered question.

The timeout is requests' (connect, read) pair: the read timeout bounds each wait for bytes from the
server, not the whole answer, which is what a non-streaming completion needs (the server sends
nothing until it is done).
"""

from __future__ import annotations

import base64
import email.utils
import functools
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter

CHAT_ERROR_KINDS = ("timeout", "http_error", "connection", "bad_response")
# Retry-After asks for this long at most: a gate that waits minutes for one answer is worse than
# one that records the question as unanswered and lets the job go on.
RETRY_AFTER_CAP = 30.0


class ChatError(Exception):
    """The endpoint gave no usable answer. ``kind`` is one of `CHAT_ERROR_KINDS`; ``status`` is
    the last HTTP status (None when none came back); ``attempts`` how many requests were made."""

    def __init__(
        self, kind: str, message: str, *, status: int | None = None, attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.attempts = attempts

    @property
    def endpoint_is_down(self) -> bool:
        """Whether the next request would likely fail the same way (the endpoint, not the
        question, is the trouble): the cue for a judge to stop asking."""
        if self.kind in ("timeout", "connection"):
            return True
        return self.status is not None and (self.status == 429 or self.status >= 500)


@functools.cache
def shared_session() -> requests.Session:
    """One pooled session per process, built on first use (not at import, so a forked worker
    never inherits its parent's sockets). Retries are `ChatClient`'s, not the adapter's."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def image_content(png: bytes) -> dict[str, Any]:
    """The message part that shows a model a PNG image, as a data URL."""
    encoded = base64.b64encode(png).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}}


def extract_json(text: str) -> Any | None:
    """The first JSON object or array in a model's reply, or None: models wrap JSON in fenced
    code blocks and chatter ("Sure! Here is the JSON: ..."), so look inside a fence first, then
    at each ``{`` or ``[`` in turn."""
    candidates = []
    fence_start = text.find("```")
    if fence_start != -1:
        body_start = text.find("\n", fence_start)
        fence_end = text.find("```", body_start + 1) if body_start != -1 else -1
        if fence_end != -1:
            candidates.append(text[body_start + 1 : fence_end])
    candidates.append(text)
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for index, char in enumerate(candidate):
            if char not in "{[":
                continue
            try:
                value, _ = decoder.raw_decode(candidate, index)
            except json.JSONDecodeError:
                continue
            return value
    return None


def _retry_after_seconds(value: str | None, *, now: Callable[[], datetime]) -> float | None:
    """A Retry-After header in seconds: either delta-seconds or an HTTP date (RFC 9110)."""
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
    return max(0.0, (when - now()).total_seconds())


def _message_text(data: Any) -> str | None:
    """The first choice's message content; some servers send a list of text parts."""
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text", "") for part in content if isinstance(part, dict)]
        return "".join(t for t in texts if isinstance(t, str))
    return None


class ChatClient:
    """Calls one model behind an OpenAI-compatible endpoint.

    ``timeout`` is in seconds, for connecting and for each read (a (connect, read) pair also
    works). ``max_retries`` is how many times a retryable failure is retried, so a request is
    made at most ``max_retries + 1`` times; the n-th retry waits ``backoff * 2**(n-1)`` seconds
    times a jitter factor in [0.5, 1.5), or longer when Retry-After says so (at most
    ``retry_after_cap``). ``sleep``, ``jitter`` and ``now`` are there for tests.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float | tuple[float, float] = 10.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        *,
        retry_after_cap: float = RETRY_AFTER_CAP,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("model must name the model the endpoint serves")
        if max_retries < 0 or backoff < 0:
            raise ValueError("max_retries and backoff must not be negative")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self.max_retries = max_retries
        self.backoff = backoff
        self.retry_after_cap = retry_after_cap
        self._api_key = api_key
        self._session = session
        self._sleep = sleep
        self._jitter = jitter
        self._now = now

    def __repr__(self) -> str:  # no api key in logs
        return f"ChatClient({self.url!r}, model={self.model!r})"

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
    ) -> str:
        """The model's reply to ``messages`` (the first choice's text); raises `ChatError`."""
        payload = {
            "model": self.model,
            "messages": [dict(message) for message in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        response = self._post(payload)
        try:
            data = response.json()
        except ValueError:
            raise ChatError(
                "bad_response",
                f"{self.url} answered HTTP {response.status_code} with a body that is not "
                f"JSON: {response.text[:120]!r}",
                status=response.status_code,
            ) from None
        text = _message_text(data)
        if text is None:
            excerpt = json.dumps(data)[:120]
            raise ChatError(
                "bad_response",
                f"{self.url} answered without a choices[0].message.content: {excerpt}",
                status=response.status_code,
            )
        return text

    def _post(self, payload: dict[str, Any]) -> requests.Response:
        session = self._session or shared_session()
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        attempts = self.max_retries + 1
        kind, detail, status = "connection", "", None
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                response = session.post(
                    self.url, json=payload, headers=headers, timeout=self.timeout
                )
            except requests.Timeout:  # ConnectTimeout is also a ConnectionError: check first
                kind, detail, status = "timeout", f"no answer within {self.timeout[1]:g}s", None
            except requests.ConnectionError as exc:
                kind, detail, status = "connection", f"could not connect ({exc})", None
            except requests.RequestException as exc:  # a malformed URL, say: retrying won't help
                raise ChatError("connection", f"{self.url}: {exc}", attempts=attempt) from exc
            else:
                status = response.status_code
                if status < 400:
                    return response
                body = response.text[:200]
                if status != 429 and status < 500:
                    raise ChatError(
                        "http_error",
                        f"{self.url} answered HTTP {status} {response.reason}: {body!r} "
                        "(not retried: the request itself was refused)",
                        status=status,
                        attempts=attempt,
                    )
                kind, detail = "http_error", f"HTTP {status} {response.reason}: {body!r}"
                retry_after = _retry_after_seconds(
                    response.headers.get("Retry-After"), now=self._now
                )
            if attempt < attempts:
                self._sleep(self._delay(attempt, retry_after))
        raise ChatError(
            kind,
            f"{self.url}: {detail} (gave up after {attempts} attempt{'s' * (attempts > 1)})",
            status=status,
            attempts=attempts,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt``: jittered exponential backoff (so
        many workers that failed together do not retry together), or Retry-After if longer."""
        delay = self.backoff * 2 ** (attempt - 1) * (0.5 + self._jitter())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap))
        return delay
