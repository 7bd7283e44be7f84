"""The one ``--preset auto`` rule (``mlplatform.cli.resolve_preset``)."""
import pytest

from mlplatform.cli import resolve_preset


@pytest.mark.parametrize("preset", ["debug", "full"])
def test_an_explicit_preset_is_kept(preset, capsys):
    assert resolve_preset(preset) == preset
    assert resolve_preset(preset, {"CPU": 2, "GPU": 1}) == preset
    assert capsys.readouterr().out == ""


def test_auto_before_ray_starts_means_debug(capsys):
    assert resolve_preset("auto") == "debug"
    assert capsys.readouterr().out == ""  # a pre-flight check says nothing


def test_auto_follows_the_clusters_gpus(capsys):
    assert resolve_preset("auto", {"CPU": 16, "GPU": 1}) == "full"
    assert "auto -> full (a GPU is available" in capsys.readouterr().out
    assert resolve_preset("auto", {"CPU": 2}) == "debug"
    assert "auto -> debug (no GPU found" in capsys.readouterr().out
