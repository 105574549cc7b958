"""flexnas_torch: flexnas models in pure PyTorch (only ``torch`` and the standard library).

Loads any flexnas checkpoint directory (``config.json`` + ``model.safetensors``, read here without
the safetensors package) and computes the same outputs as the C++ FlexModel::

    import flexnas_torch
    model = flexnas_torch.load("runs/mini/checkpoint")          # eval mode, CPU
    logits = model(input_ids, attention_mask)                   # mlm [B,T,V] | cls [B,K] | token [B,T,K]

Every function mirrors models/attention_common.cpp, models/ops/*.cpp and models/flex_model.cpp;
tensor names are the checkpoint's (Hugging Face BERT style). Runs on Debian's PyTorch 1.13.

Mixed precision: under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (forward and loss only) the
model keeps the C++ model's fp32 islands: LayerNorm inputs, the residual stream, the softmaxes and
the logits the losses read are fp32 (PyTorch 1.13's CPU autocast does not cast layer_norm; a bf16
input with fp32 weights would fail). Every island is a ``.float()`` that is a no-op in fp32 runs.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["read_safetensors", "write_safetensors", "FlexModel", "build", "load", "parse_architecture"]

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_NAMES = {v: k for k, v in _DTYPES.items()}


# ----------------------------------------------------------------------------------------------
# safetensors

def read_safetensors(path):
    """Returns {name: tensor} (CPU). Raises ValueError naming the file and the tensor."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: not a safetensors file (%d bytes)" % (path, len(data)))
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("%s: header length %d exceeds the file size %d" % (path, n, len(data)))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base, size = 8 + n, len(data) - 8 - n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise ValueError("%s: tensor '%s': unsupported dtype %r" % (path, name, entry.get("dtype")))
        begin, end = entry["data_offsets"]
        if not 0 <= begin <= end <= size:
            raise ValueError("%s: tensor '%s': data_offsets [%d, %d] exceed the %d data bytes" % (path, name, begin, end, size))
        shape = list(entry["shape"])
        if end > begin:
            t = torch.frombuffer(bytearray(data[base + begin:base + end]), dtype=dtype)
        else:
            t = torch.empty(0, dtype=dtype)
        if t.numel() != math.prod(shape):
            raise ValueError("%s: tensor '%s': %d bytes do not hold shape %s" % (path, name, end - begin, shape))
        out[name] = t.reshape(shape)
    return out


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} in the safetensors layout (sorted names, 8-byte aligned header)."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------
# Shared building blocks (models/attention_common.cpp)

def additive_mask(attention_mask, dtype):
    return ((1.0 - attention_mask.to(dtype)) * -10000.0)[:, None, None, :]


def relative_key_scores(q, table, max_positions):
    T = q.shape[-2]
    if T > max_positions:
        raise ValueError("sequence length %d exceeds the model's max positions %d" % (T, max_positions))
    sub = table.narrow(0, max_positions - T, 2 * T - 1)
    qe = torch.matmul(q, sub.t())
    r = torch.arange(T, device=q.device)
    idx = r[:, None] - r[None, :] + (T - 1)
    return qe.gather(-1, idx.expand(*qe.shape[:-1], T))


def relative_key_scores_at(q, table, max_positions, q_pos, key_length):
    """models/pooling.cpp: queries at positions q_pos of a key stream of key_length tokens."""
    Tk = key_length
    if Tk > max_positions:
        raise ValueError("sequence length %d exceeds the model's max positions %d" % (Tk, max_positions))
    sub = table.narrow(0, max_positions - Tk, 2 * Tk - 1)
    qe = torch.matmul(q, sub.t())
    idx = q_pos.to(q.device)[:, None] - torch.arange(Tk, device=q.device)[None, :] + (Tk - 1)
    return qe.gather(-1, idx.expand(*qe.shape[:-1], Tk))


# Funnel pooling (models/pooling.cpp)

def pooled_length(T, stride, separate_cls):
    if separate_cls:
        return T if T <= 1 else 1 + (T - 1 + stride - 1) // stride
    return (T + stride - 1) // stride


def pool_tokens(x, valid, stride, separate_cls):
    """Masked mean over windows of `stride` tokens ([CLS] alone with separate_cls) -> (x', valid')."""
    if stride == 1:
        return x, valid
    first = 1 if separate_cls else 0
    B, T, h = x.shape
    rest = T - first
    if rest <= 0:
        return x, valid
    windows = (rest + stride - 1) // stride
    padded = windows * stride
    w = valid[:, first:].to(x.dtype)
    body = x[:, first:] * w.unsqueeze(-1)
    if padded > rest:
        body = F.pad(body, (0, 0, 0, padded - rest))
        w = F.pad(w, (0, padded - rest))
    sums = body.view(B, windows, stride, h).sum(2)
    counts = w.view(B, windows, stride).sum(2)
    pooled = sums / counts.clamp_min(1.0).unsqueeze(-1)
    pooled_valid = (counts > 0).to(valid.dtype)
    if first == 0:
        return pooled, pooled_valid
    return torch.cat([x[:, :1], pooled], 1), torch.cat([valid[:, :1], pooled_valid], 1)


def pooled_positions(T, stride, separate_cls, device):
    n = pooled_length(T, stride, separate_cls)
    if not separate_cls:
        return torch.arange(n, device=device) * stride
    return torch.cat([torch.zeros(1, dtype=torch.long, device=device), 1 + torch.arange(n - 1, device=device) * stride])


def upsample_tokens(x, T, total_stride, separate_cls):
    if total_stride == 1:
        return x
    first = 1 if separate_cls else 0
    if T <= first:
        return x[:, :T]
    body = x[:, first:].repeat_interleave(total_stride, 1)[:, :T - first]
    return torch.cat([x[:, :1], body], 1) if first else body


def attend(scores, dim, mask_add, v, dropout, training):
    probs = torch.softmax(scores.float() / math.sqrt(dim) + mask_add, -1)  # fp32 island
    probs = F.dropout(probs, dropout, training)
    return torch.matmul(probs, v)


def _token_matrix(valid, transform, which):
    v = valid.long()
    rank = (v.cumsum(1) - 1).clamp_min(0)
    n_valid = v.sum(1).clamp_min(1).view(-1, 1, 1)
    k, n = rank[:, :, None], rank[:, None, :]
    both = (v[:, :, None] * v[:, None, :]).double()
    if transform == "dft":
        angle = torch.remainder(k * n, n_valid).double() * (2.0 * math.pi) / n_valid.double()
        return (angle.cos() if which == 0 else angle.sin()) * both
    angle = torch.remainder(k * (2 * n + 1), 4 * n_valid).double() * math.pi / (2.0 * n_valid.double())
    return 2.0 * angle.cos() * both


def _feature_matrix(D, device, transform, which):
    r = torch.arange(D, device=device)
    k, n = r[:, None], r[None, :]
    if transform == "dft":
        angle = torch.remainder(k * n, D).double() * (2.0 * math.pi) / float(D)
        return angle.cos() if which == 0 else angle.sin()
    angle = torch.remainder(k * (2 * n + 1), 4 * D).double() * math.pi / (2.0 * float(D))
    return 2.0 * angle.cos()


def linear_mix(x, valid, transform):
    """2-D DFT (real part) or DCT-II over the valid tokens and the features. x: [B,T,D] or [B,H,T,D]."""
    D = x.shape[-1]

    def tok(which):
        m = _token_matrix(valid, transform, which).to(x.dtype)
        return m[:, None] if x.dim() == 4 else m

    def feat(which):
        return _feature_matrix(D, x.device, transform, which).to(x.dtype)

    if transform == "dft":
        return torch.matmul(tok(0), torch.matmul(x, feat(0))) - torch.matmul(tok(1), torch.matmul(x, feat(1)))
    return torch.matmul(tok(0), torch.matmul(x, feat(0).t()))


def dynamic_conv(values, kernel, heads):
    B, T, C = values.shape
    k = kernel.shape[-1]
    pad = (k - 1) // 2
    padded = F.pad(values, (0, 0, pad, pad))
    windows = padded.unfold(1, k, 1).reshape(B, T, heads, C // heads, k)
    return (windows * kernel.unsqueeze(3)).sum(-1).reshape(B, T, C)


def clipped_distance_index(T, window, device):
    """[T,T] int64: idx[i][j] = clamp(j - i, -window, window) + window (op ak)."""
    r = torch.arange(T, device=device)
    return (r[None, :] - r[:, None]).clamp(-window, window) + window


def window_scores(x, table, idx, transpose):
    """s[..., i, j] = x[..., i, :] . table[:, idx[i][j]] (transposed in the last two axes when asked)."""
    xt = torch.matmul(x, table)
    s = xt.gather(-1, idx.expand(*xt.shape[:-1], idx.shape[1]))
    return s.transpose(-1, -2) if transpose else s


def split_heads(x, heads):
    B, T, W = x.shape
    return x.view(B, T, heads, W // heads).permute(0, 2, 1, 3)


def merge_heads(x):
    B, H, T, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(B, T, H * d)


# ----------------------------------------------------------------------------------------------
# Operation types (models/ops/*.cpp). Standard cores take (x, inputs); hetero heads take
# (q, k, v, rel, inputs); inputs = (mask_add [B,1,1,T], valid [B,T]), plus (kv [B,T,h], q_pos [Tq])
# under Funnel pool-q-only, where x holds the pooled queries (ops in POOLS_QUERIES only).

class _SelfAttentionCore(nn.Module):
    def __init__(self, h, n, param, P, dropout):
        super().__init__()
        self.heads, self.d, self.P, self.p = n, h // n, P, dropout
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.distance_embedding = nn.Embedding(2 * P - 1, self.d)
        if param == "wma":
            self.wma = nn.Parameter(torch.empty(self.d, self.d).uniform_(-0.1, 0.1))
        else:
            self.wma = None

    def forward(self, x, inputs):
        kv = inputs[2] if len(inputs) > 2 else x
        q = split_heads(self.query(x), self.heads)
        k, v = split_heads(self.key(kv), self.heads), split_heads(self.value(kv), self.heads)
        content = torch.matmul(torch.matmul(q, self.wma) if self.wma is not None else q, k.transpose(-1, -2))
        if len(inputs) > 2:
            rel = relative_key_scores_at(q, self.distance_embedding.weight, self.P, inputs[3], kv.shape[1])
        else:
            rel = relative_key_scores(q, self.distance_embedding.weight, self.P)
        return merge_heads(attend(content + rel, float(self.d), inputs[0], v, self.p, self.training))


class _SelfAttentionHead(nn.Module):
    def __init__(self, param, D, P, dropout):
        super().__init__()
        self.D, self.p = D, dropout
        self.wma = nn.Parameter(torch.empty(D, D).uniform_(-0.1, 0.1)) if param == "wma" else None

    def forward(self, q, k, v, rel, inputs):
        content = torch.matmul(torch.matmul(q, self.wma) if self.wma is not None else q, k.transpose(-1, -2))
        return attend(content + rel, float(self.D), inputs[0].squeeze(1), v, self.p, self.training)


class _LinearMixingCore(nn.Module):
    def __init__(self, h, n, param, P, dropout):
        super().__init__()
        self.heads, self.d, self.P, self.p, self.transform = n, h // n, P, dropout, param
        self.query, self.value = nn.Linear(h, h), nn.Linear(h, h)
        self.distance_embedding = nn.Embedding(2 * P - 1, self.d)

    def forward(self, x, inputs):
        q, v = split_heads(self.query(x), self.heads), split_heads(self.value(x), self.heads)
        rel = relative_key_scores(q, self.distance_embedding.weight, self.P)
        context = attend(rel, float(self.d), inputs[0], v, self.p, self.training)
        return merge_heads(context + linear_mix(v, inputs[1], self.transform))


class _LinearMixingHead(nn.Module):
    def __init__(self, param, D, P, dropout):
        super().__init__()
        self.D, self.p, self.transform = D, dropout, param

    def forward(self, q, k, v, rel, inputs):
        context = attend(rel, float(self.D), inputs[0].squeeze(1), v, self.p, self.training)
        return context + linear_mix(v, inputs[1], self.transform)


class _SepConv(nn.Module):
    def __init__(self, cin, cout, k):
        super().__init__()
        self.depthwise = nn.Conv1d(cin, cin, k, groups=cin, padding=k // 2, bias=False)
        self.pointwise = nn.Conv1d(cin, cout, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(cout, 1))

    def forward(self, x):
        return (self.pointwise(self.depthwise(x.transpose(1, 2))) + self.bias).transpose(1, 2)


class _DynamicConvCore(nn.Module):
    def __init__(self, h, n, param, P, dropout):
        super().__init__()
        self.a, self.d, self.k, self.P, self.p = max(n // 2, 1), h // n, int(param), P, dropout
        A = self.a * self.d
        self.query, self.key, self.value = nn.Linear(h, A), nn.Linear(h, A), nn.Linear(h, A)
        self.key_conv_attn_layer = _SepConv(h, A, self.k)
        self.conv_kernel_layer = nn.Linear(A, self.a * self.k)
        self.conv_out_layer = nn.Linear(h, A)
        self.distance_embedding = nn.Embedding(2 * P - 1, self.d)

    def forward(self, x, inputs):
        B, T = x.shape[0], x.shape[1]
        valid = inputs[1].unsqueeze(-1)
        q_full = self.query(x)
        gate = self.key_conv_attn_layer(x * valid) * q_full
        # fp32 island (dynamic_conv.cpp): the kernel softmax runs in fp32.
        kernel = torch.softmax(self.conv_kernel_layer(gate).view(B, T, self.a, self.k), -1, dtype=torch.float32)
        conv = dynamic_conv(self.conv_out_layer(x) * valid, kernel, self.a)
        q, k, v = split_heads(q_full, self.a), split_heads(self.key(x), self.a), split_heads(self.value(x), self.a)
        scores = torch.matmul(q, k.transpose(-1, -2)) + relative_key_scores(q, self.distance_embedding.weight, self.P)
        context = merge_heads(attend(scores, float(self.d), inputs[0], v, self.p, self.training))
        out = torch.cat([context.view(B, T, self.a, self.d), conv.view(B, T, self.a, self.d)], 2)
        return out.reshape(B, T, 2 * self.a * self.d)


class _DynamicConvHead(nn.Module):
    def __init__(self, param, D, P, dropout):
        super().__init__()
        self.D, self.k, self.p = D, int(param), dropout
        self.key_conv_attn_layer = _SepConv(D, D, self.k)
        self.conv_kernel_layer = nn.Linear(D, self.k)
        self.conv_out_layer = nn.Linear(D, D)

    def forward(self, q, k, v, rel, inputs):
        B, T = q.shape[0], q.shape[1]
        valid = inputs[1].unsqueeze(-1)
        gate = self.key_conv_attn_layer(k * valid) * q
        # fp32 island (dynamic_conv.cpp): the kernel softmax runs in fp32.
        kernel = torch.softmax(self.conv_kernel_layer(gate).view(B, T, 1, self.k), -1, dtype=torch.float32)
        conv = dynamic_conv(self.conv_out_layer(v) * valid, kernel, 1)
        return attend(rel, float(self.D), inputs[0].squeeze(1), v, self.p, self.training) + conv


_AK_COMPONENTS = ("qk", "convfixed", "convq", "convk", "vconv", "qkconv")


def _parse_kernel(param):
    """'qk+convq:9' -> ({component names}, window); the C++ checker has validated it."""
    names, _, window = param.partition(":")
    return set(names.split("+")), int(window) if window else 0


def _depthwise(channels, window):
    return nn.Conv1d(channels, channels, 2 * window + 1, groups=channels, padding=window, bias=False)


def _convolve_first(x, valid, conv, channels):
    """Depthwise convolution over tokens of the first `channels` features (padding zeroed first)."""
    out = conv((x[..., :channels] * valid).transpose(1, 2)).transpose(1, 2)
    if channels == x.shape[-1]:
        return out
    return torch.cat([out.to(x.dtype), x[..., channels:]], -1)


def _window_table(d, taps):
    bound = 1.0 / math.sqrt(taps)  # the seed's kaiming_uniform_(a=sqrt(5))
    return nn.Parameter(torch.empty(d, taps).uniform_(-bound, bound))


def _kernel_scores(c, window, q, k, r, s, beta, T, d, heads_axis, device):
    idx = clipped_distance_index(T, window, device) if window > 0 else None
    content = None

    def add(t):
        return t if content is None else content + t

    if "qk" in c:
        content = add(torch.matmul(q, k.transpose(-1, -2)))
    if "convq" in c:
        content = add(window_scores(q, r, idx, False))
    if "convk" in c:
        content = add(window_scores(k, s, idx, True))
    scores = content.float() / math.sqrt(d) if content is not None else None  # fp32 island
    if "convfixed" in c:
        H = beta.shape[0]
        fixed = beta.index_select(1, idx.reshape(-1)).view(H, T, T).float()
        fixed = fixed[None] if heads_axis else fixed
        scores = fixed if scores is None else scores + fixed
    return scores


class _AttentionKernelCore(nn.Module):
    """Op ak, standard format (models/ops/attention_kernel.cpp)."""

    def __init__(self, h, n, param, P, dropout):
        super().__init__()
        self.c, self.window = _parse_kernel(param)
        self.heads, self.d, self.p = n, h // n, dropout
        self.C = max(n // 2, 1) * self.d
        uses_q, uses_k = "qk" in self.c or "convq" in self.c, "qk" in self.c or "convk" in self.c
        R = 2 * self.window + 1
        self.query = nn.Linear(h, h) if uses_q else None
        self.key = nn.Linear(h, h) if uses_k else None
        self.value = nn.Linear(h, h)
        self.convfixed = nn.Parameter(torch.zeros(n, R)) if "convfixed" in self.c else None
        self.convq = _window_table(self.d, R) if "convq" in self.c else None
        self.convk = _window_table(self.d, R) if "convk" in self.c else None
        self.value_conv = _depthwise(self.C, self.window) if "vconv" in self.c else None
        self.query_conv = _depthwise(self.C, self.window) if "qkconv" in self.c and uses_q else None
        self.key_conv = _depthwise(self.C, self.window) if "qkconv" in self.c and uses_k else None

    def forward(self, x, inputs):
        T = x.shape[1]
        valid = inputs[1].unsqueeze(-1)
        q = k = None
        if self.query is not None:
            full = self.query(x)
            if self.query_conv is not None:
                full = _convolve_first(full, valid, self.query_conv, self.C)
            q = split_heads(full, self.heads)
        if self.key is not None:
            full = self.key(x)
            if self.key_conv is not None:
                full = _convolve_first(full, valid, self.key_conv, self.C)
            k = split_heads(full, self.heads)
        v_full = self.value(x)
        if self.value_conv is not None:
            v_full = _convolve_first(v_full, valid, self.value_conv, self.C)
        v = split_heads(v_full, self.heads)
        scores = _kernel_scores(self.c, self.window, q, k, self.convq, self.convk, self.convfixed, T, self.d, True, x.device)
        return merge_heads(attend(scores, 1.0, inputs[0], v, self.p, self.training))


class _AttentionKernelHead(nn.Module):
    """Op ak, one hetero head: ignores the layer's relative scores (the kernels carry positions)."""

    def __init__(self, param, D, P, dropout):
        super().__init__()
        self.c, self.window = _parse_kernel(param)
        if self.window > P - 1:
            raise ValueError("head 'ak_%s_%d': window %d exceeds max_positions - 1 = %d" % (param, D, self.window, P - 1))
        self.D, self.p = D, dropout
        self.uses_q, self.uses_k = "qk" in self.c or "convq" in self.c, "qk" in self.c or "convk" in self.c
        R = 2 * self.window + 1
        self.convfixed = nn.Parameter(torch.zeros(1, R)) if "convfixed" in self.c else None
        self.convq = _window_table(D, R) if "convq" in self.c else None
        self.convk = _window_table(D, R) if "convk" in self.c else None
        self.value_conv = _depthwise(D, self.window) if "vconv" in self.c else None
        self.query_conv = _depthwise(D, self.window) if "qkconv" in self.c and self.uses_q else None
        self.key_conv = _depthwise(D, self.window) if "qkconv" in self.c and self.uses_k else None

    def forward(self, q, k, v, rel, inputs):
        T = v.shape[1]
        valid = inputs[1].unsqueeze(-1)
        q = q if self.uses_q else None
        k = k if self.uses_k else None
        if self.query_conv is not None:
            q = _convolve_first(q, valid, self.query_conv, self.D)
        if self.key_conv is not None:
            k = _convolve_first(k, valid, self.key_conv, self.D)
        if self.value_conv is not None:
            v = _convolve_first(v, valid, self.value_conv, self.D)
        scores = _kernel_scores(self.c, self.window, q, k, self.convq, self.convk, self.convfixed, T, self.D, False, v.device)
        return attend(scores, 1.0, inputs[0].squeeze(1), v, self.p, self.training)


# name -> (standard core class, hetero head class, attention output width of a standard layer)
OPS = {
    "sa": (_SelfAttentionCore, _SelfAttentionHead, lambda h, n: h),
    "l": (_LinearMixingCore, _LinearMixingHead, lambda h, n: h),
    "c": (_DynamicConvCore, _DynamicConvHead, lambda h, n: 2 * max(n // 2, 1) * (h // n)),
    "ak": (_AttentionKernelCore, _AttentionKernelHead, lambda h, n: h),
}
POOLS_QUERIES = {"sa"}  # OpDefinition::pools_queries


class _HeteroSelfAttention(nn.Module):
    def __init__(self, h, heads, P, dropout):
        super().__init__()
        self.n, self.D, self.P = len(heads), heads[0][2], P
        W = self.n * self.D
        self.query, self.key, self.value = nn.Linear(h, W), nn.Linear(h, W), nn.Linear(h, W)
        self.distance_embedding = nn.Embedding(2 * P - 1, self.D)
        self.heads = nn.ModuleList([OPS[t][1](p, D, P, dropout) for (t, p, D) in heads])

    def forward(self, x, inputs):
        kv = inputs[2] if len(inputs) > 2 else x
        q = split_heads(self.query(x), self.n)
        k, v = split_heads(self.key(kv), self.n), split_heads(self.value(kv), self.n)
        if len(inputs) > 2:
            rel = relative_key_scores_at(q, self.distance_embedding.weight, self.P, inputs[3], kv.shape[1])
        else:
            rel = relative_key_scores(q, self.distance_embedding.weight, self.P)
        return torch.cat([head(q[:, j], k[:, j], v[:, j], rel[:, j], inputs) for j, head in enumerate(self.heads)], -1)


# ----------------------------------------------------------------------------------------------
# The model (models/flex_model.cpp)

def parse_architecture(d):
    """Model dict (standard {l,h,n,o,f,p} or hetero {l,h,f,o:[[heads]]}) -> list of layer dicts."""
    layers = []
    for i in range(int(d["l"])):
        layer = {"h": int(d["h"][i]), "f": [int(w) for w in d["f"][i]]}
        if "p" in d:
            layer.update(op=d["o"][i], param=str(d["p"][i]), n=int(d["n"][i]))
        else:
            heads = []
            for s in d["o"][i]:
                first, last = s.index("_"), s.rindex("_")
                heads.append((s[:first], s[first + 1:last], int(s[last + 1:])))
            layer["heads"] = heads
        layers.append(layer)
    return layers


def parse_pool(d):
    """The "pool" key (architecture.h PoolSpec) with its defaults; None without pooling."""
    p = d.get("pool")
    if not p or all(int(s) == 1 for s in p["stride"]):
        return None
    return {"stride": [int(s) for s in p["stride"]], "q_only": bool(p.get("q_only", True)),
            "separate_cls": bool(p.get("separate_cls", True)), "decoder": int(p.get("decoder", 2))}


def parse_share(d):
    """The "share" key (architecture.h Architecture::share): per layer, the index of the layer whose
    parameters it runs with (itself when it owns them)."""
    share = d.get("share")
    L = int(d["l"])
    return [int(k) for k in share] if share else list(range(L))


DEFAULT_OPTIONS = {"vocab_size": 30522, "max_positions": 514, "type_vocab_size": 1, "pad_id": 0,
                   "hidden_dropout": 0.1, "attention_dropout": 0.1, "classifier_dropout": 0.1,
                   "layer_norm_eps": 1e-12, "initializer_range": 0.02, "head": "mlm", "num_labels": 2,
                   "classifier_pooling": "mean"}


def _container(**children):
    m = nn.Module()
    for name, child in children.items():
        setattr(m, name, child)
    return m


class FlexModel(nn.Module):
    def __init__(self, architecture, options=None):
        super().__init__()
        o = dict(DEFAULT_OPTIONS)
        o.update(options or {})
        self.architecture, self.options = architecture, o
        self.layers_spec = parse_architecture(architecture)
        P, eps, pdrop = o["max_positions"], o["layer_norm_eps"], o["attention_dropout"]
        h0, hl = self.layers_spec[0]["h"], self.layers_spec[-1]["h"]
        self.bert = nn.Module()
        self.bert.embeddings = _container(
            word_embeddings=nn.Embedding(o["vocab_size"], h0, padding_idx=o["pad_id"]),
            token_type_embeddings=nn.Embedding(o["type_vocab_size"], h0),
            LayerNorm=nn.LayerNorm(h0, eps=eps))
        # Block parameter sharing: a layer that runs with an earlier layer's parameters holds only its
        # own proj_head (flex_model.cpp), so each shared tensor is stored once.
        self.owners = parse_share(architecture)
        layers = []
        for i, spec in enumerate(self.layers_spec):
            nxt = self.layers_spec[i + 1]["h"] if i + 1 < len(self.layers_spec) else 0
            if self.owners[i] == i:
                layers.append(self._build_layer(spec, nxt))
            else:
                tied = nn.Module()
                tied.proj_head = nn.Linear(spec["h"], nxt) if nxt and nxt != spec["h"] else None
                layers.append(tied)
        self.bert.encoder = _container(layer=nn.ModuleList(layers))
        self.pool = parse_pool(architecture)
        self.has_decoder = self.pool is not None and o["head"] in ("mlm", "token")
        if self.has_decoder:
            # Funnel decoder: up-projection when widths differ, copies of the last full-length layer.
            first = next(i for i, st in enumerate(self.pool["stride"]) if st > 1)
            spec = self.layers_spec[first - 1]
            self.bert.decoder = nn.Module()
            self.bert.decoder.up_proj = nn.Linear(hl, spec["h"]) if hl != spec["h"] else None
            self.bert.decoder.layer = nn.ModuleList([self._build_layer(spec, 0) for _ in range(self.pool["decoder"])])
            hl = spec["h"]
        head = o["head"]
        if head == "mlm":
            pred = _container(transform=_container(dense=nn.Linear(hl, hl), LayerNorm=nn.LayerNorm(hl, eps=eps)),
                              decoder=nn.Linear(hl, o["vocab_size"], bias=False))
            pred.bias = nn.Parameter(torch.zeros(o["vocab_size"]))
            self.cls = _container(predictions=pred)
        elif head == "cls":
            self.bert.pooler = _container(dense=nn.Linear(hl, hl))
            self.classifier = nn.Linear(hl, o["num_labels"])
        elif head == "token":
            self.classifier = nn.Linear(hl, o["num_labels"])
        else:
            raise ValueError("unknown head type %r (allowed: mlm, cls, token)" % head)

    def _build_layer(self, spec, next_h):
        o = self.options
        P, eps, pdrop, h = o["max_positions"], o["layer_norm_eps"], o["attention_dropout"], spec["h"]
        if "heads" in spec:
            core, width = _HeteroSelfAttention(h, spec["heads"], P, pdrop), len(spec["heads"]) * spec["heads"][0][2]
            pools_queries = all(t in POOLS_QUERIES for (t, _, _) in spec["heads"])
        else:
            cls_core, _, width_fn = OPS[spec["op"]]
            core, width = cls_core(h, spec["n"], spec["param"], P, pdrop), width_fn(h, spec["n"])
            pools_queries = spec["op"] in POOLS_QUERIES
        layer = nn.Module()
        layer.attention = _container(**{"self": core, "output": _container(dense=nn.Linear(width, h),
                                                                           LayerNorm=nn.LayerNorm(h, eps=eps))})
        inter, prev = nn.Module(), h
        for j, w in enumerate(spec["f"]):
            setattr(inter, "dense" if j == 0 else "dense_%d" % j, nn.Linear(prev, w))
            prev = w
        layer.intermediate = inter
        layer.output = _container(dense=nn.Linear(prev, h), LayerNorm=nn.LayerNorm(h, eps=eps))
        layer.proj_head = nn.Linear(h, next_h) if next_h and next_h != h else None
        layer.pools_queries = pools_queries
        return layer

    def _run_layer(self, layer, x, inputs):
        o = self.options
        a = getattr(layer.attention, "self")(x, inputs)
        so = layer.attention.output
        # fp32 islands (flex_model.cpp run_layer): residual sums and LayerNorm run in fp32.
        y = so.LayerNorm(F.dropout(so.dense(a), o["hidden_dropout"], self.training).float() + x)
        z, j = y, 0
        while hasattr(layer.intermediate, "dense" if j == 0 else "dense_%d" % j):
            z = F.gelu(getattr(layer.intermediate, "dense" if j == 0 else "dense_%d" % j)(z))
            j += 1
        return layer.output.LayerNorm(F.dropout(layer.output.dense(z), o["hidden_dropout"], self.training).float() + y)

    def encode(self, input_ids, attention_mask):
        o, emb, pool = self.options, self.bert.embeddings, self.pool
        x = emb.word_embeddings(input_ids) + emb.token_type_embeddings.weight[0]
        x = F.dropout(emb.LayerNorm(x), o["hidden_dropout"], self.training)
        valid = attention_mask.to(x.dtype)
        inputs = (additive_mask(valid, x.dtype), valid)
        full_length = None
        first_pool = next((k for k, st in enumerate(pool["stride"]) if st > 1), -1) if pool else -1
        for i, own in enumerate(self.bert.encoder.layer):
            layer = self.bert.encoder.layer[self.owners[i]]  # the parameters it runs with
            stride = pool["stride"][i] if pool else 1
            if stride == 1:
                u = self._run_layer(layer, x, inputs)
            else:
                px, pvalid = pool_tokens(x, valid, stride, pool["separate_cls"])
                if pool["q_only"] and layer.pools_queries:
                    q_pos = pooled_positions(x.shape[1], stride, pool["separate_cls"], x.device)
                    u = self._run_layer(layer, px, inputs + (x, q_pos))
                else:
                    u = self._run_layer(layer, px, (additive_mask(pvalid, x.dtype), pvalid))
                valid = pvalid
                inputs = (additive_mask(valid, x.dtype), valid)
            if i + 1 == first_pool:
                full_length = u  # the decoder's residual (before the projection)
            x = own.proj_head(u).float() if own.proj_head is not None else u
        if not self.has_decoder:
            return x
        total = 1
        for st in pool["stride"]:
            total *= st
        up = upsample_tokens(x, full_length.shape[1], total, pool["separate_cls"])
        if self.bert.decoder.up_proj is not None:
            up = self.bert.decoder.up_proj(up).float()
        y = up + full_length
        inputs = (additive_mask(attention_mask, y.dtype), attention_mask.to(y.dtype))
        for layer in self.bert.decoder.layer:
            y = self._run_layer(layer, y, inputs)
        return y

    def stream_valid(self, attention_mask, positions):
        """The input mask pooled as the encoder pools: which of the last stream's positions are tokens."""
        valid = attention_mask
        for st in (self.pool["stride"] if self.pool else []):
            if valid.shape[1] == positions:
                break
            if st > 1:
                valid = pool_tokens(valid.unsqueeze(-1).float(), valid, st, self.pool["separate_cls"])[1]
        assert valid.shape[1] == positions
        return valid

    def head_logits(self, hidden, attention_mask=None):
        head = self.options["head"]
        if head == "mlm":
            p = self.cls.predictions
            return p.decoder(p.transform.LayerNorm(F.gelu(p.transform.dense(hidden)).float())).float() + p.bias
        if head == "cls":
            if self.options["classifier_pooling"] == "first":
                summary = hidden[:, 0]
            else:  # the mean over the valid positions, in fp32
                valid = self.stream_valid(attention_mask, hidden.shape[1]).float().unsqueeze(-1)
                summary = (hidden.float() * valid).sum(1) / valid.sum(1).clamp_min(1.0)
            pooled = torch.tanh(self.bert.pooler.dense(summary))
            return self.classifier(F.dropout(pooled, self.options["classifier_dropout"], self.training)).float()
        return self.classifier(F.dropout(hidden, self.options["classifier_dropout"], self.training)).float()

    def forward(self, input_ids, attention_mask=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.head_logits(self.encode(input_ids, attention_mask), attention_mask)

    def loss(self, input_ids, attention_mask, labels):
        """Same definitions as FlexModelImpl::loss (MLM head on labelled positions only)."""
        hidden = self.encode(input_ids, attention_mask)
        head = self.options["head"]
        if head == "mlm":
            flat = labels.reshape(-1)
            picked = (flat != -100).nonzero().squeeze(1)
            logits = self.head_logits(hidden.reshape(-1, hidden.shape[-1]).index_select(0, picked))
            return F.cross_entropy(logits, flat.index_select(0, picked))
        logits = self.head_logits(hidden, attention_mask)
        if head == "cls":
            if self.options["num_labels"] == 1:
                return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            return F.cross_entropy(logits, labels)
        return F.cross_entropy(logits.reshape(-1, self.options["num_labels"]), labels.reshape(-1), ignore_index=-100)


def build(architecture, options=None, seed=None):
    """A freshly initialised model (same scheme as the C++ model; not the same random numbers)."""
    if seed is not None:
        torch.manual_seed(seed)
    model = FlexModel(architecture, options)
    r = model.options["initializer_range"]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0.0, r)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                m.weight.normal_(0.0, r)
            elif isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, nn.Conv1d):
                m.weight.normal_(0.0, r)
        model.bert.embeddings.word_embeddings.weight[model.options["pad_id"]].zero_()
    return model


def load(directory, device="cpu"):
    """Loads a flexnas checkpoint directory; returns the model in eval mode."""
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    if config.get("format", "flexnas-checkpoint") != "flexnas-checkpoint":
        raise ValueError("%s: not a flexnas checkpoint" % directory)
    options = dict(config.get("model", {}))
    options.setdefault("classifier_pooling", "first")  # written before the key existed: [CLS]
    model = FlexModel(config["architecture"], options)
    path = os.path.join(directory, "model.safetensors")
    state = read_safetensors(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise ValueError("%s: tensors missing %s, unexpected %s" % (path, missing, extra))
    for name, t in state.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise ValueError("%s: tensor '%s': shape %s in the file, the model expects %s"
                             % (path, name, list(t.shape), list(own[name].shape)))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
