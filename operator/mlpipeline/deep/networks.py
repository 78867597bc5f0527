"""The networks of the built-in deep-learning families."""

from __future__ import annotations

from typing import Any


def mlp(inputs: int, outputs: int, width: int, depth: int, dropout: float) -> Any:
    """``depth`` hidden layers of ``width`` units (ReLU, dropout) for tabular features."""
    from torch import nn

    layers: list[nn.Module] = []
    size = inputs
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU(), nn.Dropout(dropout)]
        size = width
    layers.append(nn.Linear(size, outputs))
    return nn.Sequential(*layers)


def cnn(shape: tuple[int, ...], outputs: int, width: int, depth: int, dropout: float) -> Any:
    """``depth`` blocks of 3x3 convolution, batch norm, ReLU and 2x2 pooling (while the image is at
    least 4 pixels a side), channels doubling from ``width``; then global pooling and a linear head."""
    from torch import nn

    channels, height, side = shape[0], shape[1], shape[2]
    layers: list[nn.Module] = []
    for block in range(depth):
        out = width * 2**block
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
        if min(height, side) >= 4:
            layers.append(nn.MaxPool2d(2))
            height, side = height // 2, side // 2
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, outputs)]
    return nn.Sequential(*layers)
