"""Automated labeling: which records the model labels, which go to people, how both are merged."""
