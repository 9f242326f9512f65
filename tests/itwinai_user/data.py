"""Data components written for itwinai 0.4 (unchanged: itwinai's import lines)."""

import torch
from itwinai.components import DataGetter, DataSplitter, monitor_exec
from torch.utils.data import TensorDataset, random_split


class DigitsGetter(DataGetter):
    def __init__(self, name=None) -> None:
        super().__init__(name)
        self.save_parameters(**self.locals2params(locals()))

    @monitor_exec
    def execute(self):
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        return TensorDataset(torch.tensor(x / 16.0, dtype=torch.float32),
                             torch.tensor(y, dtype=torch.long))


class DigitsSplitter(DataSplitter):
    @monitor_exec
    def execute(self, dataset):
        n = len(dataset)
        n_train = int(self.train_proportion * n)
        n_val = int(self.validation_proportion * n)
        gen = torch.Generator().manual_seed(0)
        train, val, test = random_split(dataset, [n_train, n_val, n - n_train - n_val],
                                        generator=gen)
        return train, val, test
