"""The paper configuration's stage-2 training step: throughput, data wait, memory.

A step as the training loop runs it: the DataLoader decodes (and resamples) mono clips of a saved
corpus in its workers; on the device the batch is spatialized from the RIR bank (16 single-source
scenes + 8 two-source mixtures from 32 clips; with SCL each mixture also with its sources swapped:
32 samples), tokenized, embedded (HTS-AT base, RoBERTa-base, SELDnet; random weights), the
contrastive loss back-propagated and the optimizer stepped, under bf16 autocast. Printed, in one
run:

- samples/s of the full step, and of the model-only step on one already spatialized batch (the
  baseline), with their ratio;
- data wait: the share of the full step spent waiting for the DataLoader, for each
  ``--workers`` count (0, 2 and 8 by default), and the share spent spatializing and tokenizing;
- peak memory (CUDA: peak allocated; CPU: the process's peak resident set).

    python benchmarks/bench_paper_step.py --smoke              # tiny model, 1 s clips, float32, CPU, < 1 min
    python benchmarks/bench_paper_step.py --device cuda --steps 20 --workers 8
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from spatial_clap_hf import create_model
from spatial_clap_hf.data import make_synthetic_corpus
from spatial_clap_hf.spatial import Spatializer
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig
from spatial_clap_hf.training.clips import ClipDataset, EpochBatchSampler, class_names_of, collate_clips
from spatial_clap_hf.training.config import BatchConfig, OptimConfig, TrainConfig
from spatial_clap_hf.training.tasks import ContrastiveTask


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1024**3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


class Bench:
    """One model, task and spatializer; times full and model-only steps."""

    def __init__(self, args: argparse.Namespace, corpus_dir: Path, bank: RirBank, device: torch.device) -> None:
        self.args, self.device = args, device
        corpus = make_synthetic_corpus(n_train=args.clips, n_validation=0, n_test=0,
                                       clip_seconds=args.clip_seconds, output_dir=corpus_dir)
        split = corpus["train"]
        self.batch = BatchConfig(n_single=16, n_mix2=8, scl=True)
        self.model = create_model(args.preset, scl=True, max_length_s=args.clip_seconds).to(device).train()
        config = TrainConfig(batch=self.batch, optim=OptimConfig(lr=1e-5), seed=0)
        captions = [c for row in split["captions"] for c in row]
        self.task = ContrastiveTask(config, class_names_of(corpus_dir, split), captions, model=self.model)
        self.dataset = ClipDataset(split, class_names_of(corpus_dir, split), clip_seconds=args.clip_seconds,
                                   sample_rate=bank.sample_rate, preload=False)
        self.spatializer = Spatializer(bank, "train", seed=0, device=device)
        self.optimizer = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-5)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.args.bf16)

    def _model_step(self, inputs: dict) -> None:
        with self._autocast():
            out = self.model(**inputs)
            loss = self.task.loss_fn(out.audio_embeds, out.text_embeds, self.model.logit_scale)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _inputs(self, clip_batch) -> dict:
        clip_batch.clips = clip_batch.clips.to(self.device)
        with self._autocast():
            return self.task.model_inputs(self.task.render(clip_batch, self.spatializer, epoch=0))

    def full_steps(self, workers: int) -> dict:
        """``steps`` full steps after one warm-up; times loader waits, data preparation, model."""
        sampler = EpochBatchSampler(len(self.dataset), self.batch.mono_clips, seed=0, epoch=0)
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=sampler, collate_fn=collate_clips,
                                             num_workers=workers, pin_memory=self.device.type == "cuda")
        batches = iter(loader)
        self._model_step(self._inputs(next(batches)))
        _sync(self.device)
        wait = prep = model = 0.0
        for _ in range(self.args.steps):
            t0 = time.perf_counter()
            clip_batch = next(batches)
            t1 = time.perf_counter()
            inputs = self._inputs(clip_batch)
            _sync(self.device)
            t2 = time.perf_counter()
            self._model_step(inputs)
            _sync(self.device)
            t3 = time.perf_counter()
            wait, prep, model = wait + t1 - t0, prep + t2 - t1, model + t3 - t2
        self.last_inputs = inputs
        total = wait + prep + model
        return {"step_s": total / self.args.steps, "wait": wait / total, "prep": prep / total,
                "samples": inputs["input_values"].shape[0]}

    def model_only_step_s(self) -> float:
        self._model_step(self.last_inputs)
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(self.args.steps):
            self._model_step(self.last_inputs)
        _sync(self.device)
        return (time.perf_counter() - start) / self.args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny preset, 1 s clips, 2 steps, float32 (CPU, under a minute)")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="float32 instead of bf16 autocast")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--workers", type=int, action="append", help="DataLoader workers (default: 0, 2 and 8)")
    parser.add_argument("--clips", type=int, default=None, help="clips in the corpus (default: enough for the steps)")
    args = parser.parse_args()
    if args.smoke:
        args.preset, args.clip_seconds, args.steps, args.bf16 = "tiny", 1.0, 2, False
    workers = args.workers or [0, 2, 8]
    args.clips = args.clips or 32 * (args.steps + 1)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        RirBank.build(Path(tmp) / "rirs", RirBankConfig(max_rooms_per_split=2, azimuth_step_deg=30), splits=["train"],
                      show_progress=False)
        bank = RirBank.load(Path(tmp) / "rirs", in_memory=True)
        bench = Bench(args, Path(tmp) / "corpus", bank, device)
        rows = {w: bench.full_steps(w) for w in workers}
        model_only = bench.model_only_step_s()
    samples = rows[workers[0]]["samples"]
    print(f"\n{args.preset} preset, {args.clip_seconds:g} s clips, {samples} samples/step (24 scenes, SCL), "
          f"device={device}, bf16={args.bf16}, {torch.get_num_threads()} threads, python {sys.version.split()[0]}")
    print(f"model-only step: {model_only:.3f} s, samples/s {samples / model_only:.1f}")
    for w, row in rows.items():
        print(f"workers {w}: full step {row['step_s']:.3f} s, samples/s {samples / row['step_s']:.1f}, "
              f"data wait {100 * row['wait']:.1f} %, spatialize + tokenize {100 * row['prep']:.1f} %, "
              f"full/model-only {model_only / row['step_s']:.3f}")
    print(f"peak memory: {_peak_memory_gib(device):.2f} GiB ({'CUDA allocated' if device.type == 'cuda' else 'process RSS'})")


if __name__ == "__main__":
    main()
