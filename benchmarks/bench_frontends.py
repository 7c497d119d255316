"""Cost of the audio tower's front parts on this machine, each against its plain baseline.

Prints, from one run (times per batch, ratios baseline / ours):
  1. the SELDnet conv blocks: conv → BatchNorm → ReLU → max-pool in that order (baseline) vs
     ``SeldConvBlock`` (max-pool before the ReLU; eval-mode BatchNorm folded into the conv),
     in eval mode (a frozen encoder) and as a training step (forward + backward);
  2. the source tower's CLAP log-mel (``SourceFrontend``) with a float64 STFT (baseline, as
     ``ClapFeatureExtractor``) vs float32 (``mel_float64=False``);
  3. the resampling to the source tower's rate: the polyphase filter as a one-channel strided
     ``conv1d`` (baseline) vs ``SincResampler``'s banded matrix product.

Run:  python benchmarks/bench_frontends.py [--preset tiny | --quickstart] [--batch 40 --seconds 1 --repeats 10]
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch

from spatial_clap_hf import SeldNetModel, get_config
from spatial_clap_hf.models.spatial_clap.frontend_spatial_clap import SincResampler, SourceFrontend
from spatial_clap_hf.quickstart import load_recipe

from _timing import median_seconds


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--quickstart", action="store_true", help="the quickstart's model (tiny preset + its overrides)")
    parser.add_argument("--batch", type=int, default=40, help="clips per batch")
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length in seconds")
    parser.add_argument("--repeats", type=int, default=10)
    return parser.parse_args()


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    return 1000 * median_seconds(fn, repeats)


def plain_blocks(model: SeldNetModel, features: torch.Tensor) -> torch.Tensor:
    hidden = features
    for block in model.conv_blocks:
        hidden = block.dropout(block.pool(block.activation(block.norm(block.conv(hidden)))))
    return hidden


def our_blocks(model: SeldNetModel, features: torch.Tensor) -> torch.Tensor:
    hidden = features
    for block in model.conv_blocks:
        hidden = block(hidden)
    return hidden


def conv1d_resample(resampler: SincResampler, waveforms: torch.Tensor) -> torch.Tensor:
    """The same polyphase filter as a one-channel strided convolution: (N, samples) → (N, frames)."""
    padded = torch.nn.functional.pad(waveforms, (resampler.width, resampler.width + resampler.orig))
    out = torch.nn.functional.conv1d(padded[:, None], resampler.kernel, stride=resampler.orig)
    return out.transpose(1, 2).reshape(waveforms.shape[0], -1)[:, : resampler.output_length(waveforms.shape[-1])]


def report(name: str, baseline_ms: float, ours_ms: float) -> None:
    print(f"{name:<38} baseline {baseline_ms:8.1f} ms   ours {ours_ms:8.1f} ms   ratio {baseline_ms / ours_ms:5.2f}x")


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    model_values = load_recipe().stage("seld_scl").values["model"] if args.quickstart else {}
    overrides = dict(model_values.get("overrides", {}))
    overrides.pop("mel_float64", None)  # both precisions are timed below
    preset = model_values.get("preset", args.preset)
    config = get_config(preset, max_length_s=args.seconds, **overrides)
    samples = int(args.seconds * config.sample_rate)
    waveforms = torch.randn(args.batch, config.spatial_config.num_channels, samples)
    print(f"{'quickstart model' if args.quickstart else preset + ' preset'}, {args.batch} clips of {args.seconds} s, {torch.get_num_threads()} threads")

    model = SeldNetModel(config.spatial_config)
    features = model.frontend(waveforms)
    if config.spatial_config.channels_last:
        features = features.contiguous(memory_format=torch.channels_last)
    model.eval()
    with torch.no_grad():
        base = median_ms(lambda: plain_blocks(model, features), args.repeats)
        ours = median_ms(lambda: our_blocks(model, features), args.repeats)
    report("SELDnet conv blocks, eval", base, ours)

    model.train()

    def step(blocks: Callable[[SeldNetModel, torch.Tensor], torch.Tensor]) -> None:
        model.zero_grad(set_to_none=True)
        blocks(model, features).sum().backward()

    report(
        "SELDnet conv blocks, train fwd+bwd",
        median_ms(lambda: step(plain_blocks), args.repeats),
        median_ms(lambda: step(our_blocks), args.repeats),
    )

    times = {}
    for float64 in (True, False):
        frontend = SourceFrontend.from_config(get_config(preset, max_length_s=args.seconds, mel_float64=float64, **overrides))
        with torch.no_grad():
            times[float64] = median_ms(lambda: frontend(waveforms), args.repeats)
    report("source log-mel, float64 vs float32", times[True], times[False])

    resampler = SincResampler(config.sample_rate, config.source_sample_rate)
    mono = waveforms.mean(dim=1)
    torch.testing.assert_close(resampler(mono), conv1d_resample(resampler, mono), rtol=0, atol=1e-5)
    with torch.no_grad():
        report(
            f"resampling {config.sample_rate} -> {config.source_sample_rate} Hz",
            median_ms(lambda: conv1d_resample(resampler, mono), args.repeats),
            median_ms(lambda: resampler(mono), args.repeats),
        )


if __name__ == "__main__":
    main()
