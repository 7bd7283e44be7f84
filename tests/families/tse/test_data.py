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
          "train.steps_per_epoch": 4, "train.batch_size": 8, "train.val_batches": 2, "data.val_speakers": 0,
          "data.synth_voices": ""}
    ov.update(over)
    return build_config("tse", "debug", ov)


def test_espeak_voices_are_distinct_seeded_tuples():
    vs = speech.voices(300)
    assert len({v.speaker_id for v in vs}) == 300 and len(set(vs)) == 300
    # the first speakers span every installed variant; every field of the tuple varies
    n_var = len(speech.espeak_variants())
    assert n_var >= 18 and len({v.variant for v in vs[:n_var]}) == n_var
    for field in ("lang", "pitch", "rate", "range", "gap", "warp"):
        assert len({getattr(v, field) for v in vs}) > 2, field
    assert speech.voices(300) == vs and speech.voices(300, seed=1) != vs  # seeded


def test_the_warp_moves_the_spectrum_and_keeps_the_signal():
    sr = 16000
    x = np.sin(2 * np.pi * 500 * np.arange(sr) / sr).astype(np.float32)
    y = speech.warp(x, 1.1)
    assert abs(len(y) - sr / 1.1) < 2
    peak = np.argmax(np.abs(np.fft.rfft(y))) * sr / len(y)
    assert abs(peak - 550) < 5  # every frequency x 1.1
    assert speech.warp(x, 1.0) is x


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
    train, vals, meta = D.load_pools(cfg)
    assert meta["train_utts"] + meta["val_utts"] == 15 and meta["speakers"] == 5 and list(vals) == ["seen"]
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
    cfg = cfg_for(small_corpus, **{"data.val_speakers": 2, "train.val_batches": 4, "data.p_ta": 0.3,
                                   "data.synth_voices": "flite:slt,flite:rms", "data.synth_utts_per_speaker": 2})
    train, vals, meta = D.load_pools(cfg)
    val, unseen, synth = vals["seen"], vals["unseen"], vals["unseen_synth"]
    held = set(meta["unseen_speakers"])
    assert len(held) == 2 and set(unseen.speakers) == held and meta["train_speakers"] == 3
    assert set(synth.speakers) == {"flite-slt-w1.00", "flite-rms-w1.00"}
    # the three sets share no speaker tuple and no synthesizer voice, by name and by waveform
    for part in (train.targets, train.enroll, train.interferers, val.targets, val.enroll, val.interferers):
        assert not held & set(part) and not set(synth.speakers) & set(part)
    assert not held & set(synth.speakers)
    assert not _ids(unseen) & _ids(train) and not _ids(synth) & _ids(train) and not _ids(synth) & _ids(unseen)
    assert set(unseen.interferers) == held  # an unseen scene's interferer is another held-out speaker
    assert set(synth.interferers) == set(synth.speakers)
    data = D.build_datasets(cfg, DataContext())
    with isolated_rng(1234):
        batches = list(data.val_batches())
    counts = D.val_split(cfg, list(vals))
    assert counts == {"seen": 4, "unseen": 2, "unseen_synth": 2}
    sizes = [len(v.speakers) for v in (val, unseen, synth)]
    for b in batches:
        assert b["subset"].tolist() == [0] * 4 + [1] * 2 + [2] * 2
        for i, lo in enumerate((0, sizes[0], sizes[0] + sizes[1])):  # speaker indices never overlap
            spk = b["spk"][b["subset"] == i]
            assert ((spk >= lo) & (spk < lo + sizes[i])).all()
    for epoch in (0, 1):  # training batches mix training speakers only (no flag needed)
        for b in data.train_batches(epoch):
            assert "subset" not in b and (b["spk"] < len(train.speakers)).all()
    with isolated_rng(1234):
        again = list(data.val_batches())
    assert all(torch.equal(x["mixture"], y["mixture"]) and torch.equal(x["subset"], y["subset"])
               for x, y in zip(batches, again))


def test_the_corpus_fingerprint_follows_the_speaker_list(tmp_path):
    base = build_config("tse", "debug", {"data.root": str(tmp_path)})
    more = build_config("tse", "debug", {"data.root": str(tmp_path), "data.gen_speakers": 16})
    other = build_config("tse", "debug", {"data.root": str(tmp_path), "data.gen_seed": 1})
    dirs = {D.corpus_dir(c) for c in (base, more, other)}
    assert len(dirs) == 3
    assert D.corpus_dir(base) == D.corpus_dir(build_config("tse", "debug", {"data.root": str(tmp_path)}))
    assert D._gen_key(base)["speakers"] == [v.speaker_id for v in speech.voices(15, 0)]
    warps = build_config("tse", "debug", {"data.root": str(tmp_path), "data.synth_warps": "1.0,1.05"})
    assert D.synth_dir(warps) != D.synth_dir(base)


@pytest.mark.parametrize("over, match", [
    ({"data.synth_voices": "flite:slt,flite:nobody"}, "flite has no voice 'nobody'"),
    ({"data.synth_voices": "flite:slt,festival:nobody_diphone"}, "festival has no voice 'nobody_diphone'"),
    ({"data.synth_voices": "flite:slt,espeak:m3"}, "is not <engine>:<voice>"),
    ({"data.synth_warps": "1.0,fast"}, "data.synth_warps"),
])
def test_bad_synth_voices_are_one_line_errors(small_corpus, over, match):
    with pytest.raises(ConfigError, match=match) as e:
        D.prepare_data(cfg_for(small_corpus, **{"data.synth_voices": "flite:slt,flite:rms", **over}))
    assert "\n" not in str(e.value)


def test_a_missing_synthesizer_binary_says_how_to_install_it(small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no flite, no text2wave
    with pytest.raises(ConfigError, match="flite is not installed: `sudo apt-get install -y flite`") as e:
        D.prepare_data(cfg_for(small_corpus, **{"data.synth_voices": "flite:slt,flite:rms"}))
    assert "\n" not in str(e.value)


def test_too_few_speakers_to_hold_out_is_a_one_line_error(small_corpus):
    with pytest.raises(ConfigError, match="data.val_speakers") as e:
        D.load_pools(cfg_for(small_corpus, **{"data.val_speakers": 4}))
    assert "\n" not in str(e.value)


def test_reverberant_mixtures_keep_the_dry_target(small_corpus):
    """data.reverb: the mixture is reverberant (seeded rooms, cached), the loss's target is the dry source
    (the same crop as in the dry scene: the room is drawn last), direct path aligned."""
    from mlplatform.families.tse import rooms

    dry_cfg = cfg_for(small_corpus)
    wet_cfg = cfg_for(small_corpus, **{"data.reverb": True, "data.reverb_rooms": 2})
    assert not D.load_pools(dry_cfg)[0].rooms
    rirs = D.load_pools(wet_cfg)[0].rooms
    assert len(rirs) == 2 and all(r[0] == 1.0 and np.abs(r).max() == 1.0 and len(r) > 100 for pair in rirs for r in pair)
    again = rooms.load_rooms(wet_cfg, D.data_root(wet_cfg))  # cached and seeded
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(rirs, again))
    dry, wet = (next(iter(D.build_datasets(c, DataContext()).train_batches(0))) for c in (dry_cfg, wet_cfg))
    for b in range(len(dry["tp"])):
        t0, t1 = dry["target"][b], wet["target"][b]
        cos = float((t0 @ t1) / (t0.norm() * t1.norm() + 1e-12))
        assert cos == pytest.approx(1.0, abs=1e-5)  # the same dry source, only the level differs
    assert not torch.allclose(dry["mixture"] / dry["mixture"].norm(dim=-1, keepdim=True),
                              wet["mixture"] / wet["mixture"].norm(dim=-1, keepdim=True), atol=1e-3)
