"""Direct edits of TFLite flatbuffers: the int8 codebook storage that
ai-edge-quantizer cannot do (``tflite_codebook_int8``), and short tensor
names (``compact_tflite``)."""
from __future__ import annotations

import re
from typing import Optional

import numpy as np

from .graphs import FLOAT_SCOPE_REGEX
from .model import codebook_int8_grid

# The lookup ops whose constant operand is the codebook (per-token codebooks:
# the distances are a BATCH_MATMUL, whose batched graphs broadcast the
# codebook first; a shared codebook: a FULLY_CONNECTED whose weight is in the
# lookup's scope; the decoder's gather: an EMBEDDING_LOOKUP).
_TFLITE_CODEBOOK_OPS = ("BATCH_MATMUL", "BROADCAST_TO", "EMBEDDING_LOOKUP", "GATHER", "FULLY_CONNECTED")
_TFLITE_FLOAT32, _TFLITE_INT32, _TFLITE_INT8 = 0, 2, 9


class _FlatbufferEditor:
    """Appends tensors, constants and ops to subgraph 0 of a TFLite object model."""

    def __init__(self, obj):
        from ai_edge_litert import schema_py_generated as schema
        self.schema, self.obj, self.graph = schema, obj, obj.subgraphs[0]

    def constant(self, name: bytes, values: np.ndarray, tensor_type: int, quantization=None) -> int:
        buffer = self.schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8)
        self.obj.buffers.append(buffer)
        return self.tensor(name, list(values.shape), tensor_type, len(self.obj.buffers) - 1, quantization)

    def tensor(self, name: bytes, shape: list, tensor_type: int, buffer: int = 0, quantization=None) -> int:
        tensor = self.schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name, shape, tensor_type, buffer
        tensor.quantization = quantization
        self.graph.tensors.append(tensor)
        return len(self.graph.tensors) - 1

    def op(self, builtin: int, inputs: list, outputs: list, options_type: int = 0, options=None,
           version: int = 1):
        """An operator (to be placed by the caller); its opcode is reused or added with ``version``."""
        from ai_edge_litert.tools import flatbuffer_utils
        index = next((i for i, c in enumerate(self.obj.operatorCodes)
                      if flatbuffer_utils.get_builtin_code_from_operator_code(c) == builtin), None)
        if index is not None:
            code = self.obj.operatorCodes[index]
            code.version = max(code.version, version)
        else:
            code = self.schema.OperatorCodeT()
            code.builtinCode = code.deprecatedBuiltinCode = builtin
            code.version = version
            self.obj.operatorCodes.append(code)
            index = len(self.obj.operatorCodes) - 1
        op = self.schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, inputs, outputs
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    def values(self, index: int) -> np.ndarray:
        tensor = self.graph.tensors[index]
        data = bytes(bytearray(self.obj.buffers[tensor.buffer].data))
        return np.frombuffer(data, dtype=np.float32).reshape(tensor.shape)

    def make_computed(self, index: int) -> None:
        """Tensor ``index`` loses its constant data and becomes an op output."""
        tensor = self.graph.tensors[index]
        if sum(t.buffer == tensor.buffer for t in self.graph.tensors) == 1:
            self.obj.buffers[tensor.buffer].data = None  # nothing else reads it: drop the bytes
        tensor.buffer = 0  # buffer 0 is the empty one


def tflite_codebook_int8(model: bytes) -> bytes:
    """The codebook stored as int8 codes with one scale and turned back into
    float32 by a DEQUANTIZE op at the start of the graph; the lookup computes in
    float32 on exactly the checkpoint's codes (see ``onnx_codebook_int8``).

    The converter folds the encoder's squared code norms into a float32
    constant as large as half the float32 codebook; it is replaced by
    MUL + SUM + RESHAPE of the dequantized codebook (run once per invocation,
    M*V*D multiply-adds; float32 sums that may differ from the folded ones in
    the last bit), found by its values. ai-edge-quantizer cannot
    quantize a BATCH_MATMUL constant, so this edits the flatbuffer directly.
    A codebook off the int8 grid (an older checkpoint) stays float32."""
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    edit = _FlatbufferEditor(obj)
    schema, graph = edit.schema, edit.graph
    codebooks = []
    for op in graph.operators:
        op_name = flatbuffer_utils.opcode_to_name(obj, op.opcodeIndex)
        if op_name not in _TFLITE_CODEBOOK_OPS:
            continue
        for index in op.inputs:
            tensor = graph.tensors[index]
            in_scope = re.search(FLOAT_SCOPE_REGEX, (tensor.name or b"").decode(errors="replace"))
            if op_name == "FULLY_CONNECTED" and not in_scope:
                continue  # a Mixer layer kept float, not the codebook
            if tensor.type == _TFLITE_FLOAT32 and obj.buffers[tensor.buffer].data is not None \
                    and len(tensor.shape) >= 2 and index not in codebooks:
                codebooks.append(int(index))
    constants = [i for i, t in enumerate(graph.tensors)
                 if t.type == _TFLITE_FLOAT32 and obj.buffers[t.buffer].data is not None and i not in codebooks]
    first_ops = []
    for index in codebooks:
        values = edit.values(index)
        grid = codebook_int8_grid(values)
        if grid is None:
            continue
        q, scale = grid
        name = graph.tensors[index].name or b"codebook"
        params = schema.QuantizationParametersT()
        params.scale, params.zeroPoint, params.quantizedDimension = [scale], [0], 0
        stored = edit.constant(name + b"_int8", q, _TFLITE_INT8, params)
        norms = _folded_squared_norms(edit, values, constants)
        edit.make_computed(index)
        first_ops.append(edit.op(schema.BuiltinOperator.DEQUANTIZE, [stored], [index], version=2))  # int8 input
        if norms is not None:
            norms_index, axis = norms
            shape = list(graph.tensors[norms_index].shape)
            summed_shape = [n for a, n in enumerate(values.shape) if a != axis]
            squares = edit.tensor(name + b"_squared", list(values.shape), _TFLITE_FLOAT32)
            summed = edit.tensor(name + b"_norms", summed_shape, _TFLITE_FLOAT32)
            axis_const = edit.constant(name + b"_norm_axis", np.array([axis], np.int32), _TFLITE_INT32)
            shape_const = edit.constant(name + b"_norm_shape", np.array(shape, np.int32), _TFLITE_INT32)
            mul, reducer, reshape = schema.MulOptionsT(), schema.ReducerOptionsT(), schema.ReshapeOptionsT()
            reducer.keepDims, reshape.newShape = False, shape
            edit.make_computed(norms_index)
            constants.remove(norms_index)
            first_ops += [edit.op(schema.BuiltinOperator.MUL, [index, index], [squares],
                                  schema.BuiltinOptions.MulOptions, mul),
                          edit.op(schema.BuiltinOperator.SUM, [squares, axis_const], [summed],
                                  schema.BuiltinOptions.ReducerOptions, reducer),
                          edit.op(schema.BuiltinOperator.RESHAPE, [summed, shape_const], [norms_index],
                                  schema.BuiltinOptions.ReshapeOptions, reshape)]
    if not first_ops:
        return model
    graph.operators = first_ops + list(graph.operators)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def _folded_squared_norms(edit: _FlatbufferEditor, codebook: np.ndarray,
                          constants: list[int]) -> Optional[tuple[int, int]]:
    """(tensor index, summed axis) of the float32 constant holding the codes'
    squared norms, or None (the decoder has none)."""
    for axis in range(codebook.ndim):
        norms = (codebook.astype(np.float64) ** 2).sum(axis=axis).ravel()
        for index in constants:
            values = edit.values(index).ravel()
            if values.size == norms.size and np.allclose(values, norms, rtol=1e-5, atol=0.0):
                return index, axis
    return None


def compact_tflite(model: bytes) -> bytes:
    """Short tensor names (graph inputs/outputs and the signature keep theirs)."""
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    for subgraph in obj.subgraphs:
        keep = {int(i) for i in subgraph.inputs} | {int(i) for i in subgraph.outputs}
        for i, tensor in enumerate(subgraph.tensors):
            if i not in keep:
                tensor.name = f"t{i}"
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))
