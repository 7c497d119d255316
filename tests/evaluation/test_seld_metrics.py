"""Binding diagnostics of a SELD-pretrained spatial encoder on multi-source scenes."""

import math

import datasets
import numpy as np
import pytest
import torch

from spatial_clap_hf import SeldNetForSoundEventLocalization
from spatial_clap_hf.data.spatialized import encode_audio
from spatial_clap_hf.evaluation.seld import binding_accuracy, labels_by_source_id, seld_scene_metrics


def test_binding_accuracy_two_and_three_sources():
    predicted = [[60.0, -60.0], [60.0, -60.0], [10.0, 12.0], [0.0, 0.0]]
    true = [[120.0, -60.0], [-60.0, 60.0], [10.0, 12.0], [30.0, -30.0]]  # 120° folds to 60°
    assert binding_accuracy(np.array(predicted), np.array(true)) == pytest.approx(0.5)  # the tie counts as wrong
    three = np.array([[-80.0, 0.0, 80.0], [80.0, 0.0, -80.0]])
    assert binding_accuracy(three, np.array([[-75.0, 5.0, 70.0], [-80.0, 0.0, 80.0]])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="scenes, n >= 2"):
        binding_accuracy(np.zeros((3, 2)), np.zeros((3, 3)))


def _constant_model(config, doa_deg_by_class, active):
    """A SELDnet whose per-class outputs ignore the input: DoA ``doa_deg_by_class``, ``active`` classes on."""
    config.id2label = {i: f"c{i}" for i in range(config.num_classes)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    model = SeldNetForSoundEventLocalization(config)
    with torch.no_grad():
        model.doa_head.out_proj.weight.zero_()
        model.doa_head.out_proj.bias.copy_(torch.tensor([math.atanh(a / 90.0) for a in doa_deg_by_class]))
        model.sed_head.out_proj.weight.zero_()
        model.sed_head.out_proj.bias.copy_(torch.tensor([5.0 if k in active else -5.0 for k in range(config.num_classes)]))
    return model


def _scenes(azimuths, sources):
    """Rows with the columns of a spatialized dataset that the diagnostic reads (noise audio)."""
    rng = np.random.default_rng(0)
    features = datasets.Features({
        "audio": datasets.Audio(sampling_rate=16000, num_channels=2),
        "azimuth_deg": datasets.List(datasets.Value("float32")),
        "source_ids": datasets.List(datasets.Value("string")),
    })
    audio = [{"bytes": encode_audio(0.1 * rng.standard_normal((2, 4000)), 16000)[0], "path": None} for _ in azimuths]
    return datasets.Dataset.from_dict({"audio": audio, "azimuth_deg": azimuths, "source_ids": sources}, features=features)


def test_seld_scene_metrics_reads_each_source_class(tiny_seldnet_config):
    model = _constant_model(tiny_seldnet_config, [60.0, -60.0, 0.0, 0.0], active={0, 1})
    labels = labels_by_source_id(["a", "b", "c"], [["c0"], ["c1"], ["c2"]])
    right = _scenes([[60.0, -60.0], [-60.0, 60.0]], [["a", "b"], ["b", "a"]])
    assert seld_scene_metrics(model, right, labels, batch_size=1) == {"binding_accuracy": 1.0, "sed_recall": 1.0}
    swapped = _scenes([[-60.0, 60.0], [10.0, 20.0]], [["a", "b"], ["a", "c"]])
    metrics = seld_scene_metrics(model, swapped, labels)
    assert metrics == {"binding_accuracy": 0.0, "sed_recall": 0.75}  # a+b found, c missed


def test_seld_scene_metrics_names_bad_inputs(tiny_seldnet_config):
    model = _constant_model(tiny_seldnet_config, [0.0] * 4, active=set())
    scenes = _scenes([[60.0, -60.0]], [["a", "zzz"]])
    with pytest.raises(ValueError, match="No class label for source 'zzz'"):
        seld_scene_metrics(model, scenes, {"a": "c0"})
    with pytest.raises(ValueError, match="not one of the model's classes"):
        seld_scene_metrics(model, scenes, {"a": "c0", "zzz": "dog"})
    tiny_seldnet_config.doa_mode = "single"
    with pytest.raises(ValueError, match="SELD-pretrained"):
        seld_scene_metrics(SeldNetForSoundEventLocalization(tiny_seldnet_config), scenes, {"a": "c0"})
