"""Run under ``accelerate launch --num_processes 2 --cpu``: compares the distributed
contrastive loss and gradients with one process holding the whole global batch.

Writes ``{"loss_distributed", "loss_single", "max_grad_diff", "num_params"}`` as JSON to argv[1]
(from the main process).
"""

import json
import sys

import torch
from accelerate import Accelerator

import spatial_clap_hf
from spatial_clap_hf.training import ContrastiveLoss

GLOBAL_BATCH, SAMPLES, TOKENS = 8, 8000, 12


def global_batch():
    g = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(GLOBAL_BATCH, 2, SAMPLES, generator=g)
    ids = torch.randint(3, 500, (GLOBAL_BATCH, TOKENS), generator=g)
    mask = torch.ones_like(ids)
    mask[::3, -4:] = 0
    return audio, ids, mask


def fresh_model():
    torch.manual_seed(0)
    model = spatial_clap_hf.create_model("tiny")
    model.eval()  # deterministic: no dropout, BatchNorm on running statistics
    return model


def main(out_path: str) -> None:
    accelerator = Accelerator(cpu=not torch.accelerator.is_available())
    audio, ids, mask = global_batch()
    n = GLOBAL_BATCH // accelerator.num_processes
    lo = accelerator.process_index * n
    model = accelerator.prepare(fresh_model())
    model.eval()
    out = model(input_ids=ids[lo : lo + n], attention_mask=mask[lo : lo + n], input_values=audio[lo : lo + n])
    loss = ContrastiveLoss()(out.audio_embeds, out.text_embeds, accelerator.unwrap_model(model).logit_scale)
    accelerator.backward(loss)
    grads = {k: p.grad.detach().clone() for k, p in accelerator.unwrap_model(model).named_parameters() if p.grad is not None}

    if accelerator.is_main_process:
        reference = fresh_model()
        ref = reference(input_ids=ids, attention_mask=mask, input_values=audio, return_loss=True)
        ref.loss.backward()
        diffs = [
            (grads[k] - p.grad).abs().max().item()
            for k, p in reference.named_parameters()
            if p.grad is not None
        ]
        missing = [k for k, p in reference.named_parameters() if p.grad is not None and k not in grads]
        with open(out_path, "w") as f:
            json.dump(
                {
                    "world_size": accelerator.num_processes,
                    "loss_distributed": loss.item(),
                    "loss_single": ref.loss.item(),
                    "max_grad_diff": max(diffs),
                    "max_grad": max(p.grad.abs().max().item() for p in reference.parameters() if p.grad is not None),
                    "num_params": len(diffs),
                    "missing": missing,
                },
                f,
            )
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(sys.argv[1])
