"""The training loss through the frozen output head, its gradient made on the spot.

The head is frozen, so the only gradient needed is d loss / d hidden, which
is (softmax - onehot) @ weight / n. Computing it chunk by chunk while the
chunk's logits are at hand means the full ``tokens x vocab`` logits (300 MB
at 1,500 tokens), their fp32 copy, their zero-filled gradient and the
log-softmax backward (together ~30% of a step) never happen.

A distilled row (replay) learns the base model's whole next-token
distribution p instead of one token: its loss is KL(p || q) and its
gradient (softmax - p) @ weight.

Importing this module stays torch-free: the autograd Function is built on
first use (:class:`HeadLoss`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["HEAD_CHUNK", "HeadLoss", "decoder_and_head"]

HEAD_CHUNK = 128  # loss rows per head chunk: 128 x 49152 fp32 logits = 25 MB, reused


def decoder_and_head(base: Any) -> tuple[Any, Any]:
    """The decoder stack and the output head, when the head is a plain bias-free linear."""
    config = base.config
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    head = base.get_output_embeddings()
    plain = (
        decoder is not None
        and head is not None
        and getattr(head, "bias", None) is None
        and not getattr(config, "final_logit_softcapping", None)
        and getattr(config, "logit_scale", None) in (None, 1, 1.0)
    )
    return (decoder, head) if plain else (None, None)


# -- one chunk of rows ----------------------------------------------------------------------
def _product(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor, dtype: Any) -> None:
    """``out = a @ b`` in ``dtype`` (fp32 written in place; bf16 product copied into fp32)."""
    import torch

    if dtype == torch.float32:
        torch.mm(a, b, out=out)
    else:
        out.copy_(a.to(dtype) @ b)


def _distill(
    z: torch.Tensor, picked: torch.Tensor, rows: torch.Tensor, teacher: Any, w_teacher: torch.Tensor,
) -> torch.Tensor:
    """The base's distribution p at the distilled ``rows``; sets their ``picked`` to p.z - p.log p.

    KL(p || q) = lse(z) - p.z + p.log p, so with "picked" standing for
    p.z - p.log p the token rows' formula lse(z) - picked gives it.
    """
    import torch

    zt = teacher.to(device=z.device, dtype=torch.float32) @ w_teacher.T
    logp = torch.log_softmax(zt, dim=1)
    p = logp.exp()
    picked[rows] = (p * z[rows]).sum(1, keepdim=True) - (p * logp).sum(1, keepdim=True)
    return p


def _loss_and_logit_grad(
    z: torch.Tensor, t: torch.Tensor, picked: torch.Tensor, rows: Any, p: Any,
) -> torch.Tensor:
    """Each row's loss; ``z`` (the logits) becomes d loss / d logits in place.

    That is softmax minus the one-hot target, or minus p at the distilled rows.
    """
    import torch

    top = z.amax(1, keepdim=True)
    z.sub_(top).exp_()  # shifted: exp cannot overflow
    norm = z.sum(1, keepdim=True)
    nll = norm.log() + top - picked  # log-sum-exp minus the target logit
    z.div_(norm)  # the softmax ...
    z.scatter_add_(1, t, torch.full_like(picked, -1.0))  # ... minus the one-hot target
    if rows is not None:  # ... or minus p, at the distilled rows
        z[rows] = z[rows].scatter_add_(1, t[rows], torch.ones_like(picked[rows])) - p
    return nll


def _forward(
    hidden: Any, weight: Any, targets: Any, dtype: Any, token_weights: Any, teacher: Any, soft: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed loss over all rows and d loss / d hidden (not yet divided by n)."""
    import torch

    n = targets.numel()
    w = weight.detach().to(dtype)  # frozen: a bf16 copy when bf16, else the weight itself
    # one logits buffer for every chunk and no temporaries of its size: fresh large
    # allocations cost page faults, measured at a fifth of a step's time on this VM
    device = hidden.device
    logits = torch.empty(min(n, HEAD_CHUNK), w.shape[0], dtype=torch.float32, device=device)
    grad = torch.empty(hidden.shape, dtype=torch.float32, device=device)
    total = torch.zeros((), dtype=torch.float32, device=device)
    # the base's distribution in fp32 whatever the product's dtype: it is the target
    w_teacher = None if soft is None else weight.detach().float()
    with torch.autocast(device.type, enabled=False):  # dtypes are chosen here, not by autocast
        for start in range(0, n, HEAD_CHUNK):
            h = hidden[start : start + HEAD_CHUNK].detach()
            t = targets[start : start + HEAD_CHUNK, None]
            z = logits[: len(t)]
            _product(z, h.float() if dtype == torch.float32 else h, w.T, dtype)
            picked = z.gather(1, t)  # the target's logit
            rows = p = None
            if soft is not None:
                rows = soft[start : start + len(t)].nonzero().squeeze(1)
                if rows.numel() and w_teacher is not None:  # the base's p at the distilled rows
                    p = _distill(z, picked, rows, teacher[rows + start], w_teacher)
                else:
                    rows = None
            nll = _loss_and_logit_grad(z, t, picked, rows, p)
            if token_weights is None:
                total += nll.sum()
            else:  # weighted loss: each row's loss and gradient scale by its weight
                w_rows = token_weights[start : start + len(t), None]
                total += (nll * w_rows).sum()
                z.mul_(w_rows)
            _product(grad[start : start + len(t)], z, w, dtype)
    return total, grad


def _make_head_loss() -> Any:
    import torch

    class _HeadLossFunction(torch.autograd.Function):
        """Mean cross-entropy of ``hidden @ weight.T`` with the gradient made in the forward."""

        @staticmethod
        def forward(
            ctx: Any, hidden: Any, weight: Any, targets: Any, dtype: Any, token_weights: Any = None,
            teacher: Any = None, soft: Any = None,
        ) -> Any:
            """``teacher``/``soft``: the base's hidden states and which rows learn its
            distribution p. Such a row's loss is KL(p || q) = sum p (log p - log q), and
            its gradient (softmax - p) @ weight, where a token row has (softmax - onehot)."""
            n = targets.numel()
            total, grad = _forward(hidden, weight, targets, dtype, token_weights, teacher, soft)
            ctx.save_for_backward(grad.div_(n))
            ctx.hidden_dtype = hidden.dtype
            return total / n

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> Any:
            (grad,) = ctx.saved_tensors
            return (grad * grad_out).to(ctx.hidden_dtype), None, None, None, None, None, None

    return _HeadLossFunction


class HeadLoss:
    """``HeadLoss.apply(hidden, weight, targets, dtype, token_weights, teacher, soft)``.

    Builds the autograd Function on first use, so importing this module stays torch-free.
    """

    _fn: Any = None

    @classmethod
    def apply(cls, *args: Any) -> Any:
        if cls._fn is None:
            cls._fn = _make_head_loss()
        return cls._fn.apply(*args)
