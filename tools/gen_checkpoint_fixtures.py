#!/usr/bin/env python3
"""Writes the checkpoint test files of tests/Vlsm.Tests/Data from the shared smp fixtures, without torch.

CPython's own pickler writes them (protocol 2, as torch.save does), so the opcodes are the ones real
checkpoints hold; torch's globals are stand-ins that pickle under torch's names. Run from the
repository root:  python3 tools/gen_checkpoint_fixtures.py

- smp-lightning-data.pkl: the data.pkl of a medvlsm Lightning checkpoint of smp-unet-tiny with what
  a real one carries beside the state dict: optimizer state, loops, callbacks, and hyper_parameters
  holding a pickled TunedDiceLoss object, a functools.partial of torch.optim.Adam, a set and bytes.
  Its tensors use the storages of shared/parity/smp-unet-tiny/model.pth (same keys), so a test
  assembles the zip from this pickle and that file's data/ entries.
- resnet-tiny-legacy.pth: the encoder of shared/parity/smp-deeplabv3plus-tiny as torchvision saved
  ImageNet weights in 2017: the legacy (pre-zip) torch.save stream, torch._utils._rebuild_tensor,
  no num_batches_tracked, an fc layer, and fc.weight/fc.bias as views of one storage.
"""
import collections
import functools
import io
import json
import os
import pickle
import random
import struct
import sys
import types
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "parity")
OUT = os.path.join(ROOT, "tests", "Vlsm.Tests", "Data")


def module(name):
    m = types.ModuleType(name)
    sys.modules[name] = m
    return m


torch = module("torch")
torch_utils = module("torch._utils")
torch.utils = torch_utils
optim = module("torch.optim")
adam = module("torch.optim.adam")
losses = module("src.losses.tuned_dice_loss")
module("src")
module("src.losses")


class FloatStorage:
    pass


class LongStorage:
    pass


FloatStorage.__module__ = LongStorage.__module__ = "torch"
torch.FloatStorage, torch.LongStorage = FloatStorage, LongStorage


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called")


def _rebuild_tensor(*args):
    raise AssertionError("never called")


_rebuild_tensor_v2.__module__ = _rebuild_tensor.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2, torch_utils._rebuild_tensor = _rebuild_tensor_v2, _rebuild_tensor


class Adam:
    pass


Adam.__module__ = "torch.optim.adam"
adam.Adam = Adam


class TunedDiceLoss:
    def __init__(self):
        self.training = True
        self._parameters = collections.OrderedDict()
        self._buffers = collections.OrderedDict()
        self._modules = collections.OrderedDict()
        self.include_background = True
        self.to_onehot_y = False
        self.sigmoid = False
        self.reduction = "mean"
        self.smooth_nr = 1e-05
        self.smooth_dr = 1e-05
        self.batch = False


TunedDiceLoss.__module__ = "src.losses.tuned_dice_loss"
losses.TunedDiceLoss = TunedDiceLoss


class Storage:
    def __init__(self, cls, key, numel, view=None):
        self.cls, self.key, self.numel, self.view = cls, key, numel, view


class Tensor:
    """A tensor as torch pickles it: a rebuild function over a storage."""

    def __init__(self, storage, offset, size, stride, legacy=False):
        self.storage, self.offset, self.size, self.stride, self.legacy = storage, offset, tuple(size), tuple(stride), legacy

    def __reduce__(self):
        if self.legacy:
            return (_rebuild_tensor, (self.storage, self.offset, self.size, self.stride))
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", obj.cls, obj.key, "cpu", obj.numel)
            return pid if obj.view is False else pid + (obj.view,)
        return None


def dumps(obj):
    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


class Reader(pickle.Unpickler):
    """Reads the fixture's data.pkl into Tensor/Storage stand-ins."""

    def find_class(self, mod, name):
        if mod == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda s, o, size, stride, *rest: Tensor(s, o, size, stride)
        if mod == "torch":
            return {"FloatStorage": FloatStorage, "LongStorage": LongStorage}[name]
        return super().find_class(mod, name)

    def persistent_load(self, pid):
        _, cls, key, _, numel = pid
        return Storage(cls, key, numel, view=False)


def stride_of(size):
    stride, acc = [], 1
    for n in reversed(size):
        stride.insert(0, acc)
        acc *= n
    return stride


def lightning():
    with zipfile.ZipFile(os.path.join(SHARED, "smp-unet-tiny", "model.pth")) as z:
        pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        base = Reader(io.BytesIO(z.read(pkl))).load()
    state = base["state_dict"]
    params = [k for k, t in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    # Optimizer moments as views of the parameters' own storages: no new data, the same opcodes.
    moments = {}
    for i, k in enumerate(params[:4]):
        t = state[k]
        moments[i] = {"step": Tensor(t.storage, 0, (), ()), "exp_avg": t, "exp_avg_sq": t}
    first = state[params[0]]
    checkpoint = {
        "epoch": 41,
        "global_step": 1234,
        "pytorch-lightning_version": "2.0.0",
        "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 42, "completed": 41}}}},
        "callbacks": {
            "ModelCheckpoint{'monitor': 'val/dice_epoch', 'mode': 'max'}": {
                "monitor": "val/dice_epoch",
                "best_model_score": Tensor(first.storage, 0, (), ()),
                "best_model_path": "/logs/checkpoints/epoch_041.ckpt",
                "kth_best_model_path": "",
                "dirpath": "/logs/checkpoints",
            },
            "EarlyStopping{'monitor': 'val/dice_epoch', 'mode': 'max'}": {"wait_count": 3, "stopped_epoch": 0, "patience": 20},
        },
        "optimizer_states": [{
            "state": moments,
            "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0, "amsgrad": False,
                              "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
                              "params": list(range(len(params)))}],
        }],
        "lr_schedulers": [],
        "hparams_name": "kwargs",
        "hyper_parameters": {
            "loss_fn": TunedDiceLoss(),
            "optimizer": functools.partial(Adam, lr=0.001),
            "scheduler": None,
            "multi_class": False,
            "tags": {"unet", "kvasir"},
            "blob": b"\x00\x01\x02",
        },
    }
    with open(os.path.join(OUT, "smp-lightning-data.pkl"), "wb") as f:
        f.write(dumps(checkpoint))


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def legacy():
    tensors = read_safetensors(os.path.join(SHARED, "smp-deeplabv3plus-tiny", "model.safetensors"))
    encoder = [(k[len("encoder."):], v) for k, v in tensors.items() if k.startswith("encoder.") and not k.endswith("num_batches_tracked")]
    state = collections.OrderedDict()
    blobs = []
    for i, (name, (dtype, shape, raw)) in enumerate(encoder):
        assert dtype == "F32"
        key = str(94000000 + 16 * i)
        numel = len(raw) // 4
        state[name] = Tensor(Storage(FloatStorage, key, numel, view=None), 0, shape, stride_of(shape), legacy=True)
        blobs.append((key, numel, raw))
    # fc: weight [10, C] and bias [10] as views of one storage, as older PyTorch could save them.
    rng = random.Random(7)
    channels = [v[1] for k, v in encoder if k.endswith("bn3.weight") or k.endswith("bn2.weight")][-1][0]
    fc = [rng.uniform(-1, 1) for _ in range(10 * channels + 10)]
    root = str(95000000)
    state["fc.weight"] = Tensor(Storage(FloatStorage, root, len(fc), view=(root + "w", 0, 10 * channels)), 0, (10, channels), (channels, 1), legacy=True)
    state["fc.bias"] = Tensor(Storage(FloatStorage, root, len(fc), view=(root + "b", 10 * channels, 10)), 0, (10,), (1,), legacy=True)
    blobs.append((root, len(fc), struct.pack(f"<{len(fc)}f", *fc)))
    out = io.BytesIO()
    out.write(dumps(0x1950A86A20F9469CFC6C))
    out.write(dumps(1001))
    out.write(dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}))
    out.write(dumps(state))
    out.write(dumps([k for k, _, _ in blobs]))
    for _, numel, raw in blobs:
        out.write(struct.pack("<q", numel))
        out.write(raw)
    with open(os.path.join(OUT, "resnet-tiny-legacy.pth"), "wb") as f:
        f.write(out.getvalue())


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    lightning()
    legacy()
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))
