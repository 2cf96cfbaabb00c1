"""Independently trained heads scored as one: the members of `TrainConfig.members`.

Each member is an `XMCHead` reading its own columns of the embedding (its encoder's output and
bias column, `elmo_core.encoders.members`) and stepping on its own loss, with its own rounding
stream. The model's logit is the members' mean, `sum_m W_m e_m / M`: one head whose weights are
the members' side by side at their storage scale divided by M (`merged`), so the merge changes no
stored value; the evaluation scores that merged head, which is the one saved and served.
"""

from __future__ import annotations

import torch

from elmo_core.head.head import XMCHead


class MemberHeads:
    """M heads over column blocks of one embedding (see the module doc)."""

    def __init__(self, heads: list[XMCHead], columns: list[torch.Tensor], dim: int) -> None:
        """`columns[m]`: the embedding columns head m reads, in its order; `dim`: the embedding
        width (every column read by exactly one head)."""
        if len(heads) != len(columns) or len(heads) < 2:
            raise ValueError("members need at least two heads, each with its columns")
        covered = torch.cat(columns).sort().values
        if not torch.equal(covered, torch.arange(dim)):
            raise ValueError(f"the members' columns must cover 0..{dim - 1} once each")
        for head, cols in zip(heads, columns, strict=True):
            if head.dim != cols.numel() or head.num_labels != heads[0].num_labels:
                raise ValueError("each head must read as many columns as it is wide")
        self.heads = heads
        self.columns = [cols.to(heads[0].device) for cols in columns]
        self.num_labels, self.dim = heads[0].num_labels, int(dim)
        self.precision, self.device = heads[0].precision, heads[0].device
        self._merged: XMCHead | None = None

    def step(
        self, embedding: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, lr: float
    ) -> torch.Tensor:
        """Each member's `XMCHead.step` on its columns; the embedding's gradient (B x dim fp32)
        gathers the members' gradients in their columns."""
        grad = torch.empty(embedding.shape[0], self.dim, device=self.device)
        for member, columns in enumerate(self.columns):
            grad[:, columns] = self.member_step(member, embedding[:, columns], rows, cols, lr)
        return grad

    def member_step(
        self,
        member: int,
        embedding: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        lr: float,
    ) -> torch.Tensor:
        """Member `member`'s `XMCHead.step` on its own columns of the embedding (`embedding` is
        just those, in its order); its gradient. Members step on threads of their own this way
        (`elmo_core.training.member_lanes`), each touching only its own head."""
        self._merged = None
        return self.heads[member].step(embedding, rows, cols, lr)

    @torch.no_grad()
    def loss(self, embedding: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> float:
        """The members' mean `XMCHead.loss` (each on its own logits: what each one trains on)."""
        losses = [
            head.loss(embedding[:, columns], rows, cols)
            for head, columns in zip(self.heads, self.columns, strict=True)
        ]
        return sum(losses) / len(losses)

    def topk(self, embedding: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`XMCHead.topk` of the merged head: the k best mean logits."""
        return self.merged().topk(embedding, k)

    def keep_float32_copy(self, max_bytes: int) -> bool:
        """`XMCHead.keep_float32_copy` of the merged head (dropped with it at the next step)."""
        return self.merged().keep_float32_copy(max_bytes)

    @torch.no_grad()
    def merged(self) -> XMCHead:
        """One head of width `dim` scoring the members' mean logit (module doc); cached until the
        next step or load. It holds the members' stored values as they are, at their common
        scale / M (members of one run share a scale), so the merge rounds nothing; members of
        different scales are re-rounded to one. It has no Kahan rows (it is for scoring)."""
        if self._merged is None:
            first = self.heads[0]
            merged = XMCHead(
                self.num_labels,
                self.dim,
                precision=self.precision,
                chunk_size=first.chunk_size,
                kahan_dtype=first.kahan_dtype,
                init_std=0.0,
                device=self.device,
            )
            count = len(self.heads)
            if len({head.scale for head in self.heads}) == 1:
                merged.scale = first.scale / count
                for head, columns in zip(self.heads, self.columns, strict=True):
                    stored = head.weight if head.inv_perm is None else head.weight[head.inv_perm]
                    merged.weight[:, columns] = stored
            else:
                weights = torch.empty(self.num_labels, self.dim, device=self.device)
                for head, columns in zip(self.heads, self.columns, strict=True):
                    weights[:, columns] = head.dequantized() / count
                merged.load_weights(weights)
            self._merged = merged
        return self._merged

    @torch.no_grad()
    def load_weights(self, weights: torch.Tensor) -> None:
        """Set each member's weights from its columns of a float L x dim tensor (label order)."""
        self._merged = None
        for head, columns in zip(self.heads, self.columns, strict=True):
            head.load_weights(weights[:, columns.to(weights.device)])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every member's `XMCHead.state_dict`, keys prefixed `member{m}.`."""
        return {
            f"member{m}.{key}": value
            for m, head in enumerate(self.heads)
            for key, value in head.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore a `state_dict` of members of the same shapes."""
        self._merged = None
        for m, head in enumerate(self.heads):
            prefix = f"member{m}."
            head.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )
