"""The layout adapters are found, not listed: every public module of medglip.sources is one, checked."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

import medglip.sources as sources
from medglip.case import CaseRef
from medglip.errors import LayoutError
from medglip.sources._registry import Tier, check_adapter, discover, registry

ADAPTER = '''
from medglip.sources._registry import Tier
NAME = "{name}"
TIER = Tier.{tier}
LOOKS_FOR = "a {name}.txt"
def detect(root): return (root / "{name}.txt").exists()
def list_cases(root, *, modality=None): return []
def load_case(ref): raise NotImplementedError
'''


def _module(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(f"medglip.sources.{name}")
    base = {"NAME": name, "TIER": Tier.FOLDER, "LOOKS_FOR": "x", "detect": lambda root: False,
            "list_cases": lambda root, modality=None: [], "load_case": lambda ref: None}
    for k, v in {**base, **attrs}.items():
        if v is not None:
            setattr(mod, k, v)
    return mod


def test_every_public_module_of_the_package_is_a_layout():
    folder = Path(sources.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")}
    assert set(sources.LAYOUTS) == modules and "kvasir" in modules


def test_layouts_are_ordered_most_specific_tier_first():
    tiers = [m.TIER for m in sources.LAYOUTS.values()]
    assert tiers == sorted(tiers)
    assert list(sources.LAYOUTS)[0] == "manifest" and list(sources.LAYOUTS)[-1] == "coco"


@pytest.mark.parametrize(("attrs", "says"), [
    ({"TIER": None}, "TIER"), ({"TIER": 3}, "TIER"), ({"NAME": "other"}, "NAME"),
    ({"LOOKS_FOR": None}, "LOOKS_FOR"), ({"load_case": None}, "load_case"),
])
def test_an_adapter_missing_a_declaration_is_refused_naming_it(attrs, says):
    with pytest.raises(LayoutError, match=f"medglip.sources.fake.*{says}"):
        check_adapter(_module("fake", **attrs))


def test_registry_orders_by_tier_then_name():
    mods = [_module("zeta", TIER=Tier.MANIFEST), _module("beta"), _module("alpha")]
    assert list(registry(mods)) == ["zeta", "alpha", "beta"]


def test_a_new_adapter_is_one_new_module(tmp_path, monkeypatch):
    pkg = tmp_path / "more_sources"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "alpha.py").write_text(ADAPTER.format(name="alpha", tier="FOLDER"))
    (pkg / "beta.py").write_text(ADAPTER.format(name="beta", tier="MANIFEST"))
    (pkg / "_helpers.py").write_text("X = 1\n")  # private: not an adapter
    monkeypatch.syspath_prepend(str(tmp_path))
    found = discover("more_sources", [str(pkg)])
    assert list(found) == ["beta", "alpha"]
    assert found["alpha"].detect(tmp_path) is False


def test_detection_takes_the_most_specific_tier(monkeypatch, tmp_path):
    monkeypatch.setattr(sources, "LAYOUTS", registry([
        _module("broad", TIER=Tier.GENERIC_JSON, detect=lambda root: True),
        _module("exact", TIER=Tier.FOLDER, detect=lambda root: True)]))
    assert sources.detect_layout(tmp_path) == "exact"
    monkeypatch.setattr(sources, "LAYOUTS", registry([
        _module("one", detect=lambda root: True), _module("two", detect=lambda root: True)]))
    with pytest.raises(LayoutError, match="ambiguous layout, matches one, two"):
        sources.detect_layout(tmp_path)


def test_nothing_detected_lists_what_each_adapter_looks_for(tmp_path):
    with pytest.raises(LayoutError) as err:
        sources.detect_layout(tmp_path)
    for name, mod in sources.LAYOUTS.items():
        assert f"  - {name}: {mod.LOOKS_FOR}" in str(err.value)


def test_case_refs_are_built_by_keyword_only():
    with pytest.raises(TypeError):
        CaseRef("c1", "src", "kvasir", (Path("a.png"),))  # type: ignore[misc]
    ref = CaseRef(case_id="c 1", source="src", layout="kvasir", image_paths=(Path("a.png"),))
    assert ref.key == "src/c_1" and ref.label_paths == ()
