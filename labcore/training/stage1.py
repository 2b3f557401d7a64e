"""Stage 1: train the VQGAN tokenizer (``labcore train-vqgan``).

Losses: L1 + L2 reconstruction, codebook + commitment (beta from the model config); optionally a
PatchGAN discriminator (hinge loss, the VQGAN paper's adaptive weight, on from ``disc_start``)
and a VGG perceptual loss when you have VGG16 weights (``vgg_weights``; nothing is downloaded).
Codebook health (``vqgan_losses``): the codebook starts from encoder outputs of real images,
follows the running mean of the outputs assigned to each code (``codebook_update: ema``), codes
unused for ``restart_every`` steps restart at random encoder outputs; usage / perplexity are logged.

``train_vqgan`` is the loop on one page, as stage 2's ``train``: batch -> losses -> step -> codebook
health -> evaluate -> log -> save, the same run folder convention (``labcore.training.runs``) and
the same exact resume (``steps.seed_step``). A run folder holds ``vqgan.yml`` (the course's
``model_param``, the Normalization it trained with, and this run's ``preset`` and ``train``
settings: it is both the tokenizer's config and a ``--config`` for ``train-vqgan``), ``last.pt`` /
``best.pt`` (plain state dicts, the course's format: the latest weights, the best val PSNR),
``train_state.pt`` (everything to resume exactly), ``log.csv``, ``samples/``.

The bundled tokenizer (data/checkpoints/vqgan_emoji64.*: 3.76M parameters, the config's
64-64-64-128 channels) was trained on one GPU (an H200, 2.1 minutes, bf16) with

    labcore train-vqgan --config vqgan_emoji64_wide.yml --steps 2394 --batch-size 128 --lr 1e-3 \
        --warmup-steps 200 --device cuda --eval-every 300

(the yml is data/checkpoints/vqgan_emoji64.yml) and checked with ``labcore eval-vqgan``. The laptop
path is the command's defaults (preset emoji64: the 0.9M-parameter 32-32-32-64 config) on a
2-core CPU, e.g.

    OMP_NUM_THREADS=1 nohup nice -n -5 .venv/bin/python -m labcore train-vqgan --run-dir runs/vqgan_emoji64 \
        --steps 700 --lr 2e-3 --warmup-steps 50 --eval-every 100 --threads 1 > runs/vqgan_emoji64.log 2>&1 &
    # (after an interruption: the same command with --resume)

which took 46 minutes and reached 23.7 dB test PSNR (the previous bundled tokenizer).
``--precision auto`` uses bf16 autocast on CUDA only: on the CPU we measured, bf16 convolutions
were ~15x slower than fp32. On a CPU shared with other jobs, one thread (``--threads 1``) was ~4x
faster per step than two oversubscribed ones.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from tqdm.auto import tqdm

from labcore.data import Normalization, emoji64_dataset, load_normalization
from labcore.dataset_files import find_image_root, list_images, read_image
from labcore.metrics import code_stats
from labcore.paths import EMOJI64_DIR
from labcore.runtime import atomic_save, atomic_write_text, pick_device, seed_everything
from labcore.training.config import VQGANTrainConfig
from labcore.training.evaluate import evaluate_images, save_grid
from labcore.training.precision import autocast, use_bf16
from labcore.training.runs import (STATE_FILE, CSVLog, StopRequested, load_run_state, non_finite, prepare_run_dir,
                                   save_run)
from labcore.training.steps import seed_step, warmup_cosine
from labcore.training.vqgan_losses import (EMACodebook, PatchDiscriminator, VGGPerceptual, adaptive_weight,
                                           init_codebook_from_data, restart_dead_codes)
from labcore.validate import integer
from labcore.vqgan import VQGAN, VQGANConfig

OUTPUTS = (STATE_FILE, "last.pt", "best.pt", "log.csv", "vqgan.yml", "samples")
LOG_FIELDS = ["step", "epoch", "lr", "loss", "l1", "l2", "vq", "perceptual", "g_loss", "d_loss", "disc_factor",
              "usage", "perplexity", "restarted", "val_psnr", "seconds"]


def train_vqgan(run_dir: str | Path, model_cfg: VQGANConfig, cfg: VQGANTrainConfig,
                data_root: str | Path = EMOJI64_DIR, preset: str = "emoji64", resume: bool = False,
                overwrite: bool = False, stop_after: int | None = None, device: str = "auto",
                progress: bool = True) -> dict:
    """Train (or resume) a run in ``run_dir``; returns a summary dict. ``stop_after`` ends this
    invocation once the run reaches that total step (state saved; ``resume`` continues).
    Raises runs.NonFiniteLoss on a NaN loss (train_state.pt then still holds the last good state)."""
    run_dir = Path(run_dir)
    stop_after = None if stop_after is None else integer("stop_after", stop_after, 1)
    device = pick_device(device)                                  # bad settings fail before any file changes
    prepare_run_dir(run_dir, resume, overwrite, OUTPUTS)
    run = Stage1Run(run_dir, model_cfg, cfg, Path(data_root), device, preset, resume, progress)
    stop_at = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = tqdm(total=cfg.steps, initial=run.step, desc="train-vqgan", disable=not progress, dynamic_ncols=True)
    t0, losses, stopped = time.time(), [], False
    with StopRequested() as stop:
        while run.step < stop_at and not stopped:
            gen = seed_step(cfg.seed, run.step)                  # this step's flips and codebook restarts
            x = batch_at(run.train_images, run.step, cfg.batch_size, cfg.seed, gen if cfg.augment else None)
            x = x.to(run.device)                                  # (B,3,64,64)
            out = run.generator_step(x)                           # encode -> quantise -> decode -> losses -> AdamW
            if run.disc is not None and run.step >= cfg.disc_start:
                out["d_loss"] = run.discriminator_step(x, out["decoded"])    # the PatchGAN's hinge loss
            run.step, stopped = run.step + 1, stop.flag
            health = run.codebook_health(out["indices"], x)      # (usage, perplexity, codes restarted)
            evaluated = run.step % cfg.eval_every == 0 or run.step == cfg.steps
            if evaluated:
                run.validate()                                    # val PSNR, a sample grid, best.pt
            run.log_row(out, health, evaluated, time.time() - t0)
            if run.step % cfg.save_every == 0 or run.step == stop_at or stopped:
                run.save()
            losses.append(out["loss"].item())
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.4f}", use=f"{health[0]:.2f}", ppl=f"{health[1]:.0f}",
                            val=f"{run.val_psnr:.2f}")
    bar.close()
    return {"step": run.step, "best_val_psnr": run.best_psnr, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "seconds": time.time() - t0, "out": str(run_dir)}


def batch_at(images: torch.Tensor, step: int, batch_size: int, seed: int,
             gen: torch.Generator | None = None) -> torch.Tensor:
    """Batch ``step`` of a per-epoch shuffle drawn from (seed, epoch): a pure function of the step,
    so a resumed run sees the batches of the run that never stopped; with ``gen``, random
    horizontal flips (the augmentation)."""
    per_epoch = max(1, len(images) // batch_size)
    epoch, i = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    idx = torch.randperm(len(images), generator=g)[i * batch_size:(i + 1) * batch_size]  # (B,)
    x = images[idx]                                                                        # (B,3,64,64)
    if gen is not None:
        flip = torch.rand(len(idx), generator=gen) < 0.5                                   # (B,)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)                             # (B,3,64,64)
    return x


def load_split(split: str, root: Path, limit: int | None = None,
               progress: bool = True) -> tuple[torch.Tensor, Normalization]:
    """All images of a split as one normalised tensor (N,3,64,64); emoji64 fits in memory."""
    if limit is None:
        ds = emoji64_dataset(split, root)
        files, norm = ds.files, ds.normalization
    else:  # a subset: read only its files (tests, smoke runs)
        files, norm = list_images(find_image_root(root) / split)[:limit], load_normalization(split, root)
    to_tensor = norm.transform()
    images = torch.stack([to_tensor(read_image(f))
                          for f in tqdm(files, desc=f"loading {split}", leave=False, disable=not progress)])
    return images, norm  # (N,3,64,64) normalised


def write_vqgan_config(cfg: VQGANConfig, path: Path, normalization: Normalization | None = None,
                       train: VQGANTrainConfig | None = None, preset: str | None = None) -> Path:
    """A course-style yml (``model_param``) plus the Normalization the tokenizer was trained with
    (and, for a run, its preset and train settings, so that it resumes from this file alone)."""
    doc = {"model_param": cfg.to_dict()}
    if normalization is not None:
        doc["normalization"] = {"mean": list(normalization.mean), "std": list(normalization.std)}
    if train is not None:
        doc.update(preset=preset, train=asdict(train))
    return atomic_write_text(yaml.safe_dump(doc, sort_keys=False), path)


class Stage1Run:
    """The objects of one stage-1 run (the VQGAN, its AdamW and schedule, the optional
    discriminator and perceptual loss, the EMA codebook and usage counts, the images, the log)
    and its parts of a step: the generator's and the discriminator's, codebook health, validation."""

    def __init__(self, run_dir: Path, model_cfg: VQGANConfig, cfg: VQGANTrainConfig, data_root: Path,
                 device: torch.device, preset: str, resume: bool, progress: bool = True):
        self.run_dir, self.model_cfg, self.cfg = run_dir, model_cfg, cfg
        self.device = device
        self.bf16 = use_bf16(cfg.precision, self.device, cpu_ok=False)
        seed_everything(cfg.seed)                                          # the initial weights
        self.train_images, train_norm = load_split("train", data_root, cfg.limit, progress)
        self.val_images, self.val_norm = load_split("val", data_root, cfg.val_limit, progress)
        self.model = VQGAN(model_cfg).to(self.device)
        ema_codes = cfg.codebook_update == "ema"       # with the EMA update the codebook is not the optimiser's
        # ... nor has it a gradient: the optimiser's zero_grad would never clear it, so it would grow
        # step after step inside the gradient clip's norm, and restart from none on --resume (#29)
        self.model.codebook.embedding.weight.requires_grad_(not ema_codes)
        trained = [(n, p) for n, p in self.model.named_parameters() if not (ema_codes and "codebook" in n)]
        decay = [p for n, p in trained if p.ndim > 1 and "codebook" not in n]
        no_decay = [p for n, p in trained if p.ndim <= 1 or "codebook" in n]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
        self.sched = warmup_cosine(self.opt, cfg.warmup_steps, cfg.steps)
        self.disc = self.disc_opt = None
        if cfg.disc_start >= 0:
            self.disc = PatchDiscriminator(model_cfg.image_channels, cfg.disc_width).to(self.device)
            self.disc_opt = torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        self.perceptual = VGGPerceptual(cfg.vgg_weights, train_norm).to(self.device) if cfg.vgg_weights else None
        self.usage = torch.zeros(model_cfg.num_codebook_vectors, dtype=torch.long)   # (K,) since the last restart
        self.step, self.best_psnr, self.val_psnr, self.ema = 0, -math.inf, float("nan"), None
        if resume:
            self.resume()
        else:  # the codebook starts at encoder outputs of the first batch
            first = batch_at(self.train_images, 0, cfg.batch_size, cfg.seed).to(self.device)  # (B,3,64,64)
            init_codebook_from_data(self.model, first)
            if ema_codes:
                self.ema = EMACodebook(self.model.codebook.embedding.weight, cfg.ema_decay)
        write_vqgan_config(model_cfg, run_dir / "vqgan.yml", train_norm, cfg, preset)
        self.log = CSVLog(run_dir / "log.csv", LOG_FIELDS, resume_step=self.step if resume else None)

    def resume(self) -> None:
        """Weights, optimizers, schedule, EMA codebook, usage counts, step and best val PSNR of train_state.pt."""
        state = load_run_state(self.run_dir, asdict(self.model_cfg), self.cfg.steps, "vqgan.yml")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.disc is not None and state.get("disc") is not None:
            self.disc.load_state_dict(state["disc"])
            self.disc_opt.load_state_dict(state["disc_optimizer"])
        self.usage, self.step, self.best_psnr = state["usage"], int(state["step"]), float(state["best"]["val_psnr"])
        if self.cfg.codebook_update == "ema":
            self.ema = EMACodebook(self.model.codebook.embedding.weight, self.cfg.ema_decay)
            self.ema.load_state_dict(state["ema"])

    def save(self) -> None:
        """last.pt (the VQGAN's weights) and train_state.pt (everything to resume exactly)."""
        save_run(self.run_dir, self.model.state_dict(), {
            "step": self.step, "total_steps": self.cfg.steps, "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None, "usage": self.usage,
            "disc": self.disc.state_dict() if self.disc is not None else None,
            "disc_optimizer": self.disc_opt.state_dict() if self.disc is not None else None,
            "best": {"val_psnr": self.best_psnr}, "model_config": asdict(self.model_cfg),
            "train_config": asdict(self.cfg)})

    # ------------------------------------------------------------------------- the parts of a step

    def losses(self, x: torch.Tensor) -> dict:
        """Forward pass and every loss term of the generator (encoder, codebook, decoder) on x (B,3,64,64)."""
        cfg, model = self.cfg, self.model
        zero = torch.zeros((), device=self.device)
        with autocast(self.device, self.bf16):
            z = model.quant_conv(model.encoder(x))             # (B,D,16,16) encoder output
            z_q, indices, vq_loss = model.codebook(z)           # straight-through (B,D,16,16), (B,16,16), ()
            decoded = model.decode(z_q).float()                 # (B,3,64,64): model(x), keeping z for the EMA
            l1 = (decoded - x).abs().mean()
            l2 = (decoded - x).pow(2).mean()
            perc = self.perceptual(decoded, x) if self.perceptual is not None else zero
            rec = cfg.l1 * l1 + cfg.l2 * l2 + cfg.perceptual_weight * perc
            g_loss, disc_factor = zero, 0.0
            if self.disc is not None and self.step >= cfg.disc_start:
                g_loss = -self.disc(decoded).float().mean()
                disc_factor = cfg.disc_weight * adaptive_weight(rec, g_loss, model.decoder.model[-1].weight)
            loss = rec + vq_loss + disc_factor * g_loss
        return dict(z=z, indices=indices, decoded=decoded, loss=loss, l1=l1, l2=l2, vq=vq_loss, perceptual=perc,
                    g_loss=g_loss, d_loss=zero, disc_factor=disc_factor)

    def generator_step(self, x: torch.Tensor) -> dict:
        """One AdamW step of the VQGAN (and the EMA codebook update); NonFiniteLoss before any change."""
        out = self.losses(x)
        if not torch.isfinite(out["loss"]):
            raise non_finite("loss", out["loss"].item(), self.step + 1, self.run_dir)
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if not torch.isfinite(grad_norm):
            raise non_finite("gradient norm", grad_norm.item(), self.step + 1, self.run_dir)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(self.model.codebook.embedding.weight, out["z"], out["indices"])
        return out

    def discriminator_step(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Hinge loss of the PatchGAN on real x vs the (detached) reconstruction, one AdamW step."""
        with autocast(self.device, self.bf16):
            d_loss = 0.5 * (F.relu(1 - self.disc(x)).mean() + F.relu(1 + self.disc(decoded.detach())).mean())
        self.disc_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.disc_opt.step()
        return d_loss

    def codebook_health(self, indices: torch.Tensor, x: torch.Tensor) -> tuple[float, float, int]:
        """Count the codes used; every ``restart_every`` steps restart the dead ones.
        Returns (share of codes used, perplexity, codes restarted)."""
        self.usage += torch.bincount(indices.flatten().cpu(), minlength=self.model_cfg.num_codebook_vectors)  # (K,)
        share, perplexity = code_stats(self.usage)
        restarted = 0
        if self.cfg.restart_every and self.step % self.cfg.restart_every == 0:
            restarted = restart_dead_codes(self.model, self.usage, x, self.ema)
            self.usage = torch.zeros_like(self.usage)
        return share, perplexity, restarted

    def validate(self) -> None:
        """Val PSNR, a sample grid, and best.pt (a plain state dict, like the course's VQGAN.pt) when it improved."""
        stats = evaluate_images(self.model, self.val_images, self.val_norm, device=self.device, progress=False)
        self.val_psnr = stats["psnr"]
        save_grid(self.val_norm.denormalize(self.val_images[:16]), stats["recon_examples"],
                  self.run_dir / "samples" / f"step_{self.step:06d}.png")
        if self.val_psnr > self.best_psnr:
            self.best_psnr = self.val_psnr
            atomic_save(self.model.state_dict(), self.run_dir / "best.pt")

    def log_row(self, out: dict, health: tuple[float, float, int], evaluated: bool, seconds: float) -> None:
        """A log.csv row: every loss term, the LR, codebook health, the val PSNR when measured."""
        share, perplexity, restarted = health
        per_epoch = max(1, len(self.train_images) // self.cfg.batch_size)
        terms = {k: f"{out[k].item():.5f}" for k in ("loss", "l1", "l2", "vq", "g_loss", "d_loss")}
        self.log.log(step=self.step, epoch=f"{self.step / per_epoch:.3f}", lr=f"{self.sched.get_last_lr()[0]:.3e}",
                     perceptual=f"{float(out['perceptual']):.5f}", disc_factor=f"{float(out['disc_factor']):.4f}",
                     usage=f"{share:.4f}", perplexity=f"{perplexity:.2f}", restarted=restarted,
                     val_psnr=f"{self.val_psnr:.3f}" if evaluated else "", seconds=f"{seconds:.1f}", **terms)
