"""Data: fluidsynth corpus, user pairs by path through Ray Data, bad files reported and skipped, cache reuse."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from mlplatform.data import cache
from mlplatform.families.creative import music


def test_generated_corpus_is_rendered_by_fluidsynth_with_varied_songs(creative_cfg, creative_data):
    from mlplatform.families.creative.data import make_corpus

    folder = make_corpus(creative_cfg)  # already built by the fixture: read back, not rebuilt
    man = cache.read_manifest(folder)
    assert len(man["pairs"]) == creative_cfg.data.n_pairs and man["soundfont"].endswith(".sf2")
    songs = [p[s] for p in man["pairs"] for s in ("input", "target")]
    assert all(70 <= s["bpm"] <= 150 for s in songs)
    assert len({s["melody_program"] for s in songs}) > 2 and len({s["drums"] for s in songs}) > 1
    assert len({(s["tonic"], s["minor"]) for s in songs}) > 2
    audio, sr = sf.read(folder / "input" / "pair_00000.wav")
    assert sr == 24000 and len(audio) == int(creative_cfg.data.clip_s * sr) and np.abs(audio).max() > 0.1
    assert creative_data["rows"] == {"train": 6, "val": 2}
    # no checkpoint given: the codec family's debug preset was trained once on this corpus (issue #14)
    assert creative_data["codec_pretrained"] is True and creative_data["codec_source"] == "codec_family"
    assert creative_data["codec_run_id"]
    assert creative_data["frames"] == 150  # 2 s at the codec's 75 frames/s


def test_midi_writer_round_trip_through_fluidsynth(tmp_path):
    import random

    ev = music.song_events(music.random_song(random.Random(0)), 1.0, random.Random(0))
    music.write_midi(tmp_path / "a.mid", ev, 120.0)
    data = (tmp_path / "a.mid").read_bytes()
    assert data[:4] == b"MThd" and b"MTrk" in data and data.endswith(b"\xff\x2f\x00")
    music.render(tmp_path / "a.mid", tmp_path / "a.wav", 24000)
    audio, sr = sf.read(tmp_path / "a.wav")
    assert sr == 24000 and len(audio) > 24000 * 0.9 and np.abs(audio).max() > 0.01


def test_user_pairs_via_ray_data_skip_corrupt_and_too_short_files(tmp_path, ray_session, capsys):
    import prepare_data as job  # jobs/prepare_data.py

    root = tmp_path / "pairs"
    for side in ("input", "target"):
        (root / side).mkdir(parents=True)
    for i in range(6):
        for k, side in enumerate(("input", "target")):
            music.render_clip(root / side / f"song{i}.wav", 2.5, 24000, seed=100 + 2 * i + k)
    (root / "input" / "corrupt.wav").write_bytes(b"RIFF\x00\x00not really a wav at all" * 10)
    music.render_clip(root / "target" / "corrupt.wav", 2.5, 24000, seed=7)
    sf.write(root / "input" / "short.wav", np.random.default_rng(0).normal(0, 0.1, 12000), 24000)  # 0.5 s
    music.render_clip(root / "target" / "short.wav", 2.5, 24000, seed=8)
    sf.write(root / "input" / "orphan.wav", np.zeros(100), 24000)
    out = tmp_path / "data"
    rc = job.main(["--family", "creative", "--out", str(out), "--pairs", str(root), "--preset", "debug",
                   "--set", "data.val_fraction=0.5"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "corrupt.wav: unreadable audio" in text and "short.wav: too short" in text
    assert "orphan.wav: no matching file" in text and "Ray Data" in text
    info = json.loads(text[text.index("{\n"):])
    assert sum(info["rows"].values()) == 6 and len(info["skipped"]) == 3
    # a second call reuses the fingerprinted cache (nothing re-encoded)
    rc = job.main(["--family", "creative", "--out", str(out), "--pairs", str(root), "--preset", "debug",
                   "--set", "data.val_fraction=0.5"])
    assert rc == 0 and "encoding" not in capsys.readouterr().out


def test_load_clip_rejects_silence_and_resamples(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(48000), 24000)
    with pytest.raises(music.BadAudio, match="silent"):
        music.load_clip(tmp_path / "silent.wav", 24000, 24000)
    t = np.arange(44100 * 2) / 44100
    sf.write(tmp_path / "tone44k.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    x = music.load_clip(tmp_path / "tone44k.wav", 24000, 36000)
    assert x.shape == (36000,) and x.dtype == np.float32 and 0.4 < np.abs(x).max() < 0.6
