"""Peak memory of a Spatial CLAP training step with and without gradient checkpointing (CPU).

One training step of a preset (random weights): forward on a batch of stereo clips and their
captions with the contrastive loss, backward, AdamW step. Each variant runs once, in its own
fresh process, since the process's peak resident memory (``ru_maxrss``) only ever grows: the
baseline (plain backward) and gradient checkpointing (HTS-AT stages, SELDnet conv blocks and
GRU, text layers recomputed in the backward pass) are measured in the same run of this script.
It prints, per variant, the resident memory before the step (weights and inputs), the peak
after forward + backward (activations, the recomputation's transients, gradients) and after the
optimizer step (AdamW's two moments per parameter), the step's CPU time (threads summed) and
wall time, and the ratios checkpointing / baseline.

    python benchmarks/bench_gradient_checkpointing.py                  # paper preset, 4 clips of 10 s
    python benchmarks/bench_gradient_checkpointing.py --preset tiny --batch 8 --seconds 4
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CAPTIONS = [
    "A dog is barking on the left side.",
    "A man is speaking in front.",
    "Rain falls on a tin roof in the front-right.",
    "A car engine idles on the right side.",
    "Birds chirp in the front-left. A door slams shut on the right side.",
    "Water runs from a tap on the left side.",
    "A woman laughs on the right side. A bell rings in front.",
    "A siren wails in the front-left.",
]
VARIANTS = ("baseline", "checkpointing")


def _resident_bytes() -> int:
    """Current resident set size of this process in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_variant(args: argparse.Namespace) -> dict:
    """One training step in this process; returns memory in bytes and time in seconds."""
    import gc
    import warnings

    import torch

    from spatial_clap_hf import create_model, train_caption_tokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.preset).train()
    if args.variant == "checkpointing":
        with warnings.catch_warnings():  # transformers 5.x: activation_checkpointing_enable, same method
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable()
    vocab = min(1000, model.config.text_config.vocab_size)
    tokenizer = train_caption_tokenizer(CAPTIONS * 4, vocab_size=vocab, model_max_length=64)
    captions = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.batch)]
    tokens = tokenizer(captions, padding=True, return_tensors="pt")
    generator = torch.Generator().manual_seed(0)
    samples = int(round(args.seconds * model.config.sample_rate))
    waveforms = 0.1 * torch.randn(args.batch, 2, samples, generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    gc.collect()
    before, peak_before = _resident_bytes(), _peak_bytes()
    start, cpu_start = time.perf_counter(), time.process_time()
    out = model(
        input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"],
        input_values=waveforms,
        return_loss=True,
    )
    out.loss.backward()
    forward_backward_peak = _peak_bytes()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "variant": args.variant,
        "before": before,
        "peak_before": peak_before,
        "forward_backward_peak": forward_backward_peak,
        "step_peak": _peak_bytes(),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "loss": out.loss.item(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper", help="model preset (default: paper)")
    parser.add_argument("--batch", type=int, default=4, help="clips (and captions) per step (default: 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length in s (default: 10)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # set for the child processes
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return

    results = {}
    for variant in VARIANTS:
        options = ["--preset", args.preset, "--batch", str(args.batch), "--seconds", str(args.seconds)]
        command = [sys.executable, __file__, "--variant", variant, "--threads", str(args.threads), *options]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])

    base, ckpt = results["baseline"], results["checkpointing"]
    print(
        f"preset {args.preset} ({base['parameters'] / 1e6:.1f} M parameters), {args.batch} stereo clips of "
        f"{args.seconds:g} s with their captions, CPU, {args.threads} thread(s); one step per variant, each in "
        "a fresh process"
    )
    header = ("variant", "before step", "peak fwd+bwd", "peak step", "fwd+bwd-before", "step-before", "CPU time")
    print("{:<14}{:>13}{:>14}{:>12}{:>16}{:>13}{:>10}".format(*header))
    for r in (base, ckpt):
        print(
            f"{r['variant']:<14}{_gib(r['before']):>13}{_gib(r['forward_backward_peak']):>14}"
            f"{_gib(r['step_peak']):>12}{_gib(r['forward_backward_peak'] - r['before']):>16}"
            f"{_gib(r['step_peak'] - r['before']):>13}{r['cpu_seconds']:>9.1f}s"
        )

    def ratio(key: str, minus_before: bool = False) -> float:
        value = lambda r: r[key] - (r["before"] if minus_before else 0)  # noqa: E731
        return value(ckpt) / value(base)

    print(
        f"ratio checkpointing / baseline: peak step {ratio('step_peak'):.2f}, fwd+bwd-before "
        f"{ratio('forward_backward_peak', True):.2f}, step-before {ratio('step_peak', True):.2f}, "
        f"CPU time {ratio('cpu_seconds'):.2f} (wall {ratio('seconds'):.2f})"
    )
    print(f"losses: baseline {base['loss']:.6f}, checkpointing {ckpt['loss']:.6f}")
    for r in (base, ckpt):
        if r["forward_backward_peak"] <= r["peak_before"]:  # ru_maxrss is the process's peak since its start
            print(f"note: {r['variant']}: the step stayed below the peak reached before it; its peak is an upper bound")


if __name__ == "__main__":
    main()
