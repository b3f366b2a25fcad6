"""The round hooks every method implements (``Method``), apart from the methods themselves
(``trainer.methods``, ``trainer.fedsrd``) so that each of those imports it from below."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.flat import Slice
from trainer.server import ServerState
from trainer.sparse import DOWNLOAD, UPLOAD, Sent, message_seed

__all__ = ["RESIDUALS", "Method", "UploadAt"]

RESIDUALS = "residuals"  # state tensor: one error-feedback residual row per client holding one


@dataclass(frozen=True)
class UploadAt:
    """Where one upload is made, as a method's ``_upload`` hook reads it: the round, the client,
    the client's own upload density (fleets; None: the run's) and the vector the client trained
    from (FedSRD scores its update with it)."""

    round_: int
    client: int
    density: float | None = None
    start: torch.Tensor | None = None


class Method:
    """Round hooks; subclasses override what they change."""

    per_client_density = False  # True where each client may upload at its own density (top-k)

    def __init__(self, config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> None:
        self.config = config
        self.n = n
        self.slices = slices
        # the message each client of the last download received, for engines that ship the
        # payloads (federation): kind "full" (positions + values, decoded alone), "mask" (the
        # same, and its positions become the client's fixed mask) or "values" (values at the
        # mask the client already holds)
        self.messages: dict[int, tuple[str, Sent]] = {}
        self.down, self.up = config.wire_precisions
        self.round = 0  # the last download's round (served() rounds with the next one's draws)
        self.residuals: dict[int, torch.Tensor] = {}  # error feedback: client -> e_c

    def down_seed(self, round_: int) -> tuple[int, int]:
        return message_seed(self.config.seed, round_, -1, DOWNLOAD)

    def up_seed(self, round_: int, client: int) -> tuple[int, int]:
        return message_seed(self.config.seed, round_, client, UPLOAD)

    def download(
        self, p: torch.Tensor, clients: list[int], *, round_: int = 0
    ) -> tuple[torch.Tensor, list[int], float]:
        """(client start vector, bytes received by each client, density sent). ``round_`` (and
        ``client`` of ``upload``) let a method derive per-message randomness from (seed, round,
        client), as everything else random in a run is."""
        raise NotImplementedError

    def served(self, p: torch.Tensor) -> torch.Tensor:
        """The vector a client receiving the next download of ``p`` would hold. Pure: no state
        changes (no client is marked as holding the mask)."""
        raise NotImplementedError

    def upload(
        self,
        delta: torch.Tensor,
        *,
        round_: int = 0,
        client: int = -1,
        density: float | None = None,
        start: torch.Tensor | None = None,
    ) -> Sent:
        """Client ``client``'s message of its update (with error feedback: of the update plus
        its residual, which keeps what the server did not receive). ``density``: this client's
        own upload density (fleets with per-client densities; top-k methods only); ``start``:
        the vector the client trained from (FedSRD scores its update with it)."""
        if density is not None and not self.per_client_density:
            raise TrainerError(f"{self.config.method} has no per-client upload density.")
        at = UploadAt(round_, client, density, start)
        if not self.config.error_feedback:
            return self._upload(delta, at=at)
        residual = self.residuals.get(client)
        x = delta if residual is None else delta + residual
        sent = self._upload(x, at=at)
        self.residuals[client] = x - sent.vector
        return sent

    def _upload(self, delta: torch.Tensor, at: UploadAt) -> Sent:
        """The message of ``delta`` (error feedback already added) for the upload ``at``."""
        raise NotImplementedError

    def aggregate(self, server: ServerState, uploads: Sequence[torch.Tensor]) -> None:
        """The server's step from the decoded uploads: g = their mean (summed in the order
        given), one server-optimizer step on P, then ``after_aggregate``."""
        total = torch.zeros_like(server.p)
        for vector in uploads:
            total += vector
        server.step(total / len(uploads))
        self.after_aggregate(server.p)

    def grad_mask(self) -> torch.Tensor | None:
        """Entries clients may change (None: all)."""
        return None

    def after_aggregate(self, p: torch.Tensor) -> None:
        """Called with the server's P after each server step (in place)."""

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        if not self.residuals:
            return {}, {}
        clients = sorted(self.residuals)
        stacked = torch.stack([self.residuals[c] for c in clients])
        return {RESIDUALS: stacked}, {"residual_clients": clients}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""
        clients = meta.get("residual_clients", [])
        if clients:
            rows = tensors[RESIDUALS]
            self.residuals = {int(c): rows[i].clone() for i, c in enumerate(clients)}
