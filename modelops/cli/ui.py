"""``modelops ui``: Dagster's webserver behind the browser guard, with the daemon beside it.

``dagster dev`` serves the UI with no Host, Origin or content-type check, so any web page
the operator opens can launch or wipe runs on http://127.0.0.1:3000 (docs/security.md).
This command builds the same webserver app (Dagster's own
``create_app_from_workspace_process_context``), wraps it in
:class:`modelops.serving.browser_guard.BrowserGuard` and serves it with uvicorn; unless
``--no-daemon``, it starts ``dagster-daemon`` as a child process (stopped through Dagster's
shutdown pipe when the UI stops, as ``dagster dev`` does). ``make run`` uses it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from modelops.config.errors import InputError

log = logging.getLogger("modelops.ui")
PUBLIC_NAMES_ENV = "MODELOPS_UI_PUBLIC_NAMES"


def register(subparsers: argparse._SubParsersAction) -> None:
    ui = subparsers.add_parser(
        "ui",
        help="serve the Dagster UI behind the browser guard, with the daemon (docs/security.md)",
        description="Dagster's webserver on HOST:PORT, refusing foreign Host and Origin "
        "headers, non-JSON writes and GraphQL over GET; starts dagster-daemon beside it.",
    )
    ui.add_argument("-H", "--host", default="127.0.0.1", help="address to bind (default loopback)")
    ui.add_argument("-p", "--port", type=int, default=3000)
    ui.add_argument("-w", "--workspace", type=Path, default=Path("workspace.yaml"))
    ui.add_argument(
        "--public-name", action="append", default=[], metavar="NAME",
        help="a host name the UI is reached by besides loopback, e.g. the name your "
        f"authenticating proxy forwards (repeatable; default: {PUBLIC_NAMES_ENV}, comma-separated)",
    )  # fmt: skip
    ui.add_argument(
        "--no-daemon", action="store_true", help="do not start dagster-daemon (it runs elsewhere)"
    )
    ui.set_defaults(func=run_ui)


def public_names(args: argparse.Namespace) -> list[str]:
    """``--public-name`` values and ``MODELOPS_UI_PUBLIC_NAMES`` (comma-separated; the
    serving API's ``public_names`` splits, checks and normalises them)."""
    return [*args.public_name, os.environ.get(PUBLIC_NAMES_ENV, "")]


@contextmanager
def daemon(workspace: Path, enabled: bool):
    """``dagster-daemon run`` as a child, stopped through Dagster's shutdown pipe."""
    if not enabled:
        yield None
        return
    from dagster_shared.ipc import (
        get_ipc_shutdown_pipe,
        open_ipc_subprocess,
        send_ipc_shutdown_message,
    )

    read_fd, write_fd = get_ipc_shutdown_pipe()
    command = [sys.executable, "-m", "dagster._daemon", "run", "-w", str(workspace)]
    process = open_ipc_subprocess([*command, "--shutdown-pipe", str(read_fd)], pass_fds=[read_fd])
    log.info("started dagster-daemon (pid %s)", process.pid)
    try:
        yield process
    finally:
        send_ipc_shutdown_message(write_fd)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            log.warning("dagster-daemon did not stop within 60 s: killing it")
            process.kill()


def run_ui(args: argparse.Namespace) -> int:
    import uvicorn
    from dagster import DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_webserver import __version__
    from dagster_webserver.app import create_app_from_workspace_process_context

    from modelops.serving.auth import is_loopback
    from modelops.serving.auth import public_names as checked_names
    from modelops.serving.browser_guard import BrowserGuard

    if not args.workspace.is_file():
        raise InputError(args.workspace, None, "workspace file not found")
    if not os.environ.get("DAGSTER_HOME"):
        raise InputError(None, "DAGSTER_HOME", "set it to the Dagster instance directory")
    names = sorted(checked_names(public_names(args)))  # a bad name stops here
    if not is_loopback(args.host):
        log.warning(
            "binding to %s: the Dagster UI has no login; put an authenticating proxy in "
            "front of it (docs/security.md)", args.host,
        )  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    instance = DagsterInstance.get()
    target = WorkspaceFileTarget(paths=[str(args.workspace)])
    with (
        daemon(args.workspace, not args.no_daemon),
        WorkspaceProcessContext(
            instance, version=__version__, read_only=False, workspace_load_target=target
        ) as context,
    ):
        app = BrowserGuard(create_app_from_workspace_process_context(context), names)
        log.info(
            "Dagster UI on http://%s:%s behind the browser guard (public names: %s)",
            args.host, args.port, ", ".join(names) or "none",
        )  # fmt: skip
        # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, to the handlers
        # it found: these turn both into KeyboardInterrupt, so the daemon is stopped.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        try:
            uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        except KeyboardInterrupt:
            log.info("stopping")
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
