"""Per-step overhead of TorchTrainer against a plain PyTorch loop on the same work.

Both train the digits MLP (same seed, data, batch size, epochs, optimizer) in this process,
interleaved in ABBA order over several repeats. Two clocks are reported, with the ratio TorchTrainer / plain
(target >= 0.95): samples per second of this process's CPU time (``time.process_time``,
insensitive to other processes sharing the cores: the primary number on a shared box), and of
wall time. Each is the median over repeats. Each measurement covers everything from building the
dataloader and model to the end of the last epoch (no validation, no checkpoints).

    python benchmarks/trainer_overhead.py [--epochs 10] [--repeats 5] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from itwinai_ray.examples.digits import DigitsGetter, DigitsTrainer, make_mlp


def plain_loop(dataset, epochs: int, batch_size: int, hidden: int, seed: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True)
    model = make_mlp(hidden_size=hidden)
    loss_fn = torch.nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        running = 0.0
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            running += loss.item()
    return time.perf_counter() - t0, time.process_time() - c0


def trainer_run(dataset, epochs: int, batch_size: int, hidden: int,
                seed: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    trainer = DigitsTrainer(config={"batch_size": batch_size, "optim_lr": 1e-3,
                                    "hidden_size": hidden, "shuffle_train": True},
                            epochs=epochs, random_seed=seed, metrics={}, save_best=False)
    trainer.execute(dataset)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = DigitsGetter().execute()
    n = len(dataset) * args.epochs
    # warm-up both paths (imports, allocator)
    plain_loop(dataset, 1, args.batch_size, args.hidden, 0)
    trainer_run(dataset, 1, args.batch_size, args.hidden, 0)
    runs: dict[str, list[tuple[float, float]]] = {"plain": [], "trainer": []}
    fns = {"plain": plain_loop, "trainer": trainer_run}
    for r in range(args.repeats):  # ABBA order: neither side always runs first
        for which in (("plain", "trainer") if r % 2 == 0 else ("trainer", "plain")):
            runs[which].append(fns[which](dataset, args.epochs, args.batch_size, args.hidden, r))

    def rate(which: str, clock: int) -> float:
        return statistics.median(n / run[clock] for run in runs[which])

    print(f"digits MLP, {len(dataset)} samples x {args.epochs} epochs, batch {args.batch_size}, "
          f"hidden {args.hidden}, {args.repeats} repeats, torch threads 1")
    for name, clock in (("CPU time", 1), ("wall time", 0)):
        p, o = rate("plain", clock), rate("trainer", clock)
        print(f"{name:9s}: plain loop {p:8.0f} samples/s, TorchTrainer {o:8.0f} samples/s, "
              f"ratio {o / p:.3f}   (target >= 0.95)")


if __name__ == "__main__":
    main()
