"""Stage 1: train the VQGAN tokenizer (``labcore train-vqgan``).

Losses: L1 + L2 reconstruction, codebook + commitment (beta from the model config); optionally a
PatchGAN discriminator (hinge loss, the VQGAN paper's adaptive weight, on from ``disc_start``)
and a VGG perceptual loss when you have VGG16 weights (``vgg_weights``; nothing is downloaded).
Codebook health (``vqgan_losses``): the codebook starts from encoder outputs of real images,
follows the running mean of the outputs assigned to each code (``codebook_update: ema``), codes
unused for ``restart_every`` steps restart at random encoder outputs; usage / perplexity are logged.

A run folder holds ``vqgan.yml`` (the course's ``model_param``, the Normalization it trained
with, and this run's ``preset`` and ``train`` settings: it is both the tokenizer's config and a
``--config`` for ``train-vqgan``), ``last.pt`` (everything to resume exactly, RNG included),
``best.pt`` (plain state dict, the course's format, the best val PSNR), ``log.csv``, ``samples/``.

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

from labcore import runtime
from labcore.data import (Normalization, emoji64_dataset, find_image_root, list_images, load_normalization,
                          read_image)
from labcore.metrics import code_stats
from labcore.paths import EMOJI64_DIR
from labcore.training.config import VQGANTrainConfig
from labcore.training.evaluate import evaluate_images, save_grid
from labcore.training.precision import use_bf16
from labcore.training.runs import prepare_run_dir
from labcore.training.vqgan_losses import (EMACodebook, PatchDiscriminator, VGGPerceptual, adaptive_weight,
                                           init_codebook_from_data, restart_dead_codes)
from labcore.vqgan import VQGAN, VQGANConfig

OUTPUTS = ("last.pt", "best.pt", "log.csv", "vqgan.yml", "samples")
LOG_FIELDS = ["step", "epoch", "lr", "loss", "l1", "l2", "vq", "perceptual", "g_loss", "d_loss", "disc_factor",
              "usage", "perplexity", "restarted", "val_psnr", "seconds"]


def write_vqgan_config(cfg: VQGANConfig, path: Path, normalization: Normalization | None = None,
                       train: VQGANTrainConfig | None = None, preset: str | None = None) -> Path:
    """A course-style yml (``model_param``) plus the Normalization the tokenizer was trained with
    (and, for a run, its preset and train settings, so that it resumes from this file alone)."""
    doc = {"model_param": cfg.to_dict()}
    if normalization is not None:
        doc["normalization"] = {"mean": list(normalization.mean), "std": list(normalization.std)}
    if train is not None:
        doc.update(preset=preset, train=asdict(train))
    return runtime.atomic_write_text(yaml.safe_dump(doc, sort_keys=False), path)


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


def batch_at(images: torch.Tensor, step: int, batch_size: int, seed: int, augment: bool) -> torch.Tensor:
    """Batch ``step`` of a seeded per-epoch shuffle (a pure function of the step: exact resume)."""
    per_epoch = max(1, len(images) // batch_size)
    epoch, i = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    idx = torch.randperm(len(images), generator=g)[i * batch_size:(i + 1) * batch_size]  # (B,)
    x = images[idx]                                                                        # (B,3,64,64)
    if augment:
        flip = torch.rand(len(idx), generator=torch.Generator().manual_seed(seed * 7919 + step + 1)) < 0.5  # (B,)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)                             # (B,3,64,64)
    return x


def train_vqgan(run_dir: str | Path, model_cfg: VQGANConfig, cfg: VQGANTrainConfig,
                data_root: str | Path = EMOJI64_DIR, preset: str = "emoji64", resume: bool = False,
                overwrite: bool = False, stop_after: int | None = None, device: str = "auto",
                progress: bool = True) -> dict:
    """Train (or resume) a run in ``run_dir``; returns a summary dict. ``stop_after`` ends this
    invocation once the run reaches that total step (last.pt written; ``resume`` continues).
    Raises runtime.NonFiniteLoss on a NaN loss (last.pt then still holds the last good state)."""
    run_dir = Path(run_dir)
    prepare_run_dir(run_dir, "last.pt", OUTPUTS, resume, overwrite)
    trainer = Stage1Trainer(run_dir, model_cfg, cfg, Path(data_root), device, preset)
    trainer.start(resume)
    return trainer.fit(stop_after, progress)


class Stage1Trainer:
    """One stage-1 run: the VQGAN, its AdamW and schedule, the optional discriminator and
    perceptual loss, the EMA codebook and usage counts; ``fit`` runs the loop."""

    def __init__(self, run_dir: Path, model_cfg: VQGANConfig, cfg: VQGANTrainConfig, data_root: Path,
                 device: str, preset: str):
        self.run_dir, self.model_cfg, self.cfg = run_dir, model_cfg, cfg
        self.device = runtime.pick_device(device)
        self.bf16 = use_bf16(cfg.precision, self.device, cpu_ok=False)
        self.last_path, self.best_path = run_dir / "last.pt", run_dir / "best.pt"
        runtime.seed_everything(cfg.seed)
        self.train_images, train_norm = load_split("train", data_root, cfg.limit)
        self.val_images, self.val_norm = load_split("val", data_root, cfg.val_limit)
        write_vqgan_config(model_cfg, run_dir / "vqgan.yml", train_norm, cfg, preset)
        self.model = VQGAN(model_cfg).to(self.device)
        # with the EMA update the codebook is not a parameter of the optimiser
        ema_codes = cfg.codebook_update == "ema"
        trained = [(n, p) for n, p in self.model.named_parameters() if not (ema_codes and "codebook" in n)]
        decay = [p for n, p in trained if p.ndim > 1 and "codebook" not in n]
        no_decay = [p for n, p in trained if p.ndim <= 1 or "codebook" in n]
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.99))
        self.sched = runtime.warmup_cosine(self.opt, cfg.warmup_steps, cfg.steps)
        self.disc = self.disc_opt = None
        if cfg.disc_start >= 0:
            self.disc = PatchDiscriminator(model_cfg.image_channels, cfg.disc_width).to(self.device)
            self.disc_opt = torch.optim.AdamW(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        self.perceptual = VGGPerceptual(cfg.vgg_weights, train_norm).to(self.device) if cfg.vgg_weights else None
        self.usage = torch.zeros(model_cfg.num_codebook_vectors, dtype=torch.long)   # (K,) since the last restart
        self.ema = None
        self.step, self.best_psnr, self.val_psnr = 0, -math.inf, float("nan")

    def resume(self) -> None:
        """Everything of last.pt, RNG state included (same model and step count only)."""
        ck = runtime.load_file(self.last_path, what="training checkpoint")
        if ck.get("config") != self.model_cfg.to_dict():
            raise ValueError(f"{self.last_path}: the run's model config {ck.get('config')} differs from "
                             f"{self.model_cfg.to_dict()}; resume with the run's own vqgan.yml")
        planned = (ck.get("train_config") or {}).get("steps", self.cfg.steps)
        if planned != self.cfg.steps:
            raise ValueError(f"{self.last_path}: the run was planned for {planned} steps, not --steps {self.cfg.steps}")
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        if self.disc is not None and "disc" in ck:
            self.disc.load_state_dict(ck["disc"])
            self.disc_opt.load_state_dict(ck["disc_optimizer"])
        self.usage, self.step, self.best_psnr = ck["usage"], ck["step"], ck["best_psnr"]
        if self.cfg.codebook_update == "ema":
            self.ema = EMACodebook(self.model.codebook.embedding.weight, self.cfg.ema_decay)
            self.ema.load_state_dict(ck["ema"])
        runtime.set_rng_state(ck["rng"])

    def start(self, resume: bool) -> None:
        """Resume, or start the codebook at encoder outputs of the first batch; open log.csv."""
        cfg = self.cfg
        if resume:
            self.resume()
        else:
            first = batch_at(self.train_images, 0, cfg.batch_size, cfg.seed, False).to(self.device)  # (B,3,64,64)
            init_codebook_from_data(self.model, first)
            if cfg.codebook_update == "ema":
                self.ema = EMACodebook(self.model.codebook.embedding.weight, cfg.ema_decay)
        self.log = runtime.CSVLog(self.run_dir / "log.csv", LOG_FIELDS, resume_step=self.step if resume else None)

    def save_last(self) -> None:
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                 "scheduler": self.sched.state_dict(), "step": self.step, "rng": runtime.rng_state(),
                 "usage": self.usage, "best_psnr": self.best_psnr, "config": self.model_cfg.to_dict(),
                 "train_config": asdict(self.cfg)}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.disc is not None:
            state.update(disc=self.disc.state_dict(), disc_optimizer=self.disc_opt.state_dict())
        runtime.atomic_save(state, self.last_path)

    # ------------------------------------------------------------------------- one step

    def losses(self, x: torch.Tensor) -> dict:
        """Forward pass and every loss term of the generator (encoder, codebook, decoder) on x (B,3,64,64)."""
        cfg, model = self.cfg, self.model
        zero = torch.zeros((), device=self.device)
        with runtime.autocast(self.device, self.bf16):
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
        where = f"at step {self.step}; stopped without saving, the last good checkpoint is {self.last_path}"
        if not torch.isfinite(out["loss"]):
            raise runtime.NonFiniteLoss(f"loss is {out['loss'].item()} {where}")
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if not torch.isfinite(grad_norm):
            raise runtime.NonFiniteLoss(f"gradient norm is {grad_norm.item()} {where}")
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(self.model.codebook.embedding.weight, out["z"], out["indices"])
        return out

    def discriminator_step(self, x: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
        """Hinge loss of the PatchGAN on real x vs the (detached) reconstruction, one AdamW step."""
        with runtime.autocast(self.device, self.bf16):
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
        stats = evaluate_images(self.model, self.val_images, self.val_norm, device=self.device)
        self.val_psnr = stats["psnr"]
        save_grid(self.val_norm.denormalize(self.val_images[:16]), stats["recon_examples"],
                  self.run_dir / "samples" / f"step_{self.step:06d}.png")
        if self.val_psnr > self.best_psnr:
            self.best_psnr = self.val_psnr
            runtime.atomic_save(self.model.state_dict(), self.best_path)

    def train_step(self) -> dict:
        """One step: generator, discriminator, codebook health, validation when due; a log.csv row."""
        cfg = self.cfg
        self.model.train()
        x = batch_at(self.train_images, self.step, cfg.batch_size, cfg.seed, cfg.augment).to(self.device)  # (B,3,64,64)
        out = self.generator_step(x)
        if self.disc is not None and self.step >= cfg.disc_start:
            out["d_loss"] = self.discriminator_step(x, out["decoded"])
        self.step += 1
        share, perplexity, restarted = self.codebook_health(out["indices"], x)
        evaluated = self.step % cfg.eval_every == 0 or self.step == cfg.steps
        if evaluated:
            self.validate()
        per_epoch = max(1, len(self.train_images) // cfg.batch_size)
        terms = {k: f"{out[k].item():.5f}" for k in ("loss", "l1", "l2", "vq", "g_loss", "d_loss")}
        self.log.log(step=self.step, epoch=f"{self.step / per_epoch:.3f}", lr=f"{self.sched.get_last_lr()[0]:.3e}",
                     perceptual=f"{float(out['perceptual']):.5f}", disc_factor=f"{float(out['disc_factor']):.4f}",
                     usage=f"{share:.4f}", perplexity=f"{perplexity:.2f}", restarted=restarted,
                     val_psnr=f"{self.val_psnr:.3f}" if evaluated else "", seconds=f"{time.time() - self.t0:.1f}",
                     **terms)
        return dict(loss=out["loss"].item(), use=share, ppl=perplexity)

    def fit(self, stop_after: int | None = None, progress: bool = True) -> dict:
        """Steps until ``cfg.steps`` or the total step ``stop_after``; last.pt every ``save_every``
        steps and at the end."""
        cfg = self.cfg
        stop_at = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
        self.t0, first_loss, last_loss = time.time(), None, None
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train-vqgan", disable=not progress, dynamic_ncols=True)
        while self.step < stop_at:
            shown = self.train_step()
            first_loss = first_loss if first_loss is not None else shown["loss"]
            last_loss = shown["loss"]
            if self.step % cfg.save_every == 0 or self.step == stop_at:
                self.save_last()
            bar.update(1)
            bar.set_postfix(loss=f"{shown['loss']:.4f}", use=f"{shown['use']:.2f}", ppl=f"{shown['ppl']:.0f}",
                            val=f"{self.val_psnr:.2f}")
        bar.close()
        return {"step": self.step, "best_val_psnr": self.best_psnr, "first_loss": first_loss, "last_loss": last_loss,
                "seconds": time.time() - self.t0, "out": str(self.run_dir)}
