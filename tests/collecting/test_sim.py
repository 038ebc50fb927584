"""The simulator: Flickr's quirks over HTTP, and a corpus that is deterministic and needs more
than colour to classify."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
import numpy as np
import pytest
from PIL import Image

from photoclass.sim import Faults, SimServer, object_kind, render_photo
from photoclass.sim.corpus import URL_C_FROM, Corpus, render_jpeg
from photoclass.sim.tables import SIZES


def api(sim: SimServer, **params: object) -> httpx.Response:
    form = {"api_key": sim.api_key, "format": "json", "nojsoncallback": 1} | params
    return httpx.post(sim.api_url, data=form)  # type: ignore[arg-type]


def test_envelope_errors_and_jsonp(sim: SimServer) -> None:
    wrong = api(sim, method="flickr.photos.search", text="cat", api_key="nope")
    assert wrong.status_code == 200 and wrong.json() == {
        "stat": "fail", "code": 100, "message": "Invalid API Key (Key not found)"
    }  # fmt: skip
    assert api(sim, method="flickr.photos.search").json()["code"] == 3  # no arguments
    assert api(sim, method="flickr.nope").json()["code"] == 112
    jsonp = api(sim, method="flickr.photos.licenses.getInfo", nojsoncallback=0)
    assert jsonp.text.startswith("jsonFlickrApi({") and jsonp.text.endswith("})")


def test_search_caps_per_page_and_repeats_pages_past_4000(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(classes=("owl",), photos_per_class=4600)
    first = api(sim, method="flickr.photos.search", text="owl", per_page=900).json()["photos"]
    assert first["perpage"] == 500 and len(first["photo"]) == 500 and first["total"] == "4600"
    ninth = api(sim, method="flickr.photos.search", text="owl", per_page=500, page=9).json()["photos"]
    assert ninth["photo"] == first["photo"], "past 4,000 results Flickr repeats earlier pages"


def test_search_filters_and_extras(sim: SimServer) -> None:
    found = api(
        sim,
        method="flickr.photos.search",
        text="cat",
        license="4,9",
        max_upload_date=URL_C_FROM - 1,
        extras="url_c,url_m,license,owner_name,date_upload",
    ).json()["photos"]["photo"]
    assert found and all(p["license"] in ("4", "9") for p in found)
    assert all(int(p["dateupload"]) < URL_C_FROM and "url_c" not in p for p in found)
    assert all(p["url_m"] and p["width_m"] and p["ownername"] for p in found)
    nothing = api(sim, method="flickr.photos.search", text="cat -cat").json()["photos"]
    assert nothing["total"] == "0"


def test_photos_are_served_at_the_size_their_suffix_promises(sim: SimServer) -> None:
    photo = next(p for p in sim.corpus.photos if "c" in p.sizes)
    for size in ("s", "m", "z", "c"):
        body = httpx.get(sim.flickr.photo_url(photo, size)).content
        with Image.open(io.BytesIO(body)) as image:
            assert image.format == "JPEG" and max(image.size) == SIZES[size][1]
            assert image.size == photo.dimensions(size)
    wrong_secret = sim.flickr.photo_url(photo, "z").replace(photo.secret, "0" * 10)
    assert httpx.get(wrong_secret).status_code == 404


def test_duplicates_reupload_earlier_photos() -> None:
    corpus = Corpus(("cat",), 200, duplicates=0.1)
    copies = [p for p in corpus.photos if p.source != p.index]
    assert 5 < len(copies) < 40
    exact = next(p for p in copies if p.exact_copy)
    assert corpus.jpeg(exact, "s") == corpus.jpeg(corpus.photos[exact.source], "s")


def test_faults_are_deterministic_for_a_seed(start_sim: Callable[..., SimServer]) -> None:
    def statuses(sim: SimServer) -> list[int]:
        with httpx.Client() as client:
            return [client.get(sim.flickr.photo_url(p, "s")).status_code for p in sim.corpus.photos[:30]]

    faults = Faults(server_error=0.3)
    first, second = start_sim(faults=faults), start_sim(faults=faults)
    assert statuses(first) == statuses(second) and 503 in statuses(first)


def test_rendering_is_deterministic_and_kinds_are_distinct() -> None:
    assert render_jpeg("owl", 3, 240) == render_jpeg("owl", 3, 240)
    assert render_jpeg("owl", 3, 240) != render_jpeg("owl", 4, 240)
    classes = ("cat", "owl", "dog", "bird", "fox", "bee", "ant", "cow")
    assert len({object_kind(c, classes) for c in classes}) == len(classes)
    assert object_kind("owl", classes) == object_kind("owl", tuple(reversed(classes)))


def test_mean_colour_alone_cannot_tell_the_classes_apart() -> None:
    """A nearest-centroid classifier on mean RGB, trained on 100 photos and tested on 100
    others, must stay near chance; the classes differ in shape and texture only."""
    classes = ("cat", "owl")

    def features(indices: range) -> tuple[np.ndarray, np.ndarray]:
        x = [
            np.asarray(render_photo(c, i, 64, classes=classes), np.float32).mean(axis=(0, 1))
            for c in classes
            for i in indices
        ]
        return np.array(x), np.repeat([0, 1], len(indices))

    x_train, y_train = features(range(50))
    x_test, y_test = features(range(50, 100))
    centroids = np.stack([x_train[y_train == k].mean(axis=0) for k in (0, 1)])
    guess = np.argmin(((x_test[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (guess == y_test).mean()
    assert accuracy < 0.65, f"mean colour predicts the class {accuracy:.0%} of the time"


@pytest.mark.parametrize("size", [64, 200])
def test_render_photo_size(size: int) -> None:
    assert max(render_photo("cat", 0, size).size) == size
