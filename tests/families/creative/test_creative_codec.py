"""EnCodec wrapper: latents equal encodec's own encoder output for the same weights; local checkpoints."""
from __future__ import annotations

import pytest
import torch

from mlplatform.config import ConfigError
from mlplatform.families.creative.codec import load_codec
from mlplatform.data.torchaudio_compat import import_encodec


def test_latents_equal_encodecs_own_encoder_for_the_same_weights(tmp_path):
    enc = import_encodec()
    torch.manual_seed(123)
    ref = enc.EncodecModel.encodec_model_24khz(pretrained=False)
    path = tmp_path / "encodec_24khz.th"
    torch.save(ref.state_dict(), path)
    codec = load_codec(str(path), cache=False, quiet=True)  # real weights from a local file
    assert codec.pretrained and codec.identity.startswith("file:")
    wav = torch.randn(2, 1, codec.samples(0.4)) * 0.1
    with torch.no_grad():
        z = codec.encode(wav)
        assert z.shape == (2, 128, 30)
        assert torch.equal(z, ref.encoder(wav))
        assert torch.equal(codec.decode(z), ref.decoder(z))
    # the random-weights codec is the real architecture, and differs from these weights
    rnd = load_codec("", seed=0, cache=False, quiet=True)
    assert not rnd.pretrained and rnd.identity == "random:0"
    with torch.no_grad():
        assert not torch.allclose(rnd.encode(wav), z)


def test_random_codec_is_the_same_in_every_build_and_warns(capsys):
    a = load_codec("", seed=3, cache=False)
    assert "RANDOM" in capsys.readouterr().out
    b = load_codec("", seed=3, cache=False, quiet=True)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.frame_rate == 75.0 and a.frames(24.0) == 1800 and a.frames(16.0) == 1200


def test_bad_checkpoint_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_codec(str(tmp_path / "missing.th"), cache=False)
    bad = tmp_path / "bad.th"
    torch.save({"foo": torch.zeros(1)}, bad)
    with pytest.raises(ConfigError, match="not an EnCodec"):
        load_codec(str(bad), cache=False)


def test_codec_precedence_user_checkpoint_then_trained_then_random_opt_in(creative_cfg, creative_data, tmp_path):
    """A user's state dict wins; the default is the trained codec (cached, not retrained); random only on opt-in."""
    from mlplatform.families.creative.family import get_codec
    from mlplatform.families.creative.pretrained import ensure_trained, resolve_checkpoint

    trained = resolve_checkpoint(creative_cfg)
    assert trained == str(ensure_trained(creative_cfg)) and trained.endswith("state.pt")  # cached: same file
    user = tmp_path / "user.th"
    torch.save(load_codec("", seed=1, cache=False, quiet=True).model.state_dict(), user)
    assert resolve_checkpoint(creative_cfg.override({"data.codec_checkpoint": str(user)})) == str(user)

    class Tags:
        def __init__(self):
            self.tags = {}

        def set_tags(self, t):
            self.tags.update(t)

    for overrides, pretrained in (({}, "true"), ({"data.codec": "random"}, "false")):
        logger = Tags()
        codec = get_codec(creative_cfg.override(overrides), {"logger": logger}, torch.device("cpu"))
        assert logger.tags["codec.pretrained"] == pretrained and codec.pretrained == (pretrained == "true")
    with pytest.raises(ConfigError, match="codec_preset"):
        creative_cfg.override({"data.codec_preset": "nope"})


def test_decode_with_gradients_runs_the_lstms_in_train_mode_and_changes_nothing():
    """cuDNN's LSTM backward refuses a forward run in eval mode (an H200 stopped creative's first step):
    when gradients flow to the latents the decoder's LSTMs run in train mode (no dropout: same output),
    and the codec is back in eval mode afterwards."""
    codec = load_codec("", seed=0, cache=False, quiet=True)
    lstms = [m for m in codec.model.decoder.modules() if isinstance(m, torch.nn.LSTM)]
    assert lstms  # EnCodec 24 kHz has a 2-layer LSTM in its decoder
    seen: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda mod, _: seen.append(mod.training)) for m in lstms]
    z = torch.randn(1, 128, 6)
    with torch.no_grad():
        ref = codec.decode(z)
    assert seen == [False] * len(lstms)
    seen.clear()
    zg = z.clone().requires_grad_(True)
    out = codec.decode(zg)
    out.pow(2).sum().backward()
    assert seen == [True] * len(lstms) and zg.grad is not None
    assert torch.allclose(out.detach(), ref, atol=1e-6)
    assert not any(m.training for m in codec.modules())
    for h in hooks:
        h.remove()
