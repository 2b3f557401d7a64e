"""Train (``labcore train-vqgan``) and evaluate (``labcore eval-vqgan``) the stage-1 VQGAN.

Losses: L1 + L2 reconstruction, codebook + commitment (beta from the config); optionally a
PatchGAN discriminator (hinge loss, the VQGAN paper's adaptive weight, on after ``--disc-start``)
and a VGG perceptual loss when you have VGG16 weights (``--vgg-weights``; nothing is downloaded).
Codebook health: the codebook starts from encoder outputs of real images, follows the running
mean of the outputs assigned to each code (EMA, ``--codebook-update ema``), codes unused for
``--restart-every`` steps restart at random encoder outputs, and usage / perplexity are logged.

The bundled tokenizer (data/checkpoints/vqgan_emoji64.*: 3.76M parameters, the config's
64-64-64-128 channels) was trained on one GPU (an H200, 2.1 minutes, bf16) with

    labcore train-vqgan --config vqgan_emoji64_wide.yml --steps 2394 --batch-size 128 --lr 1e-3 \
        --warmup 200 --device cuda --eval-every 300

(the yml is data/checkpoints/vqgan_emoji64.yml) and checked with ``labcore eval-vqgan``. The laptop
path is the command's defaults: the small 0.9M-parameter config (32-32-32-64 channels) on a 2-core
CPU, e.g.

    OMP_NUM_THREADS=1 nohup nice -n -5 .venv/bin/python -m labcore train-vqgan --out runs/vqgan_emoji64 \
        --steps 700 --lr 2e-3 --warmup 50 --eval-every 100 --threads 1 > runs/vqgan_emoji64.log 2>&1 &
    # (after an interruption: the same command with --resume)

which took 46 minutes and reached 23.7 dB test PSNR (the previous bundled tokenizer).
bf16 autocast is used on CUDA only by default: on the CPU we measured, bf16 convolutions were
~15x slower than fp32 (``--bf16 on`` forces it). On a CPU shared with other jobs, one thread
(``--threads 1``) was ~4x faster per step than two oversubscribed ones.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from labcore import runtime
from labcore.data import (InpaintingTestSet, Normalization, emoji64_dataset, find_image_root, list_images,
                          load_normalization, read_image)
from labcore.metrics import code_stats, psnr, ssim
from labcore.paths import CHECKPOINT_DIR, EMOJI64_DIR, REPO_ROOT, RESULTS_DIR
from labcore.vqgan import (BUNDLED_CONFIG, BUNDLED_WEIGHTS, VQGAN, VQGANConfig, load_config_normalization,
                           load_vqgan)

# The emoji64 tokenizer: 16x16 tokens for 64x64 images, sized to train in about an hour on 2 CPU cores.
EMOJI64_CONFIG = VQGANConfig(image_channels=3, enc_channels=[32, 32, 32, 64], dec_channels=[32, 32, 64],
                             latent_dim=64, img_resolution=64, latent_resolution=16,
                             num_codebook_vectors=512, beta=0.25, enc_res_blocks=1, dec_res_blocks=2)

LOG_FIELDS = ["step", "epoch", "lr", "loss", "l1", "l2", "vq", "perceptual", "g_loss", "d_loss", "disc_factor",
              "usage", "perplexity", "restarted", "val_psnr", "seconds"]


def write_config(cfg: VQGANConfig, path: Path, normalization: Normalization | None = None) -> Path:
    """A course-style yml (``model_param``) plus the Normalization the tokenizer was trained with."""
    doc = {"model_param": cfg.to_dict()}
    if normalization is not None:
        doc["normalization"] = {"mean": list(normalization.mean), "std": list(normalization.std)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def load_split(split: str, root: Path, limit: int | None = None) -> tuple[torch.Tensor, Normalization]:
    """All images of a split as one normalised tensor (N,3,64,64); emoji64 fits in memory."""
    if limit is None:
        ds = emoji64_dataset(split, root)
        files, norm = ds.files, ds.normalization
    else:  # a subset: read only its files (tests, smoke runs)
        files, norm = list_images(find_image_root(root) / split)[:limit], load_normalization(split, root)
    to_tensor = norm.transform()
    images = torch.stack([to_tensor(read_image(f)) for f in tqdm(files, desc=f"loading {split}", leave=False)])
    return images, norm  # (N,3,64,64) normalised


# ----------------------------------------------------------------------------- optional losses

class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix / taming-transformers' NLayerDiscriminator): a logit per image patch."""

    def __init__(self, channels: int = 3, width: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width * prev, width * mult, 4, stride, 1, bias=False),
                       nn.BatchNorm2d(width * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(width * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)  # (B, 1, h, w) logits


class VGGPerceptual(nn.Module):
    """LPIPS-style distance on VGG16 features (unit-normalised channels, uniform layer weights),
    from a VGG16 state dict you already have (``--vgg-weights``): nothing is downloaded."""

    def __init__(self, weights_path: str, normalization: Normalization):
        super().__init__()
        from torchvision.models import vgg16
        vgg = vgg16()
        vgg.load_state_dict(runtime.load_file(weights_path, what="VGG16 weights"))
        self.features = vgg.features[:30].eval().requires_grad_(False)
        self.taps = {3, 8, 15, 22, 29}  # relu1_2 ... relu5_3
        self.norm = normalization
        imagenet = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        self.imagenet = imagenet

    def forward(self, x, y):
        h = torch.cat([self.imagenet.normalize(self.norm.denormalize(x)), self.imagenet.normalize(self.norm.denormalize(y))])
        loss = 0.0
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                a, b = F.normalize(h, dim=1).chunk(2)
                loss = loss + (a - b).pow(2).sum(1).mean()
        return loss


def adaptive_weight(rec_loss, g_loss, last_layer: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """The VQGAN paper's lambda = |grad rec| / (|grad gan| + 1e-4) at the decoder's last layer."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (rec_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0, max_weight).detach()


# ----------------------------------------------------------------------------- training

def add_train_vqgan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=str(REPO_ROOT / "runs" / "vqgan_emoji64"),
                   help="run folder: last.pt (resume), best.pt (plain state dict, val-selected), vqgan.yml, log.csv, samples/")
    p.add_argument("--config", default=None, help="course-style VQGAN yml (default: the small emoji64 config)")
    p.add_argument("--root", default=str(EMOJI64_DIR), help="dataset root (emoji64 or the course's lab5_dataset)")
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=50, help="LR warm-up steps (then cosine to 0.1x)")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--l1", type=float, default=1.0, help="weight of the L1 reconstruction loss")
    p.add_argument("--l2", type=float, default=1.0, help="weight of the L2 reconstruction loss")
    p.add_argument("--disc-start", type=int, default=-1, help="step at which the PatchGAN starts (-1: no GAN)")
    p.add_argument("--disc-weight", type=float, default=0.1)
    p.add_argument("--disc-width", type=int, default=64, help="channels of the PatchGAN's first layer")
    p.add_argument("--vgg-weights", default=None, help="VGG16 state dict (.pth) for a perceptual loss; off without it")
    p.add_argument("--perceptual-weight", type=float, default=0.1)
    p.add_argument("--codebook-update", choices=["ema", "grad"], default="ema",
                   help="ema: codes follow running means of their encoder outputs; grad: the codebook loss")
    p.add_argument("--ema-decay", type=float, default=0.99)
    p.add_argument("--restart-every", type=int, default=100,
                   help="restart codes unused over this many steps at random encoder outputs (0: never)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True, help="random horizontal flips")
    p.add_argument("--eval-every", type=int, default=200, help="val PSNR, best.pt and a sample grid every N steps")
    p.add_argument("--save-every", type=int, default=50, help="write last.pt every N steps")
    p.add_argument("--limit", type=int, default=None, help="use only the first N train images (tests, smoke runs)")
    p.add_argument("--val-limit", type=int, default=None, help="use only the first N val images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", choices=["auto", "on", "off"], default="auto", help="auto: on for CUDA, off on CPU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    p.add_argument("--stop-after", type=int, default=None,
                   help="leave after this many steps of this invocation (last.pt written; continue with --resume)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _batch(images: torch.Tensor, step: int, batch_size: int, seed: int, augment: bool) -> torch.Tensor:
    """Batch ``step`` of a seeded per-epoch shuffle (a pure function of the step: exact resume)."""
    per_epoch = max(1, len(images) // batch_size)
    epoch, i = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    idx = torch.randperm(len(images), generator=g)[i * batch_size:(i + 1) * batch_size]
    x = images[idx]  # (B,3,64,64)
    if augment:
        flip = torch.rand(len(idx), generator=torch.Generator().manual_seed(seed * 7919 + step + 1)) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    return x


@torch.no_grad()
def init_codebook_from_data(model: VQGAN, images: torch.Tensor) -> None:
    """Data init: the codebook starts as random encoder outputs of real images (no dead codes at step 0)."""
    z = model.quant_conv(model.encoder(images))  # (B, D, h, w)
    z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*h*w, D)
    K = model.config.num_codebook_vectors
    pick = torch.randperm(len(z), device=z.device)[:K]
    if len(pick) < K:  # tiny batches: repeat with noise
        pick = torch.randint(len(z), (K,), device=z.device)
    model.codebook.embedding.weight.copy_(z[pick] + 1e-3 * torch.randn(K, z.shape[1], device=z.device))


@torch.no_grad()
def restart_dead_codes(model: VQGAN, usage: torch.Tensor, images: torch.Tensor,
                       ema: "EMACodebook | None" = None) -> int:
    """Codes unused since the last restart move to random encoder outputs of the current batch."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    z = model.quant_conv(model.encoder(images))  # (B, D, h, w)
    z = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (B*h*w, D)
    pick = torch.randint(len(z), (len(dead),), device=z.device)
    model.codebook.embedding.weight[dead] = z[pick] + 1e-3 * torch.randn(len(dead), z.shape[1], device=z.device)
    if ema is not None:
        ema.reset(model.codebook.embedding.weight, dead)
    return len(dead)


class EMACodebook:
    """VQ-VAE-2's codebook update: each code moves to the running mean of the encoder outputs
    assigned to it (decay ``decay``, Laplace-smoothed counts). Much faster than the gradient of
    the codebook loss, whose Adam steps of ~lr per step cannot follow the encoder early on.
    Its state lives in the training checkpoint; the model keeps the course's plain embedding."""

    def __init__(self, weight: torch.Tensor, decay: float = 0.99, eps: float = 1e-5):
        self.decay, self.eps = decay, eps
        self.cluster_size = torch.ones(weight.shape[0], device=weight.device)  # (K,)
        self.embed_sum = weight.detach().clone()  # (K, D)

    @torch.no_grad()
    def update(self, weight: torch.Tensor, z: torch.Tensor, indices: torch.Tensor) -> None:
        z = z.detach().float().permute(0, 2, 3, 1).reshape(-1, weight.shape[1])  # (N, D)
        idx = indices.flatten()  # (N,)
        counts = torch.bincount(idx, minlength=weight.shape[0]).float()  # (K,)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, idx, z)  # (K, D)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + weight.shape[0] * self.eps) * n  # (K,)
        weight.copy_(self.embed_sum / smoothed.unsqueeze(1))

    @torch.no_grad()
    def reset(self, weight: torch.Tensor, codes: torch.Tensor) -> None:
        """After a dead-code restart: the restarted codes start a fresh running mean."""
        self.cluster_size[codes] = 1.0
        self.embed_sum[codes] = weight[codes]

    def state_dict(self) -> dict:
        return {"cluster_size": self.cluster_size, "embed_sum": self.embed_sum}

    def load_state_dict(self, state: dict) -> None:
        self.cluster_size, self.embed_sum = state["cluster_size"].clone(), state["embed_sum"].clone()


@torch.no_grad()
def evaluate_images(model: VQGAN, images: torch.Tensor, norm: Normalization, batch_size: int = 100,
                    device=torch.device("cpu"), desc: str | None = None) -> dict:
    """PSNR / SSIM in [0,1] pixel space, code usage and perplexity, of encode -> decode_indices."""
    model.eval()
    psnrs, ssims, recons = [], [], []
    counts = torch.zeros(model.config.num_codebook_vectors, dtype=torch.long)
    for i in tqdm(range(0, len(images), batch_size), desc=desc, leave=False, disable=desc is None):
        x = images[i:i + batch_size].to(device)  # (b,3,64,64)
        idx = model.encode_to_indices(x)  # (b,16,16)
        y = model.decode_indices(idx).float()  # (b,3,64,64)
        x01, y01 = norm.denormalize(x.cpu()), norm.denormalize(y.cpu())
        psnrs.append(psnr(y01, x01))
        ssims.append(ssim(y01, x01))
        counts += torch.bincount(idx.flatten().cpu(), minlength=model.config.num_codebook_vectors)
        if len(recons) < 1:
            recons.append(y01[:16])
    usage, perplexity = code_stats(counts)
    return {"psnr": float(torch.cat(psnrs).mean()), "ssim": float(torch.cat(ssims).mean()),
            "codebook_usage": usage, "perplexity": perplexity, "n_images": len(images),
            "recon_examples": recons[0]}


def save_grid(originals01: torch.Tensor, recons01: torch.Tensor, path: Path, n: int = 16) -> Path:
    """Rows of 8: originals, then their reconstructions underneath."""
    n = min(n, len(originals01))
    rows = []
    for i in range(0, n, 8):
        rows += [originals01[i:i + 8], recons01[i:i + 8]]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(torch.cat(rows), nrow=8, padding=2, pad_value=1.0), path)
    return path


def train(args) -> dict:
    """The training loop; returns a summary dict. Raises runtime.NonFiniteLoss on a NaN loss
    (last.pt then still holds the last good state)."""
    out = Path(args.out)
    device = runtime.pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    use_bf16 = device.type == "cuda" if args.bf16 == "auto" else args.bf16 == "on"
    last_path, best_path = out / "last.pt", out / "best.pt"
    if last_path.exists() and not args.resume:
        raise FileExistsError(f"{last_path} exists: pass --resume to continue it, or choose another --out")
    if args.resume and not last_path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {last_path}")

    runtime.seed_everything(args.seed)
    cfg = VQGANConfig.from_yaml(args.config) if args.config else replace(EMOJI64_CONFIG)
    train_images, train_norm = load_split("train", Path(args.root), args.limit)
    val_images, val_norm = load_split("val", Path(args.root), args.val_limit)
    write_config(cfg, out / "vqgan.yml", train_norm)

    model = VQGAN(cfg).to(device)
    # with the EMA update the codebook is not a parameter of the optimiser
    trained = [(n, p) for n, p in model.named_parameters() if not (args.codebook_update == "ema" and "codebook" in n)]
    decay = [p for n, p in trained if p.ndim > 1 and "codebook" not in n]
    no_decay = [p for n, p in trained if p.ndim <= 1 or "codebook" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.99))
    sched = runtime.warmup_cosine(opt, args.warmup, args.steps)
    disc = disc_opt = None
    if args.disc_start >= 0:
        disc = PatchDiscriminator(cfg.image_channels, args.disc_width).to(device)
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=args.lr, betas=(0.5, 0.9))
    perceptual = VGGPerceptual(args.vgg_weights, train_norm).to(device) if args.vgg_weights else None
    usage = torch.zeros(cfg.num_codebook_vectors, dtype=torch.long)
    ema = None
    step, best_psnr, val_psnr = 0, -math.inf, float("nan")

    if args.resume:
        ck = runtime.load_file(last_path, what="training checkpoint")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if disc is not None and "disc" in ck:
            disc.load_state_dict(ck["disc"])
            disc_opt.load_state_dict(ck["disc_optimizer"])
        usage, step, best_psnr = ck["usage"], ck["step"], ck["best_psnr"]
        if args.codebook_update == "ema":
            ema = EMACodebook(model.codebook.embedding.weight, args.ema_decay)
            ema.load_state_dict(ck["ema"])
        runtime.set_rng_state(ck["rng"])
    else:
        init_codebook_from_data(model, _batch(train_images, 0, args.batch_size, args.seed, False).to(device))
        if args.codebook_update == "ema":
            ema = EMACodebook(model.codebook.embedding.weight, args.ema_decay)
    log = runtime.CSVLog(out / "log.csv", LOG_FIELDS, resume_step=step if args.resume else None)

    def save_last():
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "step": step, "rng": runtime.rng_state(), "usage": usage, "best_psnr": best_psnr,
                 "config": cfg.to_dict()}
        if ema is not None:
            state["ema"] = ema.state_dict()
        if disc is not None:
            state.update(disc=disc.state_dict(), disc_optimizer=disc_opt.state_dict())
        runtime.atomic_save(state, last_path)

    per_epoch = max(1, len(train_images) // args.batch_size)
    last_layer = model.decoder.model[-1].weight
    t0, first_loss, last_loss = time.time(), None, None
    stop_at = args.steps if args.stop_after is None else min(args.steps, step + args.stop_after)
    bar = tqdm(total=args.steps, initial=step, desc="train-vqgan", disable=args.quiet, dynamic_ncols=True)
    while step < stop_at:
        model.train()
        x = _batch(train_images, step, args.batch_size, args.seed, args.augment).to(device)  # (B,3,64,64)
        with runtime.autocast(device, use_bf16):
            z = model.quant_conv(model.encoder(x))  # (B,D,16,16) encoder output
            z_q, indices, vq_loss = model.codebook(z)  # straight-through (B,D,16,16), (B,16,16), ()
            decoded = model.decode(z_q)  # (B,3,64,64): the same as model(x), keeping z for the EMA
            decoded = decoded.float()
            l1 = (decoded - x).abs().mean()
            l2 = (decoded - x).pow(2).mean()
            rec = args.l1 * l1 + args.l2 * l2
            perc = perceptual(decoded, x) if perceptual is not None else torch.zeros((), device=device)
            rec = rec + args.perceptual_weight * perc
            g_loss = d_loss = torch.zeros((), device=device)
            disc_factor = 0.0
            if disc is not None and step >= args.disc_start:
                g_loss = -disc(decoded).float().mean()
                disc_factor = args.disc_weight * adaptive_weight(rec, g_loss, last_layer)
            loss = rec + vq_loss + disc_factor * g_loss
        if not torch.isfinite(loss):
            raise runtime.NonFiniteLoss(f"train-vqgan: loss is {loss.item()} at step {step}; stopped without saving, "
                                        f"the last good checkpoint is {last_path}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        if not torch.isfinite(grad_norm):
            raise runtime.NonFiniteLoss(f"train-vqgan: gradient norm is {grad_norm.item()} at step {step}; stopped "
                                        f"without saving, the last good checkpoint is {last_path}")
        opt.step()
        sched.step()
        if ema is not None:
            ema.update(model.codebook.embedding.weight, z, indices)
        if disc is not None and step >= args.disc_start:
            with runtime.autocast(device, use_bf16):  # hinge loss on real vs (detached) fake
                d_loss = 0.5 * (F.relu(1 - disc(x)).mean() + F.relu(1 + disc(decoded.detach())).mean())
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
        usage += torch.bincount(indices.flatten().cpu(), minlength=cfg.num_codebook_vectors)
        step += 1
        restarted = 0
        share, perplexity = code_stats(usage)
        if args.restart_every and step % args.restart_every == 0:
            restarted = restart_dead_codes(model, usage, x, ema)
            usage = torch.zeros_like(usage)
        first_loss = first_loss if first_loss is not None else loss.item()
        last_loss = loss.item()
        if step % args.eval_every == 0 or step == args.steps:
            stats = evaluate_images(model, val_images, val_norm, device=device)
            val_psnr = stats["psnr"]
            save_grid(val_norm.denormalize(val_images[:16]), stats["recon_examples"], out / "samples" / f"step_{step:06d}.png")
            if val_psnr > best_psnr:
                best_psnr = val_psnr
                runtime.atomic_save(model.state_dict(), best_path)  # plain state dict, like the course's VQGAN.pt
        log.log(step=step, epoch=f"{step / per_epoch:.3f}", lr=f"{sched.get_last_lr()[0]:.3e}", loss=f"{loss.item():.5f}",
                l1=f"{l1.item():.5f}", l2=f"{l2.item():.5f}", vq=f"{vq_loss.item():.5f}", perceptual=f"{float(perc):.5f}",
                g_loss=f"{g_loss.item():.5f}", d_loss=f"{d_loss.item():.5f}", disc_factor=f"{float(disc_factor):.4f}",
                usage=f"{share:.4f}", perplexity=f"{perplexity:.2f}", restarted=restarted,
                val_psnr="" if step % args.eval_every and step != args.steps else f"{val_psnr:.3f}",
                seconds=f"{time.time() - t0:.1f}")
        if step % args.save_every == 0 or step == stop_at:
            save_last()
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", use=f"{share:.2f}", ppl=f"{perplexity:.0f}", val=f"{val_psnr:.2f}")
    bar.close()
    return {"step": step, "best_val_psnr": best_psnr, "first_loss": first_loss, "last_loss": last_loss,
            "seconds": time.time() - t0, "out": str(out)}


def run_train_vqgan(args) -> int:
    try:
        summary = train(args)
    except runtime.NonFiniteLoss as err:
        print(f"error: {err}")
        return 1
    print(f"train-vqgan: {summary['step']} steps in {summary['seconds'] / 60:.1f} min, best val PSNR "
          f"{summary['best_val_psnr']:.2f} dB -> {summary['out']}/best.pt (config {summary['out']}/vqgan.yml)")
    return 0


# ----------------------------------------------------------------------------- evaluation

def add_eval_vqgan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=str(BUNDLED_CONFIG), help="VQGAN yml (default: the bundled tokenizer's)")
    p.add_argument("--weights", default=str(BUNDLED_WEIGHTS), help="VQGAN weights: plain state dict or a train-vqgan last.pt")
    p.add_argument("--root", default=str(EMOJI64_DIR), help="dataset root with the test ground truth")
    p.add_argument("--out", default=str(RESULTS_DIR / "vqgan_eval"), help="folder for metrics.json and recon_grid.png")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N test images")
    p.add_argument("--device", default="auto")


def evaluate_test_set(config: str | Path, weights: str | Path, root: str | Path = EMOJI64_DIR,
                      out: str | Path = RESULTS_DIR / "vqgan_eval", batch_size: int = 100,
                      limit: int | None = None, device: str = "auto") -> dict:
    """Reconstruct the test ground truth (normalised like the lab's test split) and write
    OUT/metrics.json + OUT/recon_grid.png; returns the metrics."""
    device = runtime.pick_device(device)
    t0 = time.perf_counter()
    model = load_vqgan(config, weights, device)
    load_seconds = time.perf_counter() - t0
    test = InpaintingTestSet(root)
    n = len(test) if limit is None else min(limit, len(test))
    if test.target(0) is None:
        raise FileNotFoundError(f"{root}: the test set has no ground truth (ground_truth/ or test_gt.csv)")
    images = torch.stack([test.target(i) for i in tqdm(range(n), desc="loading test ground truth", leave=False)])
    stats = evaluate_images(model, images, test.normalization, batch_size, device, desc="eval-vqgan")
    out = Path(out)
    grid = save_grid(test.normalization.denormalize(images[:16]), stats.pop("recon_examples"), out / "recon_grid.png")
    weights = Path(weights)
    metrics = {**stats, "config": str(config), "weights": str(weights),
               "weights_mb": round(weights.stat().st_size / 2 ** 20, 3), "parameters": runtime.count_parameters(model),
               "load_seconds": round(load_seconds, 3), "test_root": str(root), "recon_grid": str(grid),
               "model_param": model.config.to_dict(), "normalization_trained": load_config_normalization(config)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def run_eval_vqgan(args) -> int:
    m = evaluate_test_set(args.config, args.weights, args.root, args.out, args.batch_size, args.limit, args.device)
    print(f"eval-vqgan on {m['n_images']} test images: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, "
          f"codes used {100 * m['codebook_usage']:.1f}%, perplexity {m['perplexity']:.1f}\n"
          f"  {Path(args.out) / 'metrics.json'}, {m['recon_grid']}")
    return 0
