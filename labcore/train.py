"""``labcore train``: masked visual token modelling (MVTM) for the stage-2 transformer.

Training runs on pre-computed tokens: every image is encoded once by the frozen VQGAN into
(16*16 = 256) codebook ids (``make_tokens``; a horizontally flipped copy of each training image
too, for the flip augmentation). A step then only runs the transformer.

    labcore train                                  # preset emoji64 on the bundled tokenizer's tokens
    labcore train --preset lab --config my.yml     # a config file overrides the preset
    labcore train --name NAME --resume             # continue exactly where runs/NAME stopped
    torchrun --nproc_per_node 4 -m labcore train --preset lab ...   # multi-GPU (DDP)

Everything of a run goes to ``runs/<name>/``: ``config.yml`` (the course's ``model_param`` form
plus a ``train`` section), ``last.pt`` / ``best.pt`` (transformer-only state dicts, the course's
format; EMA weights when EMA is on), ``train_state.pt`` (optimizer, schedule, EMA, step: exact
resume), ``log.csv`` (loss, masked-token accuracy, LR), ``val.csv`` and ``metrics.json``
(validation loss and masked-token accuracy at mask ratios 0.25 / 0.5 / 0.75, fixed masks).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from .paths import CHECKPOINT_DIR, EMOJI64_DIR, REPO_ROOT
from .runtime import (CSVLog, NonFiniteLoss, atomic_save, atomic_write_text, autocast, load_file, pick_device,
                      seed_everything, warmup_cosine)
from .runtime import count_parameters
from .transformer import BidirectionalTransformer, TransformerConfig, load_transformer

RUNS_DIR = REPO_ROOT / "runs"
DEFAULT_TOKENS = RUNS_DIR / "tokens_emoji64.pt"
BUNDLED_VQGAN_CONFIG = CHECKPOINT_DIR / "vqgan_emoji64.yml"
VAL_RATIOS = (0.25, 0.5, 0.75)

# ----------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    epochs: int = 40
    max_steps: int | None = None       # cap on optimizer steps (the LR schedule spans them)
    batch_size: int = 64               # per process, per micro-batch
    grad_accum: int = 1                # micro-batches per optimizer step
    lr: float = 1e-3
    min_lr_factor: float = 0.05        # cosine decays to lr * this
    warmup_steps: int = 300
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0             # 0 = off
    label_smoothing: float = 0.1
    schedule: str = "cosine"           # training mask schedule gamma
    all_positions: bool = False        # loss on every position, not only the masked ones
    precision: str = "auto"            # auto | fp32 | bf16 (auto: bf16 where the hardware runs it fast)
    ema: float = 0.0                   # EMA decay of the weights (0 = off), e.g. 0.999
    flip: bool = True                  # use the flipped training images' tokens half the time
    seed: int = 0
    val_batch_size: int = 100
    log_every: int = 10                # steps per CSV row
    save_every: int = 500              # steps between training-state saves (also every epoch)

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        checks = {
            "epochs": self.epochs >= 1, "batch_size": self.batch_size >= 1, "grad_accum": self.grad_accum >= 1,
            "lr": self.lr > 0, "min_lr_factor": 0 <= self.min_lr_factor <= 1, "warmup_steps": self.warmup_steps >= 0,
            "weight_decay": self.weight_decay >= 0, "grad_clip": self.grad_clip >= 0,
            "label_smoothing": 0 <= self.label_smoothing < 1, "ema": 0 <= self.ema < 1,
            "precision": self.precision in ("auto", "fp32", "bf16"), "val_batch_size": self.val_batch_size >= 1,
            "log_every": self.log_every >= 1, "save_every": self.save_every >= 1,
            "max_steps": self.max_steps is None or self.max_steps >= 1,
            "betas": len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError("train config: invalid " + ", ".join(f"{n}={getattr(self, n)!r}" for n in bad))
        from .maskgit import gamma
        gamma(self.schedule)  # raises, listing the choices, for an unknown schedule


PRESETS: dict[str, dict] = {
    # Sized for a 2-core AVX2 CPU (fp32: it has no native bf16): 2.5M parameters with K=512, the
    # course's MLP ratio of 2; ~3000 tokens/s on an idle 2-core CPU, so an epoch of emoji64 (5412
    # images, flipped copies mixed in; 169 steps of 32) takes ~8 min and the 7 epochs ~1 hour.
    # A small model on few steps learns faster with a higher peak LR than the course's 2e-4.
    "emoji64": {
        "model": dict(dim=256, n_layers=4, hidden_dim=512, num_heads=8, dropout=0.1, attn_drop=0.1),
        "train": dict(epochs=7, batch_size=32, lr=2e-3, warmup_steps=100, weight_decay=0.05,
                      label_smoothing=0.1, ema=0.0, save_every=50),
    },
    # The course's official stage-2 size (MaskGit.yml): for a GPU.
    "lab": {
        # K (1024 for the course's VQGAN) is not set here: it always comes from the tokenizer.
        "model": dict(dim=768, n_layers=15, hidden_dim=1536, num_heads=16, dropout=0.1, attn_drop=0.1),
        "train": dict(epochs=100, batch_size=64, lr=2e-4, warmup_steps=2000, weight_decay=0.05,
                      label_smoothing=0.1, ema=0.999),
    },
}


def _merge_model(base: dict, override: dict, source: str) -> dict:
    if not override:
        return base
    TransformerConfig.from_dict({**TransformerConfig().__dict__, **override}, source)  # validates keys
    return {**base, **override}


def read_config_file(path: str | Path) -> dict:
    """A YAML run config: optional ``preset``, the model as ``model:`` or the course's
    ``model_param: {Transformer_param: ...}``, and a ``train:`` section."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train config not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    allowed = {"preset", "model", "model_param", "train", "tokens"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; expected some of {sorted(allowed)}")
    model = raw.get("model") or {}
    if "model_param" in raw:
        mp = raw["model_param"] or {}
        model = {**(mp.get("Transformer_param") or {}), **model}
    train = raw.get("train") or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(train) - known)
    if bad:
        raise ValueError(f"{path}: unknown train key(s) {bad}; known: {sorted(known)}")
    if raw.get("preset") is not None and raw["preset"] not in PRESETS:
        raise ValueError(f"{path}: unknown preset {raw['preset']!r}; choose one of {list(PRESETS)}")
    return {"preset": raw.get("preset"), "model": model, "train": train, "tokens": raw.get("tokens")}


def resolve_config(preset: str = "emoji64", config_file: str | Path | None = None,
                   model_overrides: dict | None = None, train_overrides: dict | None = None
                   ) -> tuple[dict, TrainConfig, str]:
    """preset <- config file <- explicit overrides. Returns (model dict without K, TrainConfig,
    preset name). K (num_codebook_vectors) is settled later, from the tokens / tokenizer."""
    file_cfg = read_config_file(config_file) if config_file else {"preset": None, "model": {}, "train": {}}
    preset = file_cfg["preset"] or preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    source = str(config_file or f"preset {preset}")
    model = _merge_model(dict(PRESETS[preset]["model"]), file_cfg["model"], source)
    model = _merge_model(model, model_overrides or {}, "command line")
    train_dict = {**PRESETS[preset]["train"], **file_cfg["train"], **(train_overrides or {})}
    return model, TrainConfig(**train_dict), preset


def tokenizer_codebook_size(config_path: str | Path = BUNDLED_VQGAN_CONFIG) -> int | None:
    """K of a course-style VQGAN yml (the bundled tokenizer's by default); None when absent."""
    path = Path(config_path)
    if not path.is_file():
        return None
    raw = yaml.safe_load(path.read_text()) or {}
    value = (raw.get("model_param") or raw).get("num_codebook_vectors")
    return int(value) if value is not None else None


# ----------------------------------------------------------------------------- tokens

def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def make_tokens(out_path: str | Path = DEFAULT_TOKENS, vqgan_config: str | Path | None = None,
                vqgan_weights: str | Path | None = None, data_root: str | Path = EMOJI64_DIR,
                flip: bool = True, limit: int | None = None, batch_size: int = 64,
                device: str = "auto", progress: bool = True) -> dict:
    """Encode the train and val images once with the frozen VQGAN (bundled by default) and save
    ``{train (N,256) long, train_flip (N,256) long, val (M,256) long, num_codebook_vectors,
    tokenizer_sha256, ...}`` atomically. ``limit`` keeps the first images of each split (tests)."""
    from .vqgan import BUNDLED_CONFIG, BUNDLED_WEIGHTS, load_vqgan

    if (vqgan_config is None) != (vqgan_weights is None):
        raise ValueError("give both --vqgan-config and --vqgan-weights, or neither (the bundled tokenizer)")
    vqgan_config = Path(vqgan_config or BUNDLED_CONFIG)
    vqgan_weights = Path(vqgan_weights or BUNDLED_WEIGHTS)
    device = pick_device(device)
    vqgan = load_vqgan(vqgan_config, vqgan_weights, device=device)
    out: dict = {"num_codebook_vectors": int(vqgan.config.num_codebook_vectors),
                 "tokenizer_sha256": file_sha256(vqgan_weights), "tokenizer_config": str(vqgan_config),
                 "data_root": str(data_root)}
    for split in ("train", "val"):
        out[split], flipped = encode_split(vqgan, split, data_root, flip and split == "train", limit, batch_size,
                                           progress)
        if flipped is not None:
            out["train_flip"] = flipped
    atomic_save(out, out_path)
    return out


@torch.no_grad()
def encode_split(vqgan, split: str, data_root: str | Path = EMOJI64_DIR, flip: bool = False,
                 limit: int | None = None, batch_size: int = 64, progress: bool = True):
    """Token ids (N, 256) of one split's images (and of their mirror images when ``flip``, else None),
    encoded by ``vqgan`` on its own device."""
    from torch.utils.data import DataLoader, Subset

    from .data import emoji64_dataset

    dataset = emoji64_dataset(split, root=data_root)
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    device = next(vqgan.parameters()).device
    plain, flipped = [], []
    for images in tqdm(DataLoader(dataset, batch_size=batch_size), desc=f"tokens {split}", disable=not progress):
        images = images.to(device)                                                    # (B, 3, 64, 64)
        plain.append(vqgan.encode_to_indices(images).flatten(1).cpu())                 # (B, 256)
        if flip:
            flipped.append(vqgan.encode_to_indices(images.flip(-1)).flatten(1).cpu())  # (B, 256)
    return torch.cat(plain).long(), (torch.cat(flipped).long() if flip else None)


def load_tokens(path: str | Path) -> dict:
    """A tokens file: the dict written by ``make_tokens``, or a plain (N, 256) long tensor
    (training tokens only: no validation, no flips)."""
    data = load_file(path, what="tokens file")
    if torch.is_tensor(data):
        data = {"train": data}
    if not isinstance(data, dict) or "train" not in data:
        raise ValueError(f"tokens file {path}: expected a dict with 'train' (and 'val', 'train_flip') "
                         "tensors or a plain (N, 256) tensor; make one with `labcore train --make-tokens`")
    for key in ("train", "train_flip", "val"):
        t = data.get(key)
        if t is None:
            continue
        if not torch.is_tensor(t) or t.dim() != 2 or t.is_floating_point():
            raise ValueError(f"tokens file {path}: '{key}' must be an integer tensor (N, 256), got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
        data[key] = t.long()
    if "train_flip" in data and data["train_flip"].shape != data["train"].shape:
        raise ValueError(f"tokens file {path}: train_flip {tuple(data['train_flip'].shape)} does not match "
                         f"train {tuple(data['train'].shape)}")
    return data


def ensure_tokens(path: str | Path | None, progress: bool = True) -> Path:
    """The default tokens file (bundled tokenizer on emoji64), made on first use and remade when
    the bundled tokenizer changed; an explicit path must exist."""
    if path is not None and Path(path) != DEFAULT_TOKENS:
        if not Path(path).is_file():
            raise FileNotFoundError(f"tokens file not found: {path} (make one with `labcore train --make-tokens "
                                    f"--tokens {path}`)")
        return Path(path)
    from .vqgan import BUNDLED_WEIGHTS

    path = DEFAULT_TOKENS
    if path.is_file():
        stored = load_file(path, "tokens file")
        if not isinstance(stored, dict) or not BUNDLED_WEIGHTS.is_file() or \
                stored.get("tokenizer_sha256") == file_sha256(BUNDLED_WEIGHTS):
            return path
        print(f"the bundled tokenizer changed since {path.relative_to(REPO_ROOT)} was made: encoding the images again")
    elif not BUNDLED_WEIGHTS.is_file():
        raise FileNotFoundError(f"no tokens file ({path}) and no bundled tokenizer ({BUNDLED_WEIGHTS}) to make it")
    print(f"encoding emoji64 train/val with the bundled tokenizer -> {path.relative_to(REPO_ROOT)} (once)")
    make_tokens(path, progress=progress)
    return path


# ----------------------------------------------------------------------------- helpers

def cpu_has_fast_bf16() -> bool:
    """bf16 matmuls are only fast on CPUs with native bf16 (avx512_bf16 / AMX); elsewhere oneDNN
    emulates them and bf16 autocast is several times SLOWER than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "auto":
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        return cpu_has_fast_bf16()
    return precision == "bf16"


def constant_ratio(ratio: float):
    """A 'schedule' that always masks ``ratio`` of the tokens (validation at fixed ratios)."""
    return lambda u: u * 0 + ratio


def _ddp_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokens: torch.Tensor, mask_token_id: int, ratios=VAL_RATIOS,
             batch_size: int = 100, seed: int = 1234, bf16: bool = False, progress: bool = False) -> dict:
    """Validation loss (plain cross-entropy on masked tokens) and masked-token accuracy at fixed
    mask ratios; masks are drawn from ``seed``, so every evaluation sees the same masks."""
    from .maskgit import mvtm_loss

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    metrics = {}
    for ratio in ratios:
        generator = torch.Generator().manual_seed(seed + int(round(ratio * 1000)))
        loss_sum = acc_sum = 0.0
        for start in tqdm(range(0, len(tokens), batch_size), desc=f"val r={ratio}", disable=not progress, leave=False):
            batch = tokens[start:start + batch_size].to(device)                 # (b, 256)
            with autocast(device, bf16):
                out = mvtm_loss(model, batch, mask_token_id, constant_ratio(ratio), generator=generator)
            loss_sum += out["loss"].item() * len(batch)
            acc_sum += out["accuracy"].item() * len(batch)
        metrics[f"loss@{ratio}"] = loss_sum / len(tokens)
        metrics[f"accuracy@{ratio}"] = acc_sum / len(tokens)
    metrics["loss"] = sum(metrics[f"loss@{r}"] for r in ratios) / len(ratios)
    metrics["accuracy"] = sum(metrics[f"accuracy@{r}"] for r in ratios) / len(ratios)
    model.train(was_training)
    return metrics


def write_run_config(path: Path, preset: str, model_cfg: TransformerConfig, train_cfg: TrainConfig,
                     tokens: str) -> None:
    """config.yml: the course's form (model_param.Transformer_param) + labcore's train section.
    It doubles as the transformer's config (``load_transformer(best.pt, config.yml)``)."""
    doc = model_cfg.to_course_dict()
    doc["model_param"]["gamma_type"] = train_cfg.schedule
    doc.update(preset=preset, tokens=str(tokens), train={**asdict(train_cfg), "betas": list(train_cfg.betas)})
    atomic_write_text(yaml.safe_dump(doc, sort_keys=False), path)


class _StopRequested:
    """SIGTERM / SIGINT -> finish the current step, save, exit (background-friendly)."""

    def __init__(self):
        self.flag = False
        self._old = {}

    def __enter__(self):
        if threading_main():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.flag:  # second signal: stop now
            raise KeyboardInterrupt
        self.flag = True
        print(f"\nsignal {signum}: saving after this step (send again to stop immediately)", file=sys.stderr)

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


def threading_main() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------- the training loop

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
    """Train (or resume) a run in ``run_dir``. ``stop_after`` ends this invocation after that
    many total optimizer steps (state saved; ``resume`` continues) without changing the schedule."""
    rank, world, local_rank = _ddp_env()
    distributed = world > 1
    if distributed and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
        dist.init_process_group(backend)
    dev = pick_device(device)
    if dev.type == "cuda" and distributed:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    main = rank == 0
    # collectives run on the GPU with NCCL, on the CPU with gloo
    comm = dev if distributed and dist.get_backend() == "nccl" else torch.device("cpu")
    run_dir = Path(run_dir)
    state_path = run_dir / "train_state.pt"

    if main:
        if state_path.exists() and not (resume or overwrite):
            raise FileExistsError(f"{run_dir} already holds a run: pass --resume to continue it "
                                  "or --overwrite to start again")
        if not resume and overwrite:
            for name in ("train_state.pt", "last.pt", "best.pt", "log.csv", "val.csv", "metrics.json"):
                (run_dir / name).unlink(missing_ok=True)
        if resume and not state_path.exists():
            raise FileNotFoundError(f"--resume: no training state at {state_path}")
    if distributed:
        dist.barrier()

    # --- data
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

    # --- model, optimizer, schedule
    seed_everything(cfg.seed)
    model = BidirectionalTransformer(model_cfg).to(dev)
    optimizer = torch.optim.AdamW(model.param_groups(cfg.weight_decay), lr=cfg.lr, betas=cfg.betas)
    per_rank = len(train_tokens) // world
    steps_per_epoch = per_rank // (cfg.batch_size * cfg.grad_accum)
    if steps_per_epoch < 1:
        raise ValueError(f"{len(train_tokens)} training samples are fewer than one step "
                         f"(batch_size {cfg.batch_size} x grad_accum {cfg.grad_accum} x {world} processes)")
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = warmup_cosine(optimizer, cfg.warmup_steps, total_steps, cfg.min_lr_factor)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema > 0 and main else None
    bf16 = use_bf16(cfg.precision, dev)

    step, best = 0, {}
    if resume:
        state = load_file(state_path, "training state")
        saved = state.get("model_config", {})
        if saved != asdict(model_cfg):
            raise ValueError(f"{state_path}: the run's model config {saved} differs from {asdict(model_cfg)}")
        if int(state.get("total_steps", total_steps)) != total_steps:
            raise ValueError(f"{state_path}: the run was planned for {state['total_steps']} steps, these settings "
                             f"give {total_steps}; resume with the run's own config.yml")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        step, best = int(state["step"]), dict(state.get("best") or {})
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(run_dir / "config.yml", preset, model_cfg, cfg, str(tokens_path))
    net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None) \
        if distributed else model

    from .maskgit import gamma, mvtm_loss
    gamma_fn = gamma(cfg.schedule)
    mask_id = model_cfg.mask_token_id
    fields = ["step", "epoch", "loss", "accuracy", "mask_ratio", "lr", "grad_norm", "tokens_per_s", "elapsed_s"]
    log = CSVLog(run_dir / "log.csv", fields, resume_step=step if resume else None) if main else None
    val_fields = ["step", "epoch", "loss", "accuracy"] + [f"{m}@{r}" for r in VAL_RATIOS for m in ("loss", "accuracy")]
    val_log = CSVLog(run_dir / "val.csv", val_fields, resume_step=step if resume else None) if main else None
    sampler = DistributedSampler(range(len(train_tokens)), num_replicas=world, rank=rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    eval_model = ema.module if ema is not None else model
    tokens_per_step = cfg.batch_size * cfg.grad_accum * world * train_tokens.shape[1]
    if main:
        print(f"labcore train: {run_dir}  preset {preset}  {count_parameters(model):,} parameters  K={K}  "
              f"device {dev}{f' x{world}' if distributed else ''}  {'bf16 autocast' if bf16 else 'fp32'}  "
              f"{len(train_tokens)} train / {0 if val_tokens is None else len(val_tokens)} val  "
              f"{steps_per_epoch} steps/epoch, {total_steps} steps" + (f", resuming at step {step}" if step else ""))

    def save_state(epoch_done: int) -> None:
        if not main:
            return
        atomic_save(eval_model.state_dict(), run_dir / "last.pt")
        atomic_save({"step": step, "epoch": epoch_done, "model": model.state_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "ema": ema.state_dict() if ema is not None else None, "best": best,
                     "model_config": asdict(model_cfg), "train_config": {**asdict(cfg), "betas": list(cfg.betas)},
                     "total_steps": total_steps}, state_path)

    def validate(epoch: int) -> dict:
        nonlocal best
        if not main or val_tokens is None:
            return {}
        metrics = evaluate(eval_model, val_tokens, mask_id, batch_size=cfg.val_batch_size, bf16=bf16)
        val_log.log(step=step, epoch=epoch, **metrics)
        if not best or metrics["loss"] < best["loss"]:
            best = {**metrics, "step": step, "epoch": epoch}
            atomic_save(eval_model.state_dict(), run_dir / "best.pt")
        summary = {"last": {**metrics, "step": step, "epoch": epoch}, "best": best,
                   "parameters": count_parameters(model), "preset": preset}
        atomic_write_text(json.dumps(summary, indent=2), run_dir / "metrics.json")
        print(f"epoch {epoch}  step {step}  val loss {metrics['loss']:.4f}  masked-token accuracy "
              + "  ".join(f"{r}: {metrics[f'accuracy@{r}']:.3f}" for r in VAL_RATIOS))
        return metrics

    last_metrics: dict = {}
    stop_after = total_steps if stop_after is None else min(stop_after, total_steps)
    model.train()
    t_start, steps_timed = time.perf_counter(), 0
    window = {"loss": 0.0, "accuracy": 0.0, "mask_ratio": 0.0, "grad_norm": 0.0, "n": 0, "t": time.perf_counter()}
    stopped_early = False
    with _StopRequested() as stop:
        while step < stop_after:
            epoch, offset = divmod(step, steps_per_epoch)
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler))                                       # (per_rank,) sample ids
            if cfg.flip and flip_tokens is not None:  # same coin per (epoch, sample) on every rank
                use_flip = torch.rand(len(train_tokens), generator=torch.Generator().manual_seed(
                    cfg.seed * 7919 + epoch)) < 0.5                                     # (N,) bool
            last_i = min(steps_per_epoch, stop_after - epoch * steps_per_epoch)   # this epoch's last step
            bar = tqdm(range(offset, last_i), desc=f"epoch {epoch + 1}/{math.ceil(total_steps / steps_per_epoch)}",
                       disable=not (progress and main), mininterval=1 if sys.stderr.isatty() else 60,
                       initial=offset, total=last_i)
            for i in bar:
                if step >= stop_after:
                    break
                # the randomness of a step depends only on (seed, step, rank): resume is exact
                step_seed = (cfg.seed * 1_000_003 + step * 1009 + rank) % 2**62
                torch.manual_seed(step_seed)                                            # dropout
                mask_gen = torch.Generator().manual_seed(step_seed)                     # which tokens get masked
                ids = order[i * cfg.batch_size * cfg.grad_accum:(i + 1) * cfg.batch_size * cfg.grad_accum]
                batch = train_tokens[ids]                                                # (b*accum, 256)
                if cfg.flip and flip_tokens is not None:
                    batch = torch.where(use_flip[ids, None], flip_tokens[ids], batch)
                stats = torch.zeros(3)
                for j, micro in enumerate(batch.split(cfg.batch_size)):
                    sync = j == cfg.grad_accum - 1
                    ctx = net.no_sync() if distributed and not sync else nullcontext()
                    with ctx:
                        with autocast(dev, bf16):
                            out = mvtm_loss(net, micro.to(dev), mask_id, gamma_fn, cfg.label_smoothing,
                                            cfg.all_positions, mask_gen)
                        (out["loss"] / cfg.grad_accum).backward()
                    stats += torch.stack([out["loss"].detach().float().cpu(), out["accuracy"].float().cpu(),
                                          out["mask_ratio"].float().cpu()]) / cfg.grad_accum
                # [loss finite, no stop requested], agreed by every rank so they stop together
                flags = torch.tensor([float(torch.isfinite(stats[0])), 0.0 if stop.flag else 1.0], device=comm)
                if distributed:
                    dist.all_reduce(flags, op=dist.ReduceOp.MIN)
                stopped_early = bool(flags[1] < 1)
                if flags[0] < 1:
                    raise NonFiniteLoss(f"loss is {stats[0].item()} at step {step + 1}; stopped. The last good "
                                        f"checkpoint is {state_path} (try a lower --lr or --precision fp32)")
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                steps_timed += 1
                window["n"] += 1
                for k, v in zip(("loss", "accuracy", "mask_ratio"), stats.tolist()):
                    window[k] += v
                window["grad_norm"] += float(grad_norm)
                if main and (step % cfg.log_every == 0 or step == stop_after):
                    n, now = window["n"], time.perf_counter()
                    tps = n * tokens_per_step / max(now - window["t"], 1e-9)
                    row = {k: window[k] / n for k in ("loss", "accuracy", "mask_ratio", "grad_norm")}
                    log.log(step=step, epoch=epoch + 1, lr=scheduler.get_last_lr()[0], tokens_per_s=round(tps),
                            elapsed_s=round(now - t_start, 1), **row)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.3f}",
                                    lr=f"{scheduler.get_last_lr()[0]:.2e}", tok_s=f"{tps:.0f}", refresh=False)
                    window = {"loss": 0.0, "accuracy": 0.0, "mask_ratio": 0.0, "grad_norm": 0.0, "n": 0, "t": now}
                if step % cfg.save_every == 0 and step % steps_per_epoch:
                    save_state(epoch)
                if stopped_early:
                    break
            bar.close()
            if step % steps_per_epoch == 0 or step >= total_steps:   # end of an epoch, or of the run
                last_metrics = validate(math.ceil(step / steps_per_epoch)) or last_metrics
            save_state(step // steps_per_epoch)
            if stopped_early:
                break
            if distributed:
                dist.barrier()
    elapsed = time.perf_counter() - t_start
    if distributed:
        _check_ranks_in_sync(model, comm)
    sps = steps_timed / elapsed if elapsed > 0 else 0.0
    if main:
        print(f"stopped at step {step}/{total_steps}: {sps:.2f} steps/s, {sps * tokens_per_step:.0f} tokens/s; "
              f"weights in {run_dir / 'last.pt'}" + ("" if step >= total_steps else " (resume with --resume)"))
    return RunResult(run_dir, step, total_steps, step // steps_per_epoch, last_metrics, best, sps,
                     sps * tokens_per_step, stopped_early or step < total_steps)


def _check_ranks_in_sync(model: torch.nn.Module, comm: torch.device) -> None:
    """DDP keeps every replica identical; verify it (cheaply) before trusting rank 0's files."""
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().view(1).to(comm)
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(abs(g.item() - checksum.item()) > 1e-6 * max(1.0, abs(checksum.item())) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: parameter checksums {[g.item() for g in gathered]}")
    if dist.get_rank() == 0:
        print(f"DDP: {dist.get_world_size()} ranks in sync (parameter checksum {checksum.item():.6f})")


# ----------------------------------------------------------------------------- publishing a run

def publish_run(run_dir: str | Path, stem: str | Path = CHECKPOINT_DIR / "transformer_emoji64") -> dict:
    """Copy a finished run's best weights to ``STEM.pt`` (the transformer-only state dict the
    course saves), its config to ``STEM.yml``, its training log to ``STEM_log.csv``, and write
    ``STEM_metrics.json`` (best validation loss / masked-token accuracy at the fixed mask ratios,
    parameters, steps). Every file is written to a temporary name and renamed. Returns the metrics."""
    run_dir, stem = Path(run_dir), Path(stem)
    state = load_file(run_dir / "train_state.pt", "training state")
    step, total = int(state["step"]), int(state["total_steps"])
    if step < total:
        raise ValueError(f"{run_dir}: the run stopped at step {step} of {total}; finish it "
                         f"(`labcore train --run-dir {run_dir} --resume`) before publishing")
    weights = run_dir / "best.pt" if (run_dir / "best.pt").is_file() else run_dir / "last.pt"
    model = load_transformer(weights, run_dir / "config.yml")                  # checks weights vs config
    atomic_save(model.state_dict(), stem.with_suffix(".pt"))
    os.chmod(stem.with_suffix(".pt"), 0o644)  # a shipped file, readable by everyone (mkstemp made it 0600)
    log_rows = (run_dir / "log.csv").read_text().splitlines()
    best = dict(state.get("best") or {})
    metrics = {
        "val": {k: round(v, 4) for k, v in best.items() if k.startswith(("loss", "accuracy"))},
        "val_mask_ratios": list(VAL_RATIOS),
        "best_step": best.get("step"), "steps": step,
        "parameters": count_parameters(model),
        "weights_mb": round(stem.with_suffix(".pt").stat().st_size / 1e6, 2),
        "train_config": state.get("train_config"),
        "last_log_row": dict(zip(log_rows[0].split(","), log_rows[-1].split(","))) if len(log_rows) > 1 else {},
        "source": str(weights.relative_to(REPO_ROOT) if weights.is_relative_to(REPO_ROOT) else weights),
    }
    for suffix, text in ((".yml", (run_dir / "config.yml").read_text()), ("_log.csv", "\n".join(log_rows) + "\n"),
                         ("_metrics.json", json.dumps(metrics, indent=2) + "\n")):
        atomic_write_text(text, stem.with_name(stem.name + suffix))
    return metrics


# ----------------------------------------------------------------------------- CLI

_MODEL_FLAGS = {"dim": int, "n_layers": int, "hidden_dim": int, "num_heads": int, "dropout": float}
_TRAIN_FLAGS = {"epochs": int, "max_steps": int, "batch_size": int, "grad_accum": int, "lr": float,
                "warmup_steps": int, "weight_decay": float, "grad_clip": float, "label_smoothing": float,
                "schedule": str, "precision": str, "ema": float, "seed": int, "log_every": int, "save_every": int}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=list(PRESETS), default="emoji64",
                        help="emoji64 (default: CPU-sized) or lab (the course's 768x15 model, for a GPU)")
    parser.add_argument("--config", default=None, help="YAML file overriding the preset (keys: preset, model or "
                        "model_param.Transformer_param, train)")
    parser.add_argument("--name", default=None, help="run name: files go to runs/NAME (default: the preset name)")
    parser.add_argument("--run-dir", default=None, help="explicit output folder (instead of runs/NAME)")
    parser.add_argument("--tokens", default=None, help=f"tokens file (default: {DEFAULT_TOKENS.relative_to(REPO_ROOT)},"
                        " made once from the bundled tokenizer)")
    parser.add_argument("--make-tokens", action="store_true", help="encode the images into --tokens and exit")
    parser.add_argument("--vqgan-config", default=None, help="tokenizer yml for --make-tokens (default: bundled)")
    parser.add_argument("--vqgan-weights", default=None, help="tokenizer weights for --make-tokens (default: bundled)")
    parser.add_argument("--data-root", default=str(EMOJI64_DIR), help="images for --make-tokens (emoji64 or the "
                        "course's lab5_dataset)")
    parser.add_argument("--resume", action="store_true", help="continue the run in runs/NAME exactly")
    parser.add_argument("--overwrite", action="store_true", help="start runs/NAME again from scratch")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop this invocation after this many total steps (state saved; --resume continues)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars (logs still go to log.csv)")
    for name, typ in _MODEL_FLAGS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None, help=f"model {name} (overrides)")
    parser.add_argument("--attention", choices=["fused", "explicit"], default=None,
                        help="fused = F.scaled_dot_product_attention (default), explicit = the math")
    for name, typ in _TRAIN_FLAGS.items():
        if name == "precision":
            parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None,
                                help="auto (default): bf16 autocast on GPUs and on CPUs with native bf16, else fp32")
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=typ, default=None, help=f"train {name} (overrides)")
    parser.add_argument("--no-flip", action="store_true", help="no horizontal-flip augmentation")
    parser.add_argument("--publish", metavar="STEM", default=None,
                        help="do not train: copy the finished run's best weights, config, log and metrics to "
                        "STEM.pt / STEM.yml / STEM_log.csv / STEM_metrics.json (e.g. data/checkpoints/transformer_emoji64)")


def add_eval_transformer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=None, help="transformer weights (default: the bundled transformer)")
    parser.add_argument("--config", default=None, help="its yml (default: the bundled transformer's)")
    parser.add_argument("--tokens", default=None, help="tokens file with a 'val' split (default: emoji64 val "
                        "encoded by the bundled tokenizer)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="also write the metrics to this JSON file")


def run_eval_transformer(args: argparse.Namespace) -> int:
    """``labcore eval-transformer``: the validation loss and masked-token accuracy at mask ratios
    0.25 / 0.5 / 0.75 (fixed masks: the numbers ``labcore train`` logs in val.csv)."""
    from .transformer import bundled_transformer_paths, load_transformer

    weights, config = bundled_transformer_paths()
    weights, config = Path(args.weights or weights), Path(args.config or config)
    device = pick_device(args.device)
    if args.tokens:
        val = load_tokens(args.tokens).get("val")
        if val is None:
            raise ValueError(f"tokens file {args.tokens}: no 'val' split to evaluate on")
    else:  # the val split is small: encode it with the bundled tokenizer (train tokens are not needed)
        from .vqgan import load_bundled_vqgan
        val, _ = encode_split(load_bundled_vqgan(device), "val")
    model = load_transformer(weights, config, device=device)
    metrics = evaluate(model, val, mask_token_id=model.config.num_codebook_vectors,
                       bf16=device.type == "cuda", progress=True)
    for r in VAL_RATIOS:
        print(f"mask ratio {r:.2f}: val loss {metrics[f'loss@{r}']:.4f}  masked-token accuracy "
              f"{100 * metrics[f'accuracy@{r}']:.1f} %")
    print(f"{weights} on {len(val)} val images: mean loss {metrics['loss']:.4f}, "
          f"mean accuracy {100 * metrics['accuracy']:.1f} %")
    if args.out:
        atomic_write_text(json.dumps({"weights": str(weights), **metrics}, indent=2), args.out)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    tokens = Path(args.tokens) if args.tokens else DEFAULT_TOKENS
    if args.make_tokens:
        out = make_tokens(tokens, args.vqgan_config, args.vqgan_weights, args.data_root, device=args.device,
                          progress=not args.no_progress)
        print(f"wrote {tokens}: train {tuple(out['train'].shape)}, val {tuple(out['val'].shape)}, "
              f"K={out['num_codebook_vectors']}")
        return 0
    run_dir = Path(args.run_dir) if args.run_dir else RUNS_DIR / (args.name or args.preset)
    if args.publish:
        metrics = publish_run(run_dir, args.publish)
        print(f"published {run_dir} -> {args.publish}.pt/.yml/_log.csv/_metrics.json: "
              f"val loss {metrics['val'].get('loss')}, masked-token accuracy {metrics['val'].get('accuracy')}")
        return 0
    model_over = {k: getattr(args, k) for k in _MODEL_FLAGS if getattr(args, k) is not None}
    if args.attention:
        model_over["fused_attention"] = args.attention == "fused"
    train_over = {k: getattr(args, k) for k in _TRAIN_FLAGS if getattr(args, k) is not None}
    if args.no_flip:
        train_over["flip"] = False
    config_file = args.config
    if args.resume:
        if not (run_dir / "train_state.pt").is_file():
            raise FileNotFoundError(f"--resume: no run to continue in {run_dir} (no train_state.pt)")
        if args.config or model_over:
            raise ValueError("--resume continues a run with its saved config.yml; drop --config/model options")
        config_file = run_dir / "config.yml"
        if train_over:
            print(f"note: --resume keeps the run's saved settings; ignoring {sorted(train_over)}")
            train_over = {}
    model_dict, cfg, preset = resolve_config(args.preset, config_file, model_over, train_over)
    if args.resume and args.tokens is None:
        saved_tokens = (yaml.safe_load((run_dir / "config.yml").read_text()) or {}).get("tokens")
        tokens = Path(saved_tokens) if saved_tokens else tokens
    rank, world, local_rank = _ddp_env()
    if rank == 0:
        tokens = ensure_tokens(tokens if args.tokens or args.resume else None, progress=not args.no_progress)
    if world > 1:
        use_nccl = torch.cuda.is_available() and args.device != "cpu"
        if use_nccl:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_nccl else "gloo")
        dist.barrier()  # rank 0 may have just made the tokens file
    try:
        result = train(run_dir, model_dict, cfg, tokens, preset=preset, resume=args.resume, overwrite=args.overwrite,
                       device=args.device, stop_after=args.stop_after, progress=not args.no_progress)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return 0 if result.step >= result.total_steps or args.stop_after else 3
