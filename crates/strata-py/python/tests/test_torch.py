"""Tests of strata.torch: activation capture from PyTorch models into strata stores.

All models are built here (no downloads) with fixed seeds and small sizes. The CLI check runs
the release binary at $STRATA_BIN (default ~/.cache/strata-target/release/strata).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import strata  # noqa: E402
import strata.torch as st  # noqa: E402

STRATA_BIN = os.environ.get(
    "STRATA_BIN", os.path.expanduser("~/.cache/strata-target/release/strata")
)


# ---------------------------------------------------------------------------------------------
# Models and data
# ---------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn + skip, relu; the ReLU (in place) is reused, as in torchvision."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )
        self.layer1 = BasicBlock(width, width, 1)
        self.layer2 = BasicBlock(width, 2 * width, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.layer2(self.layer1(self.stem(x))))))


RESNET_LAYERS = [
    "stem.0", "stem.1", "stem.2",
    "layer1.conv1", "layer1.bn1", "layer1.relu", "layer1.conv2", "layer1.bn2",
    "layer2.downsample.0", "layer2.downsample.1",
    "layer2.conv1", "layer2.bn1", "layer2.relu", "layer2.conv2", "layer2.bn2",
    "pool", "flatten", "fc",
]  # fmt: skip


def _randomize_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial BatchNorm statistics, so eval-mode BN is not the identity."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=gen))


def make_resnet(seed: int = 0) -> ResNet:
    torch.manual_seed(seed)
    model = ResNet()
    _randomize_bn(model, torch.Generator().manual_seed(seed + 1000))
    return model


def image_batches(n_batches: int = 4, batch: int = 16, seed: int = 1) -> list:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch, 3, 16, 16, generator=g), torch.randint(0, 10, (batch,), generator=g))
        for _ in range(n_batches)
    ]


class TokenTransformer(nn.Module):
    def __init__(self, vocab: int = 50, d: int = 16, batch_first: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(
            d, nhead=2, dim_feedforward=32, dropout=0.1, batch_first=batch_first
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 5)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)))


def make_transformer(seed: int = 0, batch_first: bool = True) -> TokenTransformer:
    torch.manual_seed(seed)
    return TokenTransformer(batch_first=batch_first)


def token_batches(n_batches: int = 4, batch: int = 12, t: int = 10, seed: int = 2) -> list:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 50, (batch, t), generator=g) for _ in range(n_batches)]


ENC = [
    "self_attn", "dropout1", "norm1", "linear1", "dropout", "linear2", "dropout2", "norm2",
]  # fmt: skip
TRANSFORMER_LAYERS = (
    ["embed"] + [f"encoder.layers.{i}.{n}" for i in range(2) for n in ENC] + ["head"]
)


def make_qat(seed: int = 0) -> nn.Module:
    """A small conv/linear model prepared for quantization-aware training, calibrated."""
    import torch.ao.quantization as tq

    class Small(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant = tq.QuantStub()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
            self.relu2 = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(32, 10)
            self.dequant = tq.DeQuantStub()

        def forward(self, x):
            x = self.quant(x)
            x = self.relu(self.bn(self.conv(x)))
            x = self.relu2(self.conv2(x))
            return self.dequant(self.fc(self.flatten(self.pool(x))))

    torch.manual_seed(seed)
    model = Small().train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tq.fuse_modules_qat(model, [["conv", "bn", "relu"], ["conv2", "relu2"]])
        model.qconfig = tq.get_default_qat_qconfig("x86")
        tq.prepare_qat(model, inplace=True)
    g = torch.Generator().manual_seed(seed + 7)
    for _ in range(3):  # calibrate the observers (training mode)
        model(torch.randn(16, 3, 8, 8, generator=g))
    return model


QAT_LAYERS = [
    "quant", "conv", "bn", "relu", "conv2", "relu2", "pool", "flatten", "fc", "dequant",
]  # fmt: skip


def qat_batches(n_batches: int = 3, batch: int = 16, seed: int = 3) -> list:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 8, 8, generator=g) for _ in range(n_batches)]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    for x in out.values() if isinstance(out, dict) else out:
        if isinstance(x, torch.Tensor):
            return x
    raise AssertionError("no tensor")


def reference(model: nn.Module, data, names, inp=lambda b: b[0] if isinstance(b, tuple) else b):
    """Each module's output over ``data`` from independent forward hooks (last call wins)."""
    mods = dict(model.named_modules())
    cur: dict = {}
    hooks = [
        mods[n].register_forward_hook(
            lambda m, a, o, n=n: cur.__setitem__(n, _first_tensor(o).detach().clone())
        )
        for n in names
    ]
    outs: dict = {n: [] for n in names}
    modes = {m: m.training for m in model.modules()}
    fq = _observers_off(model)
    model.eval()
    try:
        with torch.no_grad():
            for b in data:
                cur.clear()
                model(inp(b))
                for n in names:
                    outs[n].append(cur[n])
    finally:
        for h in hooks:
            h.remove()
        for m, t in modes.items():
            m.training = t
        for buf, v in fq:
            buf.fill_(v)
    return {n: torch.cat(v).float().numpy() for n, v in outs.items()}


def _observers_off(model):
    saved = []
    for m in model.modules():
        buf = getattr(m, "observer_enabled", None)
        if isinstance(buf, torch.Tensor):
            saved.append((buf, int(buf.item())))
            buf.fill_(0)
    return saved


def pool_ref(a: np.ndarray, mode: str) -> np.ndarray:
    """The documented pooling convention, written independently with NumPy."""
    if mode == "flatten" or a.ndim == 2:
        return a
    axes = (1,) if a.ndim == 3 else tuple(range(2, a.ndim))
    if mode == "mean":
        return a.mean(axis=axes)
    if mode == "max":
        return a.max(axis=axes)
    return a[:, 0, :] if a.ndim == 3 else a[(slice(None), slice(None)) + (0,) * (a.ndim - 2)]


def read_all(path) -> dict:
    s = strata.open(str(path))
    return {n: s.read(n) for n in s.layers}


def hook_state(model: nn.Module) -> list:
    return [
        (n, list(m._forward_hooks), list(m._forward_pre_hooks)) for n, m in model.named_modules()
    ]


def modes(model: nn.Module) -> list:
    return [(n, m.training) for n, m in model.named_modules()]


def assert_self_cka_one(acts: dict) -> np.ndarray:
    res = strata.cka_matrix(acts)
    assert list(res.layers_a) == list(acts)
    vals = np.asarray(res.values)
    np.testing.assert_allclose(np.diag(vals), 1.0, atol=1e-5)
    return vals


def cli_cka(path: Path) -> dict:
    if not (os.path.isfile(STRATA_BIN) and os.access(STRATA_BIN, os.X_OK)):
        pytest.fail(
            f"strata CLI not found at {STRATA_BIN!r}: build it with `cargo build --release "
            "-p strata-cli` (target dir ~/.cache/strata-target) or point STRATA_BIN at it"
        )
    cmd = [STRATA_BIN, "cka", str(path), str(path), "--json", "-q", "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def assert_cli_matches(path: Path, acts: dict) -> None:
    got = cli_cka(path)
    py = strata.cka_matrix(acts)
    assert got["layers_a"] == list(acts) == got["layers_b"]
    np.testing.assert_allclose(np.asarray(got["cka"], dtype=float), py.values, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# ResNet
# ---------------------------------------------------------------------------------------------


def test_resnet_capture_flatten(tmp_path):
    model, data = make_resnet(), image_batches()
    path = st.capture(model, data, tmp_path / "r.arrow")
    assert path == tmp_path / "r.arrow" and path.exists()
    store = strata.open(str(path))
    assert list(store.layers) == RESNET_LAYERS
    assert store.n == 64
    acts = read_all(path)
    ref = reference(model, data, RESNET_LAYERS)
    for n in RESNET_LAYERS:
        assert acts[n].dtype == np.float32
        assert acts[n].shape == ref[n].shape, n
        np.testing.assert_allclose(acts[n], ref[n], rtol=1e-6, atol=1e-6, err_msg=n)
    assert acts["layer1.conv1"].shape == (64, 8, 16, 16)
    assert acts["layer2.bn2"].shape == (64, 16, 8, 8)
    assert acts["fc"].shape == (64, 10)
    # In-place ReLU and `out += identity` must not have altered what was captured.
    assert (acts["layer1.bn2"] < 0).any()


@pytest.mark.parametrize("mode", ["mean", "max", "cls", "first"])
def test_resnet_pool_modes(tmp_path, mode):
    model, data = make_resnet(), image_batches(n_batches=2)
    path = st.capture(model, data, tmp_path / f"{mode}.parquet", pool=mode)
    acts = read_all(path)
    ref = reference(model, data, RESNET_LAYERS)
    assert list(acts) == RESNET_LAYERS
    for n in RESNET_LAYERS:
        want = pool_ref(ref[n], mode)
        assert acts[n].shape == want.shape, n
        np.testing.assert_allclose(acts[n], want, rtol=1e-5, atol=1e-6, err_msg=n)
    assert acts["layer2.conv2"].shape == (32, 16)
    assert acts["pool"].shape == (32, 16)


def test_resnet_self_cka_and_cli(tmp_path):
    model = make_resnet()
    path = st.capture(model, image_batches(n_batches=3), tmp_path / "r.arrow", pool="mean")
    acts = read_all(path)
    vals = assert_self_cka_one(acts)
    assert np.all(vals > -1e-6) and np.all(vals < 1 + 1e-6)
    assert_cli_matches(path, acts)


def test_resnet_state_restored_and_no_hooks(tmp_path):
    model = make_resnet().train()
    model.layer1.bn1.eval()  # a per-module mode that must survive too
    before_modes, before_hooks = modes(model), hook_state(model)
    st.capture(model, image_batches(n_batches=1), tmp_path / "r.arrow", ["layer1", "fc"])
    assert modes(model) == before_modes
    assert hook_state(model) == before_hooks
    assert all(not m._forward_hooks for m in model.modules())


def test_exception_mid_capture_cleans_up(tmp_path):
    model = make_resnet().train()
    before_modes = modes(model)
    out = tmp_path / "partial.arrow"

    def batches():
        yield from image_batches(n_batches=2)
        raise RuntimeError("data loader died")

    with pytest.raises(RuntimeError, match="data loader died"):
        st.capture(model, batches(), out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind either
    assert modes(model) == before_modes
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())

    # An exception inside the forward pass (a batch of the wrong shape), after two batches.
    bad = image_batches(n_batches=2) + [torch.randn(4, 5, 16, 16)]
    with pytest.raises(RuntimeError):
        st.capture(model, bad, out, pool="mean")
    assert not out.exists()
    assert modes(model) == before_modes
    assert all(not m._forward_hooks for m in model.modules())


def test_reused_module_calls(tmp_path):
    model, data = make_resnet(), image_batches(n_batches=1)
    first = read_all(st.capture(model, data, tmp_path / "a.arrow", ["layer1.relu"], calls="first"))
    last = read_all(st.capture(model, data, tmp_path / "b.arrow", ["layer1.relu"]))
    ref = reference(model, data, ["layer1.bn1", "layer1.bn2", "layer1.relu"])
    np.testing.assert_allclose(first["layer1.relu"], np.maximum(ref["layer1.bn1"], 0), atol=1e-6)
    np.testing.assert_allclose(last["layer1.relu"], ref["layer1.relu"], atol=1e-6)
    with pytest.raises(strata.StrataError, match="more than once"):
        st.capture(model, data, tmp_path / "c.arrow", ["layer1.relu"], calls="error")
    assert not (tmp_path / "c.arrow").exists()
    assert all(not m._forward_hooks for m in model.modules())


def test_output_changed_in_place_later(tmp_path):
    """Outputs are kept without a copy after the first batch unless the model changes them in
    place; a model that starts doing so later has that batch run again, with copies."""

    class Sneaky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 4)
            self.calls = 0

        def forward(self, x):
            h = self.lin(x)
            out = h * 2
            self.calls += 1
            if self.calls > 2:
                h.zero_()
            return out

    torch.manual_seed(0)
    net = Sneaky()
    data = [torch.randn(5, 6) for _ in range(4)]
    want = torch.cat([net.lin(x) for x in data]).detach().numpy()
    got = read_all(st.capture(net, data, tmp_path / "s.arrow", ["lin"]))["lin"]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert net.calls == 5  # batch 3 ran twice


def test_layer_selection(tmp_path):
    model, data = make_resnet(), image_batches(n_batches=1)
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    assert st.layer_names(model) == leaves
    # Exact names keep the order given; glob matches follow execution order.
    sel = ["fc", "layer2.conv?", "layer2.downsample.*", "stem"]
    path = st.capture(model, data, tmp_path / "a.arrow", sel)
    assert list(strata.open(str(path)).layers) == [
        "fc", "layer2.downsample.0", "layer2.downsample.1", "layer2.conv1", "layer2.conv2", "stem",
    ]  # fmt: skip
    acts = read_all(path)
    ref = reference(model, data, ["stem"])
    np.testing.assert_allclose(acts["stem"], ref["stem"], atol=1e-6)
    with pytest.raises(strata.StrataError, match="no module named 'layer9'"):
        st.capture(model, data, tmp_path / "b.arrow", ["layer9"])
    with pytest.raises(strata.StrataError, match="matches the pattern"):
        st.capture(model, data, tmp_path / "b.arrow", ["nothing*"])
    with pytest.raises(ValueError, match="pool must be one of"):
        st.capture(model, data, tmp_path / "b.arrow", pool="median")
    assert not (tmp_path / "b.arrow").exists()


def test_batch_forms_and_options(tmp_path, capsys):
    model = make_resnet()
    data = image_batches(n_batches=3)
    ref = reference(model, data, ["fc"])["fc"]
    # dict batches with input_key; max_batches; parquet; meta; progress on stderr
    dict_batches = [{"image": x, "label": y} for x, y in data]
    path = st.capture(
        model, dict_batches, tmp_path / "d.parquet", ["fc"], input_key="image",
        max_batches=2, meta={"run": "test"}, progress=True,
    )  # fmt: skip
    got = read_all(path)["fc"]
    np.testing.assert_allclose(got, ref[:32], atol=1e-6)
    assert "strata.torch.capture" in capsys.readouterr().err
    # plain tensors, and a generator (no len)
    got = read_all(st.capture(model, (x for x, _ in data), tmp_path / "t.arrow", ["fc"]))["fc"]
    np.testing.assert_allclose(got, ref, atol=1e-6)
    # a dict batch without input_key is passed as keyword arguments
    class KW(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, image, scale=1.0):
            return self.inner(image * scale)

    kw = KW(model)
    kw_batches = [{"image": x, "scale": 1.0} for x, _ in data]
    got = read_all(st.capture(kw, kw_batches, tmp_path / "k.arrow", ["inner.fc"]))["inner.fc"]
    np.testing.assert_allclose(got, ref, atol=1e-6)
    with pytest.raises(strata.StrataError, match="no batches"):
        st.capture(model, [], tmp_path / "e.arrow")
    assert not (tmp_path / "e.arrow").exists()


def test_output_selection(tmp_path):
    class Multi(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(6, 4)

        def forward(self, x):
            y = self.lin(x)
            return (y.shape[0], {"a": y * 2, "b": y.relu()})

    class NoTensor(nn.Module):
        def forward(self, x):
            return ("nothing", x.shape[0])

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.multi = Multi()
            self.none = NoTensor()

        def forward(self, x):
            out = self.multi(x)
            self.none(x)
            return out[1]["b"]

    torch.manual_seed(0)
    net = Net()
    data = [torch.randn(5, 6) for _ in range(2)]
    y = torch.cat([net.multi.lin(x) for x in data]).detach().numpy()
    def get(**kw):
        return read_all(st.capture(net, data, tmp_path / "o.arrow", ["multi"], **kw))["multi"]

    np.testing.assert_allclose(get(), 2 * y, atol=1e-6)  # first tensor found
    np.testing.assert_allclose(get(output=lambda o: o[1]["b"]), np.maximum(y, 0), atol=1e-6)
    np.testing.assert_allclose(get(output={"multi": 1}), 2 * y, atol=1e-6)
    with pytest.raises(strata.StrataError, match="holds no tensor"):
        st.capture(net, data, tmp_path / "n.arrow", ["none"])
    with pytest.raises(strata.StrataError, match="selects nothing"):
        st.capture(net, data, tmp_path / "n.arrow", ["multi"], output=7)
    assert not (tmp_path / "n.arrow").exists()


# ---------------------------------------------------------------------------------------------
# Transformer
# ---------------------------------------------------------------------------------------------


def test_transformer_capture(tmp_path):
    model, data = make_transformer(), token_batches()
    model.train()
    path = st.capture(model, data, tmp_path / "t.arrow")
    assert model.training
    store = strata.open(str(path))
    # out_proj never runs as a module (MultiheadAttention uses its weights): self_attn is the
    # layer, its (output, weights) tuple stored through its first tensor.
    assert list(store.layers) == TRANSFORMER_LAYERS
    assert store.n == 48
    acts = read_all(path)
    ref = reference(model, data, TRANSFORMER_LAYERS)
    for n in TRANSFORMER_LAYERS:
        assert acts[n].shape == ref[n].shape, n
        np.testing.assert_allclose(acts[n], ref[n], rtol=1e-5, atol=1e-5, err_msg=n)
    assert acts["embed"].shape == (48, 10, 16)
    assert acts["encoder.layers.1.linear1"].shape == (48, 10, 32)
    assert acts["head"].shape == (48, 10, 5)
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("mode", ["mean", "max", "cls", "first"])
def test_transformer_pool_modes(tmp_path, mode):
    model, data = make_transformer(), token_batches(n_batches=2)
    acts = read_all(st.capture(model, data, tmp_path / "t.arrow", pool=mode))
    ref = reference(model, data, TRANSFORMER_LAYERS)
    for n in TRANSFORMER_LAYERS:
        want = pool_ref(ref[n], mode)
        assert acts[n].shape == want.shape == (24, ref[n].shape[-1]), n
        np.testing.assert_allclose(acts[n], want, rtol=1e-5, atol=1e-5, err_msg=n)


def test_transformer_self_cka_and_cli(tmp_path):
    model = make_transformer()
    path = st.capture(model, token_batches(), tmp_path / "t.arrow", pool="mean")
    acts = read_all(path)
    assert_self_cka_one(acts)
    assert_cli_matches(path, acts)


def test_transformer_batch_first_false(tmp_path):
    model = make_transformer(batch_first=False)
    data = [t.T.contiguous() for t in token_batches(n_batches=2)]  # (T, B) tokens
    names = ["embed", "encoder.layers.0.linear1", "encoder.layers.1.norm2", "head"]
    ref = reference(model, [d for d in data], names)  # (T*batches, B, D): concatenated on T
    acts = read_all(st.capture(model, data, tmp_path / "t.arrow", names, batch_first=False))
    for n in names:
        want = np.concatenate([r.transpose(1, 0, 2) for r in np.split(ref[n], 2, axis=0)])
        assert acts[n].shape == want.shape == (24, 10, want.shape[-1])
        np.testing.assert_allclose(acts[n], want, rtol=1e-5, atol=1e-5, err_msg=n)
    # Pooling applies after the transpose: "cls" is the first token of each example.
    pooled = read_all(
        st.capture(model, data, tmp_path / "m.arrow", names, batch_first=False, pool="cls")
    )
    np.testing.assert_allclose(pooled["head"], acts["head"][:, 0, :], atol=1e-6)


def test_variable_length_tokens(tmp_path):
    model = make_transformer()
    data = token_batches(n_batches=1, t=10) + token_batches(n_batches=1, t=7, seed=5)
    with pytest.raises(strata.StrataError, match="pool='mean'"):
        st.capture(model, data, tmp_path / "v.arrow", ["head"])
    assert not (tmp_path / "v.arrow").exists()
    acts = read_all(st.capture(model, data, tmp_path / "v.arrow", ["head"], pool="mean"))
    assert acts["head"].shape == (24, 5)


# ---------------------------------------------------------------------------------------------
# Quantization-aware training (fake-quantized model)
# ---------------------------------------------------------------------------------------------


def test_qat_capture(tmp_path):
    model, data = make_qat(), qat_batches()
    assert model.training
    state = {k: v.clone() for k, v in model.state_dict().items()}
    hooks_before = hook_state(model)  # prepare_qat's own observer hooks
    assert any(h for _, h, _ in hooks_before)
    assert st.layer_names(model) == QAT_LAYERS
    path = st.capture(model, data, tmp_path / "q.arrow")
    acts = read_all(path)
    assert list(acts) == QAT_LAYERS
    # Capturing changes nothing: observers (scales, zero points) frozen, modes restored, the
    # model's own hooks kept and ours removed.
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model.training
    assert hook_state(model) == hooks_before
    ref = reference(model, data, QAT_LAYERS)
    for n in QAT_LAYERS:
        assert acts[n].shape == ref[n].shape, n
        np.testing.assert_allclose(acts[n], ref[n], rtol=1e-6, atol=1e-6, err_msg=n)
    assert acts["conv"].shape == (48, 8, 8, 8) and acts["fc"].shape == (48, 10)
    # The captured conv output is fake-quantized: few distinct values per tensor.
    assert len(np.unique(acts["conv"])) <= 256
    pooled = read_all(st.capture(model, data, tmp_path / "qm.arrow", pool="max"))
    for n in QAT_LAYERS:
        np.testing.assert_allclose(pooled[n], pool_ref(ref[n], "max"), atol=1e-6, err_msg=n)


def test_qat_self_cka_and_cli(tmp_path):
    model = make_qat()
    path = st.capture(model, qat_batches(), tmp_path / "q.arrow", pool="mean")
    acts = read_all(path)
    assert_self_cka_one(acts)
    assert_cli_matches(path, acts)


def test_qat_exception_restores(tmp_path):
    model = make_qat()
    before = hook_state(model), modes(model)
    fqs = [m for m in model.modules() if hasattr(m, "observer_enabled")]
    enabled = [m.observer_enabled.clone() for m in fqs]
    bad = qat_batches(n_batches=1) + [torch.randn(4, 2, 8, 8)]
    with pytest.raises(RuntimeError):
        st.capture(model, bad, tmp_path / "q.arrow")
    assert not (tmp_path / "q.arrow").exists()
    assert (hook_state(model), modes(model)) == before
    assert all(torch.equal(m.observer_enabled, e) for m, e in zip(fqs, enabled))


# ---------------------------------------------------------------------------------------------
# compare()
# ---------------------------------------------------------------------------------------------


def test_compare_two_resnets():
    a, b = make_resnet(0), make_resnet(1)
    data = image_batches(n_batches=4)
    sel = ["layer1", "layer2", "fc"]
    res = st.compare(a, b, data, sel, sel, pool="mean")
    assert list(res.layers_a) == ["layer1", "layer2", "fc"] == list(res.layers_b)
    vals = np.asarray(res.values)
    assert vals.shape == (3, 3)
    assert np.all(vals >= -1e-6) and np.all(vals <= 1 + 1e-6)
    assert not np.allclose(vals, 1.0)
    # Full default layer sets.
    res = st.compare(a, b, data, pool="mean")
    assert list(res.layers_a) == RESNET_LAYERS == list(res.layers_b)
    vals = np.asarray(res.values)
    assert vals.shape == (18, 18) and np.all(vals >= -1e-6) and np.all(vals <= 1 + 1e-6)
    # Matches capturing each model and calling strata.cka_matrix directly.
    acts_a = {n: pool_ref(v, "mean") for n, v in reference(a, data, RESNET_LAYERS).items()}
    acts_b = {n: pool_ref(v, "mean") for n, v in reference(b, data, RESNET_LAYERS).items()}
    np.testing.assert_allclose(vals, strata.cka_matrix(acts_a, acts_b).values, atol=1e-5)
    assert all(not m._forward_hooks for m in list(a.modules()) + list(b.modules()))


def test_compare_minibatch_and_same_model():
    a, b = make_resnet(0), make_resnet(1)
    data = image_batches(n_batches=4)
    res = st.compare(a, b, data, ["layer1", "fc"], ["layer2", "fc"], pool="mean", minibatch=True)
    assert list(res.layers_a) == ["layer1", "fc"] and list(res.layers_b) == ["layer2", "fc"]
    vals = np.asarray(res.values)
    assert vals.shape == (2, 2) and np.all(np.isfinite(vals))
    assert np.all(vals >= -0.2) and np.all(vals <= 1 + 1e-6)  # debiased minibatch estimate
    same = st.compare(a, a, data, ["layer1", "fc"], ["layer1", "fc"], pool="mean")
    np.testing.assert_allclose(np.diag(np.asarray(same.values)), 1.0, atol=1e-5)
    assert all(not m._forward_hooks for m in a.modules())


def test_import_error_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "try:\n    import strata.torch\nexcept ImportError as e:\n    print(e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "strata.torch needs PyTorch" in r.stdout, r.stdout + r.stderr


def test_compare_batch_size_matches_cli(tmp_path):
    """compare(batch_size=N) is minibatch CKA over consecutive N-example minibatches: the same
    as `strata cka A B --batch-size N` on the two models' stores."""
    a, b = make_resnet(0), make_resnet(1)
    data = image_batches(n_batches=5)  # 80 examples in batches of 16 -> minibatches 24,24,24,8
    layers = ["layer1", "layer2", "fc"]
    res = st.compare(a, b, data, layers, layers, pool="mean", batch_size=24)
    assert list(res.layers_a) == layers == list(res.layers_b)
    pa = st.capture(a, data, tmp_path / "a.arrow", layers, pool="mean")
    pb = st.capture(b, data, tmp_path / "b.arrow", layers, pool="mean")
    if not (os.path.isfile(STRATA_BIN) and os.access(STRATA_BIN, os.X_OK)):
        pytest.fail(f"strata CLI not found at {STRATA_BIN!r} (set STRATA_BIN)")
    cmd = [STRATA_BIN, "cka", str(pa), str(pb), "--batch-size", "24", "--json", "-q",
           "--device", "cpu"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["batches"] == 4
    np.testing.assert_allclose(np.asarray(got["cka"], dtype=float), res.values, atol=1e-6)
    with pytest.raises(ValueError, match="at least 4"):
        st.compare(a, b, data, layers, layers, batch_size=2)
