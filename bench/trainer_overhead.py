"""Trainer overhead on the real MiniLM + fortunes task, and speed against a straightforward loop.

(a) share of round time outside local forward/backward (top-k masks, encoding and decoding,
    aggregation, state swaps, batch building, the optimizer step): target under 3%.
(b) rounds per minute of ``trainer.run.train`` against a reference loop written here the way
    FLASC's code does it (the model deep-copied per client, every batch padded to max_length,
    no real encoding), side by side in one process on the same clients: target at least 2x.

    python bench/trainer_overhead.py --rounds 3 --clients-per-round 4 --max-examples-per-client 32

Round 1 of each loop is a warm-up and is not timed. Evaluation is excluded from both.
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from typing import Any

import torch

from trainer.config import RunConfig
from trainer.modeling import wrap_lora
from trainer.run import round_seed, train
from trainer.workload import Workload, prepare


class ComputeClock:
    """Seconds inside the model's forward and inside backward(), via hooks and a patch."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._t0 = 0.0
        self._backward = torch.Tensor.backward

    def attach(self, model: Any) -> None:
        model.register_forward_pre_hook(lambda *_: self._start())
        model.register_forward_hook(lambda *_: self._stop())

    def _start(self) -> None:
        self._t0 = time.perf_counter()

    def _stop(self) -> None:
        self.seconds += time.perf_counter() - self._t0

    def __enter__(self) -> ComputeClock:
        clock = self
        original = self._backward

        def timed_backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> None:
            t0 = time.perf_counter()
            original(tensor, *args, **kwargs)
            clock.seconds += time.perf_counter() - t0

        torch.Tensor.backward = timed_backward  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        torch.Tensor.backward = self._backward  # type: ignore[method-assign]


def run_floss(config: RunConfig, wl: Workload) -> tuple[float, float]:
    """(seconds per timed round, share outside forward/backward) of trainer.run.train."""
    import trainer.run as run_module

    clock = ComputeClock()
    marks: dict[int, tuple[float, float]] = {}
    original_wrap = run_module.wrap_lora

    def wrap_and_time(base: Any, cfg: RunConfig) -> Any:
        model = original_wrap(base, cfg)
        clock.attach(model)
        return model

    def on_round(record: Any) -> bool:
        marks[record.round] = (record.wall_seconds, clock.seconds)
        return True

    run_module.wrap_lora = wrap_and_time  # type: ignore[assignment]
    try:
        with clock:
            # one extra round, because the last round always evaluates
            train(
                RunConfig(**{**config.to_dict(), "rounds": config.rounds + 1}),
                workload=wl,
                progress=False,
                on_round=on_round,
            )
    finally:
        run_module.wrap_lora = original_wrap  # type: ignore[assignment]
    timed = range(2, config.rounds + 1)
    wall = sum(marks[r][0] for r in timed)
    compute = marks[config.rounds][1] - marks[1][1]
    return wall / len(timed), 1 - compute / wall


def run_reference(config: RunConfig, wl: Workload) -> float:
    """Seconds per timed round of the straightforward loop (FLASC-style)."""
    from planner.encoding import kept_entries

    model = wrap_lora(wl.base_model, config)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    server = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt_state = {n: (torch.zeros_like(v), torch.zeros_like(v)) for n, v in server.items()}
    clients = [torch.as_tensor(r) for r in wl.client_rows(config)]
    ids, lengths, labels = wl.tokens.ids, wl.tokens.lengths, wl.tokens.labels
    seconds = []
    for r in range(1, config.rounds + 1):
        t0 = time.perf_counter()
        rng = random.Random(round_seed(config.seed, r))
        sampled = sorted(rng.sample(range(len(clients)), config.clients_per_round))
        flat = torch.cat([server[n].reshape(-1) for n in names])
        k = kept_entries(flat.numel(), config.d_down)
        keep = torch.zeros_like(flat)
        keep[torch.topk(flat.abs(), k).indices] = 1
        offset = 0
        for n in names:  # the masked download, written into the global model
            size = server[n].numel()
            dict(model.named_parameters())[n].data.copy_(
                (flat * keep)[offset : offset + size].view_as(server[n])
            )
            offset += size
        updates = []
        for c in sampled:
            local = copy.deepcopy(model)  # the model state copied per client
            local.train()
            params = [p for p in local.parameters() if p.requires_grad]
            opt = torch.optim.SGD(params, lr=config.client_lr, momentum=config.client_momentum)
            gen = torch.Generator().manual_seed(round_seed(config.seed, r, c))
            rows = clients[c][torch.randperm(len(clients[c]), generator=gen)]
            for i in range(0, len(rows), config.batch_size):
                b = rows[i : i + config.batch_size]
                mask = (torch.arange(ids.shape[1])[None, :] < lengths[b][:, None]).long()
                opt.zero_grad()
                local(
                    input_ids=ids[b], attention_mask=mask, labels=labels[b]
                ).loss.backward()  # fixed length
                opt.step()
            start = dict(model.named_parameters())
            delta = torch.cat(
                [(start[n] - dict(local.named_parameters())[n]).detach().reshape(-1) for n in names]
            )
            ku = kept_entries(delta.numel(), config.d_up)
            sparse = torch.zeros_like(delta)
            top = torch.topk(delta.abs(), ku).indices
            sparse[top] = delta[top]
            updates.append(sparse)
        g = torch.stack(updates).mean(dim=0)
        offset = 0
        for n in names:  # FedAdam, step r
            size = server[n].numel()
            gi = g[offset : offset + size].view_as(server[n])
            m, v = opt_state[n]
            m.mul_(0.9).add_(gi, alpha=0.1)
            v.mul_(0.999).addcmul_(gi, gi, value=0.001)
            server[n] -= (
                config.server_lr * (m / (1 - 0.9**r)) / ((v / (1 - 0.999**r)).sqrt() + 1e-8)
            )
            offset += size
        seconds.append(time.perf_counter() - t0)
    return sum(seconds[1:]) / len(seconds[1:])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=3, help="rounds per loop; round 1 is warm-up")
    ap.add_argument("--clients-per-round", type=int, default=4)
    ap.add_argument("--max-examples-per-client", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--density", type=str, default="1/4", help="d_down = d_up")
    ap.add_argument("--model", type=str, default="all-minilm-l6-v2")
    args = ap.parse_args()
    if args.rounds < 2:
        ap.error("--rounds must be at least 2 (round 1 is warm-up)")
    config = RunConfig(
        rounds=args.rounds,
        clients_per_round=args.clients_per_round,
        num_clients=100,
        max_examples_per_client=args.max_examples_per_client,
        max_length=args.max_length,
        rank=args.rank,
        d_down=args.density,
        d_up=args.density,
        model=args.model,
        eval_every=0,
        max_eval_examples=1,
        device="cpu",
    )
    t0 = time.perf_counter()
    wl = prepare(config)
    print(
        f"prepare (read, tokenize {len(wl.tokens)} texts, load model): {time.perf_counter() - t0:.1f} s"
    )
    print(
        f"torch threads {torch.get_num_threads()}, {config.clients_per_round} clients x "
        f"{config.max_examples_per_client} examples, batch {config.batch_size}, max_length {config.max_length}"
    )
    floss_s, overhead = run_floss(config, wl)
    ref_s = run_reference(config, wl)
    print(f"(a) share of round time outside forward/backward: {overhead:.2%} (target < 3%)")
    print(f"(b) floss trainer   {60 / floss_s:8.2f} rounds/min ({floss_s:.2f} s/round)")
    print(f"    reference loop  {60 / ref_s:8.2f} rounds/min ({ref_s:.2f} s/round)")
    print(f"    speed-up        {ref_s / floss_s:8.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
