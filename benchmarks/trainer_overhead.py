"""Per-step overhead of TorchTrainer against a plain PyTorch loop on the same work.

Both train the digits MLP (same seed, data, batch size, epochs, optimizer) in this process,
interleaved over several repeats. The best-of-N samples/s of each (least disturbed by other
load, as ``timeit`` does) and the medians are reported, with their ratios (TorchTrainer /
plain; target >= 0.95). Each measurement covers everything from building the
dataloader and model to the end of the last epoch (no validation, no checkpoints).

    python benchmarks/trainer_overhead.py [--epochs 10] [--repeats 5] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from itwinai_ray.examples.digits import DigitsGetter, DigitsTrainer, make_mlp


def plain_loop(dataset, epochs: int, batch_size: int, hidden: int, seed: int) -> float:
    t0 = time.perf_counter()
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
    return time.perf_counter() - t0


def trainer_run(dataset, epochs: int, batch_size: int, hidden: int, seed: int) -> float:
    t0 = time.perf_counter()
    trainer = DigitsTrainer(config={"batch_size": batch_size, "optim_lr": 1e-3,
                                    "hidden_size": hidden, "shuffle_train": True},
                            epochs=epochs, random_seed=seed, metrics={}, save_best=False)
    trainer.execute(dataset)
    return time.perf_counter() - t0


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
    plain, ours = [], []
    for r in range(args.repeats):
        plain.append(n / plain_loop(dataset, args.epochs, args.batch_size, args.hidden, r))
        ours.append(n / trainer_run(dataset, args.epochs, args.batch_size, args.hidden, r))
    p, o = max(plain), max(ours)
    pm, om = statistics.median(plain), statistics.median(ours)
    print(f"digits MLP, {len(dataset)} samples x {args.epochs} epochs, batch {args.batch_size}, "
          f"hidden {args.hidden}, {args.repeats} repeats, torch threads 1")
    print(f"plain PyTorch loop : best {p:8.0f} samples/s, median {pm:8.0f}  "
          f"(runs: {', '.join(f'{v:.0f}' for v in plain)})")
    print(f"TorchTrainer       : best {o:8.0f} samples/s, median {om:8.0f}  "
          f"(runs: {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"ratio (trainer / plain): best {o / p:.3f}, median {om / pm:.3f}   target >= 0.95")


if __name__ == "__main__":
    main()
