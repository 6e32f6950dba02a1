"""What edge and cloud share to train and evaluate.

Continual-learning hooks, the round schedule (the only place that knows what ``online`` and
``ship`` mean), the weight exchange's shared rules (``exchange``), class masking, activation
privacy, optimizers, devices and evaluation.
"""
