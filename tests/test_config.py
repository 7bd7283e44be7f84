"""Typed configs and the one dotted override syntax."""
import pytest
import torch

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


def _forward(family: str, cfg, model) -> list[torch.Tensor]:
    """One forward pass on inputs sized from ``cfg`` alone; checks the output shape each family promises and
    returns the outputs."""
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        if family == "riscov":
            n = cfg.data.n_elements
            a = torch.randn(2, n, 3 * n, dtype=torch.complex64)
            r_samp = a @ a.conj().transpose(-2, -1) / (3 * n)
            r = model(r_samp)
            assert r.shape == (2, n, n) and r.dtype == r_samp.dtype
            assert torch.allclose(r, r.conj().transpose(-2, -1), atol=1e-5)  # Hermitian
            tr = lambda m: torch.diagonal(m, dim1=-2, dim2=-1).real.sum(-1)  # noqa: E731
            assert torch.allclose(tr(r), tr(r_samp), rtol=1e-4)  # trace kept: R_blend mixes like with like
            assert (torch.linalg.eigvalsh(r) > -1e-5).all()  # PSD
            return [r]
        elif family == "tse":
            t = int(0.25 * cfg.data.sample_rate)  # fully convolutional: a short clip keeps `full` cheap
            est = model(torch.randn(2, t) * 0.1, torch.randn(2, int(0.3 * cfg.data.sample_rate)) * 0.1)
            assert est.shape == (2, t)
            return [est]
        elif family == "creative":
            from mlplatform.families.creative.codec import load_codec

            codec = load_codec(cfg.data.codec_checkpoint, cfg.data.codec_seed)
            t, w = codec.frames(cfg.data.clip_s), codec.frames(cfg.data.window_s)
            out = model(torch.randn(1, codec.dim, t), torch.randn(1, codec.dim, t))
            for k in ("output", "window_input", "window_target", "original_input"):
                assert out[k].shape == (1, cfg.model.num_pairs, codec.dim, w), (k, out[k].shape)
            lo, hi = cfg.model.ratio_min, cfg.model.ratio_max
            assert ((out["ratio_input"] >= lo - 1e-6) & (out["ratio_input"] <= hi + 1e-6)).all()
            return [v for v in out.values() if v.is_floating_point()]
        elif family == "codec":
            n = int(0.2 * 24000) // 320 * 320  # fully convolutional: a short clip keeps `full` cheap
            out = model(torch.randn(2, 1, n) * 0.1)
            assert out["recon"].shape == (2, 1, n) and out["z"].shape == (2, cfg.model.dimension, n // 320)
            return [out["recon"], out["z"]]
        elif family == "vqvae":
            from mlplatform.families.vqvae.data import layout

            lay = layout(cfg)
            out = model(torch.randn(4, sum(lay.sizes)))
            assert out["recon"].shape == (4, sum(lay.sizes))
            assert out["indices"].shape == (4, len(lay.categories), 3)
            for c, size in enumerate(cfg.model.codebook_sizes):  # each level's codes index its own codebook
                assert 0 <= int(out["indices"][..., c].min()) and int(out["indices"][..., c].max()) < size
            return [out["recon"], out["commitment"]]
    pytest.fail(f"no forward check for family {family!r}: add one to tests/test_config.py")


# the knob that sets each family's width: a model that ignores its config keeps its parameter count
WIDTH = {"codec": "model.n_filters", "riscov": "model.hidden", "tse": "model.hidden", "creative": "model.agent_hidden",
         "vqvae": "model.group_hidden_dim"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("preset", ["debug", "full"])
def test_every_preset_builds_a_model_that_runs_on_inputs_sized_by_its_config(family, preset):
    fam = get_family(family)
    cfg = build_config(family, preset)
    model = fam.build_model(cfg)
    assert all(torch.isfinite(o).all() for o in _forward(family, cfg, model))
    if preset == "debug":
        width = WIDTH[family]
        wider = fam.build_model(build_config(family, preset, [f"{width}={2 * cfg.get(width)}"]))
        assert _trainable(wider) > _trainable(model), f"{width} does not change the {family} model"


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_dict_valued_leaf_roundtrips_through_from_dict():
    cfg = build_config("vqvae", "debug", {"model.compression_ratios": {"cluster_0": [0.3, 0.8, 1.9]}})
    again = type(cfg).from_dict(cfg.to_dict())
    assert again.model.compression_ratios == {"cluster_0": [0.3, 0.8, 1.9]} and again == cfg
    with pytest.raises(ConfigError, match="unknown config key 'model.nope'"):
        type(cfg).from_dict({**cfg.to_dict(), "model": {**cfg.to_dict()["model"], "nope": 1}})
