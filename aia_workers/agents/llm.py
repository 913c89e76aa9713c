"""An optional language model: a client of the OpenAI-compatible chat-completions API.

vLLM, Ollama, llama.cpp's server and the hosted services all speak it:
``POST {base}/chat/completions`` with ``{"model", "messages", "temperature"}``
and a bearer key, answering ``choices[0].message.content``. Agents that can
use a model (research for answers, content for prose) take it from
``AgentEnvironment.llm``, which is None unless ``AIA_LLM_BASE_URL`` is set, and
fall back to their offline methods then.

A busy or failing server (429, 5xx, a refused connection) is tried again a
couple of times, after its ``Retry-After`` when it gives one; a slow one is
not (another try would likely be as slow, and the run would wait twice as
long). Anything else becomes an ``LLMError`` whose message says what to check.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from aia_workers.errors import TaskFailure
from aia_workers.settings import Settings

__all__ = ["LLMClient", "LLMError", "llm_from_settings"]

log = logging.getLogger(__name__)

_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# Enough of an error reply to say what went wrong, not a whole HTML error page.
_ERROR_CHARS = 300


class LLMError(TaskFailure):
    """Raised when the language-model server gives no usable answer; the message says why."""


class LLMClient:
    """Asks one model on one OpenAI-compatible server; safe to share between threads.

    ``timeout_seconds`` bounds each wait (connecting, and each read of the
    reply); ``retries`` is how many more times a 429, a 5xx or a refused
    connection is tried, waiting ``backoff_seconds`` doubled each time
    (jittered), or the server's ``Retry-After`` up to ``max_retry_after_seconds``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout_seconds: float = 60.0,
        retries: int = 2,
        backoff_seconds: float = 0.5,
        max_retry_after_seconds: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("an LLM client needs the server's base URL (AIA_LLM_BASE_URL)")
        if not model:
            raise ValueError("an LLM client needs a model name (AIA_LLM_MODEL)")
        self.model = model
        self._where = _shown(base_url)
        self._timeout = timeout_seconds
        self._retries = max(0, retries)
        self._backoff = backoff_seconds
        self._max_retry_after = max_retry_after_seconds
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            # A redirect would carry the key to wherever it points.
            follow_redirects=False,
        )

    def chat(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> str:
        """The model's answer to ``messages`` (each ``{"role", "content"}``), as text."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "temperature": temperature,
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        return _content(self._post(body), self._where)

    def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = None,
    ) -> str:
        """The answer to one user message, after an optional system message."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        return self.chat(messages, temperature=temperature, max_tokens=max_tokens)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _post(self, body: Mapping[str, Any]) -> Any:
        attempt = 0
        while True:
            try:
                reply = self._http.post("chat/completions", json=body)
            except httpx.TimeoutException:
                raise LLMError(
                    f"the language model at {self._where} did not answer within "
                    f"{self._timeout:g} s (AIA_LLM_TIMEOUT_SECONDS)"
                ) from None
            except httpx.TransportError as exc:
                if attempt < self._retries:
                    attempt += 1
                    self._wait(attempt, None)
                    continue
                raise LLMError(
                    f"could not reach the language model at {self._where} "
                    f"({type(exc).__name__}: {exc}); check AIA_LLM_BASE_URL and that it runs"
                ) from None
            if reply.status_code in _RETRIED_STATUSES and attempt < self._retries:
                attempt += 1
                log.info("llm: %s answered %d; trying again", self._where, reply.status_code)
                self._wait(attempt, reply.headers.get("retry-after"))
                continue
            if reply.is_success:
                try:
                    return reply.json()
                except ValueError:
                    raise LLMError(
                        f"the language model at {self._where} answered with something that "
                        f"is not JSON: {reply.text[:_ERROR_CHARS]!r}"
                    ) from None
            raise LLMError(_refusal(reply, self._where, self.model, attempt + 1))

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
        # A Retry-After in seconds is followed (capped); an HTTP date leaves the backoff.
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                delay = max(0.0, min(float(retry_after), self._max_retry_after))
        time.sleep(delay)


def llm_from_settings(settings: Settings) -> LLMClient | None:
    """The configured client, or None when ``AIA_LLM_BASE_URL`` is not set."""
    if not settings.llm_base_url:
        return None
    return LLMClient(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        timeout_seconds=settings.llm_timeout_seconds,
    )


def _content(reply: Any, where: str) -> str:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise LLMError(
            f"the language model at {where} answered without choices[0].message.content: "
            f"{str(reply)[:_ERROR_CHARS]!r}"
        )
    return content


def _refusal(reply: httpx.Response, where: str, model: str, tries: int) -> str:
    status = reply.status_code
    said = _server_message(reply)
    if status in (401, 403):
        return f"the language model at {where} refused the key ({status}): check AIA_LLM_API_KEY"
    if status == 404:
        return (
            f"the language model at {where} has no chat/completions or no model {model!r} "
            f"(404: {said}); check AIA_LLM_BASE_URL (it usually ends in /v1) and AIA_LLM_MODEL"
        )
    if status in _RETRIED_STATUSES:
        times = "once" if tries == 1 else f"{tries} times"
        return f"the language model at {where} answered {status} {times}: {said}"
    return f"the language model at {where} refused the request ({status}): {said}"


def _server_message(reply: httpx.Response) -> str:
    try:
        error = reply.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:_ERROR_CHARS]
    if isinstance(error, str):
        return error[:_ERROR_CHARS]
    return reply.text[:_ERROR_CHARS] or reply.reason_phrase


def _shown(base_url: str) -> str:
    # Only where it is: a URL may carry credentials in its user part or query.
    url = httpx.URL(base_url)
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path.rstrip('/')}"
