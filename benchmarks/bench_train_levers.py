"""The training-speed levers one at a time, each against what it replaces, in one process.

    python -m benchmarks.bench_train_levers            # every lever, 60 interleaved pairs each
    python -m benchmarks.bench_train_levers --only lora --reps 20

A whole training run on a shared 2-core box drifts by +-8% from one run to the next (measured:
the same variant 1,497 and 1,625 tokens/s ten minutes apart), which hides a lever worth a few
percent. Here each lever and its baseline run alternately, A B A B ..., on the same inputs and
the same thread count (--threads, default 2), so drift lands on both; the median of each side and
their ratio are printed (> 1 = the lever is faster). Shapes are the bench_train workloads':
- rows: MiniLM's word-embedding table (30,522 x 384) in a full fine-tuning step of 32 banking77
  texts (its real token ids): dense grad + clip + fused AdamW vs sparse grad + AdamW by rows
  (train/embedding_rows.py);
- lora: the seven LoRA r=16 layers of one SmolLM2-135M block at 650 tokens, forward + backward:
  peft's Linear vs the fused LoRA linear (train/fused_lora.py);
- attention: MiniLM training attention (12 heads, dropout 0.1, a block-diagonal packed mask),
  forward + backward: transformers' sdpa (PyTorch's math path with its Bernoulli draw) vs the
  fast-mask attention (train/attention.py);
- lm_loss: SmolLM2's output layer + cross-entropy on 600 answer tokens, forward + backward:
  128-row chunks (24 MB of logits, as before) vs equal chunks of up to 512 rows (lm_loss.py).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable

from .common import DATA

LEVERS = ("rows", "lora", "attention", "lm_loss")


def pairs(base: Callable[[], None], lever: Callable[[], None], reps: int) -> tuple[float, float]:
    """Median seconds of ``base`` and ``lever``, run alternately ``reps`` times after a warm-up."""
    for _ in range(3):
        base()
        lever()
    a, b = [], []
    for _ in range(reps):
        t = time.perf_counter()
        base()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        lever()
        b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def rows_case():
    import torch

    from brewslm_core.train.base_model import resolve_model_path
    from brewslm_core.train.distributed import Dist
    from brewslm_core.train.embedding_rows import EmbeddingRows
    from brewslm_core.train.handlers.encoder_tools import encoder_tokenizer
    from brewslm_core.train.sharding import Replicated

    with (DATA / "banking77" / "train.csv").open(encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)]
    tok = encoder_tokenizer(resolve_model_path("auto", "classification"))
    ids = [torch.tensor(x) for x in tok(texts, truncation=True, max_length=128)["input_ids"]]
    gen = torch.Generator().manual_seed(0)
    clip = Replicated(Dist())

    def side(by_rows: bool) -> Callable[[], None]:
        torch.manual_seed(0)
        table = torch.nn.Embedding(tok.vocab_size, 384)
        params = [table.weight]
        opt = torch.optim.AdamW(params, lr=1e-4, fused=True)
        rows = EmbeddingRows(torch.nn.ModuleDict({"t": table}), params) if by_rows else None

        def step() -> None:
            batch = torch.cat([ids[i] for i in torch.randint(len(ids), (32,), generator=gen)])
            table(batch).sum().backward()
            if rows:
                rows.coalesce()
            clip.clip(params, 1.0, 2)  # the engine's clip (a sparse grad counts by its rows)
            if rows:
                rows.step(opt)
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    return side(False), side(True)


def lora_case():
    import torch
    from peft import LoraConfig, get_peft_model

    from brewslm_core.train.fused_lora import use_fused_lora

    shapes = {"q": (576, 576), "k": (576, 192), "v": (576, 192), "o": (576, 576),
              "gate": (576, 1536), "up": (576, 1536), "down": (1536, 576)}

    def side(fused: bool) -> Callable[[], None]:
        torch.manual_seed(0)
        block = torch.nn.ModuleDict({n: torch.nn.Linear(i, o, bias=False) for n, (i, o) in shapes.items()})
        model = get_peft_model(block, LoraConfig(r=16, lora_alpha=32, target_modules=list(shapes),
                                                 init_lora_weights=False))
        if fused:
            assert use_fused_lora(model) == len(shapes)
        layers = model.base_model.model
        xs = {n: torch.randn(650, i, requires_grad=True) for n, (i, _) in shapes.items()}
        grads = {n: torch.randn(650, o) for n, (_, o) in shapes.items()}

        def step() -> None:
            for name in shapes:
                layers[name](xs[name]).backward(grads[name])

        return step

    return side(False), side(True)


def attention_case():
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from brewslm_core.train.attention import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(18, 12, 32, 32, requires_grad=True) for _ in range(3))
    seg = torch.tensor([[0] * 14 + [1] * 18] * 18)  # two texts per packed row
    mask = (seg.unsqueeze(2) == seg.unsqueeze(1)).unsqueeze(1)
    grad = torch.randn(18, 32, 12, 32)
    module = torch.nn.Module()

    def side(fn) -> Callable[[], None]:
        def step() -> None:
            fn(module, q, k, v, mask, dropout=0.1, scaling=32**-0.5)[0].backward(grad)

        return step

    return side(sdpa_attention_forward), side(attention)


def lm_loss_case():
    import torch

    from brewslm_core.train.handlers import lm_loss

    torch.manual_seed(0)
    weight = torch.randn(49152, 576) * 0.02
    hidden = torch.randn(600, 576, requires_grad=True)
    target = torch.randint(49152, (600,))

    def side(chunk_bytes: int, rows: Callable[[int, int], int]) -> Callable[[], None]:
        def step() -> None:
            saved = lm_loss.CHUNK_BYTES, lm_loss.chunks
            lm_loss.CHUNK_BYTES, lm_loss.chunks = chunk_bytes, rows
            try:
                lm_loss.linear_cross_entropy(hidden, weight, target).backward()
            finally:
                lm_loss.CHUNK_BYTES, lm_loss.chunks = saved

        return step

    before = side(24 * 2**20, lambda tokens, vocab: lm_loss.chunk_rows(vocab))
    return before, side(lm_loss.CHUNK_BYTES, lm_loss.chunks)


CASES = {"rows": rows_case, "lora": lora_case, "attention": attention_case, "lm_loss": lm_loss_case}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(LEVERS), help=f"comma separated: {', '.join(LEVERS)}")
    ap.add_argument("--reps", type=int, default=60, help="interleaved pairs per lever")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    from brewslm_core.train.speed import tune_malloc

    torch.set_num_threads(args.threads)
    tune_malloc()  # as a training run has it (malloc_reuse is on by default)
    for name in args.only.split(","):
        if name not in CASES:
            raise SystemExit(f"unknown lever {name!r}: use {', '.join(LEVERS)}")
        base, lever = CASES[name]()
        a, b = pairs(base, lever, args.reps)
        print(f"{name:<10} before {a * 1e3:8.2f} ms  lever {b * 1e3:8.2f} ms  x {a / b:.2f} "
              f"({args.reps} interleaved pairs, {args.threads} threads)", flush=True)


if __name__ == "__main__":
    main()
