"""asr: a recurrent CTC speech recogniser in PyTorch.

Data flows one way: audio -> features -> model -> loss or decoder -> text -> metrics.
"""

__version__ = "0.1.0"
