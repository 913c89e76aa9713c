"""Real installed distributions of agent-type plugins, written into a directory on sys.path.

A plugin is found the way pip would leave it: the package's modules, and a
``<name>-<version>.dist-info`` with ``METADATA`` and ``entry_points.txt``
declaring entry points of the group ``aia.agents``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["E2E_PLUGIN", "install_distribution"]

# The e2e stack's "third-party" package: its source is a real module of the tests.
E2E_PLUGIN = Path(__file__).parent / "e2e" / "agents" / "plugin_agents.py"


def install_distribution(
    root: Path,
    dist: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str],
    version: str = "0.1",
) -> None:
    """Write ``modules`` (dotted name -> source) and ``dist``'s metadata below ``root``."""
    for dotted, source in modules.items():
        parts = dotted.split(".")
        package = root.joinpath(*parts[:-1])
        package.mkdir(parents=True, exist_ok=True)
        for depth in range(1, len(parts)):
            init = root.joinpath(*parts[:depth], "__init__.py")
            if not init.exists():
                init.write_text("")
        (package / f"{parts[-1]}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("[aia.agents]\n" + "\n".join(lines) + "\n")
