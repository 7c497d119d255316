"""transformers.Trainer trains a SpatialClapModel from a collator of spatialized scenes, and its checkpoints load."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoProcessor, Trainer, TrainingArguments

from conftest import TOY_CAPTIONS
from spatial_clap_hf import SpatialClapFeatureExtractor, SpatialClapModel, SpatialClapProcessor, get_config
from spatial_clap_hf.spatial import RirBank, RirBankConfig, Spatializer

SAMPLE_RATE = 16000
STEPS = 3


class SceneCollator:
    """``ClipDataset`` items ``(index, mono clip (samples,) at the bank's rate, caption, labels)`` → model
    inputs: the first ``num_single`` clips as single-source scenes, the rest as two-source mixtures with
    every assignment of their directions (SCL), with the loss requested. (The collator of docs/training.md.)"""

    def __init__(self, spatializer: Spatializer, processor: SpatialClapProcessor, num_single: int):
        self.spatializer, self.processor, self.num_single = spatializer, processor, num_single
        self.batches = 0  # new rooms and directions for every batch

    def __call__(self, items: list[tuple]) -> dict:
        indices, clips, captions, _ = zip(*items)
        scenes = self.spatializer(
            torch.stack(clips),
            list(indices),
            list(captions),
            epoch=self.batches,
            num_single=self.num_single,
            num_sources=2,
            scl=True,
        )
        self.batches += 1
        inputs = self.processor(
            text=scenes.captions,
            audio=list(scenes.waveforms.numpy()),
            sampling_rate=self.spatializer.sample_rate,
            return_tensors="pt",
            padding=True,
        )
        return {**inputs, "return_loss": True}


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """One train room on a 30° grid."""
    config = RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=30)
    return RirBank.build(tmp_path_factory.mktemp("rirs"), config, splits=["train"], num_workers=1)


def _clips(count: int) -> list[tuple]:
    """Items shaped as ``ClipDataset``'s: 1 s noise clips with the toy captions."""
    gen = torch.Generator().manual_seed(0)
    return [(i, 0.1 * torch.randn(SAMPLE_RATE, generator=gen), TOY_CAPTIONS[i % 8], []) for i in range(count)]


def _train(bank, caption_tokenizer, output_dir, gradient_checkpointing: bool) -> Trainer:
    torch.manual_seed(0)
    model = SpatialClapModel(get_config("tiny", max_length_s=1.0, logit_scale_init_value=10.0))
    extractor = SpatialClapFeatureExtractor(num_channels=2, sampling_rate=SAMPLE_RATE, max_length_s=1.0)
    processor = SpatialClapProcessor(extractor, caption_tokenizer)
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=STEPS,
        per_device_train_batch_size=6,  # 4 single-source scenes + 1 two-source mixture in both assignments
        learning_rate=1e-3,
        warmup_steps=0,
        logging_steps=1,
        save_steps=STEPS,
        report_to=[],
        use_cpu=True,
        seed=0,
        remove_unused_columns=False,  # the collator reads the raw rows
        activation_checkpointing=gradient_checkpointing,  # transformers 5.x name of gradient_checkpointing
    )
    collator = SceneCollator(Spatializer(bank, "train", seed=0), processor, num_single=4)
    trainer = Trainer(
        model=model, args=args, train_dataset=_clips(24), data_collator=collator, processing_class=processor
    )
    trainer.train()
    return trainer


def test_trainer_trains_from_spatialized_scenes_and_its_checkpoint_loads(bank, caption_tokenizer, tmp_path):
    torch.manual_seed(0)
    initial = SpatialClapModel(get_config("tiny", max_length_s=1.0, logit_scale_init_value=10.0)).state_dict()
    trainer = _train(bank, caption_tokenizer, tmp_path / "plain", gradient_checkpointing=False)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.state.global_step == STEPS and len(losses) == STEPS and all(math.isfinite(x) for x in losses)
    trained = trainer.model.state_dict()
    assert all(not torch.equal(initial[name], trained[name]) for name, _ in trainer.model.named_parameters())

    checkpoint = tmp_path / "plain" / f"checkpoint-{STEPS}"
    loaded = AutoModel.from_pretrained(checkpoint)
    assert isinstance(loaded, SpatialClapModel)
    assert isinstance(AutoProcessor.from_pretrained(checkpoint), SpatialClapProcessor)  # saved with the model
    saved = load_file(str(checkpoint / "model.safetensors"))
    assert all(torch.equal(tensor, trained[name]) for name, tensor in saved.items())
    assert all(torch.equal(tensor, trained[name]) for name, tensor in loaded.state_dict().items())

    # With gradient checkpointing the run is the same.
    checkpointed = _train(bank, caption_tokenizer, tmp_path / "checkpointed", gradient_checkpointing=True)
    assert checkpointed.model.is_activation_checkpointing
    again = [entry["loss"] for entry in checkpointed.state.log_history if "loss" in entry]
    assert again == pytest.approx(losses, abs=1e-5)
