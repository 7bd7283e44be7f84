"""tse data: espeak-ng speakers, Ray indexing with bad files reported and skipped, dynamic mixing."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

from mlplatform.config import ConfigError
from mlplatform.families.tse import speech
from mlplatform.families.tse import data as D
from mlplatform.protocol import DataContext
from mlplatform.registry import build_config
from mlplatform.rng import isolated_rng


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """5 espeak-ng speakers x 3 utterances, 2 noise files, and four bad files."""
    root = tmp_path_factory.mktemp("tse-corpus")
    corpus, noise = root / "corpus", root / "noise"
    for i, v in enumerate(speech.voices(5)):
        speech.make_speaker(v, 3, str(corpus), seed=i, sample_rate=16000, min_s=1.0, max_s=2.0)
    speech.make_noise(str(noise), 2, 3.0, 16000, seed=0)
    bad = corpus / speech.voices(1)[0].speaker_id
    (bad / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(200)))
    sf.write(bad / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(bad / "short.wav", 0.3 * np.sin(np.arange(1600) / 5.0).astype(np.float32), 16000)
    sf.write(bad / "stereo.wav", 0.1 * np.random.default_rng(0).standard_normal((16000, 2)).astype(np.float32), 16000)
    return root


def cfg_for(root, **over):
    ov = {"data.root": str(root / "cache"), "data.corpus": str(root / "corpus"), "data.noise": str(root / "noise"),
          "train.steps_per_epoch": 4, "train.batch_size": 8, "train.val_batches": 2, "data.val_speakers": 0}
    ov.update(over)
    return build_config("tse", "debug", ov)


def test_espeak_voices_are_distinct_speakers():
    vs = speech.voices(12)
    assert len({v.speaker_id for v in vs}) == 12
    assert len({(v.variant, v.pitch, v.rate) for v in vs}) == 12


def test_bad_files_are_reported_and_skipped(small_corpus, ray_session):
    cfg = cfg_for(small_corpus)
    info = D.prepare_data(cfg)
    rows = pq.read_table(info["manifest"]).to_pylist()
    assert {"path", "speaker", "duration", "sample_rate", "rms", "status", "reason"} <= set(rows[0])
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    expect = {"corrupt.wav": "unreadable", "silent.wav": "silent", "short.wav": "too short",
              "stereo.wav": "wrong channel count"}
    for name, why in expect.items():
        assert by_name[name]["status"] == "skipped"
        assert by_name[name]["reason"].startswith(why), by_name[name]["reason"]
    assert info["skipped"] == 4 and info["ok"] == 15 + 2 and info["speakers"] == 5
    assert {s["path"].rsplit("/", 1)[-1] for s in info["skipped_files"]} == set(expect)
    ok = [r for r in rows if r["status"] == "ok" and r["kind"] == "speech"]
    assert all(r["sample_rate"] == 16000 and 1.0 <= r["duration"] <= 2.0 for r in ok)
    # the skipped files never reach training: the pools hold exactly the 15 good utterances
    train, val, unseen, meta = D.load_pools(cfg)
    assert meta["train_utts"] + meta["val_utts"] == 15 and meta["speakers"] == 5 and unseen is None
    # a second call reuses the fingerprinted index
    assert D.prepare_data(cfg)["path"] == info["path"]


def test_unusable_corpora_give_one_line_errors(small_corpus, tmp_path):
    with pytest.raises(ConfigError, match="data.corpus"):
        D.prepare_data(cfg_for(small_corpus, **{"data.corpus": str(tmp_path / "missing")}))
    one = tmp_path / "one"
    speech.make_speaker(speech.voices(1)[0], 3, str(one), seed=0, sample_rate=16000)
    cfg = cfg_for(small_corpus, **{"data.corpus": str(one), "data.root": str(tmp_path / "c")})
    with pytest.raises(ConfigError, match="usable speaker") as e:
        D.load_pools(cfg)
    assert "\n" not in str(e.value)


def test_mixing_scenes_levels_and_phases(small_corpus):
    cfg = cfg_for(small_corpus, **{"train.phase2_step": 4, "data.p_ta": 0.5})
    data = D.build_datasets(cfg, DataContext())
    e0 = list(data.train_batches(0))  # steps 0..3: phase 1
    e1 = list(data.train_batches(1))  # steps 4..7: phase 2
    assert all(b["tp"].all() for b in e0)
    tp = torch.cat([b["tp"] for b in e1])
    assert 0 < int((~tp).sum()) < len(tp)
    seg, seg_e = int(cfg.data.segment_s * 8000), int(cfg.data.enroll_s * 8000)
    for b in e0 + e1:
        assert b["mixture"].shape == b["target"].shape == (8, seg) and b["enroll"].shape == (8, seg_e)
        assert (b["target"][~b["tp"]] == 0).all()  # TA: the reference is silence
        assert (b["target"][b["tp"]].abs().amax(-1) > 0).all()
        assert b["mixture"].abs().max() < 1.0
        lvl = 10 * torch.log10(b["mixture"].pow(2).mean(-1))
        assert ((lvl > -31) & (lvl < -19)).all()  # mix_level_db -25 ± 5 (or lower to avoid clipping)
    # the same epoch mixes the same batches (exact resume); another epoch differs
    again = list(data.train_batches(1))
    assert all(torch.equal(a["mixture"], b["mixture"]) for a, b in zip(e1, again))
    assert not torch.equal(e0[0]["mixture"], e1[0]["mixture"])


def test_validation_mixtures_are_fixed_by_the_loops_seed(small_corpus):
    cfg = cfg_for(small_corpus)
    data = D.build_datasets(cfg, DataContext())

    def val(seed):
        with isolated_rng(seed):
            return list(data.val_batches())

    a, b, c = val(1234), val(1234), val(99)
    assert len(a) == cfg.train.val_batches
    assert all(torch.equal(x["mixture"], y["mixture"]) and torch.equal(x["tp"], y["tp"]) for x, y in zip(a, b))
    assert not torch.equal(a[0]["mixture"], c[0]["mixture"])


def test_validation_has_target_absent_scenes_while_training_is_still_in_phase_1(small_corpus):
    # phase 2 (TA scenes in training) starts after the whole run: training must be TP only, yet validation
    # scores phase-2 scenes (TP and TA, with probability data.p_ta) from the first epoch on
    cfg = cfg_for(small_corpus, **{"train.phase2_step": 1000, "train.val_batches": 8, "data.p_ta": 0.5})
    data = D.build_datasets(cfg, DataContext())
    train_tp = torch.cat([b["tp"] for epoch in (0, 1) for b in data.train_batches(epoch)])
    assert train_tp.all(), "a TA scene was mixed into training before train.phase2_step"
    with isolated_rng(5):
        val_tp = torch.cat([x["tp"] for x in data.val_batches()])
    n_ta = int((~val_tp).sum())
    assert len(val_tp) == 8 * cfg.train.batch_size and 0.25 * len(val_tp) < n_ta < 0.75 * len(val_tp), n_ta
    # and once training reaches phase 2 it mixes TA scenes too
    late = D.build_datasets(cfg_for(small_corpus, **{"train.phase2_step": 4, "data.p_ta": 0.5}), DataContext())
    assert torch.cat([b["tp"] for b in late.train_batches(0)]).all()  # steps 0-3
    assert not torch.cat([b["tp"] for b in late.train_batches(1)]).all()


def _ids(pool) -> set[bytes]:
    """Every waveform a pool can draw (read from the cache: the pools hold row numbers)."""
    return {pool.utterance(r).tobytes() for part in (pool.targets, pool.enroll, pool.interferers)
            for rows in part.values() for r in rows}


def test_held_out_speakers_depend_only_on_the_names():
    names = [f"spk{i:03d}" for i in range(30)]
    a = D.held_out_speakers(names, 4)
    assert len(a) == 4 and a == D.held_out_speakers(list(reversed(names)), 4)
    # a new speaker can displace at most one held-out speaker; nobody else crosses the split
    b = D.held_out_speakers(names + ["new"], 4)
    assert len(set(a) - set(b)) <= 1 and set(b) - set(a) <= {"new"}
    assert D.held_out_speakers(names, 0) == []


def test_no_validation_speaker_is_heard_in_training(small_corpus):
    cfg = cfg_for(small_corpus, **{"data.val_speakers": 2, "train.val_batches": 4, "data.p_ta": 0.3})
    train, val, unseen, meta = D.load_pools(cfg)
    held = set(meta["unseen_speakers"])
    assert len(held) == 2 and set(unseen.speakers) == held and meta["train_speakers"] == 3
    for part in (train.targets, train.enroll, train.interferers, val.targets, val.enroll, val.interferers):
        assert not held & set(part)
    # not by name only: no held-out waveform is anywhere in the training pool
    assert not _ids(unseen) & _ids(train)
    assert set(unseen.interferers) == held  # an unseen scene's interferer is another held-out speaker
    data = D.build_datasets(cfg, DataContext())
    with isolated_rng(1234):
        batches = list(data.val_batches())
    n_seen, n_unseen = D.val_split(cfg, True)
    assert (n_seen, n_unseen) == (6, 2)
    for b in batches:
        assert b["unseen"].tolist() == [False] * 6 + [True] * 2
        assert (b["spk"][b["unseen"]] >= len(val.speakers)).all() and (b["spk"][~b["unseen"]] < len(val.speakers)).all()
    for epoch in (0, 1):  # training batches mix training speakers only (no flag needed)
        for b in data.train_batches(epoch):
            assert "unseen" not in b and (b["spk"] < len(train.speakers)).all()
    with isolated_rng(1234):
        again = list(data.val_batches())
    assert all(torch.equal(x["mixture"], y["mixture"]) and torch.equal(x["unseen"], y["unseen"])
               for x, y in zip(batches, again))


def test_too_few_speakers_to_hold_out_is_a_one_line_error(small_corpus):
    with pytest.raises(ConfigError, match="data.val_speakers") as e:
        D.load_pools(cfg_for(small_corpus, **{"data.val_speakers": 4}))
    assert "\n" not in str(e.value)
