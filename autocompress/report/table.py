"""Trial records as a pandas DataFrame (pandas is imported on first use).

Example:
    >>> df = records_to_dataframe([{"number": 0, "state": "complete",
    ...                             "metrics": {"accuracy": 0.9}}])
    >>> list(df.columns)[:2], df.loc[0, "metrics/accuracy"]
    (['number', 'state'], np.float64(0.9))
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from autocompress.report.info import TrialsTable

if TYPE_CHECKING:
    import pandas as pd


def records_to_dataframe(records: Iterable[Any]) -> pd.DataFrame:
    """One row per record, columns as in :class:`~autocompress.report.info.TrialsTable`
    (``number, state, baseline, ..., params/<k>, metrics/<k>, cost/<device>/<k>,
    constraint/<k>``). Objects with ``to_dict()`` are accepted as well as dicts."""
    import pandas as pd

    table = TrialsTable.from_records(records)
    return pd.DataFrame(list(table.rows), columns=list(table.columns))
