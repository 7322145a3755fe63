"""The import graph of lib/faster_rcnn: no circle between files, none between the package's units (its folders and
top-level modules), and every import points down the floors of docs/design.md §1.

Every import statement counts, also those inside functions (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'lib' / 'faster_rcnn'

# The floors, lowest first: a unit may import only from units below it (docs/design.md §1).
FLOORS = ['errors', 'paths', 'config', 'settings', 'utils', 'boxes', 'model_file', 'ops', 'layers', 'nets',
          'datasets', 'data', 'export', 'inference', 'analysis', 'convert', 'engine', 'cli', 'bench']


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module (Python files, and the compiled Cython ones by their .pyx)."""
    found = {}
    for path in PACKAGE.rglob('*'):
        if path.suffix not in ('.py', '.pyx') or '__pycache__' in path.parts:
            continue
        parts = ('faster_rcnn',) + path.relative_to(PACKAGE).with_suffix('').parts
        if parts[-1] == '__init__':
            parts = parts[:-1]
        found['.'.join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` imports (a ``from x import y`` counts y when y is a module)."""
    if path.suffix == '.pyx':
        return set()
    is_package = path.name == '__init__.py'
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split('.') if is_package else name.split('.')[:-1]
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            targets = [f'{target}.{a.name}' if f'{target}.{a.name}' in modules else target for a in node.names]
        for t in targets:
            while t not in modules and '.' in t:
                t = t.rsplit('.', 1)[0]
            if t in modules and t != name and t != 'faster_rcnn':
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    # The package's own __init__ re-exports Detector lazily; it is the top, not a floor.
    return {name: _imports(name, path, modules) for name, path in modules.items() if name != 'faster_rcnn'}


def unit_of(module: str) -> str:
    return module.split('.')[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = defaultdict(set)
    for a, targets in graph.items():
        units[unit_of(a)]
        for b in targets:
            if unit_of(a) != unit_of(b):
                units[unit_of(a)].add(unit_of(b))
    return units


def test_the_design_document_lists_the_same_floors():
    text = (PACKAGE.parents[1] / 'docs' / 'design.md').read_text(encoding='utf-8')
    rows = re.findall(r'^\| *\d+ *\| `([a-z_]+)(?:\.py|/)` \|', text, flags=re.M)
    assert rows == FLOORS


def test_cycle_finder_finds_a_planted_circle():
    planted = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert _cycles(planted) == [['a', 'b', 'c']]
    assert _cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_circle_between_files():
    assert _cycles(_graph()) == []


def test_no_import_circle_between_units():
    assert _cycles(_unit_graph(_graph())) == []


def test_every_unit_has_a_floor_and_imports_only_downwards():
    graph = _graph()
    units = _unit_graph(graph)
    assert set(units) <= set(FLOORS), f'units without a floor: {sorted(set(units) - set(FLOORS))}'
    rank = {u: i for i, u in enumerate(FLOORS)}
    upward = sorted(f'{a} -> {b}' for a, targets in graph.items() for b in targets
                    if rank[unit_of(b)] > rank[unit_of(a)])
    assert upward == []


def test_errors_is_the_ground_floor():
    graph = _graph()
    assert graph['faster_rcnn.errors'] == set()
    # Every module that raises a user error takes it from there, not from a module of its own.
    for name, path in _modules().items():
        if path.suffix == '.py':
            tree = ast.parse(path.read_text(encoding='utf-8'))
            defined = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name.endswith('Error')]
            if name != 'faster_rcnn.errors':
                assert defined == [], f'{name} defines {defined}: user errors live in faster_rcnn/errors.py'


def test_only_the_config_and_cli_modules_import_the_global_cfg():
    importing = set()
    for name, path in _modules().items():
        if path.suffix != '.py':
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith('config'):
                if any(a.name == 'cfg' for a in node.names):
                    importing.add(name)
    assert importing == {'faster_rcnn.cli'}
