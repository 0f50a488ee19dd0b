"""Plain nn.Modules for G and D, built from the model config and the data's shape."""

from __future__ import annotations

from typing import Tuple

from torch import nn

from ..config import ModelConfig
from .mlp import MLPDiscriminator, MLPGenerator

__all__ = ["MLPGenerator", "MLPDiscriminator", "build_generator", "build_discriminator"]


def build_generator(cfg: ModelConfig, data_shape: Tuple[int, ...]) -> nn.Module:
    # Only 'mlp' exists so far; the config validates arch against the known choices.
    return MLPGenerator(cfg.z_dim, cfg.g_hidden, data_shape, act=cfg.g_act, leak=cfg.leak, norm=cfg.g_norm,
                        norm_first=cfg.g_norm_first, bn_eps=cfg.bn_eps, bn_momentum=cfg.bn_momentum)


def build_discriminator(cfg: ModelConfig, data_shape: Tuple[int, ...]) -> nn.Module:
    return MLPDiscriminator(data_shape, cfg.d_hidden, act=cfg.d_act, leak=cfg.leak, dropout=cfg.d_dropout)
