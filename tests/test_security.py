"""Secure defaults (issue 6): every ``torch.load`` in platform/ and jobs/ passes ``weights_only=True``
(a pickle-capable load of a shared checkpoint runs whatever code the file holds); YAML is read with
``safe_load``; nothing calls ``eval``/``exec``. Checked on the syntax tree, so comments, docstrings and
strings that merely mention ``torch.load`` do not count, and aliases (``import torch as T``,
``from torch import load``, ``torch.serialization.load``) do.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCANNED = [REPO / "platform", REPO / "jobs"]


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""  # a method of a computed value (``make().eval()``): never a builtin or a module function
    parts.append(node.id)
    return ".".join(reversed(parts))


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """``file:line what`` for each torch.load without weights_only=True, yaml.load/unsafe_load, eval, exec."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> the real dotted name
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        head, _, rest = name.partition(".")
        full = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
        where = f"{filename}:{node.lineno}"
        if full in ("torch.load", "torch.serialization.load"):
            kw = {k.arg: k.value for k in node.keywords}
            ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
            if not ok:
                bad.append(f"{where} {full} without weights_only=True")
        elif full in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            bad.append(f"{where} {full} (use yaml.safe_load)")
        elif full in ("eval", "exec", "builtins.eval", "builtins.exec"):
            bad.append(f"{where} {full}")
    return bad


def python_files() -> list[Path]:
    files = [p for d in SCANNED for p in d.rglob("*.py") if ".venv" not in p.parts]
    assert len(files) > 40  # the scan really sees the package and the jobs
    return files


def test_no_unsafe_load_in_platform_or_jobs():
    bad = [b for p in python_files() for b in unsafe_calls(p.read_text(), str(p.relative_to(REPO)))]
    assert bad == []


def test_the_package_really_loads_checkpoints_with_torch_load():
    # guards the scan itself: the loads it must see are there and are found as torch.load calls
    seen = sum(1 for p in python_files() for n in ast.walk(ast.parse(p.read_text()))
               if isinstance(n, ast.Call) and _dotted(n.func) == "torch.load")
    assert seen >= 2


@pytest.mark.parametrize("src, hit", [
    ("import torch\ntorch.load('x')", "torch.load without weights_only=True"),
    ("import torch\ntorch.load('x', weights_only=False)", "torch.load without weights_only=True"),
    ("import torch\nflag = True\ntorch.load('x', weights_only=flag)", "torch.load without weights_only=True"),
    ("import torch as T\nT.load('x')", "torch.load without weights_only=True"),
    ("from torch import load\nload('x')", "torch.load without weights_only=True"),
    ("from torch import load as L\nL('x', map_location='cpu')", "torch.load without weights_only=True"),
    ("import torch\ntorch.serialization.load('x')", "torch.serialization.load without weights_only=True"),
    ("import yaml\nyaml.load(open('f'))", "yaml.load (use yaml.safe_load)"),
    ("eval('1+1')", "eval"),
])
def test_scanner_flags_unsafe_forms(src, hit):
    found = unsafe_calls(src)
    assert len(found) == 1 and found[0].endswith(hit), found


@pytest.mark.parametrize("src", [
    "import torch\ntorch.load('x', map_location='cpu', weights_only=True)",
    "'''torch.load(x) in a docstring'''\n# torch.load(x) in a comment",
    "import yaml\nyaml.safe_load('a: 1')",
    "model.eval()",  # a method called eval is not the builtin
    "build().to('cpu').eval()",  # nor on a computed value
])
def test_scanner_accepts_safe_forms(src):
    assert unsafe_calls(src) == []
