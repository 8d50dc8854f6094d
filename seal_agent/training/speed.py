"""Where a training step is faster than the plain one: bf16 where it pays, LoRA in one addmm.

* Matrix products run in bf16 only where this CPU multiplies bf16 faster than
  fp32: some do (AMD Zen 4: 2.3x), some do not (Xeon without AMX: 0.5x), so the
  default probes it once per process. On a GPU: bf16 where it is supported.
* While training, each LoRA linear adds its update with one ``addmm`` instead
  of PEFT's separate scale and sum (:func:`fused_lora_forward`).
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from seal_agent.training.settings import ADAPTER_NAME

if TYPE_CHECKING:
    import torch

__all__ = ["bf16_default", "bf16_is_faster", "fused_lora_forward"]


@functools.cache
def bf16_is_faster() -> bool:
    """Whether this CPU multiplies bf16 matrices clearly faster than fp32 ones.

    Measured, not guessed from CPU flags: AVX512-BF16 without AMX runs bf16
    products at half the fp32 speed, Zen 4 at twice it. Costs ~30 ms, once.
    """
    import torch

    a, b = torch.randn(512, 576), torch.randn(576, 1536)  # one MLP product of the 135M model

    def best(x: torch.Tensor, y: torch.Tensor) -> float:
        x @ y  # first call builds the kernel
        times = []
        for _ in range(3):
            start = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a.bfloat16(), b.bfloat16()) < 0.9 * best(a, b)  # 10% margin: autocast costs casts


def bf16_default(device_type: str) -> bool:
    """bf16 autocast by default: on CPU where measured faster, on CUDA where supported."""
    if device_type == "cpu":
        return bf16_is_faster()
    if device_type == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return False  # mps: autocast to bf16 is not supported everywhere



def fused_lora_forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    """PEFT's LoRA forward, ``base(x) + scale * B(A(x))``, with the scale and the sum in one addmm.

    PEFT multiplies and adds as two more passes over the output (and one more
    backward); folding them into ``addmm`` made whole training steps ~10%
    faster. Used only while training, on plain LoRA linears, adapter active.
    """
    import torch

    result = self.base_layer(x, *args, **kwargs)
    down = self.lora_A[ADAPTER_NAME](self.lora_dropout[ADAPTER_NAME](x))
    up = self.lora_B[ADAPTER_NAME].weight
    flat = torch.addmm(
        result.reshape(-1, result.shape[-1]),
        down.reshape(-1, down.shape[-1]),
        up.T,
        alpha=self.scaling[ADAPTER_NAME],
    )
    return flat.view(result.shape)

