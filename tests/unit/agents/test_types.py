"""The agent-type registry over real installed distributions: good, broken, mismatched."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

from aia_workers.agents.types import (
    ENTRY_POINT_GROUP,
    UnknownAgentTypeError,
    agent_type,
    agent_types,
    load_agent_types,
)
from tests.agent_plugins import install_distribution

GOOD = """
from pydantic import BaseModel, Field

from aia_workers.agents.contracts import AgentType


class Config(BaseModel):
    greeting: str = "hello"


class Input(BaseModel):
    who: str = Field(min_length=1)


class Greeter(AgentType[Config, Input]):
    name = "{name}"
    summary = "Greets someone."
    config_model = Config
    input_model = Input

    def run(self, inputs, ctx):
        return {{"text": f"{{self.config.greeting}}, {{inputs.who}}"}}


class Renamed(Greeter):
    name = "something-else"


class NoRun(AgentType[Config, Input]):
    name = "{name}-norun"
    summary = "Forgot run()."
    config_model = Config
    input_model = Input


class NotAType:
    name = "{name}-plain"
"""

BROKEN = "raise RuntimeError('this plugin is broken on purpose')\n"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A distribution with one good type and every kind of bad one; its type-name prefix."""
    tag = uuid.uuid4().hex[:8]
    prefix = f"greeter{tag}"
    package = f"aia_test_plugin_{tag}"
    install_distribution(
        tmp_path,
        f"aia-test-plugin-{tag}",
        {
            prefix: f"{package}.agents:Greeter",
            f"{prefix}-mismatch": f"{package}.agents:Renamed",
            f"{prefix}-norun": f"{package}.agents:NoRun",
            f"{prefix}-plain": f"{package}.agents:NotAType",
            f"{prefix}-raises": f"{package}.broken:Anything",
            f"{prefix}-missing": f"{package}.nowhere:Greeter",
            f"{prefix}-noattr": f"{package}.agents:Nobody",
        },
        {f"{package}.agents": GOOD.format(name=prefix), f"{package}.broken": BROKEN},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield prefix
    for module in [m for m in sys.modules if m.startswith(package)]:
        del sys.modules[module]


def _ours(prefix: str) -> list[EntryPoint]:
    return [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name.startswith(prefix)]


def test_a_good_plugin_is_loaded_with_its_schemas(plugin: str) -> None:
    types = load_agent_types(_ours(plugin))
    assert list(types.types) == [plugin]
    kind = types.get(plugin)
    assert kind.summary == "Greets someone."
    assert kind(kind.config_model()).run(kind.input_model(who="Ada"), None) == {
        "text": "hello, Ada"
    }
    schemas = types.schemas[plugin]
    assert schemas["config"]["properties"]["greeting"]["default"] == "hello"
    assert schemas["input"]["required"] == ["who"]


def test_every_bad_entry_point_is_kept_with_its_reason(plugin: str) -> None:
    types = load_agent_types(_ours(plugin))
    broken = {b.name.removeprefix(plugin): b for b in types.broken}
    assert set(broken) == {"-mismatch", "-norun", "-plain", "-raises", "-missing", "-noattr"}
    assert "'something-else'" in broken["-mismatch"].error
    assert "registered as" in broken["-mismatch"].error
    assert "does not implement run()" in broken["-norun"].error
    assert "not a subclass" in broken["-plain"].error
    assert "RuntimeError: this plugin is broken on purpose" in broken["-raises"].error
    assert "ModuleNotFoundError" in broken["-missing"].error
    assert "AttributeError" in broken["-noattr"].error
    assert broken["-raises"].distribution is not None
    assert broken["-raises"].distribution.startswith("aia-test-plugin-")
    assert broken["-raises"].target.endswith(".broken:Anything")


def test_the_installed_entry_points_are_found_by_default(plugin: str) -> None:
    # The shared environment's own entry points (the built-in types) may load or
    # not; ours are found among them, and nothing raises either way.
    types = load_agent_types()
    assert plugin in types.types
    assert f"{plugin}-raises" in {b.name for b in types.broken}


def test_an_unknown_or_broken_name_is_a_clear_error(plugin: str) -> None:
    types = load_agent_types(_ours(plugin))
    with pytest.raises(UnknownAgentTypeError, match=f"known types: {plugin}$"):
        types.get("nope")
    with pytest.raises(UnknownAgentTypeError, match=r"could not be loaded: .*RuntimeError"):
        types.get(f"{plugin}-raises")


def test_two_plugins_with_one_name_keep_the_first(
    plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    tag = uuid.uuid4().hex[:8]
    install_distribution(
        other,
        f"aia-test-clash-{tag}",
        {plugin: f"aia_test_clash_{tag}.agents:Greeter"},
        {f"aia_test_clash_{tag}.agents": GOOD.format(name=plugin)},
    )
    monkeypatch.syspath_prepend(str(other))
    types = load_agent_types(_ours(plugin))
    assert plugin in types.types
    assert any(b.name == plugin and "unique" in b.error for b in types.broken)


def test_the_process_registry_is_loaded_once() -> None:
    assert agent_types() is agent_types()
    with pytest.raises(UnknownAgentTypeError, match="unknown agent type 'no-such-type'"):
        agent_type("no-such-type")
