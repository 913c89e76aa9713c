"""The language-model client against a local server speaking the chat-completions API."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from aia_workers.agents.llm import LLMClient, LLMError, llm_from_settings
from aia_workers.settings import Settings
from tests.llm_server import LLMServer, running

KEY = "sk-test-0123456789"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with running(api_key=KEY) as srv:
        yield srv


def _client(server: LLMServer, **kw) -> LLMClient:
    options = {
        "base_url": server.base_url,
        "model": "tiny",
        "api_key": KEY,
        "backoff_seconds": 0.01,
    }
    return LLMClient(**{**options, **kw})


def test_the_answer_is_the_reply_s_content_and_the_request_is_the_protocol_s(
    server: LLMServer,
) -> None:
    with _client(server) as llm:
        answer = llm.complete("Which queue is busiest?\nSecond line.", system="Be brief.")
    assert answer == "Which queue is busiest?"
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert request["body"] == {
        "model": "tiny",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Which queue is busiest?\nSecond line."},
        ],
        "temperature": 0.0,
    }


def test_a_429_is_tried_again_after_its_retry_after(server: LLMServer) -> None:
    server.fail(429, retry_after="0")
    with _client(server) as llm:
        assert llm.chat([{"role": "user", "content": "hello"}], max_tokens=5) == "hello"
    assert len(server.requests) == 2
    assert server.requests[1]["body"]["max_tokens"] == 5


def test_a_500_that_persists_is_a_clear_error_after_two_retries(server: LLMServer) -> None:
    server.fail(500, times=5)
    with _client(server) as llm, pytest.raises(LLMError) as caught:
        llm.complete("hello")
    assert len(server.requests) == 3
    message = str(caught.value)
    assert "answered 500 3 times" in message
    assert "told to fail with 500" in message
    assert server.base_url in message


def test_a_slow_server_times_out_once_without_a_retry(server: LLMServer) -> None:
    server.stall(1.0)
    with _client(server, timeout_seconds=0.3) as llm, pytest.raises(LLMError) as caught:
        llm.complete("hello")
    assert "did not answer within 0.3 s (AIA_LLM_TIMEOUT_SECONDS)" in str(caught.value)
    assert len(server.requests) == 1


def test_a_wrong_key_or_path_says_which_setting_to_check(server: LLMServer) -> None:
    with _client(server, api_key="sk-wrong") as llm, pytest.raises(LLMError) as caught:
        llm.complete("hello")
    assert "refused the key (401): check AIA_LLM_API_KEY" in str(caught.value)
    assert len(server.requests) == 1
    base = server.base_url.removesuffix("/v1")
    with _client(server, base_url=base) as llm, pytest.raises(LLMError) as caught:
        llm.complete("hello")
    assert "check AIA_LLM_BASE_URL (it usually ends in /v1)" in str(caught.value)


def test_a_server_that_is_not_there_is_tried_then_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    llm = LLMClient(base_url=f"http://127.0.0.1:{port}/v1", model="m", backoff_seconds=0.01)
    with llm, pytest.raises(LLMError, match=r"could not reach the language model at http://127"):
        llm.complete("hello")


def test_the_client_comes_from_settings_only_when_configured(server: LLMServer, tmp_path) -> None:
    assert llm_from_settings(Settings(data_home=tmp_path)) is None
    settings = Settings(
        data_home=tmp_path,
        llm_base_url=server.base_url,
        llm_api_key=KEY,
        llm_model="tiny",
        llm_timeout_seconds=5,
    )
    llm = llm_from_settings(settings)
    assert llm is not None
    with llm:
        assert llm.complete("from settings") == "from settings"
    with pytest.raises(ValidationError, match="AIA_LLM_MODEL is not"):
        Settings(data_home=tmp_path, llm_base_url=server.base_url)
