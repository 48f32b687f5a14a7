"""The package's docstrings run, every public item is documented, and the stubs match."""

from __future__ import annotations

import ast
import doctest
import inspect
from pathlib import Path

import strata
import strata._results
import strata.privacy
import strata._strata


def test_doctests_pass():
    for mod in [strata, strata._results, strata.privacy]:
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0


def test_public_items_are_documented():
    for name in strata.__all__:
        obj = getattr(strata, name)
        if name == "MEASURE_NAMES":
            continue
        assert inspect.getdoc(obj), name
        if inspect.isclass(obj) and obj is not strata.StrataError:
            for m, v in vars(obj).items():
                if m.startswith("_") or not (callable(v) or isinstance(v, property)):
                    continue
                assert inspect.getdoc(v), f"{name}.{m}"
    assert issubclass(strata.StrataError, ValueError)
    assert strata.StrataError.__module__ == "strata"


def test_stubs_name_what_the_module_has():
    stub = Path(strata._strata.__file__).with_name("_strata.pyi")
    if not stub.exists():  # an installed wheel keeps the stub beside the package
        stub = Path(strata.__file__).with_name("_strata.pyi")
    tree = ast.parse(stub.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    typed = {n for n in names if n.startswith("_") and n.endswith("Dict")}
    public = {n for n in dir(strata._strata) if not n.startswith("__")} | {"__version__"}
    assert names - typed == public
    assert (Path(strata.__file__).parent / "py.typed").exists()
