"""Model code in the styles people write, for block discovery: small replicas, written here.

torchvision and timm cannot be installed beside this torch build, so their ResNets are
replicas with the same module names, structure and forward code; the CIFAR ResNet follows
the widely used code style (a ``BasicBlock`` whose skip is ``self.shortcut``: an option-A
lambda layer or an ``nn.Sequential`` projection); the pre-activation ResNet and the
Transformer layers are written the way papers' reference code writes them.
"""

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------- torchvision-style replica


def _downsample(cin, cout, stride):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class TvBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class TvBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class TvResNet(nn.Module):
    def __init__(self, block, layers, widths=(8, 16, 32, 64), num_classes=10):
        super().__init__()
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for i, (width, count) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            units = []
            for j in range(count):
                down = _downsample(self.inplanes, width * block.expansion, stride) if j == 0 else None
                units.append(block(self.inplanes, width, stride if j == 0 else 1, down))
                self.inplanes = width * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*units))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


# ----------------------------------------------------------------------- timm-style replica


class DropPath(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class SelectAdaptivePool2d(nn.Module):
    def forward(self, x):
        return x.mean((2, 3))


class SEModule(nn.Module):
    """Squeeze-and-excitation as timm's: returns x scaled by a channel gate."""

    def __init__(self, channels):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * self.fc(x.mean((2, 3), keepdim=True)).sigmoid()


class TimmBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, drop_path=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.drop_block = nn.Identity()
        self.act1 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = None
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = drop_path

    def forward(self, x):
        shortcut = x
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.drop_block(x)
        x = self.act1(x)
        x = self.aa(x)
        x = self.conv2(x)
        x = self.bn2(x)
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        x = self.act2(x)
        return x


class TimmBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, drop_path=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.drop_block = nn.Identity()
        self.act2 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.se = SEModule(planes * 4)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = drop_path

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.conv2(x)
        x = self.bn2(x)
        x = self.drop_block(x)
        x = self.act2(x)
        x = self.aa(x)
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        x = self.act3(x)
        return x


class TimmResNet(nn.Module):
    def __init__(self, block, layers, widths=(8, 16, 32, 64), num_classes=10, drop_rate=0.0, drop_path_rate=0.1):
        super().__init__()
        inplanes = widths[0]
        self.drop_rate = drop_rate
        self.conv1 = nn.Sequential(nn.Conv2d(3, inplanes, 3, 2, 1, bias=False), nn.BatchNorm2d(inplanes), nn.ReLU())
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        total, index = sum(layers), 0
        for i, (width, count) in enumerate(zip(widths, layers)):
            stride = 1 if i == 0 else 2
            units = []
            for j in range(count):
                down = _downsample(inplanes, width * block.expansion, stride) if j == 0 else None
                rate = drop_path_rate * index / (total - 1)
                units.append(block(inplanes, width, stride if j == 0 else 1, down, DropPath(rate) if rate else None))
                inplanes = width * block.expansion
                index += 1
            setattr(self, f"layer{i + 1}", nn.Sequential(*units))
        self.global_pool = SelectAdaptivePool2d()
        self.fc = nn.Linear(inplanes, num_classes)

    def forward_features(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x):
        x = self.global_pool(x)
        if self.drop_rate:
            x = nn.functional.dropout(x, p=float(self.drop_rate), training=self.training)
        return self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------- the common CIFAR ResNet code style


class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class CifarBasicBlock(nn.Module):
    """He2015's CIFAR unit; option A pads a strided subsample with zero channels, option B projects."""

    def __init__(self, in_planes, planes, stride=1, option="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                pad = (planes - in_planes) // 2
                self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)))
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, n=1, option="A", widths=(4, 8, 16), num_classes=10):
        super().__init__()
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        for i, width in enumerate(widths):
            units = []
            for j in range(n):
                units.append(CifarBasicBlock(self.in_planes, width, 2 if i and not j else 1, option))
                self.in_planes = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*units))
        self.linear = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


# ------------------------------------------------------------------ pre-activation ResNet


class PreActBlock(nn.Module):
    """He2016's full pre-activation unit; a projection shortcut reads the pre-activated input."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActResNet(nn.Module):
    def __init__(self, n=2, widths=(4, 8, 16), num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        layers, in_planes = [], widths[0]
        for i, width in enumerate(widths):
            for j in range(n):
                layers.append(PreActBlock(in_planes, width, 2 if i and not j else 1))
                in_planes = width
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = self.layers(self.conv1(x))
        out = F.relu(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


# ----------------------------------------------------------------------- Transformer layers


class SelfAttention(nn.Module):
    """Causal multi-head self-attention written out (nanoGPT style)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))


class PreLNLayer(nn.Module):
    def __init__(self, dim, heads, attention="own"):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = (
            SelfAttention(dim, heads) if attention == "own" else nn.MultiheadAttention(dim, heads, batch_first=True)
        )
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(0.1))

    def attend(self, x):
        if isinstance(self.attn, nn.MultiheadAttention):
            return self.attn(x, x, x, need_weights=False)[0]
        return self.attn(x)

    def forward(self, x):
        x = x + self.attend(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return x


class PostLNLayer(PreLNLayer):
    def forward(self, x):
        x = self.ln1(x + self.attend(x))
        return self.ln2(x + self.mlp(x))


class TokenTransformer(nn.Module):
    """Token ids -> embeddings + learned positions -> layers -> final LayerNorm -> logits."""

    def __init__(self, layer="pre", depth=2, dim=16, heads=2, vocab=11, seq_len=8, attention="own"):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, seq_len, dim) * 0.1)
        if layer == "torch-pre" or layer == "torch-post":
            make = lambda: nn.TransformerEncoderLayer(  # noqa: E731
                dim, heads, 4 * dim, dropout=0.1, batch_first=True, norm_first=layer == "torch-pre"
            )
        else:
            make = lambda: (PreLNLayer if layer == "pre" else PostLNLayer)(dim, heads, attention)  # noqa: E731
        self.layers = nn.ModuleList([make() for _ in range(depth)])
        self.norm = nn.LayerNorm(dim) if layer in ("pre", "torch-pre") else nn.Identity()
        if layer == "torch-stack":  # nn.TransformerEncoder: Pre-LN layers and the final norm in one module
            one = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.1, batch_first=True, norm_first=True)
            self.layers = nn.ModuleList(
                [nn.TransformerEncoder(one, depth, nn.LayerNorm(dim), enable_nested_tensor=False)]
            )
            self.norm = nn.Identity()
        self.head = nn.Linear(dim, vocab)

    def forward(self, idx):
        x = self.tok(idx) + self.pos[:, : idx.size(1)]
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))


# ------------------------------------------------------------------ styles not discovered


class PlainCNN(nn.Module):
    """No shortcut anywhere: nothing to discover."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        )
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


class ShapeCheckedNet(CifarResNet):
    """A forward that branches on a tensor's value cannot be traced."""

    def forward(self, x):
        if x.abs().max() > 1e6:
            raise ValueError("input out of range")
        return super().forward(x)


def randomize_norms(model):
    """Give BN/LN layers non-trivial statistics and affine parameters, so mistakes show."""
    gen = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


# name -> (builder, example input)
STYLES = {
    "torchvision-basic": (lambda: TvResNet(TvBasicBlock, [2, 1, 2, 1]), lambda: torch.randn(3, 3, 32, 32)),
    "torchvision-bottleneck": (
        lambda: TvResNet(TvBottleneck, [1, 3, 1, 1], widths=(4, 8, 8, 16)),
        lambda: torch.randn(3, 3, 32, 32),
    ),
    "timm-basic": (lambda: TimmResNet(TimmBasicBlock, [2, 1, 2, 1], drop_rate=0.2), lambda: torch.randn(3, 3, 32, 32)),
    "timm-bottleneck": (
        lambda: TimmResNet(TimmBottleneck, [1, 3, 1, 1], widths=(4, 8, 8, 16)),
        lambda: torch.randn(3, 3, 32, 32),
    ),
    "cifar-option-a": (lambda: CifarResNet(2, "A"), lambda: torch.randn(3, 3, 16, 16)),
    "cifar-option-b": (lambda: CifarResNet(2, "B"), lambda: torch.randn(3, 3, 16, 16)),
    "preact": (lambda: PreActResNet(2), lambda: torch.randn(3, 3, 16, 16)),
    "transformer-pre-ln": (lambda: TokenTransformer("pre"), lambda: torch.randint(11, (3, 8))),
    "transformer-post-ln": (lambda: TokenTransformer("post"), lambda: torch.randint(11, (3, 8))),
    "transformer-pre-ln-mha": (lambda: TokenTransformer("pre", attention="mha"), lambda: torch.randint(11, (3, 8))),
    "torch-encoder-pre-ln": (lambda: TokenTransformer("torch-pre"), lambda: torch.randint(11, (3, 8))),
    "torch-encoder-post-ln": (lambda: TokenTransformer("torch-post"), lambda: torch.randint(11, (3, 8))),
    "torch-encoder-stack": (lambda: TokenTransformer("torch-stack"), lambda: torch.randint(11, (3, 8))),
}
# blocks each style has: residual units (CNNs) or sub-layers (Transformers: attention and MLP)
EXPECTED_BLOCKS = {
    "torchvision-basic": 6, "torchvision-bottleneck": 6, "timm-basic": 6, "timm-bottleneck": 6,
    "cifar-option-a": 6, "cifar-option-b": 6, "preact": 6, "transformer-pre-ln": 4, "transformer-post-ln": 4,
    "transformer-pre-ln-mha": 4, "torch-encoder-pre-ln": 4, "torch-encoder-post-ln": 4, "torch-encoder-stack": 4,
}  # fmt: skip
