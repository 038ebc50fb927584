"""Reading photos: the folder layout (`folder`), decoding once into a uint8 cache
(`decode`, `cache`), and augmentation from that cache (`augment`)."""
