"""The run configuration: one frozen, validated record; everything downstream trusts it.

Precedence (CLI flag > config file > default) is applied once, in ``trainer.cli``.
The checks of one kind of value live in ``trainer.config_values``, reading and writing a
config file in ``trainer.config_files``, the fleet fields in ``trainer.config_fleet``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.encoding import ENCODING_CHOICES, QUANTIZED, parse_precision
from planner.limits import DEFAULT_OVER_SELECTION, MAX_SEED
from planner.method_spec import (
    DEFAULT_KEEP_RATE,
    METHODS,
    SRD_METHODS,
    check_floor,
    check_keep_rate,
)
from planner.srd import (
    DEFAULT_BASE,
    DEFAULT_COEFF,
    DEFAULT_MASK_RATE,
    DEFAULT_UPPER,
    check_srd,
)
from trainer.config_files import migrate_prune_rate, read_config_mapping, write_config
from trainer.config_fleet import check_fleet, fleet_setup
from trainer.config_values import (
    check_choice,
    check_float,
    check_int,
    finite,
    key_text,
    parse_density,
)
from trainer.errors import TrainerError

if TYPE_CHECKING:
    from planner.fleet import FleetSetup
    from planner.network import NetworkProfile

TOPK_MODES = ("global", "per-tensor")
CLIENT_OPTIMIZERS = ("sgd", "adam", "adamw")
SERVER_OPTIMIZERS = ("fedadam", "fedavg", "fedavgm")
TASKS = ("classification", "lm")
DATA_SOURCES = ("fortunes", "debian-packages", "csv", "jsonl", "parquet", "hf", "20newsgroups")
# the sources whose data_path is a file or folder the run must be given
DATA_NEEDS_PATH = ("csv", "jsonl", "parquet", "hf")
# the sources that carry plain texts for task=lm
LM_SOURCES = ("fortunes", "debian-packages", "csv", "jsonl", "parquet")
PARTITIONS = ("iid", "dirichlet", "natural")
DEVICES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("auto", "off", "bf16", "fp16")
DEFAULT_MODEL = "all-minilm-l6-v2"
# Evaluation is the slow part of a CPU run (the whole validation set after every round took
# longer than the training on MiniLM + fortunes): every 5th round and the last, on at most 1000
# validation and 1000 test examples, unless the config says otherwise.
DEFAULT_EVAL_EVERY = 5
DEFAULT_MAX_EVAL_EXAMPLES = 1000


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """One federated LoRA training run (FLoSS or a baseline in the same harness)."""

    # what is trained and sent
    method: str = field(
        default="floss",
        metadata=_h("floss | dense | sparseadapter | adapterlth | ffa | fedsrd | fedsrd-e"),
    )
    rank: int = field(default=16, metadata=_h("LoRA rank r"))
    lora_alpha: float = field(default=16.0, metadata=_h("LoRA alpha (scale = alpha / r)"))
    lora_dropout: float = field(default=0.0, metadata=_h("dropout on the LoRA input"))
    target_modules: tuple[str, ...] | None = field(
        default=None, metadata=_h("modules that get LoRA; None = by model type (BERT: query,value)")
    )
    d_down: float = field(default=0.25, metadata=_h("download density: top-k of |P|"))
    d_up: float = field(default=0.25, metadata=_h("upload density: each client's top-k of |Delta|"))
    topk: str = field(default="global", metadata=_h("global | per-tensor top-k"))
    encoding: str = field(default="auto", metadata=_h("auto | dense | coo | bitmap | rice"))
    precision: str = field(
        default="fp32",
        metadata=_h(
            "wire precision both ways: fp32 | fp16 | bf16 | q8 q4 q2 q1 | sr8 sr4 sr2 sr1 | "
            "rh8 rh4 rh2 rh1 | stc1, "
            "or a bit width 32 16 8 4 2 1 (docs/quantization.md)"
        ),
    )
    precision_down: str | None = field(
        default=None, metadata=_h("download value precision (as precision); None = precision")
    )
    precision_up: str | None = field(
        default=None, metadata=_h("upload value precision (as precision); None = precision")
    )
    error_feedback: bool = field(
        default=False,
        metadata=_h(
            "uploads: each client adds what its last upload left out (top-k and quantization) "
            "to its next update (STC's residuals; checkpointed)"
        ),
    )
    keep_rate: float = field(
        default=DEFAULT_KEEP_RATE,
        metadata=_h(
            f"adapterlth: share of the mask kept per round (the thesis: {DEFAULT_KEEP_RATE:g})"
        ),
    )
    lth_floor: float | None = field(
        default=None, metadata=_h("adapterlth: density floor; None = k shrinks down to 1")
    )
    srd_base: float = field(
        default=DEFAULT_BASE,
        metadata=_h("fedsrd: pruning ratio base + min(upper, coeff * ln kurtosis): the base"),
    )
    srd_upper: float = field(default=DEFAULT_UPPER, metadata=_h("fedsrd: the rule's upper"))
    srd_coeff: float = field(default=DEFAULT_COEFF, metadata=_h("fedsrd: the rule's coeff"))
    srd_mask_rate: float = field(
        default=DEFAULT_MASK_RATE,
        metadata=_h("fedsrd: share of the server's update a download drops at random"),
    )
    # federation
    rounds: int = field(
        default=50, metadata=_h("server rounds; with budget, set to the rounds the budget buys")
    )
    budget: str | None = field(
        default=None,
        metadata=_h("N-dense-rounds, a time (90m, 6h) or bytes (2GB): rounds = what it buys"),
    )
    ref_rank: int = field(default=16, metadata=_h("rank of the budget's dense reference round"))
    max_rounds: int | None = field(
        default=None, metadata=_h("with budget: at most this many rounds")
    )
    num_clients: int = field(default=100, metadata=_h("clients in the population (iid/dirichlet)"))
    clients_per_round: int = field(default=10, metadata=_h("clients sampled each round (m)"))
    local_epochs: int = field(default=1, metadata=_h("local epochs E per round"))
    batch_size: int = field(default=16, metadata=_h("local batch size"))
    group_by_length: bool = field(
        default=True, metadata=_h("batch texts of similar length together (less padding)")
    )
    client_lr: float = field(default=0.01, metadata=_h("client learning rate"))
    client_optimizer: str = field(default="sgd", metadata=_h("sgd | adam | adamw"))
    client_momentum: float = field(default=0.9, metadata=_h("sgd momentum"))
    server_optimizer: str = field(default="fedadam", metadata=_h("fedadam | fedavg | fedavgm"))
    server_lr: float = field(default=1e-3, metadata=_h("server learning rate"))
    server_momentum: float = field(default=0.9, metadata=_h("fedavgm momentum"))
    server_weight_decay: float = field(
        default=0.0, metadata=_h("fedadam decoupled weight decay (FLASC's code: 0.01)")
    )
    # model and data
    model: str = field(default=DEFAULT_MODEL, metadata=_h("packaged name, local path or hub id"))
    task: str = field(default="classification", metadata=_h("classification | lm"))
    data: str = field(
        default="fortunes",
        metadata=_h("fortunes | debian-packages | csv | jsonl | parquet | hf | 20newsgroups"),
    )
    data_path: str | None = field(
        default=None,
        metadata=_h(
            "fortunes folder; debian-packages: a saved `apt-cache dumpavail` (default: this "
            "machine's lists); a CSV/JSONL/Parquet file; hf: a save_to_disk folder, a data "
            "file or folder, or a hub name (online)"
        ),
    )
    text_column: str = field(default="text", metadata=_h("table/dataset text column"))
    label_column: str = field(default="label", metadata=_h("table/dataset label column"))
    client_column: str = field(
        default="client", metadata=_h("table/dataset client column (partition natural)")
    )
    sections: str | None = field(
        default=None,
        metadata=_h(
            "debian-packages: the Sections used as labels, a comma list or 'all' "
            "(None: the topic sections of trainer.debian.DEFAULT_SECTIONS)"
        ),
    )
    min_examples_per_class: int = field(default=200, metadata=_h("drop rarer classes"))
    partition: str = field(default="iid", metadata=_h("iid | dirichlet | natural"))
    dirichlet_alpha: float = field(default=0.1, metadata=_h("Dirichlet concentration"))
    max_length: int = field(default=64, metadata=_h("tokens per text (truncation)"))
    val_fraction: float = field(default=0.1, metadata=_h("share of examples for validation"))
    test_fraction: float = field(default=0.1, metadata=_h("share of examples for test"))
    max_examples_per_client: int | None = field(default=None, metadata=_h("cap per client"))
    min_client_examples: int = field(
        default=1,
        metadata=_h("natural partition: clients with fewer training examples sit out the run"),
    )
    max_eval_examples: int | None = field(
        default=DEFAULT_MAX_EVAL_EXAMPLES,
        metadata=_h("cap on validation and test sets (seeded subsamples); None or 0 = all"),
    )
    # accounting
    network: str = field(default="thesis", metadata=_h("network profile name or path"))
    up_slowdown: float | None = field(default=None, metadata=_h("uplink = downlink / S"))
    compute_seconds: float = field(default=0.0, metadata=_h("client compute per round, s"))
    # heterogeneous fleets (docs/fleets.md): with a fleet, round seconds come from each client's
    # own link and the policies below; the network profile is not used
    fleet: str | None = field(
        default=None, metadata=_h("fleet name or .toml/.csv path (per-client links)")
    )
    round_policy: str = field(default="sync", metadata=_h("fleet rounds: sync | deadline"))
    deadline_seconds: float | None = field(
        default=None, metadata=_h("fleet: deadline D, s (deadline rounds; bandwidth's target)")
    )
    over_selection: float = field(
        default=DEFAULT_OVER_SELECTION,
        metadata=_h("deadline rounds sample ceil(m * this) clients"),
    )
    density_policy: str = field(
        default="uniform", metadata=_h("fleet densities: uniform | tiered | bandwidth")
    )
    tier_densities: str | None = field(
        default=None, metadata=_h("tiered: tier=d_down:d_up,... (e.g. lte=1/4:1/16,wifi=1:1/4)")
    )
    density_grid: str | None = field(
        default=None, metadata=_h("bandwidth: densities a client may take (default 1..1/256)")
    )
    adapt_down: bool = field(default=False, metadata=_h("bandwidth: adapt d_down too"))
    # schedule and machine
    eval_every: int = field(
        default=DEFAULT_EVAL_EVERY, metadata=_h("evaluate every N rounds (0 = last only)")
    )
    eval_test: bool = field(
        default=True, metadata=_h("evaluate the test split at the last round (report only)")
    )
    checkpoint_every: int = field(default=0, metadata=_h("checkpoint every N rounds (0 = off)"))
    seed: int = field(default=0, metadata=_h("seed of split, partition, sampling, init"))
    device: str = field(default="auto", metadata=_h("auto | cpu | cuda | mps"))
    amp: str = field(default="auto", metadata=_h("auto (bf16/fp16 on GPU) | off | bf16 | fp16"))

    def __post_init__(self) -> None:
        s = object.__setattr__
        check_choice(self.method, "method", METHODS)
        check_int(self.rank, "rank", low=1)
        check_float(self.lora_alpha, "lora_alpha", low=0, strict=True)
        check_float(self.lora_dropout, "lora_dropout", low=0, strict=False)
        if self.lora_dropout >= 1:
            raise TrainerError(f"lora_dropout must be < 1, but got {self.lora_dropout!r}.")
        if self.target_modules is not None:
            mods = self.target_modules
            if isinstance(mods, str):
                mods = tuple(m.strip() for m in mods.split(",") if m.strip())
            if (
                not isinstance(mods, (tuple, list))
                or not mods
                or not all(isinstance(m, str) and m for m in mods)
            ):
                raise TrainerError(
                    f"target_modules must be module names, but got {self.target_modules!r}."
                )
            s(self, "target_modules", tuple(mods))
        s(self, "d_down", parse_density(self.d_down, "d_down"))
        s(self, "d_up", parse_density(self.d_up, "d_up"))
        check_choice(self.topk, "topk", TOPK_MODES)
        check_choice(self.encoding, "encoding", ENCODING_CHOICES)
        for name in ("precision", "precision_down", "precision_up"):
            value = getattr(self, name)
            if value is None and name != "precision":
                continue
            try:
                s(self, name, parse_precision(value, name=name))
            except ValueError as exc:
                raise TrainerError(str(exc)) from None
        if not isinstance(self.error_feedback, bool):
            raise TrainerError(
                f"error_feedback must be true or false, but got {self.error_feedback!r}."
            )
        if isinstance(self.keep_rate, int) and not finite(self.keep_rate):
            raise TrainerError(f"keep_rate must be in (0, 1], but got {self.keep_rate!r}.")
        try:
            check_keep_rate(self.keep_rate)
            if self.lth_floor is not None:
                s(self, "lth_floor", parse_density(self.lth_floor, "lth_floor"))
            check_floor(self.lth_floor)
        except ValueError as exc:
            raise TrainerError(str(exc)) from None
        s(self, "keep_rate", float(self.keep_rate))
        try:
            check_srd(
                base=self.srd_base,
                upper=self.srd_upper,
                coeff=self.srd_coeff,
                mask_rate=self.srd_mask_rate,
            )
        except ValueError as exc:
            raise TrainerError(str(exc)) from None
        for name in ("srd_base", "srd_upper", "srd_coeff", "srd_mask_rate"):
            s(self, name, float(getattr(self, name)))
        if self.budget is not None:
            from planner.budget import parse_budget

            if not isinstance(self.budget, str):
                raise TrainerError(f"budget must be a string like 2GB, but got {self.budget!r}.")
            try:
                parse_budget(self.budget)
            except ValueError as exc:
                raise TrainerError(str(exc)) from None
        check_int(self.ref_rank, "ref_rank", low=1)
        check_int(self.max_rounds, "max_rounds", low=1, optional=True)
        if self.max_rounds is not None and self.budget is None:
            raise TrainerError("max_rounds caps the rounds a budget buys; it needs budget.")
        for name in ("rounds", "num_clients", "clients_per_round", "local_epochs", "batch_size"):
            check_int(getattr(self, name), name, low=1)
        if self.clients_per_round > self.num_clients:
            raise TrainerError(
                f"clients_per_round must be at most num_clients={self.num_clients}, "
                f"but got {self.clients_per_round}."
            )
        check_float(self.client_lr, "client_lr", low=0, strict=True)
        check_choice(self.client_optimizer, "client_optimizer", CLIENT_OPTIMIZERS)
        check_float(self.client_momentum, "client_momentum", low=0, strict=False)
        check_choice(self.server_optimizer, "server_optimizer", SERVER_OPTIMIZERS)
        check_float(self.server_lr, "server_lr", low=0, strict=True)
        check_float(self.server_momentum, "server_momentum", low=0, strict=False)
        check_float(self.server_weight_decay, "server_weight_decay", low=0, strict=False)
        if not isinstance(self.group_by_length, bool):
            raise TrainerError(
                f"group_by_length must be true or false, but got {self.group_by_length!r}."
            )
        if not isinstance(self.model, str) or not self.model:
            raise TrainerError(f"model must be a name or path, but got {self.model!r}.")
        check_choice(self.task, "task", TASKS)
        check_choice(self.data, "data", DATA_SOURCES)
        if self.data in DATA_NEEDS_PATH and not self.data_path:
            raise TrainerError(f"data={self.data!r} needs data_path (a file or dataset name).")
        for name in ("text_column", "label_column", "client_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise TrainerError(f"{name} must be a column name, but got {value!r}.")
        if self.sections is not None:
            if self.data != "debian-packages":
                raise TrainerError(
                    f"sections picks the labels of data=debian-packages; data={self.data!r} "
                    "has none (drop sections)."
                )
            from trainer.debian import parse_sections  # stdlib only

            if not isinstance(self.sections, str):
                raise TrainerError(f"sections must be text, but got {self.sections!r}.")
            parse_sections(self.sections)
        if self.data_path is not None and not isinstance(self.data_path, str):
            s(self, "data_path", str(self.data_path))
        check_int(self.min_examples_per_class, "min_examples_per_class", low=1)
        check_choice(self.partition, "partition", PARTITIONS)
        check_float(self.dirichlet_alpha, "dirichlet_alpha", low=0, strict=True)
        check_int(self.max_length, "max_length", low=2)
        check_float(self.val_fraction, "val_fraction", low=0, strict=True)
        check_float(self.test_fraction, "test_fraction", low=0, strict=False)
        if self.val_fraction + self.test_fraction >= 1:
            raise TrainerError(
                f"val_fraction + test_fraction must be < 1, but got "
                f"{self.val_fraction} + {self.test_fraction}."
            )
        check_int(self.max_examples_per_client, "max_examples_per_client", low=1, optional=True)
        check_int(self.min_client_examples, "min_client_examples", low=1)
        if self.min_client_examples > 1 and self.partition != "natural":
            raise TrainerError(
                f"min_client_examples={self.min_client_examples} filters the clients of "
                f"partition='natural'; partition={self.partition!r} makes its own clients."
            )
        if self.max_eval_examples == 0 and not isinstance(self.max_eval_examples, bool):
            s(self, "max_eval_examples", None)  # 0: no cap (a CLI flag cannot say None)
        check_int(self.max_eval_examples, "max_eval_examples", low=1, optional=True)
        if not isinstance(self.network, str) or not self.network:
            raise TrainerError(f"network must be a profile name or path, but got {self.network!r}.")
        check_float(self.up_slowdown, "up_slowdown", low=0, strict=True, optional=True)
        check_float(self.compute_seconds, "compute_seconds", low=0, strict=False)
        check_fleet(self)
        check_int(self.eval_every, "eval_every", low=0)
        if not isinstance(self.eval_test, bool):
            raise TrainerError(f"eval_test must be true or false, but got {self.eval_test!r}.")
        check_int(self.checkpoint_every, "checkpoint_every", low=0)
        check_int(self.seed, "seed", low=0)
        if self.seed > MAX_SEED:
            raise TrainerError(f"seed must be at most 2**63 - 1 = {MAX_SEED}, but got {self.seed}.")
        check_choice(self.device, "device", DEVICES)
        check_choice(self.amp, "amp", AMP_MODES)
        self._check_wire()
        if self.task == "lm" and self.data not in LM_SOURCES:
            raise TrainerError(
                f"task='lm' reads plain texts from {', '.join(LM_SOURCES)}, not {self.data!r}."
            )

    @property
    def effective_densities(self) -> tuple[float, float]:
        """(d_down, d_up) as sent: dense and ffa send everything they train."""
        if self.method in ("dense", "ffa"):
            return 1.0, 1.0
        if self.method == "sparseadapter":
            return self.d_up, self.d_up
        if self.method == "adapterlth":  # dense round 1; later rounds follow keep_rate
            return 1.0, 1.0
        if self.method in SRD_METHODS:  # the download mask; the rule's saturated upload share
            return 1.0 - self.srd_mask_rate, 1.0 - self.srd_base - self.srd_upper
        return self.d_down, self.d_up

    def sized_as(self, method: str, rank: int) -> RunConfig:
        """This run as ``method`` at ``rank``, for sizing an adapter only (the same model,
        targets and head): fleet policies are dropped, since dense LoRA and FFA-LoRA refuse
        tiered or bandwidth densities and the policies do not change the model."""
        return replace(
            self,
            rank=rank,
            method=method,
            round_policy="sync",
            density_policy="uniform",
            deadline_seconds=None,
        )

    @property
    def wire_precisions(self) -> tuple[str, str]:
        """(download, upload) value precisions: precision_down/precision_up, else precision."""
        return (self.precision_down or self.precision, self.precision_up or self.precision)

    def _check_wire(self) -> None:
        """The forced dense encoding writes dropped zeros, which b-bit codes cannot hold."""
        if self.encoding != "dense" or self.method in ("dense", "ffa"):
            return
        mask = self.method in ("sparseadapter", "adapterlth", *SRD_METHODS)
        for direction, precision, density in (
            ("download", self.wire_precisions[0], self.d_down),
            ("upload", self.wire_precisions[1], self.d_up),
        ):
            if precision in QUANTIZED and (mask or density < 1):
                raise TrainerError(
                    f"encoding dense with {direction} precision {precision} does not exist "
                    f"for {self.method} below density 1 (b-bit codes carry the kept values "
                    "only); use encoding auto, bitmap, rice or coo."
                )

    def fleet_setup(self) -> FleetSetup | None:
        """The run's fleet and policies (None without a fleet; ``trainer.config_fleet``)."""
        return fleet_setup(self)

    def network_profile(self) -> NetworkProfile:
        """The network this run is accounted on: the ``network`` profile, uplink set by
        ``up_slowdown`` when given (trainer and tuner both price rounds with it)."""
        from planner.profiles import load_network

        try:
            network = load_network(self.network)
            if self.up_slowdown is not None:
                network = network.with_links(up_slowdown=self.up_slowdown)
        except ValueError as exc:
            raise TrainerError(str(exc)) from None
        return network

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.target_modules is not None:
            out["target_modules"] = list(self.target_modules)
        return dict(sorted(out.items()))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):
            raise TrainerError(f"a run config must be a mapping, but got {type(data).__name__}.")
        known = {f.name for f in fields(cls)} | {"prune_rate"}
        unknown = sorted((k for k in data if k not in known), key=repr)  # keys of any type
        if unknown:
            raise TrainerError(f"unknown run config keys: {', '.join(map(key_text, unknown))}.")
        values = migrate_prune_rate(dict(data))
        if isinstance(values.get("target_modules"), list):
            values["target_modules"] = tuple(values["target_modules"])
        return cls(**values)

    def save(self, path: str | Path) -> Path:
        """Write YAML (.yaml/.yml) or sorted, indented JSON (.json)."""
        return write_config(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_config_mapping(path))
