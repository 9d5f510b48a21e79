"""Every named model. Names follow the papers, and tests hold them to the papers' sizes.

A new variant is a registry line here: a builder and the arguments that make it.
"""

from __future__ import annotations

from .cnn import cifar_densenet, cifar_resnet
from .mlp import mlp
from .registry import register_model
from .rnn import RecurrentNet
from .transformer import transformer

# He2015 Sec. 4.2: CIFAR ResNets with option-A shortcuts, and the plain nets they beat.
for depth in (20, 32, 44, 56, 110, 1202):
    register_model(f"resnet{depth}", cifar_resnet, "resnet", f"He2015 CIFAR ResNet-{depth}, option A", depth=depth)
    register_model(
        f"plain{depth}", cifar_resnet, "plain", f"He2015 plain net of {depth} layers", depth=depth, shortcut="none"
    )

# He2016: pre-activation ResNets (basic 110; bottleneck 164 and 1001 with projections).
register_model("preact110", cifar_resnet, "preact", "He2016 pre-activation ResNet-110", depth=110, order="preact")
for depth in (164, 1001):
    register_model(
        f"preact{depth}",
        cifar_resnet,
        "preact",
        f"He2016 pre-activation bottleneck ResNet-{depth}",
        depth=depth,
        bottleneck=True,
        downsample="B",
        order="preact",
    )

# Normalization-free residual nets: Fixup (Zhang 2019), SkipInit (De & Smith 2020), ReZero
# (Bachlechner 2020). In a CNN, SkipInit and ReZero are the same construction (a scalar,
# initialized to 0, closing every branch; no BN); both names are kept as the papers use them.
for depth in (20, 56, 110):
    register_model(
        f"fixup_resnet{depth}",
        cifar_resnet,
        "normfree",
        f"Fixup ResNet-{depth}, no BN",
        depth=depth,
        norm="none",
        scalar="fixup",
    )
    register_model(
        f"skipinit_resnet{depth}",
        cifar_resnet,
        "normfree",
        f"SkipInit ResNet-{depth}, no BN",
        depth=depth,
        norm="none",
        scalar="skipinit",
    )
    register_model(
        f"rezero_resnet{depth}",
        cifar_resnet,
        "normfree",
        f"ReZero ResNet-{depth}, no BN",
        depth=depth,
        norm="none",
        scalar="rezero",
    )
    register_model(
        f"plain{depth}_nobn",
        cifar_resnet,
        "normfree",
        f"plain net of {depth} layers, no BN",
        depth=depth,
        shortcut="none",
        norm="none",
    )

# Stochastic depth (Huang2016): ResNet-110 with linearly decaying drop-path, p_L = 0.5.
register_model(
    "resnet110_droppath", cifar_resnet, "droppath", "Huang2016 stochastic-depth ResNet-110", depth=110, drop_path=0.5
)

# DenseNet (Huang 2017): concatenation skips.
register_model("densenet40", cifar_densenet, "dense", "DenseNet-40 (k=12), concatenation skips", depth=40, growth=12)

# Fully connected nets on flattened images (Srivastava2015 for highway).
register_model("mlp_plain", mlp, "mlp", "plain ReLU MLP, 50 hidden layers of 256", depth=50, width=256)
register_model("mlp_plain_bn", mlp, "mlp", "plain ReLU MLP with BN, 50 x 256", depth=50, width=256, norm="bn")
register_model(
    "mlp_residual",
    mlp,
    "mlp",
    "residual MLP, 50 two-layer full-pre-activation units of 64",
    depth=50,
    width=64,
    layers_per_block=2,
    shortcut="identity",
    order="preact",
    norm="bn",
)
register_model(
    "mlp_looks_linear",
    mlp,
    "mlp",
    "plain CReLU MLP with looks-linear init (Balduzzi2017)",
    depth=50,
    width=256,
    activation="crelu",
    init="looks-linear",
)
register_model(
    "highway_mlp",
    mlp,
    "highway",
    "Srivastava2015 highway net, width 50, gate bias -2",
    depth=50,
    width=50,
    shortcut="exclusive-gate",
    order="relu-before-add",
)
register_model(
    "highway_plain_mlp",
    mlp,
    "highway",
    "plain counterpart of highway_mlp, width 71 (parameter-matched)",
    depth=50,
    width=71,
)

# Transformer encoders (Vaswani2017, Xiong2020, Bachlechner2020) for token tasks.
for variant in ("post-ln", "pre-ln", "no-residual", "rezero"):
    register_model(
        f"transformer_{variant.replace('-', '')}",
        transformer,
        "transformer",
        f"6-layer {variant} Transformer encoder, d_model 64",
        depth=6,
        variant=variant,
    )

# Recurrent nets: gates as skip connections through time.
for cell, label in (("tanh", "rnn_tanh"), ("gru", "gru"), ("lstm", "lstm")):
    register_model(label, RecurrentNet, "rnn", f"{cell} recurrent net, hidden 128, adding-problem shape", cell=cell)
