"""Top-k cosine search of L2-normalised TF-IDF rows against an index of rows (the train texts for
the neighbour prior, the label texts for the label-text prior), sized to the hardware, with a cost
estimate made before computing.

Three engines, one result (equal within float32 rounding; a tie at the k-th value may keep another
row of the same score):

- CPU (`cpu_topk`): chunks of queries go to forked workers (`elmo_core.parallel.map_chunks`; the
  index reaches them through the fork); each multiplies its queries' sparse rows by the index's
  columns (F x N; `sparse_topk.dense_product`, scipy's CSR product accumulated straight into a
  dense block) and keeps the top k per row (`topk_product`). Multiply-adds per query: the
  sum, over its features, of their posting-list lengths (document frequencies in the index).
- SpMM (`torch_topk`, any non-CPU device; on the CPU too, for the tests): the index goes onto the
  device as a sparse CSR tensor (N x F); B queries at a time become a dense F x B block, S = index @
  block (cuSPARSE SpMM, N x B), and only `torch.topk`'s k ids and values per query come back.
  Multiply-adds per query: the index's stored values (each one meets the whole block), more work
  than the sparse product but at a GPU's rate. B keeps the block, S and top-k's scratch within
  `memory_bytes`; the device memory is freed afterwards.
- posting lists (`posting_search.posting_topk`, a device): the CPU engine's products (each query
  reads its own features' posting lists) as a sparse x sparse product (cuSPARSE SpGEMM) and a
  sorted per-query top-k; under a feature cap, where the kept posting lists are short, hundreds
  of times fewer operations than SpMM (an index of at most 2^31 - 1 stored values).

Common words and character n-grams make these products nearly dense, so at XMC scale (10^5-10^6
queries against 10^5-10^6 index rows) a search can run for hours. Each index therefore carries a
feature cap, `max_df`, decided once when the model is built (`SimilarityIndex.plan_cap`): the cost
of searching a given number of texts is estimated from a sample of train texts and the data alone
(posting-list lengths, counts; fixed rates per engine below, no timing of this machine, so a run's
decision is reproducible), for each engine the device allows, and the engine that keeps the most
features decides; over the budget, only the features found in at most `max_df` index rows
are scored, the largest cap that fits (dropping the commonest features, whose idf weights are the
lowest: a stop-word list chosen by cost; the scores become the cosine restricted to the kept
features, a lower bound of it). Where that would keep under `MIN_KEPT_WEIGHT` of the sample's
squared TF-IDF weight, the prior is turned off instead. The cap is saved with the model and every
later search (validation, test, a served request) applies the same one, so the evaluated ranking
is the served ranking; each search logs one line with its size, engine and estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import torch

from elmo_core.fusion.posting_search import MAX_STORED_VALUES, posting_topk
from elmo_core.fusion.sparse_io import torch_csr
from elmo_core.fusion.sparse_topk import dense_product, topk_matrix, topk_product
from elmo_core.parallel import can_fork, map_chunks, worker_count

QUERY_CHUNK = 256
"""Queries per task of the CPU engine's parallel map (fixed: results don't depend on workers)."""
GPU_MEMORY_BYTES = 4 << 30
"""Device memory a torch search's working set (query block, scores, top-k scratch) may take."""
CPU_OPS_PER_S = 1.5e8
"""CPU engine, one worker: posting-list entries (or scored index rows) per second. Measured by
`bench/priors.py`: 1.6e8 per worker with 16 workers on the H200 host, 1.7-2.1e8 with one worker
on a loaded 2-core VM, with scipy's CSR product. The engine's dense block now comes from
`sparse_topk.dense_product` (the same bits, 3.9x / 12.6x faster on wordnet-taxonomy's label-text
and neighbour searches), so this rate is conservative; it is kept because the rate decides each
model's feature cap, and a faster rate would keep more features, so change the priors' scores
(and the models), which is to be chosen on validation slices, not by a speed-up."""
GPU_OPS_PER_S = 4.0e11
"""SpMM engine on a GPU: multiply-adds of SpMM (or scored index rows) per second. Measured on one
H200: `bench/priors.py` (670K rows) SpMM alone 1.8e12, with top-k, upload and copies 6.5-8.9e11;
`bench/search_engines.py` (2M label texts, 20,000 queries) 3.6e11, the rate planned with."""
GPU_POSTING_OPS_PER_S = 3.0e9
"""Posting-list engine on a GPU: products per second, SpGEMM and ranking included. Measured by
`bench/search_engines.py` on one H200 (amazon-3m shape at 0.7, caps 2,254-5,047): 3.2-3.5e9."""
UPLOAD_BYTES_PER_S = 1.0e10
"""Host-to-device copy rate of the torch engine's index upload (pageable memory over PCIe)."""
MIN_KEPT_WEIGHT = 0.5
"""A search that can afford less than this share of its queries' squared TF-IDF weight is off."""


@dataclass(frozen=True)
class SearchOptions:
    """Where and how a prior's search runs.

    `device`: None or a CPU device for the CPU engine, else the torch engine on that device;
    `workers`: the CPU engine's processes (None: every available core); `log`: receives each
    search's plan, one line; `memory_bytes`: the torch engine's working-set budget.
    """

    device: torch.device | None = None
    workers: int | None = None
    log: Callable[[str], None] | None = None
    memory_bytes: int = GPU_MEMORY_BYTES

    @property
    def on_device(self) -> bool:
        """True when the torch engine runs the search (a device other than the CPU)."""
        return self.device is not None and self.device.type != "cpu"


@dataclass(frozen=True)
class SearchPlan:
    """What a search will do: `max_df` None scores every feature, a positive cap only the features
    in at most that many index rows, 0 nothing (the search is off)."""

    max_df: int | None
    estimated_s: float
    message: str

    @property
    def enabled(self) -> bool:
        """False when the search is off."""
        return self.max_df != 0


class SimilarityIndex:
    """N x F float32 CSR rows searched by cosine (rows and queries L2-normalised, non-negative).

    `max_df`: only features in at most that many rows are scored (None: every feature; 0: the
    search is off and finds nothing), see the module doc and `plan_cap`.
    """

    def __init__(self, rows: sp.csr_matrix, max_df: int | None = None) -> None:
        self.rows = sp.csr_matrix(rows, dtype=np.float32)
        self.rows.sum_duplicates()
        self.max_df = max_df

    @property
    def max_df(self) -> int | None:
        """The feature cap (see the class doc)."""
        return self._max_df

    @max_df.setter
    def max_df(self, value: int | None) -> None:
        self._max_df = None if value is None else int(value)
        for derived in ("kept", "kept_frequencies", "kept_rows", "columns"):
            self.__dict__.pop(derived, None)

    @property
    def shape(self) -> tuple[int, int]:
        """(index rows, features)."""
        num_rows, num_features = self.rows.shape
        return int(num_rows), int(num_features)

    @cached_property
    def document_frequencies(self) -> np.ndarray:
        """Per feature, the number of index rows holding it (its posting-list length)."""
        return np.bincount(self.rows.indices, minlength=self.shape[1]).astype(np.int64)

    @cached_property
    def columns(self) -> sp.csr_matrix:
        """The kept index transposed (F x N CSR): the posting lists the CPU and posting-list
        engines read (empty for the features over the cap)."""
        return sp.csr_matrix(self.kept_rows.T)

    @cached_property
    def kept(self) -> np.ndarray | None:
        """Per feature, whether the cap keeps it (None: every feature is kept)."""
        return None if self.max_df is None else self.document_frequencies <= self.max_df

    @cached_property
    def kept_frequencies(self) -> np.ndarray:
        """The document frequencies with the features over the cap at 0 (what a search reads)."""
        df = self.document_frequencies
        return df if self.kept is None else np.where(self.kept, df, 0)

    @cached_property
    def kept_rows(self) -> sp.csr_matrix:
        """The index without the features over the cap (what SpMM multiplies by)."""
        return self.rows if self.kept is None else keep_columns(self.rows, self.kept)

    def plan_cap(
        self,
        sample: sp.csr_matrix,
        options: SearchOptions,
        *,
        texts: int,
        budget_s: float,
        name: str,
    ) -> SearchPlan:
        """Decide and set `max_df`: the largest cap such that searching `texts` texts like the
        `sample` queries (their features and document frequencies) on `options`' engine is
        estimated at no more than `budget_s` (every feature when it fits; off when the
        affordable features carry under `MIN_KEPT_WEIGHT` of the sample's weight). The plan's
        message goes to `options.log`."""
        sample = sp.csr_matrix(sample, dtype=np.float32)
        self.max_df = None
        factor = max(int(texts), 1) / max(sample.shape[0], 1)
        title = f"{name}: cap for {int(texts):,} texts x {self.shape[0]:,} rows"
        plans = [
            plan_search(cost.scaled(factor), self.document_frequencies, sample, budget_s, title)
            for cost in self._costs(sample, options)
        ]
        # The engine that keeps the most features (None: all of them), then the quickest.
        plan = min(
            plans, key=lambda p: (-math.inf if p.max_df is None else -p.max_df, p.estimated_s)
        )
        self.max_df = plan.max_df
        if options.log is not None:
            options.log(plan.message)
        return plan

    def _costs(self, queries: sp.csr_matrix, options: SearchOptions) -> list[SearchCost]:
        """The cost of searching `queries` on each engine `options` allow, at the current cap."""
        active = int(np.count_nonzero(np.diff(queries.indptr)))
        workers = cpu_workers(options.workers, math.ceil(active / QUERY_CHUNK))
        df, num_rows = self.kept_frequencies, self.shape[0]
        engines: tuple[str, ...] = ENGINES if options.on_device else ("cpu",)
        if df.sum() > MAX_STORED_VALUES:
            engines = tuple(engine for engine in engines if engine != "posting")
        return [search_cost(df, num_rows, queries, engine=e, workers=workers) for e in engines]

    def _cost(self, queries: sp.csr_matrix, options: SearchOptions) -> SearchCost:
        """The cheapest engine's cost of searching `queries` as `options` allow (a handful of
        texts, one request, costs less on the CPU than the index's upload)."""
        return min(self._costs(queries, options), key=lambda cost: cost.seconds())

    def search(
        self, queries: sp.csr_matrix, k: int, options: SearchOptions, name: str
    ) -> sp.csr_matrix:
        """Q x N CSR: each query's (at most) `k` most similar index rows and their cosines over
        the features within the cap `max_df`, zeros dropped (`name` labels the log line)."""
        queries = sp.csr_matrix(queries, dtype=np.float32)
        num_queries, num_rows = queries.shape[0], self.shape[0]
        if self.max_df == 0:
            if options.log is not None:
                options.log(f"{name}: off (the model's feature cap leaves nothing to score)")
            return sp.csr_matrix((num_queries, num_rows), dtype=np.float32)
        if self.kept is not None:
            queries = keep_columns(queries, self.kept)
        active = np.flatnonzero(np.diff(queries.indptr))
        cost = self._cost(queries, options)
        if options.log is not None:
            features = (
                "every feature" if self.max_df is None else f"features in <= {self.max_df:,} rows"
            )
            options.log(
                f"{name}: {len(active):,} texts x {num_rows:,} rows on {cost.engine}: "
                f"estimated {_seconds(cost.seconds())}, {features}"
            )
        if cost.kind == "spmm":
            assert options.device is not None
            found = torch_topk(
                self.kept_rows, queries[active], k, options.device, options.memory_bytes
            )
        elif cost.kind == "posting":
            assert options.device is not None
            values, ids = posting_topk(
                self.columns, queries[active], k, options.device, options.memory_bytes
            )
            found = topk_matrix(values, ids, num_rows)
        else:
            # The CPU engine only reads the posting lists of the queries' (kept) features.
            found = cpu_topk(queries[active], self.columns, k, options.workers)
        return scatter_rows(found, active, num_queries)


ENGINES = ("cpu", "spmm", "posting")
"""The search engines (module doc); a device allows all three, the CPU only the first."""


@dataclass(frozen=True)
class SearchCost:
    """The estimated cost of one search on one engine (`kind`, one of `ENGINES`; `engine` names
    it in the log), as a function of the df cap: `costs[i]` operations are saved by dropping the
    features of document frequency `frequencies[i]`; `fixed_ops` stay; `rate` operations per
    second; `fixed_s` seconds more (the index's upload)."""

    engine: str
    kind: str
    frequencies: np.ndarray
    costs: np.ndarray
    fixed_ops: float
    rate: float
    fixed_s: float

    def scaled(self, factor: float) -> SearchCost:
        """The cost of `factor` times as many queries like these (the upload stays)."""
        return SearchCost(
            self.engine,
            self.kind,
            self.frequencies,
            self.costs * factor,
            self.fixed_ops * factor,
            self.rate,
            self.fixed_s,
        )

    def seconds(self, max_df: int | None = None) -> float:
        """Estimated seconds when only features in at most `max_df` rows are scored (None: all)."""
        costs = self.costs if max_df is None else self.costs[self.frequencies <= max_df]
        return self.fixed_s + (self.fixed_ops + float(costs.sum())) / self.rate


def search_cost(
    document_frequencies: np.ndarray,
    num_rows: int,
    queries: sp.csr_matrix,
    *,
    engine: str,
    workers: int,
) -> SearchCost:
    """The cost of searching `queries` (non-empty rows count) in an index of `num_rows` rows with
    these posting-list lengths on `engine` (one of `ENGINES`). Operations: CPU engine, per query,
    the posting-list lengths of its features plus one per index row (densify and select), at
    `CPU_OPS_PER_S` x `workers`; SpMM engine, per query, the index's stored values plus one per
    index row, at `GPU_OPS_PER_S`, after the index's upload at `UPLOAD_BYTES_PER_S`; posting-list
    engine, per query, the posting-list lengths of its features, at `GPU_POSTING_OPS_PER_S`,
    after the upload of the posting lists."""
    df = np.asarray(document_frequencies, dtype=np.int64)
    active = int(np.count_nonzero(np.diff(queries.indptr)))
    if engine == "spmm":
        # Every query meets every stored value of the (kept) index.
        upload_s = (12.0 * float(df.sum()) + 8.0 * num_rows) / UPLOAD_BYTES_PER_S
        costs = df.astype(np.float64) * active
        fixed_ops = float(active) * num_rows
        return SearchCost("the GPU (SpMM)", engine, df, costs, fixed_ops, GPU_OPS_PER_S, upload_s)
    frequencies = df[queries.indices]
    if engine == "posting":
        upload_s = (8.0 * float(df.sum()) + 16.0 * len(df)) / UPLOAD_BYTES_PER_S
        costs = frequencies.astype(np.float64)
        name = "the GPU (posting lists)"
        return SearchCost(name, engine, frequencies, costs, 0.0, GPU_POSTING_OPS_PER_S, upload_s)
    if engine != "cpu":
        raise ValueError(f"unknown search engine {engine!r}: one of {', '.join(ENGINES)}")
    name = f"{workers} CPU worker{'s' if workers > 1 else ''}"
    rate = CPU_OPS_PER_S * workers
    fixed_ops = float(active) * num_rows
    return SearchCost(
        name, engine, frequencies, frequencies.astype(np.float64), fixed_ops, rate, 0.0
    )


def plan_search(
    cost: SearchCost,
    document_frequencies: np.ndarray,
    queries: sp.csr_matrix,
    budget_s: float | None,
    title: str,
) -> SearchPlan:
    """The plan of one search (see the module doc) from its `cost`, the index's posting-list
    lengths and the queries; deterministic. `title` starts the plan's message."""
    full_s = cost.seconds()
    head = f"{title} on {cost.engine}"
    if budget_s is None or full_s <= budget_s:
        return SearchPlan(None, full_s, f"{head}: estimated {_seconds(full_s)}, every feature")
    over = f"{head}: estimated {_seconds(full_s)} > budget {_seconds(budget_s)}"
    allowance = (budget_s - cost.fixed_s) * cost.rate - cost.fixed_ops
    cap = largest_cap(cost.frequencies, cost.costs, allowance)
    df = np.asarray(document_frequencies)
    weights = queries.data.astype(np.float64) ** 2
    kept_weight = float(weights[df[queries.indices] <= cap].sum() / max(weights.sum(), 1e-30))
    if cap == 0 or kept_weight < MIN_KEPT_WEIGHT:
        return SearchPlan(
            0,
            0.0,
            f"{over}: OFF (the features it could afford carry {kept_weight:.0%} of the texts' "
            f"TF-IDF weight, under {MIN_KEPT_WEIGHT:.0%})",
        )
    dropped = int(np.count_nonzero(df > cap))
    estimated_s = cost.seconds(cap)
    return SearchPlan(
        cap,
        estimated_s,
        f"{over}: scoring only features in <= {cap:,} rows (dropping the {dropped:,} commonest, "
        f"{1 - kept_weight:.0%} of the texts' TF-IDF weight), estimated {_seconds(estimated_s)}",
    )


def _seconds(value: float) -> str:
    return f"{value:,.0f} s" if value >= 10 else f"{value:.2g} s"


def largest_cap(frequencies: np.ndarray, costs: np.ndarray, allowance: float) -> int:
    """The largest document frequency c with sum(costs[frequencies <= c]) <= allowance (0: none)."""
    if allowance < 0 or len(frequencies) == 0:
        return 0
    order = np.argsort(frequencies, kind="stable")
    sorted_df = frequencies[order]
    total = np.cumsum(costs[order])
    group_ends = np.flatnonzero(np.append(sorted_df[1:] != sorted_df[:-1], True))
    fitting = group_ends[total[group_ends] <= allowance]
    return int(sorted_df[fitting[-1]]) if len(fitting) else 0


def keep_columns(matrix: sp.csr_matrix, kept: np.ndarray) -> sp.csr_matrix:
    """A CSR copy of `matrix` without the stored values in columns where `kept` is False."""
    mask = kept[matrix.indices]
    counts = np.bincount(
        np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[mask],
        minlength=matrix.shape[0],
    )
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(matrix.indptr.dtype)
    return sp.csr_matrix(
        (matrix.data[mask], matrix.indices[mask], indptr), shape=matrix.shape, dtype=matrix.dtype
    )


def scatter_rows(found: sp.csr_matrix, rows: np.ndarray, num_rows: int) -> sp.csr_matrix:
    """A `num_rows`-row CSR whose row rows[i] is found's row i (the other rows empty)."""
    counts = np.zeros(num_rows, dtype=np.int64)
    counts[rows] = np.diff(found.indptr)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix(
        (found.data, found.indices, indptr), shape=(num_rows, found.shape[1]), dtype=np.float32
    )


def cpu_workers(requested: int | None, num_chunks: int) -> int:
    """The processes `map_chunks` will run `num_chunks` tasks on (1 where it cannot fork)."""
    if not can_fork():
        return 1
    return max(1, min(worker_count(requested), num_chunks))


@dataclass(frozen=True)
class _CpuJob:
    queries: sp.csr_matrix
    columns: sp.csr_matrix
    k: int
    chunk: int


def _cpu_chunk(job: _CpuJob, index: int) -> sp.csr_matrix:
    start = index * job.chunk
    return topk_product(job.queries[start : start + job.chunk], job.columns, job.k)


def cpu_topk(
    queries: sp.csr_matrix,
    columns: sp.csr_matrix,
    k: int,
    workers: int | None,
    chunk: int = QUERY_CHUNK,
) -> sp.csr_matrix:
    """`topk_product(queries, columns, k)` over chunks of `chunk` queries, mapped over `workers`
    forked processes; the same matrix for every worker count and chunk size."""
    num_chunks = math.ceil(queries.shape[0] / chunk)
    if num_chunks == 0:
        return sp.csr_matrix((0, columns.shape[1]), dtype=np.float32)
    job = _CpuJob(queries, columns, k, chunk)
    dense_product(queries, columns, 0, 0)  # compiled (or loaded) once here, not in every worker
    blocks = map_chunks(_cpu_chunk, job, num_chunks, workers)
    return sp.vstack(blocks, format="csr", dtype=np.float32)


def search_batch(num_features: int, num_rows: int, memory_bytes: int) -> int:
    """Queries per torch step so that the dense F x B block, the N x B scores and top-k's scratch
    (as much again as the scores, at most) fit `memory_bytes` of float32 (at least 1)."""
    return max(1, int(memory_bytes) // (4 * (num_features + 2 * num_rows)))


def torch_topk(
    rows: sp.csr_matrix,
    queries: sp.csr_matrix,
    k: int,
    device: torch.device,
    memory_bytes: int = GPU_MEMORY_BYTES,
) -> sp.csr_matrix:
    """Q x N CSR of each query's `k` largest products with the index `rows` (zeros dropped),
    computed by torch on `device`: index @ dense query block, then `torch.topk` (module doc)."""
    num_rows, num_features = rows.shape
    num_queries = queries.shape[0]
    k = min(int(k), num_rows)
    top_ids = np.zeros((num_queries, k), dtype=np.int64)
    top_values = np.zeros((num_queries, k), dtype=np.float32)
    if k > 0 and num_queries > 0:
        index = torch_csr(rows, device)
        batch = min(num_queries, search_batch(num_features, num_rows, memory_bytes))
        for start in range(0, num_queries, batch):
            block = dense_columns(queries[start : start + batch], num_features, device)
            # top-k along contiguous rows of S^T: 1.6x faster than along S's columns (H200).
            values, ids = torch.topk((index @ block).T.contiguous(), k, dim=1)
            top_values[start : start + batch] = values.cpu().numpy()
            top_ids[start : start + batch] = ids.cpu().numpy()
            del block, values, ids
        del index
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return topk_matrix(top_values, top_ids, num_rows)


def dense_columns(block: sp.csr_matrix, num_features: int, device: torch.device) -> torch.Tensor:
    """The F x B dense float32 tensor on `device` whose column j is `block`'s row j."""
    dense = torch.zeros((num_features, block.shape[0]), dtype=torch.float32, device=device)
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    dense[
        torch.from_numpy(block.indices.astype(np.int64)).to(device),
        torch.from_numpy(rows).to(device),
    ] = torch.from_numpy(np.asarray(block.data, dtype=np.float32)).to(device)
    return dense
