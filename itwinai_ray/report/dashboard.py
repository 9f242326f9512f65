"""The ``itwinai-ray dashboard`` subcommand: optuna-dashboard on an experiment's trial journal.

While an experiment runs, itwinai_ray appends every trial to an Optuna journal file in the
experiment directory (:mod:`itwinai_ray.tuning.journal`). That file is all the dashboard
needs: no database and no server on the compute nodes, so it can be started on a login node
that sees the shared file system, while the run goes on and after it. The journal is re-read
on each page refresh, so new trials and reports appear live.

The server runs in this process (optuna-dashboard's public :func:`optuna_dashboard.wsgi` app
on a threaded ``wsgiref`` server, the one ``optuna-dashboard`` itself uses without gunicorn):
binding before printing means port 0 gives a free port with no race, and Ctrl-C is an
ordinary ``KeyboardInterrupt`` that closes the socket. It listens on 127.0.0.1 unless
``--host`` says otherwise: the dashboard has no login and can edit the study (notes,
deletion), so it is reached through an SSH tunnel rather than exposed on the network.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import socket
import sys
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..errors import ConfigurationError
from .loading import _not_an_experiment, is_experiment_dir

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def configure_dashboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", metavar="EXPERIMENT_DIR",
                        help="the experiment directory (storage_path/name) of an HPO run, "
                             "running or finished")
    parser.add_argument("--port", type=_port, default=0,
                        help="port to listen on (default: a free one)")
    parser.add_argument("--host", default=LOOPBACK,
                        help="address to listen on (default: %(default)s, reachable only "
                             "from this machine or through an SSH tunnel)")


def _port(text: str) -> int:
    """argparse type: a TCP port, 0 meaning any free one (argparse turns the error into exit 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is not in 0..65535")
    return port


def open_journal(experiment: str | Path) -> tuple[BaseStorage, str]:
    """The journal storage of an experiment and its study name, checked before serving.

    Checked here, not by the dashboard: optuna-dashboard would create a missing file, show an
    empty page for a corrupted one, and report a replay error only in a browser's console.
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from ..tuning.journal import journal_path, study_name

    path = Path(experiment).expanduser().resolve()
    if not is_experiment_dir(path):
        raise _not_an_experiment(path)
    journal, name = journal_path(path), study_name(path)
    rebuild = f"rebuild it with: itwinai-ray results {path} --journal"
    if not journal.is_file():
        raise ConfigurationError(f"No trial journal {journal} (an experiment from before "
                                 f"journals, or one whose first trial has not started): "
                                 f"{rebuild}")
    try:  # replays the whole file: any bad line or operation shows up now
        storage = JournalStorage(JournalFileBackend(str(journal)))
        names = [study.study_name for study in storage.get_all_studies()]
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the trial journal {journal}: "
                                 f"{exc.strerror or exc}.") from exc
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ConfigurationError(f"The trial journal {journal} is corrupted "
                                 f"({type(exc).__name__}: {exc}): {rebuild}") from exc
    if name not in names:
        found = f"it holds only {', '.join(map(repr, names))}" if names else "it is empty"
        raise ConfigurationError(f"The trial journal {journal} has no study '{name}' "
                                 f"({found}): {rebuild}")
    return storage, name


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request (the page polls while plots load); Ctrl-C does not wait for
    open connections, so the command stops at once."""

    daemon_threads = True
    block_on_close = False


class _Server6(_Server):
    """The same on an IPv6 address (``--host ::1``)."""

    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """No line per request: the page polls every few seconds and would flood the terminal."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        logger.debug("%s %s", self.address_string(), format % args)


def serve(storage: BaseStorage, host: str, port: int) -> WSGIServer:
    """A bound, not yet serving, server for the dashboard of ``storage``."""
    from optuna_dashboard import wsgi

    try:
        return make_server(host, port, wsgi(storage),
                           server_class=_Server6 if ":" in host else _Server,
                           handler_class=_QuietHandler)
    except OSError as exc:  # port taken, address not of this machine, no permission
        raise ConfigurationError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                                 f"Leave out --port for a free one, or pick another.") from exc


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.x, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: whatever it resolves to, it is not loopback-only
        return False


def tunnel_command(host: str, port: int) -> str:
    """The ``ssh -L`` command that forwards ``port`` of the user's machine to the dashboard."""
    target = LOOPBACK if host in ("", "0.0.0.0", "::") or is_loopback(host) else host
    if ":" in target:
        target = f"[{target}]"
    return f"ssh -N -L {port}:{target}:{port} {getpass.getuser()}@{_host_name()}"


def _host_name() -> str:
    """This machine's name as others reach it (a container's FQDN can be 'localhost')."""
    fqdn = socket.getfqdn()
    return socket.gethostname() if fqdn.startswith("localhost") else fqdn


def run_dashboard(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; the URL and tunnel command go to stdout, the first thing printed."""
    try:
        import optuna_dashboard  # noqa: F401 (checked before the journal is read)
    except ImportError as exc:
        raise ConfigurationError("optuna-dashboard is not installed: "
                                 "pip install 'itwinai-ray[hpo]' (or optuna-dashboard)") from exc
    storage, study = open_journal(args.experiment)
    if not is_loopback(args.host):
        print(f"warning: --host {args.host}: the dashboard has no login and can edit the "
              f"study; anyone who reaches {args.host} can use it. Prefer the default "
              f"{LOOPBACK} and an SSH tunnel.", file=sys.stderr, flush=True)
    server = serve(storage, args.host, args.port)
    port = server.server_address[1]
    shown = LOOPBACK if args.host in ("", "0.0.0.0", "::") else args.host
    shown = f"[{shown}]" if ":" in shown else shown
    print(f"Optuna dashboard of study '{study}': http://{shown}:{port}/ (Ctrl-C to stop)\n"
          f"From another machine: {tunnel_command(args.host, port)}\n"
          f"  then open http://127.0.0.1:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Dashboard stopped.", file=sys.stderr)
    finally:
        server.server_close()
    return 0
