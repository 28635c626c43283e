"""The files generated from extractor/schemas.py (dbt's _sources.yml, the README's dataset
table) are up to date; a change to a dataset's definition makes them stale."""

from __future__ import annotations

import dataclasses

import yaml

from extractor import generate, schemas


def test_generated_files_are_up_to_date():
    stale = generate.stale_files()
    assert not stale, f"stale: {[str(p) for p in stale]}; run python -m extractor.generate --write"


def test_a_changed_dataset_definition_makes_both_files_stale(monkeypatch):
    spec = schemas.DATASETS["premium_teams"]
    changed = dataclasses.replace(spec, columns={**spec.columns, "region": schemas.S})
    monkeypatch.setitem(generate.DATASETS, "premium_teams", changed)
    assert set(generate.stale_files()) == {generate.SOURCES_YML, generate.README}
    assert generate.main(["--check"]) == 1


def test_the_sources_file_lists_every_dataset_column_with_its_type():
    sources = yaml.safe_load(generate.SOURCES_YML.read_text())["sources"][0]["tables"]
    assert [t["name"] for t in sources] == list(schemas.DATASETS)
    for table in sources:
        spec = schemas.DATASETS[table["name"]]
        assert [c["name"] for c in table["columns"]] == [*spec.columns, *schemas.META_COLUMNS]
        assert table["meta"] == generate.source_read_config(spec)["meta"]
    usage = next(t for t in sources if t["name"] == "premium_usage")
    assert {c["name"]: c["data_type"] for c in usage["columns"]}["usage_date"] == "date"
