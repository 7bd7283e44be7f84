"""jobs/infer.py: options A (ensemble), B (best), C (pair:N) decode a wav; bad input exits 2."""
from __future__ import annotations

from pathlib import Path

import soundfile as sf

import infer  # jobs/infer.py


def test_infer_modes_write_decoded_audio(creative_run, creative_cfg, creative_data, tmp_path, capsys):
    res, *_ = creative_run
    ckpt = str(Path(res["work_dir"]) / "best")
    corpus = Path(creative_data["source"]["corpus"])
    from mlplatform.families.creative.data import make_corpus

    folder = make_corpus(creative_cfg)
    a, b = folder / "input" / "pair_00000.wav", folder / "target" / "pair_00001.wav"
    outs = {}
    for mode in ("best", "ensemble", "pair:1"):
        out = tmp_path / f"{mode.replace(':', '_')}.wav"
        assert infer.main(["--family", "creative", "--checkpoint", ckpt, "--input", str(a), "--target", str(b),
                           "--mode", mode, "--out", str(out)]) == 0
        audio, sr = sf.read(out)
        assert sr == 24000 and len(audio) == round(creative_cfg.data.window_s * 75) * 320
        outs[mode] = audio
    assert corpus.name == folder.name
    assert abs(outs["ensemble"] - outs["pair:1"]).max() > 0  # different options, different outputs
    text = capsys.readouterr().out
    assert '"ratio_input"' in text and '"start_input_s"' in text


def test_infer_bad_input_is_one_line_and_exit_2(creative_run, tmp_path, capsys):
    res, *_ = creative_run
    ckpt = str(Path(res["work_dir"]) / "best")
    sf.write(tmp_path / "short.wav", [0.1] * 2400, 24000)
    rc = infer.main(["--checkpoint", ckpt, "--input", str(tmp_path / "short.wav"), "--target",
                     str(tmp_path / "short.wav"), "--out", str(tmp_path / "o.wav")])
    assert rc == 2 and "too short" in capsys.readouterr().err
    rc = infer.main(["--checkpoint", ckpt, "--input", "x", "--target", "y", "--mode", "pair:9",
                     "--out", str(tmp_path / "o.wav")])
    assert rc == 2


def test_infer_all_modes_logs_audio_and_window_plot_to_mlflow(creative_run, creative_cfg, tmp_path, monkeypatch):
    from mlplatform.families.creative.data import make_corpus
    from mlplatform.tracking import mlflow_utils as mu

    res, *_ = creative_run
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    folder = make_corpus(creative_cfg)
    out = tmp_path / "o.wav"
    assert infer.main(["--checkpoint", str(Path(res["work_dir"]) / "best"), "--input", str(folder / "input" / "pair_00000.wav"),
                       "--target", str(folder / "target" / "pair_00001.wav"), "--out", str(out), "--all-modes",
                       "--mlflow"]) == 0
    cl = mu.client(uri)
    (run,) = cl.search_runs([mu.get_or_create_experiment(cl, "creative-infer")])
    names = sorted(Path(a.path).name for a in cl.list_artifacts(run.info.run_id, "inference"))
    assert names == ["o_best.wav", "o_ensemble.wav", "o_pair0.wav", "o_windows.png"]
    assert run.data.tags["codec.pretrained"] == "true" and run.data.tags["codec.source"] == "codec_family"
