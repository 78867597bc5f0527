"""scikit-learn compatible PyTorch estimators: the rest of the pipeline (evaluation, packaging,
serving) treats them like any estimator; tuning trains them one epoch at a time (``epochs_fit``) so
that the scheduler can stop a poor trial after any epoch. On ``cuda`` when there is a GPU."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch  # here, so that a missing deep extra fails where the model is named
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from mlpipeline.deep import networks


class TorchEstimator(BaseEstimator):  # type: ignore[misc]
    architecture = "mlp"
    classifier = True

    def __init__(
        self,
        lr: float = 1e-3,
        width: int = 64,
        depth: int = 2,
        batch_size: int = 64,
        epochs: int = 20,
        weight_decay: float = 0.0,
        dropout: float = 0.0,
        device: str = "auto",
        random_state: int = 0,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.lr = lr
        self.width = width
        self.depth = depth
        self.batch_size = batch_size
        self.epochs = epochs
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.device = device
        self.random_state = random_state
        self.input_shape = input_shape

    def _device(self) -> str:
        if self.device != "auto":
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def _network(self, inputs: int, outputs: int) -> Any:
        width, depth, dropout = int(self.width), int(self.depth), float(self.dropout)
        if self.architecture == "cnn":
            return networks.cnn(tuple(self.input_shape or ()), outputs, width, depth, dropout)
        return networks.mlp(inputs, outputs, width, depth, dropout)

    def _inputs(self, features: np.ndarray) -> Any:
        tensor = torch.as_tensor(np.asarray(features, dtype=np.float32))
        if self.architecture == "cnn":
            tensor = tensor.reshape(len(tensor), *(self.input_shape or ()))
        return tensor

    def epochs_fit(self, features: np.ndarray, target: np.ndarray) -> Iterator[int]:
        """Trains epoch by epoch, yielding the number of each finished epoch."""
        if self.architecture == "cnn" and not self.input_shape:
            raise ValueError("torch_cnn reads images: the data needs one image column")
        torch.manual_seed(self.random_state)
        generator = torch.Generator().manual_seed(self.random_state)
        self.device_ = self._device()
        inputs = self._inputs(features)
        loss_fn: Any
        if self.classifier:
            self.classes_ = np.unique(target)
            labels = torch.as_tensor(np.searchsorted(self.classes_, target), dtype=torch.long)
            outputs, loss_fn = len(self.classes_), torch.nn.CrossEntropyLoss()
        else:
            values = np.asarray(target, dtype=np.float32)
            self.target_mean_, self.target_std_ = float(values.mean()), float(values.std() or 1.0)
            labels = torch.as_tensor((values - self.target_mean_) / self.target_std_).reshape(-1, 1)
            outputs, loss_fn = 1, torch.nn.MSELoss()
        self.network_ = self._network(inputs.shape[1] if inputs.dim() == 2 else 0, outputs).to(self.device_)
        optimiser = torch.optim.AdamW(
            self.network_.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay)
        )
        batch = max(int(self.batch_size), 2)
        self.epochs_done_ = 0
        for epoch in range(1, int(self.epochs) + 1):
            self.network_.train()
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(order), batch):
                index = order[start : start + batch]
                if len(index) < 2 and len(order) > 1:
                    continue  # batch norm cannot train on a batch of one
                optimiser.zero_grad()
                loss = loss_fn(self.network_(inputs[index].to(self.device_)), labels[index].to(self.device_))
                loss.backward()
                optimiser.step()
            self.epochs_done_ = epoch
            yield epoch

    def fit(self, features: np.ndarray, target: np.ndarray) -> TorchEstimator:
        for _ in self.epochs_fit(features, target):
            pass
        return self

    def _forward(self, features: np.ndarray) -> np.ndarray:
        device = getattr(self, "device_", "cpu")
        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"  # trained on a GPU, served without one
        self.network_.to(device).eval()
        inputs = self._inputs(features)
        with torch.no_grad():
            chunks = [
                self.network_(inputs[start : start + 1024].to(device)).cpu()
                for start in range(0, len(inputs), 1024)
            ]
        return torch.cat(chunks).numpy() if chunks else np.zeros((0, 1), dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled with the network on the CPU, so that a model trained on a GPU loads anywhere."""
        state = dict(self.__dict__)
        if "network_" in state:
            state["network_"] = state["network_"].to("cpu")
        return state


class TorchMLPClassifier(ClassifierMixin, TorchEstimator):  # type: ignore[misc]
    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        logits = torch.as_tensor(self._forward(features))
        return torch.softmax(logits, dim=1).numpy().astype(float)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(features), axis=1)])


class TorchCNNClassifier(TorchMLPClassifier):
    architecture = "cnn"


class TorchMLPRegressor(RegressorMixin, TorchEstimator):  # type: ignore[misc]
    classifier = False

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self._forward(features).reshape(-1).astype(float) * self.target_std_ + self.target_mean_
