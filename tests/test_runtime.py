"""labcore.runtime: checkpoints are written with CPU tensors, atomically, and load with weights_only.

(CUDA tensors cannot be made on this CPU-only machine: scripts/gpu-check.sh checks on a GPU that every
checkpoint a CUDA run writes holds CPU tensors only.)"""

import torch
from torch import nn

from labcore.runtime import atomic_save, to_cpu


def test_to_cpu_keeps_structure_values_and_state_dict_metadata():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    state = model.state_dict()
    obj = {"model": state, "step": 7, "history": [torch.arange(3), (torch.ones(2), "tag")]}
    out = to_cpu(obj)
    assert out["step"] == 7 and out["history"][1][1] == "tag"
    assert isinstance(out["history"][1], tuple) and type(out["model"]) is type(state)
    assert torch.equal(out["history"][0], torch.arange(3))
    assert list(out["model"]) == list(state)
    assert all(torch.equal(out["model"][k], state[k]) for k in state)
    assert out["model"]._metadata == state._metadata  # BatchNorm's version info survives
    assert all(t.device.type == "cpu" for t in out["model"].values())


def test_atomic_save_round_trip_loads_weights_only_and_strict(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    path = atomic_save(model.state_dict(), tmp_path / "sub" / "model.pt")
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left
    state = torch.load(path, weights_only=True)
    fresh = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    fresh.load_state_dict(state, strict=True)
    x = torch.randn(5, 4)
    assert torch.equal(fresh.eval()(x), model.eval()(x))
