"""The training loop of both stages on Accelerate: one CPU process to many GPUs.

- The data order is a function of (seed, epoch) and each step's spatialization of
  (seed, epoch, clip ids); with Accelerate's saved RNG states this makes a resumed run
  end with exactly the weights of an uninterrupted one. With ``data.spatialized`` the
  scenes come already rendered (``training.scenes``), in an order of (seed, epoch) too.
- ``save_state`` every ``save_every`` steps under ``<output_dir>/checkpoints/checkpoint_<i>``
  (accelerate's naming and rotation; ``progress.json``, written last, marks it complete), and
  also when the job receives SIGINT or SIGTERM: an interrupted job loses at most the step in
  flight.
- At the end, ``<output_dir>/model`` holds an AutoModel-loadable directory (and, for
  stage 2, its processor and model card); ``push_to_hub`` uploads it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import datasets
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..data.audiocaps import load_corpus
from ..data.spatialized import load_spatialized
from ..data.synthetic import make_synthetic_corpus
from ..spatial import Spatializer
from ..spatial.rir_bank import RirBank, RirBankConfig
from .accumulation import average_gradients
from .clips import ClipDataset, EpochBatchSampler, class_names_of, collate_clips
from .config import TrainConfig
from .scenes import SceneBatchSampler, SpatializedScenes, collate_scenes
from .tasks import Scenes, build_task

__all__ = ["TrainResult", "latest_checkpoint", "prepare_corpus", "prepare_rir_bank", "train"]

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
PROGRESS_FILE = "progress.json"


@dataclass
class TrainResult:
    """Where a run ended: ``model_dir`` is None when it was interrupted before the end."""

    output_dir: Path
    steps: int
    total_steps: int
    interrupted: bool
    model_dir: Path | None
    last_loss: float | None


def prepare_corpus(config: TrainConfig, accelerator: Accelerator) -> tuple[datasets.DatasetDict, Path]:
    """The source corpus: ``data.corpus`` or the synthetic corpus built under ``<output_dir>/corpus``."""
    dc = config.data
    if dc.corpus:
        return load_corpus(dc.corpus), Path(dc.corpus)
    directory = Path(config.output_dir) / "corpus"
    with accelerator.main_process_first():
        corpus = make_synthetic_corpus(
            n_train=dc.synthetic_n_train,
            n_validation=dc.synthetic_n_validation,
            n_test=dc.synthetic_n_test,
            clip_seconds=dc.clip_seconds,
            sample_rate=dc.sample_rate,
            seed=config.seed,
            output_dir=directory,
        )
    return corpus, directory


def prepare_rir_bank(config: TrainConfig, accelerator: Accelerator, splits: tuple[str, ...] = ("train",)) -> RirBank:
    """The RIR bank at ``data.rirs`` (default ``<output_dir>/rirs``).

    An existing bank holding ``splits`` is used as it is (its own parameters); otherwise the
    missing splits are built with the ``data.rir_*`` parameters.
    """
    dc = config.data
    directory = Path(dc.rirs) if dc.rirs else Path(config.output_dir) / "rirs"
    with accelerator.main_process_first():
        if accelerator.is_main_process and not _has_splits(directory, splits):
            bank_config = RirBankConfig(
                seed=config.seed,
                max_rooms_per_split=dc.rir_max_rooms,
                azimuth_step_deg=dc.rir_azimuth_step_deg,
                sample_rate=dc.sample_rate,
            )
            RirBank.build(directory, bank_config, splits=splits, num_workers=dc.rir_num_workers)
    return RirBank.load(directory, in_memory=True)


def _has_splits(directory: Path, splits: tuple[str, ...]) -> bool:
    try:
        bank = RirBank.load(directory)
    except (FileNotFoundError, ValueError):
        return False
    return set(splits) <= set(bank.splits)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint of the highest step under ``<output_dir>/checkpoints``, or None."""
    root = Path(output_dir) / CHECKPOINTS
    done = [p for p in root.glob("checkpoint_*") if (p / PROGRESS_FILE).is_file()] if root.is_dir() else []
    return max(done, key=_checkpoint_step, default=None)


def _checkpoint_step(path: Path) -> int:
    return int(json.loads((path / PROGRESS_FILE).read_text())["step"])


def _save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int) -> Path:
    """``save_state`` into the next ``checkpoints/checkpoint_<i>`` (accelerate keeps the newest
    ``keep_checkpoints``); ``progress.json``, written last, marks it complete."""
    accelerator.wait_for_everyone()
    accelerator.save_state()
    path = output_dir / CHECKPOINTS / f"checkpoint_{accelerator.save_iteration - 1}"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (path / PROGRESS_FILE).write_text(json.dumps({"step": step}))
    accelerator.wait_for_everyone()
    return path


def _next_save_iteration(output_dir: Path) -> int:
    """The index after every ``checkpoint_<i>`` folder present (complete or not)."""
    root = output_dir / CHECKPOINTS
    indices = [int(p.name.split("_")[1]) for p in root.glob("checkpoint_*")] if root.is_dir() else []
    return max(indices, default=-1) + 1


class _StopFlag:
    """Set by SIGINT/SIGTERM; agreed on by all processes so they stop at the same step."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, signum, frame) -> None:  # signal handler
        self.raised = True

    def agreed(self, accelerator: Accelerator) -> bool:
        if accelerator.num_processes == 1:
            return self.raised
        flag = torch.tensor([1.0 if self.raised else 0.0], device=accelerator.device)
        return bool(accelerator.reduce(flag, reduction="sum").item() > 0)


@contextmanager
def _stop_on_signals() -> Iterator[_StopFlag]:
    flag = _StopFlag()
    previous = {s: signal.signal(s, flag) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _check_accumulation(config: TrainConfig, accelerator: Accelerator) -> None:
    """Accumulated steps average their gradients by hand, which sharded (FSDP) gradients do not allow."""
    if config.optim.accum_steps > 1 and accelerator.distributed_type == DistributedType.FSDP:
        raise ValueError(
            "optim.accum_steps > 1 averages full gradients across processes, which FSDP shards; "
            "use DDP (recipes/accelerate/multi_gpu.yaml) with gradient checkpointing, or accum_steps: 1."
        )


def _flat_hparams(config: TrainConfig) -> dict:
    flat = {}
    for section, values in config.to_dict().items():
        if isinstance(values, dict):
            for key, value in values.items():
                flat[f"{section}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
        else:
            flat[section] = values if isinstance(values, (int, float, str, bool)) else str(values)
    return flat


class _OnTheFlyData:
    """Mono clips of the corpus' train split, spatialized at every step (``spatial.Spatializer``)."""

    def __init__(self, config: TrainConfig, accelerator: Accelerator) -> None:
        self.config, self.accelerator = config, accelerator
        corpus, corpus_dir = prepare_corpus(config, accelerator)
        bank = prepare_rir_bank(config, accelerator)
        split = corpus["train"]
        self.class_names = class_names_of(corpus_dir, split)
        self.captions = [c for row in split["captions"] for c in row]
        self.spatializer = Spatializer(bank, "train", seed=config.seed, device=accelerator.device)
        self.dataset = ClipDataset(
            split, self.class_names, clip_seconds=config.data.clip_seconds, sample_rate=bank.sample_rate, seed=config.seed
        )

    def steps_per_epoch(self, task) -> int:
        accum = self.config.optim.accum_steps
        global_batch = self.config.batch.mono_clips * self.accelerator.num_processes * accum
        steps = len(self.dataset) // global_batch
        if steps == 0:
            raise ValueError(
                f"The train split has {len(self.dataset)} clips: not one global batch of {global_batch} "
                f"({accum} micro-batch(es) per step). Use more clips or a smaller batch."
            )
        return steps

    def loader(self, task, epoch: int, start: int) -> torch.utils.data.DataLoader:
        """Micro-batches of the epoch from micro-batch ``start`` on."""
        self.dataset.epoch = epoch
        sampler = EpochBatchSampler(
            len(self.dataset),
            self.config.batch.mono_clips,
            seed=self.config.seed,
            epoch=epoch,
            num_processes=self.accelerator.num_processes,
            process_index=self.accelerator.process_index,
            start=start,
        )
        return _data_loader(self.dataset, sampler, collate_clips, self.config, epoch)

    def render(self, task, batch, epoch: int) -> Scenes:
        batch.clips = batch.clips.to(self.accelerator.device)
        return task.render(batch, self.spatializer, epoch)


class _PrespatializedData:
    """Scenes already rendered (``data.spatialized``: a ``spatial-clap spatialize`` folder or Hub id)."""

    def __init__(self, config: TrainConfig, accelerator: Accelerator) -> None:
        self.config, self.accelerator = config, accelerator
        dataset = load_spatialized(config.data.spatialized, "default", "train")
        self.class_names = sorted({name for row in dataset["labels"] for source in row for name in source})
        logger.info(
            "Training on the pre-spatialized %s: %d rows, %d classes.", config.data.spatialized, len(dataset),
            len(self.class_names),
        )
        self.captions = list(dict.fromkeys(c for row in dataset["source_captions"] for c in row))
        self.scenes = SpatializedScenes(
            dataset,
            self.class_names,
            num_samples=int(round(config.data.clip_seconds * config.data.sample_rate)),
            sample_rate=config.data.sample_rate,
            scl=config.batch.scl,
            name=f"spatialized dataset {config.data.spatialized}",
        )

    def _sampler(self, task, epoch: int, start: int = 0) -> SceneBatchSampler:
        return SceneBatchSampler(
            self.scenes.scenes,
            task.scene_counts(self.config.batch.mono_clips),
            seed=self.config.seed,
            epoch=epoch,
            num_processes=self.accelerator.num_processes,
            process_index=self.accelerator.process_index,
            start=start,
        )

    def steps_per_epoch(self, task) -> int:
        batches = min(self._sampler(task, epoch).batches_per_epoch() for epoch in range(self._pairings()))
        return batches // self.config.optim.accum_steps

    def _pairings(self) -> int:
        return len({scene.pairing for scene in self.scenes.scenes})

    def loader(self, task, epoch: int, start: int) -> torch.utils.data.DataLoader:
        return _data_loader(self.scenes, self._sampler(task, epoch, start), collate_scenes, self.config, epoch)

    def render(self, task, batch, epoch: int) -> Scenes:
        scene_batch, clip_labels = batch
        device = self.accelerator.device
        scene_batch.waveforms = scene_batch.waveforms.to(device)
        scene_batch.is_identity = scene_batch.is_identity.to(device)
        scene_batch.scene_index = scene_batch.scene_index.to(device)
        return Scenes(scene_batch, clip_labels)


def _data_loader(dataset, sampler, collate_fn, config: TrainConfig, epoch: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_fn,
        num_workers=config.data.num_workers,
        # Its own generator: starting an iterator must not draw from the global RNG, whose
        # state (dropout) a resumed run restores from the checkpoint.
        generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch),
    )


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    show_progress: bool = True,
    progress_label: str | None = None,
    progress_position: int | None = None,
) -> TrainResult:
    """Run one training stage as described by ``config``; see the module docstring.

    ``progress_label`` names the progress bar (default: the stage and objective) and
    ``progress_position`` puts it on its own terminal line (for trainings run side by side).
    """
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        # Without an accelerator, processes started by torchrun must be told to use the CPU
        # (gloo); otherwise each would run alone.
        cpu=not torch.accelerator.is_available(),
        # None leaves the launch configuration's precision in force.
        mixed_precision=config.optim.mixed_precision,
        log_with=config.log_with or None,
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), automatic_checkpoint_naming=True, total_limit=config.keep_checkpoints
        ),
    )
    accelerator.project_configuration.iteration = _next_save_iteration(output_dir)
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, mixed_precision=accelerator.mixed_precision))
    _check_accumulation(config, accelerator)
    set_seed(config.seed)
    if config.data.spatialized:
        data = _PrespatializedData(config, accelerator)
    else:
        data = _OnTheFlyData(config, accelerator)
    task = build_task(config, data.class_names, data.captions)
    accum = config.optim.accum_steps
    steps_per_epoch = data.steps_per_epoch(task)
    bounds = [config.optim.max_steps]
    if config.optim.epochs is not None:
        bounds.append(config.optim.epochs * steps_per_epoch)
    total_steps = min(b for b in bounds if b is not None)

    trainable = [p for p in task.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(config.optim.warmup_steps, total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(task.model, optimizer, scheduler)
    # Taken again after prepare: sharding (FSDP) replaces the parameters it wraps.
    trainable = [p for p in model.parameters() if p.requires_grad]
    if config.log_with:
        accelerator.init_trackers(f"{config.stage}", config=_flat_hparams(config))

    step = 0
    if resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            logger.warning("--resume: no checkpoint under %s; starting from step 0.", output_dir / CHECKPOINTS)
        else:
            accelerator.load_state(str(checkpoint))
            step = json.loads((checkpoint / PROGRESS_FILE).read_text())["step"]
            logger.info("Resuming from %s (step %d of %d).", checkpoint, step, total_steps)

    bar = tqdm(
        total=total_steps,
        initial=step,
        desc=progress_label or f"{config.stage} ({config.objective if config.stage == 'spatial' else 'contrastive'})",
        disable=not (show_progress and accelerator.is_local_main_process),
        dynamic_ncols=True,
        position=progress_position,
    )
    last_loss = None
    interrupted = False
    with _stop_on_signals() as stop:
        while step < total_steps and not interrupted:
            epoch, start = divmod(step, steps_per_epoch)
            loader = data.loader(task, epoch, start * accum)
            micro_batches = []
            for batch in loader:
                micro_batches.append(batch)
                if len(micro_batches) < accum:
                    continue
                model.train()
                for module in task.frozen:
                    module.eval()
                if accum == 1:
                    with accelerator.autocast():
                        loss, logs = task.scene_loss(model, data.render(task, batch, epoch))
                    accelerator.backward(loss)
                else:
                    with accelerator.no_sync(model):
                        with accelerator.autocast():
                            scenes = [data.render(task, b, epoch) for b in micro_batches]
                        loss, logs = task.accumulated_backward(model, scenes, accelerator)
                    average_gradients(trainable, accelerator)
                micro_batches = []
                if config.optim.grad_clip:
                    accelerator.clip_grad_norm_(trainable, config.optim.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last_loss = float(loss.detach())
                bar.update(1)
                bar.set_postfix(loss=f"{last_loss:.4f}", epoch=epoch)
                if config.log_with and step % config.log_every == 0:
                    metrics = {"loss": last_loss, "lr": scheduler.get_last_lr()[0], "epoch": epoch}
                    metrics.update({k: float(v) for k, v in logs.items()})
                    accelerator.log(metrics, step=step)
                stopping = stop.agreed(accelerator)
                if (config.save_every and step % config.save_every == 0) or stopping:
                    path = _save_checkpoint(accelerator, output_dir, step)
                    if stopping:
                        logger.warning("Interrupted: state saved to %s; continue with --resume.", path)
                if stopping:
                    interrupted = True
                    break
                if step >= total_steps or step % steps_per_epoch == 0:
                    break
    bar.close()

    model_dir = None
    if not interrupted:
        model_dir = output_dir / "model"
        accelerator.wait_for_everyone()
        state_dict = accelerator.get_state_dict(model)  # every process: gathers sharded weights
        task.save(
            accelerator.unwrap_model(model),
            model_dir,
            state_dict=state_dict,
            is_main_process=accelerator.is_main_process,
            steps=step,
        )
        if accelerator.is_main_process:
            (model_dir / "training_config.json").write_text(json.dumps(config.to_dict(), indent=1))
        accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(output_dir, step, total_steps, interrupted, model_dir, last_loss)
