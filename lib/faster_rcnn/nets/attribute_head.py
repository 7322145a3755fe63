"""The attribute head of bottom-up attention (BUTD): attributes of a box given its pooled feature and its class.

Each roi's pooled feature (the tail output, D wide) is concatenated with an embedding of a class: the gt class
of the roi in training, the argmax of its class scores over all K classes (background included) at test time
(BUTD's ``predicted_cls``). One hidden layer with ReLU then scores A + 1 attributes, slot 0 meaning "no
attribute". The submodule names follow BUTD's layers (``cls_embedding``, ``fc_attr``, ``attr_score``), so
converted BUTD weights load by name.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['AttributeHead']


class AttributeHead(nn.Module):
    """Args:
        num_classes: K, background included (the embedding's rows).
        feature_dim: D, the width of the pooled feature of a roi.
        num_attributes: A + 1, slot 0 "no attribute" included (BUTD: 401).
        embed_dim: the class embedding's width (BUTD: 256); hidden: the hidden layer's (BUTD: 512).
    """

    def __init__(self, num_classes: int, feature_dim: int, num_attributes: int, embed_dim: int = 256,
                 hidden: int = 512) -> None:
        super().__init__()
        if num_attributes < 2:
            raise ValueError(f'num_attributes must count "no attribute" and at least one attribute, '
                             f'got {num_attributes}')
        self.num_attributes = num_attributes
        self.cls_embedding = nn.Embedding(num_classes, embed_dim)
        self.fc_attr = nn.Linear(feature_dim + embed_dim, hidden)
        self.attr_score = nn.Linear(hidden, num_attributes)
        # The Gaussian initialisation of the other new layers (std 0.01), biases 0.
        for layer in (self.fc_attr, self.attr_score):
            nn.init.normal_(layer.weight, mean=0.0, std=0.01)
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.cls_embedding.weight, mean=0.0, std=0.01)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """features (R, D), labels (R,) int64 class indices -> attribute logits (R, A + 1) in fp32."""
        embedded = self.cls_embedding(labels).to(features.dtype)
        hidden = F.relu(self.fc_attr(torch.cat((features, embedded), dim=1)), inplace=True)
        return self.attr_score(hidden).float()
