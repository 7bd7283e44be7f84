"""Search-space files: every shipped space loads; malformed ones fail with one line naming file and key."""
from pathlib import Path

import pytest
import yaml

from mlplatform.config import ConfigError
from mlplatform.registry import FAMILIES, build_config, get_family
from mlplatform.tune.search_space import default_path, load_search_space

REPO = Path(__file__).resolve().parents[2]


def shipped():
    for path in sorted((REPO / "search_spaces").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for space in doc["spaces"]:
            yield doc["family"], space


@pytest.mark.parametrize("family, space", list(shipped()))
def test_every_shipped_space_loads_and_matches_selection(family, space):
    fam = get_family(family)
    s = load_search_space(default_path(family), space, build_config(family, "debug"), family,
                          fam.selection_metric, fam.mode)
    assert s.params and s.tune_domains().keys() == s.params.keys()


def test_every_family_has_a_search_space():
    assert all(default_path(f).exists() for f in FAMILIES)


def write(tmp_path, body: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(body)
    return p


HEAD = "family: riscov\nmetric: val/nmse_blend\nmode: min\nspaces:\n  wide:\n"


@pytest.mark.parametrize("body, fragment", [
    ("family: riscov\nspaces: [", "malformed YAML"),
    (HEAD + "    loss.nope: {type: uniform, low: 0, high: 1}\n", "unknown config key 'loss.nope'"),
    (HEAD + "    optim.lr: {type: gaussian, low: 0, high: 1}\n", "needs type one of"),
    (HEAD + "    optim.lr: {type: uniform, low: 0.1, high: 0.01}\n", "low (0.1) must be < high (0.01)"),
    (HEAD + "    optim.lr: {type: loguniform, low: 0, high: 0.1}\n", "loguniform needs low > 0"),
    (HEAD + "    optim.lr: {type: uniform, low: 0.001, high: 5}\n", "optim.lr: 5.0 is out of range"),
    (HEAD + "    model.hidden: {type: choice, values: []}\n", "non-empty list"),
    (HEAD + "    model.hidden: {type: choice, values: [64, big]}\n", "'big' is not an int"),
    ("family: riscov\nmetric: val/loss\nmode: min\nspaces: {wide: {optim.lr: {type: uniform, low: 0.001, high: 0.01}}}",
     "disagrees with the family's checkpoint-selection metric"),
    ("family: tse\nmetric: val/nmse_blend\nmode: min\nspaces: {}", "is for family 'tse'"),
    (HEAD.replace("mode: min", "mode: lowest") + "    optim.lr: {type: uniform, low: 0.001, high: 0.01}\n",
     "mode must be min or max"),
])
def test_malformed_spaces(tmp_path, body, fragment):
    with pytest.raises(ConfigError) as e:
        load_search_space(write(tmp_path, body), "wide", build_config("riscov", "debug"), "riscov",
                          "val/nmse_blend", "min")
    assert fragment in str(e.value) and "\n" not in str(e.value)
    assert "space.yaml" in str(e.value)


def test_unknown_space_name(tmp_path):
    with pytest.raises(ConfigError, match="no space named 'tiny'; choose one of wide, narrow"):
        load_search_space(default_path("riscov"), "tiny", build_config("riscov", "debug"), "riscov")
