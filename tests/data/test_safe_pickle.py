"""The restricted unpickler: malicious pickles are refused and never run; object arrays and
garbage refused; arrays and plain values read back."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import RunsCode
from topograph.data.safe_pickle import safe_load, safe_loads
from topograph.errors import UsageError


class _WritesFile:
    """Unpickling this would call ``builtins.exec`` to write a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload", [RunsCode, _WritesFile])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "marker"
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": payload(marker), b"batch_label": b"x"}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UsageError) as info:
        safe_load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused to unpickle global ")
    assert ("system" in message) if payload is RunsCode else ("exec" in message)
    assert not marker.exists()


def test_unpickler_refuses_object_arrays_and_garbage(tmp_path):
    with pytest.raises(UsageError, match="not a valid data pickle"):
        safe_loads(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2), source="obj")
    with pytest.raises(UsageError, match="refused to unpickle global collections.OrderedDict"):
        safe_loads(pickle.dumps(__import__("collections").OrderedDict(a=1), protocol=2))
    with pytest.raises(UsageError, match="not a valid data pickle"):
        safe_loads(b"\x80\x02garbage", source="g")


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_unpickler_reads_arrays_and_plain_values(protocol):
    value = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), "labels": [1, 2, 3], b"e": b"",
             "f": np.float32(1.5), "t": (1.0, None, True), "s": "text", "b": b"\x00\xffbytes"}
    back = safe_loads(pickle.dumps(value, protocol=protocol))
    assert np.array_equal(back[b"data"], value[b"data"]) and back[b"data"].dtype == np.uint8
    assert {k: v for k, v in back.items() if k != b"data"} == {k: v for k, v in value.items() if k != b"data"}
