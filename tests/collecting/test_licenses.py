"""Licence names against Flickr's live table (ids 0-16, as the simulator serves it): exact
names, what people write instead, and the README's example."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from photoclass.collecting.flickr import FlickrClient
from photoclass.collecting.licenses import license_ids
from photoclass.errors import ConfigError
from photoclass.sim import SimServer
from photoclass.sim.tables import LICENSES

LIVE = {i: (name, url) for i, name, url, _ in LICENSES}
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("spec", "ids"),
    [
        ("CC BY 2.0", "4"),
        ("4,5,9", "4,5,9"),
        ("All Rights Reserved", "0"),
        ("no known copyright restrictions", "7"),
        ("Public Domain Dedication (CC0)", "9"),
        ("CC0", "9"),
        ("CC0 1.0", "9"),
        ("cc-0", "9"),
        ("PDM", "10"),
        ("Public Domain Mark 1.0", "10"),
        ("CC BY 4.0", "11"),
        ("cc-by-nc-nd-4.0", "16"),
        ("CC BY 4", "11"),
        ("CC BY-SA", "5,12"),  # no version: every version Flickr has
        ("CC BY", "4,11"),
        ("Attribution-NonCommercial-ShareAlike License", "1,15"),  # Flickr's older names
        ("CC BY 2.0, CC0, 10", "4,9,10"),
    ],
)
def test_names_and_aliases_match_the_live_table(spec: str, ids: str) -> None:
    assert license_ids(spec, LIVE) == ids


@pytest.mark.parametrize("spec", ["CC BY 9", "Public Domain", "4.0", "MIT", "17"])
def test_an_unknown_name_lists_the_table_in_one_line(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        license_ids(spec, LIVE)
    message = str(caught.value)
    assert message.startswith(f"unknown license '{spec}' in `license`") and "\n" not in message
    assert "16 CC BY-NC-ND 4.0" in message


def test_no_license_is_no_filter() -> None:
    assert license_ids(None, LIVE) is None and license_ids("", LIVE) is None


def test_the_readme_license_examples_work_against_the_live_table(sim: SimServer) -> None:
    specs = [shlex.split(m)[1] for m in re.findall(r'--license "[^"]+"', README.read_text(encoding="utf-8"))]
    assert specs, "the README shows --license"
    with FlickrClient(sim.api_key, api_url=sim.api_url, rate=1000.0) as flickr:
        table = flickr.licenses()
    for spec in specs:
        ids = license_ids(spec, table)
        assert ids is not None and len(ids.split(",")) >= len(spec.split(",")), spec
