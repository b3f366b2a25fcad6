"""What each method downloads, trains, uploads and prunes; the round loop itself lives in run.py.

* ``TopK`` (floss, dense, ffa): download = top-k_down |P| with positions; clients train all of P;
  upload = each client's top-k_up |Delta_i| with positions. dense and ffa use d = 1 (for ffa,
  P holds only the B matrices and the head, because A is frozen at its shared seeded init).
* ``FixedMask`` (SparseAdapter): round 1 is dense; after its aggregation the top-d |P| entries
  form a mask that never changes. Pruned entries stay zero, clients train only masked entries.
* ``IterativePrune`` (AdapterLTH, fine-tuning variant, no rewinding): after every aggregation
  the density shrinks by ``prune_rate`` (down to d_up) and the smallest surviving |P| are cut.

Bytes with a mask both ends know: an upload is k values only (k * v bytes). A download carries
the positions too (a full sparse message) to every client that has not yet received the current
mask; clients that hold it get values only. Each client's mask version is tracked for that.
"""

from __future__ import annotations

from typing import Any

import torch

from planner.encoding import kept_entries
from trainer.config import RunConfig
from trainer.flat import Slice
from trainer.sparse import Sent, mask_from_positions, select_positions, send, send_values


class Method:
    """Round hooks; subclasses override what they change."""

    def __init__(self, config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> None:
        self.config = config
        self.n = n
        self.slices = slices

    def download(
        self, p: torch.Tensor, clients: list[int]
    ) -> tuple[torch.Tensor, list[int], float]:
        """(client start vector, bytes received by each client, density sent)."""
        raise NotImplementedError

    def upload(self, delta: torch.Tensor) -> Sent:
        raise NotImplementedError

    def grad_mask(self) -> torch.Tensor | None:
        """Entries clients may change (None: all)."""
        return None

    def after_aggregate(self, p: torch.Tensor) -> None:
        """Called with the server's P after each server step (in place)."""

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""


class TopK(Method):
    def __init__(self, config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> None:
        super().__init__(config, n=n, slices=slices)
        self.d_down, self.d_up = config.effective_densities

    def _send(self, x: torch.Tensor, density: float) -> Sent:
        pos = select_positions(x, density, mode=self.config.topk, slices=self.slices)
        return send(x, pos, encoding=self.config.encoding, precision=self.config.precision)

    def download(
        self, p: torch.Tensor, clients: list[int]
    ) -> tuple[torch.Tensor, list[int], float]:
        sent = self._send(p, self.d_down)
        return sent.vector, [sent.nbytes] * len(clients), sent.k / self.n

    def upload(self, delta: torch.Tensor) -> Sent:
        return self._send(delta, self.d_up)


class FixedMask(Method):
    """SparseAdapter: one dense round, then a fixed top-d_up mask for training and messages."""

    def __init__(self, config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> None:
        super().__init__(config, n=n, slices=slices)
        self.positions: torch.Tensor | None = None
        self.mask_f: torch.Tensor | None = None
        self.version = 0  # bumps whenever the mask changes
        self.seen: dict[int, int] = {}  # client -> mask version it holds
        self.density = 1.0

    def _everything(self, x: torch.Tensor) -> Sent:
        return send(
            x,
            torch.arange(self.n, device=x.device),
            encoding=self.config.encoding,
            precision=self.config.precision,
        )

    def download(
        self, p: torch.Tensor, clients: list[int]
    ) -> tuple[torch.Tensor, list[int], float]:
        if self.positions is None:
            sent = self._everything(p)
            return sent.vector, [sent.nbytes] * len(clients), 1.0
        full = send(
            p, self.positions, encoding=self.config.encoding, precision=self.config.precision
        )
        values = send_values(p, self.positions, precision=self.config.precision)
        sizes = []
        for c in clients:
            stale = self.seen.get(c) != self.version
            sizes.append(full.nbytes if stale else values.nbytes)
            self.seen[c] = self.version
        # both messages decode to the same vector (same values, same places)
        return values.vector, sizes, values.k / self.n

    def upload(self, delta: torch.Tensor) -> Sent:
        if self.positions is None:
            return self._everything(delta)
        return send_values(delta, self.positions, precision=self.config.precision)

    def grad_mask(self) -> torch.Tensor | None:
        return self.mask_f

    def _prune_to(self, p: torch.Tensor, density: float) -> None:
        score = p.abs()
        if self.mask_f is not None:
            score = torch.where(self.mask_f.bool(), score, torch.full_like(score, -1.0))
        k = kept_entries(self.n, density)
        pos = torch.topk(score, k, sorted=False).indices.sort().values
        self.positions = pos
        self.mask_f = mask_from_positions(pos, self.n).float()
        p.mul_(self.mask_f)
        self.density = density
        self.version += 1

    def next_density(self) -> float | None:
        """The density to prune to after this aggregation, or None to keep the mask."""
        return self.config.d_up if self.positions is None else None

    def after_aggregate(self, p: torch.Tensor) -> None:
        density = self.next_density()
        if density is not None:
            self._prune_to(p, density)
        elif self.mask_f is not None:
            p.mul_(self.mask_f)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {} if self.positions is None else {"mask_positions": self.positions}
        meta = {
            "version": self.version,
            "density": self.density,
            "seen": {str(k): v for k, v in self.seen.items()},
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        if "mask_positions" in tensors:
            self.positions = tensors["mask_positions"].long()
            self.mask_f = mask_from_positions(self.positions, self.n).float()
        self.version = int(meta["version"])
        self.density = float(meta["density"])
        self.seen = {int(k): int(v) for k, v in meta["seen"].items()}


class IterativePrune(FixedMask):
    """AdapterLTH: after every aggregation keep (1 - prune_rate) of the survivors, down to d_up."""

    def next_density(self) -> float | None:
        target = max(self.config.d_up, self.density * (1 - self.config.prune_rate))
        if (
            kept_entries(self.n, target) >= kept_entries(self.n, self.density)
            and self.positions is not None
        ):
            return None
        return target


def make_method(config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> Method:
    if config.method == "sparseadapter":
        return FixedMask(config, n=n, slices=slices)
    if config.method == "adapterlth":
        return IterativePrune(config, n=n, slices=slices)
    return TopK(config, n=n, slices=slices)
