"""The Open Inference Protocol (V2, REST) routes of the model server, mounted on the BentoML
service (service.py) beside /predict:

- ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2`` (server metadata);
- ``GET /v2/models/{name}[/versions/{version}]`` (model metadata) and ``.../ready``;
- ``POST /v2/models/{name}[/versions/{version}]/infer``.

The model's name is its pipeline's; its version the served model version; any other name or
version answers 404. An inference request's tensors become records (oip.py) that go through
``/predict`` itself, in-process (an ASGI call of the BentoML server app this one is mounted in,
as BentoML's own client does when a service calls its own API), so they are read, refused, batched
with the other requests, counted in the metrics and captured exactly as ``/predict``'s; a refusal
(400) names the input instead of the record field. Errors answer ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import bentoml
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mlpipeline import __version__
from mlpipeline.protocol import SYNTHETIC_HEADER
from mlpipeline.serving import oip
from mlpipeline.serving.oip import ProtocolError

SERVER_NAME = "mlpipeline"
BINARY_HEADER = "inference-header-content-length"

Handler = Callable[[Request], Awaitable[Response]]


def current() -> Any:
    """The running ModelService instance."""
    return bentoml.get_current_service()


def served_name(service: Any) -> str:
    """The model's name in the protocol: its pipeline's (the BentoML model is ``mlp-<pipeline>``)."""
    pipeline = service.bundle.metadata.get("pipeline")
    if pipeline:
        return str(pipeline)
    name = os.environ.get("MLP_MODEL_TAG", "").split(":")[0]
    return name.removeprefix("mlp-")


def has_probabilities(service: Any) -> bool:
    return hasattr(service.bundle.estimator, "predict_proba")


def model_of(request: Request) -> tuple[Any, str]:
    """The service and model name a request's path names; 404 for another model or version."""
    service = current()
    name = served_name(service)
    asked = request.path_params["name"]
    if asked != name:
        raise ProtocolError(f"model {asked!r} not found: this server serves {name!r}", status=404)
    version = request.path_params.get("version")
    if version is not None and version != service.version:
        raise ProtocolError(
            f"version {version!r} of model {name!r} not found: this server serves {service.version!r}",
            status=404,
        )
    return service, name


def answering_errors(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ProtocolError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)

    return wrapped


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    current()  # the service is instantiated before the server accepts requests
    return JSONResponse({"ready": True})


async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": SERVER_NAME, "version": __version__, "extensions": []})


@answering_errors
async def model_metadata(request: Request) -> Response:
    service, name = model_of(request)
    bundle = service.bundle
    return JSONResponse(
        oip.model_metadata(
            name,
            service.version,
            bundle.features,
            bundle.schema["task"],
            bundle.classes,
            has_probabilities(service),
            bundle.metadata.get("profile"),
        )
    )


@answering_errors
async def model_ready(request: Request) -> Response:
    _, name = model_of(request)
    return JSONResponse({"name": name, "ready": True})


@answering_errors
async def infer(request: Request) -> Response:
    service, name = model_of(request)
    if request.headers.get(BINARY_HEADER):
        raise ProtocolError(
            "binary tensor data is not supported; send the tensors as JSON (binary_data=False)"
        )
    try:
        body = json.loads(await request.body())
    except ValueError as error:
        raise ProtocolError(f"the request body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be an object with inputs")
    bundle = service.bundle
    task, classes, probabilities = bundle.schema["task"], bundle.classes, has_probabilities(service)
    records = oip.tensors_to_records(bundle.features, body.get("inputs"))
    available = [output["name"] for output in oip.output_tensors(task, classes, probabilities)]
    names = oip.requested_outputs(body.get("outputs"), available)

    headers = {"content-type": "application/json"}
    if request.headers.get(SYNTHETIC_HEADER):
        headers[SYNTHETIC_HEADER] = request.headers[SYNTHETIC_HEADER]
    # NaN (a missing value) is valid for /predict's reader, so allow_nan stays on.
    answered = await app.server().post("/predict", content=json.dumps({"records": records}), headers=headers)
    if answered.status_code == 400:
        raise ProtocolError(oip.refusal_message(answered.json().get("detail")))
    if answered.status_code != 200:
        return JSONResponse(
            {"error": f"prediction failed ({answered.status_code}): {answered.text}"},
            status_code=answered.status_code,
        )
    response: dict[str, Any] = {"model_name": name, "model_version": service.version}
    if "id" in body:
        response["id"] = body["id"]
    response["outputs"] = oip.answers_to_outputs(answered.json(), task, classes, probabilities, names)
    return JSONResponse(response)


class ProtocolApp(Starlette):
    """The routes, mounted in the BentoML server's app, with an in-process client of that app."""

    def __init__(self, routes: list[Route]) -> None:
        super().__init__(routes=routes)
        self.parent: ASGIApp | None = None
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.parent is None and scope.get("app") is not None:
            self.parent = scope["app"]  # the server's app, which is mounting this one
        await super().__call__(scope, receive, send)

    def server(self) -> httpx.AsyncClient:
        """A client of the server's own routes (with its middleware: metrics, context, limits)."""
        if self.client is None:
            if self.parent is None:
                raise RuntimeError("the Open Inference Protocol app is not mounted in a server")
            self.client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.parent),
                base_url="http://mlpipeline-model",
                timeout=httpx.Timeout(60),
                trust_env=False,
            )
        return self.client


app = ProtocolApp(
    routes=[
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
    ]
)
"""Mounted at / as a BentoML passive mount (a Starlette app): it answers only the paths above,
leaving the others to the service."""
