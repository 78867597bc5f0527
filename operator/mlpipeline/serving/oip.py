"""The Open Inference Protocol (V2, REST) in terms of the model's records: the model's metadata as
tensors, an inference request's input tensors as the records ``/predict`` reads, and ``/predict``'s
answers as output tensors. Pure functions; serving/oip_app.py serves them.

Inputs: one tensor per trained feature, named as the feature, of shape ``[-1]`` (``[n]`` or
``[n, 1]`` accepted), one element per record: numeric features FP32, categorical features BYTES
(INT64 when every category seen in training is an integer), image features BYTES holding the image
in base64 (or its URI in the artifact store). Each element becomes the record's value as it is, so
the values are read, imputed (null, NaN) or refused exactly as ``/predict`` does
(serving/validation.py). A missing or unknown input, a malformed tensor or tensors of different
lengths are refused here (ProtocolError), naming the input.

Outputs: classification ``label`` ([-1], BYTES, or INT64 when the classes are integers) and, when
the estimator gives probabilities, ``probabilities`` ([-1, n_classes], FP32, in the order of
``parameters.classes``); regression ``value`` ([-1], FP32).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

PLATFORM = "mlpipeline_sklearn"
DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BYTES"}
)
INTEGER = re.compile(r"[+-]?\d+")
OTHER_CATEGORIES = "__other__"  # monitoring/profile.py's bucket of rare categories


class ProtocolError(ValueError):
    """A request the protocol refuses: ``status`` 400 (bad request) or 404 (unknown model)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def feature_datatype(kind: str, profile: Mapping[str, Any] | None = None) -> str:
    """FP32 for a numeric feature; BYTES for images (base64) and categories, INT64 for categories
    that were all integers in training (their profile's frequencies)."""
    if kind == "numeric":
        return "FP32"
    if kind == "categorical" and profile:
        categories = [c for c in profile.get("frequencies", {}) if c != OTHER_CATEGORIES]
        if categories and all(INTEGER.fullmatch(str(c)) for c in categories):
            return "INT64"
    return "BYTES"


def label_datatype(classes: Sequence[Any]) -> str:
    return "INT64" if classes and all(is_integer(c) for c in classes) else "BYTES"


def output_tensors(task: str, classes: Sequence[Any], probabilities: bool) -> list[dict[str, Any]]:
    if task != "classification":
        return [{"name": "value", "datatype": "FP32", "shape": [-1]}]
    outputs = [{"name": "label", "datatype": label_datatype(classes), "shape": [-1]}]
    if probabilities:
        outputs.append({"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]})
    return outputs


def model_metadata(
    name: str,
    version: str,
    features: Mapping[str, str],
    task: str,
    classes: Sequence[Any],
    probabilities: bool,
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The model metadata response: inputs (one tensor per feature) and outputs."""
    columns = (profile or {}).get("columns", {})
    metadata: dict[str, Any] = {
        "name": name,
        "versions": [version],
        "platform": PLATFORM,
        "inputs": [
            {"name": feature, "datatype": feature_datatype(kind, columns.get(feature)), "shape": [-1]}
            for feature, kind in features.items()
        ],
        "outputs": output_tensors(task, classes, probabilities),
    }
    if task == "classification":
        metadata["parameters"] = {"classes": [c if is_integer(c) else str(c) for c in classes]}
    return metadata


def flatten(data: Any, name: str) -> list[Any]:
    """A tensor's data in row-major order: flat, or nested lists of the shape's dimensions."""
    if not isinstance(data, list):
        raise ProtocolError(f"input {name}: data must be a list")
    flat: list[Any] = []
    for element in data:
        if isinstance(element, list):
            flat.extend(flatten(element, name))
        else:
            flat.append(element)
    return flat


def read_input(tensor: Any, index: int) -> tuple[str, list[Any]]:
    """One input tensor's name and its values, one per record."""
    if not isinstance(tensor, Mapping) or not isinstance(tensor.get("name"), str):
        raise ProtocolError(f"inputs[{index}] is not a tensor with a name")
    name = tensor["name"]
    if "binary_data_size" in (tensor.get("parameters") or {}):
        raise ProtocolError(
            f"input {name}: binary tensor data is not supported; send the data as JSON (binary_data=False)"
        )
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise ProtocolError(f"input {name}: unknown datatype {datatype!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not all(is_integer(d) and d >= 0 for d in shape)
        or len(shape) not in (1, 2)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise ProtocolError(f"input {name}: shape {shape!r} is neither [n] nor [n, 1]")
    if "data" not in tensor:
        raise ProtocolError(f"input {name}: no data")
    values = flatten(tensor["data"], name)
    if len(values) != shape[0]:
        raise ProtocolError(f"input {name}: shape {shape} holds {shape[0]} elements, data {len(values)}")
    return name, values


def tensors_to_records(features: Mapping[str, str], inputs: Any) -> list[dict[str, Any]]:
    """The records of an inference request's ``inputs``: record i holds element i of each input."""
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("inputs must be a non-empty list of tensors")
    columns: dict[str, list[Any]] = {}
    for index, tensor in enumerate(inputs):
        name, values = read_input(tensor, index)
        if name not in features:
            raise ProtocolError(f"input {name}: unknown input; the model's inputs are {', '.join(features)}")
        if name in columns:
            raise ProtocolError(f"input {name}: given twice")
        columns[name] = values
    missing = [name for name in features if name not in columns]
    if missing:
        raise ProtocolError(f"input {missing[0]}: missing; the model's inputs are {', '.join(features)}")
    lengths = {name: len(values) for name, values in columns.items()}
    first = next(iter(lengths))
    for name, length in lengths.items():
        if length != lengths[first]:
            raise ProtocolError(
                f"input {name}: {length} elements, but input {first} has {lengths[first]}: "
                "every input holds one element per record"
            )
    return [{name: values[i] for name, values in columns.items()} for i in range(lengths[first])]


def requested_outputs(outputs: Any, available: Sequence[str]) -> list[str]:
    """The names of the outputs a request asks for (all when it names none)."""
    if outputs is None:
        return list(available)
    if not isinstance(outputs, list):
        raise ProtocolError("outputs must be a list of {name} objects")
    names = []
    for index, output in enumerate(outputs):
        if not isinstance(output, Mapping) or not isinstance(output.get("name"), str):
            raise ProtocolError(f"outputs[{index}] has no name")
        if output["name"] not in available:
            raise ProtocolError(
                f"output {output['name']}: unknown; the model's outputs are {', '.join(available)}"
            )
        names.append(output["name"])
    return names or list(available)


def answers_to_outputs(
    answers: Sequence[Mapping[str, Any]],
    task: str,
    classes: Sequence[Any],
    probabilities: bool,
    names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """``/predict``'s answers as the output tensors ``names`` (all when None)."""
    n = len(answers)
    tensors: dict[str, dict[str, Any]] = {}
    if task != "classification":
        tensors["value"] = {
            "datatype": "FP32",
            "shape": [n],
            "data": [float(a["prediction"]) for a in answers],
        }
    else:
        datatype = label_datatype(classes)
        labels = [a["label"] if datatype == "INT64" else str(a["label"]) for a in answers]
        tensors["label"] = {"datatype": datatype, "shape": [n], "data": labels}
        if probabilities:
            keys = [str(c) for c in classes]
            data = [float(a.get("probabilities", {}).get(k, 0.0)) for a in answers for k in keys]
            tensors["probabilities"] = {"datatype": "FP32", "shape": [n, len(keys)], "data": data}
    return [{"name": name, **tensors[name]} for name in (names if names is not None else tensors)]


def refusal_message(detail: Any) -> str:
    """``/predict``'s refusal (its 400's ``detail``: problems at loc ["records", i, field]) in terms of
    the inputs: ``records[1].tenure_months: "abc" is not a number`` becomes
    ``input tenure_months[1]: "abc" is not a number``."""
    if not isinstance(detail, list) or not detail:
        return str(detail)
    messages = []
    for problem in detail:
        message = str(problem.get("msg", problem)) if isinstance(problem, Mapping) else str(problem)
        loc = problem.get("loc") if isinstance(problem, Mapping) else None
        if isinstance(loc, list) and len(loc) == 3 and loc[0] == "records":
            prefix = f"records[{loc[1]}].{loc[2]}"
            reason = message[len(prefix) :] if message.startswith(prefix) else f": {message}"
            message = f"input {loc[2]}[{loc[1]}]{reason}"
        messages.append(message)
    return "; ".join(messages)
