"""Small constants shared by test modules."""

# A model that really trains in seconds on the small fixture datasets.
TINY = dict(model="small-cnn", image_size=48, epochs=3, batch_size=16, workers=0)
