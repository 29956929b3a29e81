"""Compiled core of mmcore (Cython): fixed-point conversion, typed market events, L2 book, quoting,
order state machine and pre-trade risk. Prices are int64 ticks, quantities int64 lots, times int64 ns."""
