"""Stage 2: masked visual token modelling (MVTM, MaskGIT section 3.1) of the bidirectional
transformer on cached tokens (``labcore train``).

``train`` is the loop on one page, in the spirit of nanoGPT's train.py: set up, then for every
optimizer step batch -> mask -> loss -> step -> log -> evaluate -> save. What is not the algorithm
is a call out of it: several processes (``ddp``), bf16 autocast (``precision``), the EMA of the
weights (``torch.optim.swa_utils``), exact resume (``steps``, ``runs``).

A run folder ``runs/<name>/`` (the convention of both stages: ``labcore.training.runs``) holds
``config.yml`` (the course's ``model_param`` form plus a ``train`` section: also the transformer's
config), ``last.pt`` / ``best.pt`` (transformer-only state dicts, the course's format; the EMA
weights when EMA is on), ``train_state.pt`` (everything to resume exactly), ``log.csv`` (loss,
masked-token accuracy, LR), ``val.csv`` and ``metrics.json`` (validation loss and masked-token
accuracy at mask ratios 0.25 / 0.5 / 0.75, fixed masks).
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
from tqdm.auto import tqdm

from labcore import maskgit
from labcore.model_files import transformer_yaml
from labcore.runtime import atomic_save, atomic_write_text, count_parameters, note, pick_device, seed_everything
from labcore.schedules import gamma
from labcore.training.config import TrainConfig, tokenizer_codebook_size
from labcore.training.ddp import DDP, all_agree, check_ranks_in_sync, process_group, wrap
from labcore.training.evaluate import VAL_RATIOS, evaluate
from labcore.training.precision import autocast, use_bf16
from labcore.training.runs import (STATE_FILE, CSVLog, StopRequested, load_run_state, non_finite, prepare_run_dir,
                                   save_run)
from labcore.training.steps import seed_step, warmup_cosine
from labcore.training.tokens import load_tokens
from labcore.transformer import BidirectionalTransformer, TransformerConfig
from labcore.validate import integer

OUTPUTS = (STATE_FILE, "last.pt", "best.pt", "log.csv", "val.csv", "metrics.json")
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
    stop_after = None if stop_after is None else integer("stop_after", stop_after, 1)
    with process_group(pick_device(device), device) as ddp:
        if ddp.main:
            prepare_run_dir(run_dir, resume, overwrite, OUTPUTS)
        ddp.barrier()
        run = Stage2Run(run_dir, model_dict, cfg, tokens_path, preset, ddp, resume)  # model, AdamW, schedule, EMA
        stop_at = run.total_steps if stop_after is None else min(stop_after, run.total_steps)
        bar = tqdm(total=stop_at, initial=run.step, desc="train", disable=not (progress and ddp.main),
                   mininterval=1 if sys.stderr.isatty() else 60)
        window, start, stopped = LogWindow(), run.step, False
        with StopRequested() as stop:
            while run.step < stop_at and not stopped:
                gen = seed_step(cfg.seed, run.step, ddp.rank)     # this step's dropout, flips and masks
                batch = batch_at(run.train_tokens, run.flip_tokens, run.step, cfg, ddp.rank, ddp.world, gen)
                stats = forward_backward(run.net, batch, run.model_cfg.mask_token_id, run.gamma_fn, cfg, gen,
                                         run.bf16)                # (3,) mask -> loss -> backward: loss, acc, ratio
                finite, go_on = all_agree(torch.tensor([float(torch.isfinite(stats[0])), float(not stop.flag)],
                                                       device=ddp.comm), ddp).tolist()  # every rank decides alike
                if not finite:
                    raise non_finite("loss", stats[0].item(), run.step + 1, run_dir)
                grad_norm = optimizer_step(run.model, run.optimizer, run.scheduler, cfg.grad_clip, run.ema)
                run.step, stopped = run.step + 1, not go_on
                window.add(stats, grad_norm)
                if ddp.main and (run.step % cfg.log_every == 0 or run.step == stop_at):
                    run.log_row(window, bar)
                epoch_done = run.step % run.steps_per_epoch == 0 or run.step == run.total_steps
                if epoch_done:
                    run.validate()
                if epoch_done or run.step % cfg.save_every == 0 or run.step == stop_at or stopped:
                    run.save()
                bar.update()
        bar.close()
        return run.finish(start, window.started, stopped)


# ----------------------------------------------------------------------------- the step, in parts

def batch_at(train_tokens: torch.Tensor, flip_tokens: torch.Tensor | None, step: int, cfg: TrainConfig,
             rank: int = 0, world: int = 1, gen: torch.Generator | None = None) -> torch.Tensor:
    """The token maps of optimizer step ``step`` on this rank: (batch_size * grad_accum, 256).

    A pure function of (seed, step, rank), so a resumed run sees the batches of the run that never
    stopped: each epoch is a permutation drawn from (seed, epoch), split between the ranks as
    DistributedSampler splits it (rank r takes every world-th sample; the remainder is dropped).
    With ``flip_tokens`` each sample takes its mirror image's tokens with probability 1/2 (``gen``)."""
    n = cfg.batch_size * cfg.grad_accum
    per_rank = len(train_tokens) // world
    epoch, i = divmod(step, per_rank // n)
    order = torch.randperm(len(train_tokens), generator=torch.Generator().manual_seed(cfg.seed + epoch))  # (N,)
    ids = order[:per_rank * world][rank::world][i * n:(i + 1) * n]               # (n,) this rank's share
    batch = train_tokens[ids]                                                   # (n, 256)
    if flip_tokens is not None:
        use_flip = torch.rand(n, generator=gen) < 0.5                           # (n,) bool
        batch = torch.where(use_flip[:, None], flip_tokens[ids], batch)         # (n, 256)
    return batch


def forward_backward(net: torch.nn.Module, batch: torch.Tensor, mask_token_id: int, gamma_fn, cfg: TrainConfig,
                     gen: torch.Generator, bf16: bool = False) -> torch.Tensor:
    """Mask -> loss -> backward over the micro-batches of one optimizer step (``batch`` split into
    ``cfg.batch_size`` rows; gradient accumulation). Under DDP the gradients are all-reduced on the
    last micro-batch only. Returns the means [loss, masked-token accuracy, mask ratio] (3,)."""
    device = next(net.parameters()).device
    micros = batch.split(cfg.batch_size)
    stats = torch.zeros(3)
    for j, micro in enumerate(micros):                                          # micro: (B, 256)
        last = j == len(micros) - 1
        with net.no_sync() if isinstance(net, DistributedDataParallel) and not last else nullcontext():
            with autocast(device, bf16):
                out = maskgit.mvtm_loss(net, micro.to(device), mask_token_id, gamma_fn, cfg.label_smoothing,
                                        cfg.all_positions, gen)
            (out["loss"] / len(micros)).backward()
        stats += torch.stack([out["loss"].detach().float().cpu(), out["accuracy"].float().cpu(),
                              out["mask_ratio"].float().cpu()]) / len(micros)  # (3,)
    return stats


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, grad_clip: float,
                   ema: AveragedModel | None = None) -> torch.Tensor:
    """Clip the gradient norm (0 = no clip), AdamW step, LR schedule step, EMA update; returns the norm."""
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    if ema is not None:
        ema.update_parameters(model)
    return grad_norm


class LogWindow:
    """Sums of the logged figures since the last log.csv row (a row shows their means)."""

    def __init__(self):
        self.started = time.perf_counter()
        self.reset(self.started)

    def reset(self, now: float) -> None:
        self.sums, self.n, self.t = dict.fromkeys(("loss", "accuracy", "mask_ratio", "grad_norm"), 0.0), 0, now

    def add(self, stats: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.n += 1
        for k, v in zip(("loss", "accuracy", "mask_ratio"), stats.tolist()):
            self.sums[k] += v
        self.sums["grad_norm"] += float(grad_norm)

    def means(self) -> dict:
        return {k: v / self.n for k, v in self.sums.items()}


# ----------------------------------------------------------------------------- the run's objects and files

def load_run_tokens(tokens_path: str | Path, model_dict: dict, cfg: TrainConfig, main: bool):
    """(train, train_flip or None, val or None, TransformerConfig): the tokens and a model config
    whose K matches the tokenizer that made them."""
    data = load_tokens(tokens_path)
    train_tokens, flip_tokens, val_tokens = data["train"], data.get("train_flip"), data.get("val")
    if cfg.flip and flip_tokens is None and main:
        note(f"{tokens_path} has no flipped tokens; training without the flip augmentation")
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
    return train_tokens, flip_tokens if cfg.flip else None, val_tokens, model_cfg


def write_run_config(path: Path, preset: str, model_cfg: TransformerConfig, train_cfg: TrainConfig,
                     tokens: str) -> None:
    """config.yml: the course's form (model_param.Transformer_param) + labcore's train section.
    It doubles as the transformer's config (``load_transformer(best.pt, config.yml)``)."""
    doc = transformer_yaml(model_cfg)
    doc["model_param"]["gamma_type"] = train_cfg.schedule
    doc.update(preset=preset, tokens=str(tokens), train={**asdict(train_cfg), "betas": list(train_cfg.betas)})
    atomic_write_text(yaml.safe_dump(doc, sort_keys=False), path)


class Stage2Run:
    """The objects of one stage-2 run (model, AdamW, warm-up + cosine schedule, optional EMA of
    the weights, tokens, logs) and its files: resume, save, validate, a log row, the summary."""

    def __init__(self, run_dir: Path, model_dict: dict, cfg: TrainConfig, tokens_path: str | Path,
                 preset: str, ddp: DDP, resume: bool):
        self.run_dir, self.cfg, self.preset, self.ddp = run_dir, cfg, preset, ddp
        self.train_tokens, self.flip_tokens, self.val_tokens, self.model_cfg = load_run_tokens(
            tokens_path, model_dict, cfg, ddp.main)
        self.steps_per_epoch = len(self.train_tokens) // ddp.world // (cfg.batch_size * cfg.grad_accum)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.train_tokens)} training samples are fewer than one step "
                             f"(batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x {ddp.world} processes)")
        self.total_steps = min(cfg.epochs * self.steps_per_epoch, cfg.max_steps or math.inf)
        seed_everything(cfg.seed)                                                # the initial weights
        self.model = BidirectionalTransformer(self.model_cfg).to(ddp.device)
        self.optimizer = torch.optim.AdamW(self.model.param_groups(cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
        self.scheduler = warmup_cosine(self.optimizer, cfg.warmup_steps, self.total_steps, cfg.min_lr_factor)
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) \
            if cfg.ema > 0 and ddp.main else None
        self.eval_model = self.ema.module if self.ema is not None else self.model
        self.bf16, self.gamma_fn = use_bf16(cfg.precision, ddp.device), gamma(cfg.schedule)
        self.step, self.best, self.metrics = 0, {}, {}
        if resume:
            self.resume()
        self.net = wrap(self.model, ddp)                                         # DDP: all-reduces gradients
        if ddp.main:
            write_run_config(run_dir / "config.yml", preset, self.model_cfg, cfg, str(tokens_path))
            self.log = CSVLog(run_dir / "log.csv", LOG_FIELDS, self.step if resume else None)
            self.val_log = CSVLog(run_dir / "val.csv", VAL_FIELDS, self.step if resume else None)
            self.say_hello()

    def resume(self) -> None:
        """Weights, optimizer, schedule, EMA, step and best validation of train_state.pt."""
        state = load_run_state(self.run_dir, asdict(self.model_cfg), self.total_steps, "config.yml")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step, self.best = int(state["step"]), dict(state.get("best") or {})

    def say_hello(self) -> None:
        ddp, n_val = self.ddp, 0 if self.val_tokens is None else len(self.val_tokens)
        print(f"labcore train: {self.run_dir}  preset {self.preset}  {count_parameters(self.model):,} parameters  "
              f"K={self.model_cfg.num_codebook_vectors}  device {ddp.device}"
              f"{f' x{ddp.world}' if ddp.distributed else ''}  {'bf16 autocast' if self.bf16 else 'fp32'}  "
              f"{len(self.train_tokens)} train / {n_val} val  {self.steps_per_epoch} steps/epoch, "
              f"{self.total_steps} steps" + (f", resuming at step {self.step}" if self.step else ""))

    def save(self) -> None:
        """last.pt (the weights, EMA ones when on) and train_state.pt (everything to resume exactly)."""
        if not self.ddp.main:
            return
        cfg = self.cfg
        save_run(self.run_dir, self.eval_model.state_dict(), {
            "step": self.step, "total_steps": self.total_steps, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None, "best": self.best,
            "model_config": asdict(self.model_cfg), "train_config": {**asdict(cfg), "betas": list(cfg.betas)}})

    def validate(self) -> None:
        """Validation at the fixed mask ratios: val.csv, metrics.json, and best.pt when it improved."""
        if not self.ddp.main or self.val_tokens is None:
            return
        epoch = math.ceil(self.step / self.steps_per_epoch)
        metrics = evaluate(self.eval_model, self.val_tokens, self.model_cfg.mask_token_id,
                           batch_size=self.cfg.val_batch_size, bf16=self.bf16, progress=False)
        self.val_log.log(step=self.step, epoch=epoch, **metrics)
        self.metrics = metrics
        if not self.best or metrics["loss"] < self.best["loss"]:
            self.best = {**metrics, "step": self.step, "epoch": epoch}
            atomic_save(self.eval_model.state_dict(), self.run_dir / "best.pt")
        summary = {"last": {**metrics, "step": self.step, "epoch": epoch}, "best": self.best,
                   "parameters": count_parameters(self.model), "preset": self.preset}
        atomic_write_text(json.dumps(summary, indent=2), self.run_dir / "metrics.json")
        tqdm.write(f"epoch {epoch}  step {self.step}  val loss {metrics['loss']:.4f}  masked-token accuracy "
                   + "  ".join(f"{r}: {metrics[f'accuracy@{r}']:.3f}" for r in VAL_RATIOS))

    def log_row(self, window: LogWindow, bar) -> None:
        """A log.csv row: the means since the last row, the LR, tokens/s."""
        now, lr = time.perf_counter(), self.scheduler.get_last_lr()[0]
        tokens_per_step = self.cfg.batch_size * self.cfg.grad_accum * self.ddp.world * self.train_tokens.shape[1]
        tps = window.n * tokens_per_step / max(now - window.t, 1e-9)
        row = window.means()
        self.log.log(step=self.step, epoch=math.ceil(self.step / self.steps_per_epoch), lr=lr,
                     tokens_per_s=round(tps), elapsed_s=round(now - window.started, 1), **row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:.0f}",
                        refresh=False)
        window.reset(now)

    def finish(self, start_step: int, started: float, stopped: bool) -> RunResult:
        """Check that the DDP replicas agree, print the speed, return the RunResult."""
        elapsed = time.perf_counter() - started
        if self.ddp.distributed:
            check_ranks_in_sync(self.model, self.ddp.comm)
        sps = (self.step - start_step) / elapsed if elapsed > 0 else 0.0
        tps = sps * self.cfg.batch_size * self.cfg.grad_accum * self.ddp.world * self.train_tokens.shape[1]
        done = self.step >= self.total_steps
        if self.ddp.main:
            print(f"stopped at step {self.step}/{self.total_steps}: {sps:.2f} steps/s, {tps:.0f} tokens/s; weights in "
                  f"{self.run_dir / 'last.pt'}" + ("" if done else " (resume with --resume)"))
        return RunResult(self.run_dir, self.step, self.total_steps, self.step // self.steps_per_epoch, self.metrics,
                         self.best, sps, tps, stopped or not done)
