"""Run under ``accelerate launch`` with 2 CPU processes: each process accumulates two micro-batches
with cached embedding gradients; the averaged gradients must equal one process's gradients on the
whole global batch (4 micro-batches). Writes the comparison as JSON to argv[1] (main process)."""

import json
import sys

import torch
from accelerate import Accelerator

import spatial_clap_hf
from spatial_clap_hf.training import ContrastiveLoss
from spatial_clap_hf.training.accumulation import average_gradients, cached_contrastive_backward

MICRO, PER_MICRO, SAMPLES, TOKENS = 4, 2, 8000, 12


def micro_batches():
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(MICRO):
        ids = torch.randint(3, 500, (PER_MICRO, TOKENS), generator=g)
        mask = torch.ones_like(ids)
        mask[0, -4:] = 0
        out.append({"input_values": 0.1 * torch.randn(PER_MICRO, 2, SAMPLES, generator=g), "input_ids": ids,
                    "attention_mask": mask})
    return out


def fresh_model():
    torch.manual_seed(0)
    return spatial_clap_hf.create_model("tiny").eval()


def main(out_path: str) -> None:
    accelerator = Accelerator(cpu=not torch.accelerator.is_available())
    micro = micro_batches()
    per_process = MICRO // accelerator.num_processes
    local = micro[accelerator.process_index * per_process : (accelerator.process_index + 1) * per_process]
    model = accelerator.prepare(fresh_model())
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    with accelerator.no_sync(model):
        loss = cached_contrastive_backward(model, local, ContrastiveLoss(), unwrapped.logit_scale,
                                           backward=accelerator.backward)
    average_gradients([p for p in unwrapped.parameters() if p.requires_grad], accelerator)
    grads = {k: p.grad.detach().clone() for k, p in unwrapped.named_parameters() if p.grad is not None}

    if accelerator.is_main_process:
        reference = fresh_model()
        joined = {key: torch.cat([m[key] for m in micro]) for key in micro[0]}
        ref = reference(**joined, return_loss=True)
        ref.loss.backward()
        diffs = [(grads[k] - p.grad).abs().max().item() for k, p in reference.named_parameters() if p.grad is not None]
        with open(out_path, "w") as f:
            json.dump({
                "world_size": accelerator.num_processes,
                "loss_accumulated": loss.item(),
                "loss_single": ref.loss.item(),
                "max_grad_diff": max(diffs),
                "max_grad": max(p.grad.abs().max().item() for p in reference.parameters() if p.grad is not None),
                "num_params": len(diffs),
            }, f)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1])
