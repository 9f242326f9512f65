"""itwinai 0.4 module paths and the itwinai_ray object behind each name. A data table."""

from __future__ import annotations

_COMPONENTS = ("BaseComponent", "DataGetter", "DataSplitter", "DataProcessor", "Trainer", "Saver",
               "Adapter", "Predictor", "monitor_exec")
_STRATEGIES = ("TorchDDPStrategy", "DeepSpeedStrategy", "HorovodStrategy",
               "NonDistributedStrategy", "RayDDPStrategy", "RayDeepSpeedStrategy",
               "RayTorchDistributedStrategy")
_LOGGERS = ("Logger", "ConsoleLogger", "MLFlowLogger", "TensorBoardLogger", "LoggersCollection")

#: ``{itwinai module: {name: "itwinai_ray.module:name"}}``; ``{}`` marks a package.
ITWINAI_MODULES: dict[str, dict[str, str]] = {
    "itwinai": {},
    "itwinai.torch": {},
    "itwinai.torch.profiling": {},
    "itwinai.torch.monitoring": {},
    "itwinai.components": {n: f"itwinai_ray.components:{n}" for n in _COMPONENTS},
    "itwinai.pipeline": {"Pipeline": "itwinai_ray.pipeline:Pipeline"},
    "itwinai.loggers": {n: f"itwinai_ray.loggers:{n}" for n in _LOGGERS},
    "itwinai.torch.config": {
        "TrainingConfiguration": "itwinai_ray.config.training:TrainingConfiguration"},
    "itwinai.torch.trainer": {
        # itwinai's TorchTrainer tunes on Ray when given ray_* settings, else trains directly:
        # so does RayTorchTrainer.
        "TorchTrainer": "itwinai_ray.integrations.ray_trainer:RayTorchTrainer"},
    "itwinai.torch.distributed": {
        **{n: f"itwinai_ray.distributed:{n}" for n in _STRATEGIES},
        # itwinai's base of every strategy is this project's Strategy
        "TorchDistributedStrategy": "itwinai_ray.distributed:Strategy",
        "distributed_resources_available":
            "itwinai_ray.itwinai_compat.helpers:distributed_resources_available"},
    "itwinai.torch.reproducibility": {
        n: f"itwinai_ray.itwinai_compat.helpers:{n}" for n in ("set_seed", "seed_worker")},
    "itwinai.torch.profiling.profiler": {
        "profile_torch_trainer": "itwinai_ray.itwinai_compat.helpers:profile_torch_trainer"},
    "itwinai.torch.monitoring.monitoring": {
        "measure_gpu_utilization": "itwinai_ray.itwinai_compat.helpers:measure_gpu_utilization"},
    "itwinai.distributed": {
        "suppress_workers_print": "itwinai_ray.itwinai_compat.helpers:suppress_workers_print"},
    "itwinai.torch.type": {n: f"itwinai_ray.itwinai_compat.helpers:{n}"
                           for n in ("Batch", "Metric")},
}


def itwinai_object_aliases() -> dict[str, str]:
    """``{"itwinai.torch.trainer.TorchTrainer": "itwinai_ray....TorchTrainer"}`` for YAML."""
    return {f"{module}.{name}": target.replace(":", ".")
            for module, names in ITWINAI_MODULES.items() for name, target in names.items()}
