"""Running code written for itwinai 0.4 with no change at all, when itwinai is not installed.

``itwinai-ray exec-pipeline`` calls :func:`install`. If ``import itwinai`` would fail, an
import hook then serves ``itwinai.*`` modules from their itwinai_ray equivalents (the table
in :mod:`.aliases`): a user module that does ``from itwinai.torch.trainer import
TorchTrainer`` runs unchanged, and its ``ray_*`` arguments configure HPO as in itwinai 0.4.
With itwinai installed nothing is shadowed: the hook sits at the end of ``sys.meta_path`` and
is asked only for modules no other finder has. Each served module is named once in the log.
Ray workers install the same hook before they unpickle the trainer.

From Python: ``import itwinai_ray.itwinai_compat as c; c.install()``; :func:`uninstall` undoes it.
"""

from __future__ import annotations

from .aliases import ITWINAI_MODULES, itwinai_object_aliases
from .hook import install, is_installed, real_itwinai_available, uninstall

__all__ = ["ITWINAI_MODULES", "install", "is_installed", "itwinai_object_aliases",
           "real_itwinai_available", "uninstall"]
