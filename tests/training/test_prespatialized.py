"""Training from a pre-spatialized dataset (``data.spatialized``) instead of on-the-fly spatialization."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import hub_env, run_python
from safetensors.torch import load_file

from spatial_clap_hf.data import load_spatialized, make_synthetic_corpus, spatialize
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig
from spatial_clap_hf.training import load_config, train
from spatial_clap_hf.training.scenes import SceneBatchSampler, SpatializedScenes, collate_scenes

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture(scope="module")
def spatialized(tmp_path_factory):
    """The synthetic corpus' train split spatialized once, in two draws: per draw 24 single sources and
    12 two-source mixtures with all their assignments (SCL)."""
    root = tmp_path_factory.mktemp("prespatialized")
    corpus = make_synthetic_corpus(n_train=48, n_validation=4, n_test=4, clip_seconds=1.0, output_dir=root / "corpus")
    bank = RirBank.build(root / "rirs", RirBankConfig(max_rooms_per_split=2, azimuth_step_deg=30), splits=["train"],
                         show_progress=False)
    spatialize(corpus, bank, root / "data", split="train", num_sources=[1, 2], scl=True, pairings=2,
               clip_seconds=1.0, corpus_name=str(root / "corpus"), show_progress=False)
    return root / "data"


#: The settings of these tests on top of recipes/tiny.yaml.
SETTINGS = {
    "data.clip_seconds": 1.0,
    "batch.n_single": 4,
    "batch.n_mix2": 2,
    "optim.warmup_steps": 1,
    "optim.lr": 3e-3,
    "log_with": [],
    "save_every": 0,
}


def _config(data: Path, output_dir: Path, **overrides):
    values = {"output_dir": str(output_dir), "data.spatialized": str(data), **SETTINGS, **overrides}
    return load_config(RECIPES / "tiny.yaml", values)


def test_batches_take_the_scenes_of_each_epochs_draw_and_keep_a_mixtures_assignments(spatialized):
    rows = load_spatialized(spatialized, split="train")
    names = sorted({n for row in rows["labels"] for source in row for n in source})
    scenes = SpatializedScenes(rows, names, num_samples=16000, sample_rate=16000, scl=True)
    counts = {1: 4, 2: 2}
    for epoch in (0, 1, 2):
        sampler = SceneBatchSampler(scenes.scenes, counts, seed=0, epoch=epoch, num_processes=2, process_index=0)
        other = SceneBatchSampler(scenes.scenes, counts, seed=0, epoch=epoch, num_processes=2, process_index=1)
        assert sampler.batches_per_epoch() == 3  # 24 single / (4 × 2), 12 pairs / (2 × 2): all used
        seen = [s for batch in sampler for s in batch]
        assert not set(seen) & {s for batch in other for s in batch}  # the processes' slices are disjoint
        assert {scenes.scenes[s].pairing for s in seen} == {epoch % 2}  # epoch e reads draw e mod 2
        first = next(iter(sampler))
        assert [scenes.scenes[s].n_sources for s in first] == [1] * 4 + [2] * 2
        assert first == next(iter(SceneBatchSampler(scenes.scenes, counts, seed=0, epoch=epoch, num_processes=2)))
    batch, labels = collate_scenes([scenes[s] for s in first])
    assert batch.waveforms.shape == (4 + 2 * 2, 2, 16000) and len(labels) == 4 + 2 * 2
    assert batch.is_identity.tolist() == [True] * 4 + [True, False, True, False]  # SCL: both assignments, drawn first
    assert batch.sources[4] == batch.sources[5] and batch.azimuths_deg[4] == batch.azimuths_deg[5][::-1]
    activity, doa = batch.seld_targets(labels, len(names))
    for b in (4, 5):  # each source's class points at the direction that row gives it
        for i, source in enumerate(batch.sources[b]):
            (cls,) = labels[source]
            assert activity[b, cls] == 1 and doa[b, cls] == pytest.approx(np.degrees(np.arcsin(np.sin(np.radians(batch.azimuths_deg[b][i])))), abs=1e-4)
    without = SpatializedScenes(rows, names, num_samples=8000, sample_rate=16000, scl=False)
    single_batch, _ = collate_scenes([without[s] for s in first])
    assert single_batch.waveforms.shape == (6, 2, 8000) and bool(single_batch.is_identity.all())


def test_both_stages_train_from_the_spatialized_dataset(spatialized, tmp_path):
    from transformers import AutoModel, AutoModelForAudioFrameClassification

    seld = train(_config(spatialized, tmp_path / "seld", stage="spatial", **{"optim.max_steps": 3}), show_progress=False)
    stage1 = AutoModelForAudioFrameClassification.from_pretrained(seld.model_dir)
    assert seld.steps == 3 and np.isfinite(seld.last_loss) and stage1.config.num_classes > 1
    config = _config(spatialized, tmp_path / "clap", **{"model.spatial_model": str(seld.model_dir), "batch.scl": True,
                                                        "optim.max_steps": 3})
    clap = train(config, show_progress=False)
    assert AutoModel.from_pretrained(clap.model_dir).config.scl is True and np.isfinite(clap.last_loss)
    again = train(_config(spatialized, tmp_path / "again", **{"model.spatial_model": str(seld.model_dir),
                                                              "batch.scl": True, "optim.max_steps": 3}),
                  show_progress=False)
    first, second = load_file(str(clap.model_dir / "model.safetensors")), load_file(str(again.model_dir / "model.safetensors"))
    for key in first:  # deterministic for a seed
        torch.testing.assert_close(second[key], first[key], rtol=0, atol=0, msg=key)


def test_options_of_on_the_fly_spatialization_are_refused(spatialized, tmp_path):
    with pytest.raises(ValueError, match="data.spatialized.*'data.corpus'"):
        _config(spatialized, tmp_path, **{"data.corpus": "some/corpus"})
    with pytest.raises(ValueError, match="'batch.direction_twins': 2"):
        _config(spatialized, tmp_path, **{"batch.direction_twins": 2})
    with pytest.raises(ValueError, match="'seld_frame_activity_db': -30.0"):
        _config(spatialized, tmp_path, stage="spatial", seld_frame_activity_db=-30.0)
    with pytest.raises(ValueError, match="too few scenes"):
        train(_config(spatialized, tmp_path / "big", **{"model.spatial_encoder": "none", "batch.n_mix3": 1,
                                                         "optim.max_steps": 1}), show_progress=False)


def test_cached_accumulation_takes_k_micro_batches_of_spatialized_scenes(spatialized, tmp_path):
    """A draw holds six micro-batches of 4 single sources and 2 mixtures: 6 steps an epoch, or 2 with accum_steps=3."""
    common = {"model.spatial_encoder": "none", "batch.scl": True, "optim.epochs": 1}
    plain = train(_config(spatialized, tmp_path / "plain", **common), show_progress=False)
    accumulated = train(_config(spatialized, tmp_path / "accum", **common, **{"optim.accum_steps": 3}),
                        show_progress=False)
    assert (plain.total_steps, accumulated.total_steps) == (6, 2) and np.isfinite(accumulated.last_loss)


def test_the_model_card_names_the_pre_spatialized_dataset(spatialized, tmp_path):
    from spatial_clap_hf.training.tasks import card_sources, describe_training

    on_hub = _config("someone/spatial-train", tmp_path)
    assert card_sources(on_hub) == {"base_model": [], "datasets": ["someone/spatial-train"]}
    assert "on the pre-spatialized dataset `someone/spatial-train` (scenes rendered once" in describe_training(on_hub)
    local = describe_training(_config(spatialized, tmp_path))
    assert card_sources(_config(spatialized, tmp_path))["datasets"] == []  # a folder is named in the text only
    assert f"pre-spatialized dataset `{spatialized}`" in local and "synthetic corpus" not in local


PUSH = """
import sys
from spatial_clap_hf.data import push_spatialized
push_spatialized(sys.argv[1], sys.argv[2])
"""


def test_training_reads_the_dataset_by_hub_id_as_from_its_folder_and_names_it_in_the_card(spatialized, tmp_path, hub):
    """`spatial-clap train --set data.spatialized=HUB_ID` in a fresh process trains exactly as from the local
    folder, names the dataset in the model card and pushes the model."""
    env = hub_env(hub, tmp_path / "hf")
    run_python(PUSH, env, str(spatialized), "someone/spatial-train")
    common = {"model.spatial_encoder": "none", "batch.scl": True, "optim.max_steps": 2}
    local = train(_config(spatialized, tmp_path / "local", **common), show_progress=False)
    values = {**SETTINGS, **common, "data.spatialized": "someone/spatial-train"}
    script = Path(sys.executable).with_name("spatial-clap")
    cmd = [str(script), "train", "--config", str(RECIPES / "tiny.yaml"), "--output-dir", str(tmp_path / "hub"),
           "--no-progress", "--push-to-hub", "someone/tiny-from-hub-data"]
    cmd += [arg for k, v in values.items() for arg in ("--set", f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Training on the pre-spatialized someone/spatial-train: 96 rows" in proc.stderr
    from_hub = load_file(str(tmp_path / "hub" / "model" / "model.safetensors"))
    from_dir = load_file(str(local.model_dir / "model.safetensors"))
    assert from_hub.keys() == from_dir.keys()
    for key in from_dir:  # the same scenes in the same order: the same weights
        torch.testing.assert_close(from_hub[key], from_dir[key], rtol=0, atol=0, msg=key)
    card = hub.files("someone/tiny-from-hub-data")["README.md"].decode()
    assert yaml.safe_load(card.split("---")[1])["datasets"] == ["someone/spatial-train"]
    assert "pre-spatialized dataset `someone/spatial-train`" in card
