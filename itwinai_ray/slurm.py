"""``itwinai-ray slurm``: the SLURM launcher (``scripts/slurm_ray.sh``), filled in or submitted.

The launcher is one script for every cluster; only its ``#SBATCH`` lines and its job command
change. :func:`render` returns a copy with those set (nodes, GPUs and CPUs per node, time,
partition, account, the command); :func:`submit` pipes it to ``sbatch``. No Ray import here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

#: The default job command line of the script, replaced by :func:`render`.
_DEFAULT_COMMAND = '    itwinai-ray exec-pipeline --config "${ITWINAI_CONFIG:-config.yaml}" &'


def script_path() -> Path:
    """The launcher: shipped in the package (``_scripts``), or in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_scripts" / "slurm_ray.sh",
                      here.parent / "scripts" / "slurm_ray.sh"):
        if candidate.is_file():
            return candidate
    raise ConfigurationError(
        "The SLURM launcher slurm_ray.sh was not found in the installed package. Reinstall "
        "itwinai-ray, or use scripts/slurm_ray.sh from its source tree.")


@dataclass(frozen=True)
class SlurmJob:
    """What to fill into the launcher's ``#SBATCH`` lines and job command.

    ``None`` keeps the script's own line. ``command`` is a shell command line; ``config``
    makes it ``itwinai-ray exec-pipeline --config <config>``.
    """

    nodes: int = 2
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    job_name: str | None = None
    mem: str | None = None
    config: str | None = None
    command: str | None = None
    #: Seconds before the time limit at which the job is asked to stop in order (SIGUSR1).
    signal_before_s: int | None = None
    #: Requeue the job when it was interrupted in order (exit 75): ``#SBATCH --requeue``.
    requeue: bool = False

    def check(self) -> None:
        if not isinstance(self.nodes, int) or self.nodes < 1:
            raise ConfigurationError(f"--nodes is {self.nodes!r}, but must be an integer >= 1.")
        if self.gpus_per_node < 0:
            raise ConfigurationError(
                f"--gpus-per-node is {self.gpus_per_node}, but must be >= 0 (0: CPU only).")
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise ConfigurationError(
                f"--cpus-per-task is {self.cpus_per_task}, but must be >= 1 (the CPUs Ray may "
                f"use on each node: the launcher runs one task per node).")
        if self.config and self.command:
            raise ConfigurationError("Give --config or --command, not both.")
        if self.signal_before_s is not None and not 10 <= self.signal_before_s <= 3600:
            raise ConfigurationError(
                f"--signal-before is {self.signal_before_s}, but must be 10 to 3600 seconds "
                f"(time for running trials to stop and the experiment state to be saved).")
        if self.time is not None and not re.fullmatch(r"[0-9:-]+", self.time):
            raise ConfigurationError(
                f"--time {self.time!r} is not a SLURM time: use MM, HH:MM:SS or D-HH:MM:SS.")


def _set(text: str, option: str, value: str | None) -> str:
    """Set ``#SBATCH --option=value`` (also enabling a ``##SBATCH`` line); None: unchanged."""
    if value is None:
        return text
    pattern = re.compile(rf"^##?SBATCH --{re.escape(option)}=.*$", re.MULTILINE)
    line = f"#SBATCH --{option}={value}"
    if pattern.search(text):
        return pattern.sub(lambda _: line, text, count=1)
    last = list(re.finditer(r"^##?SBATCH .*$", text, re.MULTILINE))[-1]
    return text[:last.end()] + "\n" + line + text[last.end():]


def render(job: SlurmJob, template: str | None = None) -> str:
    """The launcher with ``job``'s settings filled in."""
    job.check()
    text = template if template is not None else script_path().read_text()
    if _DEFAULT_COMMAND not in text:
        raise ConfigurationError(
            f"The launcher {script_path()} has no default job command line to replace; was "
            f"it edited? Expected the line: {_DEFAULT_COMMAND.strip()}")
    text = _set(text, "nodes", str(job.nodes))
    text = _set(text, "cpus-per-task",
                None if job.cpus_per_task is None else str(job.cpus_per_task))
    if job.gpus_per_node:
        text = _set(text, "gpus-per-node", str(job.gpus_per_node))
    text = _set(text, "time", job.time)
    text = _set(text, "partition", job.partition)
    text = _set(text, "account", job.account)
    text = _set(text, "job-name", job.job_name)
    text = _set(text, "mem", job.mem)
    if job.signal_before_s is not None:
        text = _set(text, "signal", f"B:USR1@{job.signal_before_s}")
    if job.requeue:
        text = text.replace("##SBATCH --requeue", "#SBATCH --requeue", 1)
        text = text.replace('ITWINAI_RAY_REQUEUE="${ITWINAI_RAY_REQUEUE:-0}"',
                            'ITWINAI_RAY_REQUEUE="${ITWINAI_RAY_REQUEUE:-1}"', 1)
    command = job.command
    if job.config:
        command = f"itwinai-ray exec-pipeline --config {shlex.quote(job.config)}"
    if command:
        text = text.replace(_DEFAULT_COMMAND, f"    {command} &", 1)
    return text


def submit(script: str, sbatch_args: list[str] | None = None) -> str:
    """Submit ``script`` with ``sbatch`` (script on stdin); return sbatch's output line.

    Raises:
        ConfigurationError: no ``sbatch`` on PATH, or sbatch refused the job.
    """
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise ConfigurationError(
            "sbatch is not on PATH: run 'itwinai-ray slurm --submit' on a SLURM login node, or "
            "drop --submit to print the script.")
    proc = subprocess.run([sbatch, *(sbatch_args or [])], input=script, text=True,
                          capture_output=True)
    if proc.returncode:
        raise ConfigurationError(
            f"sbatch refused the job (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


# ---------------------------------------------------------------- CLI (itwinai-ray slurm)
CLI_EXAMPLES = """\
examples:
  itwinai-ray slurm --nodes 4 --gpus-per-node 4 --config hpo.yaml > job.sh && sbatch job.sh
  itwinai-ray slurm -N 2 --cpus-per-task 32 --time 02:00:00 --partition batch \\
      --account my_project --config hpo.yaml --submit
  itwinai-ray slurm -N 2 --command "python my_tuning.py" --output job.sh
"""


def configure_cli(parser: Any) -> None:
    parser.add_argument("-N", "--nodes", type=int, default=2, help="nodes (default: 2)")
    parser.add_argument("-G", "--gpus-per-node", type=int, default=0,
                        help="GPUs per node (default: 0, CPU only)")
    parser.add_argument("-c", "--cpus-per-task", type=int, default=None,
                        help="CPUs per node for Ray (one task per node; default: the script's)")
    parser.add_argument("-t", "--time", default=None, help="time limit, e.g. 02:00:00")
    parser.add_argument("-p", "--partition", default=None)
    parser.add_argument("-A", "--account", default=None)
    parser.add_argument("-J", "--job-name", default=None)
    parser.add_argument("--mem", default=None, help="memory per node, e.g. 64G")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--config", default=None, metavar="YAML",
                      help="job command: itwinai-ray exec-pipeline --config YAML")
    what.add_argument("--command", default=None, metavar="CMD",
                      help="job command: any shell command line")
    parser.add_argument("--signal-before", type=int, default=None, metavar="S",
                        dest="signal_before_s",
                        help="ask the job to stop in order S seconds before the time limit "
                             "(default: the script's 120)")
    parser.add_argument("--requeue", action="store_true",
                        help="requeue the job when it stopped for the time limit (exit 75); "
                             "set run_config.resume: auto so the next run continues")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="write the script here instead of printing it")
    parser.add_argument("--submit", action="store_true",
                        help="submit the script with sbatch (prints the job id)")


def run_cli(args: Any) -> int:
    job = SlurmJob(nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                   cpus_per_task=args.cpus_per_task, time=args.time, partition=args.partition,
                   account=args.account, job_name=args.job_name, mem=args.mem,
                   config=args.config, command=args.command,
                   signal_before_s=args.signal_before_s, requeue=args.requeue)
    script = render(job)
    if args.output:
        Path(args.output).write_text(script)
        Path(args.output).chmod(0o755)
    if args.submit:
        print(submit(script))
    elif not args.output:
        sys.stdout.write(script)
    return 0


__all__ = ["SlurmJob", "configure_cli", "render", "run_cli", "script_path", "submit"]
