"""Training throughput of stage 2 (contrastive), including on-the-fly spatialization.

For each preset it times, in the same run:
- the full step: spatialization of a batch of mono clips on the device + tokenization +
  forward + backward + optimizer step (what the training loop does), and
- the model-only step on an already spatialized batch (the baseline),
and prints training samples per second, the share of the step spent preparing data
(spatialization + tokenization, i.e. time the model waits for data), the ratio of the two,
and the model FLOPs per step (counted by torch) with the achieved FLOP/s; with ``--peak-tflops``
(e.g. 989 for an H100 in bf16) it also prints the model-FLOPs utilisation.

    python benchmarks/bench_training.py --preset tiny --preset paper --steps 3
    python benchmarks/bench_training.py --preset paper --device cuda --bf16 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from spatial_clap_hf import create_model, train_caption_tokenizer
from spatial_clap_hf.data.synthetic import generate_clips
from spatial_clap_hf.spatial import Spatializer
from spatial_clap_hf.spatial.rir_bank import RirBank, RirBankConfig
from spatial_clap_hf.training.clips import ClipBatch
from spatial_clap_hf.training.config import BatchConfig, TrainConfig
from spatial_clap_hf.training.tasks import ContrastiveTask


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clip_batch(n: int, seconds: float, device: torch.device) -> ClipBatch:
    items = list(generate_clips(n, split="train", clip_seconds=seconds))
    clips = torch.from_numpy(np.stack([a[0] for _, a, _, _ in items])).to(device)
    return ClipBatch(indices=list(range(n)), clips=clips, captions=[c for _, _, c, _ in items], labels=[[]] * n)


def bench_preset(preset: str, args: argparse.Namespace, bank: RirBank, device: torch.device) -> dict:
    model = create_model(preset, scl=args.scl).to(device)
    seconds = args.clip_seconds or model.config.max_length_s
    batch_cfg = BatchConfig(n_single=args.n_single, n_mix2=args.n_mix2, scl=args.scl)
    clips = _clip_batch(batch_cfg.mono_clips, seconds, device)
    tokenizer_texts = clips.captions + ["A sound is heard on the left side."]
    config = TrainConfig(batch=batch_cfg, seed=0)
    task = ContrastiveTask(config, [], clips.captions, model=model)
    task.tokenizer = train_caption_tokenizer(
        tokenizer_texts, vocab_size=min(1000, model.config.text_config.vocab_size), model_max_length=64
    )
    spatializer = Spatializer(bank, "train", seed=0, device=device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext()
    model.train()

    def prepare():
        scenes = spatializer(clips.clips, clips.indices, clips.captions, num_single=batch_cfg.n_single, scl=args.scl)
        tokens = task.tokenizer(scenes.captions, padding=True, truncation=True, return_tensors="pt").to(device)
        return scenes.waveforms, tokens

    def model_step(waveforms, tokens):
        with autocast:
            out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], input_values=waveforms)
            loss = task.loss_fn(out.audio_embeds, out.text_embeds, model.logit_scale)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    waveforms, tokens = prepare()
    for _ in range(args.warmup):
        model_step(*prepare())
    _sync(device)

    prep_time = model_time = 0.0
    for _ in range(args.steps):
        t0 = time.perf_counter()
        batch = prepare()
        _sync(device)
        t1 = time.perf_counter()
        model_step(*batch)
        _sync(device)
        t2 = time.perf_counter()
        prep_time += t1 - t0
        model_time += t2 - t1

    baseline = 0.0
    for _ in range(args.steps):
        t0 = time.perf_counter()
        model_step(waveforms, tokens)
        _sync(device)
        baseline += time.perf_counter() - t0

    with FlopCounterMode(display=False) as counter:
        model_step(waveforms, tokens)
    flops = counter.get_total_flops()
    samples = waveforms.shape[0]
    full = (prep_time + model_time) / args.steps
    result = {
        "preset": preset,
        "samples_per_step": samples,
        "clip_seconds": seconds,
        "full_step_s": full,
        "samples_per_s": samples / full,
        "model_only_samples_per_s": samples * args.steps / baseline,
        "data_wait_share": prep_time / (prep_time + model_time),
        "full_vs_model_only": (baseline / args.steps) / full,
        "tflops_per_step": flops / 1e12,
        "achieved_tflops": flops / 1e12 / (model_time / args.steps),
    }
    if args.peak_tflops:
        result["mfu"] = result["achieved_tflops"] / args.peak_tflops
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="model preset(s) (default: tiny and paper)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="autocast the model in bfloat16")
    parser.add_argument("--n-single", type=int, default=2, help="single-source scenes per step (paper: 16)")
    parser.add_argument("--n-mix2", type=int, default=1, help="two-source mixtures per step (paper: 8)")
    parser.add_argument("--scl", action="store_true", help="spatial contrastive learning (adds swapped mixtures)")
    parser.add_argument("--clip-seconds", type=float, help="clip length (default: the preset's max_length_s)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--peak-tflops", type=float, help="device peak TFLOP/s, for model-FLOPs utilisation")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        RirBank.build(Path(tmp) / "rirs", RirBankConfig(max_rooms_per_split=1, azimuth_step_deg=30), splits=["train"])
        bank = RirBank.load(Path(tmp) / "rirs", in_memory=True)
        rows = [bench_preset(p, args, bank, device) for p in args.preset or ["tiny", "paper"]]
    print(f"\ndevice={device} bf16={args.bf16} threads={torch.get_num_threads()} "
          f"batch={args.n_single} single + {args.n_mix2} two-source (scl={args.scl})")
    header = ("preset", "samples/step", "clip s", "samples/s", "model-only samples/s", "full/model-only",
              "data wait", "TFLOP/step", "TFLOP/s", "MFU")
    print(" | ".join(header))
    for r in rows:
        print(" | ".join([
            r["preset"], str(r["samples_per_step"]), f"{r['clip_seconds']:g}", f"{r['samples_per_s']:.2f}",
            f"{r['model_only_samples_per_s']:.2f}", f"{r['full_vs_model_only']:.3f}", f"{100 * r['data_wait_share']:.1f} %",
            f"{r['tflops_per_step']:.3f}", f"{r['achieved_tflops']:.3f}", f"{100 * r['mfu']:.1f} %" if "mfu" in r else "–",
        ]))


if __name__ == "__main__":
    main()
