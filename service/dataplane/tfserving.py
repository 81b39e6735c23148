"""TF Serving's REST API in the dataplane's terms: a predict request as a batch for
`Predictor.decode` (so every limit and token rule of the native API applies), its answer
as the one output tensor, the model's signature as metadata, and version statuses."""

from __future__ import annotations

from collections.abc import Sequence

from service.dataplane.predict import Predictor, answer_rows
from service.dataplane.tokens import TokensIn
from service.errors import InvalidInput, shown
from service.inference.model.interface import LoadedModel, ModelSpec
from service.inference.model.manifest_parts import Side
from service.wire.tfserving import (
    INPUT,
    OUTPUT,
    PREDICT_METHOD,
    SIGNATURE,
    Dim,
    SignatureDef,
    SignatureDefMap,
    TensorInfo,
    TensorShape,
    TFColumnarResponse,
    TFMetadataResponse,
    TFModelMetadata,
    TFModelSpec,
    TFPredictRequest,
    TFRowResponse,
)


def batch(request: TFPredictRequest) -> tuple[str, Sequence[TokensIn]]:
    """The wire field that holds the batch ("instances" or "inputs") and the batch."""
    if request.signature_name not in (None, "", SIGNATURE):
        raise InvalidInput(
            f"signature_name: {shown(request.signature_name)} is not a signature of this "
            f'model; allowed: "{SIGNATURE}" (or omit it)',
            field="signature_name",
        )
    if request.instances is not None and request.inputs is not None:
        raise InvalidInput(
            "body: send either 'instances' (row format) or 'inputs' (columnar format), not both",
            field="body",
        )
    if request.instances is not None:
        return "instances", request.instances
    if request.inputs is not None:
        return "inputs", request.inputs
    raise InvalidInput(
        "body: missing 'instances' (row format) or 'inputs' (columnar format)", field="body"
    )


async def predict(
    predictor: Predictor, model: LoadedModel, request: TFPredictRequest
) -> TFRowResponse | TFColumnarResponse:
    field, inputs = batch(request)
    decoded = await predictor.decode(model, inputs, request.max_steps, False, field=field)
    answers = answer_rows(model, inputs, decoded.ids)
    # built from our own values: no need to validate them again
    if field == "instances":
        return TFRowResponse.model_construct(predictions=answers)
    return TFColumnarResponse.model_construct(outputs=answers)


def _tensor(name: str, side: Side, text: bool) -> TensorInfo:
    """A batch (-1) of texts, or of token sequences (-1: lengths vary)."""
    dims = [Dim(size="-1")] if text else [Dim(size="-1"), Dim(size="-1")]
    dtype = "DT_STRING" if text or side.vocabulary else "DT_INT64"
    return TensorInfo(dtype=dtype, tensor_shape=TensorShape(dim=dims), name=name)


def metadata(spec: ModelSpec) -> TFMetadataResponse:
    """The signature :predict serves. Where the source has a tokenizer it is described
    with text in (and text out where the target has one too); token lists are accepted
    as well, and are answered with tokens, as in /predict."""
    m = spec.manifest
    text_in = m.source.speaks_text
    text_out = text_in and m.target.speaks_text
    signature = SignatureDef(
        inputs={INPUT: _tensor(INPUT, m.source, text_in)},
        outputs={OUTPUT: _tensor(OUTPUT, m.target, text_out)},
        method_name=PREDICT_METHOD,
    )
    return TFMetadataResponse(
        model_spec=TFModelSpec(name=spec.name, signature_name="", version=str(spec.version)),
        metadata=TFModelMetadata(
            signature_def=SignatureDefMap(signature_def={SIGNATURE: signature})
        ),
    )
