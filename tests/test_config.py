"""Typed configs and the one dotted override syntax."""
import pytest

from mlplatform.config import ConfigError
from mlplatform.registry import FAMILIES, build_config, get_family


def test_override_types_and_roundtrip():
    cfg = build_config("riscov", "debug", ["loss.lam_cov_pred=0.1", "model.hidden=64", "loss.curriculum=true"])
    assert cfg.loss.lam_cov_pred == 0.1 and cfg.model.hidden == 64 and cfg.loss.curriculum is True
    again = type(cfg).from_dict(cfg.to_dict())
    assert again == cfg


@pytest.mark.parametrize("override, fragment", [
    ("loss.lam_cvo=1", "unknown config key 'loss.lam_cvo'; did you mean loss.lam_cov"),
    ("model.hidden=abc", "model.hidden: 'abc' is not an int"),
    ("model.hidden=2.5", "model.hidden: '2.5' is not an int"),
    ("optim.lr=-1", "optim.lr: -1.0 is out of range"),
    ("optim.name=lion", "optim.name: 'lion' is not allowed; choose one of 'adamw', 'adam', 'sgd'"),
    ("loss.lam_cov=0", "loss.lam_cov: 0.0 must be > 0"),
    ("nonsense", "is not of the form key=value"),
    ("train=3", "unknown config key 'train'"),
])
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as e:
        build_config("riscov", "debug", [override])
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_family_and_preset():
    with pytest.raises(ConfigError, match="unknown family 'nope'"):
        get_family("nope")
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        build_config("riscov", "huge")


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("preset", ["debug", "full"])
def test_every_preset_builds_a_model(family, preset):
    fam = get_family(family)
    cfg = build_config(family, preset)
    model = fam.build_model(cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


def test_dict_valued_leaf_roundtrips_through_from_dict():
    cfg = build_config("vqvae", "debug", {"model.compression_ratios": {"cluster_0": [0.3, 0.8, 1.9]}})
    again = type(cfg).from_dict(cfg.to_dict())
    assert again.model.compression_ratios == {"cluster_0": [0.3, 0.8, 1.9]} and again == cfg
    with pytest.raises(ConfigError, match="unknown config key 'model.nope'"):
        type(cfg).from_dict({**cfg.to_dict(), "model": {**cfg.to_dict()["model"], "nope": 1}})
