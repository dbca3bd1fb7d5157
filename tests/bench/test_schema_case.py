"""The result schema (segbench.bench.schema) and benchmark cases (segbench.bench.case)."""

import json

import pytest

from segbench.bench.case import Case, as_case, make_case
from segbench.bench.schema import FIELDS, RESULT_KEYS, describe, empty_row
from segbench.bench.table import TABLE_COLUMNS
from segbench.errors import UserError


def test_every_column_is_defined_once_with_a_meaning():
    names = [f.name for f in FIELDS]
    assert len(names) == len(set(names))
    assert all(f.meaning for f in FIELDS)
    assert describe("latency_ms_p50").unit == "ms per batch"
    assert empty_row() == dict.fromkeys(RESULT_KEYS) and "error" in RESULT_KEYS
    assert set(TABLE_COLUMNS) <= set(names)
    with pytest.raises(KeyError):
        describe("no_such_column")


def test_case_round_trips_through_json_and_rejects_unknown_keys():
    case = make_case("fast_scnn", batch="2", input_size=(32, 48), data=None, latency={"min_time_s": 0.1})
    assert case.batch == 2 and case.input_size == [32, 48]
    again = Case.from_dict(json.loads(json.dumps(case.to_dict())))
    assert again == case and as_case(case.to_dict()) == case and as_case(case) is case
    assert case.base_row() == {"model": "fast_scnn", "weights": None, "backend": "eager", "batch": 2,
                               "input_size": [32, 48], "device": "cpu", "error": None}  # fmt: skip
    with pytest.raises(UserError, match="unknown keys sizes"):
        Case.from_dict({"model": "m", "sizes": [1]})
    with pytest.raises(UserError, match="no 'model'"):
        Case.from_dict({"batch": 1})


def test_report_columns_are_schema_columns():
    from segbench.bench.schema import FIELDS, columns
    from segbench.report.results import ACC_KEYS, CSV_COLUMNS, ROW_KEYS

    names = {f.name for f in FIELDS}
    assert set(ROW_KEYS) | set(CSV_COLUMNS) | set(ACC_KEYS) <= names
    assert len(names) == len(FIELDS)  # no column defined twice
    with pytest.raises(KeyError, match="not result columns: latency_p50"):
        columns("miou", "latency_p50")
