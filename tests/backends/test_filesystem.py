"""The file backend's own promises: layout on disk, serializers, name encoding, no escapes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from restate import ControllerSync
from restate.backends import MISSING, FileSystemSyncBackend
from restate.errors import BackendError, InvalidPathError, SerializationError
from restate.serializers import Serializer

from .conftest import files_of


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def fs(base: Path) -> FileSystemSyncBackend:
    return FileSystemSyncBackend(base)


def test_the_documented_layout_holds_after_writing_leaves(fs: FileSystemSyncBackend, base: Path):
    controller = ControllerSync(fs)
    controller.set_state("/config/theme", "dark")
    controller.set_state("/config/colors/primary", "#FF0000")
    controller.set_state("/config/colors/secondary", "#00FF00")
    assert files_of(base) == {
        "config/": None,
        "config/colors/": None,
        "config/theme.json": b'"dark"',
        "config/colors/primary.json": b'"#FF0000"',
        "config/colors/secondary.json": b'"#00FF00"',
    }
    assert controller.get_state("/config") == {
        "theme": "dark",
        "colors": {"primary": "#FF0000", "secondary": "#00FF00"},
    }


def test_a_dict_is_one_document_and_writes_below_it_update_the_document(fs, base: Path):
    fs.write("/users/1", {"name": "Alice"})
    fs.write("/users/1/age", 30)
    assert files_of(base) == {"users/": None, "users/1.json": b'{"name": "Alice", "age": 30}'}


def test_a_write_at_a_path_replaces_the_directory_that_was_there(fs, base: Path):
    fs.write("/a/b/c", 1)
    fs.write("/a/b/d", 2)
    fs.write("/a", {"new": True})
    assert files_of(base) == {"a.json": b'{"new": true}'}


def test_empty_directories_are_removed_and_read_as_missing(fs, base: Path):
    fs.write("/a/b/c", 1)
    fs.delete("/a/b/c")
    assert files_of(base) == {}
    (base / "made" / "by" / "hand").mkdir(parents=True)
    assert fs.read("/made", MISSING) is MISSING
    assert fs.read("/") == {}


def test_a_file_wins_over_a_directory_of_the_same_name(fs, base: Path):
    fs.write("/a/x", 1)
    (base / "a.json").write_text('{"y": 2}')  # as after a crash between replace and rmtree
    assert fs.read("/a") == {"y": 2}
    assert fs.read("/") == {"a": {"y": 2}}


def test_files_of_other_extensions_and_hidden_files_are_ignored_and_kept(fs, base: Path):
    fs.write("/a/x", 1)
    (base / "a" / "notes.txt").write_text("mine")
    (base / "a" / ".hidden.json").write_text("42")
    (base / "README").write_text("hello")
    assert fs.read("/") == {"a": {"x": 1}}
    fs.delete("/a")
    assert (base / "a" / "notes.txt").read_text() == "mine"
    assert (base / "README").read_text() == "hello"
    assert fs.read("/") == {}


@pytest.mark.parametrize(
    ("key", "file_name"),
    [
        ("v1.2", "v1.2.json"),
        ("50%", "50%25.json"),
        ("x.json", "x%2Ejson.json"),
        ("CON", "%43ON.json"),
        (".hidden", "%2Ehidden.json"),
        ("back\\slash", "back%5Cslash.json"),
        ("tab\there", "tab%09here.json"),
        ("ünï", "ünï.json"),
    ],
)
def test_names_the_filesystem_cannot_hold_are_encoded_reversibly(fs, base, key, file_name):
    fs.write(f"/{key}", 1)
    assert listed(base) == [file_name]
    assert fs.read("/") == {key: 1}


def test_a_name_too_long_for_the_filesystem_is_hashed_with_its_key_kept_beside_it(fs, base):
    key = "k" * 1000
    fs.write(f"/{key}/inner", 1)
    fs.write(f"/{key}2", 2)
    assert all(len(name.encode()) <= 255 for name in listed(base))
    assert fs.read("/") == {key: {"inner": 1}, f"{key}2": 2}
    fs.delete(f"/{key}")
    fs.delete(f"/{key}2")
    assert listed(base) == []


def test_dotted_keys_are_separate_files(fs, base: Path):
    fs.write("/v1.2", "a")
    fs.write("/v1.3", "b")
    assert sorted(listed(base)) == ["v1.2.json", "v1.3.json"]
    assert fs.read("/") == {"v1.2": "a", "v1.3": "b"}


def test_an_unserializable_value_raises_before_any_file_or_directory_is_made(fs, base):
    fs.write("/keep", 1)
    before = files_of(base)
    with pytest.raises(SerializationError):
        fs.write("/new/deep/path", {"ok": 1, "bad": object()})
    with pytest.raises(SerializationError):
        fs.write("/keep", float("inf"))
    assert files_of(base) == before


yaml_like = Serializer(
    extension="yaml",
    raw_type=str,
    serialize=lambda v: (
        "\n".join(f"{k}: {json.dumps(x)}" for k, x in v.items())
        if isinstance(v, dict)
        else f"value: {json.dumps(v)}"
    ),
    deserialize=lambda raw: (lambda d: d["value"] if list(d) == ["value"] else d)(
        {k: json.loads(x) for k, x in (line.split(": ", 1) for line in raw.splitlines())}
    ),
)


def test_a_user_serializer_with_its_own_extension_works(tmp_path: Path):
    fs = FileSystemSyncBackend(tmp_path, serializer=yaml_like)
    fs.write("/cfg", {"theme": "dark", "size": 3})
    fs.write("/leaf", [1, 2])
    (tmp_path / "ignored.json").write_text("{}")
    assert (tmp_path / "cfg.yaml").read_text() == 'theme: "dark"\nsize: 3'
    assert fs.read("/") == {"cfg": {"theme": "dark", "size": 3}, "leaf": [1, 2]}


def test_a_binary_serializer_writes_bytes(tmp_path: Path):
    binary = Serializer(
        "bin", bytes, lambda v: json.dumps(v).encode()[::-1], lambda b: json.loads(b[::-1])
    )
    fs = FileSystemSyncBackend(tmp_path, serializer=binary)
    fs.write("/x", {"a": 1})
    assert (tmp_path / "x.bin").read_bytes() == b'}1 :"a"{'
    assert fs.read("/x") == {"a": 1}


def test_durable_writes_produce_the_same_files(tmp_path: Path):
    durable = FileSystemSyncBackend(tmp_path / "d", durable=True)
    plain = FileSystemSyncBackend(tmp_path / "p")
    for store in (durable, plain):
        store.write("/a/b", {"c": 1})
        store.write("/a/b/d", 2)
        store.delete("/a/b/c")
    assert files_of(tmp_path / "d") == files_of(tmp_path / "p")


def test_a_corrupt_file_raises_a_clear_error_naming_it(fs, base: Path):
    fs.write("/a", 1)
    (base / "a.json").write_text("{not json")
    with pytest.raises(BackendError, match=r"a\.json"):
        fs.read("/a")


def test_the_file_backend_transaction_puts_back_every_byte(fs, base: Path):
    fs.write("/a/b", {"c": 1})
    fs.write("/x/y/z", 2)
    (base / "x" / "notes.txt").write_text("mine")
    before = files_of(base)
    with pytest.raises(KeyError), fs.transaction():
        fs.write("/a/b/d", 3)
        fs.delete("/x")
        fs.write("/", {"all": {"new": 1}})
        fs.write("/n/e/w", 4)
        raise KeyError
    assert files_of(base) == before


# ----- traversal: nothing outside base_dir is read, written or deleted -----------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    (out / "secret.json").write_text('"secret"')
    (out / "sub" / "deep.json").write_text('"deep"')
    return out


HOSTILE_PATHS = [
    "/../outside/secret",
    "/a/../../outside",
    "..",
    "/a/\0/b",
    "/a\0b",
]

HOSTILE_KEYS = ["..", ".", "", "a/b", "a\0b", "*"]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_are_refused_and_touch_nothing(fs, base, outside, path):
    fs.write("/keep", 1)
    before, outside_before = files_of(base), files_of(outside)
    for attempt in (lambda: fs.read(path), lambda: fs.write(path, 1), lambda: fs.delete(path)):
        with pytest.raises(InvalidPathError):
            attempt()
    assert files_of(base) == before
    assert files_of(outside) == outside_before


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_dict_keys_are_refused_and_touch_nothing(fs, base, outside, key):
    before, outside_before = files_of(base), files_of(outside)
    with pytest.raises(InvalidPathError):
        fs.write("/a", {"ok": 1, key: {"x": 1}})
    assert files_of(base) == before
    assert files_of(outside) == outside_before


@pytest.mark.parametrize(
    "key", ["/abs", "\\..\\..\\outside", "C:\\Windows", "a\\..\\..", "%2E%2E", "~", "-rf"]
)
def test_keys_that_look_like_escapes_stay_inside_as_plain_names(fs, base, outside, key):
    parts = [seg for seg in key.split("/") if seg]
    path = "/" + "/".join(["a", *parts, "leaf"])
    outside_before = files_of(outside)
    fs.write(path, "v")
    fs.write("/doc", {seg: "v" for seg in parts})
    assert fs.read(path) == "v"
    assert fs.read("/doc") == {seg: "v" for seg in parts}
    fs.delete(path)
    fs.delete("/a")
    assert files_of(outside) == outside_before
    for root, _dirs, _files in os.walk(base):
        assert Path(root).resolve().is_relative_to(base.resolve())


def test_very_long_and_unicode_names_stay_inside(fs, base, outside):
    outside_before = files_of(outside)
    for key in ["x" * 5000, "é" * 3000, "漢" * 1000, "../" * 100 + "x"]:
        parts = [seg for seg in key.split("/") if seg and seg != ".."]
        fs.write("/" + "/".join(["a", *parts]), key)
        assert fs.read("/" + "/".join(["a", *parts])) == key
    fs.delete("/")
    assert files_of(base) == {}
    assert files_of(outside) == outside_before


@pytest.mark.parametrize("link_name", ["link", "link.json"])
def test_a_symlink_inside_base_dir_is_never_followed(fs, base, outside, link_name):
    base.mkdir(parents=True, exist_ok=True)
    target = outside / "secret.json" if link_name.endswith(".json") else outside
    (base / link_name).symlink_to(target)
    outside_before = files_of(outside)
    assert fs.read("/link", MISSING) is MISSING
    assert fs.read("/link/secret", MISSING) is MISSING
    assert fs.read("/link/sub/deep", MISSING) is MISSING
    assert "link" not in fs.read("/")
    if link_name == "link":
        with pytest.raises(BackendError, match="symlink"):
            fs.write("/link/secret", "overwritten")
        with pytest.raises(BackendError):
            fs.write("/link/sub/new", "created")
    fs.delete("/link/secret")
    fs.delete("/link/sub")
    fs.write("/link", "replaces the link file, not its target")
    fs.delete("/link")
    fs.delete("/")
    assert files_of(outside) == outside_before


def test_a_symlinked_document_is_not_read_or_updated(fs, base, outside):
    base.mkdir(parents=True, exist_ok=True)
    (outside / "doc.json").write_text('{"k": 1}')
    (base / "doc.json").symlink_to(outside / "doc.json")
    assert fs.read("/doc", MISSING) is MISSING
    fs.write("/doc/k", 2)  # a plain directory doc/ is created instead
    fs.delete("/doc")
    assert (outside / "doc.json").read_text() == '{"k": 1}'


def listed(base: Path) -> list[str]:
    """The names in ``base`` apart from the store's lock file (bookkeeping, never a value)."""
    return [name for name in os.listdir(base) if name != ".restate.lock"]


def test_rolling_back_new_nested_paths_leaves_no_descriptor_open(tmp_path: Path) -> None:
    # The restore of a rolled-back batch asked "is this a directory?" by opening it and never
    # closed the answer: two descriptors lost per new nested path.
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    c = ControllerSync(FileSystemSyncBackend(str(tmp_path / "s")))
    c.set_state("/keep", 1)
    before = open_fds()
    for i in range(20):
        with pytest.raises(RuntimeError), c.batch():
            c.set_state(f"/a{i}/b/c", 1)
            c.set_state(f"/f{i}", {"x": {"y": 1}})
            raise RuntimeError("undo")
    assert c.get_state("/") == {"keep": 1}
    assert open_fds() == before
