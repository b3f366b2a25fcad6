"""What each method downloads, trains, uploads and prunes; the round loop itself lives in run.py,
the hooks every method implements (``Method``) in ``trainer.method_base``.

* ``TopK`` (floss, dense, ffa): download = top-k_down |P| with positions; clients train all of P;
  upload = each client's top-k_up |Delta_i| with positions. dense and ffa use d = 1 (for ffa,
  P holds only the B matrices and the head, because A is frozen at its shared seeded init).
* ``FixedMask`` (SparseAdapter): round 1 is dense; after its aggregation the top-d_up |P| entries
  form a mask that never changes. Pruned entries stay zero, clients train only masked entries.
* ``IterativePrune`` (AdapterLTH as the thesis runs it, fine-tuning variant, no rewinding):
  round 1 is dense; after every aggregation the density is multiplied by ``keep_rate`` (0.98),
  never below ``lth_floor`` when set (k >= 1 always), and when k drops the smallest surviving
  |P| are cut (a new mask version).

Bytes with a mask both ends know: an upload is k values only (k * v bytes). A download carries
the positions too (a full sparse message) to every client that has not yet received the current
mask; clients that hold it get values only. Each client's mask version is tracked for that.
``planner.schedule.price_rounds`` prices exactly this, payload for payload
(tests/trainer/test_method_bytes.py pins the two round by round).

* ``FedSRD`` (fedsrd, fedsrd-e; ``trainer.fedsrd``): uploads pruned by a kurtosis rule, the
  server's own aggregation (``aggregate``), downloads as deltas with a catch-up.

``served(p)`` is what a client receiving the next download would hold: P masked to the download
mask, through the wire precision (the served model that evaluation scores; a stochastic download
precision rounds it with the next round's draws).

Precisions: downloads at ``precision_down``, uploads at ``precision_up`` (``RunConfig.
wire_precisions``); stochastic rounding seeded by ``trainer.sparse.message_seed``. The server
keeps its fp32 P, so a quantized download costs no accumulated error on the server.
``error_feedback`` (uploads, any method): client c uploads x = Delta + e_c and keeps
e_c = x - what the server decodes (the top-k drop and the quantization error), as STC does
(Sattler et al. 2019); the residuals are in ``state()`` and so in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from planner.encoding import kept_entries
from planner.method_spec import lth_next_density, mask_entries
from trainer.config import RunConfig
from trainer.flat import Slice
from trainer.method_base import Method, UploadAt
from trainer.sparse import (
    Sent,
    mask_from_positions,
    select_positions,
    send,
    send_values,
)


class TopK(Method):
    per_client_density = True

    def __init__(self, config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> None:
        super().__init__(config, n=n, slices=slices)
        self.d_down, self.d_up = config.effective_densities

    def _send(
        self, x: torch.Tensor, density: float, *, precision: str, seed: tuple[int, int]
    ) -> Sent:
        pos = select_positions(x, density, mode=self.config.topk, slices=self.slices)
        return send(x, pos, encoding=self.config.encoding, precision=precision, seed=seed)

    def download(
        self, p: torch.Tensor, clients: list[int], *, round_: int = 0
    ) -> tuple[torch.Tensor, list[int], float]:
        self.round = round_
        sent = self._send(p, self.d_down, precision=self.down, seed=self.down_seed(round_))
        self.messages = {c: ("full", sent) for c in clients}
        return sent.vector, [sent.nbytes] * len(clients), sent.k / self.n

    def served(self, p: torch.Tensor, density: float | None = None) -> torch.Tensor:
        """``density``: a client's own download density (fleets), else the run's d_down."""
        seed = self.down_seed(self.round + 1)
        d_down = self.d_down if density is None else density
        return self._send(p, d_down, precision=self.down, seed=seed).vector

    def download_each(
        self, p: torch.Tensor, clients: Sequence[int], densities: Sequence[float], *, round_: int
    ) -> tuple[list[torch.Tensor], list[int]]:
        """Per-client downloads (fleets): client i receives top-k of P at ``densities[i]``; one
        encode per distinct density, with the round's one download seed (clients at the same
        density receive the same message, as in ``download``)."""
        self.round = round_
        seed = self.down_seed(round_)
        by_density: dict[float, Sent] = {}
        for d in densities:
            if d not in by_density:
                by_density[d] = self._send(p, d, precision=self.down, seed=seed)
        sent = [by_density[d] for d in densities]
        self.messages = {c: ("full", m) for c, m in zip(clients, sent, strict=True)}
        return [m.vector for m in sent], [m.nbytes for m in sent]

    def _upload(self, delta: torch.Tensor, at: UploadAt) -> Sent:
        seed = self.up_seed(at.round_, at.client)
        d_up = self.d_up if at.density is None else at.density
        return self._send(delta, d_up, precision=self.up, seed=seed)


class FixedMask(Method):
    """SparseAdapter: one dense round, then a fixed top-d_up mask for training and messages."""

    def __init__(self, config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> None:
        super().__init__(config, n=n, slices=slices)
        self.positions: torch.Tensor | None = None
        self.mask_f: torch.Tensor | None = None
        self.version = 0  # bumps whenever the mask changes
        self.seen: dict[int, int] = {}  # client -> mask version it holds
        self.density = 1.0

    @property
    def k(self) -> int:
        """Entries of the current mask (n before the first one)."""
        return self.n if self.positions is None else int(self.positions.numel())

    def _everything(self, x: torch.Tensor, *, precision: str, seed: tuple[int, int]) -> Sent:
        return send(
            x,
            torch.arange(self.n, device=x.device),
            encoding=self.config.encoding,
            precision=precision,
            seed=seed,
        )

    def download(
        self, p: torch.Tensor, clients: list[int], *, round_: int = 0
    ) -> tuple[torch.Tensor, list[int], float]:
        self.round = round_
        seed = self.down_seed(round_)
        if self.positions is None:
            sent = self._everything(p, precision=self.down, seed=seed)
            self.messages = {c: ("full", sent) for c in clients}
            return sent.vector, [sent.nbytes] * len(clients), 1.0
        full = send(
            p, self.positions, encoding=self.config.encoding, precision=self.down, seed=seed
        )
        values = send_values(p, self.positions, precision=self.down, seed=seed)
        sizes = []
        self.messages = {}
        for c in clients:
            stale = self.seen.get(c) != self.version
            sizes.append(full.nbytes if stale else values.nbytes)
            self.messages[c] = ("mask", full) if stale else ("values", values)
            self.seen[c] = self.version
        # both messages decode to the same vector (same values, same places, same draws)
        return values.vector, sizes, values.k / self.n

    def served(self, p: torch.Tensor) -> torch.Tensor:
        seed = self.down_seed(self.round + 1)
        if self.positions is None:
            return self._everything(p, precision=self.down, seed=seed).vector
        return send_values(p, self.positions, precision=self.down, seed=seed).vector

    def _upload(self, delta: torch.Tensor, at: UploadAt) -> Sent:
        seed = self.up_seed(at.round_, at.client)
        if self.positions is None:
            return self._everything(delta, precision=self.up, seed=seed)
        return send_values(delta, self.positions, precision=self.up, seed=seed)

    def grad_mask(self) -> torch.Tensor | None:
        return self.mask_f

    def _prune_to(self, p: torch.Tensor, k: int, density: float) -> None:
        """Keep the k largest |P| among the surviving entries: a new mask version."""
        score = p.abs()
        if self.mask_f is not None:
            score = torch.where(self.mask_f.bool(), score, torch.full_like(score, -1.0))
        pos = torch.topk(score, k, sorted=False).indices.sort().values
        self.positions = pos
        self.mask_f = mask_from_positions(pos, self.n).float()
        p.mul_(self.mask_f)
        self.density = density
        self.version += 1

    def after_aggregate(self, p: torch.Tensor) -> None:
        if self.positions is None:  # after the dense first round: the fixed mask
            self._prune_to(p, kept_entries(self.n, self.config.d_up), self.config.d_up)
        elif self.mask_f is not None:
            p.mul_(self.mask_f)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = super().state()
        if self.positions is not None:
            tensors["mask_positions"] = self.positions
        meta |= {
            "version": self.version,
            "density": self.density,
            "seen": {str(k): v for k, v in self.seen.items()},
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)
        if "mask_positions" in tensors:
            self.positions = tensors["mask_positions"].long()
            self.mask_f = mask_from_positions(self.positions, self.n).float()
        self.version = int(meta["version"])
        self.density = float(meta["density"])
        self.seen = {int(k): int(v) for k, v in meta["seen"].items()}


class IterativePrune(FixedMask):
    """AdapterLTH: after every aggregation the density shrinks by ``keep_rate`` (not below
    ``lth_floor``); the mask is re-cut, a new version, whenever k drops."""

    def after_aggregate(self, p: torch.Tensor) -> None:
        start = 1.0 if self.positions is None else self.density
        density = lth_next_density(
            start, keep_rate=self.config.keep_rate, floor=self.config.lth_floor
        )
        k = mask_entries(self.n, density)
        if self.positions is None or k < self.k:
            self._prune_to(p, k, density)
        else:
            self.density = density
            if self.mask_f is not None:
                p.mul_(self.mask_f)


def make_method(config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> Method:
    if config.method in ("fedsrd", "fedsrd-e"):
        from trainer.fedsrd import FedSRD  # it subclasses Method

        return FedSRD(config, n=n, slices=slices)
    if config.method == "sparseadapter":
        return FixedMask(config, n=n, slices=slices)
    if config.method == "adapterlth":
        return IterativePrune(config, n=n, slices=slices)
    return TopK(config, n=n, slices=slices)
