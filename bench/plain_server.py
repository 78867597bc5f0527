"""The baseline a user would write by hand: the same packaged model behind a plain Starlette app on
uvicorn, one request per model call (no batching, no metrics, no capture), validating records as
the model server does. bench/serving.py measures our server against it.

    python -m bench.plain_server --tag mlp-iris:VERSION --port PORT   (BENTOML_HOME: the model store)
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from mlpipeline.serving.bundle import load_bundle
from mlpipeline.serving.validation import UnreadableRecords, clean_records
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def app(tag: str) -> Starlette:
    _, bundle = load_bundle(tag)

    async def predict(request: Request) -> Response:
        try:
            records = json.loads(await request.body())["records"]
            rows = clean_records(bundle.features, records)
        except (ValueError, KeyError, TypeError, UnreadableRecords) as error:
            return JSONResponse({"detail": str(error)}, status_code=400)
        return JSONResponse(bundle.predict_rows(rows))

    async def ready(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tag", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app(args.tag), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
