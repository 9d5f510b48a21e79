"""Adapters: torchvision- and timm-style ResNets follow the block protocol without copying weights.

torchvision and timm cannot be installed here, so these are small replicas with the same
module names, structure and forward code as the libraries' ResNets.
"""

import pytest
import torch
from torch import nn

import reslab
from reslab.models import block_modes, follows_block_protocol
from reslab.probes.adapters import adapt_timm_resnet, adapt_torchvision_resnet, as_block_net
from reslab.probes.lesion import lesion_predictions, lesion_study
from reslab.probes.paths import PathSampler, path_gradients, summed_cross_entropy

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


def _randomize_bn(model):
    """Give BN layers non-trivial statistics and affine parameters, so mistakes show."""
    gen = torch.Generator().manual_seed(5)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


REPLICAS = {
    "tv-basic": lambda: TvResNet(TvBasicBlock, [2, 1, 2, 1]),
    "tv-bottleneck": lambda: TvResNet(TvBottleneck, [1, 3, 1, 1], widths=(4, 8, 8, 16)),
    "timm-basic": lambda: TimmResNet(TimmBasicBlock, [2, 1, 2, 1], drop_rate=0.2),
    "timm-bottleneck": lambda: TimmResNet(TimmBottleneck, [1, 3, 1, 1], widths=(4, 8, 8, 16)),
}


@pytest.fixture(params=sorted(REPLICAS))
def pair(request):
    torch.manual_seed(0)
    original = _randomize_bn(REPLICAS[request.param]()).eval()
    return request.param, original, as_block_net(original, input_shape=(3, 32, 32))


def test_adapter_follows_the_protocol_and_equals_the_original(pair):
    name, original, adapted = pair
    assert follows_block_protocol(adapted)
    assert adapted.arch["adapted_from"] == name.split("-")[0].replace("tv", "torchvision")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = original(x)
        assert torch.allclose(adapted(x), expected, atol=1e-6)
        h = adapted.forward_blocks(adapted.stem(x), 0, 3)
        assert torch.allclose(adapted.head(adapted.forward_blocks(h, 3)), expected, atol=1e-6)
    downsample = [b.changes_shape for b in adapted.blocks]
    units = [u for i in range(1, 5) for u in getattr(original, f"layer{i}")]
    assert downsample == [u.downsample is not None for u in units]


def test_adapter_shares_parameters_and_buffers_instead_of_copying(pair):
    _, original, adapted = pair
    assert {id(p) for p in adapted.parameters()} == {id(p) for p in original.parameters()}
    assert {id(b) for b in adapted.buffers()} == {id(b) for b in original.buffers()}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        original.fc.weight.mul_(2.0)  # a change to the original is a change to the adapter
        assert torch.allclose(adapted(x), original(x), atol=1e-6)


def test_adapter_trains_the_original():
    torch.manual_seed(0)
    original = TvResNet(TvBasicBlock, [1, 1, 1, 1])
    adapted = as_block_net(original)
    before = original.layer2[0].conv1.weight.detach().clone()
    opt = torch.optim.SGD(adapted.parameters(), lr=0.1)
    nn.functional.cross_entropy(adapted(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert not torch.equal(original.layer2[0].conv1.weight, before)


def test_train_mode_forward_matches_too():
    torch.manual_seed(0)
    original = TimmResNet(TimmBasicBlock, [1, 1, 1, 1], drop_path_rate=0.0)
    adapted = as_block_net(original).train()
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(adapted(x), original.train()(x), atol=1e-5)  # batch statistics, same graph


def test_skip_only_outputs_the_downsample_path(pair):
    _, original, adapted = pair
    units = [u for i in range(1, 5) for u in getattr(original, f"layer{i}")]
    j = next(i for i, u in enumerate(units) if u.downsample is not None and i > 0)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        h = adapted.forward_blocks(adapted.stem(x), 0, j)
        adapted.blocks[j].mode = "skip-only"
        assert torch.allclose(adapted.blocks[j](h), units[j].downsample(h))
        adapted.blocks[j].mode = "full"


def test_lesion_and_path_probes_run_on_adapters(pair):
    _, _, adapted = pair
    x, y = torch.randn(6, 3, 32, 32), torch.randint(10, (6,))
    cached = lesion_predictions(adapted, x, cached=True, batch_size=3)
    naive = lesion_predictions(adapted, x, cached=False, batch_size=3)
    assert torch.equal(cached[0], naive[0]) and torch.equal(cached[1], naive[1])
    result = lesion_study(adapted, x, y, draws=2, batch_size=3)
    assert result.num_blocks == len(adapted.blocks) and result.downsampling.any()
    assert result.reorder_k.size > 0  # every replica has a stage with two same-shape blocks
    paths = path_gradients(adapted, x, y, samples_per_length=2, batch_size=3)
    assert paths.num_blocks == len(adapted.blocks) and sum(paths.counts) == 2 ** len(adapted.blocks)
    assert (paths.magnitude > 0).all()
    # a sampled path equals a fresh backward with the routing modes set on the adapted blocks
    sampler = PathSampler(adapted, x[:2], y[:2])
    chosen = {0, 2, 3}
    modes = ["grad-branch-only" if i in chosen else "grad-skip-only" for i in range(len(adapted.blocks))]
    h = adapted.stem(x[:2]).detach().requires_grad_()
    with block_modes(adapted.blocks, modes):
        summed_cross_entropy(adapted.head(adapted.forward_blocks(h)), y[:2]).backward()
    assert torch.allclose(sampler.input_gradient(chosen), h.grad, rtol=1e-4, atol=1e-7)


def test_explicit_adapters_and_errors():
    tv = TvResNet(TvBasicBlock, [1, 1, 1, 1])
    timm = TimmResNet(TimmBasicBlock, [1, 1, 1, 1])
    assert adapt_torchvision_resnet(tv).arch["adapted_from"] == "torchvision"
    assert adapt_timm_resnet(timm).arch["adapted_from"] == "timm"
    zoo = reslab.create_model("resnet20")
    assert as_block_net(zoo) is zoo
    with pytest.raises(reslab.ConfigError):
        as_block_net(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(reslab.ConfigError):
        adapt_timm_resnet(tv)  # no act1: not timm's structure
