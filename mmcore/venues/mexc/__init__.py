"""MEXC spot (market data only so far): protobuf frames of the v3 WebSocket, the local book rule, converted data.

- :mod:`mmcore_ext.mexc_codec` (:class:`~mmcore_ext.mexc_codec.MexcDecoder`): the compiled wire-format decoder
  of the three aggregated channels (hot path).
- :mod:`mmcore.venues.mexc.pbdecode` (:class:`~mmcore.venues.mexc.pbdecode.ProtobufDecoder`): the same decoding
  through the ``protobuf`` package's generated classes (:mod:`mmcore.venues.mexc.pb`), the reference the
  compiled decoder is checked against.
- :mod:`mmcore.venues.mexc.convert`: Binance spot recording -> MEXC frames (**converted from Binance, not MEXC
  data**), and the reader of that file format.
- The book: ``L2Book(SYNC_MEXC)`` (``sync_rule_for_market("mexc_spot")``), :mod:`mmcore_ext.book`.
"""
