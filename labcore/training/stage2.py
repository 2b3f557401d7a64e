"""Stage 2: masked visual token modelling (MVTM) of the bidirectional transformer on cached tokens.

``train`` runs (or resumes) a run in a folder; ``Stage2Trainer`` holds the run's objects and
splits the loop into short steps: set up, resume, one optimizer step (gradient accumulation over
micro-batches), a log.csv row, the training-state save, validation, an epoch, the loop.

Everything of a run goes to ``runs/<name>/``: ``config.yml`` (the course's ``model_param`` form
plus a ``train`` section), ``last.pt`` / ``best.pt`` (transformer-only state dicts, the course's
format; EMA weights when EMA is on), ``train_state.pt`` (optimizer, schedule, EMA, step: exact
resume), ``log.csv`` (loss, masked-token accuracy, LR), ``val.csv`` and ``metrics.json``
(validation loss and masked-token accuracy at mask ratios 0.25 / 0.5 / 0.75, fixed masks).

Exact resume: the randomness of a step depends only on (seed, step, rank), the data order only
on (seed, epoch), so a run stopped and resumed logs the same numbers as one that never stopped.
"""

from __future__ import annotations

import json
import math
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from labcore import maskgit
from labcore.runtime import (CSVLog, NonFiniteLoss, atomic_save, atomic_write_text, autocast, count_parameters,
                             load_file, pick_device, seed_everything, warmup_cosine)
from labcore.schedules import gamma
from labcore.training.config import TrainConfig, tokenizer_codebook_size
from labcore.training.ddp import DDP, all_agree, check_ranks_in_sync, process_group
from labcore.training.evaluate import VAL_RATIOS, evaluate
from labcore.training.precision import use_bf16
from labcore.training.runs import StopRequested, prepare_run_dir
from labcore.training.tokens import load_tokens
from labcore.transformer import BidirectionalTransformer, TransformerConfig

OUTPUTS = ("train_state.pt", "last.pt", "best.pt", "log.csv", "val.csv", "metrics.json")
LOG_FIELDS = ["step", "epoch", "loss", "accuracy", "mask_ratio", "lr", "grad_norm", "tokens_per_s", "elapsed_s"]
VAL_FIELDS = ["step", "epoch", "loss", "accuracy"] + [f"{m}@{r}" for r in VAL_RATIOS for m in ("loss", "accuracy")]


@dataclass
class RunResult:
    run_dir: Path
    step: int
    total_steps: int
    epoch: int
    metrics: dict = field(default_factory=dict)      # last validation
    best: dict = field(default_factory=dict)         # best validation
    steps_per_s: float = 0.0
    tokens_per_s: float = 0.0
    stopped_early: bool = False


def train(run_dir: str | Path, model_dict: dict, cfg: TrainConfig, tokens_path: str | Path,
          preset: str = "emoji64", resume: bool = False, overwrite: bool = False, device: str = "auto",
          stop_after: int | None = None, progress: bool = True) -> RunResult:
    """Train (or resume) a run in ``run_dir``. ``stop_after`` ends this invocation once the run
    reaches that total optimizer step (state saved; ``resume`` continues) without changing the
    schedule. Under torchrun every process calls this; rank 0 writes the files."""
    run_dir = Path(run_dir)
    with process_group(pick_device(device), device) as ddp:
        if ddp.main:
            prepare_run_dir(run_dir, "train_state.pt", OUTPUTS, resume, overwrite)
        ddp.barrier()
        trainer = Stage2Trainer(run_dir, model_dict, cfg, tokens_path, preset, ddp, progress)
        trainer.start(resume)
        return trainer.fit(stop_after)


def load_run_tokens(tokens_path: str | Path, model_dict: dict, cfg: TrainConfig, main: bool):
    """(train, train_flip or None, val or None, TransformerConfig): the tokens and a model config
    whose K matches the tokenizer that made them."""
    data = load_tokens(tokens_path)
    train_tokens, flip_tokens, val_tokens = data["train"], data.get("train_flip"), data.get("val")
    if cfg.flip and flip_tokens is None and main:
        print(f"note: {tokens_path} has no flipped tokens; training without the flip augmentation")
    K = model_dict.get("num_codebook_vectors") or data.get("num_codebook_vectors") or tokenizer_codebook_size()
    if K is None:
        raise ValueError("cannot tell the codebook size K: set model num_codebook_vectors in the config, or use "
                         "a tokens file made by `labcore train --make-tokens` (it records K)")
    if data.get("num_codebook_vectors") and int(data["num_codebook_vectors"]) != int(K):
        raise ValueError(f"config num_codebook_vectors={K} but the tokens in {tokens_path} come from a tokenizer "
                         f"with K={data['num_codebook_vectors']}")
    top = max(int(t.max()) for t in (train_tokens, flip_tokens, val_tokens) if t is not None)
    if top >= K:
        raise ValueError(f"tokens file {tokens_path} has token id {top} >= K={K} (the mask token id)")
    model_cfg = TransformerConfig(**{**model_dict, "num_codebook_vectors": int(K),
                                     "num_image_tokens": train_tokens.shape[1]})
    return train_tokens, flip_tokens, val_tokens, model_cfg


def write_run_config(path: Path, preset: str, model_cfg: TransformerConfig, train_cfg: TrainConfig,
                     tokens: str) -> None:
    """config.yml: the course's form (model_param.Transformer_param) + labcore's train section.
    It doubles as the transformer's config (``load_transformer(best.pt, config.yml)``)."""
    doc = model_cfg.to_course_dict()
    doc["model_param"]["gamma_type"] = train_cfg.schedule
    doc.update(preset=preset, tokens=str(tokens), train={**asdict(train_cfg), "betas": list(train_cfg.betas)})
    atomic_write_text(yaml.safe_dump(doc, sort_keys=False), path)


class _Window:
    """Sums of the logged figures since the last log.csv row (a row shows their means)."""

    def __init__(self):
        self.reset(time.perf_counter())

    def reset(self, now: float) -> None:
        self.sums, self.n, self.t = dict.fromkeys(("loss", "accuracy", "mask_ratio", "grad_norm"), 0.0), 0, now

    def add(self, stats: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.n += 1
        for k, v in zip(("loss", "accuracy", "mask_ratio"), stats.tolist()):
            self.sums[k] += v
        self.sums["grad_norm"] += float(grad_norm)

    def means(self) -> dict:
        return {k: v / self.n for k, v in self.sums.items()}


class Stage2Trainer:
    """One stage-2 run: model, AdamW, warm-up + cosine schedule, optional EMA of the weights,
    the cached tokens, the logs; ``fit`` runs the loop."""

    def __init__(self, run_dir: Path, model_dict: dict, cfg: TrainConfig, tokens_path: str | Path,
                 preset: str, ddp: DDP, progress: bool = True):
        self.run_dir, self.cfg, self.preset, self.ddp, self.progress = run_dir, cfg, preset, ddp, progress
        self.tokens_path, self.state_path = tokens_path, run_dir / "train_state.pt"
        self.train_tokens, self.flip_tokens, self.val_tokens, self.model_cfg = load_run_tokens(
            tokens_path, model_dict, cfg, ddp.main)
        seed_everything(cfg.seed)
        self.model = BidirectionalTransformer(self.model_cfg).to(ddp.device)
        self.optimizer = torch.optim.AdamW(self.model.param_groups(cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
        per_rank = len(self.train_tokens) // ddp.world
        self.steps_per_epoch = per_rank // (cfg.batch_size * cfg.grad_accum)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.train_tokens)} training samples are fewer than one step "
                             f"(batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x {ddp.world} processes)")
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.scheduler = warmup_cosine(self.optimizer, cfg.warmup_steps, self.total_steps, cfg.min_lr_factor)
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) \
            if cfg.ema > 0 and ddp.main else None
        self.eval_model = self.ema.module if self.ema is not None else self.model
        self.bf16 = use_bf16(cfg.precision, ddp.device)
        self.step, self.best = 0, {}

    def resume(self) -> None:
        """Load the optimizer, schedule, EMA and step of the saved state (same model and plan only)."""
        state = load_file(self.state_path, "training state")
        saved = state.get("model_config", {})
        if saved != asdict(self.model_cfg):
            raise ValueError(f"{self.state_path}: the run's model config {saved} differs from {asdict(self.model_cfg)}")
        if int(state.get("total_steps", self.total_steps)) != self.total_steps:
            raise ValueError(f"{self.state_path}: the run was planned for {state['total_steps']} steps, these "
                             f"settings give {self.total_steps}; resume with the run's own config.yml")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.best = int(state["step"]), dict(state.get("best") or {})

    def start(self, resume: bool) -> None:
        """Resume if asked, write config.yml, wrap the model for DDP, open the logs, say what runs."""
        cfg, ddp = self.cfg, self.ddp
        if resume:
            self.resume()
        if ddp.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_run_config(self.run_dir / "config.yml", self.preset, self.model_cfg, cfg, str(self.tokens_path))
        self.net = DistributedDataParallel(self.model, device_ids=[ddp.device.index] if ddp.device.type == "cuda"
                                           else None) if ddp.distributed else self.model
        self.gamma_fn = gamma(cfg.schedule)
        resume_step = self.step if resume else None
        self.log = CSVLog(self.run_dir / "log.csv", LOG_FIELDS, resume_step) if ddp.main else None
        self.val_log = CSVLog(self.run_dir / "val.csv", VAL_FIELDS, resume_step) if ddp.main else None
        self.sampler = DistributedSampler(range(len(self.train_tokens)), num_replicas=ddp.world, rank=ddp.rank,
                                          shuffle=True, seed=cfg.seed, drop_last=True)
        self.tokens_per_step = cfg.batch_size * cfg.grad_accum * ddp.world * self.train_tokens.shape[1]
        if ddp.main:
            n_val = 0 if self.val_tokens is None else len(self.val_tokens)
            print(f"labcore train: {self.run_dir}  preset {self.preset}  {count_parameters(self.model):,} parameters  "
                  f"K={self.model_cfg.num_codebook_vectors}  device {ddp.device}"
                  f"{f' x{ddp.world}' if ddp.distributed else ''}  {'bf16 autocast' if self.bf16 else 'fp32'}  "
                  f"{len(self.train_tokens)} train / {n_val} val  {self.steps_per_epoch} steps/epoch, "
                  f"{self.total_steps} steps" + (f", resuming at step {self.step}" if self.step else ""))

    # ------------------------------------------------------------------------- saving and validation

    def save_state(self, epoch_done: int) -> None:
        """last.pt (the weights, EMA ones when on) and train_state.pt (everything to resume exactly)."""
        if not self.ddp.main:
            return
        cfg = self.cfg
        atomic_save(self.eval_model.state_dict(), self.run_dir / "last.pt")
        atomic_save({"step": self.step, "epoch": epoch_done, "model": self.model.state_dict(),
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "ema": self.ema.state_dict() if self.ema is not None else None, "best": self.best,
                     "model_config": asdict(self.model_cfg), "train_config": {**asdict(cfg), "betas": list(cfg.betas)},
                     "total_steps": self.total_steps}, self.state_path)

    def validate(self, epoch: int) -> dict:
        """Validation at the fixed mask ratios: val.csv, metrics.json, and best.pt when it improved."""
        if not self.ddp.main or self.val_tokens is None:
            return {}
        metrics = evaluate(self.eval_model, self.val_tokens, self.model_cfg.mask_token_id,
                           batch_size=self.cfg.val_batch_size, bf16=self.bf16)
        self.val_log.log(step=self.step, epoch=epoch, **metrics)
        if not self.best or metrics["loss"] < self.best["loss"]:
            self.best = {**metrics, "step": self.step, "epoch": epoch}
            atomic_save(self.eval_model.state_dict(), self.run_dir / "best.pt")
        summary = {"last": {**metrics, "step": self.step, "epoch": epoch}, "best": self.best,
                   "parameters": count_parameters(self.model), "preset": self.preset}
        atomic_write_text(json.dumps(summary, indent=2), self.run_dir / "metrics.json")
        print(f"epoch {epoch}  step {self.step}  val loss {metrics['loss']:.4f}  masked-token accuracy "
              + "  ".join(f"{r}: {metrics[f'accuracy@{r}']:.3f}" for r in VAL_RATIOS))
        return metrics

    # ------------------------------------------------------------------------- one step

    def epoch_order(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's sample ids of ``epoch`` and, with the flip augmentation, which samples use
        their mirror image's tokens (the same coin per (epoch, sample) on every rank)."""
        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler))                                      # (per_rank,) sample ids
        if not (self.cfg.flip and self.flip_tokens is not None):
            return order, None
        coin = torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)
        return order, torch.rand(len(self.train_tokens), generator=coin) < 0.5        # (N,) bool

    def batch(self, i: int, order: torch.Tensor, use_flip: torch.Tensor | None) -> torch.Tensor:
        """The tokens of optimizer step ``i`` of the epoch: (batch_size * grad_accum, 256)."""
        n = self.cfg.batch_size * self.cfg.grad_accum
        ids = order[i * n:(i + 1) * n]                                                # (n,)
        batch = self.train_tokens[ids]                                                # (n, 256)
        if use_flip is not None:
            batch = torch.where(use_flip[ids, None], self.flip_tokens[ids], batch)   # (n, 256)
        return batch

    def micro_step(self, micro: torch.Tensor, sync: bool, mask_gen: torch.Generator) -> torch.Tensor:
        """Forward + backward of one micro-batch (B, 256); DDP all-reduces the gradients only on
        the last one. Returns [loss, accuracy, mask ratio] / grad_accum."""
        cfg, dev = self.cfg, self.ddp.device
        with self.net.no_sync() if self.ddp.distributed and not sync else nullcontext():
            with autocast(dev, self.bf16):
                out = maskgit.mvtm_loss(self.net, micro.to(dev), self.model_cfg.mask_token_id, self.gamma_fn,
                                        cfg.label_smoothing, cfg.all_positions, mask_gen)
            (out["loss"] / cfg.grad_accum).backward()
        return torch.stack([out["loss"].detach().float().cpu(), out["accuracy"].float().cpu(),
                            out["mask_ratio"].float().cpu()]) / cfg.grad_accum       # (3,)

    def train_step(self, batch: torch.Tensor, stop: StopRequested) -> bool:
        """One optimizer step over ``grad_accum`` micro-batches; True when a stop was requested
        (on any rank). Raises NonFiniteLoss on a NaN/inf loss, before the weights change."""
        cfg = self.cfg
        # the randomness of a step depends only on (seed, step, rank): resume is exact
        step_seed = (cfg.seed * 1_000_003 + self.step * 1009 + self.ddp.rank) % 2**62
        torch.manual_seed(step_seed)                                                  # dropout
        mask_gen = torch.Generator().manual_seed(step_seed)                           # which tokens get masked
        stats = torch.zeros(3)
        for j, micro in enumerate(batch.split(cfg.batch_size)):
            stats += self.micro_step(micro, j == cfg.grad_accum - 1, mask_gen)
        # [loss finite, no stop requested], agreed by every rank so they stop together
        flags = all_agree(torch.tensor([float(torch.isfinite(stats[0])), 0.0 if stop.flag else 1.0],
                                       device=self.ddp.comm), self.ddp)
        if flags[0] < 1:
            raise NonFiniteLoss(f"loss is {stats[0].item()} at step {self.step + 1}; stopped. The last good "
                                f"checkpoint is {self.state_path} (try a lower --lr or --precision fp32)")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip or float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        self.steps_timed += 1
        self.window.add(stats, grad_norm)
        return bool(flags[1] < 1)

    def log_row(self, epoch: int, bar) -> None:
        """A log.csv row: the means since the last row, the LR, tokens/s."""
        now, lr = time.perf_counter(), self.scheduler.get_last_lr()[0]
        tps = self.window.n * self.tokens_per_step / max(now - self.window.t, 1e-9)
        row = self.window.means()
        self.log.log(step=self.step, epoch=epoch + 1, lr=lr, tokens_per_s=round(tps),
                     elapsed_s=round(now - self.t_start, 1), **row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:.0f}",
                        refresh=False)
        self.window.reset(now)

    # ------------------------------------------------------------------------- the loop

    def run_epoch(self, epoch: int, offset: int, stop_after: int, stop: StopRequested) -> bool:
        """Steps ``offset`` .. end of ``epoch`` (or ``stop_after``); True when a stop was requested."""
        spe = self.steps_per_epoch
        order, use_flip = self.epoch_order(epoch)
        last_i = min(spe, stop_after - epoch * spe)                                   # this epoch's last step
        bar = tqdm(range(offset, last_i), desc=f"epoch {epoch + 1}/{math.ceil(self.total_steps / spe)}",
                   disable=not (self.progress and self.ddp.main), mininterval=1 if sys.stderr.isatty() else 60,
                   initial=offset, total=last_i)
        stopped = False
        for i in bar:
            if self.step >= stop_after:
                break
            stopped = self.train_step(self.batch(i, order, use_flip), stop)
            if self.ddp.main and (self.step % self.cfg.log_every == 0 or self.step == stop_after):
                self.log_row(epoch, bar)
            if self.step % self.cfg.save_every == 0 and self.step % spe:
                self.save_state(epoch)
            if stopped:
                break
        bar.close()
        return stopped

    def fit(self, stop_after: int | None = None) -> RunResult:
        """Train until the run's last step or ``stop_after`` (a total step); validate at each
        epoch's end, save after every epoch and on stopping."""
        spe, total = self.steps_per_epoch, self.total_steps
        stop_after = total if stop_after is None else min(stop_after, total)
        last_metrics, stopped = {}, False
        self.model.train()
        self.t_start, self.steps_timed, self.window = time.perf_counter(), 0, _Window()
        with StopRequested() as stop:
            while self.step < stop_after and not stopped:
                epoch, offset = divmod(self.step, spe)
                stopped = self.run_epoch(epoch, offset, stop_after, stop)
                if self.step % spe == 0 or self.step >= total:                   # end of an epoch, or of the run
                    last_metrics = self.validate(math.ceil(self.step / spe)) or last_metrics
                self.save_state(self.step // spe)
                if not stopped:
                    self.ddp.barrier()
        elapsed = time.perf_counter() - self.t_start
        if self.ddp.distributed:
            check_ranks_in_sync(self.model, self.ddp.comm)
        sps = self.steps_timed / elapsed if elapsed > 0 else 0.0
        if self.ddp.main:
            print(f"stopped at step {self.step}/{total}: {sps:.2f} steps/s, {sps * self.tokens_per_step:.0f} "
                  f"tokens/s; weights in {self.run_dir / 'last.pt'}" + ("" if self.step >= total else
                                                                       " (resume with --resume)"))
        return RunResult(self.run_dir, self.step, total, self.step // spe, last_metrics, self.best, sps,
                         sps * self.tokens_per_step, stopped or self.step < total)
