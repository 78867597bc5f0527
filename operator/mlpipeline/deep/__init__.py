"""Deep-learning model families (PyTorch), trained epoch by epoch; needs the ``deep`` extra."""
