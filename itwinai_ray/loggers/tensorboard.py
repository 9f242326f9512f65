"""TensorBoard logger on :class:`torch.utils.tensorboard.SummaryWriter` (imported lazily)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from itwinai_ray.errors import MissingDependencyError
from itwinai_ray.loggers.base import LogFreq, Logger, write_item

_HPARAM_TYPES = (int, float, str, bool)


class TensorBoardLogger(Logger):
    """Write TensorBoard event files under ``savedir``.

    When several ranks log (``log_on_workers`` is -1 or a list), each rank writes to
    ``savedir/rank_<r>``. Metrics go to ``add_scalar``, params to the hparams plugin plus a
    text table, text to ``add_text``, figures to ``add_figure``; artifacts, torch objects and
    dicts are copied next to the event files.
    """

    def __init__(
        self,
        savedir: str | Path = "tb_logs",
        log_freq: LogFreq = "epoch",
        log_on_workers: int | list[int] = 0,
    ) -> None:
        super().__init__(savedir=savedir, log_freq=log_freq, log_on_workers=log_on_workers)
        self.writer: Any = None

    def _runtime_attrs(self) -> tuple[str, ...]:
        return ("writer",)

    @property
    def log_dir(self) -> Path:
        """Directory of this rank's event files."""
        multi = self.log_on_workers == -1 or isinstance(self.log_on_workers, list)
        return self.savedir / f"rank_{self.rank}" if multi else self.savedir

    def _open(self, rank: int, **kwargs: Any) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # tensorboard is what is usually missing
            raise MissingDependencyError("tensorboard", "TensorBoardLogger") from exc
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def _close(self, status: str) -> None:
        self.writer.add_text("status", status)
        self.writer.flush()
        self.writer.close()
        self.writer = None

    def _log_metric(
        self, name: str, value: float, step: int | None, batch_idx: int | None
    ) -> None:
        self.writer.add_scalar(name, value, global_step=step)

    def _log_params(self, params: dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        clean = {k: v if isinstance(v, _HPARAM_TYPES) else str(v) for k, v in params.items()}
        file_writer = self.writer._get_file_writer()
        for summary in hparams(clean, {}):
            file_writer.add_summary(summary)
        table = "\n".join(f"| {k} | {v} |" for k, v in clean.items())
        self.writer.add_text("hparams", "| param | value |\n|---|---|\n" + table)

    def _log_object(self, kind: str, item: Any, identifier: str, step: int | None) -> None:
        if kind == "text":
            self.writer.add_text(identifier, str(item), global_step=step)
        elif kind == "figure":
            self.writer.add_figure(identifier, item, global_step=step, close=False)
        else:
            write_item(kind, item, self.log_dir / identifier)
