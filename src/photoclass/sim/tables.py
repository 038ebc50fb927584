"""Flickr's tables as the simulator serves them: its own copy, written from Flickr's
documentation and live answers (`../shared/docs/flickr-api.md`), never imported from the
client, so that a wrong table in the client fails a test instead of agreeing with itself."""

from __future__ import annotations

# Size extra -> (suffix in the static photo URL, longest side in pixels). url_m has no suffix.
SIZES: dict[str, tuple[str, int]] = {
    "t": ("t", 100),
    "s": ("m", 240),
    "n": ("n", 320),
    "m": ("", 500),
    "z": ("z", 640),
    "c": ("c", 800),
    "l": ("b", 1024),
}

# `flickr.photos.licenses.getInfo` as it answered in mid-2025 (ids 0-16, Flickr's exact
# names), with the share of the corpus's photos under each licence.
LICENSES: tuple[tuple[int, str, str, float], ...] = (
    (0, "All Rights Reserved", "", 0.45),
    (1, "CC BY-NC-SA 2.0", "https://creativecommons.org/licenses/by-nc-sa/2.0/", 0.07),
    (2, "CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/", 0.08),
    (3, "CC BY-NC-ND 2.0", "https://creativecommons.org/licenses/by-nc-nd/2.0/", 0.07),
    (4, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/", 0.08),
    (5, "CC BY-SA 2.0", "https://creativecommons.org/licenses/by-sa/2.0/", 0.04),
    (6, "CC BY-ND 2.0", "https://creativecommons.org/licenses/by-nd/2.0/", 0.03),
    (7, "No known copyright restrictions", "https://www.flickr.com/commons/usage/", 0.01),
    (8, "United States Government Work", "http://www.usa.gov/copyright.shtml", 0.01),
    (9, "Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/", 0.02),
    (10, "Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/", 0.02),
    (11, "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/", 0.04),
    (12, "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/", 0.02),
    (13, "CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/", 0.01),
    (14, "CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/", 0.02),
    (15, "CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/", 0.02),
    (16, "CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/", 0.01),
)

# Where Flickr redirects a request for a photo that was deleted or made private.
PLACEHOLDER_PATH = "/pw/images/en-us/photo_unavailable.png"

# The one-line answers Flickr gives when it wants to be asked again later.
UNAVAILABLE = {
    0: "Sorry, the Flickr API service is not currently available.",
    10: "Sorry, the Flickr search API is not currently available.",
    105: "Service currently unavailable",
    201: "Sorry, the Flickr API service is not currently available.",
}
