"""Independent NumPy reference for llmwire, written from docs/NUMERICS.md and docs/FORMAT.md only.

Nothing here is derived from the C++ sources: the point is that two implementations written
from the same specification agree. Only the standard library and NumPy are used.

Contents
  crc32c(data)                      CRC-32C (Castagnoli), table driven, vectorised over chunks
  read_image(path)                  parse + verify an llmwire image (header, table, tensors)
  read_checkpoint(path)             llama2.c legacy checkpoint (7 x int32 header, fp32 tensors)
  read_tokenizer(path)              llama2.c tokenizer.bin (max_len, then score/len/bytes)
  quantize_activation(x, G)         activation quantization of NUMERICS.md
  qmatmul / f32matmul               the two matmul kernels, spec order of operations
  forward_tokens(image, tokens)     quantized (or F32) forward pass of an image -> logits [T, V]
  forward_checkpoint(ckpt, tokens)  plain float32 forward pass of a checkpoint -> logits [T, V]

All arithmetic is float32 in the order the spec prescribes.  Deliberate, documented
approximations: exp/sin/cos/pow are evaluated in float64 and rounded to float32 (the engine
uses its own functions "within a few ulp"; NUMERICS.md says a correct exp stays within
tolerance).
"""

import math
import struct

import numpy as np

F32 = np.float32

# ----------------------------------------------------------------------------------------
# Constants (docs/FORMAT.md, src/engine/image_format.h)
# ----------------------------------------------------------------------------------------
IMAGE_MAGIC = b"LLMWIMG\0"
IMAGE_VERSION = 1
HEADER_SIZE = 256
TENSOR_ENTRY_SIZE = 40
TENSOR_ALIGN = 64
NO_LAYER = 0xFFFF

FLAG_SHARED_CLASSIFIER = 1 << 0
FLAG_HAS_TOKENIZER = 1 << 1
FLAG_HAS_EMBEDDING = 1 << 2
FLAG_HAS_CLASSIFIER = 1 << 3

DT_F32, DT_Q8, DT_Q4, DT_U8, DT_U32, DT_U16 = 0, 1, 2, 3, 4, 5
WT_F32, WT_Q8, WT_Q4 = 0, 1, 2
KV_F32, KV_F16, KV_I8 = 0, 1, 2

K_EMB, K_RMS_ATT, K_WQ, K_WK, K_WV, K_WO, K_RMS_FFN, K_W1, K_W2, K_W3 = range(1, 11)
K_RMS_FINAL, K_CLS = 11, 12
K_TOK_SCORES, K_TOK_OFFSETS, K_TOK_BYTES, K_TOK_SORTED = 20, 21, 22, 23

LAYER_KINDS = (K_RMS_ATT, K_WQ, K_WK, K_WV, K_WO, K_RMS_FFN, K_W1, K_W2, K_W3)
KIND_NAMES = {K_EMB: "tok_emb", K_RMS_ATT: "rms_att", K_WQ: "wq", K_WK: "wk", K_WV: "wv",
              K_WO: "wo", K_RMS_FFN: "rms_ffn", K_W1: "w1", K_W2: "w2", K_W3: "w3",
              K_RMS_FINAL: "rms_final", K_CLS: "wcls", K_TOK_SCORES: "tok_scores",
              K_TOK_OFFSETS: "tok_offsets", K_TOK_BYTES: "tok_bytes",
              K_TOK_SORTED: "tok_sorted"}


class FormatError(Exception):
    pass


# ----------------------------------------------------------------------------------------
# CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init/xorout 0xFFFFFFFF)
# ----------------------------------------------------------------------------------------
_CRC_POLY = 0x82F63B78


def _make_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _CRC_POLY if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_TABLE = _make_table()
_CRC_TABLE_NP = np.array(_CRC_TABLE, dtype=np.uint32)


def _crc_raw_py(state, data):
    """Register update without init/xorout (state -> state after `data`)."""
    tab = _CRC_TABLE
    for b in data:
        state = tab[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


def _gf2_apply(mat, vec):
    """mat: list of 32 column images (bit b of the input -> mat[b]); returns mat * vec."""
    out = 0
    b = 0
    while vec:
        if vec & 1:
            out ^= mat[b]
        vec >>= 1
        b += 1
    return out


def _gf2_square(mat):
    return [_gf2_apply(mat, mat[b]) for b in range(32)]


def _shift_operator(nbytes):
    """Linear operator: register state -> state after feeding `nbytes` zero bytes."""
    one = [_crc_raw_py(1 << b, b"\0") for b in range(32)]  # one zero byte
    result = None
    power = one
    n = nbytes
    while n:
        if n & 1:
            result = power if result is None else [_gf2_apply(power, c) for c in result]
        n >>= 1
        if n:
            power = _gf2_square(power)
    if result is None:  # identity
        result = [1 << b for b in range(32)]
    return result


def crc32c(data, chunk=4096):
    """CRC-32C of `data` (bytes-like). Large inputs are split into equal chunks whose raw
    register values are computed in parallel with NumPy and combined with the GF(2) shift
    operator (the register update is linear over GF(2))."""
    mv = memoryview(data).cast("B")
    n = len(mv)
    if n < 4 * chunk:
        return _crc_raw_py(0xFFFFFFFF, bytes(mv)) ^ 0xFFFFFFFF
    m = n // chunk
    body = np.frombuffer(mv[: m * chunk], dtype=np.uint8).reshape(m, chunk)
    state = np.zeros(m, dtype=np.uint32)  # raw register from zero init, per chunk
    tab = _CRC_TABLE_NP
    for k in range(chunk):
        state = tab[(state ^ body[:, k]) & 0xFF] ^ (state >> np.uint32(8))
    shift = _shift_operator(chunk)
    reg = 0xFFFFFFFF
    for c in state.tolist():
        reg = _gf2_apply(shift, reg) ^ c
    reg = _crc_raw_py(reg, bytes(mv[m * chunk:]))
    return reg ^ 0xFFFFFFFF


# ----------------------------------------------------------------------------------------
# Tensors
# ----------------------------------------------------------------------------------------
class QMatrix:
    """Group-quantized matrix: q int8 [rows, groups*G] (padding columns are 0), scales float32
    [rows, groups] (exact fp16 values), logical column count `cols`, group size G."""

    def __init__(self, q, scales, cols, group):
        self.q = q
        self.scales = scales
        self.cols = cols
        self.group = group
        self.rows = q.shape[0]
        self.groups = scales.shape[1]
        # int64 copy per group for exact integer dot products (built lazily)
        self._qg = None

    def qgroups(self):
        if self._qg is None:
            G = self.group
            self._qg = [np.ascontiguousarray(self.q[:, g * G:(g + 1) * G].astype(np.int64).T)
                        for g in range(self.groups)]
        return self._qg

    def dequantize(self):
        """float32 [rows, cols]: float(scale) * q, a float32 product per element."""
        G = self.group
        s = np.repeat(self.scales, G, axis=1)
        return (s * self.q.astype(F32))[:, : self.cols]

    def row(self, r):
        G = self.group
        s = np.repeat(self.scales[r], G)
        return (s * self.q[r].astype(F32))[: self.cols]


def row_stride_bytes(dtype, cols, group):
    if dtype in (DT_F32, DT_U32):
        return 4 * cols
    if dtype == DT_U8:
        return cols
    if dtype == DT_U16:
        return 2 * cols
    n = (cols + group - 1) // group
    sb = (2 * n + 3) & ~3
    if dtype == DT_Q8:
        return sb + n * group
    if dtype == DT_Q4:
        return sb + n * (group // 2)
    raise FormatError("unknown dtype %d" % dtype)


def _decode_tensor(buf, dtype, rows, cols, stride, group):
    """buf: uint8 array of rows*stride bytes."""
    if dtype == DT_F32:
        return buf.view("<f4").reshape(rows, cols).astype(F32)
    if dtype == DT_U32:
        return buf.view("<u4").reshape(rows, cols).astype(np.uint32)
    if dtype == DT_U16:
        return buf.view("<u2").reshape(rows, cols).astype(np.uint32)
    if dtype == DT_U8:
        return buf.reshape(rows, cols).copy()
    G = group
    n = (cols + G - 1) // G
    sb = (2 * n + 3) & ~3
    rowsb = buf.reshape(rows, stride)
    scales = rowsb[:, : 2 * n].copy().view("<f2").astype(F32)  # fp16 -> fp32 is exact
    if np.any(rowsb[:, 2 * n: sb]):
        raise FormatError("nonzero scale padding")
    data = rowsb[:, sb:]
    if dtype == DT_Q8:
        q = data.view(np.int8).reshape(rows, n * G).copy()
    elif dtype == DT_Q4:
        d = data.reshape(rows, n, G // 2)
        lo = (d & 0x0F).astype(np.int8) - 8  # element j
        hi = (d >> 4).astype(np.int8) - 8    # element j + G/2
        q = np.concatenate([lo, hi], axis=2).reshape(rows, n * G)
    else:
        raise FormatError("unknown dtype %d" % dtype)
    if n * G > cols and np.any(q[:, cols:]):
        raise FormatError("nonzero padding columns in last group")
    return QMatrix(q, scales, cols, G)


class Image:
    """A parsed llmwire image. cfg: dict of header fields. tensors: {(kind, layer): value}
    where value is np.ndarray (F32/U8/U32; 1-D for norms and tokenizer arrays) or QMatrix.
    entries: list of raw table entries (dicts)."""

    def __init__(self):
        self.cfg = {}
        self.tensors = {}
        self.entries = []

    def t(self, kind, layer=NO_LAYER):
        return self.tensors[(kind, layer)]

    # tokenizer access
    def token_piece(self, i):
        off = self.t(K_TOK_OFFSETS)
        b = self.t(K_TOK_BYTES)
        return bytes(b[off[i]: off[i + 1]])

    def token_scores(self):
        return self.t(K_TOK_SCORES)


_HDR_FIELDS = [
    ("version", 8, "<I"), ("header_size", 12, "<I"), ("file_size", 16, "<Q"),
    ("model_id", 24, "<Q"), ("payload_crc", 32, "<I"), ("tensor_count", 36, "<I"),
    ("table_offset", 40, "<I"), ("flags", 44, "<I"), ("dim", 48, "<I"),
    ("hidden_dim", 52, "<I"), ("n_layers", 56, "<I"), ("n_heads", 60, "<I"),
    ("n_kv_heads", 64, "<I"), ("vocab_size", 68, "<I"), ("seq_len", 72, "<I"),
    ("weight_type", 76, "<I"), ("group_size", 80, "<I"), ("kv_type", 84, "<I"),
    ("stage_index", 88, "<I"), ("stage_count", 92, "<I"), ("layer_begin", 96, "<I"),
    ("layer_end", 100, "<I"), ("norm_eps", 104, "<f"), ("rope_theta", 108, "<f"),
    ("tok_max_len", 112, "<I"), ("bos_id", 116, "<I"), ("eos_id", 120, "<I"),
    ("quant_method", 156, "<I"), ("calib_tokens", 160, "<I"), ("calib_crc", 164, "<I"),
    ("header_crc", 252, "<I"),
]


def parse_header(raw):
    if len(raw) < HEADER_SIZE:
        raise FormatError("image shorter than the header")
    if raw[0:8] != IMAGE_MAGIC:
        raise FormatError("bad magic %r" % raw[0:8])
    cfg = {}
    for name, off, fmt in _HDR_FIELDS:
        cfg[name] = struct.unpack_from(fmt, raw, off)[0]
    cfg["norm_eps"] = F32(cfg["norm_eps"])
    cfg["rope_theta"] = F32(cfg["rope_theta"])
    cfg["model_name"] = bytes(raw[124:156]).split(b"\0", 1)[0].decode("utf-8", "replace")
    return cfg


def read_image(path, verify_payload=True):
    with open(path, "rb") as f:
        raw = f.read()
    img = Image()
    cfg = parse_header(raw)
    img.cfg = cfg
    if cfg["version"] != IMAGE_VERSION:
        raise FormatError("unsupported version %d" % cfg["version"])
    if cfg["header_size"] != HEADER_SIZE:
        raise FormatError("bad header size %d" % cfg["header_size"])
    hcrc = crc32c(raw[:252])
    if hcrc != cfg["header_crc"]:
        raise FormatError("header CRC mismatch: stored %08x computed %08x"
                          % (cfg["header_crc"], hcrc))
    if any(raw[168:248]):  # 248..252: the /selftest digest (any value)
        raise FormatError("reserved header bytes not zero")
    if cfg["quant_method"] & ~0x7:
        raise FormatError("unknown quant_method bits %x" % cfg["quant_method"])
    if cfg["file_size"] != len(raw):
        raise FormatError("file_size %d != actual %d" % (cfg["file_size"], len(raw)))
    if verify_payload:
        pcrc = crc32c(memoryview(raw)[HEADER_SIZE:])
        if pcrc != cfg["payload_crc"]:
            raise FormatError("payload CRC mismatch: stored %08x computed %08x"
                              % (cfg["payload_crc"], pcrc))
    dim, nh, nkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    if dim == 0 or nh == 0 or nkv == 0 or dim % nh or (dim // nh) % 2 or nh % nkv:
        raise FormatError("bad config %r" % cfg)
    wt, G = cfg["weight_type"], cfg["group_size"]
    if wt not in (WT_F32, WT_Q8, WT_Q4):
        raise FormatError("unknown weight type %d" % wt)
    if wt != WT_F32 and (G == 0 or G % 8 or G > 256):
        raise FormatError("bad group size %d" % G)
    if cfg["kv_type"] not in (KV_F32, KV_F16, KV_I8):
        raise FormatError("unknown kv type %d" % cfg["kv_type"])
    buf = np.frombuffer(raw, dtype=np.uint8)
    for i in range(cfg["tensor_count"]):
        eo = cfg["table_offset"] + i * TENSOR_ENTRY_SIZE
        if eo + TENSOR_ENTRY_SIZE > len(raw):
            raise FormatError("tensor table outside the file")
        kind, layer, dtype = struct.unpack_from("<HHB", raw, eo)
        if any(raw[eo + 5: eo + 8]):
            raise FormatError("entry %d: dtype padding not zero" % i)
        rows, cols, stride, resv, off, size = struct.unpack_from("<IIIIQQ", raw, eo + 8)
        e = dict(kind=kind, layer=layer, dtype=dtype, rows=rows, cols=cols,
                 row_stride=stride, reserved=resv, offset=off, size=size)
        img.entries.append(e)
        if resv != 0:
            raise FormatError("entry %d: reserved not zero" % i)
        if off % TENSOR_ALIGN:
            raise FormatError("entry %d: offset %d not aligned" % (i, off))
        if off + size > len(raw):
            raise FormatError("entry %d outside the file" % i)
        if size != rows * stride:
            raise FormatError("entry %d: size != rows*row_stride" % i)
        if stride != row_stride_bytes(dtype, cols, G):
            raise FormatError("entry %d: bad row_stride %d" % (i, stride))
        key = (kind, layer)
        if key in img.tensors:
            raise FormatError("duplicate tensor %r" % (key,))
        img.tensors[key] = _decode_tensor(buf[off: off + size], dtype, rows, cols, stride, G)
    _check_shapes(img)
    return img


def _shape_of(v):
    if isinstance(v, QMatrix):
        return (v.rows, v.cols)
    return v.shape


def _check_shapes(img):
    c = img.cfg
    dim, hid, V = c["dim"], c["hidden_dim"], c["vocab_size"]
    kv_dim = dim // c["n_heads"] * c["n_kv_heads"]
    want = {}
    if c["flags"] & FLAG_HAS_EMBEDDING:
        want[(K_EMB, NO_LAYER)] = (V, dim)
    if c["flags"] & FLAG_HAS_CLASSIFIER:
        want[(K_RMS_FINAL, NO_LAYER)] = (1, dim)
        if not c["flags"] & FLAG_SHARED_CLASSIFIER:
            want[(K_CLS, NO_LAYER)] = (V, dim)
    for l in range(c["layer_begin"], c["layer_end"]):
        want[(K_RMS_ATT, l)] = (1, dim)
        want[(K_WQ, l)] = (dim, dim)
        want[(K_WK, l)] = (kv_dim, dim)
        want[(K_WV, l)] = (kv_dim, dim)
        want[(K_WO, l)] = (dim, dim)
        want[(K_RMS_FFN, l)] = (1, dim)
        want[(K_W1, l)] = (hid, dim)
        want[(K_W2, l)] = (dim, hid)
        want[(K_W3, l)] = (hid, dim)
    for key, shp in want.items():
        if key not in img.tensors:
            raise FormatError("missing tensor %s layer %d" % (KIND_NAMES[key[0]], key[1]))
        got = _shape_of(img.tensors[key])
        if tuple(got) != shp:
            raise FormatError("tensor %s layer %d: shape %r != %r"
                              % (KIND_NAMES[key[0]], key[1], got, shp))
    # norms are always F32; flatten 1-row tensors for convenience
    for key, v in list(img.tensors.items()):
        if key[0] in (K_RMS_ATT, K_RMS_FFN, K_RMS_FINAL):
            if isinstance(v, QMatrix):
                raise FormatError("norm weights must be F32")
            img.tensors[key] = v.reshape(-1)
    if c["flags"] & FLAG_HAS_TOKENIZER:
        for k in (K_TOK_SCORES, K_TOK_OFFSETS, K_TOK_BYTES, K_TOK_SORTED):
            if (k, NO_LAYER) not in img.tensors:
                raise FormatError("missing tokenizer tensor %s" % KIND_NAMES[k])
            img.tensors[(k, NO_LAYER)] = img.tensors[(k, NO_LAYER)].reshape(-1)
        off = img.t(K_TOK_OFFSETS).astype(np.int64)
        if off.shape[0] != V + 1 or off[0] != 0 or np.any(np.diff(off) < 0) \
                or off[-1] > img.t(K_TOK_BYTES).shape[0]:
            raise FormatError("bad tokenizer offsets")
        if img.t(K_TOK_SCORES).shape[0] != V:
            raise FormatError("bad tokenizer scores shape")
        srt = img.t(K_TOK_SORTED).astype(np.int64)
        if srt.shape[0] != V or not np.array_equal(np.sort(srt), np.arange(V)):
            raise FormatError("tokenizer sorted ids not a permutation")


# ----------------------------------------------------------------------------------------
# llama2.c checkpoint and tokenizer files
# ----------------------------------------------------------------------------------------
class Checkpoint:
    pass


def read_checkpoint(path):
    with open(path, "rb") as f:
        raw = f.read()
    dim, hid, L, nh, nkv, vocab, seq = struct.unpack_from("<7i", raw, 0)
    ck = Checkpoint()
    shared = vocab > 0
    V = abs(vocab)
    ck.cfg = dict(dim=dim, hidden_dim=hid, n_layers=L, n_heads=nh, n_kv_heads=nkv,
                  vocab_size=V, seq_len=seq, shared=shared,
                  norm_eps=F32(1e-5), rope_theta=F32(10000.0))
    hs = dim // nh
    kv_dim = hs * nkv
    data = np.frombuffer(raw, dtype="<f4", offset=28).astype(F32)
    pos = [0]

    def take(*shape):
        n = int(np.prod(shape))
        a = data[pos[0]: pos[0] + n]
        if a.shape[0] != n:
            raise FormatError("checkpoint truncated")
        pos[0] += n
        return a.reshape(shape)

    ck.tok_emb = take(V, dim)
    ck.rms_att = take(L, dim)
    ck.wq = take(L, dim, dim)
    ck.wk = take(L, kv_dim, dim)
    ck.wv = take(L, kv_dim, dim)
    ck.wo = take(L, dim, dim)
    ck.rms_ffn = take(L, dim)
    ck.w1 = take(L, hid, dim)
    ck.w2 = take(L, dim, hid)
    ck.w3 = take(L, hid, dim)
    ck.rms_final = take(dim)
    take(seq, hs // 2)  # freq_cis_real (unused)
    take(seq, hs // 2)  # freq_cis_imag (unused)
    ck.wcls = ck.tok_emb if shared else take(V, dim)
    if pos[0] != data.shape[0]:
        raise FormatError("checkpoint has %d trailing floats" % (data.shape[0] - pos[0]))
    return ck


def read_tokenizer(path, vocab_size):
    """llama2.c tokenizer.bin: int32 max_token_length, then per token f32 score, i32 len,
    bytes. Returns (max_len, scores float32 [V], pieces list of bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    max_len = struct.unpack_from("<i", raw, 0)[0]
    p = 4
    scores = np.zeros(vocab_size, dtype=F32)
    pieces = []
    for i in range(vocab_size):
        s, n = struct.unpack_from("<fi", raw, p)
        p += 8
        scores[i] = s
        pieces.append(raw[p: p + n])
        p += n
    return max_len, scores, pieces


# ----------------------------------------------------------------------------------------
# Arithmetic of NUMERICS.md
# ----------------------------------------------------------------------------------------
def exp32(x):
    """float32 exp, evaluated in float64 and rounded (correctly rounded except in rare
    double-rounding cases)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(np.asarray(x, dtype=np.float64)).astype(F32)


def seqsum(a, axis=-1):
    """Sequential float32 sum in ascending index order (np.add.accumulate is strictly
    sequential; np.sum is pairwise)."""
    a = np.asarray(a, dtype=F32)
    if a.shape[axis] == 0:
        return np.zeros(np.delete(a.shape, axis), dtype=F32)
    return np.take(np.add.accumulate(a, axis=axis, dtype=F32), -1, axis=axis)


def quantize_activation(x, G, return_prod=False):
    """x float32 [..., n] -> (q int64 [..., groups, G], scale float32 [..., groups])
    (and the float32 products x*inv when return_prod)."""
    x = np.asarray(x, dtype=F32)
    n = x.shape[-1]
    groups = (n + G - 1) // G
    pad = groups * G - n
    if pad:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), dtype=F32)], axis=-1)
    xg = x.reshape(x.shape[:-1] + (groups, G))
    amax = np.max(np.abs(xg), axis=-1)                      # exact
    scale = amax / F32(127.0)                               # float32 division
    with np.errstate(divide="ignore"):
        inv = np.where(amax == 0, F32(0), F32(127.0) / np.where(amax == 0, F32(1), amax))
    inv = inv.astype(F32)
    prod = xg * inv[..., None]                              # float32 product
    q = np.clip(np.rint(prod), -127, 127).astype(np.int64)  # round half to even
    if return_prod:
        return q, scale.astype(F32), prod
    return q, scale.astype(F32)


class QuantTrace:
    """Hooks into the activation quantization of a forward pass.

    near_ties: after a forward, the list of (site, pos, group, j, prod, q) where the float32
      product x*inv lies within `window` (relative) of a rounding tie k+0.5. At such points a
      last-ulp difference upstream (e.g. the engine's own exp, which NUMERICS.md allows to be
      2 ulp off) legitimately flips q by one.
    overrides: {(site, pos, group, j): q} forced values (used to replay the other rounding).
    A site is (layer, name) with name in xb_att, att, xb_ffn, h; the classifier input is
    (-1, "final")."""

    def __init__(self, overrides=None, window=2e-6):
        self.overrides = dict(overrides or {})
        self.window = window
        self.near_ties = []

    def apply(self, site, q, prod):
        a = np.abs(prod.astype(np.float64))
        dist = np.abs(a - np.floor(a) - 0.5)
        idx = np.argwhere(dist <= self.window * np.maximum(a, 1.0))
        for i in idx:
            pos, g, j = (int(v) for v in i)
            self.near_ties.append((site, pos, g, j, float(prod[pos, g, j]), int(q[pos, g, j])))
        if self.overrides:
            for (st, pos, g, j), val in self.overrides.items():
                if st == site and pos < q.shape[0]:
                    q[pos, g, j] = val
        return q


def qmatmul(W, X, qx=None):
    """W: QMatrix [rows, cols]; X float32 [T, cols] -> float32 [T, rows].
    Each input row is quantized once (or pass qx = (q, scale) from quantize_activation);
    per output row the groups are accumulated in ascending order:
    p = sw*sx; t = float(isum)*p; acc = acc + t."""
    if qx is None:
        X = np.asarray(X, dtype=F32)
        qx = quantize_activation(X, W.group)
    qx, sx = qx
    T = qx.shape[0]
    if qx.shape[1] != W.groups:
        raise ValueError("group count mismatch")
    acc = np.zeros((T, W.rows), dtype=F32)
    qg = W.qgroups()
    for g in range(W.groups):
        isum = qx[:, g, :] @ qg[g]                  # exact int64 [T, rows]
        assert np.all(np.abs(isum) < 2 ** 31)
        p = W.scales[None, :, g] * sx[:, g, None]   # sw * sx, float32
        t = isum.astype(F32) * p                    # float(isum) * p (|isum| < 2^24: exact)
        acc = acc + t
    return acc


def f32matmul(W, X):
    """W float32 [rows, cols]; X float32 [T, cols] -> [T, rows]; acc = acc + W[r,j]*x[j],
    j ascending."""
    X = np.asarray(X, dtype=F32)
    T = X.shape[0]
    rows, cols = W.shape
    acc = np.zeros((T, rows), dtype=F32)
    Wt = np.ascontiguousarray(W.T)
    for j in range(cols):
        acc = acc + Wt[j][None, :] * X[:, j, None]
    return acc


def matmul(W, X):
    return qmatmul(W, X) if isinstance(W, QMatrix) else f32matmul(W, X)


def rmsnorm(X, w, eps):
    """X float32 [T, n]; ss sequential, ss/n, +eps, r = 1/sqrt(ss), out = w*(r*x)."""
    X = np.asarray(X, dtype=F32)
    n = X.shape[-1]
    ss = seqsum(X * X, axis=-1)
    ss = ss / F32(n)
    ss = ss + F32(eps)
    r = F32(1.0) / np.sqrt(ss)
    return (w[None, :] * (r[:, None] * X)).astype(F32)


def rope_tables(positions, head_size, theta):
    """cos, sin float32 [T, hs/2]. freq_i = theta^(-2i/hs) (float64, rounded to float32);
    angle = float(pos) * freq_i in float32; cos/sin of that float32 angle in float64,
    rounded to float32."""
    i = np.arange(head_size // 2, dtype=np.float64)
    freq = np.power(np.float64(theta), -2.0 * i / head_size).astype(F32)
    ang = np.asarray(positions, dtype=F32)[:, None] * freq[None, :]   # float32 product
    ang64 = ang.astype(np.float64)
    return np.cos(ang64).astype(F32), np.sin(ang64).astype(F32)


def apply_rope(v, cos, sin):
    """v float32 [T, heads, hs]; pairs (2i, 2i+1) -> (a*cos - b*sin, a*sin + b*cos)."""
    a = v[..., 0::2]
    b = v[..., 1::2]
    c = cos[:, None, :]
    s = sin[:, None, :]
    out = np.empty_like(v)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def softmax_rows(v, mask):
    """v float32 [..., n] with boolean mask of valid entries (a prefix); m = max, e = exp(v-m),
    s = sequential sum, out = e / s. Masked entries are 0 and add exactly nothing."""
    vm = np.where(mask, v, F32(-np.inf))
    m = np.max(vm, axis=-1, keepdims=True)
    e = np.where(mask, exp32(np.where(mask, v - m, F32(0))), F32(0)).astype(F32)
    s = seqsum(e, axis=-1)
    return (e / s[..., None]).astype(F32)


def kv_store(x, kv_type):
    """Value a KV cache returns for x [T, KV, hs]: fp32 unchanged, fp16 round-to-nearest-even;
    int8 (one scale per head vector): (elements as float32, scales [T, KV]) with
    scale = max|x| / 127 and element = rint(x * (127 / max|x|)) (ties to even), clamped to
    +-127, 0 for an all-zero vector."""
    if kv_type == KV_F16:
        return x.astype(np.float16).astype(F32)
    if kv_type == KV_I8:
        amax = np.max(np.abs(x), axis=-1).astype(F32)
        scale = (amax / F32(127.0)).astype(F32)
        with np.errstate(divide="ignore"):
            inv = np.where(amax == 0, F32(0), F32(127.0) / amax).astype(F32)
        q = np.clip(np.rint((x * inv[..., None]).astype(F32)), -127, 127).astype(F32)
        return (q, scale)
    return x


def attention(q, k, v, n_heads, n_kv_heads, head_size):
    """q [T, H, hs]; k, v [T, KV, hs] (cache values, positions 0..T-1). Position t attends to
    0..t. score = (sequential sum q_i*k_i) / sqrt(hs); softmax; xb = sum_t a[t]*v_t (t
    ascending from 0). Returns [T, H*hs]."""
    T = q.shape[0]
    rep = n_heads // n_kv_heads
    kvh = np.arange(n_heads) // rep
    # int8 cache: (elements, scales); the key scale multiplies the finished dot product, the
    # value scale the attention weight: ((sum q*k) * ks) / sqrt(hs) and (a * vs) * v.
    ks = vs = None
    if isinstance(k, tuple):
        k, ks = k
        v, vs = v
        ks = ks[:, kvh]  # [T', H]
        vs = vs[:, kvh]
    kk = k[:, kvh, :]  # [T', H, hs]
    vv = v[:, kvh, :]
    # scores[t, h, t'] = sum_i q[t,h,i] * k[t',h,i], i ascending
    sc = np.zeros((T, n_heads, T), dtype=F32)
    for i in range(head_size):
        sc = sc + q[:, :, i][:, :, None] * kk[:, :, i].T[None, :, :]
    if ks is not None:
        sc = sc * ks.T[None, :, :]
    sc = sc / F32(math.sqrt(head_size))
    mask = (np.arange(T)[None, :] <= np.arange(T)[:, None])[:, None, :]  # [T, 1, T']
    mask = np.broadcast_to(mask, sc.shape)
    a = softmax_rows(sc, mask)                     # [T, H, T']
    out = np.zeros((T, n_heads, head_size), dtype=F32)
    for tp in range(T):
        # positions t < tp have a[t, :, tp] == 0: adding +0.0 leaves acc unchanged
        w = a[:, :, tp] if vs is None else a[:, :, tp] * vs[tp][None, :]
        out = out + w[:, :, None] * vv[tp][None, :, :]
    return out.reshape(T, n_heads * head_size)


def swiglu(h1, h3):
    """h = (h1 * (1.0f / (1.0f + exp(-h1)))) * h3."""
    e = exp32(-h1)
    sig = F32(1.0) / (F32(1.0) + e)
    return ((h1 * sig) * h3).astype(F32)


class Weights:
    """Uniform view over image or checkpoint weights. Matrices are QMatrix or float32."""

    def __init__(self, cfg, emb_row, layers, rms_final, wcls):
        self.cfg = cfg
        self.emb_row = emb_row      # function token -> float32 [dim]
        self.layers = layers        # list of dicts
        self.rms_final = rms_final
        self.wcls = wcls


def weights_from_image(img):
    c = img.cfg
    if c["stage_count"] != 1 or c["layer_begin"] != 0 or c["layer_end"] != c["n_layers"]:
        raise ValueError("forward_tokens needs a whole-model image")
    emb = img.t(K_EMB)
    if isinstance(emb, QMatrix):
        def emb_row(t):
            return emb.row(t)
    else:
        def emb_row(t):
            return emb[t].astype(F32)
    layers = []
    for l in range(c["n_layers"]):
        layers.append({KIND_NAMES[k]: img.t(k, l) for k in LAYER_KINDS})
    wcls = emb if c["flags"] & FLAG_SHARED_CLASSIFIER else img.t(K_CLS)
    return Weights(c, emb_row, layers, img.t(K_RMS_FINAL), wcls)


def weights_from_checkpoint(ck):
    layers = []
    for l in range(ck.cfg["n_layers"]):
        layers.append(dict(rms_att=ck.rms_att[l], wq=ck.wq[l], wk=ck.wk[l], wv=ck.wv[l],
                           wo=ck.wo[l], rms_ffn=ck.rms_ffn[l], w1=ck.w1[l], w2=ck.w2[l],
                           w3=ck.w3[l]))
    return Weights(ck.cfg, lambda t: ck.tok_emb[t].astype(F32), layers, ck.rms_final,
                   ck.wcls)


def forward(W, tokens, kv_type=KV_F32, trace=None):
    """Logits float32 [T, vocab]; position t has seen tokens[0..t]. All positions are
    computed at once (rows of the batch are independent except through attention, which is
    causal), with the per-token arithmetic of NUMERICS.md. trace: optional QuantTrace."""
    c = W.cfg
    dim, nh, nkv = c["dim"], c["n_heads"], c["n_kv_heads"]
    hs = dim // nh
    eps, theta = c["norm_eps"], c["rope_theta"]
    tokens = list(tokens)
    T = len(tokens)

    def act(x, site, M):
        """The input of the matmuls by M: one quantized copy per vector (Q8/Q4 images)."""
        if not isinstance(M, QMatrix):
            return x
        q, sc, prod = quantize_activation(x, M.group, return_prod=True)
        if trace is not None:
            q = trace.apply(site, q, prod)
        return (q, sc)

    def mm(M, a):
        return qmatmul(M, None, qx=a) if isinstance(M, QMatrix) else f32matmul(M, a)

    x = np.stack([W.emb_row(t) for t in tokens]).astype(F32)
    cos, sin = rope_tables(np.arange(T), hs, theta)
    for li, L in enumerate(W.layers):
        xb = act(rmsnorm(x, L["rms_att"], eps), (li, "xb_att"), L["wq"])
        q = mm(L["wq"], xb).reshape(T, nh, hs)
        k = mm(L["wk"], xb).reshape(T, nkv, hs)
        v = mm(L["wv"], xb).reshape(T, nkv, hs)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        kc = kv_store(k, kv_type)
        vc = kv_store(v, kv_type)
        att = act(attention(q, kc, vc, nh, nkv, hs), (li, "att"), L["wo"])
        x = x + mm(L["wo"], att)
        xb = act(rmsnorm(x, L["rms_ffn"], eps), (li, "xb_ffn"), L["w1"])
        h1 = mm(L["w1"], xb)
        h3 = mm(L["w3"], xb)
        h = act(swiglu(h1, h3), (li, "h"), L["w2"])
        x = x + mm(L["w2"], h)
    x = act(rmsnorm(x, W.rms_final, eps), (-1, "final"), W.wcls)
    return mm(W.wcls, x)


def forward_tokens(image, tokens, kv_type=None, trace=None):
    """image: Image or path. kv_type None -> the image's default kv_type."""
    if not isinstance(image, Image):
        image = read_image(image)
    if kv_type is None:
        kv_type = image.cfg["kv_type"]
    return forward(weights_from_image(image), tokens, kv_type, trace)


def forward_checkpoint(ck, tokens, kv_type=KV_F32):
    """Plain float32 forward pass of a llama2.c checkpoint (no quantization)."""
    if not isinstance(ck, Checkpoint):
        ck = read_checkpoint(ck)
    return forward(weights_from_checkpoint(ck), tokens, kv_type)
