"""Binance-compatible exchange emulator (``python -m mmcore emulate``): see :mod:`mmcore.sim.emulator.app`."""
