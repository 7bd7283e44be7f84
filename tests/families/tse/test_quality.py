"""tse's end-of-run speech metrics: our PESQ/STOI wrappers are the libraries' own figures on known signals,
order degradations the way the field expects, and the final evaluation scores the model beside the mixture."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pesq import pesq
from pystoi import stoi

from mlplatform.families.tse import quality as Q
from mlplatform.families.tse import speech

SR = 16000


@pytest.fixture(scope="module")
def clean():
    """Two seconds of real espeak-ng speech at 16 kHz (PESQ needs speech-like signals)."""
    x = np.concatenate([speech.synthesize(t, speech.Voice("en-us", "m3", 50, 160), SR)
                        for t in ("The golden river carried the basket again.", "A careful doctor opened the window.")])
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(len(x)).astype(np.float32)
    return x + n * np.sqrt(np.mean(x ** 2) / np.mean(n ** 2) / 10 ** (snr_db / 10))


def test_wrappers_give_the_libraries_own_figures(clean):
    deg = _noisy(clean, 5.0)
    assert Q.pesq_score(clean, deg, SR) == pytest.approx(pesq(SR, clean.astype(np.float64), deg.astype(np.float64), "wb"))
    assert Q.pesq_score(clean, deg, 8000) == pytest.approx(pesq(8000, clean.astype(np.float64), deg.astype(np.float64), "nb"))
    assert Q.stoi_score(clean, deg, SR) == pytest.approx(stoi(clean, deg, SR))
    assert Q.stoi_score(clean, deg, SR, extended=True) == pytest.approx(stoi(clean, deg, SR, extended=True))


def test_known_signals_score_as_the_field_expects(clean):
    # identical speech: PESQ-WB's maximum (4.64) and STOI 1; more noise scores monotonically lower
    assert Q.pesq_score(clean, clean, SR) == pytest.approx(4.64, abs=0.01)
    assert Q.stoi_score(clean, clean, SR) == pytest.approx(1.0, abs=1e-6)
    scores = [Q.speech_scores(clean, _noisy(clean, snr), SR) for snr in (20.0, 5.0, -5.0)]
    for k in ("pesq", "stoi", "estoi"):
        assert scores[0][k] > scores[1][k] > scores[2][k], (k, [s[k] for s in scores])
    assert 1.0 <= scores[2]["pesq"] < 2.0 and scores[2]["estoi"] < scores[2]["stoi"]
    # P.862 finds no utterance in silence: NaN, which the means skip, not a crash
    assert np.isnan(Q.pesq_score(clean, np.zeros_like(clean), SR))
    with pytest.raises(ValueError, match="8 or 16 kHz"):
        Q.pesq_score(clean, clean, 22050)


class _Identity(torch.nn.Module):
    """'Extracts' by returning the clean target it was handed: the metrics must then reach their maxima."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.target: torch.Tensor | None = None

    def forward(self, mixture, enroll):
        return self.target * self.w


def test_final_eval_scores_each_held_out_set_beside_the_mixture(clean):
    from types import SimpleNamespace

    n = SR  # 1 s items
    tgt = torch.from_numpy(np.stack([clean[:n], clean[n:2 * n], clean[:n], clean[n:2 * n]]))
    mix = tgt + torch.from_numpy(np.stack([_noisy(clean[:n], 0.0, i) - clean[:n] for i in range(4)]))
    tp = torch.tensor([True, True, True, False])
    batch = {"mixture": mix, "target": tgt * tp[:, None], "tp": tp, "enroll": mix,
             "subset": torch.tensor([1, 1, 2, 2], dtype=torch.int8)}
    model = _Identity()
    model.target = batch["target"]
    cfg = SimpleNamespace(data=SimpleNamespace(sample_rate=SR), loss=SimpleNamespace(eps=1e-8),
                          train=SimpleNamespace(val_batches=1))
    out = Q.final_eval(model, cfg, SimpleNamespace(val_batches=lambda: iter([batch])))
    assert out["items_tp_unseen"] == 2 and out["items_tp_unseen_synth"] == 1  # TP items only
    for s in ("_unseen", "_unseen_synth"):
        assert out[f"pesq{s}"] == pytest.approx(4.64, abs=0.01) and out[f"stoi{s}"] == pytest.approx(1.0, abs=1e-6)
        assert out[f"pesq_mixture{s}"] < 2.5 and out[f"stoi_mixture{s}"] < 0.95
        assert out[f"si_sdri_tp{s}_ci_lo"] <= out[f"si_sdri_tp{s}"] <= out[f"si_sdri_tp{s}_ci_hi"]
        assert out[f"si_sdri_tp{s}"] > 20  # the exact target against a 0 dB mixture
