"""Move answer variables out of an untrusted notebook as plain data.

The submission's process calls :func:`dumps` on each graded variable; a clean process that
never ran student code calls :func:`loads`. The format is JSON in which every value that is
not a plain ``None``/``bool``/``int``/``float``/``str`` is a tagged object ``{"$": tag, ...}``.

Decoding is strict: only the types listed below can come back, every field is type-checked,
raw buffers are only accepted for NumPy dtypes without Python objects, and estimators are
rebuilt only from scikit-learn / imbalanced-learn classes (``cls.__new__`` plus a data-only
``__dict__``, which is what unpickling does, minus the ability to call arbitrary functions).
A forged payload can therefore carry any *data*, but never code, a custom ``__eq__`` or a
patched library: the clean process's own pandas, NumPy and scikit-learn do all the work.

Supported: None, bool, int, float, complex, str, bytes, Ellipsis, list, tuple, set, frozenset,
dict, OrderedDict, Counter, namedtuples defined in scikit-learn/imbalanced-learn, slice,
datetime/date/timedelta, NumPy arrays/scalars/dtypes/RandomState, pandas DataFrame, Series,
Index (incl. RangeIndex, MultiIndex), Categorical, NA, NaT, Timestamp, Timedelta, and
scikit-learn / imbalanced-learn estimators.
"""
from __future__ import annotations

import base64
import collections
import datetime as dt
import importlib
import json
import math
import re

MAX_DEPTH = 60
ESTIMATOR_PACKAGES = ("sklearn", "imblearn")
_MODULE_RE = re.compile(r"^(sklearn|imblearn)(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXT_DTYPE_RE = re.compile(
    r"^(U?Int(8|16|32|64)|Float(32|64)|boolean|string|str|string\[python\]|string\[pyarrow\])$")
_RAW_KINDS = set("biufcMmUS")


class TransferError(ValueError):
    """A value cannot be encoded, or a payload is not valid."""


# ----------------------------------------------------------------------------- encoding

def encode(value):
    """Encode one value as a JSON-compatible tree (raises TransferError if not supported)."""
    return _enc(value, 0)


def dumps(value) -> str:
    """Encode one value as a JSON string."""
    return json.dumps(_enc(value, 0), allow_nan=True, separators=(",", ":"))


def _enc(x, depth):
    if depth > MAX_DEPTH:
        raise TransferError("nested too deeply")
    t = type(x)
    if x is None or t in (bool, str):
        return x
    if t is int:
        return x if abs(x) < 2**63 else {"$": "bigint", "v": str(x)}
    if t is float:
        return x
    if x is Ellipsis:
        return {"$": "ellipsis"}
    if t is complex:
        return {"$": "complex", "re": x.real, "im": x.imag}
    if t is bytes:
        return {"$": "bytes", "b64": base64.b64encode(x).decode()}
    if t in (list, tuple, set, frozenset):
        items = sorted(x, key=repr) if t in (set, frozenset) else x
        return {"$": t.__name__, "items": [_enc(i, depth + 1) for i in items]}
    if t in (dict, collections.OrderedDict, collections.Counter, collections.defaultdict):
        kind = {dict: "dict", collections.defaultdict: "dict",
                collections.OrderedDict: "odict", collections.Counter: "counter"}[t]
        return {"$": kind, "items": [[_enc(k, depth + 1), _enc(v, depth + 1)] for k, v in x.items()]}
    if t is slice:
        return {"$": "slice", "items": [_enc(x.start, depth + 1), _enc(x.stop, depth + 1),
                                        _enc(x.step, depth + 1)]}
    if t is dt.datetime:
        return {"$": "datetime", "v": x.isoformat()}
    if t is dt.date:
        return {"$": "date", "v": x.isoformat()}
    if t is dt.timedelta:
        return {"$": "pytimedelta", "v": [x.days, x.seconds, x.microseconds]}

    module = t.__module__ or ""
    if module.startswith("numpy") or module.startswith("pandas"):
        return _enc_numpy_pandas(x, t, depth)
    if module.split(".")[0] in ESTIMATOR_PACKAGES:
        return _enc_sklearn(x, t, depth)
    raise TransferError(f"values of type {module}.{t.__qualname__} cannot be graded")


def _enc_numpy_pandas(x, t, depth):
    import numpy as np
    import pandas as pd

    if t is np.ndarray:
        return _enc_array(x, depth)
    if isinstance(x, np.generic) and t.__module__ == "numpy":
        return {"$": "npscalar", "a": _enc_array(np.asarray(x), depth)}
    if isinstance(x, np.dtype) and t.__module__.startswith("numpy"):
        return {"$": "npdtype", "v": _dtype_str(x)}
    if t is np.random.RandomState:
        name, keys, pos, has_gauss, cached = x.get_state()
        return {"$": "randomstate", "keys": _enc_array(keys, depth),
                "rest": [str(name), int(pos), int(has_gauss), float(cached)]}
    if x is pd.NA:
        return {"$": "NA"}
    if x is pd.NaT:
        return {"$": "NaT"}
    if t is pd.Timestamp:
        return {"$": "timestamp", "v": int(x.value), "unit": x.unit,
                "tz": None if x.tz is None else str(x.tz)}
    if t is pd.Timedelta:
        return {"$": "timedelta", "v": int(x.value)}
    if t is pd.DataFrame:
        return {"$": "dataframe", "index": _enc_index(x.index, depth),
                "columns": _enc_index(x.columns, depth),
                "data": [_enc_values(x.iloc[:, i], depth) for i in range(x.shape[1])]}
    if t is pd.Series:
        return {"$": "series", "name": _enc(x.name, depth + 1),
                "index": _enc_index(x.index, depth), "values": _enc_values(x, depth)}
    if isinstance(x, pd.Index) and t.__module__.startswith("pandas"):
        return _enc_index(x, depth)
    if t is pd.Categorical:
        return {"$": "values", "v": _enc_values(x, depth)}
    raise TransferError(f"values of type {t.__module__}.{t.__qualname__} cannot be graded")


def _dtype_str(dtype):
    if dtype.fields is not None or dtype.subdtype is not None:
        raise TransferError("structured NumPy dtypes cannot be graded")
    return "O" if dtype.kind == "O" else dtype.str


def _enc_array(a, depth):
    import numpy as np

    if a.dtype.kind == "O":
        return {"$": "ndarray", "dtype": "O", "shape": list(a.shape),
                "items": [_enc(i, depth + 1) for i in a.ravel(order="C").tolist()]}
    if a.dtype.kind not in _RAW_KINDS:
        raise TransferError(f"NumPy arrays of dtype {a.dtype} cannot be graded")
    data = np.ascontiguousarray(a).tobytes()
    return {"$": "ndarray", "dtype": _dtype_str(a.dtype), "shape": list(a.shape),
            "b64": base64.b64encode(data).decode()}


def _enc_values(values, depth):
    """The values of a Series, Index or Categorical, with their dtype."""
    import numpy as np
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, np.dtype):
        return {"kind": "numpy", "a": _enc_array(np.asarray(values.to_numpy()), depth)}
    if isinstance(dtype, pd.CategoricalDtype):
        cat = pd.Categorical(values)
        return {"kind": "category", "categories": _enc_index(cat.categories, depth),
                "ordered": bool(cat.ordered), "codes": _enc_array(np.asarray(cat.codes), depth)}
    if isinstance(dtype, pd.DatetimeTZDtype):
        naive = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None)
        return {"kind": "datetimetz", "tz": str(dtype.tz),
                "a": _enc_array(np.asarray(naive), depth)}
    name = str(dtype)
    if _EXT_DTYPE_RE.match(name):
        items = [_enc(v, depth + 1) for v in _pyscalars(values)]
        return {"kind": "ext", "dtype": name, "items": items}
    raise TransferError(f"pandas columns of dtype {name} cannot be graded")


def _pyscalars(values):
    import numpy as np
    import pandas as pd

    out = []
    for v in values:
        if v is pd.NA or v is None:
            out.append(v)
        elif isinstance(v, (np.generic,)):
            out.append(v.item())
        else:
            out.append(v)
    return out


def _enc_index(idx, depth):
    import pandas as pd

    t = type(idx)
    if t is pd.RangeIndex:
        return {"$": "rangeindex", "v": [idx.start, idx.stop, idx.step], "name": _enc(idx.name, depth + 1)}
    if t is pd.MultiIndex:
        return {"$": "multiindex", "levels": [_enc_index(lv, depth + 1) for lv in idx.levels],
                "codes": [_enc_array(c, depth + 1) for c in idx.codes],
                "names": [_enc(n, depth + 1) for n in idx.names]}
    if not t.__module__.startswith("pandas"):
        raise TransferError(f"index of type {t.__qualname__} cannot be graded")
    return {"$": "index", "name": _enc(idx.name, depth + 1), "values": _enc_values(idx, depth + 1)}


def _enc_sklearn(x, t, depth):
    from sklearn.base import BaseEstimator

    module, name = t.__module__, t.__qualname__
    if not _MODULE_RE.match(module) or not _NAME_RE.match(name):
        raise TransferError(f"objects of type {module}.{name} cannot be graded")
    if isinstance(x, tuple) and hasattr(t, "_fields"):
        return {"$": "namedtuple", "class": f"{module}:{name}",
                "items": [_enc(i, depth + 1) for i in x]}
    if not isinstance(x, BaseEstimator):
        raise TransferError(f"objects of type {module}.{name} cannot be graded")
    state = {k: _enc(v, depth + 1) for k, v in vars(x).items()}
    return {"$": "estimator", "class": f"{module}:{name}", "state": state}


# ----------------------------------------------------------------------------- decoding

def decode(tree):
    """Decode a tree produced by :func:`encode` (or forged): data only, strictly checked."""
    return _dec(tree, 0)


def loads(text: str):
    """Decode a JSON string produced by :func:`dumps`."""
    return _dec(json.loads(text), 0)


def _req(cond, what="malformed payload"):
    if not cond:
        raise TransferError(what)


def _dec(x, depth):
    _req(depth <= MAX_DEPTH, "nested too deeply")
    if x is None or type(x) in (bool, int, float, str):
        return x
    _req(type(x) is dict and type(x.get("$")) is str)
    tag = x["$"]
    d = depth + 1
    if tag == "bigint":
        return int(_str(x["v"]))
    if tag == "ellipsis":
        return Ellipsis
    if tag == "complex":
        return complex(_num(x["re"]), _num(x["im"]))
    if tag == "bytes":
        return base64.b64decode(_str(x["b64"]), validate=True)
    if tag in ("list", "tuple", "set", "frozenset"):
        items = [_dec(i, d) for i in _list(x["items"])]
        return {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
    if tag in ("dict", "odict", "counter"):
        kind = {"dict": dict, "odict": collections.OrderedDict, "counter": collections.Counter}[tag]
        out = kind()
        for pair in _list(x["items"]):
            _req(type(pair) is list and len(pair) == 2)
            out[_dec(pair[0], d)] = _dec(pair[1], d)
        return out
    if tag == "slice":
        items = _list(x["items"])
        _req(len(items) == 3)
        return slice(*[_dec(i, d) for i in items])
    if tag == "datetime":
        return dt.datetime.fromisoformat(_str(x["v"]))
    if tag == "date":
        return dt.date.fromisoformat(_str(x["v"]))
    if tag == "pytimedelta":
        v = _list(x["v"])
        _req(len(v) == 3 and all(type(i) is int for i in v))
        return dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2])
    if tag in ("ndarray", "npscalar", "npdtype", "randomstate", "NA", "NaT", "timestamp",
               "timedelta", "dataframe", "series", "index", "rangeindex", "multiindex", "values"):
        return _dec_numpy_pandas(tag, x, d)
    if tag in ("estimator", "namedtuple"):
        return _dec_sklearn(tag, x, d)
    raise TransferError(f"unknown tag {tag!r}")


def _str(v):
    _req(type(v) is str)
    return v


def _list(v):
    _req(type(v) is list)
    return v


def _num(v):
    _req(type(v) in (int, float))
    return v


def _dtype(s):
    import numpy as np

    s = _str(s)
    _req(len(s) < 40)
    dtype = np.dtype(s)
    _req(dtype.fields is None and dtype.subdtype is None, "structured dtype")
    return dtype


def _dec_array(x, depth):
    import numpy as np

    _req(type(x) is dict and x.get("$") == "ndarray")
    shape = _list(x["shape"])
    _req(len(shape) <= 32 and all(type(s) is int and s >= 0 for s in shape))
    size = math.prod(shape)
    if x["dtype"] == "O":
        items = _list(x["items"])
        _req(len(items) == size, "wrong number of items")
        out = np.empty(size, dtype=object)
        for i, item in enumerate(items):
            out[i] = _dec(item, depth + 1)
        return out.reshape(shape)
    dtype = _dtype(x["dtype"])
    _req(dtype.kind in _RAW_KINDS and not dtype.hasobject, "dtype not allowed")
    raw = base64.b64decode(_str(x["b64"]), validate=True)
    _req(len(raw) == size * dtype.itemsize, "wrong buffer size")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _dec_values(x, depth):
    import numpy as np
    import pandas as pd

    _req(type(x) is dict)
    kind = x.get("kind")
    if kind == "numpy":
        return _dec_array(x["a"], depth)
    if kind == "category":
        categories = _dec_index(x["categories"], depth)
        codes = _dec_array(x["codes"], depth)
        _req(codes.ndim == 1 and codes.dtype.kind == "i")
        _req(bool(((codes >= -1) & (codes < len(categories))).all()), "bad category codes")
        _req(type(x["ordered"]) is bool)
        return pd.Categorical.from_codes(codes, categories=categories, ordered=x["ordered"])
    if kind == "datetimetz":
        a = _dec_array(x["a"], depth)
        _req(a.ndim == 1 and a.dtype.kind == "M")
        tz = _str(x["tz"])
        _req(len(tz) < 64)
        return pd.DatetimeIndex(a).tz_localize("UTC").tz_convert(tz).array
    if kind == "ext":
        name = _str(x["dtype"])
        _req(bool(_EXT_DTYPE_RE.match(name)), "dtype not allowed")
        items = [_dec(i, depth + 1) for i in _list(x["items"])]
        _req(all(i is None or type(i) in (bool, int, float, str) or i is pd.NA for i in items))
        return pd.array(items, dtype=name)
    raise TransferError("unknown values kind")


def _dec_index(x, depth):
    import pandas as pd

    _req(type(x) is dict)
    tag = x.get("$")
    if tag == "rangeindex":
        v = _list(x["v"])
        _req(len(v) == 3 and all(type(i) is int for i in v))
        return pd.RangeIndex(*v, name=_hashable(_dec(x["name"], depth)))
    if tag == "multiindex":
        levels = [_dec_index(lv, depth + 1) for lv in _list(x["levels"])]
        codes = [_dec_array(c, depth + 1) for c in _list(x["codes"])]
        names = [_hashable(_dec(n, depth + 1)) for n in _list(x["names"])]
        _req(len(levels) == len(codes) == len(names) and all(c.dtype.kind == "i" for c in codes))
        return pd.MultiIndex(levels=levels, codes=codes, names=names, verify_integrity=True)
    _req(tag == "index")
    values = _dec_values(x["values"], depth)
    _req(getattr(values, "ndim", 1) == 1)
    return pd.Index(values, name=_hashable(_dec(x["name"], depth)), copy=False)


def _hashable(v):
    hash(v)
    return v


def _dec_numpy_pandas(tag, x, depth):
    import numpy as np
    import pandas as pd

    if tag == "ndarray":
        return _dec_array(x, depth)
    if tag == "npscalar":
        a = _dec_array(x["a"], depth)
        _req(a.ndim == 0 and a.dtype.kind != "O")
        return a[()]
    if tag == "npdtype":
        return np.dtype("O") if x["v"] == "O" else _dtype(x["v"])
    if tag == "randomstate":
        keys = _dec_array(x["keys"], depth)
        rest = _list(x["rest"])
        _req(len(rest) == 4 and keys.dtype == np.uint32 and keys.shape == (624,))
        rs = np.random.RandomState()
        rs.set_state((_str(rest[0]), keys, int(_num(rest[1])), int(_num(rest[2])), float(_num(rest[3]))))
        return rs
    if tag == "NA":
        return pd.NA
    if tag == "NaT":
        return pd.NaT
    if tag == "timestamp":
        _req(type(x["v"]) is int and x["unit"] in ("s", "ms", "us", "ns"))
        ts = pd.Timestamp(x["v"], unit="ns")
        if x["tz"] is not None:
            ts = ts.tz_localize("UTC").tz_convert(_str(x["tz"]))
        return ts.as_unit(x["unit"])
    if tag == "timedelta":
        _req(type(x["v"]) is int)
        return pd.Timedelta(x["v"], unit="ns")
    if tag == "dataframe":
        index = _dec_index(x["index"], depth)
        columns = _dec_index(x["columns"], depth)
        data = [_dec_values(c, depth) for c in _list(x["data"])]
        _req(len(data) == len(columns), "wrong number of columns")
        _req(all(len(c) == len(index) and getattr(c, "ndim", 1) == 1 for c in data), "ragged columns")
        frame = pd.DataFrame({i: pd.Series(c, index=index, copy=False) for i, c in enumerate(data)},
                             index=index)
        frame.columns = columns
        return frame
    if tag == "series":
        index = _dec_index(x["index"], depth)
        values = _dec_values(x["values"], depth)
        _req(len(values) == len(index) and getattr(values, "ndim", 1) == 1, "length mismatch")
        return pd.Series(values, index=index, name=_hashable(_dec(x["name"], depth)), copy=False)
    if tag in ("index", "rangeindex", "multiindex"):
        return _dec_index(x, depth)
    if tag == "values":
        values = _dec_values(x["v"], depth)
        _req(isinstance(values, pd.Categorical))
        return values
    raise TransferError(f"unknown tag {tag!r}")


def _resolve_class(path):
    module_name, _, name = _str(path).partition(":")
    _req(bool(_MODULE_RE.match(module_name)) and bool(_NAME_RE.match(name)), "class not allowed")
    module = importlib.import_module(module_name)
    cls = getattr(module, name, None)
    _req(isinstance(cls, type) and cls.__module__ == module_name and cls.__qualname__ == name,
         "class not allowed")
    return cls


def _dec_sklearn(tag, x, depth):
    from sklearn.base import BaseEstimator

    cls = _resolve_class(x["class"])
    if tag == "namedtuple":
        _req(issubclass(cls, tuple) and hasattr(cls, "_fields"), "class not allowed")
        items = [_dec(i, depth + 1) for i in _list(x["items"])]
        _req(len(items) == len(cls._fields))
        return cls(*items)
    _req(issubclass(cls, BaseEstimator), "class not allowed")
    state = x["state"]
    _req(type(state) is dict and all(type(k) is str and _NAME_RE.match(k) and not k.startswith("__")
                                     for k in state), "bad estimator state")
    obj = cls.__new__(cls)
    obj.__dict__.update({k: _dec(v, depth + 1) for k, v in state.items()})
    return obj
