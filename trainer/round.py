"""One federated round in three pieces, shared by ``trainer.run`` and the Flower app.

``server_download`` (the server's message of round r), ``client_update`` (one client: load the
start vector in place, train with its (seed, round, client) seeds, upload its top-k) and
``server_aggregate`` (mean of the decoded uploads, one server-optimizer step, the method's
pruning). ``trainer.run.train`` calls the three in one process; ``federation`` calls the first
and last in a Flower ServerApp and the middle one in each ClientApp, with the payloads on the
wire in between, so both engines run the same code and, on the CPU, the same floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from planner.sampling import round_seed
from trainer.client import LocalResult, train_client
from trainer.config import RunConfig
from trainer.flat import FlatAdapter
from trainer.methods import Method, TopK
from trainer.modeling import amp_dtype, resolve_device, wrap_lora
from trainer.server import ServerState
from trainer.sparse import Sent
from trainer.tokens import TokenizedText
from trainer.workload import Workload

__all__ = [
    "ClientUpdate",
    "Download",
    "Trainee",
    "client_update",
    "served_models",
    "server_aggregate",
    "server_download",
]


@dataclass
class Trainee:
    """The model of one run, wrapped once: LoRA on a private copy of the base model, its
    trainable parameters as views of one flat vector, and the token tensors on the device."""

    config: RunConfig
    model: Any
    adapter: FlatAdapter
    data: TokenizedText
    device: torch.device
    amp: torch.dtype | None
    scaler: Any

    @classmethod
    def load(cls, config: RunConfig, workload: Workload) -> Trainee:
        device = resolve_device(config.device)
        amp = amp_dtype(config.amp, device)
        scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
        model = wrap_lora(workload.base_model, config).to(device)
        adapter = FlatAdapter(model, device)
        data = workload.tokens_on(device)
        return cls(config, model, adapter, data, device, amp, scaler)


@dataclass(frozen=True)
class Download:
    """The server's message of one round: the vector every sampled client starts from, the
    bytes each client receives, and the density sent."""

    start: torch.Tensor
    bytes_down: list[int]
    d_down: float


@dataclass(frozen=True)
class ClientUpdate:
    """What one client sends back: the upload as the server decodes it, and its training."""

    client: int
    sent: Sent
    local: LocalResult


def server_download(
    method: Method, server: ServerState, clients: list[int], *, round_: int
) -> Download:
    """The method's download of the server's P to the sampled ``clients`` of round ``round_``."""
    start, bytes_down, d_down = method.download(server.p, clients, round_=round_)
    return Download(start=start, bytes_down=bytes_down, d_down=d_down)


def client_update(
    trainee: Trainee,
    rows: torch.Tensor,
    start: torch.Tensor,
    *,
    method: Method,
    round_: int,
    client: int,
    density: float | None = None,
) -> ClientUpdate:
    """Client ``client`` in round ``round_``: start from ``start`` (copied into the flat buffer
    in place), train all of P locally (dropout and batch order seeded by (seed, round, client)),
    and upload Delta = start - end through the method (its top-k, encoded and decoded; at
    ``density`` when the client has its own upload density, fleets)."""
    config = trainee.config
    trainee.adapter.flat.copy_(start)
    seed_c = round_seed(config.seed, round_, client)
    torch.manual_seed(seed_c)  # dropout
    local = train_client(
        trainee.model,
        trainee.adapter,
        trainee.data,
        rows,
        config=config,
        generator=torch.Generator().manual_seed(seed_c),
        grad_mask=method.grad_mask(),
        amp=trainee.amp,
        scaler=trainee.scaler,
    )
    sent = method.upload(
        start - trainee.adapter.flat, round_=round_, client=client, density=density, start=start
    )
    return ClientUpdate(client=client, sent=sent, local=local)


def served_models(
    method: Method, p: torch.Tensor, shares: Sequence[tuple[float, float]] = ()
) -> list[tuple[torch.Tensor, float]]:
    """The models clients hold after the next download of ``p``, each with the share of the run's
    clients that hold it: ``[(method.served(p), 1.0)]``, or with ``shares`` (fleets,
    ``planner.fleet.served_shares``: (d_down, share) pairs) one served model per download
    density."""
    if not shares or not isinstance(method, TopK):
        return [(method.served(p), 1.0)]
    return [(method.served(p, density=d), share) for d, share in shares]


def server_aggregate(server: ServerState, method: Method, uploads: Sequence[torch.Tensor]) -> None:
    """The method's server step (``Method.aggregate``): by default g = mean of the decoded
    uploads (summed in the order given: sampled clients sorted by id), one server-optimizer
    step on the dense P, then the method's after-aggregate hook."""
    if not uploads:
        raise ValueError("server_aggregate needs at least one upload.")
    method.aggregate(server, uploads)
