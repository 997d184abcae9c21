"""TF Serving's answers that describe a model: its metadata (the serving signature) for
REST, and the published OpenAPI description of the REST endpoints."""

from __future__ import annotations

from typing import Any

from dltoolkit.serve.repository import SIGNATURE, Servable

OPENAPI_PATH = "/v1/openapi.json"
METRICS_PATH = "/monitoring/prometheus/metrics"


def metadata(servable: Servable) -> dict[str, Any]:
    """TF Serving's metadata answer for the serving signature."""
    from tensorflow.core.framework import types_pb2

    def describe(specs: dict[str, Any]) -> dict[str, Any]:
        return {
            name: {
                "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
                "tensor_shape": {
                    "dim": [
                        {"size": str(-1 if d is None else d), "name": ""}
                        for d in spec.shape.as_list()
                    ],
                    "unknown_rank": False,
                },
                "name": f"{SIGNATURE}_{name}:0",
            }
            for name, spec in specs.items()
        }

    return {
        "model_spec": {
            "name": servable.name,
            "signature_name": "",
            "version": str(servable.version),
        },
        "metadata": {
            "signature_def": {
                "signature_def": {
                    SIGNATURE: {
                        "inputs": describe(servable.inputs),
                        "outputs": describe(servable.outputs),
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        },
    }


def _operation(summary: str, body: str | None, answer: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/name"}],
        "responses": {
            "200": {"description": "The answer.",
                    "content": {"application/json": {"schema": {"$ref": answer}}}},
            **{code: {"description": text, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}
               for code, text in [("400", "A bad request: the error says what and where."),
                                  ("404", "No such model, version or verb."),
                                  ("408", "The request was not received in time."),
                                  ("413", "Over the body or row limit.")]},
        },
    }  # fmt: skip
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": body}}},
        }
    return operation


def _versioned(paths: dict[str, Any]) -> dict[str, Any]:
    """Each path also under /versions/{version}."""
    out = {}
    for path, item in paths.items():
        out[path.format(v="")] = item
        versioned = {
            method: {**operation, "parameters": [*operation["parameters"],
                                                 {"$ref": "#/components/parameters/version"}]}
            for method, operation in item.items()
        }  # fmt: skip
        out[path.format(v="/versions/{version}")] = versioned
    return out


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the REST endpoints (served at OPENAPI_PATH)."""
    schemas = "#/components/schemas/"
    paths = _versioned({
        "/v1/models/{{name}}{v}": {"get": _operation(
            "Status of the model's versions.", None, schemas + "Status")},
        "/v1/models/{{name}}{v}/metadata": {"get": _operation(
            "The serving_default signature: inputs and outputs.", None, schemas + "Any")},
        "/v1/models/{{name}}{v}:predict": {"post": _operation(
            "Predict: rows ('instances') or columns ('inputs').", schemas + "Predict",
            schemas + "Any")},
        "/v1/models/{{name}}{v}:classify": {"post": _operation(
            "Classify examples (models with class probabilities).", schemas + "Examples",
            schemas + "Result")},
        "/v1/models/{{name}}{v}:regress": {"post": _operation(
            "Regress examples (models with one number per row).", schemas + "Examples",
            schemas + "Result")},
    })  # fmt: skip
    paths[METRICS_PATH] = {"get": {"summary": "Prometheus metrics.", "responses": {
        "200": {"description": "Prometheus' text format.",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}}}  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {"title": "dltk serve: TensorFlow Serving's REST API", "version": "1"},
        "paths": paths,
        "components": {
            "parameters": {
                "name": {"name": "name", "in": "path", "required": True,
                         "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}},
                "version": {"name": "version", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": "^[0-9]+$"}},
            },
            "schemas": {
                "Any": {},
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}}},
                "Predict": {"type": "object", "properties": {
                    "signature_name": {"type": "string"},
                    "instances": {"type": "array", "minItems": 1},
                    "inputs": {}}},
                "Examples": {"type": "object", "required": ["examples"], "properties": {
                    "signature_name": {"type": "string"},
                    "context": {"type": "object"},
                    "examples": {"type": "array", "items": {"type": "object"}}}},
                "Result": {"type": "object", "properties": {"result": {"type": "array"}}},
                "Status": {"type": "object", "properties": {
                    "model_version_status": {"type": "array"}}},
            },
        },
    }  # fmt: skip
