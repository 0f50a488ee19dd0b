"""How good is my GAN (Shmelkov et al., ECCV 2018): classifiers between real and generated images, for
class-conditional generators.

* **GAN-train**: a classifier trained only on generated images (n, uniform classes) is tested on real
  images: high when G's samples are both right for their class and diverse enough to teach it.
* **GAN-test**: the domain classifier, trained on real images, reads generated images of each requested
  class: high when samples look like their class (precision), whatever their diversity.

The classifier is ganforge's fixed small feature classifier (:func:`~.features.train_classifier`, LeNet for
28 px and 1 channel), seeded, so the numbers are repeatable. They are asked for by name
(``ganforge eval RUN --metrics gan_train,gan_test``): training a classifier takes a minute on a CPU.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch

from ..errors import GanforgeError
from .features import train_classifier


def require_classes(gan) -> None:
    if not gan.n_classes:
        raise GanforgeError("gan_train and gan_test need a class-conditional run (conditional: true); this "
                            "generator has no classes")


def accuracy(extractor, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of images ``x`` (in [-1, 1]) that ``extractor``'s classifier reads as ``y``."""
    return float((extractor(x)["probs"].argmax(1) == y).double().mean())


def per_class_accuracy(extractor, x: torch.Tensor, y: torch.Tensor, classes: int) -> tuple:
    """(overall accuracy, [accuracy of each class, None where it has no image]) from one pass of the classifier."""
    hits = extractor(x)["probs"].argmax(1) == y
    return float(hits.double().mean()), [round(float(hits[y == k].double().mean()), 4) if bool((y == k).any())
                                         else None for k in range(classes)]


def gan_test(gan, extractor, n: int, seed: int) -> Dict[str, object]:
    """The real-trained ``extractor``'s accuracy on n generated images, n/K of each class (and per class)."""
    require_classes(gan)
    x, y = generated_set(gan, n, seed)
    overall, each = per_class_accuracy(extractor, x, y, gan.n_classes)
    return {"gan_test": overall, "gan_test_per_class": each}


def gan_train(gan, x_real: torch.Tensor, y_real: torch.Tensor, n: int, seed: int,
              extra: Optional[tuple] = None) -> Dict[str, object]:
    """A classifier trained on n generated images (n/K per class; with ``extra`` = (x, y) real images added
    to them), tested on the real images ``x_real`` (in [-1, 1]) with labels ``y_real``."""

    require_classes(gan)
    x, y = generated_set(gan, n, seed)
    if extra is not None:
        x, y = torch.cat([x, extra[0]]), torch.cat([y, extra[1]])
    clf = train_classifier(x, y, "generated images", seed=seed, verbose=False)
    return {"gan_train": accuracy(clf, x_real, y_real), "gan_train_images": int(len(y))}


def generated_set(gan, n: int, seed: int):
    """n generated images in [-1, 1] with uniform classes (n/K each), seeded."""
    y = torch.arange(gan.n_classes).repeat_interleave(max(1, n // gan.n_classes))
    return gan.generate(gan.latents(0, len(y), seed), y), y
