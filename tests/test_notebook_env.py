"""``cvaelib.notebook.setup``: SMOKE and full runs keep their checkpoints apart, the SMOKE banner, the judge, the
TinyCLIP."""

from __future__ import annotations

from cvaelib.classifier import get_classifier
from cvaelib.notebook import setup


def test_smoke_and_full_runs_use_different_checkpoints(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CVAELIB_WORK", str(tmp_path))
    monkeypatch.setenv("SMOKE", "1")
    smoke = setup(quiet=True)
    smoke.smoke_banner("samples 98 % class-correct (2-core CPU)")
    assert "SMOKE run" in capsys.readouterr().out
    monkeypatch.setenv("SMOKE", "0")
    full = setup(quiet=True)
    full.smoke_banner("anything")
    assert capsys.readouterr().out == ""
    assert smoke.checkpoint("03_cvae") == tmp_path / "03_cvae_smoke.pt"
    assert full.checkpoint("03_cvae") == tmp_path / "03_cvae.pt"


def test_judge_lookup_without_building_returns_none_for_an_empty_cache(tmp_path, data_root):
    assert get_classifier("digits", data_root, cache_dir=tmp_path, build=False) is None
    built = get_classifier("digits", data_root, cache_dir=tmp_path, epochs=1)
    again = get_classifier("digits", data_root, cache_dir=tmp_path, epochs=1, build=False)
    assert again is not None and again.config == built.config


def test_tiny_clip_in_smoke_mode_loads_the_cached_one_or_trains_a_stand_in(tmp_path, monkeypatch, data_root, capsys):
    """SMOKE with the standard TinyCLIP cached loads it (300 steps); with an empty cache a 30-step stand-in trains on
    the lesson's small subset and says so."""
    from cvaelib.data import load_dataset, subset
    from tiny_models import tiny_clip

    standard = tiny_clip(data_root)  # the tests' shared TinyCLIP: the kit's standard settings, cached
    monkeypatch.setenv("CVAELIB_WORK", str(tmp_path))
    monkeypatch.setenv("SMOKE", "1")
    env = setup(quiet=True)
    small = subset(load_dataset("mnist", data_root, "train"), 512, seed=0)
    assert env.tiny_clip("mnist", small).meta["steps"] == standard.meta["steps"] == 300
    monkeypatch.setenv("CVAELIB_CACHE", str(tmp_path / "empty-cache"))
    stand_in = env.tiny_clip("mnist", small)
    assert stand_in.meta["steps"] == 30 and "30-step one" in capsys.readouterr().out
