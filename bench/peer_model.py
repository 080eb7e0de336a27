"""peer_model.py - the benchmark's reference network in Debian's python3-torch.

tf_efficientnet_b0_ns and mobilenetv2_100 written as a data scientist would with
torch.nn (Conv2d + BatchNorm2d modules, timm's key names, TF "SAME" padding on the
stride-2 convolutions), loading the same .safetensors weights as the pipeline
through a small reader (the `safetensors` package is not in Debian).

    python3 peer_model.py BACKBONE WEIGHTS SIZE BATCH THREADS LAYOUT ROUNDS
        LAYOUT: nchw, cl (channels-last) or jit (channels-last, frozen and
        optimize_for_inference); prints one line per round: "photos_per_s=X"
"""
import json
import warnings
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}

# stage: repeats, kernel, stride, expansion, out channels
EFFNET_B0 = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
             (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
MOBILENET_V2 = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (3, 3, 2, 6, 32), (4, 3, 2, 6, 64),
                (3, 3, 1, 6, 96), (3, 3, 2, 6, 160), (1, 3, 1, 6, 320)]


def read_safetensors(path):
    """Every tensor of a .safetensors file as a float32 torch tensor (I64 kept)."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    out = {}
    for key, t in header.items():
        if key == "__metadata__":
            continue
        a, b = t["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
        if arr.dtype != np.int64:
            arr = arr.astype(np.float32)
        out[key] = torch.from_numpy(arr.copy())
    return out


class Conv2dSame(nn.Conv2d):
    """TF "SAME": pad from the actual input size, the odd pixel after."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        k, s = self.kernel_size[0], self.stride[0]
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


def conv(cin, cout, k, stride=1, groups=1):
    if stride > 1:
        return Conv2dSame(cin, cout, k, stride, 0, groups=groups, bias=False)
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False)


class BNAct(nn.BatchNorm2d):
    def __init__(self, ch, eps, act):
        super().__init__(ch, eps=eps)
        self.act = act

    def forward(self, x):
        return self.act(super().forward(x))


class SE(nn.Module):
    def __init__(self, ch, rd):
        super().__init__()
        self.conv_reduce = nn.Conv2d(ch, rd, 1)
        self.conv_expand = nn.Conv2d(rd, ch, 1)

    def forward(self, x):
        g = x.mean((2, 3), keepdim=True)
        g = self.conv_expand(F.silu(self.conv_reduce(g)))
        return x * g.sigmoid()


class DS(nn.Module):
    def __init__(self, cin, cout, k, stride, eps, act, se):
        super().__init__()
        self.conv_dw = conv(cin, cin, k, stride, cin)
        self.bn1 = BNAct(cin, eps, act)
        self.se = SE(cin, cin // 4) if se else nn.Identity()
        self.conv_pw = conv(cin, cout, 1)
        self.bn2 = BNAct(cout, eps, nn.Identity())
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.bn2(self.conv_pw(self.se(self.bn1(self.conv_dw(x)))))
        return y + x if self.skip else y


class IR(nn.Module):
    def __init__(self, cin, cout, k, stride, expand, eps, act, se):
        super().__init__()
        mid = cin * expand
        self.conv_pw = conv(cin, mid, 1)
        self.bn1 = BNAct(mid, eps, act)
        self.conv_dw = conv(mid, mid, k, stride, mid)
        self.bn2 = BNAct(mid, eps, act)
        self.se = SE(mid, cin // 4) if se else nn.Identity()
        self.conv_pwl = conv(mid, cout, 1)
        self.bn3 = BNAct(cout, eps, nn.Identity())
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.bn1(self.conv_pw(x))
        y = self.se(self.bn2(self.conv_dw(y)))
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.skip else y


class Net(nn.Module):
    """Backbone, average pooling and L2 normalisation: the pipeline's embedding."""

    def __init__(self, backbone):
        super().__init__()
        if backbone == "mobilenetv2_100":
            table, eps, act, se = MOBILENET_V2, 1e-5, nn.ReLU6(), False
        else:
            table, eps, act, se = EFFNET_B0, 1e-3, nn.SiLU(), True
        self.conv_stem = conv(3, 32, 3, 2)
        self.bn1 = BNAct(32, eps, act)
        stages, cin = [], 32
        for rep, k, s, e, cout in table:
            blocks = []
            for r in range(rep):
                stride = s if r == 0 else 1
                if e == 1:
                    blocks.append(DS(cin, cout, k, stride, eps, act, se))
                else:
                    blocks.append(IR(cin, cout, k, stride, e, eps, act, se))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = conv(cin, 1280, 1)
        self.bn2 = BNAct(1280, eps, act)

    def forward(self, x):
        x = self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))
        return F.normalize(x.mean((2, 3)), dim=1)


def load(backbone, weights, layout="cl"):
    """The network in eval mode with WEIGHTS loaded (classifier keys ignored)."""
    net = Net(backbone)
    sd = {k: v for k, v in read_safetensors(weights).items()
          if not k.startswith("classifier.")}
    net.load_state_dict(sd, strict=True)
    net.eval()
    if layout != "nchw":
        net = net.to(memory_format=torch.channels_last)
    return net


def prepare(net, size, batch, layout):
    """What a careful user runs: the module, or it traced, frozen and optimised."""
    if layout != "jit":
        return net
    x = torch.zeros(batch, 3, size, size).to(memory_format=torch.channels_last)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(net, x)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def main():
    backbone, weights, size, batch, threads, layout, rounds = sys.argv[1:8]
    size, batch, threads, rounds = int(size), int(batch), int(threads), int(rounds)
    torch.set_num_threads(threads)
    net = prepare(load(backbone, weights, layout), size, batch, layout)
    x = torch.rand(batch, 3, size, size) * 2 - 1
    if layout != "nchw":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        net(x)
        for _ in range(rounds):
            t0 = time.perf_counter()
            net(x)
            print("photos_per_s=%.3f" % (batch / (time.perf_counter() - t0)), flush=True)


if __name__ == "__main__":
    main()
