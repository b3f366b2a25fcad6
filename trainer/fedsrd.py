"""FedSRD and FedSRD-e (Sparsify-Reconstruct-Decompose, WWW 2026) on floss's flat P and codec.

Read from the paper's public code (Youth-49/FedSRD_2025), re-implemented here:

* client (``FedSRD._upload``): for every LoRA pair of P (A: r x d_in, B: d_out x r) the update's
  scores are |dA| * ||column j of B_end|| (row j of A) and |dB| * ||row j of A_start|| (column j
  of B), as the authors' code (B after local training, A as downloaded); every other tensor of P
  (a classifier head) is scored by |d|. Per tensor, the Pearson kurtosis of the scores sets the
  dropped share q = ``planner.srd.pruning_ratio`` (base + min(upper, coeff * ln k)); scores below
  their q-quantile (torch.quantile) are dropped and the kept entries scaled by
  ||d||_1 / ||kept||_1, so the update keeps its L1 norm. The kept entries go out as one sparse
  message (positions + values, the run's encoding and upload precision); its bytes are what the
  round records.
* server (``FedSRD.aggregate``): each client's factors B_c = B - dB_c, A_c = A - dA_c (Delta is
  start - end here), W = mean of B_c A_c at full rank; FedSRD truncates W to rank r by SVD
  (B' = U_r sqrt(S_r), A' = sqrt(S_r) V_r^T, target B' A'), FedSRD-e takes W itself. The
  target's change dW = target - B A is put on one factor: on even 0-based rounds (round 1, 3,
  ... here) dA = pinv(B) dW, on odd ones dB = dW pinv(A); the head moves by the clients' mean
  update. The server optimizer takes one step on the pseudo-gradient -update (the authors' server
  adds the update itself: ``--server-optimizer fedavg --server-lr 1``; the default FedAdam is the
  recipe every other method runs with); that step, restricted to the factor's and the head's
  entries, is masked at random to k = k(size, 1 - mask_rate) entries (a seeded draw without
  replacement: the authors draw a Bernoulli mask of the same expected share), the kept ones
  scaled by 1 / (1 - mask_rate), sent through the codec at the download precision, and the
  server adds what decodes to its P: the server's P is exactly what an up-to-date client holds.
  B starts at zero, so round 1's dA = pinv(0) dW is zero, as in the authors' code: round 1 moves
  the head only.
* catch-up: the deltas need a client that holds the latest P. P_0 is the run's seeded init,
  which every client builds itself (as FFA-LoRA's frozen A). A sampled client that holds version
  h while the server is at V receives the cheaper of the deltas h+1..V it missed (their messages
  as sent) and a dense fp32 copy of P (4n bytes); either gives exactly the server's P.
  ``planner.schedule`` prices exactly this rule with the same sampled clients.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from planner.encoding import message_bytes
from planner.srd import download_entries, pruning_ratio
from trainer.checkpoint import SRD_PAYLOAD_TENSOR
from trainer.config import RunConfig
from trainer.errors import TrainerError
from trainer.flat import Slice
from trainer.method_base import Method, UploadAt
from trainer.server import ServerState
from trainer.sparse import Sent, message_seed, send

MASK_STREAM = 3  # the download mask's draws: a stream of their own beside DOWNLOAD and UPLOAD


@dataclass(frozen=True)
class LoraPair:
    """One LoRA adapter in P: A (rank x d_in) and B (d_out x rank)."""

    a: Slice
    b: Slice
    rank: int

    @property
    def d_in(self) -> int:
        return (self.a.stop - self.a.start) // self.rank

    @property
    def d_out(self) -> int:
        return (self.b.stop - self.b.start) // self.rank

    def a_of(self, x: torch.Tensor) -> torch.Tensor:
        return x[self.a.start : self.a.stop].view(self.rank, self.d_in)

    def b_of(self, x: torch.Tensor) -> torch.Tensor:
        return x[self.b.start : self.b.stop].view(self.d_out, self.rank)


def lora_pairs(slices: Sequence[Slice], rank: int) -> tuple[list[LoraPair], list[Slice]]:
    """(every A/B pair of P, the other tensors) from P's slices (PEFT names: lora_A, lora_B)."""
    by_name = {s.name: s for s in slices}
    pairs, others = [], []
    for s in slices:
        if "lora_A" in s.name:
            partner = by_name.get(s.name.replace("lora_A", "lora_B"))
            if partner is None:
                raise TrainerError(f"fedsrd: {s.name} has no lora_B partner in the adapter.")
            for part in (s, partner):
                if (part.stop - part.start) % rank:
                    raise TrainerError(f"fedsrd: {part.name} is not a rank-{rank} factor.")
            pairs.append(LoraPair(s, partner, rank))
        elif "lora_B" not in s.name:
            others.append(s)
    if not pairs:
        raise TrainerError("fedsrd needs LoRA A and B matrices in the adapter; it has none.")
    return pairs, others


def pearson_kurtosis(x: torch.Tensor) -> float:
    """E(x - mu)^4 / Var^2 over all entries (scipy's kurtosis(fisher=False)); nan when constant."""
    v = x.detach().double().flatten()
    c = v - v.mean()
    m2 = float((c * c).mean())
    if m2 <= 0:
        return math.nan
    return float((c**4).mean()) / (m2 * m2)


def pair_scores(
    d_a: torch.Tensor, d_b: torch.Tensor, a_start: torch.Tensor, b_end: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """FedSRD's importance: |dA| * ||B_end[:, j]|| for row j of A, |dB| * ||A_start[j, :]|| for
    column j of B."""
    col_b = torch.linalg.vector_norm(b_end, dim=0)  # (rank,)
    row_a = torch.linalg.vector_norm(a_start, dim=1)  # (rank,)
    return d_a.abs() * col_b.unsqueeze(1), d_b.abs() * row_a.unsqueeze(0)


def keep_mask(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Entries whose score is not below the ``ratio``-quantile of ``scores`` (all for ratio 0)."""
    if ratio <= 0:
        return torch.ones_like(scores, dtype=torch.bool)
    threshold = torch.quantile(scores.flatten().float(), ratio)
    return scores >= threshold


def l1_rescale(update: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """The kept entries of ``update``, scaled so the result has the update's L1 norm (unscaled
    when the kept norm is below 1e-9, as the authors' code)."""
    pruned = torch.where(kept, update, torch.zeros_like(update))
    total, left = update.abs().sum(), pruned.abs().sum()
    if float(left) > 1e-9:
        return pruned * (total / left)
    return pruned


def prune_tensor(
    update: torch.Tensor, scores: torch.Tensor, *, base: float, upper: float, coeff: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the pruned, rescaled update, the kept mask) of one tensor under the kurtosis rule."""
    ratio = pruning_ratio(pearson_kurtosis(scores), base=base, upper=upper, coeff=coeff)
    kept = keep_mask(scores, ratio)
    return l1_rescale(update, kept), kept


def truncate(w: torch.Tensor, rank: int) -> torch.Tensor:
    """W's best rank-r approximation, as B' A' with B' = U_r sqrt(S_r), A' = sqrt(S_r) V_r^T."""
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    root = torch.diag(torch.sqrt(s[:rank]))
    return (u[:, :rank] @ root) @ (root @ vh[:rank, :])


PINV_RTOL = 1e-4  # singular values of a factor below this times the other's largest are cut


def pinv(factor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """pinv(factor), cutting its singular values below PINV_RTOL * ||other||_2 as well as
    torch's own relative cut. The authors' torch.linalg.pinv cuts relative to the factor's own
    largest singular value only, so a factor near zero (B after one masked round of a layer whose
    update was tiny: 7e-14 here on tiny-random-bert) is inverted at 1e13 and P blows up; B A is
    balanced-scale, so a factor this small next to its partner carries no direction."""
    atol = PINV_RTOL * float(torch.linalg.matrix_norm(other, ord=2))
    rtol = max(factor.shape) * torch.finfo(factor.dtype).eps  # torch's default cut, kept
    return torch.linalg.pinv(factor, atol=atol, rtol=rtol)


def project(
    delta_w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *, round_index: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(dA, None) = (pinv(B) dW, -) on even 0-based rounds, (None, dB = dW pinv(A)) on odd
    (``pinv``: with a cut relative to the other factor)."""
    if round_index % 2 == 0:
        return pinv(b, a) @ delta_w, None
    return None, delta_w @ pinv(a, b)


class FedSRD(Method):
    """``fedsrd`` (SVD to rank r) and ``fedsrd-e`` (no SVD): see the module docstring."""

    def __init__(self, config: RunConfig, *, n: int, slices: tuple[Slice, ...]) -> None:
        super().__init__(config, n=n, slices=slices)
        self.pairs, self.others = lora_pairs(slices, config.rank)
        self.exact = config.method == "fedsrd-e"
        self.version = 0  # deltas applied by the server
        self.sizes: list[int] = []  # bytes of delta 1, 2, ... as sent
        # delta 1, 2, ... on the wire (a Flower catch-up sends them)
        self.payloads: list[bytes] = []
        self.ks: list[int] = []  # entries of delta 1, 2, ...
        # client -> (version it held, deltas sent) of the last download's chains (federation)
        self.chains: dict[int, tuple[int, list[int], list[int]]] = {}
        self.held: dict[int, int] = {}  # client -> version it holds (absent: 0, the seeded init)
        self.dense_bytes = message_bytes(n, n, encoding="dense", precision="fp32")
        self.last_k = 0  # entries of the last delta

    def _updated(self, round_index: int) -> torch.Tensor:
        """Positions of P a delta updates: A (even rounds) or B (odd) of every pair, the rest."""
        parts = [p.a if round_index % 2 == 0 else p.b for p in self.pairs] + self.others
        parts.sort(key=lambda s: s.start)
        return torch.cat([torch.arange(s.start, s.stop) for s in parts])

    def catch_up_bytes(self, client: int) -> int:
        """What ``client`` needs to hold the server's P: its missed deltas or a dense P."""
        missed = sum(self.sizes[self.held.get(client, 0) :])
        return min(missed, self.dense_bytes)

    def download(
        self, p: torch.Tensor, clients: list[int], *, round_: int = 0
    ) -> tuple[torch.Tensor, list[int], float]:
        self.round = round_
        sizes = [self.catch_up_bytes(c) for c in clients]
        self.messages, self.chains = {}, {}
        for c, nbytes in zip(clients, sizes, strict=True):
            self._catch_up_message(p, c, nbytes)
            self.held[c] = self.version
        return p.clone(), sizes, self.last_k / self.n

    def _catch_up_message(self, p: torch.Tensor, client: int, nbytes: int) -> None:
        """What federation ships to ``client`` (``messages``, ``chains``): kind "chain", the
        deltas it missed back to back, or kind "dense", P at fp32 (the cheaper; as priced).
        Deltas sent before a checkpoint without their payloads (format of an older floss)
        cannot be shipped: such a client gets no message, and federation says so."""
        held = self.held.get(client, 0)
        missed = sum(self.sizes[held:])
        if missed <= self.dense_bytes:
            if len(self.payloads) < self.version:
                return
            payload = b"".join(self.payloads[held:])
            self.chains[client] = (held, self.sizes[held:], self.ks[held:])
            vector = torch.zeros(0)  # the receiver adds the deltas to the P it holds
            self.messages[client] = ("chain", Sent(vector, len(payload), "chain", 0, payload))
        else:
            everything = torch.arange(self.n, device=p.device)
            sent = send(p, everything, encoding="dense", precision="fp32")
            self.messages[client] = ("dense", sent)
        assert len(self.messages[client][1].payload) == nbytes, "the payload is what is priced"

    def served(self, p: torch.Tensor) -> torch.Tensor:
        return p.clone()  # an up-to-date client holds exactly the server's P

    def _upload(self, delta: torch.Tensor, at: UploadAt) -> Sent:
        start = at.start
        if start is None:
            raise TrainerError("fedsrd's upload needs the client's start vector.")
        c = self.config
        rule = {"base": c.srd_base, "upper": c.srd_upper, "coeff": c.srd_coeff}
        out = torch.zeros_like(delta)
        kept = torch.zeros_like(delta, dtype=torch.bool)
        for pair in self.pairs:
            d_a, d_b = pair.a_of(delta), pair.b_of(delta)
            b_end = pair.b_of(start) - d_b
            s_a, s_b = pair_scores(d_a, d_b, pair.a_of(start), b_end)
            for sl, d, s in ((pair.a, d_a, s_a), (pair.b, d_b, s_b)):
                values, mask = prune_tensor(d, s, **rule)
                out[sl.start : sl.stop] = values.flatten()
                kept[sl.start : sl.stop] = mask.flatten()
        for sl in self.others:
            d = delta[sl.start : sl.stop]
            values, mask = prune_tensor(d, d.abs(), **rule)
            out[sl.start : sl.stop] = values
            kept[sl.start : sl.stop] = mask
        # a kept entry whose value is 0 (a tie at a zero threshold) decodes the same unsent
        positions = (kept & (out != 0)).nonzero().flatten()
        if positions.numel() == 0:  # a message holds at least one entry
            positions = torch.zeros(1, dtype=torch.long, device=delta.device)
        return send(
            out,
            positions,
            encoding=c.encoding,
            precision=self.up,
            seed=self.up_seed(at.round_, at.client),
        )

    def target_delta(self, p: torch.Tensor, uploads: Sequence[torch.Tensor]) -> torch.Tensor:
        """The dense update the server would add before the download mask (this round's factor
        and the head); the other factor's entries are 0."""
        index = self.round - 1
        out = torch.zeros_like(p)
        for pair in self.pairs:
            a, b = pair.a_of(p), pair.b_of(p)
            w = torch.zeros(pair.d_out, pair.d_in, dtype=p.dtype, device=p.device)
            for u in uploads:
                w += (b - pair.b_of(u)) @ (a - pair.a_of(u))
            w /= len(uploads)
            target = w if self.exact else truncate(w, pair.rank)
            d_a, d_b = project(target - b @ a, a, b, round_index=index)
            if d_a is not None:
                out[pair.a.start : pair.a.stop] = d_a.flatten()
            if d_b is not None:
                out[pair.b.start : pair.b.stop] = d_b.flatten()
        for sl in self.others:
            out[sl.start : sl.stop] = -sum(u[sl.start : sl.stop] for u in uploads) / len(uploads)
        return out

    def mask_positions(self, round_: int) -> torch.Tensor:
        """The seeded random download mask of round ``round_``: k(size, 1 - mask_rate) of the
        entries the round updates, drawn without replacement, sorted."""
        updated = self._updated(round_ - 1)
        k = download_entries(int(updated.numel()), self.config.srd_mask_rate)
        rng = np.random.default_rng(list(message_seed(self.config.seed, round_, -1, MASK_STREAM)))
        pick = np.sort(rng.choice(int(updated.numel()), size=k, replace=False))
        return updated[torch.from_numpy(pick)]

    def aggregate(self, server: ServerState, uploads: Sequence[torch.Tensor]) -> None:
        """The server's round: target, projection, one server-optimizer step on the
        pseudo-gradient -target (fedavg at lr 1: P + target, the authors' server), that step
        masked at random and rescaled, one delta message applied."""
        target = self.target_delta(server.p, uploads)
        before = server.p.clone()
        server.step(-target)
        step = server.p - before
        server.p.copy_(before)
        positions = self.mask_positions(self.round).to(server.p.device)
        sent = send(
            step / (1.0 - self.config.srd_mask_rate),
            positions,
            encoding=self.config.encoding,
            precision=self.down,
            seed=self.down_seed(self.round),
        )
        server.p.add_(sent.vector)
        self.version += 1
        self.sizes.append(sent.nbytes)
        self.payloads.append(sent.payload)
        self.ks.append(sent.k)
        self.last_k = sent.k

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, meta = super().state()
        if self.payloads:  # the deltas' bytes, back to back (a Flower catch-up resends them)
            joined = b"".join(self.payloads)
            tensors[SRD_PAYLOAD_TENSOR] = torch.frombuffer(bytearray(joined), dtype=torch.uint8)
        meta |= {
            "version": self.version,
            "sizes": list(self.sizes),
            "ks": list(self.ks),
            "held": {str(k): v for k, v in self.held.items()},
            "last_k": self.last_k,
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        super().load_state(tensors, meta)
        self.version = int(meta["version"])
        self.sizes = [int(b) for b in meta["sizes"]]
        self.ks = [int(k) for k in meta.get("ks", [])]
        self.payloads = []
        if SRD_PAYLOAD_TENSOR in tensors:
            joined = tensors[SRD_PAYLOAD_TENSOR].cpu().numpy().tobytes()
            if len(joined) != sum(self.sizes):
                raise TrainerError(
                    f"fedsrd's checkpoint holds {len(joined)} bytes of deltas, but its sizes "
                    f"add up to {sum(self.sizes)}; not resuming."
                )
            offsets = itertools.accumulate(self.sizes, initial=0)
            self.payloads = [joined[a:b] for a, b in itertools.pairwise(offsets)]
        self.held = {int(k): int(v) for k, v in meta["held"].items()}
        self.last_k = int(meta["last_k"])
