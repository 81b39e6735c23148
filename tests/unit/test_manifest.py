import json
from pathlib import Path

import pytest

from service.inference.model.manifest import Manifest, ManifestError
from service.inference.model.store import scan

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
        ({"output_cardinality": 60}, "exceeds the target cardinality"),
        ({"start_token": None}, "start_token is required"),
        ({"end_token": 51}, "end_token (51) must be in 0..50"),
        ({"vocabulary": ["a", "b"]}, "vocabulary has 2 entries"),
        ({"kind": "transformer"}, "kind"),
        ({"input": {"encoding": "bytes", "cardinality": 3}}, "input.encoding"),
        ({"max_steps": 0}, "max_steps"),
        ({"surprise": 1}, "surprise"),
        ({"example": [3, 51]}, "example: source ids must be in 0..50 (got [51])"),
        ({"example": []}, "example: source ids must be in 0..50"),
        ({"example": "some text"}, "example: text needs a source tokenizer"),
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


KERAS_IO = {
    "kind": "seq2seq",
    "source": {
        "encoding": "one_hot",
        "vocabulary": [" ", "a", "b"],
        "tokenizer": "char",
        "pad_token": " ",
        "length": 31,
    },
    "target": {
        "encoding": "one_hot",
        "vocabulary": ["\t", "\n", " ", "0", "1"],
        "tokenizer": "char",
    },
    "start_token": "\t",
    "end_token": "\n",
    "max_steps": 5,
}


def test_two_sided_manifest_as_the_issue_writes_it(tmp_path: Path) -> None:
    loaded = Manifest.load(write(tmp_path / "m" / "1", KERAS_IO))
    assert (loaded.source.size, loaded.target.size, loaded.output_cardinality) == (3, 5, 5)
    assert (loaded.start_id, loaded.end_id) == (0, 1)
    assert loaded.token_side is loaded.target
    loaded.write(tmp_path / "copy")
    assert Manifest.load(tmp_path / "copy") == loaded


def test_one_sided_manifest_means_source_equals_target(tmp_path: Path) -> None:
    loaded = Manifest.load(write(tmp_path / "m" / "1", GOOD))
    assert loaded.source == loaded.target
    assert loaded.source.size == 51 and loaded.start_id == 0
    words = {**GOOD, "input": {"encoding": "index", "cardinality": 2}, "output_cardinality": 2}
    loaded = Manifest.load(write(tmp_path / "w" / "1", {**words, "vocabulary": ["<s>", "a"]}))
    assert loaded.target.vocabulary == ["<s>", "a"] and loaded.source.encoding == "index"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"start_token": "x"}, "start_token 'x' is not in the target vocabulary"),
        ({"end_token": 9}, "end_token (9) must be in 0..4"),
        ({"source": {"encoding": "one_hot", "cardinality": 3, "vocabulary": ["a"]}}, "cardinality"),
        ({"source": {"encoding": "one_hot"}}, "give cardinality, vocabulary or both"),
        ({"source": {"encoding": "one_hot", "cardinality": 3, "tokenizer": "char"}}, "tokenizer"),
        (
            {"source": {**KERAS_IO["source"], "pad_token": "z"}},  # type: ignore[dict-item]
            "pad_token 'z' is not in the vocabulary",
        ),
        (
            {"source": {**KERAS_IO["source"], "pad_token": None}},  # type: ignore[dict-item]
            "length needs a pad_token",
        ),
        ({"source": {**KERAS_IO["source"], "tokenizer": "bpe"}}, "source.tokenizer"),
        ({"input": {"encoding": "one_hot", "cardinality": 3}}, "either 'input'"),
        ({"decoder_output": "scores"}, "decoder_output"),
        ({"roles": {"decoder_inputs": ["token", "hidden"]}}, "roles.decoder_inputs"),
    ],
)
def test_bad_two_sided_manifest(tmp_path: Path, change: dict[str, object], expected: str) -> None:
    directory = write(tmp_path / "m" / "1", {**KERAS_IO, **change})
    with pytest.raises(ManifestError) as info:
        Manifest.load(directory)
    assert expected in str(info.value)


def test_step_model_with_two_vocabularies_cannot_feed_back() -> None:
    tagger = Manifest.model_validate(
        {
            "kind": "step",
            "source": {"encoding": "index", "vocabulary": ["the", "cat"]},
            "target": {"encoding": "one_hot", "vocabulary": ["DET", "NOUN", "VERB"]},
        }
    )
    assert not tagger.feeds_back and tagger.token_side is tagger.source
    assert Manifest.model_validate(GOOD).feeds_back


def test_version_with_two_formats_or_mixed_formats_is_refused(tmp_path: Path) -> None:
    from service.inference.model.store import check_version

    directory = write(tmp_path / "m" / "1", GOOD)
    (directory / "encoder.keras").write_bytes(b"")
    (directory / "decoder.keras").write_bytes(b"")
    manifest, files = check_version(directory)
    assert [(f.stem, f.format) for f in files] == [("encoder", "keras"), ("decoder", "keras")]
    (directory / "decoder.h5").write_bytes(b"")
    with pytest.raises(ManifestError, match="decoder is stored in 2 formats"):
        check_version(directory)
    (directory / "decoder.keras").unlink()
    with pytest.raises(ManifestError, match="one file format per version directory"):
        check_version(directory)
    (directory / "decoder.h5").unlink()
    (directory / "decoder").mkdir()
    (directory / "decoder" / "saved_model.pb").write_bytes(b"")
    (directory / "encoder.keras").unlink()
    (directory / "encoder").mkdir()
    (directory / "encoder" / "saved_model.pb").write_bytes(b"")
    _, files = check_version(directory)
    assert {f.format for f in files} == {"saved_model"}
    (directory / "encoder" / "saved_model.pb").unlink()
    with pytest.raises(ManifestError, match="missing model file encoder.keras, encoder.h5"):
        check_version(directory)
