"""itwinai 0.4's interface, member by member, in one process (no Ray, no subprocess).

The names below are itwinai 0.4.2's (read from its sources); docs/itwinai-compat.md is the
table. End-to-end runs of trainers in itwinai's style: tests/e2e/test_itwinai_compat.py.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from itwinai_ray import RayTorchTrainer, TorchTrainer, TrainingConfiguration
from itwinai_ray.distributed import (
    DeepSpeedStrategy,
    HorovodStrategy,
    NonDistributedStrategy,
    RayDDPStrategy,
    RayDeepSpeedStrategy,
    RayTorchDistributedStrategy,
    TorchDDPStrategy,
    as_ray_strategy,
)
from itwinai_ray.errors import ConfigurationError, StrategyError
from itwinai_ray.examples.digits import accuracy, make_mlp
from itwinai_ray.loggers.base import Logger

#: itwinai 0.4.2 TorchTrainer.__init__, in order.
ITWINAI_INIT = [
    "config", "epochs", "model", "strategy", "test_every", "random_seed", "logger", "metrics",
    "checkpoints_location", "checkpoint_every", "disable_tqdm", "name",
    "profiling_wait_epochs", "profiling_warmup_epochs", "measure_gpu_data",
    "enable_torch_profiling", "store_torch_profiling_traces", "measure_epoch_time",
    "ray_scaling_config", "ray_tune_config", "ray_run_config", "ray_search_space",
    "ray_torch_config", "ray_data_config", "from_checkpoint", "initial_best_validation_metric",
    "run_name", "time_ray"]
ITWINAI_METHODS = [
    "log", "set_epoch", "compute_metrics", "train_epoch", "validation_epoch", "test_epoch",
    "train_step", "validation_step", "test_step", "save_checkpoint", "load_checkpoint",
    "ray_report", "get_default_distributed_kwargs", "create_model_loss_optimizer",
    "create_dataloaders", "train", "execute", "_set_optimizer_from_config",
    "_set_lr_scheduler_from_config", "_set_loss_from_config", "save_parameters",
    "locals2params"]
ITWINAI_ATTRIBUTES = [
    "current_epoch", "epochs", "train_glob_step", "validation_glob_step", "test_glob_step",
    "device", "metrics", "logger", "strategy", "lr_scheduler", "optimizer", "loss", "model",
    "train_dataloader", "validation_dataloader", "test_dataloader", "best_validation_metric",
    "test_every", "config", "torch_rng", "profiler", "model_state_dict",
    "optimizer_state_dict", "lr_scheduler_state_dict", "checkpoints_location",
    "checkpoint_every", "from_checkpoint", "run_name", "random_seed", "measure_gpu_data",
    "enable_torch_profiling", "measure_epoch_time", "time_ray", "ray_torch_config",
    "ray_data_config", "disable_tqdm", "mlflow_logger", "mlflow_tune_run_id",
    "mlflow_train_run_id", "mlflow_worker_run_id"]
STRATEGY_MEMBERS = [
    "init", "distributed", "global_world_size", "local_world_size", "global_rank",
    "local_rank", "barrier", "device", "create_dataloader", "clean_up", "allgather_obj",
    "gather_obj", "gather", "broadcast_obj", "is_main_worker", "is_distributed",
    "is_initialized", "name", "set_device"]


class RecordingLogger(Logger):
    """A real Logger (rank gating, kinds, frequency) that keeps what reaches its backend."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(savedir="unused", **kwargs)
        self.metrics: list[tuple[str, float, int | None]] = []

    def _open(self, rank: int, **kwargs: Any) -> None:
        pass

    def _close(self, status: str) -> None:
        pass

    def _log_metric(self, name: str, value: float, step: int | None, batch_idx: Any) -> None:
        self.metrics.append((name, value, step))

    def _log_params(self, params: dict[str, Any]) -> None:
        pass

    def _log_object(self, kind: str, item: Any, identifier: str, step: int | None) -> None:
        pass


class Digits(TorchTrainer):
    def create_model_loss_optimizer(self) -> None:
        self.model = make_mlp(hidden_size=16)
        self._set_loss_from_config()
        self._set_optimizer_from_config()
        self._set_lr_scheduler_from_config()


def _split(digits_split: Any) -> tuple[Any, Any]:
    train, val, _ = digits_split
    return train, val


# ------------------------------------------------------------------ configuration
def test_training_configuration_has_itwinais_fields_and_defaults() -> None:
    cfg = TrainingConfiguration(my_key=3)
    assert (cfg.batch_size, cfg.shuffle_train, cfg.shuffle_validation, cfg.shuffle_test) == (
        32, False, False, False)
    assert (cfg.optimizer, cfg.optim_lr, cfg.optim_momentum, cfg.optim_betas) == (
        "adam", 1e-3, 0.9, (0.9, 0.999))
    assert (cfg.loss, cfg.lr_scheduler, cfg.lr_scheduler_step_size, cfg.lr_scheduler_gamma) == (
        "cross_entropy", None, 10, 0.95)
    assert (cfg.fp16_allreduce, cfg.use_adasum, cfg.gradient_predivide_factor) == (
        False, False, 1.0)
    # the two documented differences (docs/itwinai-compat.md)
    assert cfg.num_workers_dataloader == 0 and cfg.dist_backend == "auto"
    assert cfg["batch_size"] == 32 and cfg["my_key"] == 3
    with pytest.raises(KeyError):
        cfg["nope"]
    assert TrainingConfiguration(lr_scheduler_step_size=[2, 4]).lr_scheduler_step_size == [2, 4]


# ------------------------------------------------------------------ constructor and members
def test_constructor_takes_itwinais_arguments_in_itwinais_order() -> None:
    names = list(inspect.signature(TorchTrainer.__init__).parameters)[1:len(ITWINAI_INIT) + 1]
    assert names == ITWINAI_INIT
    values = {"disable_tqdm": True, "profiling_wait_epochs": 1, "profiling_warmup_epochs": 1,
              "measure_gpu_data": True, "enable_torch_profiling": True,
              "store_torch_profiling_traces": True, "measure_epoch_time": True,
              "initial_best_validation_metric": "-inf", "run_name": "r", "time_ray": True,
              "ray_torch_config": {"backend": "gloo"}, "ray_data_config": None}
    trainer = TorchTrainer(config=None, epochs=2, **values)
    assert trainer.best_validation_metric == float("-inf") and trainer.run_name == "r"
    with pytest.raises(ConfigurationError, match="needs enable_torch_profiling"):
        TorchTrainer(store_torch_profiling_traces=True)


def test_every_itwinai_member_exists_and_other_names_are_attribute_errors() -> None:
    trainer = TorchTrainer(config={"batch_size": 8}, epochs=1)
    for name in ITWINAI_METHODS:
        assert callable(getattr(trainer, name)), name
    for name in ITWINAI_ATTRIBUTES:
        getattr(trainer, name)  # no AttributeError for an itwinai name
    for name in STRATEGY_MEMBERS:  # (is_main_worker needs init(), as in itwinai)
        assert hasattr(type(trainer.strategy), name), name
    with pytest.raises(AttributeError, match="not_an_itwinai_member"):
        trainer.not_an_itwinai_member  # noqa: B018 - the bad-input case of the issue


def test_ray_settings_on_a_plain_trainer_are_named_as_ignored(caplog) -> None:
    with caplog.at_level("WARNING", logger="itwinai_ray"):
        TorchTrainer(ray_search_space={"optim_lr": {"type": "uniform", "lower": 0, "upper": 1}})
    assert "ray_search_space is ignored" in caplog.text and "RayTorchTrainer" in caplog.text
    assert not RayTorchTrainer().hpo.requested
    assert RayTorchTrainer(ray_tune_config={"num_samples": 2}).hpo.requested


def test_ray_torch_config_is_checked_and_passed_to_ray() -> None:
    from ray.train.torch import TorchConfig

    trainer = RayTorchTrainer(ray_torch_config=TorchConfig(backend="gloo", timeout_s=60))
    assert trainer.hpo.torch.as_ray_kwargs() == {"backend": "gloo", "timeout_s": 60}
    assert RayTorchTrainer(ray_torch_config={"timeout_s": 9}).hpo.torch.timeout_s == 9
    with pytest.raises(ConfigurationError, match="ray_torch_config.backend"):
        RayTorchTrainer(ray_torch_config={"backend": "nccll"})


# ------------------------------------------------------------------ strategies
def test_strategy_members_with_itwinais_meaning() -> None:
    s = NonDistributedStrategy()
    assert not s.is_initialized
    s.init()
    assert s.is_initialized and s.is_main_worker is True and s.is_distributed is False
    t = torch.tensor([1.0])
    assert s.gather(t, dst_rank=0) == [t] and s.gather_obj("x", dst_rank=0) == ["x"]
    assert s.broadcast_obj({"a": 1}, src_rank=0) == {"a": 1}
    assert s.allgather_obj(3) == [3] and str(s.device()) == "cpu"
    with pytest.warns(DeprecationWarning, match="dst_rank"):
        assert s.gather_obj("y", dst=0) == ["y"]
    with pytest.raises(StrategyError, match="rank 1 does not exist"):
        s.gather_obj("z", dst_rank=1)
    model, opt, sched = s.distributed(torch.nn.Linear(2, 1), None, None, config_params={})
    assert isinstance(model, torch.nn.Linear)
    assert TorchDDPStrategy.is_distributed and HorovodStrategy.is_distributed
    assert issubclass(RayDDPStrategy, TorchDDPStrategy)
    assert issubclass(RayDDPStrategy, RayTorchDistributedStrategy)


def test_ray_equivalents_keep_their_settings() -> None:
    ds = DeepSpeedStrategy(config={"zero_optimization": {"stage": 1}}, backend="gloo")
    ray_ds = as_ray_strategy(ds)
    assert isinstance(ray_ds, RayDeepSpeedStrategy) and isinstance(ray_ds, DeepSpeedStrategy)
    assert ray_ds.ds_config == ds.ds_config and ray_ds.backend == "gloo"
    ddp = as_ray_strategy(TorchDDPStrategy(find_unused_parameters=True))
    assert isinstance(ddp, RayDDPStrategy) and ddp.find_unused_parameters
    none = NonDistributedStrategy()
    assert as_ray_strategy(none) is none


def test_default_distributed_kwargs_follow_itwinai() -> None:
    trainer = TorchTrainer(config={"batch_size": 24}, strategy={"name": "deepspeed"})
    assert trainer.get_default_distributed_kwargs() == {
        "config_params": {"train_micro_batch_size_per_gpu": 24}}
    assert TorchTrainer(strategy="none").get_default_distributed_kwargs() == {}
    # a strategy given by name takes config.dist_backend, as in itwinai
    assert TorchTrainer(config={"dist_backend": "gloo"}, strategy="ddp").strategy.backend == "gloo"


# ------------------------------------------------------------------ hooks at every level
def test_step_hooks_with_log_and_compute_metrics(digits_split) -> None:
    class Steps(Digits):
        def train_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            self.optimizer.zero_grad()
            pred = self.model(x)
            loss = self.loss(pred, y)
            loss.backward()
            self.optimizer.step()
            self.log(loss.item(), "train_loss", kind="metric", step=self.train_glob_step,
                     batch_idx=batch_idx)
            return loss, self.compute_metrics(true=y, pred=pred, logger_step=self.train_glob_step,
                                              batch_idx=batch_idx, stage="train")

    logger = RecordingLogger(log_freq="batch")
    trainer = Steps(config={"batch_size": 64, "optim_lr": 0.01}, epochs=2, strategy="none",
                    logger=logger, metrics={"accuracy": accuracy}, save_best=False,
                    random_seed=0)
    trainer.execute(*_split(digits_split))
    names = [name for name, _, _ in logger.metrics]
    # per batch from compute_metrics / self.log, plus the epoch values the framework logs
    assert names.count("train_accuracy") == trainer.train_glob_step + 2
    assert names.count("train_loss") == trainer.train_glob_step + 2
    assert trainer.train_glob_step > 2
    assert 0.3 < trainer.history[-1]["train_accuracy"] <= 1.0  # the epoch mean
    assert trainer.validation_glob_step > 0


def test_epoch_hooks_return_the_loss_and_old_signature_still_works(digits_split) -> None:
    class EpochHooks(Digits):
        def train_epoch(self) -> torch.Tensor:
            super().train_epoch()
            return torch.tensor(7.0)  # itwinai's contract: the epoch's loss

        def validation_epoch(self) -> torch.Tensor:
            return torch.tensor(3.0)

    trainer = EpochHooks(epochs=2, strategy="none", save_best=False)
    trainer.execute(*_split(digits_split))
    assert [h["val_loss"] for h in trainer.history] == [3.0, 3.0]
    assert trainer.history[-1]["loss"] == 3.0

    class OldStyle(Digits):
        def train_epoch(self, epoch: int) -> dict[str, float]:  # before itwinai 0.4
            super().train_epoch()
            return {"seen_epoch": float(epoch)}

    old = OldStyle(epochs=2, strategy="none", save_best=False)
    with pytest.warns(DeprecationWarning, match="pre-0.4 signature"):
        old.execute(*_split(digits_split))
    assert [h["seen_epoch"] for h in old.history] == [0.0, 1.0]


def test_own_train_loop_with_set_epoch_and_builtin_epochs(digits_split) -> None:
    class OwnLoop(Digits):
        def train(self) -> None:
            for self.current_epoch in range(self.epochs):  # noqa: B020 (itwinai's style)
                self.set_epoch()
                self.train_epoch()
                self.validation_epoch()

    trainer = OwnLoop(config={"lr_scheduler": "step", "lr_scheduler_step_size": 1,
                              "lr_scheduler_gamma": 0.5, "optim_lr": 0.01},
                      epochs=3, strategy="none", save_best=False)
    trainer.execute(*_split(digits_split))
    assert len(trainer.history) == 3, "each epoch is ended by the next set_epoch / the end"
    # set_epoch steps the scheduler from the second epoch on: epoch 3 trained at 0.01/4
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0025)


def test_strategy_ddp_without_launcher_trains_in_one_process(digits_split) -> None:
    trainer = Digits(epochs=1, save_best=False)  # itwinai's default strategy: ddp
    assert isinstance(trainer.strategy, TorchDDPStrategy)
    trainer.execute(*_split(digits_split))
    assert isinstance(trainer.strategy, NonDistributedStrategy)


# ------------------------------------------------------------------ checkpoints
def test_save_checkpoint_by_name_and_from_checkpoint(digits_split, tmp_path) -> None:
    class Saving(Digits):
        def train(self) -> None:
            super().train()
            assert self.save_checkpoint("not_now") is None  # not forced, no checkpoint_every
            self.saved = self.save_checkpoint("best_model", force=True)

    first = Saving(epochs=2, strategy="none", save_best=False, checkpoints_location=tmp_path)
    first.execute(*_split(digits_split))
    assert first.saved == str(tmp_path / "best_model")
    assert not (tmp_path / "not_now").exists()
    weights = {k: v.clone() for k, v in first.model.state_dict().items()}

    resumed = Digits(epochs=3, strategy="none", save_best=False,
                     from_checkpoint=tmp_path / "best_model")
    resumed.load_checkpoint()  # before the model exists: itwinai's *_state_dict attributes
    assert set(resumed.model_state_dict) == set(weights)
    resumed.execute(*_split(digits_split))
    assert resumed.start_epoch == 2 and len(resumed.history) == 1
    with pytest.raises(ConfigurationError, match="does not exist"):
        Digits(from_checkpoint=tmp_path / "missing")


def test_ray_report_checkpoints_and_the_resumed_trial_gets_them_back(tmp_path) -> None:
    from itwinai_ray.tuning.trial import TrialReporter

    reports: list[tuple[dict[str, Any], list[str] | None]] = []

    class Ctx:
        world_size, is_main, required_metrics = 1, True, ("loss",)

        def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
            files = sorted(p.name for p in Path(checkpoint_dir).iterdir()) \
                if checkpoint_dir else None
            if checkpoint_dir and (Path(checkpoint_dir) / "ckpt.pt").is_file():
                (tmp_path / "kept").mkdir(exist_ok=True)
                (tmp_path / "kept" / "ckpt.pt").write_bytes(
                    (Path(checkpoint_dir) / "ckpt.pt").read_bytes())
            reports.append((metrics, files))

    trainer = TorchTrainer(strategy="none")
    trainer.ray_report({"loss": 1.0})  # outside a tuning run: nothing happens
    trainer.strategy.init()
    trainer.reporter = TrialReporter(Ctx())
    trainer.ray_report({"loss": 0.5}, checkpoint_data={"epoch": 4})
    state = tmp_path / "state.bin"
    state.write_bytes(b"x")
    trainer.ray_report({"loss": 0.4}, checkpoint_file=state)
    assert [files for _, files in reports] == [["ckpt.pt"], ["state.bin"]]
    assert reports[0][0]["loss"] == 0.5
    trainer.reporter.on_epoch_end(trainer, 0, {"loss": 0.3})
    assert len(reports) == 2, "a trainer that reports itself is never reported twice"
    trainer.ray_checkpoint_dir = str(tmp_path / "kept")  # set for a trial the tuner resumes
    assert trainer.load_checkpoint() == {"epoch": 4}


def test_the_tuned_loss_takes_the_name_itwinai_gives_it() -> None:
    """itwinai reports the epoch's loss under the tuned metric's name (e.g. a scheduler's
    ``validation_loss``); a name that is not a loss still fails, naming what was reported."""
    from itwinai_ray.tuning.trial import TrialReporter

    class Ctx:
        world_size, is_main = 1, True

        def __init__(self, metric: str) -> None:
            self.required_metrics = (metric,)

    payload = TrialReporter(Ctx("validation_loss"))._payload({"loss": 0.7, "val_loss": 0.7}, 0)
    assert payload["validation_loss"] == 0.7
    with pytest.raises(ConfigurationError, match="not the tuned metric 'val_acc'"):
        TrialReporter(Ctx("val_acc"))._payload({"loss": 0.7}, 0)
    with pytest.raises(ConfigurationError, match="not the tuned metric 'validation_loss'"):
        TrialReporter(Ctx("validation_loss"))._payload({"loss": 0.7}, None)  # ray_report's


# ------------------------------------------------------------------ zero-change imports
def test_itwinai_imports_are_served_only_when_itwinai_is_absent(tmp_path, monkeypatch) -> None:
    from itwinai_ray import itwinai_compat

    if itwinai_compat.real_itwinai_available():
        pytest.skip("itwinai is installed")
    (tmp_path / "user_mod_itw.py").write_text(
        "from itwinai.torch.trainer import TorchTrainer\n"
        "from itwinai.torch.distributed import RayDeepSpeedStrategy, TorchDistributedStrategy\n"
        "from itwinai.components import DataGetter, monitor_exec\n"
        "from itwinai.torch.reproducibility import set_seed\n"
        "from itwinai.torch.profiling.profiler import profile_torch_trainer\n"
        "class Mine(TorchTrainer):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    was_installed = itwinai_compat.is_installed()
    try:
        assert itwinai_compat.install()
        import user_mod_itw

        assert issubclass(user_mod_itw.Mine, RayTorchTrainer)
        assert user_mod_itw.RayDeepSpeedStrategy is RayDeepSpeedStrategy
        assert isinstance(user_mod_itw.set_seed(3), torch.Generator)
        import itwinai.torch.trainer as served

        with pytest.raises(AttributeError, match="no itwinai_ray equivalent"):
            served.GANTrainer  # noqa: B018
    finally:
        sys.modules.pop("user_mod_itw", None)
        if not was_installed:
            itwinai_compat.uninstall()

    # a real itwinai on the path is never shadowed
    fake = tmp_path / "real" / "itwinai"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(tmp_path / "real"))
    itwinai_compat.uninstall()
    try:
        assert not itwinai_compat.install()
        import itwinai

        assert itwinai.REAL
    finally:
        sys.modules.pop("itwinai", None)
        if was_installed:
            monkeypatch.undo()
            itwinai_compat.install()


def test_suppress_workers_print(monkeypatch, capsys) -> None:
    from itwinai_ray.itwinai_compat.helpers import suppress_workers_print

    @suppress_workers_print
    def talk() -> None:
        print("quiet")
        print("loud", force=True)

    monkeypatch.setenv("RANK", "1")
    talk()
    assert capsys.readouterr().out == "loud\n"
    monkeypatch.setenv("RANK", "0")
    talk()
    assert capsys.readouterr().out == "quiet\nloud\n"


def test_best_config_fills_a_null_config_and_names_a_new_experiment() -> None:
    from itwinai_ray.tuning.results import best_pipeline_config

    config = {"p": {"steps": [{"_target_": "t.T", "config": None,
                               "ray_run_config": {"name": "exp"},
                               "ray_tune_config": {"num_samples": 8},
                               "ray_search_space": {"optim_lr": {}}}]}}
    out = best_pipeline_config(config, ["p", "steps", 0], {"optim_lr": 0.1, "epochs": 3},
                               ["optim_lr"], unwrap=False)
    step = out["p"]["steps"][0]
    assert step["config"] == {"optim_lr": 0.1} and step["epochs"] == 3
    assert step["ray_run_config"]["name"] == "exp-best"
    assert step["ray_tune_config"]["num_samples"] == 1 and "ray_search_space" not in step
    assert json.dumps(config)  # the input is untouched
    assert config["p"]["steps"][0]["config"] is None


# ------------------------------------------------------------------ review follow-ups
def test_set_epoch_overrides_old_and_new_keep_the_framework_going(digits_split) -> None:
    class NoSuper(Digits):
        def set_epoch(self) -> None:  # itwinai-style override that skips super()
            self.calls = getattr(self, "calls", 0) + 1

    class OldSignature(Digits):
        def set_epoch(self, epoch: int) -> None:  # pre-0.4 override (eurac, lattice-qcd)
            self.seen = [*getattr(self, "seen", []), epoch]

    a = NoSuper(epochs=2, strategy="none", save_best=False)
    a.execute(*_split(digits_split))
    assert a.calls == 2 and len(a.history) == 2
    b = OldSignature(epochs=2, strategy="none", save_best=False)
    with pytest.warns(DeprecationWarning, match="pre-0.4 signature"):
        b.execute(*_split(digits_split))
    assert b.seen == [0, 1] and len(b.history) == 2


def test_compute_metrics_with_a_stateful_metric_inside_and_outside_epochs(digits_split) -> None:
    class Acc:  # torchmetrics-style: update/compute/reset, and forward gives the batch value
        def __init__(self) -> None:
            self.reset()

        def reset(self) -> None:
            self.right, self.n = 0.0, 0

        def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
            self.right += float((pred.argmax(1) == target).sum())
            self.n += len(target)

        def compute(self) -> float:
            return self.right / max(self.n, 1)

        def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> float:
            self.update(pred, target)
            return float((pred.argmax(1) == target).float().mean())

    class Steps(Digits):
        def train_step(self, batch: Any, batch_idx: int) -> Any:
            loss, _ = super().train_step(batch, batch_idx)
            x, y = batch
            return loss, self.compute_metrics(y, self.model(x), self.train_glob_step, batch_idx)

    logger = RecordingLogger(log_freq="batch")
    trainer = Steps(epochs=1, strategy="none", save_best=False, logger=logger,
                    metrics={"acc": Acc()}, random_seed=0, config={"optim_lr": 0.01})
    trainer.execute(*_split(digits_split))
    batch_values = [v for name, v, step in logger.metrics if name == "train_acc"]
    assert len(batch_values) == trainer.train_glob_step + 1  # per batch + the epoch value
    assert 0.0 <= trainer.history[-1]["train_acc"] <= 1.0
    x, y = next(iter(trainer.train_dataloader))
    outside = trainer.compute_metrics(y, trainer.model(x), 0, None, stage="test")
    assert set(outside) == {"acc"}  # a custom loop gets the batch's values too


def test_a_second_execute_starts_fresh(digits_split) -> None:
    train, val = _split(digits_split)
    trainer = Digits(epochs=1, strategy="none", save_best=False)
    trainer.execute(train, val)
    assert "val_loss" in trainer.history[-1]
    trainer.execute(train)  # no validation set now: nothing validated on the old one
    assert "val_loss" not in trainer.history[-1] and trainer.validation_dataloader is None
    assert not isinstance(trainer.model, torch.nn.parallel.DistributedDataParallel)


def test_deepspeed_never_takes_a_plain_model_for_its_engine() -> None:
    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = torch.nn.Linear(2, 2)  # a submodule named like the engine's

    strategy = DeepSpeedStrategy()
    assert not strategy.is_distributed_model(Holder())


def test_resumes_from_a_checkpoint_written_by_itwinai(digits_split, tmp_path) -> None:
    """itwinai 0.4's layout: model.pt + state.pt (epoch, optimizer, scheduler states)."""
    first = Digits(epochs=1, strategy="none", save_best=False)
    first.execute(*_split(digits_split))
    ckpt = tmp_path / "best_model"
    ckpt.mkdir()
    torch.save(first.model.state_dict(), ckpt / "model.pt")
    torch.save({"epoch": 0, "best_validation_metric": 0.5,
                "optimizer_state_dict": first.optimizer.state_dict(),
                "lr_scheduler_state_dict": None, "random_seed": None}, ckpt / "state.pt")
    resumed = Digits(epochs=3, strategy="none", save_best=False, from_checkpoint=ckpt)
    resumed.execute(*_split(digits_split))
    assert resumed.start_epoch == 1 and len(resumed.history) == 2


def test_hpo_settings_under_a_launcher_train_once(monkeypatch, digits_split) -> None:
    """torchrun/srun with N processes and ray_* settings: train once, never N experiments."""
    from itwinai_ray.integrations import ray_trainer

    monkeypatch.setattr(ray_trainer, "launched_with_several_processes", lambda: True)

    class TunedDigits(RayTorchTrainer):
        create_model_loss_optimizer = Digits.create_model_loss_optimizer

    trainer = TunedDigits(epochs=1, strategy="none", save_best=False,
                          ray_tune_config={"num_samples": 4})
    *_, model = trainer.execute(*_split(digits_split))
    assert isinstance(model, torch.nn.Module) and len(trainer.history) == 1


def test_ray_report_prefers_the_file_as_itwinai(tmp_path) -> None:
    from itwinai_ray.trainer.saving import report_to_tuner

    seen: list[list[str]] = []

    class Reporter:
        def report(self, trainer: Any, metrics: Any, checkpoint_dir: Any, data: Any) -> None:
            seen.append(sorted(p.name for p in Path(checkpoint_dir).iterdir()))

    trainer = TorchTrainer(strategy="none")
    trainer.reporter = Reporter()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "in_dir.pt").write_bytes(b"1")
    (tmp_path / "f.pt").write_bytes(b"2")
    report_to_tuner(trainer, {"loss": 1.0}, tmp_path / "f.pt", tmp_path / "d", None)
    report_to_tuner(trainer, {"loss": 1.0}, None, tmp_path / "d", {"a": 1})
    report_to_tuner(trainer, {"loss": 1.0}, None, tmp_path / "d", None)
    assert seen == [["f.pt"], ["ckpt.pt"], ["in_dir.pt"]]


def test_a_directory_named_itwinai_is_not_itwinai(tmp_path, monkeypatch) -> None:
    from itwinai_ray import itwinai_compat

    (tmp_path / "itwinai").mkdir()  # e.g. a checkout in the working directory
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not itwinai_compat.real_itwinai_available()


def test_which_processes_count_as_started_by_a_launcher() -> None:
    """torchrun and srun steps do; an sbatch script's own process does not, although SLURM
    sets SLURM_NTASKS there too (seen on the real SLURM of tests/e2e/test_slurm_e2e.py)."""
    from itwinai_ray.distributed.ddp import launched_with_several_processes as launched

    assert launched({"WORLD_SIZE": "2", "RANK": "0"})
    assert launched({"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2"})
    assert not launched({"SLURM_NTASKS": "2", "SLURM_PROCID": "0"})  # the batch script
    assert not launched({"WORLD_SIZE": "1"}) and not launched({})


def test_a_wrapped_trainer_trains_once_without_ray_settings(digits_split) -> None:
    """RayTorchTrainer(trainer=...) with no Ray setting runs the wrapped trainer's lifecycle."""
    wrapper = RayTorchTrainer(trainer=Digits(epochs=1, strategy="none", save_best=False))
    *_, model = wrapper.execute(*_split(digits_split))
    assert isinstance(model, torch.nn.Module) and len(wrapper.trainer.history) == 1
