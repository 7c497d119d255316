"""Both training stages end to end on the tiny preset (CPU, seconds), resume, export."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from spatial_clap_hf import SpatialClapModel
from spatial_clap_hf.data import make_synthetic_corpus
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig
from spatial_clap_hf.training import latest_checkpoint, load_config, train

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    """A small synthetic corpus and a one-room train bank on a 30° grid, shared by the tests."""
    root = tmp_path_factory.mktemp("train-resources")
    make_synthetic_corpus(n_train=48, n_validation=8, n_test=8, clip_seconds=1.0, seed=0, output_dir=root / "corpus")
    RirBank.build(root / "rirs", RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=30), splits=["train"], num_workers=1)
    return root


def _config(resources: Path, output_dir: Path, **overrides):
    values = {
        "output_dir": str(output_dir),
        "data.corpus": str(resources / "corpus"),
        "data.rirs": str(resources / "rirs"),
        "data.clip_seconds": 1.0,
        "batch.n_single": 4,
        "batch.n_mix2": 2,
        "optim.warmup_steps": 2,
        "optim.lr": 3e-3,
        "log_with": [],
        "save_every": 0,
    }
    values.update(overrides)
    return load_config(RECIPES / "tiny.yaml", values)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


@pytest.mark.parametrize("objective", ["seld", "doa"])
def test_spatial_pretraining_writes_a_loadable_seldnet(resources, tmp_path, objective):
    from transformers import AutoModelForAudioFrameClassification

    result = train(_config(resources, tmp_path, stage="spatial", objective=objective, **{"optim.max_steps": 4}),
                   show_progress=False)
    assert result.steps == 4 and not result.interrupted and result.last_loss is not None
    model = AutoModelForAudioFrameClassification.from_pretrained(result.model_dir)
    assert model.config.doa_mode == ("per_class" if objective == "seld" else "single")
    assert model.config.num_classes == 17  # the synthetic corpus classes


def test_contrastive_training_with_scl_exports_model_processor_and_card(resources, tmp_path):
    from transformers import AutoModel, AutoProcessor

    seld = train(_config(resources, tmp_path / "seld", stage="spatial", **{"optim.max_steps": 2}), show_progress=False)
    config = _config(
        resources,
        tmp_path / "clap",
        **{"model.spatial_model": str(seld.model_dir), "model.freeze_spatial": True, "batch.scl": True,
           "batch.n_mix3": 1, "optim.max_steps": 4, "log_with": ["tensorboard"], "log_every": 1},
    )
    result = train(config, show_progress=False)
    assert list((tmp_path / "clap").rglob("events.out.tfevents*")), "no TensorBoard event file"
    model = AutoModel.from_pretrained(result.model_dir)
    processor = AutoProcessor.from_pretrained(result.model_dir)
    assert model.config.spatial_encoder == "seld" and model.config.scl is True

    # The frozen spatial tower is exactly the stage-1 encoder; the other towers moved.
    stage1 = {k.split(".", 1)[1]: v for k, v in _weights(seld.model_dir).items() if k.startswith("seldnet.")}
    trained = _weights(result.model_dir)
    spatial = {k.split(".", 1)[1]: v for k, v in trained.items() if k.startswith("spatial_model.")}
    assert spatial.keys() == stage1.keys() and len(spatial) > 5
    for key in stage1:
        torch.testing.assert_close(spatial[key], stage1[key], rtol=0, atol=0, msg=key)
    initial = SpatialClapModel(model.config).state_dict()
    fusion = [k for k in trained if k.startswith("fusion.") and k.endswith("weight")]
    assert fusion and all(not torch.equal(trained[k], initial[k]) for k in fusion)

    card = (result.model_dir / "README.md").read_text()
    assert "Spatial contrastive learning (swapped-direction hard negatives): **yes**" in card
    assert "4 single-source, 2 two-source and 1 three-source scenes" in card
    inputs = processor(text=["A bell rings on the left side."], audio=[np.full((2, 16000), 0.01, np.float32)],
                       sampling_rate=16000, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_audio.shape == (1, 1)
    saved = json.loads((result.model_dir / "training_config.json").read_text())
    assert saved["batch"]["scl"] is True


def test_mono_baseline_trains_without_spatial_encoder(resources, tmp_path):
    config = _config(resources, tmp_path, **{"model.spatial_encoder": "none", "optim.max_steps": 2})
    result = train(config, show_progress=False)
    assert not any(k.startswith("spatial_model.") for k in _weights(result.model_dir))


def test_sentence_pooling_and_direction_twins_train_and_reload(resources, tmp_path):
    from transformers import AutoProcessor

    config = _config(
        resources,
        tmp_path,
        **{"model.spatial_encoder": "none", "model.overrides": {"text_pooling": "sentence"},
           "batch.direction_twins": 2, "optim.max_steps": 2},
    )
    result = train(config, show_progress=False)
    model = SpatialClapModel.from_pretrained(result.model_dir)
    tokenizer = AutoProcessor.from_pretrained(result.model_dir).tokenizer
    assert model.config.text_pooling == "sentence"
    assert model.config.text_sentence_separator_id == tokenizer.convert_tokens_to_ids(".")
    assert json.loads((result.model_dir / "training_config.json").read_text())["batch"]["direction_twins"] == 2


def test_frame_level_seld_targets_and_a_readout_of_the_frozen_heads(resources, tmp_path):
    seld = train(
        _config(resources, tmp_path / "seld", stage="spatial", seld_frame_activity_db=-30.0, **{"optim.max_steps": 2}),
        show_progress=False,
    )
    clip_level = train(
        _config(resources, tmp_path / "seld_clip", stage="spatial", **{"optim.max_steps": 2}), show_progress=False
    )
    # Same seed, same batches: only the targets differ, and so does the loss.
    assert np.isfinite(seld.last_loss) and abs(seld.last_loss - clip_level.last_loss) > 1e-4
    config = _config(
        resources,
        tmp_path / "clap",
        **{"model.spatial_model": str(seld.model_dir), "model.freeze_spatial": True,
           "model.overrides": {"spatial_readout_bins": 4}, "optim.max_steps": 2},
    )
    result = train(config, show_progress=False)
    model = SpatialClapModel.from_pretrained(result.model_dir)
    assert model.config.spatial_readout_size == 4 * 17
    stage1, trained = _weights(seld.model_dir), _weights(result.model_dir)
    heads = [k for k in stage1 if k.startswith(("sed_head.", "doa_head."))]
    assert len(heads) == 8
    for key in heads:  # the readout reads the stage-1 heads, kept frozen
        torch.testing.assert_close(trained[f"spatial_readout.{key}"], stage1[key], rtol=0, atol=0, msg=key)


def test_spatial_encoder_without_checkpoint_is_a_clear_error(resources, tmp_path):
    with pytest.raises(ValueError, match="model.spatial_model"):
        train(_config(resources, tmp_path, **{"optim.max_steps": 1}), show_progress=False)


@pytest.mark.parametrize("option", ["batch.n_mix3", "batch.direction_twins"])
def test_stage2_batch_options_are_refused_in_stage1(option):
    with pytest.raises(ValueError, match=f"'{option}': 1.*stage 2 only"):
        load_config(RECIPES / "tiny.yaml", {"stage": "spatial", option: 1})
    assert getattr(load_config(RECIPES / "tiny.yaml", {option: 1}).batch, option.split(".")[1]) == 1


def test_unknown_config_key_is_rejected():
    with pytest.raises(ValueError, match="Unknown key"):
        load_config(RECIPES / "tiny.yaml", {"optim.learning_rate": 1e-3})


@pytest.mark.parametrize("accum_steps", [1, 2])
def test_interrupted_run_resumes_to_identical_weights(resources, tmp_path, accum_steps):
    """SIGTERM mid-run saves state; --resume then ends with the weights of an uninterrupted run
    (also with cached-feature accumulation over two micro-batches)."""
    steps = 12
    common = {"model.spatial_encoder": "none", "optim.max_steps": steps, "optim.epochs": 10, "save_every": 3,
              "optim.accum_steps": accum_steps}
    reference = train(_config(resources, tmp_path / "reference", **common), show_progress=False)

    out = tmp_path / "interrupted"
    args = [
        sys.executable, "-m", "spatial_clap_hf.cli", "train", "--config", str(RECIPES / "tiny.yaml"),
        "--output-dir", str(out), "--no-progress",
    ]
    for key, value in {**common, "data.corpus": str(resources / "corpus"), "data.rirs": str(resources / "rirs"),
                       "data.clip_seconds": 1.0, "batch.n_single": 4, "batch.n_mix2": 2, "optim.warmup_steps": 2,
                       "optim.lr": 3e-3, "log_with": "[]"}.items():
        args += ["--set", f"{key}={value}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while latest_checkpoint(out) is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    log, _ = proc.communicate(timeout=240)
    assert proc.returncode == 130, log[-3000:]
    stopped_at = json.loads((latest_checkpoint(out) / "progress.json").read_text())["step"]
    assert 3 <= stopped_at < steps
    assert not (out / "model").exists()

    resumed = train(_config(resources, out, **common), resume=True, show_progress=False)
    assert resumed.steps == steps and not resumed.interrupted
    assert json.loads((resumed.model_dir / "training_config.json").read_text())["optim"]["accum_steps"] == accum_steps
    expected, got = _weights(reference.model_dir), _weights(resumed.model_dir)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)


def test_checkpoints_rotate_and_a_resumed_run_numbers_on(resources, tmp_path):
    common = {"model.spatial_encoder": "none", "save_every": 1, "keep_checkpoints": 2}
    train(_config(resources, tmp_path, **common, **{"optim.max_steps": 3}), show_progress=False)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint_1", "checkpoint_2"]
    assert latest_checkpoint(tmp_path) == root / "checkpoint_2"
    assert json.loads((root / "checkpoint_2" / "progress.json").read_text()) == {"step": 3}

    resumed = train(_config(resources, tmp_path, **common, **{"optim.max_steps": 5}), resume=True, show_progress=False)
    assert resumed.steps == 5
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint_3", "checkpoint_4"]
    assert json.loads((latest_checkpoint(tmp_path) / "progress.json").read_text()) == {"step": 5}


def test_accumulation_takes_k_micro_batches_per_step(resources, tmp_path):
    """48 clips, 8 per micro-batch: 6 steps per epoch, or 3 with two micro-batches per step."""
    result = train(_config(resources, tmp_path, **{"model.spatial_encoder": "none", "optim.epochs": 1,
                                                   "optim.accum_steps": 2}), show_progress=False)
    assert result.total_steps == 3 and result.steps == 3
    with pytest.raises(ValueError, match="accum_steps must be a whole number >= 1"):
        _config(resources, tmp_path, **{"optim.accum_steps": 0})


PRECISION_RUN = r"""
import json, sys
import torch
from safetensors.torch import load_file
from spatial_clap_hf.training import load_config, train

recipe, resources, out, *overrides = sys.argv[1:]
values = {"data.corpus": f"{resources}/corpus", "data.rirs": f"{resources}/rirs", "data.clip_seconds": 1.0,
          "batch.n_single": 4, "batch.n_mix2": 2, "model.spatial_encoder": "none", "optim.warmup_steps": 1,
          "optim.lr": 3e-3, "log_with": [], "save_every": 0}
values.update(json.loads(overrides[0]) if overrides else {})
losses = []
for steps in (1, 8):
    result = train(load_config(recipe, {**values, "output_dir": f"{out}/{steps}", "optim.max_steps": steps}),
                   show_progress=False)
    losses.append(result.last_loss)
saved = json.loads((result.model_dir / "training_config.json").read_text())["optim"]["mixed_precision"]
dtypes = sorted({str(t.dtype) for t in load_file(str(result.model_dir / "model.safetensors")).values()
                 if t.is_floating_point()})
print(json.dumps({"losses": losses, "mixed_precision": saved, "dtypes": dtypes}))
"""


def _precision_run(resources, tmp_path, env_precision, overrides=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", ACCELERATE_MIXED_PRECISION=env_precision)
    args = [sys.executable, "-c", PRECISION_RUN, str(RECIPES / "tiny.yaml"), str(resources), str(tmp_path)]
    proc = subprocess.run(args + ([json.dumps(overrides)] if overrides else []), env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_launch_configs_bf16_trains_with_a_falling_loss_and_saves_float32(resources, tmp_path):
    """``accelerate launch --mixed_precision bf16`` (its environment) decides when the recipe sets none."""
    run = _precision_run(resources, tmp_path, "bf16")
    assert run["mixed_precision"] == "bf16"
    first, last = run["losses"]
    assert np.isfinite(first) and np.isfinite(last) and last < first
    assert run["dtypes"] == ["torch.float32"]


def test_a_precision_set_in_the_recipe_wins_over_the_launch_config(resources, tmp_path):
    run = _precision_run(resources, tmp_path, "bf16", {"optim.mixed_precision": "no"})
    assert run["mixed_precision"] == "no"


def test_init_from_starts_towers_from_a_trained_model(resources, tmp_path):
    """Source and text towers (frozen here) come from the donor; the fusion starts fresh where it fuses
    other features; the model records where it started and the contrastive steps behind it."""
    donor = train(_config(resources, tmp_path / "mono", **{"model.spatial_encoder": "none", "optim.max_steps": 2}),
                  show_progress=False)
    seld = train(_config(resources, tmp_path / "seld", stage="spatial", **{"optim.max_steps": 1}), show_progress=False)
    config = _config(
        resources,
        tmp_path / "spatial",
        **{"model.spatial_model": str(seld.model_dir), "model.init_from": str(donor.model_dir),
           "model.freeze_source": True, "model.freeze_text": True, "optim.max_steps": 2},
    )
    result = train(config, show_progress=False)
    before, after = _weights(donor.model_dir), _weights(result.model_dir)
    towers = [k for k in before if k.startswith(("source_model.", "text_model."))]
    assert len(towers) > 20
    for key in towers:
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0, msg=key)
    assert after["fusion.linear1.weight"].shape != before["fusion.linear1.weight"].shape  # z_src + z_sp now
    donor_config, config_after = (json.loads((d / "config.json").read_text()) for d in (donor.model_dir, result.model_dir))
    assert (donor_config["contrastive_steps"], donor_config["started_from"]) == (2, None)
    assert (config_after["contrastive_steps"], config_after["started_from"]) == (4, str(donor.model_dir))
    # A mono model continuing a mono model continues its fusion too (the same features in).
    mono = _config(resources, tmp_path / "mono2", **{"model.spatial_encoder": "none", "model.init_from": str(donor.model_dir),
                                                     "optim.max_steps": 1})
    from spatial_clap_hf.training.tasks import ContrastiveTask

    task = ContrastiveTask(mono, class_names=["x"], train_captions=["a dog barks."])
    for key, value in task.model.fusion.state_dict().items():
        torch.testing.assert_close(value, before[f"fusion.{key}"], rtol=0, atol=0, msg=key)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(result.model_dir).get_vocab() == AutoTokenizer.from_pretrained(
        donor.model_dir
    ).get_vocab()


def test_train_command_evaluates_into_the_model_card(resources, tmp_path):
    """`spatial-clap train --eval-data` puts the evaluation into the card's model-index."""
    from huggingface_hub import ModelCard

    from spatial_clap_hf.cli import main
    from spatial_clap_hf.data import build_eval_sets, load_corpus

    bank = RirBank.build(tmp_path / "rirs", RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=30), num_workers=1)
    build_eval_sets(load_corpus(resources / "corpus"), bank, tmp_path / "eval", n_doa=5, n_doa_val=5,
                    n_assignment2=4, n_assignment3=4, n_retrieval=6, clip_seconds=1.0)
    args = ["train", "--config", str(RECIPES / "tiny.yaml"), "--output-dir", str(tmp_path / "run"), "--no-progress",
            "--eval-data", str(tmp_path / "eval"), "--max-steps", "1"]
    for key, value in {"data.corpus": resources / "corpus", "data.rirs": tmp_path / "rirs", "data.clip_seconds": 1.0,
                       "batch.n_single": 4, "batch.n_mix2": 2, "model.spatial_encoder": "none",
                       "log_with": "[]"}.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    report = json.loads((tmp_path / "run" / "eval" / "report.json").read_text())
    card = ModelCard.load(tmp_path / "run" / "model" / "README.md")
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results["doa_accuracy"] == pytest.approx(report["rows"][0]["doa_accuracy"])
    assert results["r1_t2a_src"] == pytest.approx(report["rows"][0]["r1_t2a_src"])


def test_preloaded_clips_equal_decoded_on_demand(resources):
    """Preloading is only a cache: every item (clip, caption choice, labels) is the same."""
    from spatial_clap_hf.data import load_corpus
    from spatial_clap_hf.training.clips import ClipDataset, class_names_of

    corpus = load_corpus(resources / "corpus")
    names = class_names_of(resources / "corpus", corpus["train"])
    lazy = ClipDataset(corpus["train"], names, clip_seconds=1.5, sample_rate=16000, seed=3, preload=False)
    cached = ClipDataset(corpus["train"], names, clip_seconds=1.5, sample_rate=16000, seed=3, preload=True)
    for dataset in (lazy, cached):
        dataset.epoch = 2
    for i in (0, 7, 47):
        a, b = lazy[i], cached[i]
        assert a[0] == b[0] == i and a[2:] == b[2:] and a[3] and a[1].shape == (24000,)
        torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)
    # 1.5 s from 1 s clips: repeat-padded, as CLAP pads.
    torch.testing.assert_close(cached[0][1][16000:], cached[0][1][:8000], rtol=0, atol=0)


def test_clips_at_another_rate_go_through_the_model_familys_resampler(resources, caplog):
    """Corpus clips (16 kHz) for an 8 kHz bank are resampled by SincResampler, the feature extractor's
    resampler (no torchaudio), with one logged warning."""
    from spatial_clap_hf.data import decoded_to_array, load_corpus
    from spatial_clap_hf.models.spatial_clap.frontend_spatial_clap import SincResampler
    from spatial_clap_hf.training.clips import ClipDataset, class_names_of

    corpus = load_corpus(resources / "corpus")
    names = class_names_of(resources / "corpus", corpus["train"])
    clips = ClipDataset(corpus["train"], names, clip_seconds=1.0, sample_rate=8000, preload=False)
    with caplog.at_level("WARNING"):
        first, second = clips[0][1], clips[1][1]
    array, rate = decoded_to_array(corpus["train"][0]["audio"])
    assert rate == 16000 and first.shape == second.shape == (8000,)
    expected = SincResampler(16000, 8000)(torch.from_numpy(array).mean(dim=0))[:8000]
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    assert sum("Resampling source clips from 16000 Hz to 8000 Hz" in r.getMessage() for r in caplog.records) == 1


def test_preloaded_split_is_decoded_once_per_process(resources, tmp_path):
    """A second dataset over the same saved split, length and rate reuses the decoded clips; another
    clip length, or another copy of the corpus on disk, decodes its own."""
    import shutil

    from spatial_clap_hf.data import load_corpus
    from spatial_clap_hf.training.clips import ClipDataset, class_names_of

    corpus = load_corpus(resources / "corpus")
    names = class_names_of(resources / "corpus", corpus["train"])
    make = lambda split, seconds: ClipDataset(split, names, clip_seconds=seconds, sample_rate=16000, preload=True)  # noqa: E731
    first, again = make(corpus["train"], 1.0), make(load_corpus(resources / "corpus")["train"], 1.0)
    assert again._clips.data_ptr() == first._clips.data_ptr()
    longer = make(corpus["train"], 1.5)
    assert longer._clips.shape[1] == 24000 and longer._clips.data_ptr() != first._clips.data_ptr()
    shutil.copytree(resources / "corpus", tmp_path / "copy")
    copy = make(load_corpus(tmp_path / "copy")["train"], 1.0)
    assert copy._clips.data_ptr() != first._clips.data_ptr()
    torch.testing.assert_close(copy._clips, first._clips, rtol=0, atol=0)


def test_gradient_checkpointing_from_the_config_gives_the_same_weights(resources, tmp_path):
    from spatial_clap_hf.training.tasks import build_task

    common = {"model.spatial_encoder": "none", "optim.max_steps": 2}
    flagged = _config(resources, tmp_path / "ckpt", **common, **{"model.gradient_checkpointing": True})
    assert build_task(flagged, [], ["A dog barks."]).model.is_activation_checkpointing
    assert not build_task(_config(resources, tmp_path, **common), [], ["A dog barks."]).model.is_activation_checkpointing
    plain = train(_config(resources, tmp_path / "plain", **common), show_progress=False)
    checkpointed = train(flagged, show_progress=False)
    expected, got = _weights(plain.model_dir), _weights(checkpointed.model_dir)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5, msg=key)
