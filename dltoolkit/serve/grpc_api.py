"""TF Serving's gRPC API (``tensorflow.serving.PredictionService/Predict``,
``/Classify``, ``/Regress``, ``/GetModelMetadata`` and
``tensorflow.serving.ModelService/GetModelStatus``) on the protocol buffers of the
``tensorflow-serving-api`` package, so a client written for TF Serving works unchanged.

The limits, the checks of every input and the batching are the REST API's (one
ServingCore serves both); errors carry the gRPC code matching the REST status:
INVALID_ARGUMENT (400), NOT_FOUND (404), RESOURCE_EXHAUSTED (413: a message over the body
limit, or more rows than the row limit).
"""

from __future__ import annotations

import logging
import time
from concurrent import futures
from typing import Any

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from dltoolkit.errors import DltkError
from dltoolkit.serve import decoding
from dltoolkit.serve.core import ServingCore
from dltoolkit.serve.errors import RequestError
from dltoolkit.serve.repository import SIGNATURE, Servable

LOG = logging.getLogger("dltoolkit.serve")
ANSWER_TIMEOUT_S = 120.0


def start(core: ServingCore, host: str, port: int, threads: int = 16) -> Any:
    """Start a gRPC server for ``core`` on ``host:port``; returns the grpc.Server."""
    options = [
        ("grpc.max_receive_message_length", core.limits.max_body_bytes),
        ("grpc.max_send_message_length", 4 * core.limits.max_body_bytes),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Predictions(core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelStatus(core), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise DltkError(f"could not bind gRPC to {address}; pass another --grpc-port.")
    server.start()
    return server


def _answering(core: ServingCore, verb: str, context: Any, work: Any) -> Any:
    """Run ``work()``; a RequestError aborts the call with its gRPC code."""
    start = time.perf_counter()
    try:
        answer = work()
    except RequestError as error:
        core.metrics.answered("grpc", verb, error.grpc_code, time.perf_counter() - start)
        context.abort(getattr(grpc.StatusCode, error.grpc_code), str(error))
    core.metrics.answered("grpc", verb, "OK", time.perf_counter() - start)
    return answer


def _servable(core: ServingCore, model_spec: Any) -> Servable:
    if model_spec.version_label:
        raise RequestError("version labels are not served; ask for a version number.")
    version = model_spec.version.value if model_spec.HasField("version") else None
    servable = core.repository.servable(model_spec.name, version)
    if model_spec.signature_name not in ("", SIGNATURE):
        raise RequestError(f"signature {model_spec.signature_name[:80]!r} not found; this "
                           f"model has {SIGNATURE!r}.")  # fmt: skip
    return servable


def _inputs(core: ServingCore, servable: Servable, protos: Any) -> dict[str, Any]:
    import tensorflow as tf

    given, expected = set(protos), set(servable.inputs)
    if given != expected:
        raise RequestError(
            f"missing inputs {sorted(expected - given)}, unknown inputs "
            f"{sorted(given - expected)[:8]}; this model takes {sorted(expected)}."
        )
    arrays = {}
    for name in servable.inputs:
        proto = protos[name]
        shape = [dim.size for dim in proto.tensor_shape.dim]
        decoding.check_shape(servable, name, shape, core.limits)
        try:
            array = tf.make_ndarray(proto)
        except Exception as error:  # values that do not fill the shape, an unknown dtype
            raise RequestError(f"input {name!r}: not a readable tensor ({error}).") from None
        arrays[name] = decoding.from_tensor(servable, name, array)
    if len({len(a) for a in arrays.values()}) != 1:
        raise RequestError("inputs have different numbers of rows.")
    return arrays


def _run(core: ServingCore, servable: Servable, inputs: dict[str, Any]) -> dict[str, Any]:
    outputs = core.run(servable, inputs).result(timeout=ANSWER_TIMEOUT_S)
    decoding.check_finite(outputs, inputs)
    return outputs


class Predictions(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``."""

    def __init__(self, core: ServingCore):
        self.core = core

    def Predict(self, request: Any, context: Any) -> Any:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        def work() -> Any:
            servable = _servable(self.core, request.model_spec)
            outputs = _run(self.core, servable, _inputs(self.core, servable, request.inputs))
            wanted = list(request.output_filter) or list(outputs)
            unknown = sorted(set(wanted) - set(outputs))
            if unknown:
                raise RequestError(f"output_filter names unknown outputs {unknown[:8]}; this "
                                   f"model has {sorted(outputs)}.")  # fmt: skip
            response = predict_pb2.PredictResponse()
            _spec(response.model_spec, servable)
            for name in wanted:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
            return response

        return _answering(self.core, "predict", context, work)

    def Classify(self, request: Any, context: Any) -> Any:
        from tensorflow_serving.apis import classification_pb2

        def work() -> Any:
            servable = _servable(self.core, request.model_spec)
            if "classify" not in decoding.verbs(servable):
                raise RequestError("this model has no class probabilities to classify with.")
            outputs = _run(self.core, servable, self._examples(servable, request.input))
            response = classification_pb2.ClassificationResponse()
            _spec(response.model_spec, servable)
            for row in decoding.classify_answer(servable, outputs)["result"]:
                classifications = response.result.classifications.add()
                for label, score in row:
                    classifications.classes.add(label=label, score=score)
            return response

        return _answering(self.core, "classify", context, work)

    def Regress(self, request: Any, context: Any) -> Any:
        from tensorflow_serving.apis import regression_pb2

        def work() -> Any:
            servable = _servable(self.core, request.model_spec)
            if "regress" not in decoding.verbs(servable):
                raise RequestError("this model has no single number per row to regress.")
            outputs = _run(self.core, servable, self._examples(servable, request.input))
            response = regression_pb2.RegressionResponse()
            _spec(response.model_spec, servable)
            for value in decoding.regress_answer(outputs)["result"]:
                response.result.regressions.add(value=value)
            return response

        return _answering(self.core, "regress", context, work)

    def _examples(self, servable: Servable, given: Any) -> dict[str, Any]:
        """Input arrays from tf.Examples (a list, or a list with a shared context)."""
        kind = given.WhichOneof("kind")
        if kind is None:
            raise RequestError("the request has no examples.")
        group = getattr(given, kind)
        context = _features(group.context) if kind == "example_list_with_context" else {}
        examples = [{**context, **_features(example)} for example in group.examples]
        body = {"examples": examples}
        return decoding.example_inputs(servable, body, self.core.limits)

    def GetModelMetadata(self, request: Any, context: Any) -> Any:
        from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
        from tensorflow_serving.apis import get_model_metadata_pb2

        def work() -> Any:
            servable = _servable(self.core, request.model_spec)
            if list(request.metadata_field) not in ([], ["signature_def"]):
                raise RequestError("only the 'signature_def' metadata field is served.")
            folder = self.core.repository.root / servable.name / str(servable.version)
            saved = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
            signatures = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in saved.meta_graphs[0].signature_def.items():
                if key == SIGNATURE:
                    signatures.signature_def[key].CopyFrom(
                        meta_graph_pb2.SignatureDef.FromString(signature.SerializeToString())
                    )
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            _spec(response.model_spec, servable)
            response.metadata["signature_def"].Pack(signatures)
            return response

        return _answering(self.core, "metadata", context, work)


class ModelStatus(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService/GetModelStatus``."""

    def __init__(self, core: ServingCore):
        self.core = core

    def GetModelStatus(self, request: Any, context: Any) -> Any:
        from tensorflow_serving.apis import get_model_status_pb2

        states = get_model_status_pb2.ModelVersionStatus.State

        def work() -> Any:
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            response = get_model_status_pb2.GetModelStatusResponse()
            for entry in self.core.repository.status(spec.name, version):
                status = response.model_version_status.add()
                status.version = int(entry["version"])
                status.state = states.Value(entry["state"])
                status.status.error_code = 0 if entry["status"]["error_code"] == "OK" else 2
                status.status.error_message = entry["status"]["error_message"]
            return response

        return _answering(self.core, "status", context, work)


def _spec(model_spec: Any, servable: Servable) -> None:
    model_spec.name = servable.name
    model_spec.version.value = servable.version
    model_spec.signature_name = SIGNATURE


def _features(example: Any) -> dict[str, Any]:
    """A tf.Example's features as JSON-like values: one value per feature."""
    values = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        listed = list(getattr(feature, kind).value) if kind else []
        if len(listed) != 1:
            raise RequestError(f"feature {name[:80]!r} has {len(listed)} values; one is expected.")
        value = listed[0]
        values[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return values
