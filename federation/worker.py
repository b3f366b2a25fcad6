"""A long-lived ClientApp process for one SuperNode: the model is loaded once, not per message.

Flower 1.41's SuperNode runs each message's ClientApp in a fresh ``flwr-clientapp`` process: in
``--isolation subprocess`` (the default) the SuperExec it starts launches one per message, and
``flwr-clientapp`` itself (``flwr.supernode.runtime.run_clientapp``) pulls one task, answers it
and exits. Each of those processes imports torch, transformers and floss (3-4 s) and loads the
model before it trains. With ``flower-supernode --isolation process`` the SuperNode starts no
SuperExec and waits for an executor to claim its tasks on its Runtime API (``--port``); this
module is that executor, and it never exits between tasks::

    flower-supernode --insecure --superlink 127.0.0.1:9091 --host 127.0.0.1 --port 9110 \\
        --isolation process --node-config "partition-id=0 num-partitions=4" &
    python -m federation.worker --runtime-api-address 127.0.0.1:9110 --insecure --parent-pid $!

It claims each task (``AcquireTask``), runs it with Flower's own per-task protocol (the same
calls ``flwr-clientapp`` makes: ``pull_task_input``, the ClientApp, ``push_message``,
``push_task_output``, with a heartbeat while it trains) and goes back to claiming. The FAB is
installed and the ClientApp loaded once per FAB hash; the imports happen once, at start; the
ClientApp's own cache (``federation.client.runtime``, keyed by everything that determines the
model, the data and the partition) then loads the model once per process and run config. A
ClientApp that raises is answered with Flower's error reply, as ``flwr-clientapp`` answers it,
and the process goes on. With ``--parent-pid`` it ends when its SuperNode ends.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp
    from flwr.supercore.runtime import RuntimeHttpClient

__all__ = ["TaskLog", "Worker", "main", "warm_imports"]

logger = logging.getLogger("federation.worker")
DEFAULT_POLL_SECONDS = 0.05  # between claims when the SuperNode has no task (Flower's: 1 s)


@dataclass
class TaskLog:
    """What this process has done: tasks answered (and failed) and the model loads so far."""

    tasks: int = 0
    failed: int = 0
    seconds: list[float] = field(default_factory=list)


def warm_imports() -> None:
    """Import, once and before the first task, what a ClientApp's first model load would:
    floss's client, and transformers' model-loading core and auto classes, which transformers
    imports lazily on first use (measured on this machine: 1.4-1.8 s for federation.client,
    then 2.6-4 s for the first ``trainer.workload.prepare``, 0.2-0.3 s once these are in)."""
    import peft  # noqa: F401
    import transformers.modeling_utils
    import transformers.models.auto.modeling_auto
    import transformers.models.auto.tokenization_auto  # noqa: F401

    import federation.client  # noqa: F401


def _model_loads() -> int:
    from federation.client import LOADS

    return LOADS["count"]


class Worker:
    """Claims and runs a SuperNode's ClientApp tasks, one after another, in this process."""

    def __init__(
        self,
        runtime_api_address: str,
        *,
        insecure: bool,
        root_certificates: bytes | None = None,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
    ) -> None:
        if not poll_seconds > 0:
            raise ValueError(f"poll_seconds must be positive, but got {poll_seconds=}.")
        self.address = runtime_api_address
        self.insecure = insecure
        self.certificates = root_certificates
        self.poll_seconds = poll_seconds
        self.log = TaskLog()
        self._apps: dict[str, ClientApp] = {}  # fab hash -> its loaded ClientApp

    def _client(self, component: str, token: str | None = None) -> RuntimeHttpClient:
        from flwr.supercore.interceptors import (
            RuntimeTokenHttpInterceptor,
            RuntimeVersionHttpInterceptor,
        )
        from flwr.supercore.retry import make_simple_http_retry_invoker
        from flwr.supercore.runtime import RuntimeHttpClient
        from flwr.supercore.runtime.tracing import RuntimeTracingInterceptor

        interceptors = [
            RuntimeTracingInterceptor(),
            RuntimeVersionHttpInterceptor(component_name=component),
        ]
        if token is not None:
            interceptors.append(RuntimeTokenHttpInterceptor(token))
        return RuntimeHttpClient.from_server_address(
            server_address=self.address,
            insecure=self.insecure,
            root_certificates=self.certificates,
            interceptors=interceptors,  # type: ignore[arg-type]
            retry_invoker=make_simple_http_retry_invoker(),
        )

    def serve(self, *, max_tasks: int | None = None) -> TaskLog:
        """Claim and run tasks until ``max_tasks`` are done (None: until the process ends)."""
        from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=E0611
        from flwr.supercore.constant import TaskType

        claims = self._client("SuperExec")
        request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP])
        try:
            while max_tasks is None or self.log.tasks < max_tasks:
                res = claims.AcquireTask(request)
                if res.HasField("task") and res.token:
                    self.run_task(res.token)
                else:
                    time.sleep(self.poll_seconds)
        finally:
            claims.close()
        return self.log

    def _app(self, fab_id: str, fab_version: str, fab_hash: str, content: bytes) -> ClientApp:
        if fab_hash not in self._apps:
            from flwr.cli.install import install_from_fab
            from flwr.clientapp.utils import get_load_client_app_fn

            install_from_fab(content, skip_prompt=True)
            load = get_load_client_app_fn(default_app_ref="", app_path=None, multi_app=True)
            self._apps[fab_hash] = load(fab_id, fab_version, fab_hash)
        return self._apps[fab_hash]

    def run_task(self, token: str) -> None:
        """One task, as ``flwr-clientapp`` runs it, without leaving the process."""
        from flwr.app import Message
        from flwr.app.error import Error
        from flwr.clientapp.client_app import LoadClientAppError
        from flwr.common.constant import ErrorCode, SubStatus
        from flwr.supercore.heartbeat import HeartbeatSender
        from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

        start = pulled = ran = time.perf_counter()
        client = self._client("flwr-clientapp", token)
        heartbeat = HeartbeatSender(_heartbeat_fn(client))
        message: Message | None = None
        reply: Message | None = None
        context: Context | None = None
        status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
        what = "task"
        try:
            heartbeat.start()
            message, context, run, fab = _pull_task_input(client)
            what = f"run {run.run_id}, {message.metadata.message_type} message"
            app = self._app(run.fab_id, run.fab_version, fab.hash_str, fab.content)
            pulled = time.perf_counter()
            reply = app(message=message, context=context)
            ran = time.perf_counter()
            status, details = SubStatus.COMPLETED, ""
        except Exception as ex:  # answered as flwr-clientapp answers it
            code = ErrorCode.CLIENT_APP_RAISED_EXCEPTION
            reason = f"{type(ex)}:<'{ex}'>"
            if isinstance(ex, LoadClientAppError):
                code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION
                reason = "An exception was raised when attempting to load `ClientApp`"
            logger.error("%s: the ClientApp raised %s", what, reason)
            details = reason
            self.log.failed += 1
            if message is not None:
                reply = Message(Error(code=code, reason=reason), reply_to=message)
        finally:
            try:
                if reply is not None and context is not None:
                    push_message(client, reply, context)
            except Exception as ex:  # the SuperNode times the task out
                logger.error("%s: pushing the reply failed: %s", what, ex)
            if heartbeat.is_running:
                heartbeat.stop()  # before the task ends: no heartbeat for a finished task
            push_task_output(client=client, context=context, sub_status=status, details=details)
            client.close()
        end = time.perf_counter()
        seconds = end - start
        self.log.tasks += 1
        self.log.seconds.append(seconds)
        logger.info(
            "floss worker (pid %d): %s answered in %.2f s (input %.2f s, ClientApp %.2f s, "
            "reply %.2f s); tasks %d, model loads %d",
            os.getpid(),
            what,
            seconds,
            pulled - start,
            max(0.0, ran - pulled),
            end - ran,
            self.log.tasks,
            _model_loads(),
        )


PULL_INITIAL_BACKOFF_SECONDS = 0.01  # Flower's flwr-clientapp: 1 s
PULL_BACKOFF_CAP_SECONDS = 0.5  # Flower's: 10 s


def _pull_task_input(client: RuntimeHttpClient) -> tuple[Message, Context, Any, Any]:
    """``flwr.supernode.runtime.run_clientapp.pull_task_input`` with a short retry backoff.

    The SuperNode creates the task before it has pulled the message's objects from the
    SuperLink, so a claim made at once (this process polls every ``--poll-seconds``) finds them
    not there yet; Flower's pull then backs off 1 s (doubling, capped at 10 s): measured, 1.1 s
    of every train message on a loopback deployment. Here it retries after 10 ms, doubling up
    to 0.5 s. Otherwise the same calls, in the same order.
    """
    from flwr.app import Message
    from flwr.common.serde import context_from_proto, fab_from_proto, run_from_proto
    from flwr.proto.node_pb2 import Node  # pylint: disable=E0611
    from flwr.proto.runtime_pb2 import (  # pylint: disable=E0611
        PullAppMessagesRequest,
        PullTaskInputRequest,
    )
    from flwr.supercore.inflatable.inflatable_protobuf_utils import (
        make_confirm_message_received_fn_protobuf,
        make_pull_object_fn_protobuf,
    )
    from flwr.supercore.inflatable.inflatable_utils import pull_and_inflate_object_from_tree
    from flwr.supercore.task_identity import TaskIdentity

    res = client.PullTaskInput(PullTaskInputRequest())
    TaskIdentity.task_id = res.task_id
    TaskIdentity.run_id = res.run.run_id
    TaskIdentity.node_id = res.context.node_id
    context = context_from_proto(res.context)
    run = run_from_proto(res.run)
    fab = fab_from_proto(res.fab)
    pulled = client.PullMessages(PullAppMessagesRequest())
    if not pulled.messages_list:
        raise RuntimeError("No messages received from Runtime API")
    node = Node(node_id=context.node_id)
    tree = pulled.message_object_trees[0]
    message = pull_and_inflate_object_from_tree(
        tree,
        make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        make_confirm_message_received_fn_protobuf(
            client.ConfirmMessageReceived, node, context.run_id
        ),
        return_type=Message,
        initial_backoff=PULL_INITIAL_BACKOFF_SECONDS,
        backoff_cap=PULL_BACKOFF_CAP_SECONDS,
    )
    message.metadata.__dict__["_message_id"] = tree.object_id  # as Flower sets it
    return message, context, run, fab


def _heartbeat_fn(client: RuntimeHttpClient):  # type: ignore[no-untyped-def]
    """Flower's task heartbeat, except that a refused one (the task has ended) is logged: it
    must not stop this process, which outlives the task (Flower's raises SIGINT)."""
    import httpx
    from flwr.proto.runtime_pb2 import SendTaskHeartbeatRequest  # pylint: disable=E0611

    request = SendTaskHeartbeatRequest()

    def send() -> bool:
        try:
            res = client.SendTaskHeartbeat(request)
        except httpx.TransportError:
            return False
        except httpx.HTTPStatusError as err:
            if err.response.status_code in (httpx.codes.SERVICE_UNAVAILABLE, 504):
                return False
            logger.warning("task heartbeat refused: %s", err)
            return True
        if not res.success:
            logger.warning("task heartbeat: the SuperNode no longer runs this task")
        return True

    return send


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m federation.worker",
        description="A long-lived ClientApp process for a SuperNode started with "
        "--isolation process (docs/federation.md).",
    )
    ap.add_argument(
        "--runtime-api-address",
        required=True,
        help="the SuperNode's Runtime API, HOST:PORT (its --host and --port)",
    )
    tls = ap.add_mutually_exclusive_group(required=True)
    tls.add_argument("--insecure", action="store_true", help="no TLS (loopback)")
    tls.add_argument("--root-certificates", help="PEM file of the Runtime API's CA")
    ap.add_argument("--parent-pid", type=int, help="end when this process (the SuperNode) ends")
    ap.add_argument(
        "--poll-seconds",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help=f"wait between claims when there is no task (default {DEFAULT_POLL_SECONDS})",
    )
    ap.add_argument("--max-tasks", type=int, help="exit after this many tasks (tests)")
    return ap


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    host, sep, port = args.runtime_api_address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        print(
            f"error: --runtime-api-address must be HOST:PORT, got {args.runtime_api_address!r}",
            file=sys.stderr,
        )
        return 2
    if not args.poll_seconds > 0:
        print(f"error: --poll-seconds must be positive, got {args.poll_seconds}", file=sys.stderr)
        return 2
    if args.max_tasks is not None and args.max_tasks < 1:
        print(f"error: --max-tasks must be at least 1, got {args.max_tasks}", file=sys.stderr)
        return 2
    certificates = None
    if args.root_certificates is not None:
        try:
            with open(args.root_certificates, "rb") as fh:
                certificates = fh.read()
        except OSError as err:
            print(f"error: --root-certificates {args.root_certificates!r}: {err}", file=sys.stderr)
            return 2
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # a background job of a non-interactive shell starts with SIGINT ignored: restore both
    # stops, so that kill PID, Ctrl-C and the --parent-pid monitor (SIGINT) end this process
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    logger.info("floss worker (pid %d): importing the ClientApp's modules", os.getpid())
    start = time.perf_counter()
    warm_imports()
    logger.info("floss worker: imports done in %.1f s", time.perf_counter() - start)

    if args.parent_pid is not None:
        from flwr.supercore.app_utils import start_parent_process_monitor

        start_parent_process_monitor(args.parent_pid)
    worker = Worker(
        args.runtime_api_address,
        insecure=args.insecure,
        root_certificates=certificates,
        poll_seconds=args.poll_seconds,
    )
    logger.info("floss worker (pid %d): serving %s", os.getpid(), args.runtime_api_address)
    with contextlib.suppress(KeyboardInterrupt):  # SIGINT, or its SuperNode ended (--parent-pid)
        worker.serve(max_tasks=args.max_tasks)
    logger.info(
        "floss worker (pid %d): ended after %d task(s), %d failed, model loads %d",
        os.getpid(),
        worker.log.tasks,
        worker.log.failed,
        _model_loads(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
