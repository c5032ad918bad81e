"""Import rules of src/securephone, checked with ``ast`` (docs/import-rules.md).

1. The core (sip, sdp, media, errors.py and every package under them) imports nothing from
   securephone outside the core: not the asyncio shell, the web, the CLI, the store, audio,
   the demo, capture, the verifier, TLS/PKI helpers; nor standard modules that do I/O or
   read the clock (socket, asyncio, os, pathlib, time, ...).
2. The store imports nothing from the layers above it (web, aio, the CLI and the runner).
3. No import cycle between modules of src/securephone.

Every ``import`` counts: module level, inside functions, and under ``if TYPE_CHECKING:``.
Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``, so it counts as importing that
package too (unless the importer is inside it already).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT = "securephone"
CORE = ("sip", "sdp", "media", "net", "zrtp", "dtls", "errors")  # errors: the core's error types
STORE_MUST_NOT_IMPORT = ("web", "aio", "cli", "run", "demo")
# Standard modules that bring sockets, clocks, files, processes or the event loop.
IO_MODULES = frozenset(
    {"asyncio", "io", "os", "pathlib", "selectors", "shutil", "signal", "socket", "sqlite3",
     "ssl", "subprocess", "tempfile", "threading", "time"}
)  # fmt: skip


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line`` of ``path``."""

    source: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source} imports {self.target}"


Graph = dict[str, dict[str, Edge]]  # module -> {imported module: first import of it}


# -- building the graph ------------------------------------------------------------------------
def find_modules(src: Path, root: str = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under ``src/root``."""
    modules: dict[str, Path] = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module named by a (possibly relative) ``from ... import``."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _named(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, int]]:
    """Every module name an import statement anywhere in ``tree`` may refer to."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def _existing(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` if it is one of our modules, else its nearest ancestor that is."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _ancestors(name: str, root: str) -> Iterator[str]:
    parts = name.split(".")[:-1]
    while len(parts) > 1 or (parts and parts[0] != root):
        yield ".".join(parts)
        parts.pop()


def _targets(name: str, importer: str, modules: dict[str, Path], root: str) -> Iterator[str]:
    """The module itself and the packages whose ``__init__`` the import runs."""
    target = _existing(name, modules)
    if target is None or target == root:
        return
    inside = {importer, *_ancestors(importer, root)}
    for candidate in (target, *_ancestors(target, root)):
        if candidate not in inside and candidate in modules:
            yield candidate


def build_graph(src: Path, root: str = ROOT) -> Graph:
    """Module -> the securephone modules it imports, with the first place it does."""
    modules = find_modules(src, root)
    graph: Graph = {name: {} for name in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, line in _named(tree, module, _is_package(path)):
            if name != root and not name.startswith(root + "."):
                continue
            for target in _targets(name, module, modules, root):
                if target not in graph[module]:
                    graph[module][target] = Edge(module, target, path.relative_to(src), line)
    return graph


# -- the rules -----------------------------------------------------------------------------------
def in_packages(module: str, packages: Iterable[str], root: str = ROOT) -> bool:
    """True when ``module`` is one of ``root.<package>`` or under one of them."""
    return any(module == f"{root}.{p}" or module.startswith(f"{root}.{p}.") for p in packages)


def core_violations(graph: Graph, root: str = ROOT) -> list[Edge]:
    """Core modules importing securephone modules outside the core."""
    return [
        edge
        for module, edges in graph.items()
        if in_packages(module, CORE, root)
        for target, edge in edges.items()
        if not in_packages(target, CORE, root)
    ]


def core_io_imports(src: Path, root: str = ROOT) -> list[str]:
    """Core modules importing a standard module that does I/O or reads the clock."""
    found = []
    for module, path in find_modules(src, root).items():
        if not in_packages(module, CORE, root):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for name, line in _named(tree, module, _is_package(path)):
            top = name.split(".")[0]
            if top in IO_MODULES:
                found.append(f"{path.relative_to(src)}:{line}: {module} imports {top}")
    return sorted(set(found))


def store_violations(graph: Graph, root: str = ROOT) -> list[Edge]:
    """Store modules importing the web, the asyncio shell, the CLI or the runner."""
    return [
        edge
        for module, edges in graph.items()
        if in_packages(module, ("store",), root)
        for target, edge in edges.items()
        if in_packages(target, STORE_MUST_NOT_IMPORT, root)
    ]


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def shortest_cycle(graph: Graph, component: list[str]) -> list[Edge]:
    """One shortest cycle through the component's first module, as the edges to follow."""
    start, members = component[0], set(component)
    came_from: dict[str, Edge] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target, edge in sorted(graph[node].items()):
            if target == start:
                path = [edge]
                while path[0].source != start:
                    path.insert(0, came_from[path[0].source])
                return path
            if target in members and target not in came_from:
                came_from[target] = edge
                queue.append(target)
    raise AssertionError(f"{component} is not strongly connected")


def describe_cycles(graph: Graph) -> list[str]:
    """A readable paragraph per import cycle: its modules and one cycle, import by import."""
    text = []
    for component in strongly_connected(graph):
        lines = [f"cycle among {len(component)} modules: {', '.join(component)}"]
        lines += [f"    {edge}" for edge in shortest_cycle(graph, component)]
        text.append("\n".join(lines))
    return text


# -- the tests on src/securephone -------------------------------------------------------------------
GRAPH = build_graph(SRC)


def test_the_graph_sees_the_whole_source_tree() -> None:
    assert "securephone.sip.message" in GRAPH and "securephone.web.app" in GRAPH
    assert "securephone.sip.message" in GRAPH["securephone.sip.endpoint"]


def test_the_core_imports_only_the_core() -> None:
    violations = core_violations(GRAPH)
    assert not violations, "the core must not import the shell:\n" + "\n".join(map(str, violations))


def test_the_core_does_no_io() -> None:
    found = core_io_imports(SRC)
    assert not found, "the core must not do I/O or read the clock:\n" + "\n".join(found)


def test_the_store_does_not_import_the_web_or_the_shell() -> None:
    violations = store_violations(GRAPH)
    assert not violations, "store/ imports an upper layer:\n" + "\n".join(map(str, violations))


def test_the_suite_table_stays_a_leaf() -> None:
    # sdp/crypto.py and store/config.py import media/suites.py; it must import nothing back.
    assert GRAPH["securephone.media.suites"] == {}


def test_no_import_cycles() -> None:
    cycles = describe_cycles(GRAPH)
    assert not cycles, "import cycles in src/securephone:\n" + "\n\n".join(cycles)


# -- the checker itself must catch violations -----------------------------------------------------
FAKE_TREE = {
    "securephone/__init__.py": "",
    "securephone/sip/__init__.py": "",
    "securephone/sip/calls.py": (
        "from typing import TYPE_CHECKING\n"
        "from . import useragent\n"
        "if TYPE_CHECKING:\n"
        "    from securephone.web.app import App\n"
    ),
    "securephone/sip/useragent.py": (
        "def later():\n    import securephone.sip.calls\n    from ..aio import phone\n"
        "    from time import monotonic\n"
    ),
    "securephone/media/__init__.py": "from securephone.media import srtp\n",
    "securephone/media/srtp.py": "from securephone.sdp import crypto\n",
    "securephone/media/suites.py": "",
    "securephone/sdp/__init__.py": "",
    "securephone/sdp/crypto.py": "from securephone.media.suites import X\n",
    "securephone/aio/__init__.py": "",
    "securephone/aio/phone.py": "",
    "securephone/store/__init__.py": "",
    "securephone/store/config.py": "import securephone.web.settings as s\n",
    "securephone/web/__init__.py": "",
    "securephone/web/app.py": "from securephone.store.config import Config\n",
    "securephone/web/settings.py": "",
}


def fake_graph(tmp_path: Path) -> Graph:
    for name, text in FAKE_TREE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return build_graph(tmp_path)


def test_checker_finds_core_imports_in_functions_and_type_checking(tmp_path: Path) -> None:
    found = {(e.source, e.target, e.line) for e in core_violations(fake_graph(tmp_path))}
    assert found == {
        ("securephone.sip.calls", "securephone.web.app", 4),
        ("securephone.sip.calls", "securephone.web", 4),
        ("securephone.sip.useragent", "securephone.aio.phone", 3),
        ("securephone.sip.useragent", "securephone.aio", 3),
    }


def test_checker_finds_io_in_the_core(tmp_path: Path) -> None:
    fake_graph(tmp_path)
    assert core_io_imports(tmp_path) == [
        "securephone/sip/useragent.py:4: securephone.sip.useragent imports time"
    ]


def test_checker_finds_the_store_importing_the_web(tmp_path: Path) -> None:
    found = [(e.source, e.target) for e in store_violations(fake_graph(tmp_path))]
    assert ("securephone.store.config", "securephone.web.settings") in found


def test_checker_finds_cycles_through_relative_imports_and_package_inits(tmp_path: Path) -> None:
    graph = fake_graph(tmp_path)
    assert strongly_connected(graph) == [
        # sdp.crypto imports media.suites, which runs media/__init__, which imports srtp
        ["securephone.media", "securephone.media.srtp", "securephone.sdp.crypto"],
        ["securephone.sip.calls", "securephone.sip.useragent"],
    ]
    text = "\n".join(describe_cycles(graph))
    assert (
        "securephone/sip/calls.py:2: securephone.sip.calls imports securephone.sip.useragent"
        in (text)
    )
    assert "securephone.sip.useragent imports securephone.sip.calls" in text


def test_strongly_connected_on_a_hand_made_graph() -> None:
    def edges(source: str, *targets: str) -> dict[str, Edge]:
        return {t: Edge(source, t, Path(source), 1) for t in targets}

    graph: Graph = {
        "a": edges("a", "b"),
        "b": edges("b", "c"),
        "c": edges("c", "a", "d"),
        "d": edges("d", "e"),
        "e": edges("e"),
        "f": edges("f", "f"),  # a self-import is not a cycle between modules
    }
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert [e.target for e in shortest_cycle(graph, ["a", "b", "c"])] == ["b", "c", "a"]
    del graph["c"]["a"]
    assert strongly_connected(graph) == []
