"""Data: readers, writers and generators of every format SeisLens reads or makes.

OpenFWI velocity folders, SeisBench event folders, shot-gather files (SEG-Y, SU, NumPy),
the deepwave forward modelling and the synthetic generators. Nothing here imports
training, index or service code (see docs/architecture.md).
"""
