"""Look inside an export before running it: SavedModel, TFLite and ONNX files are programs.

A ``.keras`` file is loaded in Keras safe mode, which refuses code; an export is different. A
SavedModel is a TensorFlow graph, and TensorFlow has ops that read and write files
(``ReadFile``, ``WriteFile``, ``SaveV2``), run Python (``PyFunc``) or talk to other machines
(``Send``, ``CollectiveReduce``): running the serving function of a SavedModel from a stranger
runs whatever its author put there. TFLite files can carry custom and "Flex" ops (TensorFlow
ops inside TFLite), and ONNX files ops from any domain a runtime library registers, plus
tensors stored in files named by the model.

So before a runner loads an export, :func:`check_export` lists the op types of every graph in it
and compares them with an allow-list of inference ops (array, math, neural-network, image,
control flow, variables, quantization). A graph with anything else is refused with the list of
offending ops, unless the caller says the file is trusted (``--trust-model`` on the command
line, ``trust_model=True`` in Python).

SavedModel checkpoint functions (the ``saver_def`` save and restore functions every TF2
SavedModel carries, which ``tf.saved_model.load`` does not call) may use the checkpoint ops;
nothing that the serving signatures or the loaded objects can reach may. A TF1 SavedModel (no
object graph) restores its variables with ``RestoreV2`` nodes of its main graph, which the
loader runs, so it is refused unless trusted.

Example:
    >>> check_export("downloaded/model.onnx")  # doctest: +SKIP
    UntrustedModelError: downloaded/model.onnx: refusing to run an export with ops outside ...
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterable

from foveal.errors import ModelError

TRUST_HINT = ("pass --trust-model (Python: trust_model=True) only if you trust where the file came from; "
              "or export it again yourself from a .keras file with `foveal export`")

# TensorFlow op types a vision model's inference graph is made of. Anything else is refused
# unless the user trusts the file. Grouped by family; keep it to ops that compute on tensors.
_ARRAY = """
Const Identity IdentityN Placeholder PlaceholderWithDefault NoOp Shape ShapeN Size Rank Reshape Squeeze
ExpandDims Transpose ConjugateTranspose Pack Unpack Concat ConcatV2 ConcatOffset Split SplitV Slice
StridedSlice TensorStridedSliceUpdate Tile Pad PadV2 MirrorPad Fill ZerosLike OnesLike Empty BroadcastTo
BroadcastArgs BroadcastGradientArgs Gather GatherV2 GatherNd ScatterNd TensorScatterUpdate TensorScatterAdd
TensorScatterSub TensorScatterMax TensorScatterMin Where Select SelectV2 Range LinSpace OneHot ReverseV2
ReverseSequence Roll SpaceToBatchND BatchToSpaceND SpaceToDepth DepthToSpace DynamicStitch
ParallelDynamicStitch DynamicPartition MatrixBandPart MatrixDiagV3 MatrixDiagPartV3 MatrixSetDiagV3 Diag
DiagPart InvertPermutation Unique UniqueV2 UniqueWithCounts ListDiff CheckNumerics CheckNumericsV2
EnsureShape StopGradient PreventGradient Snapshot GuaranteeConst Bitcast Cast UnravelIndex Bucketize
LowerBound UpperBound TopK TopKV2 NthElement ArgMax ArgMin InTopKV2 Cumsum Cumprod CumulativeLogsumexp
DataFormatDimMap DataFormatVecPermute ExtractImagePatches ExtractVolumePatches Einsum Assert DeepCopy
InplaceUpdate InplaceAdd InplaceSub ParallelConcat
"""
_MATH = """
Abs Acos Acosh Add AddV2 AddN All Any ApproximateEqual Asin Asinh Atan Atan2 Atanh BatchMatMul BatchMatMulV2
BatchMatMulV3 BiasAdd BiasAddV1 BitwiseAnd BitwiseOr BitwiseXor Ceil ClipByValue Complex ComplexAbs Conj Cos
Cosh Cross Digamma Div DivNoNan Equal Erf Erfc Erfinv EuclideanNorm Exp Expm1 Floor FloorDiv FloorMod Greater
GreaterEqual Imag Inv Invert IsFinite IsInf IsNan LeftShift Less LessEqual Lgamma Log Log1p LogicalAnd
LogicalNot LogicalOr MatMul Max Maximum Mean Min Minimum Mod Mul MulNoNan Ndtri Neg NextAfter NotEqual
PopulationCount Pow Prod Real RealDiv Reciprocal RightShift Rint Round Rsqrt SegmentMax SegmentMean SegmentMin
SegmentProd SegmentSum UnsortedSegmentMax UnsortedSegmentMin UnsortedSegmentProd UnsortedSegmentSum Sigmoid
Sign Sin Sinh Softplus Softsign Sqrt Square SquaredDifference Sub Sum Tan Tanh TruncateDiv TruncateMod Xdivy
Xlogy Xlog1py Zeta Igamma Igammac Betainc Polygamma MatrixInverse MatrixDeterminant Cholesky Qr Svd
SelfAdjointEigV2 MatrixSolve MatrixTriangularSolve L2Loss FFT FFT2D FFT3D IFFT IFFT2D IFFT3D RFFT RFFT2D
IRFFT IRFFT2D Angle
"""
_NN = """
Conv Conv2D Conv3D DepthwiseConv2dNative Conv2DBackpropInput Conv2DBackpropInputV2 Conv3DBackpropInputV2
DepthwiseConv2dNativeBackpropInput MaxPool MaxPoolV2 MaxPool3D AvgPool AvgPool3D MaxPoolWithArgmax
FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 BatchNormWithGlobalNormalization LRN Relu Relu6 Elu Selu
LeakyRelu Softmax LogSoftmax Dilation2D SoftmaxCrossEntropyWithLogits SparseSoftmaxCrossEntropyWithLogits
_FusedConv2D _FusedMatMul _FusedBatchNormEx _MklFusedBatchMatMulV2
"""
_IMAGE = """
DecodeImage DecodeJpeg DecodePng DecodeBmp DecodeGif DecodeWebP DecodeAndCropJpeg ExtractJpegShape EncodeJpeg
EncodePng ResizeBilinear ResizeNearestNeighbor ResizeBicubic ResizeArea ScaleAndTranslate CropAndResize
NonMaxSuppression NonMaxSuppressionV2 NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5
NonMaxSuppressionWithOverlaps CombinedNonMaxSuppression AdjustContrastv2 AdjustHue AdjustSaturation
RGBToHSV HSVToRGB ImageProjectiveTransformV2 ImageProjectiveTransformV3 DrawBoundingBoxesV2
ExtractGlimpseV2 GenerateBoundingBoxProposals
"""
_QUANTIZE = """
FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars FakeQuantWithMinMaxVarsPerChannel QuantizeAndDequantizeV2
QuantizeAndDequantizeV3 QuantizeAndDequantizeV4 QuantizeV2 Dequantize
"""
_CONTROL = """
StatefulPartitionedCall PartitionedCall If StatelessIf While StatelessWhile Case StatelessCase Switch Merge
Enter Exit NextIteration LoopCond ControlTrigger TensorListFromTensor TensorListGetItem TensorListReserve
TensorListSetItem TensorListStack TensorListLength TensorListElementShape TensorListPushBack
TensorListPopBack TensorListGather TensorListScatterV2 TensorListScatterIntoExistingList TensorListConcatV2
TensorListSplit TensorListResize EmptyTensorList TensorArrayV3 TensorArrayReadV3 TensorArrayWriteV3
TensorArrayGatherV3 TensorArrayScatterV3 TensorArraySizeV3 TensorArrayCloseV3 TensorArrayConcatV3
TensorArraySplitV3
"""
_STATE = """
VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp VarIsInitializedOp
DisableCopyOnRead ResourceGather ResourceGatherNd VariableShape DestroyResourceOp HashTableV2
MutableHashTableV2 LookupTableFindV2 LookupTableImportV2 LookupTableSizeV2 InitializeTableV2
StatelessRandomUniformV2 StatelessRandomNormalV2 StatelessRandomGetKeyCounter StatelessRandomGetAlg
StatelessRandomGetKeyCounterAlg StatelessRandomUniformIntV2 StatelessRandomUniformFullIntV2
StatelessTruncatedNormalV2 StatelessRandomUniform StatelessRandomNormal RandomUniform RandomStandardNormal
RandomUniformInt TruncatedNormal
"""
_STRINGS = """
StringJoin StaticRegexFullMatch StaticRegexReplace RegexFullMatch RegexReplace StringFormat AsString
StringLength Substr StringToNumber StringSplitV2 StringStrip StringLower StringUpper ReduceJoin EncodeBase64
DecodeBase64 StringToHashBucketFast ParseTensor SerializeTensor DecodeRaw DecodePaddedRaw ParseExampleV2
ParseSingleExample
"""
TF_ALLOWED: frozenset[str] = frozenset(
    " ".join((_ARRAY, _MATH, _NN, _IMAGE, _QUANTIZE, _CONTROL, _STATE, _STRINGS)).split())
# Only inside the SavedModel's own save/restore functions (its saver_def), which loading does not run.
TF_CHECKPOINT_OPS: frozenset[str] = frozenset("SaveV2 RestoreV2 MergeV2Checkpoints ShardedFilename".split())

_FILE_OPS = frozenset("""
ReadFile WriteFile MatchingFiles Save SaveV2 SaveSlices Restore RestoreV2 RestoreSlice MergeV2Checkpoints
ShardedFilename ShardedFilespec ImmutableConst LoadAndRemapMatrix InitializeTableFromTextFile
InitializeTableFromTextFileV2 DebugIdentity DebugIdentityV2 DebugIdentityV3 Print PrintV2
FileSystemSetConfiguration DistributedSave CreateSummaryFileWriter CreateSummaryDbWriter SummaryWriter
FlushSummaryWriter CloseSummaryWriter ImportEvent
""".split())
_CODE_OPS = frozenset("PyFunc PyFuncStateless EagerPyFunc Abort".split())
_NETWORK_OPS = frozenset("Send Recv _Send _Recv _HostSend _HostRecv RemoteCall WorkerHeartbeat".split())

_FILE_DATASETS = frozenset("""
TFRecordDataset TFRecordDatasetV2 TextLineDataset FixedLengthRecordDataset FixedLengthRecordDatasetV2
CSVDataset CSVDatasetV2 ExperimentalCSVDataset SqlDataset ExperimentalSqlDataset LMDBDataset
ExperimentalLMDBDataset MatchingFilesDataset ExperimentalMatchingFilesDataset SnapshotDataset
SnapshotDatasetV2 SaveDataset SaveDatasetV2 LoadDataset DatasetToTFRecord ExperimentalDatasetToTFRecord
CacheDataset CacheDatasetV2
""".split())


def tf_op_reason(op: str) -> str:
    """Why ``op`` is refused, in a few words."""
    if op in _FILE_OPS or "Reader" in op or op.startswith("Write") or op in _FILE_DATASETS:
        return "reads or writes files"
    if op in _CODE_OPS:
        return "runs Python code or stops the process"
    if op in _NETWORK_OPS or op.startswith(("Collective", "Nccl", "Rpc", "DataService", "RegisterDataset")):
        return "talks to other processes or machines"
    return "not on foveal's list of inference ops"



class UntrustedModelError(ModelError):
    """An export whose graph holds ops that could reach outside the model (files, processes, network)."""


def check_export(path: str | Path, *, trusted: bool = False) -> list[str]:
    """Refuse an export with ops outside the allow-list unless ``trusted``.

    Args:
        path: a SavedModel folder, a ``.tflite`` or an ``.onnx`` file.
        trusted: skip the check (the user vouches for the file).

    Returns:
        An empty list: the export passed (or is trusted). Findings are raised, never returned.

    Raises:
        UntrustedModelError: ops outside the allow-list, listed with the reason for each.
        ModelError: the file cannot be parsed as the format its name says.
    """
    if trusted:
        return []
    path = Path(path)
    if path.is_dir():
        findings = savedmodel_findings(path)
    elif path.suffix == ".tflite":
        findings = tflite_findings(path)
    elif path.suffix == ".onnx":
        findings = onnx_findings(path)
    else:
        return []
    if findings:
        shown = ", ".join(findings[:12]) + (f" and {len(findings) - 12} more" if len(findings) > 12 else "")
        raise UntrustedModelError(f"{path}: refusing to run this export: its graph has ops that foveal does not "
                                  f"run from untrusted files: {shown}", hint=TRUST_HINT)
    return findings


# --- SavedModel ----------------------------------------------------------------------------


def _called_functions(node, library: set[str]) -> set[str]:
    """Library functions a node invokes: through function-valued attributes, or as its op."""
    called = {node.op} & library
    for value in node.attr.values():
        if value.HasField("func"):
            called.add(value.func.name)
        if value.HasField("list"):
            called.update(f.name for f in value.list.func)
    return called


def _closure(start: Iterable[str], calls: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [name for name in start if name in calls]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(calls[name] - seen)
    return seen


def savedmodel_findings(path: Path) -> list[str]:
    """Offending ops of every meta graph of the SavedModel in folder ``path``."""
    saved = _parse_saved_model(path)
    bad: dict[str, str] = {}
    for meta in saved.meta_graphs:
        functions = {f.signature.name: f for f in meta.graph_def.library.function}
        names = set(functions)
        calls = {name: set().union(*(_called_functions(n, names) for n in f.node_def)) if f.node_def else set()
                 for name, f in functions.items()}
        saver_nodes = set()
        if meta.HasField("saver_def"):
            saver_nodes = {meta.saver_def.save_tensor_name.split(":")[0], meta.saver_def.restore_op_name.split(":")[0]}
        top = list(meta.graph_def.node)
        strict_roots = set(meta.object_graph_def.concrete_functions)
        for node in top:
            if node.name not in saver_nodes:
                strict_roots |= _called_functions(node, names)
        strict = _closure(strict_roots, calls)
        saver_only = _closure(set().union(*(_called_functions(n, names) for n in top if n.name in saver_nodes)),
                              calls) - strict

        def visit(nodes, allowed: frozenset[str]) -> None:
            for node in nodes:
                if node.op not in allowed and node.op not in names:
                    bad.setdefault(node.op, tf_op_reason(node.op))

        visit([n for n in top if n.name not in saver_nodes], TF_ALLOWED)
        visit([n for n in top if n.name in saver_nodes], TF_ALLOWED | TF_CHECKPOINT_OPS)
        for name, function in functions.items():
            visit(function.node_def, TF_ALLOWED | TF_CHECKPOINT_OPS if name in saver_only else TF_ALLOWED)
    return [f"{op} ({why})" for op, why in sorted(bad.items())]


def _parse_saved_model(path: Path):
    """The SavedModel proto exactly as ``tf.saved_model.load`` reads it."""
    try:
        from tensorflow.python.saved_model import loader_impl

        return loader_impl.parse_saved_model(str(path))
    except ImportError:  # pragma: no cover - TensorFlow moved its loader; read the binary form
        from tensorflow.core.protobuf import saved_model_pb2

        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
        return saved
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable SavedModel ({str(exc).splitlines()[0][:200]})") from None


# --- TFLite --------------------------------------------------------------------------------

_TFLITE_CUSTOM = 32  # BuiltinOperator.CUSTOM: an op the file names by string (Flex ops included)


class _FlatTable:
    """Just enough of the FlatBuffers wire format to read a TFLite model's operator codes."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf, self.pos = buf, pos
        vtable = pos - self._i32(pos)
        self.vtable = vtable
        self.vtable_len = self._u16(vtable)

    def _u16(self, at: int) -> int:
        return struct.unpack_from("<H", self.buf, at)[0]

    def _i32(self, at: int) -> int:
        return struct.unpack_from("<i", self.buf, at)[0]

    def _u32(self, at: int) -> int:
        return struct.unpack_from("<I", self.buf, at)[0]

    def _field(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot >= self.vtable_len:
            return 0
        offset = self._u16(self.vtable + slot)
        return self.pos + offset if offset else 0

    def scalar(self, index: int, fmt: str, default: int = 0) -> int:
        at = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at else default

    def string(self, index: int) -> str:
        at = self._field(index)
        if not at:
            return ""
        start = at + self._u32(at)
        length = self._u32(start)
        return self.buf[start + 4:start + 4 + length].decode("utf-8", "replace")

    def tables(self, index: int) -> list["_FlatTable"]:
        at = self._field(index)
        if not at:
            return []
        start = at + self._u32(at)
        count = self._u32(start)
        if count > 100_000:
            raise ValueError("implausible vector length")
        return [_FlatTable(self.buf, start + 4 + 4 * i + self._u32(start + 4 + 4 * i)) for i in range(count)]


def tflite_op_codes(path: Path) -> list[tuple[int, str]]:
    """``(builtin code, custom name)`` of every operator code in a ``.tflite`` file."""
    buf = Path(path).read_bytes()
    try:
        if len(buf) < 8 or buf[4:8] != b"TFL3":
            raise ValueError("no TFL3 identifier")
        model = _FlatTable(buf, struct.unpack_from("<I", buf, 0)[0])
        codes = []
        for code in model.tables(1):  # Model.operator_codes
            # deprecated_builtin_code (int8, field 0) holds codes < 127; builtin_code (int32, field 3) the rest.
            builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))
            codes.append((builtin, code.string(1)))
        return codes
    except (struct.error, ValueError, IndexError) as exc:
        raise ModelError(f"{path}: not a readable TFLite model ({exc})") from None


def tflite_findings(path: Path) -> list[str]:
    """Custom ops (including Flex ops, which run TensorFlow kernels) in a ``.tflite`` file."""
    bad = set()
    for builtin, custom in tflite_op_codes(path):
        if builtin == _TFLITE_CUSTOM or custom:
            name = custom or "unnamed custom op"
            why = tf_op_reason(name[4:]) if name.startswith("Flex") else "a custom op, not a TFLite builtin"
            if name.startswith("Flex") and why.startswith("not on"):
                why = "a TensorFlow op inside TFLite"
            bad.add(f"{name} ({why})")
    return sorted(bad)


# --- ONNX ----------------------------------------------------------------------------------

ONNX_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})


def onnx_findings(path: Path) -> list[str]:
    """Ops from unknown domains, and tensors read from files outside the model's folder."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - depends on the environment
        raise ModelError("checking an ONNX file needs the onnx package",
                         hint="pip install 'foveal[export]', or pass --trust-model") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for a damaged file
        raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    local = {(f.domain, f.name): f for f in model.functions}
    bad: set[str] = set()
    folder = Path(path).resolve().parent

    def check_tensor(tensor) -> None:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            return
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            bad.add(f"tensor {tensor.name!r} stored in {location!r} (reads a file outside the model's folder)")

    def visit(graph) -> None:
        for tensor in graph.initializer:
            check_tensor(tensor)
        for node in graph.node:
            if (node.domain, node.op_type) in local:
                pass
            elif node.domain not in ONNX_DOMAINS:
                bad.add(f"{node.domain}.{node.op_type} (from an op library foveal does not know)")
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    check_tensor(attribute.t)
                for tensor in attribute.tensors:
                    check_tensor(tensor)
                if attribute.HasField("g"):
                    visit(attribute.g)
                for graph_attr in attribute.graphs:
                    visit(graph_attr)

    visit(model.graph)
    for function in model.functions:
        for node in function.node:
            if (node.domain, node.op_type) not in local and node.domain not in ONNX_DOMAINS:
                bad.add(f"{node.domain}.{node.op_type} (from an op library foveal does not know)")
    return sorted(bad)
