"""Names from the network cannot leave the output folder: for any class name (`..`, absolute
paths, NUL, Windows' reserved names, 300 characters, look-alike and full-width letters, case
variants) the folder is one safe path component inside DATA, or the name is refused; two classes
never share a folder on a case-insensitive file system; and a photo's path is built only from
its digits-only id. (Titles and owner names never reach a path: they live in the manifest and
ATTRIBUTION.csv, see test_manifest_properties.)"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from photoclass.collecting.split import INCOMING, SPLITS, class_folder, class_folders, photo_path
from photoclass.errors import ConfigError

from .conftest import examples

DATA = Path("/srv/data")
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"{d}{i}" for d in ("COM", "LPT") for i in range(10))}
hostile = st.one_of(
    st.text(max_size=40),
    st.text(min_size=250, max_size=320),
    st.text(
        st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF), min_size=60, max_size=70
    ),  # 4 UTF-8 bytes each
    st.sampled_from(
        [
            "..",
            ".",
            "../../etc",
            "/etc/passwd",
            "C:\\Windows",
            "\\\\server\\share",
            "a/../../b",
            "cat\0owl",
            "CON",
            "con.txt",
            "Aux.",
            "LPT1 ",
            "COM¹",
            "nul.tar.gz",
            "ＣＯＮ",
            "cat",
            "Cat",
            "CAT",
            "ｃａｔ",
            "сat",
            "straße",
            "STRASSE",
            "ǅ",
            "Ǆ",
            "ﬁsh",
            "fish",
            "café",
            "cafe\u0301",
            " cat ",
            "cat.",
            "-cat-",
            "\u202ecat",
            "\u200bcat",
            "İstanbul",
            "istanbul",
            "ΣΊΣΥΦΟΣ",
            "σίσυφος",
            "K",
            "\u212a",
        ]
    ),  # fmt: skip
)


def safe_component(name: str) -> bool:
    encoded = name.encode("utf-8")
    return (
        0 < len(encoded) <= 255
        and name not in (".", "..")
        and not any(ch in name for ch in "/\\\0:")
        and not any(unicodedata.category(ch).startswith("C") for ch in name)
        and name == name.strip(" .")
        and name.split(".")[0].rstrip(" ").upper() not in RESERVED
    )


@settings(max_examples=examples(300))
@given(name=hostile)
def test_any_class_name_becomes_one_safe_folder_or_is_refused(name: str) -> None:
    try:
        folder = class_folder(name)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    assert safe_component(folder), f"{name!r} -> unsafe folder {folder!r}"
    assert class_folder(folder) == folder  # photo_path insists on it
    for split in (None, *SPLITS):
        path = photo_path(DATA, split, folder, "12345")
        assert path.parent.parent.parent == DATA and path.parent.name == folder
        assert path.resolve().is_relative_to(DATA.resolve())
        assert path.parent.parent.name == (split or INCOMING)


@settings(max_examples=examples(200))
@given(names=st.lists(hostile, min_size=1, max_size=6))
@example(names=["straße", "STRASSE"])
@example(names=["cat", "ｃａｔ"])
@example(names=["K", "\u212a"])
@example(names=["ǅ", "ǆ"])
@example(names=["ΣΊΣΥΦΟΣ", "σίσυφος"])
def test_two_classes_never_share_a_folder_even_where_case_is_ignored(names: list[str]) -> None:
    try:
        folders = class_folders(names)
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    # Case-insensitive file systems (macOS, Windows) compare names case-folded and normalised.
    keys = [unicodedata.normalize("NFC", f).casefold() for f in folders.values()]
    assert len(set(keys)) == len(keys), f"{names!r} -> {folders!r}"


@settings(max_examples=examples(200))
@given(folder=hostile, photo_id=st.one_of(st.text(max_size=30), st.integers(0, 2**64).map(str)))
def test_a_photo_path_is_built_from_safe_parts_or_refused(folder: str, photo_id: str) -> None:
    try:
        path = photo_path(DATA, "train", folder, photo_id)
    except (ValueError, ConfigError):  # refused
        return
    assert path.resolve().is_relative_to(DATA / "train")
    assert path.name == f"{photo_id}.jpg" and photo_id.isascii() and photo_id.isdigit()
    assert safe_component(path.parent.name)
