"""The quickstart pipeline end to end at toy size (the real sizes run in `make quickstart`)."""

import dataclasses
import json
import shutil

import pytest

from spatial_clap_hf.evaluation.report import validate_report
from spatial_clap_hf.quickstart import VARIANTS, QuickstartSettings, run_quickstart
from spatial_clap_hf.spatial.rir_bank import RirBank


def _toy_settings() -> QuickstartSettings:
    steps = {"batch.n_single": 4, "batch.n_mix2": 2, "optim.max_steps": 2, "optim.warmup_steps": 1}
    return QuickstartSettings(
        n_train=34, n_validation=17, n_test=34, azimuth_step_deg=30, rir_workers=1,
        rooms_per_split={"train": 2, "validation": 1, "test": 1},
        n_doa=10, n_doa_val=10, n_assignment2=6, n_assignment3=6, n_retrieval=10,
        spatial={"seld": {**steps, "seld_frame_activity_db": -30.0}, "doa": dict(steps)}, contrastive=dict(steps),
        spatial_variant={"optim.max_steps": 2, "batch.direction_twins": 2, "batch.n_mix3": 1, "save_every": 1},
    )


def test_quickstart_writes_report_figure_and_loadable_model_deterministically(tmp_path, capsys):
    from transformers import AutoModel, AutoProcessor

    report = run_quickstart(tmp_path, _toy_settings())
    validate_report(report)
    assert [r["model"] for r in report["rows"]] == list(VARIANTS)
    assert [(r["spatial_encoder"], r["scl"]) for r in report["rows"]] == list(VARIANTS.values())
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert "| chance" in (tmp_path / "report.md").read_text().lower()
    assert (tmp_path / "embeddings_pca.png").stat().st_size > 10_000
    assert {p.name for p in (tmp_path / "eval").iterdir()} >= {"doa", "doa_val", "assignment2", "assignment3", "retrieval"}

    model = AutoModel.from_pretrained(tmp_path / "model")
    AutoProcessor.from_pretrained(tmp_path / "model")
    assert (model.config.spatial_encoder, model.config.scl) == ("seld", True)
    _assert_frozen_towers_kept(tmp_path)
    assert [len(RirBank.load(tmp_path / "rirs").rooms(s)) for s in ("train", "val", "test")] == [2, 1, 1]
    scl_config = json.loads((tmp_path / "variants" / "seld_scl" / "model" / "training_config.json").read_text())
    assert (scl_config["batch"]["n_mix3"], scl_config["batch"]["direction_twins"]) == (1, 2)
    stages = json.loads((tmp_path / "quickstart.json").read_text())["stages"]
    assert len(stages) == 10  # corpus, RIRs, eval sets, 2 pretrainings, 4 variants, evaluation

    # A second run reuses every finished piece and gives the same report.
    capsys.readouterr()
    again = run_quickstart(tmp_path, _toy_settings())
    assert again == report
    assert capsys.readouterr().out.count("reusing") == 6

    # A run whose last model is missing resumes that training from its last checkpoint.
    shutil.rmtree(tmp_path / "variants" / "seld_scl" / "model")
    assert run_quickstart(tmp_path, _toy_settings()) == report
    out = capsys.readouterr().out
    assert "resuming from" in out and str(tmp_path / "variants" / "seld_scl" / "checkpoints") in out

    # A run from nothing with the same seed gives the same report, and has nothing to resume.
    assert run_quickstart(tmp_path / "fresh", _toy_settings()) == report
    assert "resuming" not in capsys.readouterr().out

    # The trainings one after the other in this process compute the same as side by side.
    sequential = dataclasses.replace(_toy_settings(), parallel_trainings=1)
    assert run_quickstart(tmp_path / "sequential", sequential) == report


def test_trainings_are_listed_after_the_ones_they_start_from(tmp_path):
    from spatial_clap_hf.quickstart import _trainings

    trainings = _trainings(QuickstartSettings(), tmp_path, {})
    keys = [t.key for t in trainings]
    assert len(set(keys)) == len(keys) == 6
    assert set(keys) >= set(VARIANTS)
    for index, training in enumerate(trainings):
        assert set(training.after) <= set(keys[:index]), training.key
    # the critical path first: SELD pretraining, then SELD+SCL ahead of the other variants
    assert keys[0] == "pretrain_seld" and keys.index("seld_scl") < keys.index("seld")


@pytest.mark.parametrize("parallel_trainings", [1, 2])
def test_a_training_waiting_for_an_unlisted_one_is_an_error(tmp_path, parallel_trainings):
    from spatial_clap_hf.quickstart import _run_trainings, _Training

    orphan = _Training("seld_scl", "SELD+SCL", tmp_path / "seld_scl", {}, after=("pretrain_seld",))
    settings = dataclasses.replace(QuickstartSettings(), parallel_trainings=parallel_trainings)
    with pytest.raises(ValueError, match=r"'seld_scl' waits for \['pretrain_seld'\], which are not listed before it"):
        _run_trainings(settings, [orphan], [])
    assert not (tmp_path / "seld_scl").exists()  # nothing started


def _assert_frozen_towers_kept(out):
    """The spatial variants keep the pretrained spatial encoder (and the heads its readout reads) and the
    mono model's source tower."""
    import torch

    from spatial_clap_hf import SeldNetForSoundEventLocalization, SpatialClapModel

    none = SpatialClapModel.from_pretrained(out / "variants" / "none" / "model")
    for name, (encoder, _) in VARIANTS.items():
        if name == "none":
            continue
        variant = SpatialClapModel.from_pretrained(out / "variants" / name / "model")
        stage1 = SeldNetForSoundEventLocalization.from_pretrained(out / "pretrain" / encoder / "model")
        assert variant.spatial_readout is not None, name
        kept = ((variant.spatial_model, stage1.seldnet), (variant.spatial_readout.doa_head, stage1.doa_head),
                (variant.source_model, none.source_model))
        for tower, reference in kept:
            expected = reference.state_dict()
            for key, value in tower.state_dict().items():
                assert torch.equal(value, expected[key]), (name, key)
        text, text_none = variant.text_model.state_dict(), none.text_model.state_dict()
        assert any(not torch.equal(v, text_none[k]) for k, v in text.items()), f"{name}: the text tower did not train"
