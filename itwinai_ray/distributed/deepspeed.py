"""DeepSpeed strategy (``strategy: deepspeed``): ZeRO data parallelism on a torch.distributed group.

Processes come from torchrun, srun or Ray Train, exactly as for ``ddp``: the process group is
created (or adopted) by :class:`~itwinai_ray.distributed.torch_dist.TorchDistributedStrategy`,
and ``deepspeed.init_distributed`` then only adopts it. ``import deepspeed`` takes ~10 s, so it
happens in :meth:`DeepSpeedStrategy.init`, never at import or construction.

The DeepSpeed config is a dict (e.g. from YAML) or the path of a JSON file. Its top-level keys
and the ZeRO stage are checked when the strategy is built, before any process starts.
``train_micro_batch_size_per_gpu`` is the trainer's ``batch_size`` unless the config sets it
(or ``train_batch_size``). With an ``optimizer`` section DeepSpeed builds the optimizer (its
``lr`` defaults to the trainer's, so ``optim_lr`` stays tunable); without one, the trainer's
optimizer is used. On CPU use ``{"type": "Adam", "params": {"torch_adam": true}}``: DeepSpeed's
fused Adam needs a GPU.

Checkpoints: every rank calls ``engine.save_checkpoint`` into the same directory (under Ray,
each rank into its own, which Ray merges into one), and rank 0 adds ``model.pt``,
``trainer_state.json`` and ``config.yaml``, so a DeepSpeed checkpoint is also a plain
TorchTrainer checkpoint for the model weights.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from itwinai_ray._suggest import did_you_mean
from itwinai_ray.distributed.torch_dist import TorchDistributedStrategy
from itwinai_ray.errors import MissingDependencyError, StrategyError

log = logging.getLogger(__name__)

#: Sub-directory of a checkpoint that holds DeepSpeed's own files, and its checkpoint tag.
DS_SUBDIR = "deepspeed"
DS_TAG = "state"
#: Measured here with DeepSpeed 0.19.8 on CPU (gloo, torch_adam): ZeRO stages 0-3 train, also
#: with offload once zero_force_ds_cpu_optimizer is false; offload with the default
#: DeepSpeedCPUAdam hangs building its C++ op, and fp16 is refused by the CPU accelerator.


def deepspeed_available() -> bool:
    """Whether deepspeed is installed (without importing it)."""
    return importlib.util.find_spec("deepspeed") is not None


def _import_deepspeed() -> Any:
    if not deepspeed_available():
        raise MissingDependencyError("deepspeed", "strategy 'deepspeed'", extra="deepspeed")
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
    import deepspeed

    return deepspeed


def _reset_deepspeed_groups() -> None:
    """Forget DeepSpeed's cached groups (they refer to a destroyed process group)."""
    import sys

    groups = sys.modules.get("deepspeed.utils.groups")
    comm = sys.modules.get("deepspeed.comm.comm")
    if groups is not None:
        for name in ("_WORLD_GROUP", "_ZERO_PARAM_INTRA_PARALLEL_GROUP", "_DATA_PARALLEL_GROUP",
                     "_MODEL_PARALLEL_GROUP", "_TENSOR_MODEL_PARALLEL_GROUP", "mpu",
                     "mesh_device"):
            if hasattr(groups, name):
                setattr(groups, name, None)
        for name in ("_EXPERT_PARALLEL_GROUP", "_EXPERT_PARALLEL_GROUP_RANKS",
                     "_EXPERT_DATA_PARALLEL_GROUP", "_EXPERT_DATA_PARALLEL_GROUP_RANKS",
                     "_ALL_TO_ALL_GROUP"):
            if isinstance(getattr(groups, name, None), dict):
                getattr(groups, name).clear()
    if comm is not None and hasattr(comm, "cdb"):
        comm.cdb = None


@functools.lru_cache(maxsize=1)
def known_config_keys() -> frozenset[str]:
    """Every key name that DeepSpeed's config modules mention, read from source (no import).

    A superset of the valid top-level keys: enough to catch a misspelt key before any
    process starts, never rejecting a valid one. Empty when deepspeed is not installed.
    """
    spec = importlib.util.find_spec("deepspeed")
    if spec is None or spec.origin is None:
        return frozenset()
    word = re.compile(r"^[a-z][a-z0-9_]*$")
    keys: set[str] = set()
    for path in Path(spec.origin).parent.rglob("*.py"):
        if "config" not in path.name and "constants" not in path.name:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        keys.update(node.value for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and word.match(node.value))
    return frozenset(keys)


def load_ds_config(config: dict[str, Any] | str | os.PathLike | None) -> dict[str, Any]:
    """The DeepSpeed config as a new dict: from a dict, a JSON file path, or ``{}``."""
    if config is None:
        return {}
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        if not path.is_file():
            raise StrategyError(
                f"DeepSpeed config file {str(path)!r} does not exist: give the path of a JSON "
                "file or the config itself as a mapping (strategy: {name: deepspeed, config: "
                "{...}})"
            )
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise StrategyError(f"DeepSpeed config file {path} is not valid JSON: {err}") from err
        if not isinstance(loaded, dict):
            raise StrategyError(f"DeepSpeed config file {path} must hold a JSON object")
        return loaded
    if isinstance(config, dict):
        return copy.deepcopy(dict(config))
    raise StrategyError(
        f"DeepSpeed config must be a mapping or a JSON file path, got {type(config).__name__}"
    )


def check_ds_config(config: dict[str, Any], on_cpu: bool) -> None:
    """Check top-level keys and the ZeRO stage; raise StrategyError naming the fix."""
    known = known_config_keys()
    if known:
        unknown = [k for k in config if k not in known]
        if unknown:
            key = unknown[0]
            raise StrategyError(
                f"Unknown DeepSpeed config key {key!r}.{did_you_mean(key, sorted(known))} "
                "Fix or remove it (see https://www.deepspeed.ai/docs/config-json/)"
            )
    zero = config.get("zero_optimization", {})
    if not isinstance(zero, dict):
        raise StrategyError(
            f"DeepSpeed 'zero_optimization' must be a mapping like {{stage: 1}}, got {zero!r}"
        )
    stage = zero.get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise StrategyError(f"DeepSpeed ZeRO stage {stage!r} does not exist: use 0, 1, 2 or 3")
    if not on_cpu:
        return
    offload = [k for k in ("offload_optimizer", "offload_param") if zero.get(k)]
    if offload and config.get("zero_force_ds_cpu_optimizer", True) is not False:
        raise StrategyError(
            f"DeepSpeed ZeRO stage {stage} with zero_optimization.{offload[0]} is not "
            "supported on CPU as configured: it needs DeepSpeedCPUAdam, a C++ op that is not "
            "built here (the run hangs compiling it). Remove the offload (the model already "
            "lives in host memory), or set zero_force_ds_cpu_optimizer: false and "
            "optimizer.params.torch_adam: true"
        )
    fp16 = config.get("fp16", {})
    if isinstance(fp16, dict) and fp16.get("enabled") is True:
        raise StrategyError(
            "DeepSpeed fp16 is not supported on CPU: use bf16: {enabled: true} or remove fp16")

class DeepSpeedStrategy(TorchDistributedStrategy):
    """``strategy: deepspeed``: a DeepSpeed engine on a torch.distributed process group.

    Args:
        config: a DeepSpeed config dict or the path of a JSON file (default: ZeRO stage 0
            with the trainer's optimizer).
        backend: "auto" (nccl with CUDA, else gloo), "nccl" or "gloo".
        timeout_s: timeout of collective operations, in seconds.
    """

    name: ClassVar[str] = "deepspeed"
    checkpoint_on_all_ranks: ClassVar[bool] = True

    def __init__(self, config: dict[str, Any] | str | None = None, backend: str = "auto",
                 timeout_s: float = 1800) -> None:
        super().__init__(backend=backend, timeout_s=timeout_s, config=config)
        self.ds_config = load_ds_config(config)
        check_ds_config(self.ds_config, on_cpu=not torch.cuda.is_available())
        self.batch_size: int | None = None  # of the first dataloader built (the training one)
        self.engine: Any = None

    def init(self) -> None:
        """Create or adopt the process group, then let DeepSpeed adopt it."""
        if self._initialized:
            return
        deepspeed = _import_deepspeed()
        super().init()
        deepspeed.init_distributed(dist_backend=self._resolve_backend(),
                                   auto_mpi_discovery=False)  # the group exists

    def clean_up(self) -> None:
        """Drop the engine; destroy the process group only if :meth:`init` created it.

        DeepSpeed caches its process groups in module globals; once the group is destroyed
        they are reset, so a later trainer in the same process starts clean.
        """
        self.engine = None
        destroyed = self.owns_process_group
        super().clean_up()
        if destroyed:
            _reset_deepspeed_groups()

    def create_dataloader(self, dataset: Dataset, batch_size: int = 1,
                          **kwargs: Any) -> DataLoader:
        """As the base class; the first batch size seen becomes the micro-batch size."""
        if self.batch_size is None:
            self.batch_size = batch_size
        return super().create_dataloader(dataset, batch_size=batch_size, **kwargs)

    def engine_config(self, optimizer: Any = None,
                      config_params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The config given to ``deepspeed.initialize``: micro-batch and lr filled in."""
        cfg = copy.deepcopy(self.ds_config)
        cfg.update(copy.deepcopy(dict(config_params or {})))
        if "train_micro_batch_size_per_gpu" not in cfg and "train_batch_size" not in cfg:
            if self.batch_size is None:
                raise StrategyError(
                    "strategy 'deepspeed' cannot derive train_micro_batch_size_per_gpu: no "
                    "dataloader was built with strategy.create_dataloader. Set "
                    "train_micro_batch_size_per_gpu in the DeepSpeed config"
                )
            cfg["train_micro_batch_size_per_gpu"] = self.batch_size
        cfg.setdefault("gradient_accumulation_steps", 1)
        cfg.setdefault("steps_per_print", 10**9)  # the trainer logs; DeepSpeed stays quiet
        ds_optim = cfg.get("optimizer")
        if isinstance(ds_optim, dict) and optimizer is not None and optimizer.param_groups:
            params = ds_optim.setdefault("params", {})
            params.setdefault("lr", optimizer.param_groups[0]["lr"])
        return cfg

    def distributed(
        self, model: nn.Module, optimizer: Any = None, lr_scheduler: Any = None,
        config_params: dict[str, Any] | None = None, model_parameters: Any = None,
        config: dict[str, Any] | None = None, **init_kwargs: Any,
    ) -> tuple[Any, Any, Any]:
        """Build the DeepSpeed engine; returns ``(engine, engine optimizer, scheduler)``.

        ``config_params`` (itwinai's keyword) are merged over the strategy's config, e.g.
        ``{"train_micro_batch_size_per_gpu": 32}``; ``model_parameters`` and ``init_kwargs``
        go to ``deepspeed.initialize``. Without an ``optimizer`` section in the config the
        trainer's optimizer is used and its scheduler stays the trainer's (stepped per epoch).
        With one, DeepSpeed builds the optimizer and the trainer's is dropped, together with a
        scheduler built on it; a ``scheduler`` section is then stepped by DeepSpeed itself,
        per batch.
        """
        self._require_init()
        deepspeed = _import_deepspeed()
        cfg = self.engine_config(optimizer, {**(config or {}), **(config_params or {})})
        model = model.to(self.device())
        client_optimizer = None if "optimizer" in cfg else optimizer
        if client_optimizer is None and lr_scheduler is not None:
            log.warning("strategy 'deepspeed': the DeepSpeed config has an optimizer section, so "
                        "the trainer's LR scheduler is not used (add a DeepSpeed 'scheduler')")
        if model_parameters is None:
            model_parameters = [p for p in model.parameters() if p.requires_grad]
        try:
            engine, ds_optimizer, _, _ = deepspeed.initialize(
                model=model, optimizer=client_optimizer, model_parameters=model_parameters,
                config=cfg, **init_kwargs)
        except (AssertionError, ValueError) as err:  # DeepSpeed validates with both
            raise StrategyError(f"DeepSpeed rejected the config {cfg}: {err}") from err
        self.engine = engine
        return engine, ds_optimizer, lr_scheduler if client_optimizer is not None else None

    def is_distributed_model(self, model: Any, optimizer: Any = None) -> bool:
        """Only the engine this strategy built (a model may have a submodule ``module``)."""
        return model is not None and model is self.engine

    def default_distributed_kwargs(self, config: Any) -> dict[str, Any]:
        """itwinai's default: the micro-batch is the trainer's ``batch_size``, unless the
        DeepSpeed config sets a batch size itself."""
        if {"train_micro_batch_size_per_gpu", "train_batch_size"} & set(self.ds_config):
            return {}
        return {"config_params": {"train_micro_batch_size_per_gpu": config.batch_size}}

    def backward(self, loss: torch.Tensor, model: Any) -> None:
        """``engine.backward(loss)``: ZeRO's gradient reduction and partitioning."""
        model.backward(loss)

    def optimizer_step(self, model: Any, optimizer: Any) -> None:
        """``engine.step()``: optimizer and scheduler step at the accumulation boundary."""
        model.step()

    def unwrap(self, model: nn.Module) -> nn.Module:
        """The module inside the DeepSpeed engine."""
        inner = getattr(model, "module", None)
        return inner if isinstance(inner, nn.Module) else model

    # ---- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self, directory: str | os.PathLike, model: nn.Module,
                        optimizer: Any = None, lr_scheduler: Any = None,
                        state: dict[str, Any] | None = None,
                        config: dict[str, Any] | None = None) -> Path:
        """Every rank saves its DeepSpeed shard; rank 0 adds the model and trainer state."""
        from itwinai_ray.trainer import checkpoint

        self._require_init()
        path = Path(directory)
        if self.is_main_worker and path.exists():
            shutil.rmtree(path)  # a stale checkpoint would mix with the new shards
        self.barrier()
        path.mkdir(parents=True, exist_ok=True)
        model.save_checkpoint(str(path / DS_SUBDIR), tag=DS_TAG)
        if self.is_main_worker:
            checkpoint.save_checkpoint(path / ".plain", self.unwrap(model), None, None,
                                       state=state, config=config)
            for item in (path / ".plain").iterdir():
                item.rename(path / item.name)
            (path / ".plain").rmdir()
        self.barrier()
        return path

    def load_checkpoint(self, directory: str | os.PathLike, model: nn.Module,
                        optimizer: Any = None, lr_scheduler: Any = None) -> dict[str, Any]:
        """Restore engine, optimizer and scheduler states on every rank; return trainer state.

        A plain TorchTrainer checkpoint (no ``deepspeed/`` directory) restores the model
        weights only.
        """
        from itwinai_ray.errors import CheckpointError
        from itwinai_ray.trainer import checkpoint

        path = Path(directory)
        ds_dir = path / DS_SUBDIR
        if not ds_dir.is_dir():
            return checkpoint.load_checkpoint(path, self.unwrap(model), None, None,
                                              map_location=self.device())
        loaded, _ = model.load_checkpoint(str(ds_dir), tag=DS_TAG,
                                          load_optimizer_states=True,
                                          load_lr_scheduler_states=True)
        if loaded is None:
            raise CheckpointError(f"DeepSpeed found no checkpoint under {ds_dir}")
        state_file = path / checkpoint.STATE_FILE
        return json.loads(state_file.read_text()) if state_file.is_file() else {}
