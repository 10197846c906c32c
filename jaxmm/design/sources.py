"""Chunked data sources for streamed fits: Parquet files or directories (pyarrow), lists of
DataFrames, functions returning an iterable of DataFrames, and one-shot iterators.

A streamed fit reads the data twice (levels first, then crossproducts). A one-shot
iterator or generator cannot be read twice, so its chunks (only the used columns) are
spilled to a temporary folder on disk during the first pass and read back from there.

Example:
    >>> import pandas as pd
    >>> src = chunk_source([pd.DataFrame({"a": [1, 2]}), pd.DataFrame({"a": [3]})])
    >>> [len(c) for c in src.chunks(["a"])], src.columns
    ([2, 1], ['a'])
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence

import pandas as pd

from ..errors import DataError

__all__ = ["ChunkSource", "chunk_source", "is_streamable"]

#: Rows per chunk read from Parquet.
CHUNK_ROWS = 1_000_000


def is_streamable(data: object) -> bool:
    """Whether ``data`` is something :func:`chunk_source` reads (not a DataFrame)."""
    if isinstance(data, pd.DataFrame):
        return False
    return isinstance(data, (str, os.PathLike, list, tuple)) or callable(data) or \
        isinstance(data, Iterator)


class ChunkSource:
    """Re-readable chunks of a data set. ``chunks(columns)`` yields DataFrames holding (at
    least) ``columns``; ``columns`` lists the columns of the data (known after a first read
    for iterators)."""

    def __init__(self, read: Callable[[Sequence[str] | None], Iterable[pd.DataFrame]],
                 columns: list[str] | None = None, one_shot: bool = False):
        self._read, self.columns, self._one_shot = read, columns, one_shot
        self._spill: tempfile.TemporaryDirectory | None = None
        self._files: list[str] = []

    def chunks(self, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """Yield the data's chunks (DataFrames), restricted to ``columns`` when given."""
        if self._one_shot and self._spill is not None:
            for f in self._files:
                yield pd.read_pickle(f)
            return
        if self._one_shot:
            self._spill = tempfile.TemporaryDirectory(prefix="jaxmm-stream-")
        for i, chunk in enumerate(self._read(columns)):
            if not isinstance(chunk, pd.DataFrame):
                raise DataError(f"chunk {i} of the data is a {type(chunk).__name__}; a "
                                "streamed fit needs pandas DataFrame chunks")
            if self.columns is None:
                self.columns = [str(c) for c in chunk.columns]
            if columns is not None:
                missing = [c for c in columns if c not in chunk.columns]
                if missing:
                    raise DataError(f"chunk {i} of the data lacks column(s) "
                                    f"{', '.join(map(repr, missing))}")
                chunk = chunk[list(columns)]
            if self._one_shot:
                path = os.path.join(self._spill.name, f"{i:08d}.pkl")
                chunk.to_pickle(path)
                self._files.append(path)
            yield chunk

    def close(self) -> None:
        """Remove spilled chunks, if any."""
        if self._spill is not None:
            self._spill.cleanup()
            self._spill, self._files = None, []


def _parquet(path: str, chunk_rows: int) -> ChunkSource:
    try:
        import pyarrow.dataset as ds
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DataError("reading Parquet needs pyarrow: pip install 'jaxmm[parquet]'") from e
    if not os.path.exists(path):
        raise DataError(f"no such Parquet file or directory: {path!r}")
    try:
        dataset = ds.dataset(path, format="parquet")
    except Exception as e:
        raise DataError(f"cannot open {path!r} as Parquet: {e}") from e

    def read(columns):
        for batch in dataset.to_batches(columns=None if columns is None else list(columns),
                                        batch_size=chunk_rows, use_threads=False):
            if batch.num_rows:
                yield batch.to_pandas()

    return ChunkSource(read, list(dataset.schema.names))


def chunk_source(data: object, chunk_rows: int = CHUNK_ROWS) -> ChunkSource:
    """Wrap ``data`` (Parquet path, list of DataFrames, function returning an iterable of
    DataFrames, or a one-shot iterator of DataFrames) as a re-readable :class:`ChunkSource`.
    """
    if isinstance(data, (str, os.PathLike)):
        return _parquet(os.fspath(data), chunk_rows)
    if isinstance(data, (list, tuple)):
        if not data:
            raise DataError("data is an empty list of chunks")
        return ChunkSource(lambda columns: iter(data))
    if isinstance(data, Iterator):
        return ChunkSource(lambda columns: data, one_shot=True)
    if callable(data):
        return ChunkSource(lambda columns: iter(data()))
    raise DataError(f"data must be a pandas DataFrame, a Parquet path, or chunks of DataFrames "
                    f"(list, iterator or function), got {type(data).__name__}")
