"""The quickstart pipeline end to end at toy size (the real sizes run in `make quickstart`)."""

import dataclasses
import json
import shutil

from importlib import resources

import pytest
import yaml

from conftest import run_remote_check
from spatial_clap_hf.evaluation.report import validate_report
from spatial_clap_hf.quickstart import QuickstartSettings, load_recipe, run_quickstart
from spatial_clap_hf.quickstart.run import _run_trainings, _Training, _trainings
from spatial_clap_hf.spatial.rir_bank import RirBank
from spatial_clap_hf.training import TrainConfig

#: The Table-1 rows of the packaged recipe: name → (spatial encoder, SCL).
VARIANTS = {"none": ("none", False), "doa": ("doa", False), "seld": ("seld", False), "seld_scl": ("seld", True)}


def _packaged_recipe() -> dict:
    return yaml.safe_load(resources.files("spatial_clap_hf.recipes").joinpath("quickstart.yaml").read_text())


def _toy_recipe(directory) -> str:
    """The packaged recipe with toy batches and two steps per training."""
    recipe = _packaged_recipe()
    for stage in recipe["stages"].values():
        config = stage["config"]
        config["batch"] = {**config.get("batch", {}), "n_single": 4, "n_mix2": 2}
        config["optim"] = {**config.get("optim", {}), "max_steps": 2, "warmup_steps": 1}
        if config.get("batch", {}).get("direction_twins"):
            config["batch"].update(direction_twins=2, n_mix3=1)
            config["save_every"] = 1
    path = directory / "toy_recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return str(path)


def _toy_settings(directory) -> QuickstartSettings:
    return QuickstartSettings(
        n_train=34, n_validation=17, n_test=34, azimuth_step_deg=30, rir_workers=1,
        rooms_per_split={"train": 2, "validation": 1, "test": 1},
        n_doa=10, n_doa_val=10, n_assignment2=6, n_assignment3=6, n_retrieval=10,
        recipe=_toy_recipe(directory),
    )


@pytest.mark.slow
def test_quickstart_writes_report_figure_and_loadable_model_deterministically(tmp_path_factory, capsys):
    from transformers import AutoModel, AutoProcessor

    settings = _toy_settings(tmp_path_factory.mktemp("recipe"))
    tmp_path = tmp_path_factory.mktemp("run")
    report = run_quickstart(tmp_path, settings)
    validate_report(report)
    assert [r["model"] for r in report["rows"]] == list(VARIANTS)
    assert [(r["spatial_encoder"], r["scl"]) for r in report["rows"]] == list(VARIANTS.values())
    # a fair baseline: every row continues the same mono start for as many steps (2 + 2 in the toy recipe)
    assert {(r["contrastive_steps"], r["started_from"]) for r in report["rows"]} == {(4, "start/mono/model")}
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert "| chance" in (tmp_path / "report.md").read_text().lower()
    assert (tmp_path / "embeddings_pca.png").stat().st_size > 10_000
    assert {p.name for p in (tmp_path / "eval").iterdir()} >= {"doa", "doa_val", "assignment2", "assignment3", "retrieval"}

    model = AutoModel.from_pretrained(tmp_path / "model")
    AutoProcessor.from_pretrained(tmp_path / "model")
    assert (model.config.spatial_encoder, model.config.scl) == ("seld", True)
    _assert_frozen_towers_kept(tmp_path)
    # The final model's card carries its report.json row as model-index, and its own code runs without the package.
    from huggingface_hub import ModelCard

    card = ModelCard.load(tmp_path / "model" / "README.md")
    row = next(r for r in report["rows"] if r["model"] == "seld_scl")
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert "doa_accuracy" in results and results == pytest.approx({key: row[key] for key in results})
    assert card.data.pipeline_tag == "zero-shot-spatial-audio-classification"
    run_remote_check(tmp_path / "model", tmp_path_factory.mktemp("remote_check"))
    assert [len(RirBank.load(tmp_path / "rirs").rooms(s)) for s in ("train", "validation", "test")] == [2, 1, 1]
    scl_config = json.loads((tmp_path / "variants" / "seld_scl" / "model" / "training_config.json").read_text())
    assert (scl_config["batch"]["n_mix3"], scl_config["batch"]["direction_twins"]) == (1, 2)
    stages = json.loads((tmp_path / "quickstart.json").read_text())["stages"]
    assert len(stages) == 11  # corpus, RIRs, eval sets, 2 pretrainings, the mono start, 4 variants, evaluation

    # A second run reuses every finished piece and gives the same report.
    capsys.readouterr()
    again = run_quickstart(tmp_path, settings)
    assert again == report
    assert capsys.readouterr().out.count("reusing") == 7

    # A run whose last model is missing resumes that training from its last checkpoint.
    shutil.rmtree(tmp_path / "variants" / "seld_scl" / "model")
    assert run_quickstart(tmp_path, settings) == report
    out = capsys.readouterr().out
    assert "resuming from" in out and str(tmp_path / "variants" / "seld_scl" / "checkpoints") in out

    # A run from nothing with the same seed gives the same report, and has nothing to resume.
    assert run_quickstart(tmp_path / "fresh", settings) == report
    assert "resuming" not in capsys.readouterr().out

    # The trainings one after the other in this process compute the same as side by side.
    sequential = dataclasses.replace(settings, parallel_trainings=1)
    assert run_quickstart(tmp_path / "sequential", sequential) == report


def test_trainings_are_listed_after_the_ones_they_start_from(tmp_path):
    trainings = _trainings(QuickstartSettings(), load_recipe(), tmp_path)
    keys = [t.key for t in trainings]
    assert len(set(keys)) == len(keys) == 7
    assert set(keys) >= set(VARIANTS)
    for index, training in enumerate(trainings):
        assert set(training.after) <= set(keys[:index]), training.key
    # the longest chain, SELD pretraining then SELD+SCL, claims a worker as soon as its inputs are done
    rows = [keys.index(name) for name in VARIANTS if name != "seld_scl"]
    assert keys.index("pretrain_seld") < keys.index("seld_scl") < min(rows)


def test_the_packaged_recipe_gives_each_variant_its_encoder_and_the_models_it_starts_from(tmp_path):
    trainings = {t.key: t for t in _trainings(QuickstartSettings(seed=3, clip_seconds=2.0), load_recipe(), tmp_path)}
    for name, (encoder, scl) in VARIANTS.items():
        config = trainings[name].config
        assert (config.stage, config.model.spatial_encoder, config.batch.scl) == ("contrastive", encoder, scl)
        # the run's own values reach every stage
        assert (config.seed, config.data.clip_seconds, config.model.overrides["max_length_s"]) == (3, 2.0, 2.0)
        assert config.data.corpus == str(tmp_path / "corpus") and config.output_dir == str(tmp_path / "variants" / name)
    scl = trainings["seld_scl"].config
    assert scl.model.spatial_model == str(tmp_path / "pretrain" / "seld" / "model")
    assert set(trainings["seld_scl"].after) == {"pretrain_seld", "mono_start"}
    assert trainings["pretrain_seld"].config.stage == "spatial" and trainings["pretrain_seld"].after == ()
    # A fair baseline: every row, mono included, continues the mono start with the same batches and
    # steps, its source tower frozen.
    start = str(tmp_path / "start" / "mono" / "model")
    for name in VARIANTS:
        config = trainings[name].config
        assert (config.model.init_from, config.model.freeze_source) == (start, True), name
        assert (config.optim, config.batch.direction_twins, config.batch.n_mix3) == (
            scl.optim, scl.batch.direction_twins, scl.batch.n_mix3), name
        assert config.optim.epochs is None and config.optim.max_steps


def _write_recipe(tmp_path, recipe: dict) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return str(path)


def test_a_recipe_with_an_unknown_key_or_an_unknown_report_stage_is_refused(tmp_path):
    recipe = _packaged_recipe()
    with pytest.raises(ValueError, match=r"unknown keys \['stagse'\]"):
        load_recipe(_write_recipe(tmp_path, {**recipe, "stagse": {}}))
    with pytest.raises(ValueError, match=r"name stages \['seld_sc'\]"):
        load_recipe(_write_recipe(tmp_path, {**recipe, "final_model": "seld_sc"}))
    bad_stage = {**recipe, "stages": {**recipe["stages"], "none": {**recipe["stages"]["none"], "outptu": "x"}}}
    with pytest.raises(ValueError, match=r"stage 'none': unknown keys \['outptu'\]"):
        load_recipe(_write_recipe(tmp_path, bad_stage))
    # a typo inside a stage's training config is caught by the training config loader, before any work
    typo = dict(recipe["stages"]["none"], config={"optim": {"max_step": 3}})
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['max_step'\] in stage 'none'.optim"):
        run_quickstart(tmp_path / "run", dataclasses.replace(
            QuickstartSettings(), recipe=_write_recipe(tmp_path, {**recipe, "stages": {**recipe["stages"], "none": typo}})))
    assert not (tmp_path / "run").exists()


def test_a_stage_that_reads_a_later_stage_is_refused_before_any_work(tmp_path):
    recipe = _packaged_recipe()
    stages = dict(recipe["stages"])
    reordered = {"seld_scl": stages.pop("seld_scl"), **stages}
    path = _write_recipe(tmp_path, {**recipe, "stages": reordered})
    with pytest.raises(ValueError, match=r"'seld_scl' waits for \['mono_start', 'pretrain_seld'\], which are not listed"):
        run_quickstart(tmp_path / "run", dataclasses.replace(QuickstartSettings(), recipe=path))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("parallel_trainings", [1, 2])
def test_a_training_waiting_for_an_unlisted_one_is_an_error(tmp_path, parallel_trainings):
    orphan = _Training("seld_scl", "SELD+SCL", tmp_path / "seld_scl", TrainConfig(), after=("pretrain_seld",))
    settings = dataclasses.replace(QuickstartSettings(), parallel_trainings=parallel_trainings)
    with pytest.raises(ValueError, match=r"'seld_scl' waits for \['pretrain_seld'\], which are not listed before it"):
        _run_trainings(settings, [orphan], [])
    assert not (tmp_path / "seld_scl").exists()  # nothing started


def _assert_frozen_towers_kept(out):
    """Every row keeps the mono start's source tower; the spatial variants also keep the pretrained
    spatial encoder (and the heads its readout reads); the mono row continues the start's fusion."""
    import torch

    from spatial_clap_hf import SeldNetForSoundEventLocalization, SpatialClapModel

    start = SpatialClapModel.from_pretrained(out / "start" / "mono" / "model")
    for name, (encoder, _) in VARIANTS.items():
        variant = SpatialClapModel.from_pretrained(out / "variants" / name / "model")
        text, text_start = variant.text_model.state_dict(), start.text_model.state_dict()
        assert any(not torch.equal(v, text_start[k]) for k, v in text.items()), f"{name}: the text tower did not train"
        source = variant.source_model.state_dict()
        assert all(torch.equal(v, source[k]) for k, v in start.source_model.state_dict().items()), name
        if name == "none":  # it continues the start's fusion (tested in tests/training), and trains it
            fusion, fusion_start = variant.fusion.state_dict(), start.fusion.state_dict()
            assert fusion.keys() == fusion_start.keys()
            assert any(not torch.equal(v, fusion_start[k]) for k, v in fusion.items()), "the mono fusion did not train"
            continue
        stage1 = SeldNetForSoundEventLocalization.from_pretrained(out / "pretrain" / encoder / "model")
        assert variant.spatial_readout is not None, name
        kept = ((variant.spatial_model, stage1.seldnet), (variant.spatial_readout.doa_head, stage1.doa_head))
        for tower, reference in kept:
            expected = reference.state_dict()
            for key, value in tower.state_dict().items():
                assert torch.equal(value, expected[key]), (name, key)


def test_evaluation_sets_of_other_settings_are_rebuilt_and_equal_ones_reused(tmp_path, caplog):
    from spatial_clap_hf.data import make_synthetic_corpus
    from spatial_clap_hf.data.eval_sets import build_eval_sets
    from spatial_clap_hf.data.spatialized import DEFAULT_BIT_DEPTH, read_manifest
    from spatial_clap_hf.quickstart.run import _evaluation_sets
    from spatial_clap_hf.spatial.rir_bank import RirBankConfig

    settings = _toy_settings(tmp_path)
    corpus = make_synthetic_corpus(n_train=0, n_validation=17, n_test=34, clip_seconds=1.0, output_dir=tmp_path / "corpus")
    config = RirBankConfig(max_rooms_per_split={"validation": 1, "test": 1}, azimuth_step_deg=30)
    bank = RirBank.build(tmp_path / "rirs", config, splits=["validation", "test"], show_progress=False)
    sizes = dict(n_doa=10, n_doa_val=10, n_assignment2=6, n_assignment3=6, n_retrieval=10, clip_seconds=1.0)
    build_eval_sets(corpus, bank, tmp_path / "eval", bit_depth=16, **sizes)  # an earlier run's 16-bit sets
    assert read_manifest(tmp_path / "eval")["settings"]["bit_depth"] == 16

    _evaluation_sets(settings, corpus, bank, tmp_path)
    assert read_manifest(tmp_path / "eval")["settings"]["bit_depth"] == DEFAULT_BIT_DEPTH == 24
    assert "Replacing the evaluation sets" in caplog.text
    stamp = (tmp_path / "eval" / "spatialized.json").stat().st_mtime_ns
    caplog.clear()
    _evaluation_sets(settings, corpus, bank, tmp_path)  # the same settings: reused
    assert "Replacing" not in caplog.text and (tmp_path / "eval" / "spatialized.json").stat().st_mtime_ns == stamp
    # A run folder moved elsewhere names its corpus by another path: its parts are rebuilt, not refused.
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "eval", moved / "eval")
    caplog.clear()
    _evaluation_sets(settings, corpus, bank, moved)
    assert "Replacing the evaluation sets" in caplog.text and "other parameters" in caplog.text
