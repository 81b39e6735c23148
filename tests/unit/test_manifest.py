import json
from pathlib import Path

import pytest

from service.inference.manifest import Manifest, ManifestError
from service.inference.store import scan

pytestmark = pytest.mark.unit

GOOD = {
    "kind": "seq2seq",
    "input": {"encoding": "one_hot", "cardinality": 51},
    "output_cardinality": 51,
    "start_token": 0,
    "max_steps": 3,
}


def write(directory: Path, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").write_text(json.dumps(data))
    return directory


def test_good_manifest_round_trips(tmp_path: Path) -> None:
    loaded = Manifest.load(write(tmp_path / "m" / "1", GOOD))
    loaded.write(tmp_path / "copy")
    assert Manifest.load(tmp_path / "copy") == loaded


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"output_cardinality": 60}, "exceeds input cardinality"),
        ({"start_token": None}, "start_token is required"),
        ({"end_token": 51}, "end_token (51) must be in 0..50"),
        ({"vocabulary": ["a", "b"]}, "vocabulary has 2 entries"),
        ({"kind": "transformer"}, "kind"),
        ({"input": {"encoding": "bytes", "cardinality": 3}}, "input.encoding"),
        ({"max_steps": 0}, "max_steps"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_manifest_names_directory_and_problem(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    directory = write(tmp_path / "reverse" / "1", {**GOOD, **change})
    with pytest.raises(ManifestError) as info:
        Manifest.load(directory)
    assert str(directory) in str(info.value)
    assert expected in str(info.value)


def test_missing_and_unparsable_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="missing model.json"):
        Manifest.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(tmp_path)


def test_scan_finds_versions_and_rejects_bad_layouts(tmp_path: Path) -> None:
    write(tmp_path / "a" / "1", GOOD)
    write(tmp_path / "a" / "2", GOOD)
    write(tmp_path / "b" / "7", GOOD)
    assert sorted((n, v) for n, v, _ in scan(tmp_path)) == [("a", 1), ("a", 2), ("b", 7)]
    (tmp_path / "a" / "latest").mkdir()
    with pytest.raises(ManifestError, match="version directories must be integers"):
        scan(tmp_path)


@pytest.mark.parametrize("name", ["²", "1" * 200, "-1"])
def test_scan_refuses_versions_int_cannot_read(tmp_path: Path, name: str) -> None:
    """'²'.isdigit() is true but int() refuses it (it used to crash start-up); a
    version has at most 18 digits."""
    write(tmp_path / "a" / "1", GOOD)
    (tmp_path / "a" / name).mkdir()
    with pytest.raises(ManifestError, match="version directories must be integers"):
        scan(tmp_path)


def test_scan_refuses_two_directories_for_one_version(tmp_path: Path) -> None:
    write(tmp_path / "a" / "1", GOOD)
    write(tmp_path / "a" / "01", GOOD)
    with pytest.raises(ManifestError, match="the same version as"):
        scan(tmp_path)


@pytest.mark.parametrize("layout", ["missing", "empty", "no_versions"])
def test_scan_refuses_unusable_store(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "store"
    if layout != "missing":
        root.mkdir()
    if layout == "no_versions":
        (root / "reverse").mkdir()
    with pytest.raises(ManifestError) as info:
        scan(root)
    assert str(root) in str(info.value)
