"""Training: scan and decode the data once, build the model, run the loop, write the bundle
(`loop`), with the learning-rate schedule and optimizers (`optim`) and resumable state
(`checkpoint`)."""
